#pragma once
/// \file s4d_layer.hpp
/// An S4D layer (the reference's S4 block core with a diagonal kernel, FFTConv without its
/// activation and output projection; ../shared/docs/reference-semantics.md sections 2-5) with two
/// modes that compute the same thing:
///
///   convolution: y[b, t, c*H + h] = sum_{s<=t} K[c, h, s] u[b, t - s, h] + D[c, h] u[b, t, h]
///                with K = s4d_kernel(dt, A, B, C) of length L, through a cached fft_conv_plan;
///   recurrent:   x_t[b, h, n] = dA[h, n] x_{t-1}[b, h, n] + dB[h, n] u_t[b, h]
///                y_t[b, c*H + h] = 2 Re sum_n C[c, h, n] x_t[b, h, n] + D[c, h] u_t[b, h]
///                with (dA, dB) = s4d_step_setup(dt, A, B), one token per step() call.
///
/// From a zero state, step() over tokens t = 0..L-1 reproduces forward() token by token (up to
/// rounding; tests/test_s4d_layer.cpp states the tolerance). The layer is immutable after
/// construction: forward and step are const and thread-safe with one workspace / state per thread.
/// The recurrent mode needs zoh or bilinear (dss has no recurrent form).

#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/backend.hpp>
#include <ssmkit/discretize.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/s4d.hpp>
#include <ssmkit/s4d_init.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// Options of s4d_layer.
struct s4d_layer_options {
  discretization method = discretization::zoh;  ///< zoh or bilinear (dss is rejected: no step mode)
  bool exact_kernel = false;                    ///< s4d_kernel_options::exact
  parallel_options parallel{};                  ///< for the kernel generation at construction
};

/// Options of s4d_layer::random.
struct s4d_layer_init {
  s4d::diag_init init = s4d::diag_init::lin;  ///< S4D-Lin by default; legs for S4D-LegS
  double dt_min = 1e-3;
  double dt_max = 1e-1;
  std::uint64_t seed = 0;  ///< seeds A/B (when random), dt, C and D
};

/// The recurrent state of an s4d_layer for a batch: (batch, H, N2) complex, allocated once.
template <class T>
class s4d_layer_state {
 public:
  s4d_layer_state() = default;
  s4d_layer_state(std::size_t batch, std::size_t H, std::size_t N2)
      : x_(batch * H * N2), batch_(batch), H_(H), N2_(N2) {}

  /// Back to the zero state (the start of a sequence).
  void reset() noexcept {
    for (auto& v : x_) v = std::complex<T>(0);
  }
  std::size_t batch() const noexcept { return batch_; }
  tensor_view<std::complex<T>, 3> view() noexcept { return {x_.data(), {batch_, H_, N2_}}; }
  tensor_view<const std::complex<T>, 3> view() const noexcept { return {x_.data(), {batch_, H_, N2_}}; }

 private:
  std::vector<std::complex<T>> x_;
  std::size_t batch_ = 0, H_ = 0, N2_ = 0;
};

/**
 * An S4D layer of H channels, N2 = N/2 complex modes and C kernel channels (output width C*H),
 * for sequences of length L in convolution mode (any length in recurrent mode).
 */
template <class T, class Arch = default_arch>
class s4d_layer {
  static_assert(std::is_floating_point_v<T>, "s4d_layer: T must be float or double");

 public:
  /**
   * \param dt (H, 1) or (H, N2) step sizes, > 0;  \param A, B (H, N2);  \param C (channels, H, N2);
   * \param D (channels, H) skip, or a default-constructed view for none;  \param L conv length >= 1.
   * \throws ssmkit::error ("s4d_layer: ...") on mismatched shapes, dt <= 0 or not finite, L = 0,
   *         null views, or method dss.
   */
  s4d_layer(const_view<T, 2> dt, const_view<std::complex<T>, 2> A, const_view<std::complex<T>, 2> B,
            const_view<std::complex<T>, 3> C, const_view<T, 2> D, std::size_t L,
            const s4d_layer_options& options = {})
      : H_(A.extent(0)),
        N2_(A.extent(1)),
        channels_(C.extent(0)),
        L_(L),
        options_(options),
        plan_("s4d_layer", make_kernel(dt, A, B, C, D, L, options, kernel_), L, fft_conv_options{}) {
    dA_.resize(H_ * N2_);
    dB_.resize(H_ * N2_);
    s4d_step_setup<T>(dt, A, B, make_view(dA_, H_, N2_), make_view(dB_, H_, N2_), options.method);
    C_.resize(channels_ * H_ * N2_);
    for (std::size_t c = 0; c < channels_; ++c)
      for (std::size_t h = 0; h < H_; ++h)
        for (std::size_t n = 0; n < N2_; ++n) C_[(c * H_ + h) * N2_ + n] = C(c, h, n);
    D_.assign(channels_ * H_, T(0));
    has_D_ = D.data() != nullptr || !D.empty();
    if (has_D_) {
      for (std::size_t c = 0; c < channels_; ++c)
        for (std::size_t h = 0; h < H_; ++h) D_[c * H_ + h] = D(c, h);
    }
  }

