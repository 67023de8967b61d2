// The S4 DPLR kernel (Cauchy + Woodbury at the roots of unity) and its recurrent forms, against the
// dense Krylov materialisation C^T dA^l dB (discretize_dplr_bilinear + dense_kernel), the S4D
// bilinear kernel (P = 0), each other (float vs double, dense vs linear step), and exact messages.
//
// Tolerances, all normwise (relative to max_l |K_l|, or to max_t sum_s |K_s u_{t-s}| for a convolution):
//   - DPLR vs dense Krylov, double: both are backward-stable evaluations of the same kernel; the
//     Cauchy path rounds O(N2 + log2 L) times per value (the sum over modes and the FFT) and the
//     Krylov path O(N l) times at lag l, so a few hundred eps at these sizes. We check 1e-12;
//     measured worst 3.9e-14 (random rank 1-3, N2 <= 16, L <= 1024), 6.7e-15 for LegS (N <= 64),
//     6.5e-15 for P = 0 against the exact S4D bilinear kernel.
//   - float vs double on the same (float-rounded) inputs: the float kernel is the double computation
//     rounded once, so |K_f - K_d| <= 2^-24 |K_d| + 1e-12 max|K| elementwise. Against the unrounded
//     inputs: measured 5.1e-7 (the kernel's condition in its inputs), checked at 1e-5.
//   - step == convolution at L = 4096: double checked at 1e-12 (measured 1.3e-14); float: the state
//     error grows at worst like t eps_float (4096 * 6e-8 = 2.4e-4), in practice like sqrt(t) eps:
//     measured 1.5e-6 (dense) and 1.1e-6 (linear), checked at 1e-5.
//   - linear == dense step: same maths, different rounding: checked at 1e-13.
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/discretize.hpp>
#include <ssmkit/hippo.hpp>
#include <ssmkit/s4_dplr.hpp>
#include <ssmkit/s4d.hpp>

#include "allocation_counter.hpp"
#include "catch_compat.hpp"
#include "test_support.hpp"

using ssm_test::error_of;
using cd = std::complex<double>;

