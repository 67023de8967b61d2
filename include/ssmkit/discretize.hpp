#pragma once
/// \file discretize.hpp
/// Discretisation of a complex diagonal SSM x' = A x + B u with step dt, as the reference's
/// SSMKernelDiag (state-spaces/s4, src/models/sequence/kernels/ssm.py;
/// ../shared/docs/reference-semantics.md section 3). With D = dt A per mode:
///   - zoh:      dA = e^D,                  dB = (e^D - 1)/A   (times B)
///   - bilinear: dA = (1 + D/2)/(1 - D/2),  dB = dt/(1 - D/2)
///   - dss:      the DSS normalised kernel; defined for the convolution kernel only, with a
///               factor that depends on the kernel length L (see discretize_mode).
/// and the bilinear discretisation of the dense, conjugate-expanded DPLR (S4) system with its
/// Krylov kernel (section 4), a dense reference path.
///
/// Setup-time code: double precision, per mode. The kernels in s4d.hpp call it once per
/// (channel, mode) before their hot loop.

#include <cmath>
#include <complex>
#include <cstddef>
#include <string_view>

#include <Eigen/Core>
#include <Eigen/LU>

#include <ssmkit/error.hpp>

namespace ssmkit {

/// The discretisation of a diagonal SSM.
enum class discretization { zoh, bilinear, dss };

/// The discretisation named as in the reference ("zoh", "bilinear", "dss").
inline discretization parse_discretization(std::string_view name) {
  if (name == "zoh") return discretization::zoh;
  if (name == "bilinear") return discretization::bilinear;
  if (name == "dss") return discretization::dss;
  detail::throw_error("parse_discretization", "unknown discretization '", name, "' (expected zoh, bilinear or dss)");
}

/// One discretised mode in the form the convolution kernel uses:
/// K_l = gain Re sum_n C_n B_n dB_n exp((l - shift) log_dA).
struct discrete_mode {
  std::complex<double> log_dA;  ///< the exponent per step: D (zoh, dss), the principal log of dA (bilinear)
  std::complex<double> dA;      ///< exp(log_dA), the discrete transition
  std::complex<double> dB;      ///< the input factor, without B
  double shift = 0;             ///< dss with Re A > 0: the powers start at -(L-1) to stay bounded
  double gain = 2;              ///< 2 for zoh and bilinear (conjugate pairs), 1 for dss (as the reference)
};

/**
 * Discretises one mode (dt, A) with the reference's formulas. For dss, with x = (e^{L D'} - 1) A and
 * r = conj(x)/(|x|^2 + 1e-7): dB = (e^{D'} - 1) r, where D' = D, or D' = -D and shift = L - 1 when
 * Re A > 0 (the reference's branch that keeps exp(l D) bounded).
 *
 * \param L  the kernel length (dss only; ignored otherwise).
 * \throws ssmkit::error unless dt > 0 and finite, and L >= 1 for dss.
 * Numerics: e^D - 1 is computed as expm1 of the real part combined with the rotation, so that
 * (e^D - 1)/A keeps full relative accuracy as D -> 0 (the reference loses it below |D| ~ 1e-8).
 */
inline discrete_mode discretize_mode(discretization method, double dt, std::complex<double> A, std::size_t L = 0) {
  detail::require(dt > 0 && std::isfinite(dt), "discretize_mode", "dt must be positive and finite, got ", dt);
  using cd = std::complex<double>;
  const cd D = dt * A;
  // e^z - 1 = expm1(a) cos b - 2 sin^2(b/2) + i e^a sin b, accurate for small |z|, from one exp,
  // one expm1 and one sincos: 2 sin^2(b/2) = 1 - cos b, or sin^2 b / (1 + cos b) where cos b > 0
  // (no cancellation either way). Also returns e^z.
  struct exp_pair {
    cd exp, exp_minus_one;
  };
  const auto exp_and_expm1 = [](cd z) {
    const double a = z.real(), b = z.imag();
    const double c = std::cos(b), s = std::sin(b), ea = std::exp(a);
    const double one_minus_cos = c > 0 ? s * s / (1.0 + c) : 1.0 - c;
    return exp_pair{cd(ea * c, ea * s), cd(std::expm1(a) * c - one_minus_cos, ea * s)};
  };
  // x / y without the C99 Annex G inf/NaN recovery of std::complex's operator/ (a library call).
  const auto divide = [](cd x, cd y) { return x * std::conj(y) / std::norm(y); };
  discrete_mode m;
  switch (method) {
    case discretization::zoh: {
      const auto e = exp_and_expm1(D);
      m.log_dA = D;
      m.dA = e.exp;
      m.dB = A == cd(0) ? cd(dt) : divide(e.exp_minus_one, A);
      break;
    }
    case discretization::bilinear:
      m.dA = divide(1.0 + D / 2.0, 1.0 - D / 2.0);
      m.log_dA = std::log(m.dA);
      m.dB = divide(dt, 1.0 - D / 2.0);
      break;
    case discretization::dss: {
      detail::require(L >= 1, "discretize_mode", "the dss discretization needs the kernel length L >= 1, got ", L);
      const bool positive = A.real() > 0;
      const cd Dn = positive ? -D : D;
      const cd x = exp_and_expm1(Dn * static_cast<double>(L)).exp_minus_one * A;
      const cd r = std::conj(x) / (std::norm(x) + 1e-7);
      m.log_dA = D;
      m.dA = exp_and_expm1(D).exp;
      m.dB = exp_and_expm1(Dn).exp_minus_one * r;
      m.shift = positive ? static_cast<double>(L - 1) : 0.0;
      m.gain = 1;
      break;
    }
  }
  return m;
}

/// The recurrent-step form of one mode: x_t = dA x_{t-1} + dB B u_t (zoh or bilinear).
struct step_mode {
  std::complex<double> dA;
  std::complex<double> dB;  ///< without B
};

/**
 * dA and dB of one mode for the recurrence x_t = dA x_{t-1} + dB B u_t, y_t = 2 Re sum C x_t.
 * \throws ssmkit::error unless dt > 0 and finite, or for dss (which has no recurrent form).
 */
inline step_mode discretize_step(discretization method, double dt, std::complex<double> A) {
  detail::require(method != discretization::dss, "discretize_step",
                  "the dss discretization has no recurrent form (use zoh or bilinear)");
  const auto m = discretize_mode(method, dt, A);
  return {m.dA, m.dB};
}

/// The dense discrete system of a DPLR (S4) SSM, conjugate-expanded to N = 2 N2 states.
struct dense_discrete_system {
  Eigen::MatrixXcd dA;  ///< (N, N)
  Eigen::VectorXcd dB;  ///< (N)
};

/**
 * Bilinear discretisation of the conjugate-expanded DPLR matrix of reference-semantics.md
 * section 4: with p^_r = (P_r, conj P_r),
 *   A = diag(Lambda, conj Lambda) - sum_r p^_r p^_r^*,   B = (B, conj B),
 *   dA = (I - dt/2 A)^-1 (I + dt/2 A),   dB = dt (I - dt/2 A)^-1 B.
 *
 * \param Lambda (N2) diagonal part, \param P (rank, N2) low-rank part (rank may be 0), \param B (N2).
 * \throws ssmkit::error on mismatched sizes, N2 = 0, or dt <= 0 or not finite.
 * Numerics: a partial-pivoting LU solve, O(N^3); backward stable for the well-conditioned
 * I - dt/2 A of stable systems.
 */
inline dense_discrete_system discretize_dplr_bilinear(double dt, const Eigen::VectorXcd& Lambda, const Eigen::MatrixXcd& P,
                                                      const Eigen::VectorXcd& B) {
  constexpr const char* fn = "discretize_dplr_bilinear";
  const Eigen::Index N2 = Lambda.size();
  detail::require(N2 >= 1, fn, "Lambda must have at least one mode, got 0");
  detail::require(P.cols() == N2, fn, "P has shape (", P.rows(), ", ", P.cols(), "), expected (rank, ", N2, ")");
  detail::require(B.size() == N2, fn, "B has size ", B.size(), ", expected ", N2);
  detail::require(dt > 0 && std::isfinite(dt), fn, "dt must be positive and finite, got ", dt);
  const Eigen::Index N = 2 * N2;
  Eigen::MatrixXcd A = Eigen::MatrixXcd::Zero(N, N);
  A.diagonal() << Lambda, Lambda.conjugate();
  for (Eigen::Index r = 0; r < P.rows(); ++r) {
    Eigen::VectorXcd p(N);
    p << P.row(r).transpose(), P.row(r).transpose().conjugate();
    A -= p * p.adjoint();
  }
  Eigen::VectorXcd Bf(N);
  Bf << B, B.conjugate();
  const Eigen::MatrixXcd I = Eigen::MatrixXcd::Identity(N, N);
  const Eigen::PartialPivLU<Eigen::MatrixXcd> backward(I - (dt / 2.0) * A);
  return {backward.solve(I + (dt / 2.0) * A), dt * backward.solve(Bf)};
}

/**
 * The kernel of a dense discrete system: K_l = Re(C^T dA^l dB), l = 0..L-1 (plain transpose: C is
 * not conjugated), the reference's `krylov`. With C = (C, conj C) the conjugate-expanded C of a
 * DPLR system the values are real up to rounding.
 *
 * \throws ssmkit::error on mismatched sizes.
 * Numerics: repeated matrix-vector products, O(L N^2); the error grows like l eps ||dA||^l.
 */
inline Eigen::VectorXd dense_kernel(const dense_discrete_system& system, const Eigen::VectorXcd& C, std::size_t L) {
  const Eigen::Index N = system.dA.rows();
  detail::require(system.dA.cols() == N && system.dB.size() == N && C.size() == N, "dense_kernel",
                  "dA has shape (", system.dA.rows(), ", ", system.dA.cols(), "), dB size ", system.dB.size(), " and C size ",
                  C.size(), ", expected (N, N), N and N with N = ", N);
  Eigen::VectorXd K(static_cast<Eigen::Index>(L));
  Eigen::VectorXcd x = system.dB;
  for (std::size_t l = 0; l < L; ++l) {
    K(static_cast<Eigen::Index>(l)) = (C.array() * x.array()).sum().real();
    x = system.dA * x;
  }
  return K;
}

/**
 * S4's C~ for kernel length L: the first N2 entries of (I - dA^L)^T (C, conj C), so that the
 * truncated generating function of the kernel with C~ has no aliasing at the L-th roots of unity
 * (the reference's `_setup_C` on its first call).
 *
 * \param C (N2), \throws ssmkit::error on mismatched sizes.
 */
inline Eigen::VectorXcd dplr_C_tilde(const dense_discrete_system& system, const Eigen::VectorXcd& C, std::size_t L) {
  const Eigen::Index N = system.dA.rows(), N2 = N / 2;
  detail::require(C.size() == N2 && system.dA.cols() == N, "dplr_C_tilde", "C has size ", C.size(), ", expected ", N2);
  Eigen::MatrixXcd power = Eigen::MatrixXcd::Identity(N, N), base = system.dA;
  for (std::size_t e = L; e > 0; e >>= 1) {  // dA^L by repeated squaring
    if (e & 1U) power = power * base;
    base = base * base;
  }
  Eigen::VectorXcd Cf(N);
  Cf << C, C.conjugate();
  const Eigen::VectorXcd full = Cf - power.transpose() * Cf;
  return full.head(N2);
}

}  // namespace ssmkit
