#pragma once
/// \file s4_ptd.hpp
/// S4-PTD, "perturb-then-diagonalize" (Yu, Nigmetov, Morozov, Mahoney, Erichson, "Robustifying
/// State-space Models for Long Sequences via Approximate Diagonalization", ICLR 2024,
/// arXiv:2310.01698): a diagonal initialisation from a non-normal HiPPO matrix that is backward stable.
///
/// The HiPPO-LegS matrix is diagonalisable with eigenvalues -(n+1), but its eigenvector matrix V has
/// a condition number that grows exponentially with N (beyond 1e16 at N = 64, i.e. V is numerically
/// singular), so A = V Lambda V^-1 cannot be formed in floating point: the naive diagonalisation is
/// ill-posed. PTD diagonalises A + E instead, for a small perturbation E: the result is exact for a
/// matrix at distance ||E|| from A (backward error ||E||), and cond(V) of the perturbed matrix is
/// bounded, of order N^(3/2) ||A|| / ||E|| for a random E (Davies, "Approximate diagonalization", SIAM
/// J. Matrix Anal. Appl. 2007; Banks, Kulkarni, Mukherjee, Srivastava, "Gaussian regularization of the
/// pseudospectrum", 2021, which the paper builds on).
///
/// What ssmkit implements: the random-perturbation form of PTD. E is a real Gaussian matrix scaled to
/// ||E||_2 = relative_norm ||A||_2 (real, so that the eigenvalues of A + E stay in conjugate pairs),
/// drawn from a seeded std::mt19937_64 (reproducible with every standard library). The paper's S4-PTD
/// chooses E by minimising cond(V) + gamma ||E|| over perturbations of a given size; that optimiser is
/// not implemented here. The default relative_norm = 1e-3 is our choice; tests/test_s4_ptd.cpp
/// measures the trade-off.
///
/// Setup-time code: double precision, Eigen types. N is the full (real) state size; the S4D-style
/// result keeps N2 = N/2 modes, one of each conjugate pair.

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <Eigen/SVD>

#include <ssmkit/error.hpp>
#include <ssmkit/hippo.hpp>
#include <ssmkit/s4d_init.hpp>

