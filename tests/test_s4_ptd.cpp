// S4-PTD (perturb-then-diagonalize): for HiPPO-LegS the perturbed diagonalisation is backward stable
// with a bounded eigenvector condition number, while the naive diagonalisation (E = 0) is not.
//
// Measured (g++ 12, Eigen 3.4, seed 0, real Gaussian E with ||E||_2 = 1e-3 ||A||_2):
//   N = 64:  cond(V) = 2.0e3, backward error ||A+E - V Lambda V^-1||_2/||A||_2 = 2.1e-14
//   N = 128: cond(V) = 7.6e3, backward error 5.6e-14
//   naive (E = 0): cond(V) = 1.3e15 (N = 64), 3.6e16 (N = 128), i.e. V is numerically singular, and
//   the backward error is 2.9e-3 (N = 64) and 0.20 (N = 128): 1e11 times the PTD one.
//   cond(V) against ||E||/||A|| at N = 64 (seed 3): 2.6e6 (1e-6), 2.4e4 (1e-4), 2.5e2 (1e-2), i.e.
//   cond(V) ~ 2.5 / (||E||/||A||), the 1/epsilon law of Davies / Banks et al.
// The checks: PTD cond(V) <= 1e5 and backward error <= 1e-12; naive cond(V) >= 1e13 and backward error
// >= 1e-4 and >= 1e8 times PTD's (margins >= 13x on every side).
#include <cmath>
#include <complex>
#include <string>

#include <Eigen/Core>

#include <ssmkit/hippo.hpp>
#include <ssmkit/s4_ptd.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

using ssm_test::error_of;

TEST_CASE("ptd: LegS perturbed by 1e-3 ||A|| has a bounded cond(V) and backward error; naive LegS does not",
          "[s4_ptd]") {
  const Eigen::Index N = GENERATE(64, 128);
  const Eigen::MatrixXd A = ssmkit::hippo::transition(ssmkit::hippo::measure::legs, N).A;
  const auto ptd = ssmkit::ptd::perturb_then_diagonalize(A, {1e-3, 0});
  const auto naive = ssmkit::ptd::perturb_then_diagonalize(A, {0.0, 0});
  INFO("N " << N << ": ptd cond " << ptd.condition << " backward " << ptd.backward_error << " total "
            << ptd.total_backward_error << " perturbation " << ptd.perturbation << "; naive cond " << naive.condition
            << " backward " << naive.backward_error);
  CHECK(ptd.perturbation == ssm_test::Approx(1e-3).epsilon(1e-10));
  CHECK(ptd.condition <= 1e5);
  CHECK(ptd.backward_error <= 1e-12);
  CHECK(ptd.total_backward_error <= 1.01e-3);  // ||E|| plus the diagonalisation's own error
  CHECK(naive.perturbation == 0);
  CHECK(naive.condition >= 1e13);
  CHECK(naive.backward_error >= 1e-4);
  CHECK(naive.backward_error >= 1e8 * ptd.backward_error);
}

TEST_CASE("ptd: cond(V) falls as the perturbation grows (the PTD trade-off)", "[s4_ptd]") {
  const Eigen::MatrixXd A = ssmkit::hippo::transition(ssmkit::hippo::measure::legs, 64).A;
  double previous = INFINITY;
  for (const double eps : {1e-6, 1e-4, 1e-2}) {
    const auto d = ssmkit::ptd::perturb_then_diagonalize(A, {eps, 3});
    INFO("relative_norm " << eps << ": cond " << d.condition << " backward " << d.backward_error);
    CHECK(d.condition < previous);
    CHECK(d.backward_error <= 1e-16 * d.condition * 100);  // O(eps cond(V))
    previous = d.condition;
  }
}

TEST_CASE("ptd: the normal part of LegS diagonalises with cond(V) ~ 1 even unperturbed", "[s4_ptd]") {
  const Eigen::MatrixXd S = ssmkit::hippo::transition(ssmkit::hippo::measure::legsd, 64).A;
  const auto d = ssmkit::ptd::perturb_then_diagonalize(S, {0.0, 0});
  INFO("cond " << d.condition << " backward " << d.backward_error);
  CHECK(d.condition <= 10);
  CHECK(d.backward_error <= 1e-13);
}

