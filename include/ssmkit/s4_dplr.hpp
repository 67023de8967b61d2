#pragma once
/// \file s4_dplr.hpp
/// The S4 (diagonal plus low rank, DPLR) convolution kernel and its recurrent form, as the
/// reference's SSMKernelDPLR with the bilinear discretisation (state-spaces/s4,
/// src/models/sequence/kernels/ssm.py; ../shared/docs/reference-semantics.md section 4).
///
/// Shapes: H channels (independent SSMs), N2 complex modes (the real state has N = 2 N2 dimensions),
/// rank r of the low-rank term, L the kernel length, `channels` output channels per SSM (C's first
/// dimension), batch B. Complex arrays are std::complex<T> views (interleaved re, im).
///
/// The continuous system of channel h is conjugate-expanded to N states:
///   A = diag(Lambda, conj Lambda) - sum_r p^_r p^_r^*,  p^_r = (P_r, conj P_r),  B^ = (B, conj B),  C^ = (C, conj C),
/// discretised by the bilinear transform dA = (I - dt/2 A)^-1 (I + dt/2 A), dB = dt (I - dt/2 A)^-1 B^, and
///   K[c, h, l] = C^^T dA^l dB   (plain transpose; the value is real).
///
/// Internals: detail/s4_cauchy.hpp (nodes, Cauchy + Woodbury, inverse real DFT).

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstddef>
#include <vector>

#include <Eigen/Core>
#include <Eigen/LU>

#include <ssmkit/detail/s4_cauchy.hpp>
#include <ssmkit/discretize.hpp>
#include <ssmkit/s4d.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// What the C argument of the DPLR functions holds.
enum class dplr_c_input {
  original,  ///< C itself; C~ = C (I - dA^L) is formed at setup
  tilde,     ///< C~ = C (I - dA^L) for the kernel length L, the parameter the reference stores after its first call
};

/// How dA^L is applied when C~ is formed from C (setup time, double, dense dA).
enum class dplr_power_method {
  squaring,   ///< dA^L by repeated squaring of the dense N x N matrix, O(N^3 log L) (the reference's `power`)
  iteration,  ///< L products (dA^T)^l C, O(L N^2): no matrix powers, for short L
};

/// Options of s4_dplr_kernel.
struct s4_dplr_kernel_options {
  dplr_c_input c_input = dplr_c_input::original;
  dplr_power_method power = dplr_power_method::squaring;
  /// Channels h are split over parallel_for.
  parallel_options parallel{};
};