namespace {

struct dplr_problem {
  std::size_t channels, H, N2, rank;
  std::vector<double> dt;
  std::vector<cd> Lambda, P, B, C;  // (H, N2), (rank, H, N2), (H, N2), (channels, H, N2)
};

// A random stable DPLR system: Lambda = -a - i b with a in [0.25, 0.75], S4D-Lin-like frequencies
// b ~ pi n, P, B, C complex uniform in [-1, 1]^2 (P scaled by p_scale). A = Lambda - p^ p^* has
// Hermitian part <= -0.25 I, so every such system is stable and dA contractive.
dplr_problem random_problem(std::size_t channels, std::size_t H, std::size_t N2, std::size_t rank, std::uint32_t seed,
                            double p_scale = 0.5) {
  dplr_problem p{channels, H, N2, rank, {}, {}, {}, {}, {}};
  const auto r =
      ssm_test::uniform<double>(2 * (H + 2 * H * N2 + rank * H * N2 + H * N2 + channels * H * N2), -1, 1, seed);
  std::size_t k = 0;
  for (std::size_t h = 0; h < H; ++h)
    p.dt.push_back(std::exp(std::log(1e-3) + (std::log(1e-1) - std::log(1e-3)) * (r[k++] + 1) / 2));
  for (std::size_t h = 0; h < H; ++h) {
    for (std::size_t n = 0; n < N2; ++n, k += 2) {
      p.Lambda.emplace_back(-0.5 + 0.25 * r[k], -3.14159265358979 * static_cast<double>(n) * (1 + 0.2 * r[k + 1]));
    }
  }
  for (std::size_t i = 0; i < rank * H * N2; ++i, k += 2) p.P.emplace_back(p_scale * r[k], p_scale * r[k + 1]);
  for (std::size_t i = 0; i < H * N2; ++i, k += 2) p.B.emplace_back(r[k], r[k + 1]);
  for (std::size_t i = 0; i < channels * H * N2; ++i, k += 2) p.C.emplace_back(r[k], r[k + 1]);
  return p;
}

// LegS through hippo::nplr (rank 1), one channel, with dt per channel and random C.
dplr_problem legs_problem(std::size_t N, std::size_t H, std::uint32_t seed) {
  const auto nplr = ssmkit::hippo::nplr(ssmkit::hippo::measure::legs, static_cast<Eigen::Index>(N));
  const std::size_t N2 = N / 2;
  dplr_problem p{1, H, N2, 1, {}, {}, {}, {}, {}};
  const auto r = ssm_test::uniform<double>(2 * H * N2 + H, -1, 1, seed);
  for (std::size_t h = 0; h < H; ++h) p.dt.push_back(0.01 * (1.5 + r[2 * H * N2 + h]));
  for (std::size_t h = 0; h < H; ++h) {
    for (std::size_t n = 0; n < N2; ++n) {
      p.Lambda.push_back(nplr.W(static_cast<Eigen::Index>(n)));
      p.P.push_back(nplr.P(0, static_cast<Eigen::Index>(n)));
      p.B.push_back(nplr.B(static_cast<Eigen::Index>(n)));
      p.C.emplace_back(r[2 * (h * N2 + n)], r[2 * (h * N2 + n) + 1]);
    }
  }
  return p;
}

template <class T>
std::vector<std::complex<T>> cast_complex(const std::vector<cd>& v) {
  std::vector<std::complex<T>> out;
  for (const auto& z : v) out.emplace_back(static_cast<T>(z.real()), static_cast<T>(z.imag()));
  return out;
}

template <class T>
std::vector<T> dplr_kernel(const dplr_problem& p, std::size_t L, ssmkit::s4_dplr_kernel_options options = {}) {
  const std::vector<T> dt(p.dt.begin(), p.dt.end());
  const auto Lambda = cast_complex<T>(p.Lambda), P = cast_complex<T>(p.P), B = cast_complex<T>(p.B),
             C = cast_complex<T>(p.C);
  std::vector<T> K(p.channels * p.H * L);
  ssmkit::s4_dplr_kernel<T>(ssmkit::make_view(dt, p.H, 1), ssmkit::make_view(Lambda, p.H, p.N2),
                            ssmkit::make_view(P, p.rank, p.H, p.N2), ssmkit::make_view(B, p.H, p.N2),
                            ssmkit::make_view(C, p.channels, p.H, p.N2), ssmkit::make_view(K, p.channels, p.H, L),
                            options);
  return K;
}

// The dense Krylov kernel (channels, H, L) with the original C, in double.
std::vector<double> krylov_kernel(const dplr_problem& p, std::size_t L) {
  std::vector<double> K(p.channels * p.H * L);
  const auto N2 = static_cast<Eigen::Index>(p.N2);
  for (std::size_t h = 0; h < p.H; ++h) {
    Eigen::VectorXcd lambda(N2), b(N2);
    Eigen::MatrixXcd pm(static_cast<Eigen::Index>(p.rank), N2);
    for (Eigen::Index n = 0; n < N2; ++n) {
      lambda(n) = p.Lambda[h * p.N2 + static_cast<std::size_t>(n)];
      b(n) = p.B[h * p.N2 + static_cast<std::size_t>(n)];
      for (std::size_t r = 0; r < p.rank; ++r)
        pm(static_cast<Eigen::Index>(r), n) = p.P[(r * p.H + h) * p.N2 + static_cast<std::size_t>(n)];
    }
    const auto sys = ssmkit::discretize_dplr_bilinear(p.dt[h], lambda, pm, b);
    for (std::size_t c = 0; c < p.channels; ++c) {
      Eigen::VectorXcd cf(2 * N2);
      for (Eigen::Index n = 0; n < N2; ++n) {
        cf(n) = p.C[(c * p.H + h) * p.N2 + static_cast<std::size_t>(n)];
        cf(N2 + n) = std::conj(cf(n));
      }
      const Eigen::VectorXd k = ssmkit::dense_kernel(sys, cf, L);
      for (std::size_t l = 0; l < L; ++l) K[(c * p.H + h) * L + l] = k(static_cast<Eigen::Index>(l));
    }
  }
  return K;
}

// The causal convolution y[b, c, h, t] = sum_{s<=t} K[c, h, s] u[b, h, t - s], in long double, and
// the scale sum_s |K| |u| that bounds its rounding.
struct convolution {
  std::vector<double> y;
  double scale = 0;
};
convolution causal_convolution(const std::vector<double>& K, const std::vector<double>& u, std::size_t batch,
                               std::size_t channels, std::size_t H, std::size_t L) {
  convolution out{std::vector<double>(batch * channels * H * L), 0};
  for (std::size_t b = 0; b < batch; ++b) {
    for (std::size_t c = 0; c < channels; ++c) {
      for (std::size_t h = 0; h < H; ++h) {
        const double* k = &K[(c * H + h) * L];
        const double* x = &u[(b * H + h) * L];
        for (std::size_t t = 0; t < L; ++t) {
          long double sum = 0, mag = 0;
          for (std::size_t s = 0; s <= t; ++s) {
            sum += static_cast<long double>(k[s]) * x[t - s];
            mag += std::abs(static_cast<long double>(k[s]) * x[t - s]);
          }
          out.y[((b * channels + c) * H + h) * L + t] = static_cast<double>(sum);
          out.scale = std::max(out.scale, static_cast<double>(mag));
        }
      }
    }
  }
  return out;
}

}  // namespace

