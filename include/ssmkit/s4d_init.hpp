#pragma once
/// \file s4d_init.hpp
/// Diagonal (S4D) initialisations of (A, B), as the reference's `dplr(init, N, rank, H, ...)` with
/// P_scale = 0, i.e. `ssm('diag-<init>', ...)` (state-spaces/s4, src/models/sequence/kernels/dplr.py;
/// ../shared/docs/reference-semantics.md section 2), and the log-uniform dt initialisation.
///
/// Setup-time code: double precision, Eigen types. N is the full real state size; the diagonal
/// parameterisation keeps N2 = N/2 complex modes, one of each conjugate pair. H is the number of
/// independent copies (channels). Random options draw from a std::mt19937_64 seeded by the caller,
/// through ssmkit's own uniform and Box-Muller transforms, so a seed gives the same numbers with
/// every standard library.

#include <cmath>
#include <complex>
#include <cstdint>
#include <random>
#include <string_view>

#include <Eigen/Core>

#include <ssmkit/error.hpp>
#include <ssmkit/hippo.hpp>

namespace ssmkit::s4d {

/// How the diagonal A = -a_re - i a_im is initialised (mode n = 0..N/2-1).
enum class diag_init {
  legs,  ///< S4D-LegS: a_im = -Im W of hippo::nplr(legs, N); forces B_init legs
  inv,   ///< S4D-Inv: a_im = (N/pi) (N/(2n+1) - 1)
  inv2,  ///< a_im = (N/pi) (N/(n+1) - 1)
  lin,   ///< S4D-Lin: a_im = pi n
  quad,  ///< a_im = (2n+1)^2 / pi
  real,  ///< S4D-Real: a_re = n+1 (real_scale not applied, as in the reference), a_im = 0
  rand,  ///< a_im = exp(N(0, 1))
};

/// How B is initialised (then multiplied by B_scale).
enum class b_init {
  constant,     ///< 1
  random,       ///< complex standard normal (re and im each N(0, 1/2))
  alternating,  ///< 1, -1, 1, -1, ... (N divisible by 4)
  unit_cw,      ///< exp(-2 pi i n / N)
  unit_ccw,     ///< exp(+2 pi i n / N)
  legs,         ///< B~ of hippo::nplr(legs, N) with the B clip (canonical phase: real)
};

/// The init named as in the reference ("legs"/"hippo", "inv"/"inverse", "inv2"/"inverse2",
/// "lin"/"linear", "quad"/"quadratic", "real", "rand"/"random"); a leading "diag-" is accepted.
inline diag_init parse_diag_init(std::string_view name) {
  if (name.substr(0, 5) == "diag-") name.remove_prefix(5);
  if (name == "legs" || name == "hippo") return diag_init::legs;
  if (name == "inv" || name == "inverse") return diag_init::inv;
  if (name == "inv2" || name == "inverse2") return diag_init::inv2;
  if (name == "lin" || name == "linear") return diag_init::lin;
  if (name == "quad" || name == "quadratic") return diag_init::quad;
  if (name == "real") return diag_init::real;
  if (name == "rand" || name == "random") return diag_init::rand;
  detail::throw_error("s4d::parse_diag_init", "unknown init '", name,
                      "' (expected legs, inv, inv2, lin, quad, real or rand)");
}

/// The B_init named as in the reference ("constant", "random", "alternating", "unit-cw",
/// "unit-ccw", "legs").
inline b_init parse_b_init(std::string_view name) {
  if (name == "constant") return b_init::constant;
  if (name == "random") return b_init::random;
  if (name == "alternating") return b_init::alternating;
  if (name == "unit-cw") return b_init::unit_cw;
  if (name == "unit-ccw") return b_init::unit_ccw;
  if (name == "legs" || name == "hippo") return b_init::legs;
  detail::throw_error("s4d::parse_b_init", "unknown B_init '", name,
                      "' (expected constant, random, alternating, unit-cw, unit-ccw or legs)");
}

/// The reference's dplr() scaling options (defaults as there).
struct diag_init_options {
  bool real_random = false;  ///< a_re ~ U[0, 1) instead of 1/2 (for real: floor(U N / 2))
  double real_scale = 1.0;
  bool imag_random = false;  ///< the base a_im ~ (N/2) U[0, 1) instead of n
  double imag_scale = 1.0;
  b_init B = b_init::constant;  ///< ignored (legs forced) for diag_init::legs
  double B_scale = 1.0;
  bool normalize = false;  ///< B /= sqrt(2 sum_n |B_n / A_n|^2), per copy
  std::uint64_t seed = 0;  ///< for the random options
};

/// Diagonal SSM parameters of H copies.
struct diag_params {
  Eigen::MatrixXcd A;  ///< (H, N/2)
  Eigen::MatrixXcd B;  ///< (H, N/2)
  Eigen::MatrixXcd P;  ///< (H, N/2): the NPLR P~ for legs (which the diagonal kernel ignores), zeros otherwise
};

namespace detail {

/// U[0, 1) with 53 random bits.
inline double uniform01(std::mt19937_64& gen) { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }

/// N(0, 1) by Box-Muller (one of the pair; simplicity over speed at setup time).
inline double standard_normal(std::mt19937_64& gen) {
  const double u1 = 1.0 - uniform01(gen);  // (0, 1]
  const double u2 = uniform01(gen);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
}

}  // namespace detail

/**
 * The S4D initialisation `init` for H copies of an N-dimensional (N/2 complex modes) diagonal SSM:
 * A = -a_re - i a_im with a_re = real_scale/2 (or real_scale U[0,1)), a_im per the table of
 * diag_init times imag_scale; B per options.B times B_scale, optionally normalised.
 *
 * \throws ssmkit::error when N < 2, N is odd, H < 1, alternating B with N not divisible by 4, legs
 *         with N < 4, or the result violates the reference's assertion Re A < 1e-4, Im A <= 0 (a
 *         negative scale).
 * Numerics: deterministic entries are within a few ulp of their closed forms; legs inherits the
 * accuracy of hippo::nplr.
 */
inline diag_params diag(diag_init init, Eigen::Index N, Eigen::Index H, const diag_init_options& options = {}) {
  constexpr const char* fn = "s4d::diag";
  ssmkit::detail::require(N >= 2 && N % 2 == 0, fn, "N must be even and >= 2, got ", N);
  ssmkit::detail::require(H >= 1, fn, "H must be >= 1, got ", H);
  const bool legs = init == diag_init::legs;
  const b_init binit = legs ? b_init::legs : options.B;
  ssmkit::detail::require(binit != b_init::alternating || N % 4 == 0, fn,
                          "B_init alternating needs N divisible by 4, got ", N);
  ssmkit::detail::require(!legs || N >= 4, fn, "init legs needs N >= 4, got ", N);
  ssmkit::detail::require(binit != b_init::legs || N >= 4, fn, "B_init legs needs N >= 4, got ", N);
  using cd = std::complex<double>;
  const double pi = 3.14159265358979323846;
  const Eigen::Index N2 = N / 2;
  const double Nd = static_cast<double>(N);
  std::mt19937_64 gen(options.seed);

  Eigen::MatrixXd re(H, N2), im(H, N2);
  for (Eigen::Index h = 0; h < H; ++h) {
    for (Eigen::Index n = 0; n < N2; ++n) re(h, n) = options.real_scale * (options.real_random ? detail::uniform01(gen) : 0.5);
  }
  for (Eigen::Index h = 0; h < H; ++h) {
    for (Eigen::Index n = 0; n < N2; ++n) {
      im(h, n) = options.imag_random ? static_cast<double>(N2) * detail::uniform01(gen) : static_cast<double>(n);
    }
  }
  // LegS's NPLR gives A for init legs and B for B_init legs (which any init may use).
  hippo::nplr_result legs_nplr;
  if (legs || binit == b_init::legs) legs_nplr = hippo::nplr(hippo::measure::legs, N);
  for (Eigen::Index h = 0; h < H; ++h) {
    for (Eigen::Index n = 0; n < N2; ++n) {
      const double q = im(h, n);
      switch (init) {
        case diag_init::rand: im(h, n) = std::exp(detail::standard_normal(gen)); break;
        case diag_init::real:
          im(h, n) = 0.0;
          re(h, n) = options.real_random ? std::floor(detail::uniform01(gen) * Nd / 2.0) : 1.0 + static_cast<double>(n);
          break;
        case diag_init::lin: im(h, n) = pi * q; break;
        case diag_init::inv: im(h, n) = 1.0 / pi * Nd * (Nd / (1.0 + 2.0 * q) - 1.0); break;
        case diag_init::inv2: im(h, n) = 1.0 / pi * Nd * (Nd / (1.0 + q) - 1.0); break;
        case diag_init::quad: im(h, n) = 1.0 / pi * (1.0 + 2.0 * q) * (1.0 + 2.0 * q); break;
        case diag_init::legs: im(h, n) = -legs_nplr.W(n).imag(); break;
      }
      im(h, n) *= options.imag_scale;
    }
  }

  diag_params p;
  p.A.resize(H, N2);
  for (Eigen::Index h = 0; h < H; ++h) {
    for (Eigen::Index n = 0; n < N2; ++n) {
      p.A(h, n) = cd(-re(h, n), -im(h, n));
      ssmkit::detail::require(p.A(h, n).real() < 1e-4 && p.A(h, n).imag() <= 0.0, fn,
                              "A must have Re A < 1e-4 and Im A <= 0, got ", p.A(h, n), " at (", h, ", ", n,
                              ") (check real_scale and imag_scale)");
    }
  }
  p.B.resize(H, N2);
  for (Eigen::Index h = 0; h < H; ++h) {
    for (Eigen::Index n = 0; n < N2; ++n) {
      const double ang = 2.0 * pi * static_cast<double>(n) / Nd;
      cd b;
      switch (binit) {
        case b_init::constant: b = 1.0; break;
        case b_init::random: {
          const double a = detail::standard_normal(gen), c = detail::standard_normal(gen);
          b = cd(a, c) * std::sqrt(0.5);  // torch.randn(complex): unit variance in total
          break;
        }
        case b_init::alternating: b = n % 2 == 0 ? 1.0 : -1.0; break;
        case b_init::unit_cw: b = std::polar(1.0, -ang); break;
        case b_init::unit_ccw: b = std::polar(1.0, ang); break;
        case b_init::legs: b = legs_nplr.B(n); break;
      }
      p.B(h, n) = b * options.B_scale;
    }
    if (options.normalize) {
      double zeta = 0;
      for (Eigen::Index n = 0; n < N2; ++n) zeta += std::norm(-p.B(h, n) / p.A(h, n));
      p.B.row(h) /= std::sqrt(2.0 * zeta);
    }
  }
  p.P = Eigen::MatrixXcd::Zero(H, N2);
  if (legs) {
    for (Eigen::Index h = 0; h < H; ++h) p.P.row(h) = legs_nplr.P.row(0);
  }
  return p;
}

/// diag() by the reference's init name ("diag-lin", "inv", ...).
inline diag_params diag(std::string_view init, Eigen::Index N, Eigen::Index H, const diag_init_options& options = {}) {
  return diag(parse_diag_init(init), N, H, options);
}

/// Options of init_log_dt().
struct dt_init_options {
  double dt_min = 1e-3;
  double dt_max = 1e-1;
  bool tied = true;  ///< one dt per copy (H, 1); untied: (H, N/2)
  std::uint64_t seed = 0;
};

/**
 * log dt ~ U[log dt_min, log dt_max], shape (H, 1) when tied, else (H, N2), as SSMKernel.init_dt
 * (before its dt transform). Apply exp to get dt; Mamba's bias form is dt + log(-expm1(-dt)).
 * \throws ssmkit::error unless 0 < dt_min <= dt_max < inf, H >= 1 and N2 >= 1.
 */
inline Eigen::MatrixXd init_log_dt(Eigen::Index H, Eigen::Index N2, const dt_init_options& options = {}) {
  constexpr const char* fn = "s4d::init_log_dt";
  ssmkit::detail::require(options.dt_min > 0 && options.dt_min <= options.dt_max && std::isfinite(options.dt_max), fn,
                          "need 0 < dt_min <= dt_max < inf, got dt_min = ", options.dt_min, ", dt_max = ", options.dt_max);
  ssmkit::detail::require(H >= 1 && N2 >= 1, fn, "H and N2 must be >= 1, got H = ", H, ", N2 = ", N2);
  std::mt19937_64 gen(options.seed);
  const double lo = std::log(options.dt_min), hi = std::log(options.dt_max);
  Eigen::MatrixXd log_dt(H, options.tied ? 1 : N2);
  for (Eigen::Index i = 0; i < log_dt.rows(); ++i) {
    for (Eigen::Index j = 0; j < log_dt.cols(); ++j) log_dt(i, j) = lo + (hi - lo) * detail::uniform01(gen);
  }
  return log_dt;
}

/// Mamba's dt as a delta bias: softplus^-1(dt) = dt + log(-expm1(-dt)) (exactly log(e^dt - 1), in
/// a form that keeps its accuracy for small dt), so that softplus(bias) = dt.
inline double inverse_softplus(double dt) { return dt + std::log(-std::expm1(-dt)); }

/**
 * Mamba's dt initialisation (mamba_simple.py, mamba2.py): dt = exp(log_dt) with log_dt from
 * init_log_dt (one per channel, `options.tied` ignored), clamped to >= floor, and returned in the
 * bias form inverse_softplus(dt), shape (H). softplus(bias) recovers dt to within a few ulp.
 * \throws ssmkit::error as init_log_dt, and unless floor > 0.
 */
inline Eigen::VectorXd init_dt_bias(Eigen::Index H, const dt_init_options& options = {}, double floor = 1e-4) {
  ssmkit::detail::require(floor > 0, "s4d::init_dt_bias", "floor must be > 0, got ", floor);
  dt_init_options tied = options;
  tied.tied = true;
  const Eigen::MatrixXd log_dt = init_log_dt(H, 1, tied);
  Eigen::VectorXd bias(H);
  for (Eigen::Index h = 0; h < H; ++h) bias(h) = inverse_softplus(std::max(std::exp(log_dt(h, 0)), floor));
  return bias;
}

}  // namespace ssmkit::s4d
