// The S4D kernel (zoh, bilinear, dss) and its recurrence, against plainly written long double
// references, across sizes (1, primes, SIMD width +- 1, large odd), backends and layouts; plus
// step == convolution, zoh -> bilinear as dt -> 0, and exact error messages.
//
// Tolerances. Each kernel term W_n z_n^l carries about 5 roundings of T (table entries, anchor,
// Q = a z^j, the two FMAs) and the sum over N2 modes adds N2 more, so the error at lag l is below
// (5 + N2) eps_T S_l with S_l = sum_n |W_n| |z_n|^l, the sum of the magnitudes (the condition of
// the sum). The tests allow 4x that: tol_l = 4 (5 + N2) eps_T S_l. The double anchors add
// ~64 * 50 eps_double relative, which is under eps_float and within the factor 4 for double.
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/discretize.hpp>
#include <ssmkit/s4d.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

using ssm_test::error_of;
using cld = std::complex<long double>;

namespace {

struct problem {
  std::size_t channels, H, N2, L;
  bool tied;
  std::vector<double> dt;
  std::vector<std::complex<double>> A, B, C;
};

// S4D-Lin-like modes with a spread of decays, random B and C.
problem make_problem(std::size_t channels, std::size_t H, std::size_t N2, std::size_t L, bool tied, std::uint32_t seed,
                     double dt_lo = 1e-3, double dt_hi = 1e-1) {
  problem p{channels, H, N2, L, tied, {}, {}, {}, {}};
  const auto r = ssm_test::uniform<double>(4 * channels * H * N2 + 4 * H * N2, -1, 1, seed);
  std::size_t k = 0;
  const std::size_t ndt = tied ? H : H * N2;
  for (std::size_t i = 0; i < ndt; ++i) p.dt.push_back(std::exp(std::log(dt_lo) + (std::log(dt_hi) - std::log(dt_lo)) * (r[k++] + 1) / 2));
  for (std::size_t h = 0; h < H; ++h) {
    for (std::size_t n = 0; n < N2; ++n) {
      p.A.emplace_back(-0.5 * (1.5 + r[k]), -3.14159265358979 * double(n) * (1 + 0.1 * r[k + 1]));
      p.B.emplace_back(r[k + 2], r[k + 3]);
      k += 4;
    }
  }
  for (std::size_t i = 0; i < channels * H * N2; ++i, k += 2) p.C.emplace_back(r[k], r[k + 1]);
  return p;
}

// The problem's values rounded to T: the reference must see the kernel's actual inputs (a float
// dt A carries a relative error eps that the exponent l dt A turns into l eps at lag l).
// (The volatile is needed: g++ 12 -O2 -march=native folds double(float(x)) away when the result
// builds a std::complex, and the values would silently stay unrounded.)
template <class T>
problem rounded(problem p) {
  const auto to_T = [](double x) {
    volatile T t = static_cast<T>(x);
    return static_cast<double>(t);
  };
  for (auto& v : p.dt) v = to_T(v);
  const auto round = [&](std::complex<double> v) { return std::complex<double>(to_T(v.real()), to_T(v.imag())); };
  for (auto& v : p.A) v = round(v);
  for (auto& v : p.B) v = round(v);
  for (auto& v : p.C) v = round(v);
  return p;
}

// The reference kernel from the formulas of reference-semantics.md section 3, with long double
// powers by repeated multiplication. Also returns S_l, the sum of the terms' magnitudes.
void reference_kernel(const problem& p, ssmkit::discretization method, std::vector<long double>& K,
                      std::vector<long double>& S) {
  K.assign(p.channels * p.H * p.L, 0);
  S.assign(p.channels * p.H * p.L, 0);
  for (std::size_t c = 0; c < p.channels; ++c) {
    for (std::size_t h = 0; h < p.H; ++h) {
      for (std::size_t n = 0; n < p.N2; ++n) {
        const long double dt = p.dt[p.tied ? h : h * p.N2 + n];
        const cld A(p.A[h * p.N2 + n]), B(p.B[h * p.N2 + n]), C(p.C[(c * p.H + h) * p.N2 + n]);
        const cld D = dt * A;
        cld dA, coef, start = 1;
        long double gain = 2;
        if (method == ssmkit::discretization::zoh) {
          dA = std::exp(D);
          coef = (std::exp(D) - 1.0L) / A;
        } else if (method == ssmkit::discretization::bilinear) {
          dA = (1.0L + D / 2.0L) / (1.0L - D / 2.0L);
          coef = dt / (1.0L - D / 2.0L);
        } else {
          const bool pos = A.real() > 0;
          const cld Dn = pos ? -D : D;
          const cld x = (std::exp(Dn * (long double)p.L) - 1.0L) * A;
          coef = (std::exp(Dn) - 1.0L) * std::conj(x) / (std::norm(x) + 1e-7L);
          dA = std::exp(D);
          if (pos) start = std::exp(-(long double)(p.L - 1) * D);
          gain = 1;
        }
        cld term = gain * C * B * coef * start;
        for (std::size_t l = 0; l < p.L; ++l, term *= dA) {
          K[(c * p.H + h) * p.L + l] += term.real();
          S[(c * p.H + h) * p.L + l] += std::abs(term);
        }
      }
    }
  }
}

template <class T, class Arch>
std::vector<T> run_kernel(const problem& p, ssmkit::discretization method, bool exact = false) {
  std::vector<T> dt(p.dt.begin(), p.dt.end());
  std::vector<std::complex<T>> A(p.A.begin(), p.A.end()), B(p.B.begin(), p.B.end()), C(p.C.begin(), p.C.end());
  std::vector<T> K(p.channels * p.H * p.L, T(-999));
  ssmkit::s4d_kernel_options o;
  o.method = method;
  o.exact = exact;
  ssmkit::s4d_kernel<T, Arch>(ssmkit::make_view(dt, p.H, p.tied ? 1 : p.N2), ssmkit::make_view(A, p.H, p.N2),
                              ssmkit::make_view(B, p.H, p.N2), ssmkit::make_view(C, p.channels, p.H, p.N2),
                              ssmkit::make_view(K, p.channels, p.H, p.L), o);
  return K;
}

// max over entries of |got - ref| / tol, with tol = 4 ((5 + N2) eps_T + 8 l eps_double) S_l + floor. The
// second term is double's own limit: the exponent l D (|D| <= 4.5 here) is rounded in double, a
// phase error of l |D| eps_double, for any double implementation including the exact path.
template <class T>
double worst_ratio(const std::vector<T>& got, const std::vector<long double>& K, const std::vector<long double>& S,
                   std::size_t N2, std::size_t L) {
  const double eps = std::numeric_limits<T>::epsilon();
  const double eps_d = std::numeric_limits<double>::epsilon();
  double worst = 0;
  for (std::size_t i = 0; i < K.size(); ++i) {
    const double l = double(i % L);
    // Terms that decay below T's smallest normal number lose relative accuracy (gradual underflow):
    // an absolute floor of the same size covers them.
    const double floor = 4.0 * (5.0 + double(N2)) * double(std::numeric_limits<T>::min());
    const double tol = 4.0 * ((5.0 + double(N2)) * eps + 8.0 * l * eps_d) * double(S[i]) + floor;
    const double err = std::abs(double(got[i]) - double(K[i]));
    worst = std::max(worst, std::isfinite(err) ? err / tol : INFINITY);
  }
  return worst;
}

}  // namespace