TEST_CASE("s4_dplr_kernel equals the dense Krylov kernel for rank 1, 2 and 3", "[s4_dplr]") {
  const std::size_t rank = GENERATE(1, 2, 3);
  const std::size_t N2 = GENERATE(1, 4, 7, 16);
  const std::size_t L = GENERATE(1, 2, 15, 64, 97, 100, 255, 1024);
  const auto p = random_problem(2, 3, N2, rank, static_cast<std::uint32_t>(1000 * rank + 10 * N2 + L));
  const auto K = dplr_kernel<double>(p, L);
  const auto want = krylov_kernel(p, L);
  const double err = ssm_test::max_rel_error(K, want);
  INFO("rank " << rank << " N2 " << N2 << " L " << L << " error " << err);
  CHECK(err <= 1e-12);
}

TEST_CASE("s4_dplr_kernel equals the dense Krylov kernel for HiPPO-LegS", "[s4_dplr]") {
  const std::size_t N = GENERATE(8, 16, 64);
  const std::size_t L = GENERATE(64, 257, 1024);
  const auto p = legs_problem(N, 2, static_cast<std::uint32_t>(N + L));
  const double err = ssm_test::max_rel_error(dplr_kernel<double>(p, L), krylov_kernel(p, L));
  INFO("N " << N << " L " << L << " error " << err);
  CHECK(err <= 1e-12);
}

TEST_CASE("s4_dplr_kernel: C~ inputs and both power methods agree", "[s4_dplr]") {
  const auto p = random_problem(2, 2, 6, 2, 77);
  const std::size_t L = 50;
  const auto want = krylov_kernel(p, L);
  ssmkit::s4_dplr_kernel_options iterate;
  iterate.power = ssmkit::dplr_power_method::iteration;
  CHECK(ssm_test::max_rel_error(dplr_kernel<double>(p, L, iterate), want) <= 1e-12);

  // C~ from s4_dplr_c_tilde, then the kernel with c_input = tilde.
  auto q = p;
  std::vector<cd> C_tilde(q.C.size()), C_tilde_iter(q.C.size());
  ssmkit::s4_dplr_c_tilde<double>(ssmkit::make_view(q.dt, 2, 1), ssmkit::make_view(q.Lambda, 2, 6),
                                  ssmkit::make_view(q.P, 2, 2, 6), ssmkit::make_view(q.B, 2, 6),
                                  ssmkit::make_view(q.C, 2, 2, 6), L, ssmkit::make_view(C_tilde, 2, 2, 6));
  ssmkit::s4_dplr_c_tilde<double>(ssmkit::make_view(q.dt, 2, 1), ssmkit::make_view(q.Lambda, 2, 6),
                                  ssmkit::make_view(q.P, 2, 2, 6), ssmkit::make_view(q.B, 2, 6),
                                  ssmkit::make_view(q.C, 2, 2, 6), L, ssmkit::make_view(C_tilde_iter, 2, 2, 6),
                                  ssmkit::dplr_power_method::iteration);
  for (std::size_t i = 0; i < C_tilde.size(); ++i) CHECK(std::abs(C_tilde[i] - C_tilde_iter[i]) <= 1e-13);
  q.C = C_tilde;
  ssmkit::s4_dplr_kernel_options tilde;
  tilde.c_input = ssmkit::dplr_c_input::tilde;
  CHECK(ssm_test::max_rel_error(dplr_kernel<double>(q, L, tilde), want) <= 1e-12);
  // Without the (I - dA^L) correction the kernel is aliased: C~ given as if it were C differs.
  CHECK(ssm_test::max_rel_error(dplr_kernel<double>(q, L), want) > 1e-6);
}

