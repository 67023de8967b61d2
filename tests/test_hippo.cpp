// HiPPO transition matrices, rank corrections, NPLR, and the S4D initialisations: closed forms,
// the normal-part properties of reference-semantics.md section 1.3, eigenvalues, reconstructions
// and the canonical phase, and exact error messages.
#include <cmath>
#include <complex>
#include <string>

#include <Eigen/Dense>
#include <Eigen/Eigenvalues>

#include <ssmkit/hippo.hpp>
#include <ssmkit/s4d_init.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace hippo = ssmkit::hippo;
using ssm_test::error_of;

namespace {

Eigen::MatrixXd normal_part(hippo::measure m, Eigen::Index N, Eigen::Index rank) {
  const auto t = hippo::transition(m, N);
  const Eigen::MatrixXd P = hippo::rank_correction(m, N, rank);
  return t.A + P.transpose() * P;
}

}  // namespace

TEST_CASE("legs transition matches its closed form", "[hippo]") {
  const auto t = hippo::transition(hippo::measure::legs, 5);
  for (int n = 0; n < 5; ++n) {
    CHECK(t.B(n) == std::sqrt(2.0 * n + 1));
    for (int k = 0; k < 5; ++k) {
      const double want = n > k ? -std::sqrt((2.0 * n + 1) * (2.0 * k + 1)) : (n == k ? -(n + 1.0) : 0.0);
      CHECK(t.A(n, k) == ssm_test::Approx(want).epsilon(1e-15).margin(0));
    }
  }
  // N = 1 works for the non-Fourier measures.
  const auto one = hippo::transition("legs", 1);
  CHECK(one.A(0, 0) == -1.0);
  CHECK(one.B(0) == 1.0);
}

TEST_CASE("every measure builds at N = 4 and 8, aliases included", "[hippo]") {
  for (const char* name : {"legs", "legt", "lmu", "lagt", "tlagt", "glagt", "legsd", "fout", "fourier", "foud",
                           "fourier_diag", "fourier_decay", "fourier2"}) {
    for (const Eigen::Index N : {4, 8}) {
      const auto t = hippo::transition(name, N);
      CHECK(t.A.rows() == N);
      CHECK(t.B.size() == N);
      CHECK(t.A.allFinite());
    }
  }
  CHECK(hippo::parse_measure("fourier") == hippo::measure::fout);
  CHECK(hippo::parse_measure("fourier_diag") == hippo::measure::foud);
}

TEST_CASE("glagt with alpha = 0 is a diagonally scaled lagt-like matrix; beta defaults", "[hippo]") {
  const auto g = hippo::transition(hippo::measure::glagt, 6);
  CHECK(g.A(0, 0) == ssm_test::Approx(-(1 + 0.01) / 2));
  CHECK(g.A(3, 1) == ssm_test::Approx(-1.0));
  CHECK(g.B(2) == ssm_test::Approx(std::pow(0.01, 0.5)));
  hippo::measure_args args;
  args.beta = 0.5;
  const auto l = hippo::transition(hippo::measure::lagt, 3, args);
  CHECK(l.B(1) == 0.5);
  const auto tl = hippo::transition(hippo::measure::tlagt, 3, args);
  CHECK(tl.A(1, 1) == ssm_test::Approx((1 - 0.5) / 2 - 1));
}

TEST_CASE("normal parts: LegS is -I/2 + skew; LegT, LagT, FouT are skew; legsd and foud are normal", "[hippo]") {
  for (const Eigen::Index N : {4, 9, 16, 64}) {
    const Eigen::MatrixXd S = normal_part(hippo::measure::legs, N, 1);
    const Eigen::MatrixXd K = S + 0.5 * Eigen::MatrixXd::Identity(N, N);
    CHECK((K + K.transpose()).cwiseAbs().maxCoeff() <= 1e-12 * N);
    for (Eigen::Index n = 0; n < N; ++n) {
      for (Eigen::Index k = 0; k < n; ++k) {
        CHECK(K(n, k) == ssm_test::Approx(-0.5 * std::sqrt((2.0 * n + 1) * (2.0 * k + 1))).epsilon(1e-14));
      }
    }
  }
  for (const auto& [m, rank] : {std::pair{hippo::measure::legt, 2}, std::pair{hippo::measure::lagt, 1},
                                std::pair{hippo::measure::fout, 1}}) {
    const Eigen::MatrixXd S = normal_part(m, 16, rank);
    CHECK((S + S.transpose()).cwiseAbs().maxCoeff() <= 1e-13);
  }
  CHECK(hippo::rank_correction(hippo::measure::legsd, 8).isZero());
  CHECK(hippo::rank_correction(hippo::measure::foud, 8).isZero());
  const auto foud = hippo::transition(hippo::measure::foud, 8).A;
  const Eigen::MatrixXd skew = foud + 0.5 * Eigen::MatrixXd::Identity(8, 8);
  CHECK((skew + skew.transpose()).isZero());
  // Rows beyond the natural rank are zero.
  const auto P3 = hippo::rank_correction(hippo::measure::legs, 6, 3);
  CHECK(P3.rows() == 3);
  CHECK(P3.bottomRows(2).isZero());
}