TEMPLATE_TEST_CASE("s4d_kernel matches the long double reference across sizes and backends", "[s4d]", float, double) {
  using T = TestType;
  constexpr std::size_t w = ssmkit::detail::width_v<T, ssmkit::default_arch>;
  for (const auto method : {ssmkit::discretization::zoh, ssmkit::discretization::bilinear, ssmkit::discretization::dss}) {
    for (const std::size_t L : {std::size_t(1), std::size_t(2), w - 1, w, w + 1, std::size_t(97), 32 * w - 1, 32 * w,
                                32 * w + 1, std::size_t(4097)}) {
      for (const std::size_t N2 : {1, 3, 8, 13}) {
        if (L == 0) continue;
        const auto p = rounded<T>(make_problem(2, 3, N2, L, N2 != 3, static_cast<std::uint32_t>(L * 31 + N2)));
        std::vector<long double> K, S;
        reference_kernel(p, method, K, S);
        INFO("method " << int(method) << " L " << L << " N2 " << N2);
        CHECK(worst_ratio(run_kernel<T, ssmkit::default_arch>(p, method), K, S, N2, L) <= 1.0);
        CHECK(worst_ratio(run_kernel<T, ssmkit::scalar>(p, method), K, S, N2, L) <= 1.0);
        CHECK(worst_ratio(run_kernel<T, ssmkit::scalar>(p, method, true), K, S, N2, L) <= 1.0);
        CHECK(worst_ratio(run_kernel<double, ssmkit::scalar>(p, method, true), K, S, N2, L) <= 1.0);
      }
    }
  }
}