namespace detail {

/// Validates dt (H, 1), Lambda (H, N2), P (rank, H, N2) and B (H, N2) of a DPLR function; returns the rank.
template <class T>
std::size_t check_dplr_params(const char* fn, const_view<T, 2> dt, const_view<std::complex<T>, 2> Lambda,
                              const_view<std::complex<T>, 3> P, const_view<std::complex<T>, 2> B) {
  const std::size_t H = Lambda.extent(0), N2 = Lambda.extent(1), rank = P.extent(0);
  require(H >= 1 && N2 >= 1, fn, "Lambda must have shape (H, N2) with H, N2 >= 1, got ",
          format_shape(Lambda.extents()));
  check_shape(fn, "dt", dt, {H, 1});
  if (P.extent(1) != H || P.extent(2) != N2) {
    throw_error(fn, "P has shape ", format_shape(P.extents()), ", expected (rank, ", H, ", ", N2,
                ") (the rank is its first extent)");
  }
  check_shape(fn, "B", B, {H, N2});
  check_data(fn, "dt", dt);
  check_data(fn, "Lambda", Lambda);
  check_data(fn, "P", P);
  check_data(fn, "B", B);
  for (std::size_t h = 0; h < H; ++h) {
    const T v = dt(h, 0);
    require(v > T(0) && std::isfinite(v), fn, "dt must be positive and finite, got ", v, " at (", h, ", 0)");
  }
  return rank;
}

/// The dense bilinear system of channel h (double, conjugate-expanded), from T views.
template <class T>
dense_discrete_system dplr_dense_system(std::size_t h, const_view<T, 2> dt, const_view<std::complex<T>, 2> Lambda,
                                        const_view<std::complex<T>, 3> P, const_view<std::complex<T>, 2> B) {
  const auto N2 = static_cast<Eigen::Index>(Lambda.extent(1)), rank = static_cast<Eigen::Index>(P.extent(0));
  Eigen::VectorXcd lambda(N2), b(N2);
  Eigen::MatrixXcd p(rank, N2);
  for (Eigen::Index n = 0; n < N2; ++n) {
    lambda(n) = std::complex<double>(Lambda(h, n));
    b(n) = std::complex<double>(B(h, n));
    for (Eigen::Index r = 0; r < rank; ++r) p(r, n) = std::complex<double>(P(r, h, n));
  }
  return discretize_dplr_bilinear(static_cast<double>(dt(h, 0)), lambda, p, b);
}

/// (dA^T)^L x for the dense dA, by `method`.
inline Eigen::VectorXcd dplr_transposed_power_times(const dense_discrete_system& sys, const Eigen::VectorXcd& x,
                                                    std::size_t L, dplr_power_method method) {
  if (method == dplr_power_method::iteration) {
    Eigen::VectorXcd y = x;
    for (std::size_t l = 0; l < L; ++l) y = sys.dA.transpose() * y;
    return y;
  }
  const Eigen::Index N = sys.dA.rows();
  Eigen::MatrixXcd power = Eigen::MatrixXcd::Identity(N, N), base = sys.dA;
  for (std::size_t e = L; e > 0; e >>= 1) {
    if (e & 1U) power = power * base;
    if (e > 1) base = base * base;
  }
  return power.transpose() * x;
}

/// C~ (N2) of one channel: the first half of (I - dA^L)^T (C, conj C) (the reference's `_setup_C`).
inline Eigen::VectorXcd dplr_c_tilde_of(const dense_discrete_system& sys, const Eigen::VectorXcd& C, std::size_t L,
                                        dplr_power_method method) {
  const Eigen::Index N2 = C.size();
  Eigen::VectorXcd full(2 * N2);
  full << C, C.conjugate();
  return (full - dplr_transposed_power_times(sys, full, L, method)).head(N2);
}

}  // namespace detail

/**
 * The S4 DPLR convolution kernel K (channels, H, L), K[c,h,l] = C^^T dA^l dB (see the file comment),
 * computed as the reference does:
 *   1. C~ = first half of (I - dA^L)^T C^ (unless options.c_input == tilde: C already holds C~);
 *   2. at the nodes omega_k = exp(-2 pi i k/L), k = 0..L/2, z_k = 2 (1 - omega_k)/(1 + omega_k), the Cauchy
 *      sums r_ab(z) = sum_n dt a_n b_n/(z - dt Lambda_n) + conj(dt a_n b_n)/(z - conj(dt Lambda_n)) for
 *      a in {C~, Q = conj P}, b in {B, P};
 *   3. the Woodbury correction k^ = r_CB - r_CP (I + r_QP)^-1 r_QB (rank 1, 2 and r);
 *   4. k^ <- k^ 2/(1 + omega), and K = irfft(k^, L).
 * Because omega^L = 1, the generating function of the first L terms with C~ equals that of the
 * infinite kernel with C, so the inverse DFT returns exactly K_0..K_{L-1} (no aliasing).
 *
 * \param dt     (H, 1) step sizes, > 0 and finite (the DPLR kernel ties dt per channel).
 * \param Lambda (H, N2) diagonal part.   \param P (rank, H, N2) low-rank part; rank may be 0.
 * \param B      (H, N2).                 \param C (channels, H, N2): C or C~ (options.c_input).
 * \param K      (channels, H, L) output, L >= 1, any strides; must not overlap the inputs.
 * \throws ssmkit::error on mismatched shapes (the rank is P's first extent; P's other extents must be
 *         (H, N2)), L = 0, no channel, dt <= 0 or not finite, null views, an overlap.
 *
 * Numerics. Everything between the inputs and the output (the dense C~ setup, the nodes, the Cauchy
 * sums, the Woodbury solve and the inverse FFT) runs in double whatever T is; only the inputs and
 * K are in T. The Cauchy sum costs O(L N2 (channels + r)(1 + r)) per channel h; the setup of C~ is
 * O(N^3 log L) (squaring) or O(L N^2) (iteration); the inverse FFT O(L log L) (Bluestein's chirp-z with
 * ssmkit's FFT when L has a prime factor above 5). The error is that of a backward-stable evaluation
 * of the rational function at the nodes: |K - K_exact| <~ c eps_double (N2 + log2 L) kappa max|K|,
 * with kappa the conditioning of (z - dt A) (mild for stable systems: tests/test_s4_dplr.cpp measures
 * at most 3.9e-14 relative to max|K| against the dense Krylov kernel for random rank 1-3 systems and
 * 6.7e-15 for LegS, N <= 64, L <= 1024). In float the result is the double result rounded once (half
 * an ulp), plus the effect of rounding the inputs to float (measured 5e-7 relative).
 */
