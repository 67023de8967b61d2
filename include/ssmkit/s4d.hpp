#pragma once
/// \file s4d.hpp
/// The S4D (diagonal state space) convolution kernel and its recurrent form, as the reference's
/// SSMKernelDiag (state-spaces/s4, src/models/sequence/kernels/ssm.py;
/// ../shared/docs/reference-semantics.md section 3).
///
/// Shapes: H channels (independent SSMs), N2 = N/2 complex modes (one per conjugate pair of the
/// N-dimensional real state), L the kernel length, `channels` output channels per SSM (C's first
/// dimension), batch B. Complex arrays are std::complex<T> views (interleaved re, im).
///
/// The kernel is K[c, h, l] = gain Re sum_n C[c,h,n] B[h,n] dB[h,n] exp((l - shift) log dA[h,n])
/// with (log dA, dB, gain, shift) from discretize_mode (zoh, bilinear or dss).

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/batch.hpp>
#include <ssmkit/detail/s4_vandermonde.hpp>
#include <ssmkit/discretize.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// Options of s4d_kernel.
struct s4d_kernel_options {
  discretization method = discretization::zoh;
  /// S4ND's bandlimit: modes with dt |Im A| / (2 pi) >= bandlimit / 2 are dropped (C zeroed).
  std::optional<double> bandlimit;
  /// true: every term by an exact complex exp in double (slow; a reference path). false: the
  /// SIMD Vandermonde product (detail/s4_vandermonde.hpp).
  bool exact = false;
  /// Channels h are split over parallel_for.
  parallel_options parallel{};
};

namespace detail {

/// Validates the common S4D parameters; returns whether dt is tied ((H, 1)) rather than (H, N2).
template <class T>
bool check_s4d_params(const char* fn, tensor_view<const T, 2> dt, tensor_view<const std::complex<T>, 2> A,
                      tensor_view<const std::complex<T>, 2> B) {
  const std::size_t H = A.extent(0), N2 = A.extent(1);
  require(H >= 1 && N2 >= 1, fn, "A must have shape (H, N2) with H, N2 >= 1, got ", format_shape(A.extents()));
  check_shape(fn, "B", B, {H, N2});
  const bool tied = dt.extent(1) == 1;
  if (!(dt.extent(0) == H && (tied || dt.extent(1) == N2))) {
    throw_error(fn, "dt has shape ", format_shape(dt.extents()), ", expected (", H, ", 1) or (", H, ", ", N2, ")");
  }
  check_data(fn, "dt", dt);
  check_data(fn, "A", A);
  check_data(fn, "B", B);
  for (std::size_t h = 0; h < H; ++h) {
    for (std::size_t j = 0; j < dt.extent(1); ++j) {
      const T v = dt(h, j);
      require(v > T(0) && std::isfinite(v), fn, "dt must be positive and finite, got ", v, " at (", h, ", ", j, ")");
    }
  }
  return tied;
}

/// The checks of C (channels, H, N2) and of the kernel output K (channels, H, L) that every kernel
/// generator shares (s4d_kernel, s4_dplr_kernel); returns (channels, L).
template <class T>
std::pair<std::size_t, std::size_t> check_kernel_c_and_k(const char* fn, const tensor_view<const std::complex<T>, 3>& C,
                                                         const tensor_view<T, 3>& K, std::size_t H, std::size_t N2) {
  const std::size_t channels = C.extent(0), L = K.extent(2);
  require(channels >= 1, fn, "C must have at least one channel, got shape ", format_shape(C.extents()));
  check_shape(fn, "C", C, {channels, H, N2});
  require(L >= 1, fn, "L must be >= 1, got K of shape ", format_shape(K.extents()));
  check_shape(fn, "K", K, {channels, H, L});
  check_data(fn, "C", C);
  check_data(fn, "K", K);
  return {channels, L};
}

}  // namespace detail