namespace ssmkit::ptd {

/// Options of perturb_then_diagonalize.
struct perturb_options {
  /// ||E||_2 / ||A||_2. 0 gives the naive (unperturbed) diagonalisation.
  double relative_norm = 1e-3;
  std::uint64_t seed = 0;
};

/// A + E = V diag(Lambda) V^-1, with the quality measures of the diagonalisation.
struct diagonalization {
  Eigen::VectorXcd Lambda;  ///< (N) eigenvalues of A + E, in the order of Eigen::EigenSolver
  Eigen::MatrixXcd V;       ///< (N, N) eigenvectors, columns of unit 2-norm
  Eigen::MatrixXcd V_inverse;
  Eigen::MatrixXd E;                ///< (N, N) the perturbation (zero for relative_norm = 0)
  double perturbation = 0;          ///< ||E||_2 / ||A||_2
  double backward_error = 0;        ///< ||A + E - V Lambda V^-1||_2 / ||A||_2: the diagonalisation's own error
  double total_backward_error = 0;  ///< ||A - V Lambda V^-1||_2 / ||A||_2 (<= perturbation + backward_error)
  double condition = 0;             ///< cond_2(V) = sigma_max / sigma_min (JacobiSVD)
};

namespace detail {

/// The spectral norm ||M||_2 (largest singular value).
template <class Matrix>
double spectral_norm(const Matrix& M) {
  if (M.size() == 0) return 0.0;
  return Eigen::JacobiSVD<Matrix>(M).singularValues()(0);
}

}  // namespace detail

/**
 * Diagonalises A + E, E real Gaussian with ||E||_2 = options.relative_norm ||A||_2 (see the file comment),
 * by Eigen::EigenSolver (real Hessenberg QR), and measures the result.
 *
 * \param A (N, N) real, N >= 1.
 * \throws ssmkit::error when A is not square or empty, A = 0 with a nonzero relative_norm, relative_norm
 *         is negative or not finite, or the eigensolver does not converge.
 * Numerics: Lambda and V are backward stable for A + E: backward_error is O(eps cond(V)), so about
 * 1e-13 when cond(V) ~ 1e3 and meaningless (O(1) or more) for the naive diagonalisation of LegS, whose
 * cond(V) saturates at ~1/eps. O(N^3) (the eigensolver and three SVDs).
 */
inline diagonalization perturb_then_diagonalize(const Eigen::MatrixXd& A, const perturb_options& options = {}) {
  constexpr const char* fn = "ptd::perturb_then_diagonalize";
  ssmkit::detail::require(A.rows() == A.cols() && A.rows() >= 1, fn, "A must be square and non-empty, got (", A.rows(),
                          ", ", A.cols(), ")");
  ssmkit::detail::require(options.relative_norm >= 0 && std::isfinite(options.relative_norm), fn,
                          "relative_norm must be >= 0 and finite, got ", options.relative_norm);
  const Eigen::Index N = A.rows();
  const double norm_A = detail::spectral_norm(A);
  ssmkit::detail::require(norm_A > 0 || options.relative_norm == 0, fn,
                          "A is zero: a relative perturbation is undefined");
  diagonalization d;
  d.E = Eigen::MatrixXd::Zero(N, N);
  if (options.relative_norm > 0) {
    std::mt19937_64 gen(options.seed);
    for (Eigen::Index j = 0; j < N; ++j) {
      for (Eigen::Index i = 0; i < N; ++i) d.E(i, j) = s4d::detail::standard_normal(gen);
    }
    d.E *= options.relative_norm * norm_A / detail::spectral_norm(d.E);
  }
  d.perturbation = norm_A > 0 ? detail::spectral_norm(d.E) / norm_A : 0.0;
  const Eigen::MatrixXd perturbed = A + d.E;
  const Eigen::EigenSolver<Eigen::MatrixXd> solver(perturbed, true);
  ssmkit::detail::require(solver.info() == Eigen::Success, fn, "the eigensolver did not converge (N = ", N, ")");
  d.Lambda = solver.eigenvalues();
  d.V = solver.eigenvectors();
  for (Eigen::Index j = 0; j < N; ++j) {
    const double norm = d.V.col(j).norm();
    if (norm > 0) d.V.col(j) /= norm;
  }
  const Eigen::JacobiSVD<Eigen::MatrixXcd> svd(d.V);
  const auto& sigma = svd.singularValues();
  d.condition = sigma(N - 1) > 0 ? sigma(0) / sigma(N - 1) : INFINITY;
  d.V_inverse = d.V.fullPivLu().inverse();
  const Eigen::MatrixXcd reconstructed = d.V * d.Lambda.asDiagonal() * d.V_inverse;
  const double scale = norm_A > 0 ? norm_A : 1.0;
  d.backward_error =
      detail::spectral_norm(Eigen::MatrixXcd(perturbed.cast<std::complex<double>>() - reconstructed)) / scale;
  d.total_backward_error =
      detail::spectral_norm(Eigen::MatrixXcd(A.cast<std::complex<double>>() - reconstructed)) / scale;
  return d;
}

/// Options of diag_init.
struct diag_init_options {
  perturb_options perturb{};
  /// false: keep the member of each conjugate pair with Im <= 0, ascending imaginary part (the
  /// reference's nplr order: fastest negative frequency first, as s4d::diag). true: the conjugates
  /// (Im >= 0, ascending).
  bool positive_imaginary = false;
};

/// An S4D-style diagonal initialisation from PTD.
struct diag_params {
  Eigen::VectorXcd A;                 ///< (N/2) the kept eigenvalues of A_H + E
  Eigen::VectorXcd B;                 ///< (N/2) the matching entries of V^-1 B_H (the input in the eigenbasis)
  diagonalization full;               ///< the full diagonalisation and its quality measures
  Eigen::Index real_eigenvalues = 0;  ///< how many eigenvalues of A_H + E are real (|Im| <= 1e-12 |lambda|)
};

/**
 * S4-PTD's diagonal initialisation of the HiPPO system (A_H, B_H) = hippo::transition(m, N): the
 * eigenvalues of A_H + E and B~ = V^-1 B_H, halved to one member of each conjugate pair as the reference
 * does: all N eigenvalues sorted by ascending imaginary part, the first N/2 kept (so each pair
 * contributes its Im < 0 member, and half of any real eigenvalues are kept, the most negative first).
 * The kernel of the S4D parameterisation, 2 Re sum_n C_n B~_n ..., then approximates that of (A_H, B_H).
 *
 * \param N even, >= 2. \throws ssmkit::error as hippo::transition and perturb_then_diagonalize, and
 *        for odd N.
 */
inline diag_params diag_init(hippo::measure m, Eigen::Index N, const diag_init_options& options = {}) {
  ssmkit::detail::require(N >= 2 && N % 2 == 0, "ptd::diag_init", "N must be even and >= 2, got ", N);
  const auto hippo_system = hippo::transition(m, N);
  diag_params p;
  p.full = perturb_then_diagonalize(hippo_system.A, options.perturb);
  const Eigen::VectorXcd B = p.full.V_inverse * hippo_system.B.cast<std::complex<double>>();
  std::vector<Eigen::Index> order(static_cast<std::size_t>(N));
  std::iota(order.begin(), order.end(), Eigen::Index{0});
  std::stable_sort(order.begin(), order.end(), [&](Eigen::Index a, Eigen::Index b) {
    const auto la = p.full.Lambda(a), lb = p.full.Lambda(b);
    return la.imag() != lb.imag() ? la.imag() < lb.imag() : la.real() < lb.real();
  });
  const Eigen::Index N2 = N / 2;
  p.A.resize(N2);
  p.B.resize(N2);
  for (Eigen::Index n = 0; n < N2; ++n) {
    p.A(n) = p.full.Lambda(order[static_cast<std::size_t>(n)]);
    p.B(n) = B(order[static_cast<std::size_t>(n)]);
    if (options.positive_imaginary) {
      p.A(n) = std::conj(p.A(n));
      p.B(n) = std::conj(p.B(n));
    }
  }
  if (options.positive_imaginary) {
    // Ascending imaginary part for the conjugates: reverse the order.
    p.A.reverseInPlace();
    p.B.reverseInPlace();
  }
  for (Eigen::Index i = 0; i < N; ++i) {
    if (std::abs(p.full.Lambda(i).imag()) <= 1e-12 * std::abs(p.full.Lambda(i))) ++p.real_eigenvalues;
  }
  return p;
}

}  // namespace ssmkit::ptd