  /**
   * A layer from an S4D initialisation: (A, B) = s4d::diag(init.init, N, H) (B constant, or legs
   * for LegS), dt log-uniform in [dt_min, dt_max] (tied), C complex normal with variance 1/2 per
   * part, D standard normal, all from init.seed. N even >= 2 (>= 4 for legs).
   */
  static s4d_layer random(std::size_t H, std::size_t N, std::size_t channels, std::size_t L,
                          const s4d_layer_init& init = {}, const s4d_layer_options& options = {}) {
    detail::require(channels >= 1, "s4d_layer::random", "channels must be >= 1, got ", channels);
    const auto Hi = static_cast<Eigen::Index>(H), Ni = static_cast<Eigen::Index>(N);
    s4d::diag_init_options diag_options;
    diag_options.seed = init.seed;
    const s4d::diag_params p = s4d::diag(init.init, Ni, Hi, diag_options);
    s4d::dt_init_options dt_options;
    dt_options.dt_min = init.dt_min;
    dt_options.dt_max = init.dt_max;
    dt_options.seed = init.seed + 1;
    const Eigen::MatrixXd log_dt = s4d::init_log_dt(Hi, Ni / 2, dt_options);
    const std::size_t N2 = N / 2;
    std::vector<T> dt(H), D(channels * H);
    std::vector<std::complex<T>> A(H * N2), B(H * N2), C(channels * H * N2);
    for (std::size_t h = 0; h < H; ++h) {
      dt[h] = static_cast<T>(std::exp(log_dt(static_cast<Eigen::Index>(h), 0)));
      for (std::size_t n = 0; n < N2; ++n) {
        A[h * N2 + n] = std::complex<T>(p.A(static_cast<Eigen::Index>(h), static_cast<Eigen::Index>(n)));
        B[h * N2 + n] = std::complex<T>(p.B(static_cast<Eigen::Index>(h), static_cast<Eigen::Index>(n)));
      }
    }
    std::mt19937_64 gen(init.seed + 2);
    const double half = std::sqrt(0.5);
    for (auto& c : C) {
      const double re = s4d::detail::standard_normal(gen), im = s4d::detail::standard_normal(gen);
      c = std::complex<T>(static_cast<T>(half * re), static_cast<T>(half * im));
    }
    for (auto& d : D) d = static_cast<T>(s4d::detail::standard_normal(gen));
    return s4d_layer(make_view(std::as_const(dt), H, std::size_t{1}), make_view(std::as_const(A), H, N2),
                     make_view(std::as_const(B), H, N2), make_view(std::as_const(C), channels, H, N2),
                     make_view(std::as_const(D), channels, H), L, options);
  }

  std::size_t width() const noexcept { return H_; }            ///< H
  std::size_t modes() const noexcept { return N2_; }           ///< N2 = N/2
  std::size_t channels() const noexcept { return channels_; }  ///< C
  std::size_t length() const noexcept { return L_; }           ///< L of the conv mode
  const s4d_layer_options& options() const noexcept { return options_; }

  /// The kernel K (C, H, L) of the conv mode.
  tensor_view<const T, 3> kernel() const noexcept { return {kernel_.data(), {channels_, H_, L_}}; }
  /// The step parameters dA, dB (H, N2), output matrix C (C, H, N2) and skip D (C, H; zeros if none).
  tensor_view<const std::complex<T>, 2> dA() const noexcept { return {dA_.data(), {H_, N2_}}; }
  tensor_view<const std::complex<T>, 2> dB() const noexcept { return {dB_.data(), {H_, N2_}}; }
  tensor_view<const std::complex<T>, 3> C() const noexcept { return {C_.data(), {channels_, H_, N2_}}; }
  tensor_view<const T, 2> D() const noexcept { return {D_.data(), {channels_, H_}}; }
  const fft_conv_plan<T, Arch>& plan() const noexcept { return plan_; }

  /// Convolution mode: y (B, L, C*H) from u (B, L, H), any strides, y = K * u + D u (causal).
  /// \throws ssmkit::error ("s4d_layer: ...") as fft_conv_plan::forward: shape mismatch, null view,
  /// y overlapping u.
  void forward(const_view<T, 3> u, tensor_view<T, 3> y, fft_conv_workspace<T>& workspace,
               const parallel_options& parallel = {}) const {
    const tensor_view<const T, 2> D = has_D_ ? tensor_view<const T, 2>(D_.data(), {channels_, H_}) : tensor_view<const T, 2>{};
    plan_.forward(u, y, D, workspace, parallel);
  }