/**
 * The S4D convolution kernel K (channels, H, L):
 *   zoh:      K[c,h,l] = 2 Re sum_n C B (e^D - 1)/A e^{l D},            D = dt A
 *   bilinear: K[c,h,l] = 2 Re sum_n C B dt/(1 - D/2) ((1 + D/2)/(1 - D/2))^l
 *   dss:      K[c,h,l] = Re sum_n C B (e^D - 1) r e^{l D},  r = conj(x)/(|x|^2 + 1e-7), x = (e^{L D} - 1) A
 *             (no factor 2; modes with Re A > 0 use the reference's shifted form).
 *
 * \param dt  (H, 1) tied or (H, N2) untied step sizes, > 0.
 * \param A   (H, N2) diagonal state matrix.   \param B (H, N2).   \param C (channels, H, N2).
 * \param K   (channels, H, L) output, L >= 1, any strides; must not overlap the inputs.
 * \throws ssmkit::error on mismatched shapes, L = 0, dt <= 0 or not finite, a null view, an
 *         overlap, or a negative bandlimit.
 *
 * Numerics. dt A is formed in double from the inputs (the point: the exponent, not z, is
 * the input), and so are the per-chunk anchors, which are re-anchored with an exact exp every
 * 64 chunks. Each term then carries about 5 roundings of T, independent of l, so
 * |K - K_exact| <= ((5 + N2) eps_T + l |D| eps_double) S_l, S_l = sum_n |C B dB| |z_n|^l; the second
 * term is double's own limit on the rounded exponent l D. In T the error does not grow with L.
 * Measured in f32 against a long double reference on the same (float) inputs: worst row error
 * 2.4e-7 relative to the row's max at L = 16384, N2 = 32 (tests/test_s4d.cpp checks <= 1e-6).
 */
template <class T, class Arch = default_arch>
void s4d_kernel(const_view<T, 2> dt, const_view<std::complex<T>, 2> A, const_view<std::complex<T>, 2> B,
                const_view<std::complex<T>, 3> C, tensor_view<T, 3> K, const s4d_kernel_options& options = {}) {
  constexpr const char* fn = "s4d_kernel";
  const bool tied = detail::check_s4d_params<T>(fn, dt, A, B);
  const std::size_t H = A.extent(0), N2 = A.extent(1);
  const auto [channels_checked, length_checked] = detail::check_kernel_c_and_k<T>(fn, C, K, H, N2);
  const std::size_t channels = channels_checked, L = length_checked;  // plain variables: lambdas capture them
  detail::check_no_overlap(fn, "K", K, "dt", dt);
  detail::check_no_overlap(fn, "K", K, "A", A);
  detail::check_no_overlap(fn, "K", K, "B", B);
  detail::check_no_overlap(fn, "K", K, "C", C);
  detail::require(!options.bandlimit || *options.bandlimit >= 0, fn, "bandlimit must be >= 0, got ",
                  options.bandlimit ? *options.bandlimit : 0.0);

  using cd = std::complex<double>;
  const double two_pi = 6.283185307179586476925;
  // Blocks of channels h over the threads, so that each block allocates its workspace once.
  const std::size_t blocks = std::min<std::size_t>(H, static_cast<std::size_t>(resolved_threads(options.parallel.num_threads)));
  parallel_for(std::size_t{0}, blocks, [&](std::size_t block) {
    std::vector<cd> log_z(N2), z(N2), coef(N2), W(N2), anchor(N2);
    std::vector<double> shift(N2);
    detail::vandermonde_plan<T, Arch> plan;
    for (std::size_t h = H * block / blocks; h < H * (block + 1) / blocks; ++h) {
      for (std::size_t n = 0; n < N2; ++n) {
        const double dtn = static_cast<double>(dt(h, tied ? 0 : n));
        const cd a(A(h, n));
        const auto m = discretize_mode(options.method, dtn, a, L);
        log_z[n] = m.log_dA;
        z[n] = m.dA;
        shift[n] = m.shift;
        coef[n] = m.gain * m.dB * cd(B(h, n));
        if (options.bandlimit && dtn * std::abs(a.imag()) / two_pi >= *options.bandlimit * 0.5) coef[n] = 0;
      }
      if (!options.exact) plan.build(log_z.data(), z.data(), shift.data(), N2);
      for (std::size_t c = 0; c < channels; ++c) {
        for (std::size_t n = 0; n < N2; ++n) W[n] = coef[n] * cd(C(c, h, n));
        T* row = &K(c, h, 0);
        const std::ptrdiff_t stride = K.stride(2);
        if (options.exact) {
          for (std::size_t l = 0; l < L; ++l) {
            double sum = 0;
            for (std::size_t n = 0; n < N2; ++n) {
              sum += (W[n] * std::exp((static_cast<double>(l) - shift[n]) * log_z[n])).real();
            }
            row[static_cast<std::ptrdiff_t>(l) * stride] = static_cast<T>(sum);
          }
        } else {
          detail::vandermonde_row<T, Arch>(plan, W.data(), L, row, stride, anchor.data());
        }
      }
    }
  }, options.parallel);
}