TEST_CASE("dss keeps positive-real modes bounded with the shifted form", "[s4d]") {
  auto p = make_problem(1, 2, 4, 64, true, 5);
  p.A[1] = {0.3, -2.0};
  p.A[6] = {0.05, -7.0};
  std::vector<long double> K, S;
  reference_kernel(p, ssmkit::discretization::dss, K, S);
  CHECK(worst_ratio(run_kernel<double, ssmkit::default_arch>(p, ssmkit::discretization::dss), K, S, 4, 64) <= 1.0);
}

TEST_CASE("s4d_kernel float32 at L = 16384: worst-row error below 1e-6 of the row's max", "[s4d][accuracy]") {
  const auto p = rounded<float>(make_problem(1, 8, 32, 16384, true, 11));
  std::vector<long double> K, S;
  reference_kernel(p, ssmkit::discretization::zoh, K, S);
  const auto got = run_kernel<float, ssmkit::default_arch>(p, ssmkit::discretization::zoh);
  double worst = 0;
  for (std::size_t h = 0; h < p.H; ++h) {
    double err = 0, scale = 0;
    for (std::size_t l = 0; l < p.L; ++l) {
      err = std::max(err, std::abs(double(got[h * p.L + l]) - double(K[h * p.L + l])));
      scale = std::max(scale, std::abs(double(K[h * p.L + l])));
    }
    worst = std::max(worst, err / scale);
  }
  INFO("worst row error relative to the row max: " << worst);
  CHECK(worst <= 1e-6);
}

TEST_CASE("s4d_kernel writes strided outputs and threads do not change the result", "[s4d]") {
  const auto p = make_problem(2, 5, 7, 300, true, 3);
  const auto want = run_kernel<double, ssmkit::default_arch>(p, ssmkit::discretization::zoh);
  std::vector<double> dt(p.dt);
  auto A = p.A, B = p.B, C = p.C;
  std::vector<double> Kt(p.L * p.H * p.channels);
  // A (L, H, channels) buffer viewed as (channels, H, L).
  auto K = ssmkit::make_view(Kt, p.L, p.H, p.channels).permuted({2, 1, 0});
  ssmkit::s4d_kernel_options o;
  o.parallel.num_threads = 2;
  ssmkit::s4d_kernel<double>(ssmkit::make_view(dt, p.H, 1), ssmkit::make_view(A, p.H, p.N2), ssmkit::make_view(B, p.H, p.N2),
                             ssmkit::make_view(C, p.channels, p.H, p.N2), K, o);
  double err = 0;
  for (std::size_t c = 0; c < p.channels; ++c)
    for (std::size_t h = 0; h < p.H; ++h)
      for (std::size_t l = 0; l < p.L; ++l) err = std::max(err, std::abs(K(c, h, l) - want[(c * p.H + h) * p.L + l]));
  CHECK(err == 0.0);
}