TEST_CASE("s4_dplr_kernel with P = 0 is the S4D bilinear kernel", "[s4_dplr]") {
  const std::size_t L = GENERATE(1, 2, 33, 128);
  const std::size_t rank = GENERATE(0, 1, 2);
  auto p = random_problem(2, 3, 5, rank, static_cast<std::uint32_t>(L + rank));
  for (auto& x : p.P) x = 0;
  const auto K = dplr_kernel<double>(p, L);
  std::vector<double> want(p.channels * p.H * L);
  ssmkit::s4d_kernel_options options;
  options.method = ssmkit::discretization::bilinear;
  options.exact = true;
  ssmkit::s4d_kernel<double>(ssmkit::make_view(p.dt, p.H, 1), ssmkit::make_view(p.Lambda, p.H, p.N2),
                             ssmkit::make_view(p.B, p.H, p.N2), ssmkit::make_view(p.C, p.channels, p.H, p.N2),
                             ssmkit::make_view(want, p.channels, p.H, L), options);
  const double err = ssm_test::max_rel_error(K, want);
  INFO("L " << L << " rank " << rank << " error " << err);
  CHECK(err <= 1e-12);
}

TEST_CASE("s4_dplr_kernel at the Nyquist node: finite and exact for even L", "[s4_dplr]") {
  // L = 2: nodes omega = 1 and omega = exp(-i pi) (1 + omega ~ 1e-16, never rounded to -1).
  const auto p = random_problem(1, 1, 3, 1, 5);
  for (const std::size_t L : {std::size_t{2}, std::size_t{4}, std::size_t{6}}) {
    const auto K = dplr_kernel<double>(p, L);
    for (const double k : K) CHECK(std::isfinite(k));
    CHECK(ssm_test::max_rel_error(K, krylov_kernel(p, L)) <= 1e-12);
  }
}

TEST_CASE("s4_dplr_kernel in float is the double kernel rounded once", "[s4_dplr]") {
  const std::size_t L = GENERATE(7, 64, 300);
  const auto p0 = random_problem(2, 2, 8, 2, static_cast<std::uint32_t>(L));
  // The float kernel sees float inputs: compare with the double kernel of the same rounded inputs.
  // (Through a volatile: g++ 12 -O2 -march=native folds double(float(x)) away inside std::complex.)
  const auto to_float = [](double x) {
    volatile float f = static_cast<float>(x);
    return static_cast<double>(f);
  };
  auto p = p0;
  for (auto& x : p.dt) x = to_float(x);
  for (auto* v : {&p.Lambda, &p.P, &p.B, &p.C}) {
    for (auto& z : *v) z = cd(to_float(z.real()), to_float(z.imag()));
  }
  const auto Kf = dplr_kernel<float>(p, L);
  const auto Kd = dplr_kernel<double>(p, L);
  double scale = 0;
  for (const double k : Kd) scale = std::max(scale, std::abs(k));
  for (std::size_t i = 0; i < Kd.size(); ++i) {
    CHECK(std::abs(static_cast<double>(Kf[i]) - Kd[i]) <= std::ldexp(std::abs(Kd[i]), -24) + 1e-12 * scale);
  }
  // Against the unrounded double problem the difference is the conditioning of the kernel in its
  // inputs: measured below 2e-7 relative; 1e-5 allows 100 eps_float of condition.
  const double err = ssm_test::max_rel_error(Kf, dplr_kernel<double>(p0, L));
  INFO("float vs double (unrounded inputs): " << err);
  CHECK(err <= 1e-5);
}

TEST_CASE("s4_dplr_kernel strided output", "[s4_dplr]") {
  const auto p = random_problem(2, 3, 4, 1, 9);
  const std::size_t L = 20;
  const auto want = dplr_kernel<double>(p, L);
  // K stored as (H, L, channels) and viewed as (channels, H, L).
  std::vector<double> store(p.channels * p.H * L);
  auto K = ssmkit::make_view(store, p.H, L, p.channels).permuted({2, 0, 1});
  ssmkit::s4_dplr_kernel<double>(ssmkit::make_view(p.dt, p.H, 1), ssmkit::make_view(p.Lambda, p.H, p.N2),
                                 ssmkit::make_view(p.P, 1, p.H, p.N2), ssmkit::make_view(p.B, p.H, p.N2),
                                 ssmkit::make_view(p.C, p.channels, p.H, p.N2), K);
  for (std::size_t c = 0; c < p.channels; ++c) {
    for (std::size_t h = 0; h < p.H; ++h) {
      for (std::size_t l = 0; l < L; ++l) CHECK(K(c, h, l) == want[(c * p.H + h) * L + l]);
    }
  }
}