TEST_CASE("LegS eigenvalues are -(n+1)", "[hippo]") {
  const Eigen::Index N = 12;
  const Eigen::EigenSolver<Eigen::MatrixXd> es(hippo::transition(hippo::measure::legs, N).A);
  std::vector<double> re;
  for (Eigen::Index i = 0; i < N; ++i) {
    CHECK(std::abs(es.eigenvalues()(i).imag()) <= 1e-9);
    re.push_back(es.eigenvalues()(i).real());
  }
  std::sort(re.begin(), re.end(), std::greater<>());
  for (Eigen::Index i = 0; i < N; ++i) CHECK(re[static_cast<std::size_t>(i)] == ssm_test::Approx(-(i + 1.0)).epsilon(1e-8));
}

TEST_CASE("nplr reconstructs the normal part and has orthonormal V", "[hippo][nplr]") {
  for (const auto& [m, rank] : {std::pair{hippo::measure::legs, 1}, std::pair{hippo::measure::legt, 2},
                                std::pair{hippo::measure::lagt, 1}, std::pair{hippo::measure::fout, 1},
                                std::pair{hippo::measure::fourier_decay, 1}, std::pair{hippo::measure::fourier2, 1}}) {
    for (const Eigen::Index N : {4, 8, 16, 64}) {
      hippo::nplr_options o;
      o.rank = rank;
      const auto d = hippo::nplr(m, N, o);
      REQUIRE(d.W.size() == N / 2);
      const Eigen::MatrixXd S = normal_part(m, N, rank);
      const Eigen::MatrixXd rebuilt = 2.0 * (d.V * d.W.asDiagonal() * d.V.adjoint()).real();
      INFO(hippo::measure_name(m) << " N=" << N);
      // Backward-stable eigensolver: error ~ N eps ||S||.
      CHECK((rebuilt - S).cwiseAbs().maxCoeff() <= 1e-13 * N * S.norm());
      const Eigen::MatrixXcd gram = d.V.adjoint() * d.V;
      CHECK((gram - Eigen::MatrixXcd::Identity(N / 2, N / 2)).cwiseAbs().maxCoeff() <= 1e-13 * N);
      // Ascending imaginary part, most negative first.
      for (Eigen::Index n = 1; n < N / 2; ++n) CHECK(d.W(n).imag() >= d.W(n - 1).imag());
    }
  }
}

TEST_CASE("nplr LegS: W values, real canonical phase, inactive B clip", "[hippo][nplr]") {
  const auto d = hippo::nplr(hippo::measure::legs, 8);
  const double want[] = {19.85741, 5.354209, 1.957794, 0.427489};
  for (int n = 0; n < 4; ++n) {
    CHECK(d.W(n).real() == ssm_test::Approx(-0.5).epsilon(1e-14));
    CHECK(d.W(n).imag() == ssm_test::Approx(-want[n]).epsilon(1e-6));
    CHECK(std::abs(d.P(0, n).imag()) <= 1e-13);
    CHECK(d.P(0, n).real() > 0);
    // B = sqrt2 P in the original basis, so B~ is real and the clip at 2 does nothing.
    CHECK(std::abs(d.B(n).imag()) <= 1e-13);
    CHECK(d.B(n).real() == ssm_test::Approx(std::sqrt(2.0) * d.P(0, n).real()).epsilon(1e-13));
  }
  // The phase does not depend on the clip, and a large N stays real too.
  const auto big = hippo::nplr(hippo::measure::legs, 64);
  CHECK(big.B.imag().cwiseAbs().maxCoeff() <= 1e-12);
}