TEST_CASE("bandlimit drops the high-frequency modes", "[s4d]") {
  auto p = make_problem(1, 1, 4, 50, true, 9);
  p.dt = {0.5};
  // dt |Im A| / 2 pi for n = 0..3 is about 0, 0.25, 0.5, 0.75 (+-10%): bandlimit 0.8 keeps n = 0, 1.
  std::vector<double> dt(p.dt);
  auto A = p.A, B = p.B, C = p.C;
  std::vector<double> K(p.L);
  ssmkit::s4d_kernel_options o;
  o.bandlimit = 0.8;
  ssmkit::s4d_kernel<double>(ssmkit::make_view(dt, 1, 1), ssmkit::make_view(A, 1, 4), ssmkit::make_view(B, 1, 4),
                             ssmkit::make_view(C, 1, 1, 4), ssmkit::make_view(K, 1, 1, p.L), o);
  auto q = p;
  q.C[2] = q.C[3] = 0;
  std::vector<long double> R, S;
  reference_kernel(q, ssmkit::discretization::zoh, R, S);
  std::vector<double> Kd(K.begin(), K.end());
  CHECK(worst_ratio(Kd, R, S, 4, p.L) <= 1.0);
}

TEMPLATE_TEST_CASE("recurrent step equals the causal convolution with the kernel (L = 4096)", "[s4d][step]", float, double) {
  using T = TestType;
  for (const auto method : {ssmkit::discretization::zoh, ssmkit::discretization::bilinear}) {
    const std::size_t batch = 2, channels = 2, H = 3, N2 = 8, L = 4096;
    const auto p = make_problem(channels, H, N2, L, false, 21);
    const auto K = run_kernel<double, ssmkit::default_arch>(p, method);
    const auto u = ssm_test::uniform<T>(batch * H * L, -1, 1, 5);
    std::vector<T> dt(p.dt.begin(), p.dt.end());
    std::vector<std::complex<T>> A(p.A.begin(), p.A.end()), B(p.B.begin(), p.B.end()), C(p.C.begin(), p.C.end());
    std::vector<std::complex<T>> dA(H * N2), dB(H * N2), state(batch * H * N2);
    std::vector<T> y(batch * channels * H * L);
    ssmkit::s4d_step_setup<T>(ssmkit::make_view(dt, H, N2), ssmkit::make_view(A, H, N2), ssmkit::make_view(B, H, N2),
                              ssmkit::make_view(dA, H, N2), ssmkit::make_view(dB, H, N2), method);
    ssmkit::s4d_recurrence<T>(ssmkit::make_view(dA, H, N2), ssmkit::make_view(dB, H, N2),
                              ssmkit::make_view(C, channels, H, N2), ssmkit::make_view(u, batch, H, L),
                              ssmkit::make_view(state, batch, H, N2), ssmkit::make_view(y, batch, channels, H, L));
    // Direct causal convolution in double; the recurrence's error grows like t eps_T sum|K|
    // (one rounding per step carried by the decaying state), so the check is normwise per row
    // with 8 L eps_T over the row's sum |K| |u|max.
    double worst = 0;
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t c = 0; c < channels; ++c) {
        for (std::size_t h = 0; h < H; ++h) {
          const double* k = &K[(c * H + h) * L];
          double ksum = 0;
          for (std::size_t s = 0; s < L; ++s) ksum += std::abs(k[s]);
          for (std::size_t t = 0; t < L; t += 37) {
            double want = 0;
            for (std::size_t s = 0; s <= t; ++s) want += k[s] * double(u[(b * H + h) * L + t - s]);
            const double got = double(y[((b * channels + c) * H + h) * L + t]);
            worst = std::max(worst, std::abs(got - want) / (ksum + 1e-300));
          }
        }
      }
    }
    INFO("method " << int(method) << " worst normwise error " << worst);
    CHECK(worst <= (std::is_same_v<T, float> ? 8.0 * 4096 * 6e-8 : 1e-11));
  }
}