template <class T>
void s4_dplr_kernel(const_view<T, 2> dt, const_view<std::complex<T>, 2> Lambda, const_view<std::complex<T>, 3> P,
                    const_view<std::complex<T>, 2> B, const_view<std::complex<T>, 3> C, tensor_view<T, 3> K,
                    const s4_dplr_kernel_options& options = {}) {
  constexpr const char* fn = "s4_dplr_kernel";
  const std::size_t rank = detail::check_dplr_params<T>(fn, dt, Lambda, P, B);
  const std::size_t H = Lambda.extent(0), N2 = Lambda.extent(1);
  const auto [channels_checked, length_checked] = detail::check_kernel_c_and_k<T>(fn, C, K, H, N2);
  const std::size_t channels = channels_checked, L = length_checked;  // plain variables: lambdas capture them
  detail::check_no_overlap(fn, "K", K, "dt", dt);
  detail::check_no_overlap(fn, "K", K, "Lambda", Lambda);
  detail::check_no_overlap(fn, "K", K, "P", P);
  detail::check_no_overlap(fn, "K", K, "B", B);
  detail::check_no_overlap(fn, "K", K, "C", C);

  using cd = std::complex<double>;
  const detail::dplr_nodes nodes(L);
  const detail::inverse_real_dft irdft(L);
  const std::size_t K_nodes = nodes.z.size();
  const std::size_t blocks =
      std::min<std::size_t>(H, static_cast<std::size_t>(resolved_threads(options.parallel.num_threads)));
  parallel_for(
      std::size_t{0}, blocks,
      [&](std::size_t block) {
        std::vector<cd> w(N2), left((channels + rank) * N2), right((1 + rank) * N2), spectrum(channels * K_nodes);
        detail::dplr_cauchy_workspace cauchy_ws;
        detail::inverse_real_dft::workspace fft_ws;
        irdft.prepare(fft_ws);
        for (std::size_t h = H * block / blocks; h < H * (block + 1) / blocks; ++h) {
          const double dth = static_cast<double>(dt(h, 0));
          for (std::size_t n = 0; n < N2; ++n) {
            w[n] = dth * cd(Lambda(h, n));
            right[n] = cd(B(h, n));
            for (std::size_t r = 0; r < rank; ++r) {
              right[(1 + r) * N2 + n] = cd(P(r, h, n));
              left[(channels + r) * N2 + n] = std::conj(cd(P(r, h, n)));
            }
            for (std::size_t c = 0; c < channels; ++c) left[c * N2 + n] = cd(C(c, h, n));
          }
          if (options.c_input == dplr_c_input::original) {
            const auto sys = detail::dplr_dense_system<T>(h, dt, Lambda, P, B);
            Eigen::VectorXcd c_row(static_cast<Eigen::Index>(N2));
            for (std::size_t c = 0; c < channels; ++c) {
              for (std::size_t n = 0; n < N2; ++n) c_row(static_cast<Eigen::Index>(n)) = left[c * N2 + n];
              const Eigen::VectorXcd tilde = detail::dplr_c_tilde_of(sys, c_row, L, options.power);
              for (std::size_t n = 0; n < N2; ++n) left[c * N2 + n] = tilde(static_cast<Eigen::Index>(n));
            }
          }
          detail::dplr_cauchy_woodbury(nodes, w, left, right, channels, rank, dth, spectrum.data(), cauchy_ws);
          for (std::size_t c = 0; c < channels; ++c) {
            irdft.apply(spectrum.data() + c * K_nodes, &K(c, h, 0), K.stride(2), fft_ws);
          }
        }
      },
      options.parallel);
}