/**
 * The contribution of an initial state to the outputs (the reference's `forward(state=s)`):
 *   K_state[b, c, h, l] = 2 Re sum_n C[c,h,n] dA[h,n]^(l+1) s[b,h,n],
 * so that the output of a sequence u starting from state s is conv(u, K) + K_state. `state` is the
 * state before the first input, as s4d_recurrence takes it. zoh and bilinear only.
 *
 * \param state (batch, H, N2); \param K_state (batch, channels, H, L), L >= 1.
 * \throws ssmkit::error as s4d_kernel, and for method dss.
 * Numerics: the Vandermonde product of s4d_kernel, with the same error bound.
 */
template <class T, class Arch = default_arch>
void s4d_state_kernel(const_view<T, 2> dt, const_view<std::complex<T>, 2> A, const_view<std::complex<T>, 3> C,
                      const_view<std::complex<T>, 3> state, tensor_view<T, 4> K_state,
                      const s4d_kernel_options& options = {}) {
  constexpr const char* fn = "s4d_state_kernel";
  detail::require(options.method != discretization::dss, fn,
                  "the dss discretization has no state form (use zoh or bilinear)");
  const bool tied = detail::check_s4d_params<T>(fn, dt, A, A);
  const std::size_t H = A.extent(0), N2 = A.extent(1);
  const std::size_t channels = C.extent(0), batch = state.extent(0), L = K_state.extent(3);
  detail::check_shape(fn, "C", C, {channels, H, N2});
  detail::check_shape(fn, "state", state, {batch, H, N2});
  detail::require(L >= 1, fn, "L must be >= 1, got K_state of shape ", detail::format_shape(K_state.extents()));
  detail::check_shape(fn, "K_state", K_state, {batch, channels, H, L});
  detail::check_data(fn, "C", C);
  detail::check_data(fn, "state", state);
  detail::check_data(fn, "K_state", K_state);
  detail::check_no_overlap(fn, "K_state", K_state, "state", state);
  detail::check_no_overlap(fn, "K_state", K_state, "C", C);
  detail::check_no_overlap(fn, "K_state", K_state, "dt", dt);
  detail::check_no_overlap(fn, "K_state", K_state, "A", A);
  using cd = std::complex<double>;
  parallel_for(std::size_t{0}, H, [&](std::size_t h) {
    std::vector<cd> log_z(N2), z(N2), dA(N2), W(N2), anchor(N2);
    std::vector<double> shift(N2, 0.0);
    for (std::size_t n = 0; n < N2; ++n) {
      const auto m = discretize_mode(options.method, static_cast<double>(dt(h, tied ? 0 : n)), cd(A(h, n)), L);
      log_z[n] = m.log_dA;
      z[n] = m.dA;
      dA[n] = m.gain * m.dA;
    }
    detail::vandermonde_plan<T, Arch> plan;
    plan.build(log_z.data(), z.data(), shift.data(), N2);
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t c = 0; c < channels; ++c) {
        for (std::size_t n = 0; n < N2; ++n) W[n] = dA[n] * cd(C(c, h, n)) * cd(state(b, h, n));
        detail::vandermonde_row<T, Arch>(plan, W.data(), L, &K_state(b, c, h, 0), K_state.stride(3), anchor.data());
      }
    }
  }, options.parallel);
}

/**
 * The recurrent-step parameters of an S4D layer: dA[h,n] and dB[h,n] (which includes B) such that
 * x_t = dA x_{t-1} + dB u_t and y_t = 2 Re sum_n C x_t reproduce the zoh or bilinear kernel.
 *
 * \param dt (H, 1) or (H, N2); \param A, B (H, N2); \param dA, dB (H, N2) outputs.
 * \throws ssmkit::error on mismatched shapes, dt <= 0, method dss (no recurrent form), overlaps.
 */