TEMPLATE_TEST_CASE("initial state: recurrence from s equals conv(u, K) + K_state", "[s4d][step]", float, double) {
  using T = TestType;
  for (const auto method : {ssmkit::discretization::zoh, ssmkit::discretization::bilinear}) {
    const std::size_t batch = 2, channels = 2, H = 2, N2 = 5, L = 301;
    const auto p = rounded<T>(make_problem(channels, H, N2, L, true, 17));
    const auto K = run_kernel<double, ssmkit::default_arch>(p, method);
    const auto u = ssm_test::uniform<T>(batch * H * L, -1, 1, 6);
    const auto s0 = ssm_test::uniform<T>(2 * batch * H * N2, -1, 1, 7);
    std::vector<T> dt(p.dt.begin(), p.dt.end());
    std::vector<std::complex<T>> A(p.A.begin(), p.A.end()), B(p.B.begin(), p.B.end()), C(p.C.begin(), p.C.end());
    std::vector<std::complex<T>> dA(H * N2), dB(H * N2), state(batch * H * N2);
    for (std::size_t i = 0; i < state.size(); ++i) state[i] = {s0[2 * i], s0[2 * i + 1]};
    std::vector<T> y(batch * channels * H * L), Ks(batch * channels * H * L);
    ssmkit::s4d_kernel_options o;
    o.method = method;
    ssmkit::s4d_state_kernel<T>(ssmkit::make_view(dt, H, 1), ssmkit::make_view(A, H, N2), ssmkit::make_view(C, channels, H, N2),
                                ssmkit::make_view(state, batch, H, N2), ssmkit::make_view(Ks, batch, channels, H, L), o);
    ssmkit::s4d_step_setup<T>(ssmkit::make_view(dt, H, 1), ssmkit::make_view(A, H, N2), ssmkit::make_view(B, H, N2),
                              ssmkit::make_view(dA, H, N2), ssmkit::make_view(dB, H, N2), method);
    ssmkit::s4d_recurrence<T>(ssmkit::make_view(dA, H, N2), ssmkit::make_view(dB, H, N2),
                              ssmkit::make_view(C, channels, H, N2), ssmkit::make_view(u, batch, H, L),
                              ssmkit::make_view(state, batch, H, N2), ssmkit::make_view(y, batch, channels, H, L));
    double worst = 0;
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t h = 0; h < H; ++h) {
          const double* k = &K[(c * H + h) * L];
          double scale = 1;
          for (std::size_t s = 0; s < L; ++s) scale += std::abs(k[s]);
          for (std::size_t t = 0; t < L; ++t) {
            double want = double(Ks[((b * channels + c) * H + h) * L + t]);
            for (std::size_t s = 0; s <= t; ++s) want += k[s] * double(u[(b * H + h) * L + t - s]);
            worst = std::max(worst, std::abs(double(y[((b * channels + c) * H + h) * L + t]) - want) / scale);
          }
        }
    INFO("method " << int(method) << " worst " << worst);
    CHECK(worst <= 8.0 * L * std::numeric_limits<T>::epsilon());
  }
  std::vector<double> dt{0.1}, Ks(4);
  std::vector<std::complex<double>> A{{-0.5, 1}}, C{1.0}, st{1.0};
  ssmkit::s4d_kernel_options dss;
  dss.method = ssmkit::discretization::dss;
  CHECK(error_of([&] {
          ssmkit::s4d_state_kernel<double>(ssmkit::make_view(dt, 1, 1), ssmkit::make_view(A, 1, 1), ssmkit::make_view(C, 1, 1, 1),
                                           ssmkit::make_view(st, 1, 1, 1), ssmkit::make_view(Ks, 1, 1, 1, 4), dss);
        }) == "s4d_state_kernel: the dss discretization has no state form (use zoh or bilinear)");
}