/**
 * C~ = C (I - dA^L) for kernel length L: C_tilde[c,h,:] = first N2 entries of (I - dA^L)^T (C, conj C),
 * the parameter the reference stores after its first kernel call (the golden cases' `C_tilde`).
 *
 * \param dt (H, 1); \param Lambda (H, N2); \param P (rank, H, N2); \param B (H, N2) (validated, unused);
 * \param C, C_tilde (channels, H, N2); L >= 1.
 * \throws ssmkit::error as s4_dplr_kernel.
 * Numerics: dense double; (I - dA^L) has norm <= 1 + ||dA^L||, so the error is a few eps ||C||.
 */
template <class T>
void s4_dplr_c_tilde(const_view<T, 2> dt, const_view<std::complex<T>, 2> Lambda, const_view<std::complex<T>, 3> P,
                     const_view<std::complex<T>, 2> B, const_view<std::complex<T>, 3> C, std::size_t L,
                     tensor_view<std::complex<T>, 3> C_tilde, dplr_power_method method = dplr_power_method::squaring) {
  constexpr const char* fn = "s4_dplr_c_tilde";
  detail::check_dplr_params<T>(fn, dt, Lambda, P, B);
  const std::size_t H = Lambda.extent(0), N2 = Lambda.extent(1), channels = C.extent(0);
  detail::check_shape(fn, "C", C, {channels, H, N2});
  detail::check_shape(fn, "C_tilde", C_tilde, {channels, H, N2});
  detail::require(L >= 1, fn, "L must be >= 1, got ", L);
  detail::check_data(fn, "C", C);
  detail::check_data(fn, "C_tilde", C_tilde);
  for (std::size_t h = 0; h < H; ++h) {
    const auto sys = detail::dplr_dense_system<T>(h, dt, Lambda, P, B);
    for (std::size_t c = 0; c < channels; ++c) {
      Eigen::VectorXcd row(static_cast<Eigen::Index>(N2));
      for (std::size_t n = 0; n < N2; ++n) row(static_cast<Eigen::Index>(n)) = std::complex<double>(C(c, h, n));
      const Eigen::VectorXcd tilde = detail::dplr_c_tilde_of(sys, row, L, method);
      for (std::size_t n = 0; n < N2; ++n) C_tilde(c, h, n) = std::complex<T>(tilde(static_cast<Eigen::Index>(n)));
    }
  }
}

/// The DPLR recurrence in one of two equivalent forms.
enum class dplr_step_form {
  dense,   ///< x (N = 2 N2 conjugate-expanded states): x' = dA x + dB u, dense dA; O(N^2) per step
  linear,  ///< x (N2 states): the Woodbury form of the same bilinear step; O(N2 r) per step
};

/// Options of s4_dplr_recurrence.
struct s4_dplr_step_options {
  dplr_step_form form = dplr_step_form::linear;
  /// dplr_c_input::tilde: C holds C~ for kernel length `L`, and C is recovered by solving
  /// (I - dA^L)^T C^ = C~^ (the reference's `_setup_step`), which is ill-conditioned when dA^L ~ I.
  dplr_c_input c_input = dplr_c_input::original;
  std::size_t L = 0;  ///< the kernel length of C~ (c_input == tilde only)
};