  /// A zero state for `batch` sequences (the only allocation of the recurrent mode).
  s4d_layer_state<T> make_state(std::size_t batch) const { return s4d_layer_state<T>(batch, H_, N2_); }

  /**
   * Recurrent mode, one token: u_t (batch, H) -> y_t (batch, C*H), advancing `state` (whose batch
   * sets batch). Allocates nothing.
   * \throws ssmkit::error ("s4d_layer::step: ...") on a shape mismatch, null view, or y_t
   *         overlapping u_t.
   */
  void step(const_view<T, 2> u_t, tensor_view<T, 2> y_t, s4d_layer_state<T>& state) const {
    constexpr const char* fn = "s4d_layer::step";
    const std::size_t batch = state.batch();
    const tensor_view<std::complex<T>, 3> x = state.view();
    detail::check_shape(fn, "state", x, {batch, H_, N2_});
    detail::check_shape(fn, "u_t", u_t, {batch, H_});
    detail::check_shape(fn, "y_t", y_t, {batch, channels_ * H_});
    detail::check_data(fn, "u_t", u_t);
    detail::check_data(fn, "y_t", y_t);
    detail::check_no_overlap(fn, "y_t", y_t, "u_t", u_t);
    // Real arithmetic on the interleaved (re, im) pairs: std::complex's operator* goes through the
    // C99 Annex G NaN/inf recovery (__mulsc3) unless built with -ffast-math. The state is owned by
    // s4d_layer_state and dense, so each (b, h) row is 2 N2 consecutive T.
    const std::size_t N2 = N2_;
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t h = 0; h < H_; ++h) {
        const T u = u_t(b, h);
        const T* dA = reinterpret_cast<const T*>(dA_.data() + h * N2);
        const T* dB = reinterpret_cast<const T*>(dB_.data() + h * N2);
        T* xs = reinterpret_cast<T*>(&x(b, h, 0));
        for (std::size_t n = 0; n < N2; ++n) {
          const T xr = xs[2 * n], xi = xs[2 * n + 1];
          const T ar = dA[2 * n], ai = dA[2 * n + 1];
          xs[2 * n] = ar * xr - ai * xi + dB[2 * n] * u;
          xs[2 * n + 1] = ar * xi + ai * xr + dB[2 * n + 1] * u;
        }
        for (std::size_t c = 0; c < channels_; ++c) {
          const T* Cc = reinterpret_cast<const T*>(C_.data() + (c * H_ + h) * N2);
          T sum = 0;
          for (std::size_t n = 0; n < N2; ++n) sum += Cc[2 * n] * xs[2 * n] - Cc[2 * n + 1] * xs[2 * n + 1];
          y_t(b, c * H_ + h) = T(2) * sum + D_[c * H_ + h] * u;
        }
      }
    }
  }

 private:
  // Validates the parameters and fills `storage` with the kernel (C, H, L); returns its view.
  static tensor_view<const T, 3> make_kernel(const_view<T, 2> dt, const_view<std::complex<T>, 2> A,
                                             const_view<std::complex<T>, 2> B, const_view<std::complex<T>, 3> C,
                                             const_view<T, 2> D, std::size_t L, const s4d_layer_options& options,
                                             std::vector<T>& storage) {
    constexpr const char* fn = "s4d_layer";
    detail::check_s4d_params<T>(fn, dt, A, B);
    const std::size_t H = A.extent(0), N2 = A.extent(1), channels = C.extent(0);
    detail::require(channels >= 1, fn, "C must have at least one channel, got shape ", detail::format_shape(C.extents()));
    detail::check_shape(fn, "C", C, {channels, H, N2});
    detail::check_data(fn, "C", C);
    if (D.data() != nullptr || !D.empty()) {
      detail::check_shape(fn, "D", D, {channels, H});
      detail::check_data(fn, "D", D);
    }
    detail::require(L >= 1, fn, "L must be >= 1, got 0");
    detail::require(options.method != discretization::dss, fn,
                    "the dss discretization has no recurrent form (use zoh or bilinear)");
    storage.assign(channels * H * L, T(0));
    s4d_kernel_options kernel_options;
    kernel_options.method = options.method;
    kernel_options.exact = options.exact_kernel;
    kernel_options.parallel = options.parallel;
    const tensor_view<T, 3> K(storage.data(), {channels, H, L});
    s4d_kernel<T, Arch>(dt, A, B, C, K, kernel_options);
    return K;
  }

  std::size_t H_, N2_, channels_, L_;
  s4d_layer_options options_;
  std::vector<T> kernel_;  // declared before plan_: filled by make_kernel in plan_'s initialiser
  fft_conv_plan<T, Arch> plan_;
  std::vector<std::complex<T>> dA_, dB_, C_;
  std::vector<T> D_;
  bool has_D_ = false;
};

}  // namespace ssmkit