TEST_CASE("nplr Fourier: the zero eigenvalue gets (e0 + i e1)/sqrt2", "[hippo][nplr]") {
  const auto d = hippo::nplr(hippo::measure::fout, 8);
  CHECK(std::abs(d.W(3)) <= 1e-12);
  CHECK(d.V(0, 3) == std::complex<double>(std::sqrt(0.5), 0));
  CHECK(d.V(1, 3) == std::complex<double>(0, std::sqrt(0.5)));
  // odd N: the unpaired eigenvalue is dropped
  CHECK(hippo::nplr(hippo::measure::legs, 5).W.size() == 2);
}

TEST_CASE("hippo bad inputs give exact messages", "[hippo][errors]") {
  CHECK(error_of([] { hippo::transition(hippo::measure::legs, 0); }) == "hippo::transition: N must be >= 1, got 0");
  CHECK(error_of([] { hippo::transition(hippo::measure::fout, 5); }) ==
        "hippo::transition: N must be even for measure fout, got 5");
  CHECK(error_of([] { hippo::transition("nope", 4); }).rfind("hippo::parse_measure: unknown measure 'nope'", 0) == 0);
  CHECK(error_of([] { hippo::rank_correction(hippo::measure::legt, 4, 1); }) ==
        "hippo::rank_correction: measure legt needs rank >= 2, got 1");
  CHECK(error_of([] { hippo::rank_correction(hippo::measure::lmu, 4); })
            .rfind("hippo::rank_correction: measure lmu has no rank correction", 0) == 0);
  CHECK(error_of([] { hippo::nplr(hippo::measure::legs, 2); }) == "hippo::nplr: N must be >= 4, got 2");
  CHECK(error_of([] { hippo::nplr(hippo::measure::legt, 8); }) == "hippo::nplr: measure legt needs rank >= 2, got 1");
  CHECK(error_of([] { hippo::nplr(hippo::measure::glagt, 8); })
            .rfind("hippo::nplr: measure glagt has no rank correction", 0) == 0);
  CHECK(error_of([] { hippo::nplr(hippo::measure::fourier2, 7); }) ==
        "hippo::nplr: N must be even for measure fourier2, got 7");
}

TEST_CASE("S4D initialisations: closed forms, legs from nplr, options", "[s4d_init]") {
  const double pi = 3.14159265358979323846;
  const auto lin = ssmkit::s4d::diag("diag-lin", 8, 2);
  const auto inv = ssmkit::s4d::diag("inv", 8, 1);
  const auto real = ssmkit::s4d::diag("real", 8, 1);
  for (int n = 0; n < 4; ++n) {
    CHECK(lin.A(1, n) == std::complex<double>(-0.5, -pi * n));
    CHECK(lin.B(0, n) == 1.0);
    CHECK(inv.A(0, n).imag() == ssm_test::Approx(-(8 / pi) * (8.0 / (2 * n + 1) - 1)));
    CHECK(real.A(0, n) == std::complex<double>(-(n + 1.0), 0));
  }
  const auto legs = ssmkit::s4d::diag(ssmkit::s4d::diag_init::legs, 16, 3);
  const auto d = hippo::nplr(hippo::measure::legs, 16);
  for (int n = 0; n < 8; ++n) {
    CHECK(legs.A(2, n).real() == -0.5);
    CHECK(legs.A(2, n).imag() == ssm_test::Approx(d.W(n).imag()).epsilon(1e-15));
    CHECK(legs.B(0, n) == d.B(n));
  }
  ssmkit::s4d::diag_init_options o;
  o.B = ssmkit::s4d::b_init::unit_ccw;
  o.B_scale = 2;
  o.normalize = true;
  const auto u = ssmkit::s4d::diag("lin", 8, 1, o);
  double zeta = 0;
  for (int n = 0; n < 4; ++n) zeta += std::norm(u.B(0, n) / u.A(0, n));
  CHECK(2 * zeta == ssm_test::Approx(1.0));
  // Random options are reproducible from the seed.
  o.B = ssmkit::s4d::b_init::random;
  o.real_random = true;
  o.seed = 7;
  const auto r1 = ssmkit::s4d::diag("rand", 8, 2, o), r2 = ssmkit::s4d::diag("rand", 8, 2, o);
  CHECK(r1.A == r2.A);
  CHECK(r1.B == r2.B);
  o.seed = 8;
  CHECK(ssmkit::s4d::diag("rand", 8, 2, o).A != r1.A);
  // B_init legs with another init: B from LegS's NPLR as for init legs (a fuzz finding: the NPLR
  // was computed only for init legs, and B read an empty vector).
  ssmkit::s4d::diag_init_options legs_b;
  legs_b.B = ssmkit::s4d::b_init::legs;
  const auto lin_legs_b = ssmkit::s4d::diag("lin", 16, 2, legs_b);
  for (int n = 0; n < 8; ++n) CHECK(lin_legs_b.B(1, n) == d.B(n));
  const auto log_dt = ssmkit::s4d::init_log_dt(4, 8, {1e-3, 1e-1, false, 3});
  CHECK(log_dt.cols() == 8);
  CHECK(log_dt.maxCoeff() <= std::log(1e-1));
  CHECK(log_dt.minCoeff() >= std::log(1e-3));
}