/// The state of an s4_dplr_recurrence: x (batch, H, size), size = N (dense form) or N2 (linear form),
/// and the step's scratch. Make it with s4_dplr_recurrence::make_state; one state per thread.
template <class T>
class s4_dplr_state {
 public:
  s4_dplr_state() = default;
  s4_dplr_state(std::size_t batch, std::size_t H, std::size_t size, std::size_t scratch)
      : batch_(batch), H_(H), size_(size), x_(batch * H * size), scratch_(scratch) {}

  std::size_t batch() const noexcept { return batch_; }
  /// The state x (batch, H, size): the state before the next input. Conjugate-expanded in the dense
  /// form, its first half (one of each conjugate pair) in the linear form.
  tensor_view<std::complex<T>, 3> x() noexcept { return make_view(x_.data(), batch_, H_, size_); }
  tensor_view<const std::complex<T>, 3> x() const noexcept {
    return make_view(static_cast<const std::complex<T>*>(x_.data()), batch_, H_, size_);
  }
  /// Sets the state to zero.
  void reset() noexcept { std::fill(x_.begin(), x_.end(), std::complex<T>(0)); }

 private:
  template <class>
  friend class s4_dplr_recurrence;
  std::size_t batch_ = 0, H_ = 0, size_ = 0;
  std::vector<std::complex<T>> x_, scratch_;
};

/**
 * The recurrent (step) mode of the S4 DPLR SSM with the bilinear discretisation, which reproduces
 * s4_dplr_kernel: from a zero state, stepping over u gives y = causal convolution of u with K.
 *
 * dense form (the reference's `_setup_step('dense')`): x' = dA x + dB u, y = Re C^^T x' over the N
 *   conjugate-expanded states, with dA, dB from discretize_dplr_bilinear stored in T.
 * linear form (`_setup_linear` / `_step_state_linear`), over the N2 half states: with
 *   E = 2/dt + Lambda, D = (2/dt - Lambda)^-1, Q = conj P, the real r x r matrix M = I + 2 Re(Q diag(D) P^T)
 *   and R = M^-1 (Q diag(D)) (r, N2),
 *     s_q = 2 Re sum_m Q_qm x_m,   w = E x - P^T s + 2 B u,
 *     t_q = 2 Re sum_m R_qm w_m,   x' = D (w - P^T t),   y = 2 Re sum_n C_n x'_n,
 *   which is x' = (2/dt - A)^-1 ((2/dt + A) x + 2 B u) (the bilinear step multiplied through by 2/dt),
 *   the inverse applied by Woodbury with (2/dt - A) = diag(1/D) + p^ p^*; "2 Re" is the sum over
 *   the conjugate-expanded states. Its state equals the first half of the dense form's state.
 *
 * Immutable after construction; step and forward are const and thread-safe with one state per thread.
 * They allocate nothing.
 */