TEST_CASE("zoh tends to bilinear as dt -> 0", "[s4d]") {
  auto p = make_problem(1, 2, 6, 64, true, 4);
  double previous = INFINITY;
  for (const double dt : {1e-2, 1e-3, 1e-4}) {
    p.dt = {dt, dt};
    const auto z = run_kernel<double, ssmkit::default_arch>(p, ssmkit::discretization::zoh);
    const auto b = run_kernel<double, ssmkit::default_arch>(p, ssmkit::discretization::bilinear);
    double diff = 0, scale = 0;
    for (std::size_t i = 0; i < z.size(); ++i) {
      diff = std::max(diff, std::abs(z[i] - b[i]));
      scale = std::max(scale, std::abs(z[i]));
    }
    // Both are dt B C e^{l D} + O(dt^2): the relative difference shrinks like dt.
    CHECK(diff / scale <= 10 * dt);
    CHECK(diff / scale < previous);
    previous = diff / scale;
  }
}

TEST_CASE("dense DPLR path: P = 0 gives the S4D bilinear kernel; C~ removes the aliasing term", "[s4d][dplr]") {
  const auto p = make_problem(1, 2, 5, 40, true, 13);
  const auto want = run_kernel<double, ssmkit::default_arch>(p, ssmkit::discretization::bilinear);
  for (std::size_t h = 0; h < p.H; ++h) {
    Eigen::VectorXcd lambda(5), b(5), c(5), cf(10);
    for (int n = 0; n < 5; ++n) {
      lambda(n) = p.A[h * 5 + n];
      b(n) = p.B[h * 5 + n];
      c(n) = p.C[h * 5 + n];
    }
    cf << c, c.conjugate();
    const auto sys = ssmkit::discretize_dplr_bilinear(p.dt[h], lambda, Eigen::MatrixXcd::Zero(1, 5), b);
    const Eigen::VectorXd k = ssmkit::dense_kernel(sys, cf, p.L);
    double err = 0, scale = 0;
    for (std::size_t l = 0; l < p.L; ++l) {
      err = std::max(err, std::abs(k(Eigen::Index(l)) - want[h * p.L + l]));
      scale = std::max(scale, std::abs(want[h * p.L + l]));
    }
    CHECK(err <= 1e-13 * scale);
    // With a rank-1 P: sum_l K_l w^l over the L-th roots of unity w equals the C~ generating
    // function, i.e. C~ = C (I - dA^L) exactly; check the identity C~^T dA^l dB = K_l - K_{l+L}.
    Eigen::MatrixXcd P1(1, 5);
    for (int n = 0; n < 5; ++n) P1(0, n) = std::complex<double>(0.3, 0.1 * n);
    const auto s1 = ssmkit::discretize_dplr_bilinear(p.dt[h], lambda, P1, b);
    const Eigen::VectorXd k2 = ssmkit::dense_kernel(s1, cf, 2 * p.L);
    const Eigen::VectorXcd ct = ssmkit::dplr_C_tilde(s1, c, p.L);
    Eigen::VectorXcd ctf(10);
    ctf << ct, ct.conjugate();
    const Eigen::VectorXd kt = ssmkit::dense_kernel(s1, ctf, p.L);
    for (std::size_t l = 0; l < p.L; ++l) {
      CHECK(kt(Eigen::Index(l)) == ssm_test::Approx(k2(Eigen::Index(l)) - k2(Eigen::Index(l + p.L))).margin(1e-12));
    }
  }
  CHECK(error_of([] {
          ssmkit::discretize_dplr_bilinear(0.1, Eigen::VectorXcd::Ones(3), Eigen::MatrixXcd::Zero(1, 2), Eigen::VectorXcd::Ones(3));
        }) == "discretize_dplr_bilinear: P has shape (1, 2), expected (rank, 3)");
}