TEST_CASE("Mamba's dt bias: softplus of the bias is dt, in [dt_min, dt_max], floored", "[s4d_init]") {
  const auto bias = ssmkit::s4d::init_dt_bias(64, {1e-3, 1e-1, true, 5});
  const auto log_dt = ssmkit::s4d::init_log_dt(64, 1, {1e-3, 1e-1, true, 5});
  for (Eigen::Index h = 0; h < 64; ++h) {
    const double dt = std::log1p(std::exp(bias(h)));  // softplus
    CHECK(dt == ssm_test::Approx(std::exp(log_dt(h, 0))).epsilon(1e-13));
    CHECK(dt >= 1e-3 * (1 - 1e-12));
    CHECK(dt <= 1e-1 * (1 + 1e-12));
  }
  // Small dt: the expm1 form keeps relative accuracy where log(exp(dt) - 1) would not.
  CHECK(std::log1p(std::exp(ssmkit::s4d::inverse_softplus(1e-9))) == ssm_test::Approx(1e-9).epsilon(1e-12));
  // The floor: dt below it becomes the floor.
  const auto floored = ssmkit::s4d::init_dt_bias(8, {1e-6, 2e-6, true, 1}, 1e-4);
  for (Eigen::Index h = 0; h < 8; ++h) CHECK(std::log1p(std::exp(floored(h))) == ssm_test::Approx(1e-4).epsilon(1e-12));
  CHECK(error_of([] { ssmkit::s4d::init_dt_bias(2, {}, 0.0); }) == "s4d::init_dt_bias: floor must be > 0, got 0");
}

TEST_CASE("S4D initialisation errors", "[s4d_init][errors]") {
  ssmkit::s4d::diag_init_options o;
  o.B = ssmkit::s4d::b_init::alternating;
  CHECK(error_of([&] { ssmkit::s4d::diag("lin", 6, 1, o); }) == "s4d::diag: B_init alternating needs N divisible by 4, got 6");
  CHECK(error_of([] { ssmkit::s4d::diag("lin", 7, 1); }) == "s4d::diag: N must be even and >= 2, got 7");
  CHECK(error_of([] { ssmkit::s4d::diag("legs", 2, 1); }) == "s4d::diag: init legs needs N >= 4, got 2");
  ssmkit::s4d::diag_init_options legs_b;
  legs_b.B = ssmkit::s4d::b_init::legs;
  CHECK(error_of([&] { ssmkit::s4d::diag("lin", 2, 1, legs_b); }) == "s4d::diag: B_init legs needs N >= 4, got 2");
  CHECK(error_of([] { ssmkit::s4d::diag("cubic", 8, 1); }).rfind("s4d::parse_diag_init: unknown init 'cubic'", 0) == 0);
  ssmkit::s4d::diag_init_options neg;
  neg.imag_scale = -1;
  CHECK(error_of([&] { ssmkit::s4d::diag("lin", 8, 1, neg); }).rfind("s4d::diag: A must have Re A < 1e-4 and Im A <= 0", 0) == 0);
  CHECK(error_of([] { ssmkit::s4d::init_log_dt(1, 1, {0.1, 0.01, true, 0}); }) ==
        "s4d::init_log_dt: need 0 < dt_min <= dt_max < inf, got dt_min = 0.1, dt_max = 0.01");
  // An infinite dt_max made log dt NaN (a fuzz finding).
  CHECK(error_of([] { ssmkit::s4d::init_log_dt(1, 1, {0.1, INFINITY, true, 0}); }) ==
        "s4d::init_log_dt: need 0 < dt_min <= dt_max < inf, got dt_min = 0.1, dt_max = inf");
}