TEST_CASE("s4_dplr_kernel and s4_dplr_recurrence reject bad input with exact messages", "[s4_dplr]") {
  std::vector<double> dt{0.1, 0.1}, K(2 * 2 * 8);
  std::vector<cd> Lambda(2 * 3, cd(-0.5, -1)), P(1 * 2 * 3), B(2 * 3, 1.0), C(2 * 2 * 3, 1.0);
  const auto dtv = ssmkit::make_view(dt, 2, 1);
  const auto Lv = ssmkit::make_view(Lambda, 2, 3);
  const auto Pv = ssmkit::make_view(P, 1, 2, 3);
  const auto Bv = ssmkit::make_view(B, 2, 3);
  const auto Cv = ssmkit::make_view(C, 2, 2, 3);
  const auto Kv = ssmkit::make_view(K, 2, 2, 8);
  CHECK(error_of([&] { ssmkit::s4_dplr_kernel<double>(dtv, Lv, Pv, Bv, Cv, ssmkit::make_view(K.data(), 2, 2, 0)); }) ==
        "s4_dplr_kernel: L must be >= 1, got K of shape (2, 2, 0)");
  CHECK(error_of([&] { ssmkit::s4_dplr_kernel<double>(dtv, Lv, ssmkit::make_view(P.data(), 1, 2, 2), Bv, Cv, Kv); }) ==
        "s4_dplr_kernel: P has shape (1, 2, 2), expected (rank, 2, 3) (the rank is its first extent)");
  CHECK(error_of([&] { ssmkit::s4_dplr_kernel<double>(ssmkit::make_view(dt, 1, 2), Lv, Pv, Bv, Cv, Kv); }) ==
        "s4_dplr_kernel: dt has shape (1, 2), expected (2, 1)");
  CHECK(error_of([&] { ssmkit::s4_dplr_kernel<double>(dtv, Lv, Pv, ssmkit::make_view(B.data(), 3, 2), Cv, Kv); }) ==
        "s4_dplr_kernel: B has shape (3, 2), expected (2, 3)");
  CHECK(error_of([&] { ssmkit::s4_dplr_kernel<double>(dtv, Lv, Pv, Bv, ssmkit::make_view(C.data(), 2, 3, 2), Kv); }) ==
        "s4_dplr_kernel: C has shape (2, 3, 2), expected (2, 2, 3)");
  CHECK(error_of([&] { ssmkit::s4_dplr_kernel<double>(dtv, Lv, Pv, Bv, Cv, ssmkit::make_view(K.data(), 1, 2, 16)); }) ==
        "s4_dplr_kernel: K has shape (1, 2, 16), expected (2, 2, 16)");
  dt[1] = 0;
  CHECK(error_of([&] { ssmkit::s4_dplr_kernel<double>(dtv, Lv, Pv, Bv, Cv, Kv); }) ==
        "s4_dplr_kernel: dt must be positive and finite, got 0 at (1, 0)");
  dt[1] = -1;
  CHECK(error_of([&] { ssmkit::s4_dplr_recurrence<double>(dtv, Lv, Pv, Bv, Cv); }) ==
        "s4_dplr_recurrence: dt must be positive and finite, got -1 at (1, 0)");
  dt[1] = 0.1;
  auto* aliased = reinterpret_cast<double*>(C.data());
  CHECK(error_of([&] { ssmkit::s4_dplr_kernel<double>(dtv, Lv, Pv, Bv, Cv, ssmkit::make_view(aliased, 2, 2, 3)); }) ==
        "s4_dplr_kernel: K overlaps C in memory");
  CHECK(error_of([&] {
          ssmkit::s4_dplr_kernel<double>(dtv, ssmkit::make_view(Lambda.data(), 2, 0),
                                         ssmkit::make_view(P.data(), 1, 2, 0), ssmkit::make_view(B.data(), 2, 0),
                                         ssmkit::make_view(C.data(), 2, 2, 0), Kv);
        }) == "s4_dplr_kernel: Lambda must have shape (H, N2) with H, N2 >= 1, got (2, 0)");
  ssmkit::s4_dplr_step_options tilde;
  tilde.c_input = ssmkit::dplr_c_input::tilde;
  CHECK(error_of([&] { ssmkit::s4_dplr_recurrence<double>(dtv, Lv, Pv, Bv, Cv, tilde); }) ==
        "s4_dplr_recurrence: c_input tilde needs the kernel length L >= 1, got 0");
  const ssmkit::s4_dplr_recurrence<double> rec(dtv, Lv, Pv, Bv, Cv);
  auto state = rec.make_state(3);
  std::vector<double> u(2 * 2), y(2 * 2 * 2);
  CHECK(error_of([&] { rec.step(ssmkit::make_view(u, 2, 2), state, ssmkit::make_view(y, 2, 2, 2)); }) ==
        "s4_dplr_recurrence::step: state has shape (3, 2, 3), expected (2, 2, 3) (make it with make_state)");
  CHECK(error_of([&] { rec.step(ssmkit::make_view(u, 2, 2), state, ssmkit::make_view(y, 2, 4, 1)); }) ==
        "s4_dplr_recurrence::step: y has shape (2, 4, 1), expected (2, 2, 2)");
}