TEST_CASE("s4d bad inputs give exact messages", "[s4d][errors]") {
  std::vector<double> dt{0.1, 0.1}, K(2 * 8);
  std::vector<std::complex<double>> A(2 * 3, {-0.5, 1}), B(2 * 3, 1.0), C(2 * 3, 1.0);
  const auto run = [&](auto dtv, auto Av, auto Bv, auto Cv, auto Kv) {
    return error_of([&] { ssmkit::s4d_kernel<double>(dtv, Av, Bv, Cv, Kv); });
  };
  const auto dtv = ssmkit::make_view(dt, 2, 1);
  const auto Av = ssmkit::make_view(A, 2, 3), Bv = ssmkit::make_view(B, 2, 3);
  const auto Cv = ssmkit::make_view(C, 1, 2, 3);
  CHECK(run(dtv, Av, Bv, Cv, ssmkit::make_view(K.data(), 1, 2, 0)) == "s4d_kernel: L must be >= 1, got K of shape (1, 2, 0)");
  CHECK(run(dtv, Av, Bv, Cv, ssmkit::make_view(K.data(), 1, 3, 4)) == "s4d_kernel: K has shape (1, 3, 4), expected (1, 2, 4)");
  CHECK(run(dtv, Av, ssmkit::make_view(B.data(), 3, 2), Cv, ssmkit::make_view(K, 1, 2, 8)) ==
        "s4d_kernel: B has shape (3, 2), expected (2, 3)");
  CHECK(run(ssmkit::make_view(dt.data(), 1, 2), Av, Bv, Cv, ssmkit::make_view(K, 1, 2, 8)) ==
        "s4d_kernel: dt has shape (1, 2), expected (2, 1) or (2, 3)");
  CHECK(run(dtv, Av, Bv, ssmkit::make_view(C.data(), 1, 3, 2), ssmkit::make_view(K, 1, 2, 8)) ==
        "s4d_kernel: C has shape (1, 3, 2), expected (1, 2, 3)");
  dt[1] = 0;
  CHECK(run(dtv, Av, Bv, Cv, ssmkit::make_view(K, 1, 2, 8)) == "s4d_kernel: dt must be positive and finite, got 0 at (1, 0)");
  dt[1] = 0.1;
  std::vector<double> both(16, 0.1);
  CHECK(run(ssmkit::make_view(both.data(), 2, 1), Av, Bv, Cv, ssmkit::make_view(both.data(), 1, 2, 8)) ==
        "s4d_kernel: K overlaps dt in memory");
  std::vector<std::complex<double>> dA(6), dB(6);
  CHECK(error_of([&] {
          ssmkit::s4d_step_setup<double>(dtv, Av, Bv, ssmkit::make_view(dA, 2, 3), ssmkit::make_view(dB, 2, 3),
                                         ssmkit::discretization::dss);
        }) == "s4d_step_setup: the dss discretization has no recurrent form (use zoh or bilinear)");
  CHECK(error_of([] { ssmkit::parse_discretization("euler"); }) ==
        "parse_discretization: unknown discretization 'euler' (expected zoh, bilinear or dss)");
  std::vector<double> u(2 * 5), y(2 * 5);
  std::vector<std::complex<double>> state(2 * 3);
  CHECK(error_of([&] {
          ssmkit::s4d_recurrence<double>(ssmkit::make_view(dA, 2, 3), ssmkit::make_view(dB, 2, 3), Cv,
                                         ssmkit::make_view(u, 1, 2, 5), ssmkit::make_view(state, 1, 3, 2),
                                         ssmkit::make_view(y, 1, 1, 2, 5));
        }) == "s4d_recurrence: state has shape (1, 3, 2), expected (1, 2, 3)");
}