template <class T>
void s4d_step_setup(const_view<T, 2> dt, const_view<std::complex<T>, 2> A, const_view<std::complex<T>, 2> B,
                    tensor_view<std::complex<T>, 2> dA, tensor_view<std::complex<T>, 2> dB,
                    discretization method = discretization::zoh) {
  constexpr const char* fn = "s4d_step_setup";
  const bool tied = detail::check_s4d_params<T>(fn, dt, A, B);
  detail::require(method != discretization::dss, fn, "the dss discretization has no recurrent form (use zoh or bilinear)");
  const std::size_t H = A.extent(0), N2 = A.extent(1);
  detail::check_shape(fn, "dA", dA, {H, N2});
  detail::check_shape(fn, "dB", dB, {H, N2});
  detail::check_data(fn, "dA", dA);
  detail::check_data(fn, "dB", dB);
  detail::check_no_overlap(fn, "dA", dA, "dB", dB);
  for (std::size_t h = 0; h < H; ++h) {
    for (std::size_t n = 0; n < N2; ++n) {
      const auto m = discretize_step(method, static_cast<double>(dt(h, tied ? 0 : n)), std::complex<double>(A(h, n)));
      dA(h, n) = std::complex<T>(m.dA);
      dB(h, n) = std::complex<T>(m.dB * std::complex<double>(B(h, n)));
    }
  }
}

/**
 * Runs the S4D recurrence over a sequence: for t = 0..L-1,
 *   x_t = dA x_{t-1} + dB u_t,   y[b, c, h, t] = 2 Re sum_n C[c,h,n] x_t[n]   (the updated state; no D).
 * `state` (batch, H, N2) holds x_{-1} on entry and x_{L-1} on return. With a zero initial state,
 * y equals the causal convolution of u with the kernel of s4d_kernel (same dt, A, B, C, method).
 *
 * \param dA, dB (H, N2) from s4d_step_setup; \param C (channels, H, N2); \param u (batch, H, L);
 * \param y (batch, channels, H, L). L may be 0 (nothing happens). Allocates nothing.
 * \throws ssmkit::error on mismatched shapes, null views or overlapping outputs.
 * Numerics: each step rounds once per multiply-add in T; the state's error grows like
 * t eps_T sum |dB u| for |dA| < 1.
 */
template <class T>
void s4d_recurrence(const_view<std::complex<T>, 2> dA, const_view<std::complex<T>, 2> dB,
                    const_view<std::complex<T>, 3> C, const_view<T, 3> u, tensor_view<std::complex<T>, 3> state,
                    tensor_view<T, 4> y, const parallel_options& options = {}) {
  constexpr const char* fn = "s4d_recurrence";
  const std::size_t H = dA.extent(0), N2 = dA.extent(1);
  const std::size_t channels = C.extent(0), batch = u.extent(0), L = u.extent(2);
  detail::check_shape(fn, "dB", dB, {H, N2});
  detail::check_shape(fn, "C", C, {channels, H, N2});
  detail::check_shape(fn, "u", u, {batch, H, L});
  detail::check_shape(fn, "state", state, {batch, H, N2});
  detail::check_shape(fn, "y", y, {batch, channels, H, L});
  detail::check_data(fn, "dA", dA);
  detail::check_data(fn, "dB", dB);
  detail::check_data(fn, "C", C);
  detail::check_data(fn, "u", u);
  detail::check_data(fn, "state", state);
  detail::check_data(fn, "y", y);
  detail::check_no_overlap(fn, "state", state, "y", y);
  detail::check_no_overlap(fn, "state", state, "u", u);
  detail::check_no_overlap(fn, "y", y, "u", u);
  detail::check_no_overlap(fn, "state", state, "C", C);
  parallel_for(std::size_t{0}, batch * H, [&](std::size_t bh) {
    const std::size_t b = bh / H, h = bh % H;
    for (std::size_t t = 0; t < L; ++t) {
      const T ut = u(b, h, t);
      for (std::size_t n = 0; n < N2; ++n) state(b, h, n) = dA(h, n) * state(b, h, n) + dB(h, n) * ut;
      for (std::size_t c = 0; c < channels; ++c) {
        T sum = 0;
        for (std::size_t n = 0; n < N2; ++n) {
          const std::complex<T> cn = C(c, h, n), x = state(b, h, n);
          sum += cn.real() * x.real() - cn.imag() * x.imag();
        }
        y(b, c, h, t) = T(2) * sum;
      }
    }
  }, options);
}

}  // namespace ssmkit