namespace {

// Steps over u (batch, H, L) with the given form; returns y (batch, channels, H, L) and the final state.
template <class T>
std::pair<std::vector<T>, ssmkit::s4_dplr_state<T>> run_recurrence(const dplr_problem& p, const std::vector<double>& u,
                                                                   std::size_t batch, std::size_t L,
                                                                   ssmkit::dplr_step_form form) {
  const std::vector<T> dt(p.dt.begin(), p.dt.end()), uT(u.begin(), u.end());
  const auto Lambda = cast_complex<T>(p.Lambda), P = cast_complex<T>(p.P), B = cast_complex<T>(p.B),
             C = cast_complex<T>(p.C);
  ssmkit::s4_dplr_step_options options;
  options.form = form;
  const ssmkit::s4_dplr_recurrence<T> rec(ssmkit::make_view(dt, p.H, 1), ssmkit::make_view(Lambda, p.H, p.N2),
                                          ssmkit::make_view(P, p.rank, p.H, p.N2), ssmkit::make_view(B, p.H, p.N2),
                                          ssmkit::make_view(C, p.channels, p.H, p.N2), options);
  auto state = rec.make_state(batch);
  std::vector<T> y(batch * p.channels * p.H * L);
  rec.forward(ssmkit::make_view(uT, batch, p.H, L), state, ssmkit::make_view(y, batch, p.channels, p.H, L));
  return {y, std::move(state)};
}

}  // namespace

TEST_CASE("s4_dplr_recurrence: stepping over L = 4096 equals the convolution with the DPLR kernel", "[s4_dplr][step]") {
  const std::size_t L = 4096, batch = 2;
  const bool legs = GENERATE(false, true);
  const auto p = legs ? legs_problem(16, 2, 3) : random_problem(2, 2, 8, 2, 11);
  const auto u = ssm_test::uniform<double>(batch * p.H * L, -1, 1, 21);
  const auto K = dplr_kernel<double>(p, L);
  const auto conv = causal_convolution(K, u, batch, p.channels, p.H, L);
  for (const auto form : {ssmkit::dplr_step_form::dense, ssmkit::dplr_step_form::linear}) {
    const auto yd = run_recurrence<double>(p, u, batch, L, form).first;
    const auto yf = run_recurrence<float>(p, u, batch, L, form).first;
    double err_d = 0, err_f = 0;
    for (std::size_t i = 0; i < yd.size(); ++i) {
      err_d = std::max(err_d, std::abs(yd[i] - conv.y[i]) / conv.scale);
      err_f = std::max(err_f, std::abs(static_cast<double>(yf[i]) - conv.y[i]) / conv.scale);
    }
    INFO((legs ? "LegS N=16" : "random rank 2") << (form == ssmkit::dplr_step_form::dense ? " dense" : " linear")
                                                << ": double " << err_d << ", float " << err_f);
    CHECK(err_d <= 1e-12);
    CHECK(err_f <= 1e-5);
  }
}