template <class T>
class s4_dplr_recurrence {
 public:
  /**
   * \param dt (H, 1); \param Lambda (H, N2); \param P (rank, H, N2); \param B (H, N2); \param C (channels, H, N2).
   * \throws ssmkit::error as s4_dplr_kernel, and when c_input is tilde with L = 0.
   * Setup is double precision: dense O(H N^3), linear O(H (N2 r^2 + r^3)).
   */
  s4_dplr_recurrence(const_view<T, 2> dt, const_view<std::complex<T>, 2> Lambda, const_view<std::complex<T>, 3> P,
                     const_view<std::complex<T>, 2> B, const_view<std::complex<T>, 3> C,
                     const s4_dplr_step_options& options = {})
      : form_(options.form) {
    constexpr const char* fn = "s4_dplr_recurrence";
    rank_ = detail::check_dplr_params<T>(fn, dt, Lambda, P, B);
    H_ = Lambda.extent(0);
    N2_ = Lambda.extent(1);
    channels_ = C.extent(0);
    detail::require(channels_ >= 1, fn, "C must have at least one channel, got shape ",
                    detail::format_shape(C.extents()));
    detail::check_shape(fn, "C", C, {channels_, H_, N2_});
    detail::check_data(fn, "C", C);
    const bool tilde = options.c_input == dplr_c_input::tilde;
    detail::require(!tilde || options.L >= 1, fn, "c_input tilde needs the kernel length L >= 1, got ", options.L);
    using cd = std::complex<double>;
    const auto N2 = static_cast<Eigen::Index>(N2_), N = 2 * N2;
    if (form_ == dplr_step_form::dense) {
      dA_.resize(H_ * N_full() * N_full());
      dB_.resize(H_ * N_full());
      C_.resize(channels_ * H_ * N_full());
    } else {
      E_.resize(H_ * N2_);
      D_.resize(H_ * N2_);
      B2_.resize(H_ * N2_);
      P_.resize(rank_ * H_ * N2_);
      Q_.resize(rank_ * H_ * N2_);
      R_.resize(rank_ * H_ * N2_);
      C_.resize(channels_ * H_ * N2_);
    }
    for (std::size_t h = 0; h < H_; ++h) {
      const bool need_dense = form_ == dplr_step_form::dense || tilde;
      dense_discrete_system sys;
      if (need_dense) sys = detail::dplr_dense_system<T>(h, dt, Lambda, P, B);
      // The original C of every channel (conjugate-expanded), recovered from C~ if needed.
      Eigen::MatrixXcd c_full(N, static_cast<Eigen::Index>(channels_));
      for (std::size_t c = 0; c < channels_; ++c) {
        for (Eigen::Index n = 0; n < N2; ++n) {
          const cd v(C(c, h, static_cast<std::size_t>(n)));
          c_full(n, static_cast<Eigen::Index>(c)) = v;
          c_full(N2 + n, static_cast<Eigen::Index>(c)) = std::conj(v);
        }
      }
      if (tilde) {
        Eigen::MatrixXcd power = Eigen::MatrixXcd::Identity(N, N), base = sys.dA;
        for (std::size_t e = options.L; e > 0; e >>= 1) {
          if (e & 1U) power = power * base;
          if (e > 1) base = base * base;
        }
        const Eigen::MatrixXcd system = (Eigen::MatrixXcd::Identity(N, N) - power).transpose();
        c_full = Eigen::PartialPivLU<Eigen::MatrixXcd>(system).solve(c_full);
      }
      if (form_ == dplr_step_form::dense) {
        for (Eigen::Index i = 0; i < N; ++i) {
          for (Eigen::Index j = 0; j < N; ++j) dA_[(h * N_full() + i) * N_full() + j] = std::complex<T>(sys.dA(i, j));
          dB_[h * N_full() + i] = std::complex<T>(sys.dB(i));
          for (std::size_t c = 0; c < channels_; ++c) {
            C_[(c * H_ + h) * N_full() + i] = std::complex<T>(c_full(i, static_cast<Eigen::Index>(c)));
          }
        }
        continue;
      }
      // Linear form (reference `_setup_linear`), in double.
      const double dth = static_cast<double>(dt(h, 0));
      const auto rk = static_cast<Eigen::Index>(rank_);
      Eigen::VectorXcd d(N2);
      Eigen::MatrixXcd p(rk, N2), q(rk, N2);
      for (Eigen::Index n = 0; n < N2; ++n) {
        const cd lambda(Lambda(h, static_cast<std::size_t>(n)));
        d(n) = detail::dplr_divide(1.0, 2.0 / dth - lambda);
        E_[h * N2_ + n] = std::complex<T>(2.0 / dth + lambda);
        D_[h * N2_ + n] = std::complex<T>(d(n));
        B2_[h * N2_ + n] = std::complex<T>(2.0 * cd(B(h, static_cast<std::size_t>(n))));
        for (Eigen::Index r = 0; r < rk; ++r) {
          p(r, n) = cd(P(static_cast<std::size_t>(r), h, static_cast<std::size_t>(n)));
          q(r, n) = std::conj(p(r, n));
        }
        for (std::size_t c = 0; c < channels_; ++c) {
          C_[(c * H_ + h) * N2_ + n] = std::complex<T>(2.0 * c_full(n, static_cast<Eigen::Index>(c)));
        }
      }
      if (rk > 0) {
        const Eigen::MatrixXcd qd = q * d.asDiagonal();
        const Eigen::MatrixXd m = Eigen::MatrixXd::Identity(rk, rk) + 2.0 * (qd * p.transpose()).real();
        const Eigen::MatrixXcd r = m.template cast<cd>().partialPivLu().solve(qd);
        for (Eigen::Index i = 0; i < rk; ++i) {
          for (Eigen::Index n = 0; n < N2; ++n) {
            const std::size_t at = (static_cast<std::size_t>(i) * H_ + h) * N2_ + static_cast<std::size_t>(n);
            P_[at] = std::complex<T>(p(i, n));
            Q_[at] = std::complex<T>(q(i, n));
            R_[at] = std::complex<T>(r(i, n));
          }
        }
      }
    }
  }

