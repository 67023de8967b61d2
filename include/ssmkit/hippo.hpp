#pragma once
/// \file hippo.hpp
/// HiPPO transition matrices, their low-rank corrections and the normal-plus-low-rank (NPLR)
/// decomposition that S4 and S4D initialise from (state-spaces/s4, src/models/hippo/hippo.py;
/// ../shared/docs/reference-semantics.md section 1).
///
/// This is setup-time code: double precision, Eigen types, clarity first. N is the full real state
/// size; the NPLR form keeps N/2 modes, one of each conjugate pair.

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>

#include <ssmkit/error.hpp>

namespace ssmkit::hippo {

/// The deterministic measures of the reference's `transition`.
enum class measure {
  legs,           ///< scaled Legendre (the S4 default)
  legt,           ///< translated Legendre
  lmu,            ///< LMU: LegT up to normalisation
  lagt,           ///< translated Laguerre (argument beta)
  tlagt,          ///< tilted Laguerre (argument beta)
  glagt,          ///< generalised Laguerre (arguments alpha, beta)
  legsd,          ///< the normal part of LegS, with B/2
  fout,           ///< translated Fourier ("fourier")
  foud,           ///< diagonal Fourier ("fourier_diag")
  fourier_decay,  ///< Fourier with half the rank-one term
  fourier2,       ///< Fourier with doubled frequencies, orthonormal on [0, 1]
};

/// The reference's name of a measure ("legs", "fout", ...).
inline const char* measure_name(measure m) noexcept {
  switch (m) {
    case measure::legs: return "legs";
    case measure::legt: return "legt";
    case measure::lmu: return "lmu";
    case measure::lagt: return "lagt";
    case measure::tlagt: return "tlagt";
    case measure::glagt: return "glagt";
    case measure::legsd: return "legsd";
    case measure::fout: return "fout";
    case measure::foud: return "foud";
    case measure::fourier_decay: return "fourier_decay";
    case measure::fourier2: return "fourier2";
  }
  return "?";
}

/// The measure named `name`, with the reference's aliases ("fourier" = fout, "fourier_diag" = foud).
/// \throws ssmkit::error for an unknown name (including the non-deterministic "random", "diagonal").
inline measure parse_measure(std::string_view name) {
  if (name == "fourier") return measure::fout;
  if (name == "fourier_diag") return measure::foud;
  for (const measure m : {measure::legs, measure::legt, measure::lmu, measure::lagt, measure::tlagt, measure::glagt,
                          measure::legsd, measure::fout, measure::foud, measure::fourier_decay, measure::fourier2}) {
    if (name == measure_name(m)) return m;
  }
  detail::throw_error("hippo::parse_measure", "unknown measure '", name,
                      "' (expected legs, legt, lmu, lagt, tlagt, glagt, legsd, fout/fourier, foud/fourier_diag, "
                      "fourier_decay or fourier2)");
}

/// Optional measure arguments. Unset ones take the reference's defaults: beta = 1 for lagt and
/// tlagt, beta = 0.01 and alpha = 0 for glagt. Other measures ignore them.
struct measure_args {
  std::optional<double> alpha;
  std::optional<double> beta;
};

/// A continuous-time HiPPO system x' = A x + B u.
struct transition_matrices {
  Eigen::MatrixXd A;  ///< (N, N)
  Eigen::VectorXd B;  ///< (N)
};

namespace detail {

inline bool is_fourier(measure m) noexcept {
  return m == measure::fout || m == measure::foud || m == measure::fourier_decay || m == measure::fourier2;
}

/// b = (1, 0, sqrt2, 0, sqrt2, 0, ...): the Fourier measures' input vector. Coordinate 1 is a dead state.
inline Eigen::VectorXd fourier_b(Eigen::Index N) {
  Eigen::VectorXd b = Eigen::VectorXd::Zero(N);
  for (Eigen::Index n = 0; n < N; n += 2) b(n) = std::sqrt(2.0);
  if (N > 0) b(0) = 1.0;
  return b;
}

/// The skew part of the Fourier measures: F(2j, 2j+1) = -step*j, F(2j+1, 2j) = +step*j.
inline Eigen::MatrixXd fourier_skew(Eigen::Index N, double step) {
  Eigen::MatrixXd F = Eigen::MatrixXd::Zero(N, N);
  for (Eigen::Index j = 1; 2 * j + 1 < N; ++j) {
    F(2 * j, 2 * j + 1) = -step * static_cast<double>(j);
    F(2 * j + 1, 2 * j) = step * static_cast<double>(j);
  }
  return F;
}

inline void check_size(const char* function, measure m, Eigen::Index N) {
  ssmkit::detail::require(N >= 1, function, "N must be >= 1, got ", N);
  if (is_fourier(m)) {
    ssmkit::detail::require(N % 2 == 0, function, "N must be even for measure ", measure_name(m), ", got ", N);
  }
}

}  // namespace detail

/**
 * The HiPPO transition matrices (A, B) of `m` with state size N, entry for entry as the
 * reference's `transition(measure, N, **args)` (reference-semantics.md section 1.1):
 * - legs:  A_nk = -sqrt((2n+1)(2k+1)) (n > k), -(n+1) (n = k), 0 (n < k); B_n = sqrt(2n+1).
 * - legt:  A_nk = -1/2 sqrt((2n+1)(2k+1)) s_nk, s_nk = 1 (n >= k) or (-1)^(n-k); B_n = sqrt(2n+1)/2.
 * - lmu:   A_nk = (2n+1) (-1 if n < k else (-1)^(n-k+1)); B_n = (-1)^n (2n+1).
 * - lagt:  -1/2 on the diagonal, -1 below; B = beta.   tlagt: (1-beta)/2 - 1 on the diagonal.
 * - glagt: -(1+beta)/2 diagonal, -1 below, then A_nk l_k / l_n with l_n = exp((lgamma(n+alpha+1) -
 *          lgamma(n+1))/2); B_n = binom(alpha+n, n) / l_n exp(-lgamma(1-alpha)/2) beta^((1-alpha)/2).
 * - legsd: A_legs + b b^T / 2, B = b / 2 with b_n = sqrt(2n+1).
 * - fout:  F(pi j) - b b^T, B = b;  foud: F(2 pi j) - I/2, B = b;  fourier_decay: F(pi j) - b b^T / 2,
 *          B = b / 2;  fourier2: F(2 pi j) - 2 b b^T, B = 2 b;  with b = (1, 0, sqrt2, 0, sqrt2, ...)
 *          and F(2j, 2j+1) = -w_j, F(2j+1, 2j) = +w_j.
 *
 * \throws ssmkit::error when N < 1, or N is odd for a Fourier measure.
 * Numerics: every entry is within 1 ulp of sqrt/lgamma of its closed form.
 */
inline transition_matrices transition(measure m, Eigen::Index N, const measure_args& args = {}) {
  detail::check_size("hippo::transition", m, N);
  using Eigen::Index;
  transition_matrices t{Eigen::MatrixXd::Zero(N, N), Eigen::VectorXd::Zero(N)};
  auto& A = t.A;
  auto& B = t.B;
  const auto r = [](Index n) { return std::sqrt(2.0 * static_cast<double>(n) + 1.0); };
  switch (m) {
    case measure::legs:
    case measure::legsd:
      for (Index n = 0; n < N; ++n) {
        for (Index k = 0; k < n; ++k) A(n, k) = -r(n) * r(k);
        A(n, n) = -static_cast<double>(n + 1);
        B(n) = r(n);
      }
      if (m == measure::legsd) {
        A += 0.5 * B * B.transpose();
        B *= 0.5;
      }
      break;
    case measure::legt:
      for (Index n = 0; n < N; ++n) {
        for (Index k = 0; k < N; ++k) {
          const double s = (n >= k || (k - n) % 2 == 0) ? 1.0 : -1.0;
          A(n, k) = -0.5 * (r(n) * s * r(k));
        }
        B(n) = 0.5 * r(n);
      }
      break;
    case measure::lmu:
      for (Index n = 0; n < N; ++n) {
        const double q = 2.0 * static_cast<double>(n) + 1.0;
        for (Index k = 0; k < N; ++k) {
          const double s = n < k ? -1.0 : ((n - k + 1) % 2 == 0 ? 1.0 : -1.0);
          A(n, k) = s * q;
        }
        B(n) = (n % 2 == 0 ? 1.0 : -1.0) * q;
      }
      break;
    case measure::lagt:
    case measure::tlagt: {
      const double beta = args.beta.value_or(1.0);
      const double diag = m == measure::lagt ? -0.5 : (1.0 - beta) / 2.0 - 1.0;
      for (Index n = 0; n < N; ++n) {
        for (Index k = 0; k < n; ++k) A(n, k) = -1.0;
        A(n, n) = diag;
        B(n) = beta;
      }
      break;
    }
    case measure::glagt: {
      const double alpha = args.alpha.value_or(0.0);
      const double beta = args.beta.value_or(0.01);
      Eigen::VectorXd ell(N);
      for (Index n = 0; n < N; ++n) {
        const double q = static_cast<double>(n);
        ell(n) = std::exp(0.5 * (std::lgamma(q + alpha + 1.0) - std::lgamma(q + 1.0)));
      }
      const double scale = std::exp(-0.5 * std::lgamma(1.0 - alpha)) * std::pow(beta, (1.0 - alpha) / 2.0);
      for (Index n = 0; n < N; ++n) {
        const double q = static_cast<double>(n);
        for (Index k = 0; k < n; ++k) A(n, k) = (1.0 / ell(n)) * -1.0 * ell(k);
        A(n, n) = (1.0 / ell(n)) * (-(1.0 + beta) / 2.0) * ell(n);
        const double binom = std::exp(std::lgamma(alpha + q + 1.0) - std::lgamma(q + 1.0) - std::lgamma(alpha + 1.0));
        B(n) = (1.0 / ell(n)) * binom * scale;
      }
      break;
    }
    case measure::fout:
    case measure::foud:
    case measure::fourier_decay:
    case measure::fourier2: {
      const double pi = 3.14159265358979323846;
      const Eigen::VectorXd b = detail::fourier_b(N);
      if (m == measure::fout) {
        A = detail::fourier_skew(N, pi) - b * b.transpose();
        B = b;
      } else if (m == measure::foud) {
        A = detail::fourier_skew(N, 2 * pi) - 0.5 * Eigen::MatrixXd::Identity(N, N);
        B = b;
      } else if (m == measure::fourier_decay) {
        A = detail::fourier_skew(N, pi) - 0.5 * (b * b.transpose());
        B = 0.5 * b;
      } else {
        A = detail::fourier_skew(N, 2 * pi) - 2.0 * (b * b.transpose());
        B = 2.0 * b;
      }
      break;
    }
  }
  return t;
}

/// transition() by the reference's measure name ("legs", "fourier", ...).
inline transition_matrices transition(std::string_view name, Eigen::Index N, const measure_args& args = {}) {
  return transition(parse_measure(name), N, args);
}

/**
 * The low-rank correction P (rank, N) of `m`: A + sum_r p_r p_r^T is normal
 * (reference-semantics.md section 1.2):
 * legs sqrt(n + 1/2); legt (rank >= 2) rows sqrt((2n+1)/2) at odd n, then at even n; lagt sqrt(1/2);
 * fout b; fourier_decay b/sqrt2; fourier2 sqrt2 b; foud and legsd zeros. Rows beyond the natural
 * rank are zero.
 *
 * \throws ssmkit::error when N < 1, rank < 1, legt with rank < 2, a Fourier measure with odd N, or
 *         a measure without a rank correction (lmu, tlagt, glagt).
 */
inline Eigen::MatrixXd rank_correction(measure m, Eigen::Index N, Eigen::Index rank = 1) {
  constexpr const char* fn = "hippo::rank_correction";
  detail::check_size(fn, m, N);
  ssmkit::detail::require(rank >= 1, fn, "rank must be >= 1, got ", rank);
  Eigen::MatrixXd P = Eigen::MatrixXd::Zero(rank, N);
  switch (m) {
    case measure::legs:
      for (Eigen::Index n = 0; n < N; ++n) P(0, n) = std::sqrt(0.5 + static_cast<double>(n));
      break;
    case measure::legt:
      ssmkit::detail::require(rank >= 2, fn, "measure legt needs rank >= 2, got ", rank);
      for (Eigen::Index n = 0; n < N; ++n) {
        P(n % 2 == 1 ? 0 : 1, n) = std::sqrt(1.0 + 2.0 * static_cast<double>(n)) * std::pow(2.0, -0.5);
      }
      break;
    case measure::lagt:
      P.row(0).setConstant(std::sqrt(0.5));
      break;
    case measure::fout:
      P.row(0) = detail::fourier_b(N).transpose();
      break;
    case measure::fourier_decay:
      P.row(0) = detail::fourier_b(N).transpose() / std::sqrt(2.0);
      break;
    case measure::fourier2:
      P.row(0) = std::sqrt(2.0) * detail::fourier_b(N).transpose();
      break;
    case measure::foud:
    case measure::legsd:
      break;
    case measure::lmu:
    case measure::tlagt:
    case measure::glagt:
      ssmkit::detail::throw_error(fn, "measure ", measure_name(m),
                                  " has no rank correction (defined for legs, legt, lagt, legsd and the Fourier measures)");
  }
  return P;
}

/// rank_correction() by the reference's measure name.
inline Eigen::MatrixXd rank_correction(std::string_view name, Eigen::Index N, Eigen::Index rank = 1) {
  return rank_correction(parse_measure(name), N, rank);
}

/// Options of nplr().
struct nplr_options {
  Eigen::Index rank = 1;
  /// The reference clamps Im B~ to [-B_clip, B_clip]; std::nullopt disables the clip.
  std::optional<double> B_clip = 2.0;
};

/// The NPLR form of a HiPPO system: A = V (diag W - P~ P~^*) V^* on the conjugate-expanded basis.
struct nplr_result {
  Eigen::VectorXcd W;  ///< (N/2) eigenvalues of the normal part, ascending imaginary part
  Eigen::MatrixXcd P;  ///< (rank, N/2) P~ = V^* P
  Eigen::VectorXcd B;  ///< (N/2) B~ = V^* B, imaginary part clipped to [-B_clip, B_clip]
  Eigen::MatrixXcd V;  ///< (N, N/2) orthonormal eigenvectors in canonical phase
};

/**
 * The normal-plus-low-rank decomposition, as the reference's nplr(measure, N, rank, B_clip)
 * (reference-semantics.md section 1.4):
 *  1. S = A + sum_r p_r p_r^T (A from transition(), P from rank_correction());
 *  2. Re W = mean(diag S) for every mode;
 *  3. Im W, V from the Hermitian eigendecomposition of -i S built from its strict lower triangle
 *     (what LAPACK heevd reads), ascending;
 *  4. the first N/2 (most negative imaginary part first) are kept; odd N drops the unpaired one;
 *  5. if |W[N/2-1]| < 1e-4 (the Fourier measures' zero eigenvalue) that eigenvector becomes
 *     (e_0 + i e_1)/sqrt2;
 *  6. P~ = V^* P, B~ = V^* B, then Im B~ is clamped to [-B_clip, B_clip].
 *
 * Canonical phase: eigenvectors are free up to a unit factor per mode. This one picks, for each
 * mode, the phase that makes the first row of P~ with |P~_rn| > 1e-12 real and positive; for modes
 * where P~ vanishes, B~ instead; where both vanish, the largest component of V (the first one among
 * ties within 1e-12). For LegS, B = sqrt2 P in the original basis, so B~ is real and the clip is
 * inactive. Phase-invariant quantities (W, |P~|, |B~| before the clip, P~ conj(B~), and
 * 2 Re(V diag(W) V^*) = S) agree with the reference whatever LAPACK's phases.
 *
 * \throws ssmkit::error when N < 4, rank < 1, the measure has no rank correction (lmu, tlagt,
 *         glagt), legt with rank < 2, odd N for a Fourier measure, B_clip < 0, or more than one
 *         kept eigenvalue with modulus below 1e-4 (the reference's assertion).
 * Numerics: W and V come from a backward-stable Hermitian solver: |dW| <= c N eps ||S||, and the
 * eigenvectors' error is eps ||S|| / gap.
 */
inline nplr_result nplr(measure m, Eigen::Index N, const nplr_options& options = {}) {
  constexpr const char* fn = "hippo::nplr";
  ssmkit::detail::require(N >= 4, fn, "N must be >= 4, got ", N);
  ssmkit::detail::require(!options.B_clip || *options.B_clip >= 0, fn, "B_clip must be >= 0, got ",
                          options.B_clip ? *options.B_clip : 0.0);
  if (detail::is_fourier(m)) {
    ssmkit::detail::require(N % 2 == 0, fn, "N must be even for measure ", measure_name(m), ", got ", N);
  }
  if (m == measure::legt) {
    ssmkit::detail::require(options.rank >= 2, fn, "measure legt needs rank >= 2, got ", options.rank);
  }
  ssmkit::detail::require(options.rank >= 1, fn, "rank must be >= 1, got ", options.rank);
  if (m == measure::lmu || m == measure::tlagt || m == measure::glagt) {
    ssmkit::detail::throw_error(fn, "measure ", measure_name(m),
                                " has no rank correction, so no NPLR form (use legs, legt, lagt, legsd or a Fourier measure)");
  }
  using cd = std::complex<double>;
  const auto t = transition(m, N);
  const Eigen::MatrixXd P = rank_correction(m, N, options.rank);
  const Eigen::MatrixXd S = t.A + P.transpose() * P;

  const double w_re = S.diagonal().mean();
  // -i S from the strict lower triangle, Hermitian by construction (heevd reads one triangle and
  // ignores the imaginary part of the diagonal, which is all -i S has there).
  Eigen::MatrixXcd H = Eigen::MatrixXcd::Zero(N, N);
  for (Eigen::Index n = 0; n < N; ++n) {
    for (Eigen::Index k = 0; k < n; ++k) {
      H(n, k) = cd(0, -S(n, k));
      H(k, n) = std::conj(H(n, k));
    }
  }
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXcd> solver(H);
  ssmkit::detail::require(solver.info() == Eigen::Success, fn, "the Hermitian eigensolver did not converge for measure ",
                          measure_name(m), ", N = ", N);
  const Eigen::Index half = N / 2;

  nplr_result r;
  r.W.resize(half);
  r.V = solver.eigenvectors().leftCols(half);
  for (Eigen::Index n = 0; n < half; ++n) r.W(n) = cd(w_re, solver.eigenvalues()(n));
  ssmkit::detail::require(std::abs(r.W(half - 2)) > 1e-4, fn, "measure ", measure_name(m), " with N = ", N,
                          " has more than one zero eigenvalue in its kept half (|W[", half - 2, "]| = ",
                          std::abs(r.W(half - 2)), ")");
  if (std::abs(r.W(half - 1)) < 1e-4) {
    r.V.col(half - 1).setZero();
    r.V(0, half - 1) = cd(std::sqrt(0.5), 0);
    r.V(1, half - 1) = cd(0, std::sqrt(0.5));
  }

  const Eigen::MatrixXcd Pc = P.cast<cd>();
  const Eigen::VectorXcd Bc = t.B.cast<cd>();
  for (Eigen::Index n = 0; n < half; ++n) {
    auto v = r.V.col(n);
    cd anchor = 0;
    for (Eigen::Index q = 0; q < options.rank && anchor == cd(0); ++q) {
      const cd p = v.dot(Pc.row(q).transpose());  // v^* p (Eigen's dot conjugates the first argument)
      if (std::abs(p) > 1e-12) anchor = p;
    }
    if (anchor == cd(0)) {
      const cd b = v.dot(Bc);
      if (std::abs(b) > 1e-12) anchor = b;
    }
    if (anchor == cd(0)) {
      // Largest component made real positive: v -> v conj(v_k)/|v_k|, i.e. anchor = conj(v_k).
      const double vmax = v.cwiseAbs().maxCoeff();
      for (Eigen::Index k = 0; k < N; ++k) {
        if (std::abs(v(k)) >= vmax * (1 - 1e-12)) {
          anchor = std::conj(v(k));
          break;
        }
      }
    }
    // v^* x -> conj(phase) v^* x: multiplying v by anchor/|anchor| makes that projection real positive.
    v *= anchor / std::abs(anchor);
  }
  r.P = (r.V.adjoint() * Pc.transpose()).transpose();
  r.B = r.V.adjoint() * Bc;
  if (options.B_clip) {
    const double c = *options.B_clip;
    for (Eigen::Index n = 0; n < half; ++n) r.B(n) = cd(r.B(n).real(), std::clamp(r.B(n).imag(), -c, c));
  }
  return r;
}

/// nplr() by the reference's measure name.
inline nplr_result nplr(std::string_view name, Eigen::Index N, const nplr_options& options = {}) {
  return nplr(parse_measure(name), N, options);
}

}  // namespace ssmkit::hippo