TEST_CASE("s4_dplr_recurrence: the linear form equals the dense form", "[s4_dplr][step]") {
  const std::size_t rank = GENERATE(0, 1, 2, 3);
  const std::size_t L = 300, batch = 3;
  const auto p = random_problem(2, 3, 7, rank, static_cast<std::uint32_t>(40 + rank));
  const auto u = ssm_test::uniform<double>(batch * p.H * L, -1, 1, 5);
  const auto dense = run_recurrence<double>(p, u, batch, L, ssmkit::dplr_step_form::dense);
  const auto linear = run_recurrence<double>(p, u, batch, L, ssmkit::dplr_step_form::linear);
  CHECK(ssm_test::max_rel_error(linear.first, dense.first) <= 1e-13);
  // The linear state is the first half of the conjugate-expanded dense state.
  const auto xd = dense.second.x(), xl = linear.second.x();
  double err = 0, scale = 0;
  for (std::size_t b = 0; b < batch; ++b) {
    for (std::size_t h = 0; h < p.H; ++h) {
      for (std::size_t n = 0; n < p.N2; ++n) {
        err = std::max(err, std::abs(xl(b, h, n) - xd(b, h, n)));
        err = std::max(err, std::abs(std::conj(xl(b, h, n)) - xd(b, h, p.N2 + n)));
        scale = std::max(scale, std::abs(xd(b, h, n)));
      }
    }
  }
  CHECK(err <= 1e-13 * scale);
}

TEST_CASE("s4_dplr_recurrence: C~ input recovers C", "[s4_dplr][step]") {
  const std::size_t L = 64, Lk = 40;
  const auto p = random_problem(1, 2, 5, 1, 17);
  std::vector<cd> C_tilde(p.C.size());
  ssmkit::s4_dplr_c_tilde<double>(ssmkit::make_view(p.dt, 2, 1), ssmkit::make_view(p.Lambda, 2, 5),
                                  ssmkit::make_view(p.P, 1, 2, 5), ssmkit::make_view(p.B, 2, 5),
                                  ssmkit::make_view(p.C, 1, 2, 5), Lk, ssmkit::make_view(C_tilde, 1, 2, 5));
  const auto u = ssm_test::uniform<double>(2 * L, -1, 1, 8);
  const auto want = run_recurrence<double>(p, u, 1, L, ssmkit::dplr_step_form::linear).first;
  for (const auto form : {ssmkit::dplr_step_form::dense, ssmkit::dplr_step_form::linear}) {
    ssmkit::s4_dplr_step_options options;
    options.form = form;
    options.c_input = ssmkit::dplr_c_input::tilde;
    options.L = Lk;
    const ssmkit::s4_dplr_recurrence<double> rec(ssmkit::make_view(p.dt, 2, 1), ssmkit::make_view(p.Lambda, 2, 5),
                                                 ssmkit::make_view(p.P, 1, 2, 5), ssmkit::make_view(p.B, 2, 5),
                                                 ssmkit::make_view(C_tilde, 1, 2, 5), options);
    auto state = rec.make_state(1);
    std::vector<double> y(2 * L);
    rec.forward(ssmkit::make_view(u, 1, 2, L), state, ssmkit::make_view(y, 1, 1, 2, L));
    CHECK(ssm_test::max_rel_error(y, want) <= 1e-10);
  }
}

TEST_CASE("s4_dplr_recurrence: step and forward make no heap allocation", "[s4_dplr][step][allocation]") {
  const auto p = random_problem(2, 3, 6, 2, 3);
  const std::vector<float> dt(p.dt.begin(), p.dt.end());
  const auto Lambda = cast_complex<float>(p.Lambda), P = cast_complex<float>(p.P), B = cast_complex<float>(p.B),
             C = cast_complex<float>(p.C);
  std::vector<float> u(2 * 3 * 10, 0.5f), y(2 * 2 * 3 * 10), y1(2 * 2 * 3);
  for (const auto form : {ssmkit::dplr_step_form::dense, ssmkit::dplr_step_form::linear}) {
    ssmkit::s4_dplr_step_options options;
    options.form = form;
    const ssmkit::s4_dplr_recurrence<float> rec(ssmkit::make_view(dt, 3, 1), ssmkit::make_view(Lambda, 3, 6),
                                                ssmkit::make_view(P, 2, 3, 6), ssmkit::make_view(B, 3, 6),
                                                ssmkit::make_view(C, 2, 3, 6), options);
    auto state = rec.make_state(2);
    ssm_test::allocation_scope scope;
    rec.step(ssmkit::make_view(u.data(), 2, 3), state, ssmkit::make_view(y1, 2, 2, 3));
    rec.forward(ssmkit::make_view(u, 2, 3, 10), state, ssmkit::make_view(y, 2, 2, 3, 10));
    CHECK(scope.allocations() == 0);
  }
}