TEST_CASE("ptd: the perturbation is reproducible from the seed", "[s4_ptd]") {
  const Eigen::MatrixXd A = ssmkit::hippo::transition(ssmkit::hippo::measure::legs, 16).A;
  const auto a = ssmkit::ptd::perturb_then_diagonalize(A, {1e-3, 42});
  const auto b = ssmkit::ptd::perturb_then_diagonalize(A, {1e-3, 42});
  const auto c = ssmkit::ptd::perturb_then_diagonalize(A, {1e-3, 43});
  CHECK(a.E == b.E);
  CHECK(a.Lambda == b.Lambda);
  CHECK((a.E - c.E).norm() > 0);
}

TEST_CASE("ptd::diag_init gives an S4D-style half spectrum of LegS + E", "[s4_ptd]") {
  const Eigen::Index N = 64;
  const auto p = ssmkit::ptd::diag_init(ssmkit::hippo::measure::legs, N);
  REQUIRE(p.A.size() == N / 2);
  REQUIRE(p.B.size() == N / 2);
  double max_re = -INFINITY;
  for (Eigen::Index n = 0; n < N / 2; ++n) {
    CHECK(p.A(n).imag() <= 0);
    if (n > 0) CHECK(p.A(n).imag() >= p.A(n - 1).imag());
    max_re = std::max(max_re, p.A(n).real());
  }
  INFO("max Re A " << max_re << ", real eigenvalues " << p.real_eigenvalues);
  CHECK(max_re < 0);  // the perturbed spectrum stays stable at this perturbation size
  // Each kept eigenvalue's conjugate is an eigenvalue of the real matrix A + E.
  for (Eigen::Index n = 0; n < N / 2; ++n) {
    double nearest = INFINITY;
    for (Eigen::Index i = 0; i < N; ++i) nearest = std::min(nearest, std::abs(p.full.Lambda(i) - std::conj(p.A(n))));
    CHECK(nearest <= 1e-8 * std::abs(p.A(n)));
  }
  // B~ = V^-1 B_H: V B~ (over all N modes) reproduces B_H.
  const Eigen::VectorXd B_H = ssmkit::hippo::transition(ssmkit::hippo::measure::legs, N).B;
  const Eigen::VectorXcd B_all = p.full.V_inverse * B_H.cast<std::complex<double>>();
  CHECK((p.full.V * B_all - B_H.cast<std::complex<double>>()).norm() <= 1e-10 * B_H.norm());
  ssmkit::ptd::diag_init_options positive;
  positive.positive_imaginary = true;
  const auto q = ssmkit::ptd::diag_init(ssmkit::hippo::measure::legs, N, positive);
  for (Eigen::Index n = 0; n < N / 2; ++n) {
    CHECK(q.A(n).imag() >= 0);
    if (n > 0) CHECK(q.A(n).imag() >= q.A(n - 1).imag());
  }
}

TEST_CASE("ptd rejects bad input with exact messages", "[s4_ptd]") {
  CHECK(error_of([] { ssmkit::ptd::perturb_then_diagonalize(Eigen::MatrixXd::Ones(2, 3)); }) ==
        "ptd::perturb_then_diagonalize: A must be square and non-empty, got (2, 3)");
  CHECK(error_of([] {
          ssmkit::ptd::perturb_then_diagonalize(Eigen::MatrixXd::Ones(2, 2), {-1.0, 0});
        }) == "ptd::perturb_then_diagonalize: relative_norm must be >= 0 and finite, got -1");
  CHECK(error_of([] {
          ssmkit::ptd::perturb_then_diagonalize(Eigen::MatrixXd::Zero(2, 2), {1e-3, 0});
        }) == "ptd::perturb_then_diagonalize: A is zero: a relative perturbation is undefined");
  CHECK(error_of([] { ssmkit::ptd::diag_init(ssmkit::hippo::measure::legs, 7); }) ==
        "ptd::diag_init: N must be even and >= 2, got 7");
}