  dplr_step_form form() const noexcept { return form_; }
  std::size_t H() const noexcept { return H_; }
  std::size_t N2() const noexcept { return N2_; }
  std::size_t rank() const noexcept { return rank_; }
  std::size_t channels() const noexcept { return channels_; }
  /// The number of complex states per channel: N = 2 N2 (dense) or N2 (linear).
  std::size_t state_size() const noexcept { return form_ == dplr_step_form::dense ? N_full() : N2_; }

  /// A zero state for `batch` sequences (allocates).
  s4_dplr_state<T> make_state(std::size_t batch) const {
    return s4_dplr_state<T>(batch, H_, state_size(), form_ == dplr_step_form::dense ? N_full() : rank_);
  }

  /**
   * One step: x <- step(x, u), y[b, c, h] = the output after the update.
   * \param u (batch, H); \param state from make_state(batch); \param y (batch, channels, H).
   * \throws ssmkit::error on mismatched shapes or a state of another shape. Allocates nothing.
   */
  void step(const_view<T, 2> u, s4_dplr_state<T>& state, tensor_view<T, 3> y) const {
    constexpr const char* fn = "s4_dplr_recurrence::step";
    const std::size_t batch = u.extent(0);
    detail::check_shape(fn, "u", u, {batch, H_});
    detail::check_shape(fn, "y", y, {batch, channels_, H_});
    check_state(fn, state, batch);
    detail::check_data(fn, "u", u);
    detail::check_data(fn, "y", y);
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t h = 0; h < H_; ++h) {
        std::complex<T>* x = state.x_.data() + (b * H_ + h) * state_size();
        advance(h, x, u(b, h), state.scratch_.data());
        for (std::size_t c = 0; c < channels_; ++c) y(b, c, h) = output(c, h, x);
      }
    }
  }

  /**
   * Steps over a sequence: for t = 0..L-1, x <- step(x, u[:, :, t]) and y[:, :, :, t] = its output.
   * \param u (batch, H, L); \param y (batch, channels, H, L). L may be 0. Allocates nothing.
   * \throws ssmkit::error as step.
   * Numerics: one step rounds O(N) (dense) or O(r) (linear) times per state in T; the state error
   * grows like t eps_T ||dB|| max_l ||dA^l|| over t steps.
   */
  void forward(const_view<T, 3> u, s4_dplr_state<T>& state, tensor_view<T, 4> y) const {
    constexpr const char* fn = "s4_dplr_recurrence::forward";
    const std::size_t batch = u.extent(0), L = u.extent(2);
    detail::check_shape(fn, "u", u, {batch, H_, L});
    detail::check_shape(fn, "y", y, {batch, channels_, H_, L});
    check_state(fn, state, batch);
    detail::check_data(fn, "u", u);
    detail::check_data(fn, "y", y);
    detail::check_no_overlap(fn, "y", y, "u", u);
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t h = 0; h < H_; ++h) {
        std::complex<T>* x = state.x_.data() + (b * H_ + h) * state_size();
        for (std::size_t t = 0; t < L; ++t) {
          advance(h, x, u(b, h, t), state.scratch_.data());
          for (std::size_t c = 0; c < channels_; ++c) y(b, c, h, t) = output(c, h, x);
        }
      }
    }
  }

 private:
  std::size_t N_full() const noexcept { return 2 * N2_; }

  void check_state(const char* fn, const s4_dplr_state<T>& state, std::size_t batch) const {
    if (state.batch_ != batch || state.H_ != H_ || state.size_ != state_size()) {
      detail::throw_error(fn, "state has shape ",
                          detail::format_shape(std::array<std::size_t, 3>{state.batch_, state.H_, state.size_}),
                          ", expected (", batch, ", ", H_, ", ", state_size(), ") (make it with make_state)");
    }
  }

  /// x <- the next state of channel h given input u (in place; scratch holds N (dense) or r values).
  void advance(std::size_t h, std::complex<T>* x, T u, std::complex<T>* scratch) const noexcept {
    using ct = std::complex<T>;
    if (form_ == dplr_step_form::dense) {
      const std::size_t N = N_full();
      const ct* dA = dA_.data() + h * N * N;
      const ct* dB = dB_.data() + h * N;
      for (std::size_t i = 0; i < N; ++i) {
        ct sum = dB[i] * u;
        for (std::size_t j = 0; j < N; ++j) sum += dA[i * N + j] * x[j];
        scratch[i] = sum;
      }
      std::copy(scratch, scratch + N, x);
      return;
    }
    const std::size_t N2 = N2_;
    const ct* E = E_.data() + h * N2;
    const ct* D = D_.data() + h * N2;
    const ct* B2 = B2_.data() + h * N2;
    // s_q = 2 Re sum_m Q_qm x_m (stored in scratch[q].real()).
    for (std::size_t q = 0; q < rank_; ++q) {
      const ct* Q = Q_.data() + (q * H_ + h) * N2;
      T s = 0;
      for (std::size_t m = 0; m < N2; ++m) s += Q[m].real() * x[m].real() - Q[m].imag() * x[m].imag();
      scratch[q] = ct(T(2) * s, T(0));
    }
    // w = E x - P^T s + 2 B u, written over x.
    for (std::size_t n = 0; n < N2; ++n) {
      ct w = E[n] * x[n] + B2[n] * u;
      for (std::size_t q = 0; q < rank_; ++q) w -= P_[(q * H_ + h) * N2 + n] * scratch[q].real();
      x[n] = w;
    }
    // t_q = 2 Re sum_m R_qm w_m;  x' = D (w - P^T t).
    for (std::size_t q = 0; q < rank_; ++q) {
      const ct* R = R_.data() + (q * H_ + h) * N2;
      T t = 0;
      for (std::size_t m = 0; m < N2; ++m) t += R[m].real() * x[m].real() - R[m].imag() * x[m].imag();
      scratch[q] = ct(T(2) * t, T(0));
    }
    for (std::size_t n = 0; n < N2; ++n) {
      ct w = x[n];
      for (std::size_t q = 0; q < rank_; ++q) w -= P_[(q * H_ + h) * N2 + n] * scratch[q].real();
      x[n] = D[n] * w;
    }
  }

  /// Re sum_n C[c, h, n] x_n over the stored C (conjugate-expanded C (dense) or 2 C (linear)).
  T output(std::size_t c, std::size_t h, const std::complex<T>* x) const noexcept {
    const std::size_t n_states = state_size();
    const std::complex<T>* Cc = C_.data() + (c * H_ + h) * n_states;
    T sum = 0;
    for (std::size_t n = 0; n < n_states; ++n) sum += Cc[n].real() * x[n].real() - Cc[n].imag() * x[n].imag();
    return sum;
  }

  dplr_step_form form_;
  std::size_t rank_ = 0, H_ = 0, N2_ = 0, channels_ = 0;
  std::vector<std::complex<T>> dA_, dB_, C_;  // dense form: (H, N, N), (H, N), (channels, H, N)
  std::vector<std::complex<T>> E_, D_, B2_;   // linear form: (H, N2) each
  std::vector<std::complex<T>> P_, Q_, R_;    // linear form: (rank, H, N2) each; C_ is 2 C (channels, H, N2)
};

}  // namespace ssmkit
