// fft_conv_plan and fft_conv against a plainly written direct convolution in long double.
//
// Tolerance. The FFT convolution's error is the FFT's normwise error, O(eps log2 n) (Higham 24.1),
// relative to the size of the terms that are summed. We check, per output,
//   |y_t - y*_t| <= 2 eps log2(n) * S,   S = max_t ( sum_s |k_s u_{t-s}| + |D u_t| ),
// with eps the unit roundoff of T and n the plan's FFT size. S is the scale of the largest sum, so
// the bound is normwise, as the FFT's is. The measured ratio (printed by the L = 65536 test) is
// far below 1.
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include <ssmkit/fft_conv.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

struct conv_case {
  std::size_t B, L, H, C, Lk;
  bool bidirectional, with_D;
};

/// The direct convolution of the file comment, in long double: u (B, L, H), k (C', H, Lk),
/// D (C, H); returns y (B, L, C*H) and the per-case scale S.
template <class T>
std::vector<long double> direct_conv(const conv_case& cc, const std::vector<T>& u, const std::vector<T>& k,
                                     const std::vector<T>& D, long double& scale) {
  std::vector<long double> y(cc.B * cc.L * cc.C * cc.H);
  scale = 0;
  for (std::size_t b = 0; b < cc.B; ++b) {
    for (std::size_t c = 0; c < cc.C; ++c) {
      for (std::size_t h = 0; h < cc.H; ++h) {
        auto U = [&](std::size_t t) -> long double { return u[(b * cc.L + t) * cc.H + h]; };
        auto K = [&](std::size_t cc_, std::size_t s) -> long double { return k[(cc_ * cc.H + h) * cc.Lk + s]; };
        for (std::size_t t = 0; t < cc.L; ++t) {
          long double acc = 0, mag = 0;
          for (std::size_t s = 0; s < cc.Lk && s <= t; ++s) {
            acc += K(c, s) * U(t - s);
            mag += std::fabs(K(c, s) * U(t - s));
          }
          if (cc.bidirectional) {
            for (std::size_t m = 1; m <= cc.Lk && t + m < cc.L; ++m) {
              acc += K(cc.C + c, m - 1) * U(t + m);
              mag += std::fabs(K(cc.C + c, m - 1) * U(t + m));
            }
          }
          if (cc.with_D) {
            acc += static_cast<long double>(D[c * cc.H + h]) * U(t);
            mag += std::fabs(static_cast<long double>(D[c * cc.H + h]) * U(t));
          }
          y[(b * cc.L + t) * cc.C * cc.H + c * cc.H + h] = acc;
          scale = std::max(scale, mag);
        }
      }
    }
  }
  return y;
}

template <class T>
struct conv_data {
  std::vector<T> u, k, D;
};

template <class T>
conv_data<T> make_data(const conv_case& cc, std::uint32_t seed) {
  const std::size_t kc = cc.bidirectional ? 2 * cc.C : cc.C;
  return {ssm_test::uniform<T>(cc.B * cc.L * cc.H, -1, 1, seed), ssm_test::uniform<T>(kc * cc.H * cc.Lk, -1, 1, seed + 1),
          ssm_test::uniform<T>(cc.C * cc.H, -1, 1, seed + 2)};
}

template <class T, class Arch>
std::vector<T> run_plan(const conv_case& cc, const conv_data<T>& d, std::size_t* n = nullptr,
                        ssmkit::fft_conv_method method = ssmkit::fft_conv_method::automatic, bool* direct = nullptr) {
  const std::size_t kc = cc.bidirectional ? 2 * cc.C : cc.C;
  ssmkit::fft_conv_options options;
  options.bidirectional = cc.bidirectional;
  options.method = method;
  const ssmkit::fft_conv_plan<T, Arch> plan(ssmkit::make_view(d.k, kc, cc.H, cc.Lk), cc.L, options);
  if (n) *n = plan.fft_size();
  if (direct) *direct = plan.uses_direct();
  std::vector<T> y(cc.B * cc.L * cc.C * cc.H, T(-7));
  plan.forward(ssmkit::make_view(d.u, cc.B, cc.L, cc.H), ssmkit::make_view(y, cc.B, cc.L, cc.C * cc.H),
               cc.with_D ? ssmkit::make_view(d.D, cc.C, cc.H) : ssmkit::tensor_view<const T, 2>{});
  return y;
}

// The direct path sums taps + 1 products with fmas (taps = Lk, or 2 Lk bidirectional): its error is
// at most (taps + 1) eps S (Higham 3.1), so its tolerance is the larger of the two bounds.
template <class T, class Arch>
void check_against_direct(const conv_case& cc, ssmkit::fft_conv_method method = ssmkit::fft_conv_method::automatic) {
  const auto d = make_data<T>(cc, static_cast<std::uint32_t>(cc.L * 31 + cc.H * 7 + cc.Lk));
  std::size_t n = 0;
  bool direct = false;
  const auto y = run_plan<T, Arch>(cc, d, &n, method, &direct);
  long double scale = 0;
  const auto want = direct_conv(cc, d.u, d.k, d.D, scale);
  const double eps = std::numeric_limits<T>::epsilon() / 2;
  const double taps = static_cast<double>(cc.bidirectional ? 2 * cc.Lk : cc.Lk);
  const double tol = std::max(2 * std::log2(static_cast<double>(n)), direct ? taps + 1 : 0.0) * eps *
                     static_cast<double>(scale);
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double e = std::abs(static_cast<double>(y[i]) - static_cast<double>(want[i]));
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  INFO("B " << cc.B << " L " << cc.L << " H " << cc.H << " C " << cc.C << " Lk " << cc.Lk << " bidirectional "
            << cc.bidirectional << " D " << cc.with_D << " n " << n << " direct " << direct << ": max error " << worst
            << ", tolerance " << tol);
  if (method != ssmkit::fft_conv_method::automatic) CHECK(direct == (method == ssmkit::fft_conv_method::direct));
  CHECK(worst <= tol);
}

template <class T, class Arch>
void check_size_grid() {
  // 1, a prime, SIMD width -1/0/+1 (16 for AVX-512 float), and a large odd length.
  for (const std::size_t L : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{15}, std::size_t{16},
                              std::size_t{17}, std::size_t{1001}}) {
    for (const std::size_t Lk : {std::size_t{1}, (L + 2) / 3, L}) {
      for (const std::size_t H : {std::size_t{1}, std::size_t{3}, std::size_t{17}}) {
        for (const bool bidi : {false, true}) {
          const std::size_t C = (L + H) % 2 ? 2 : 1;
          check_against_direct<T, Arch>({2, L, H, C, Lk, bidi, (L + Lk) % 2 == 0});
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("fft_conv equals the direct convolution", "[fft_conv]") {
  SECTION("double, SIMD") { check_size_grid<double, ssmkit::default_arch>(); }
  SECTION("float, SIMD") { check_size_grid<float, ssmkit::default_arch>(); }
  SECTION("double, scalar") { check_size_grid<double, ssmkit::scalar>(); }
  SECTION("float, scalar") { check_size_grid<float, ssmkit::scalar>(); }
  SECTION("width 16 and 32 channels, kernel shorter than the input") {
    check_against_direct<float, ssmkit::default_arch>({1, 300, 16, 1, 40, false, true});
    check_against_direct<float, ssmkit::default_arch>({3, 127, 32, 2, 127, true, true});
    check_against_direct<double, ssmkit::default_arch>({1, 300, 16, 3, 299, false, false});
  }
  SECTION("four-step split (n/2 > 2048), causal and bidirectional, in both precisions") {
    check_against_direct<float, ssmkit::default_arch>({1, 4001, 17, 2, 200, true, true});    // n = 4320
    check_against_direct<double, ssmkit::default_arch>({2, 4200, 9, 1, 150, false, true});  // n = 4374
    check_against_direct<float, ssmkit::scalar>({1, 4500, 3, 1, 100, false, false});        // n = 4608
  }
}

TEST_CASE("fft_conv: the direct path equals the FFT path and the reference, causal and bidirectional",
          "[fft_conv][direct]") {
  using M = ssmkit::fft_conv_method;
  SECTION("float, SIMD: L 1 to 1001, Lk 1 to 64, H 1, 17, 32") {
  for (const std::size_t L : {std::size_t{1}, std::size_t{7}, std::size_t{17}, std::size_t{257}, std::size_t{1001}}) {
    for (const std::size_t Lk : {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{32}, std::size_t{64}}) {
      if (Lk > L) continue;
      for (const std::size_t H : {std::size_t{1}, std::size_t{17}, std::size_t{32}}) {
        if (H == 32 && L > 17 && Lk < 32) continue;  // a full lane group twice, at the short lengths
        for (const bool bidi : {false, true}) {
          const conv_case cc{2, L, H, bidi ? std::size_t{1} : std::size_t{2}, Lk, bidi, (L + Lk) % 2 == 0};
          check_against_direct<float, ssmkit::default_arch>(cc, M::direct);
          check_against_direct<float, ssmkit::default_arch>(cc, M::fft);
          // direct == FFT, to the sum of the two bounds (both pass the reference above).
          const auto d = make_data<float>(cc, 77);
          const auto a = run_plan<float, ssmkit::default_arch>(cc, d, nullptr, M::direct);
          const auto b = run_plan<float, ssmkit::default_arch>(cc, d, nullptr, M::fft);
          double worst = 0, peak = 0;
          for (std::size_t i = 0; i < a.size(); ++i) {
            worst = std::max(worst, double(std::abs(a[i] - b[i])));
            peak = std::max(peak, double(std::abs(b[i])));
          }
          INFO("L " << L << " Lk " << Lk << " H " << H << " bidirectional " << bidi);
          CHECK(worst <= 1e-5 * std::max(1.0, double(Lk)) * (1 + peak));
        }
      }
    }
  }
  }
  SECTION("double and the scalar backend") {
    check_against_direct<double, ssmkit::default_arch>({2, 300, 9, 2, 20, false, true}, M::direct);
    check_against_direct<double, ssmkit::default_arch>({1, 300, 9, 1, 20, true, true}, M::direct);
    check_against_direct<float, ssmkit::scalar>({2, 100, 3, 1, 10, true, false}, M::direct);
    check_against_direct<double, ssmkit::scalar>({1, 100, 5, 2, 33, false, true}, M::direct);
  }
}

TEST_CASE("fft_conv: the cost model picks direct for short kernels and FFT for long ones", "[fft_conv][direct]") {
  std::vector<float> k(256 * 4096, 0.5f);
  const auto plan_of = [&](std::size_t H, std::size_t Lk, std::size_t L, ssmkit::fft_conv_method m) {
    ssmkit::fft_conv_options o;
    o.method = m;
    return ssmkit::fft_conv_plan<float>(ssmkit::make_view(k.data(), H, Lk), L, o).uses_direct();
  };
  using M = ssmkit::fft_conv_method;
  CHECK(plan_of(256, 4, 4096, M::automatic));
  CHECK(plan_of(256, 16, 16384, M::automatic));
  CHECK_FALSE(plan_of(256, 256, 4096, M::automatic));
  CHECK_FALSE(plan_of(256, 4096, 4096, M::automatic));
  CHECK_FALSE(plan_of(256, 4, 4096, M::fft));
  CHECK(plan_of(16, 4096, 4096, M::direct));
  // The crossover grows with log n: about 50 taps at L = 1024 and 65 at 16384 (docs/fft_conv.md).
  CHECK(ssmkit::detail::fft_conv_prefers_direct(1024, 40, 1, false, 1080));
  CHECK_FALSE(ssmkit::detail::fft_conv_prefers_direct(1024, 70, 1, false, 1152));
  CHECK_FALSE(ssmkit::detail::fft_conv_prefers_direct(1024, 40, 1, true, 1080));  // 80 taps
}

TEST_CASE("fft_conv: the FFT size is the smallest even 5-smooth size that holds the linear convolution",
          "[fft_conv]") {
  std::vector<float> k(3 * 50, 1.0f);
  CHECK(ssmkit::fft_conv_plan<float>(ssmkit::make_view(k, 3, 50), 50).fft_size() == 100);      // 99 -> 100
  CHECK(ssmkit::fft_conv_plan<float>(ssmkit::make_view(k, 3, 50), 64).fft_size() == 120);      // 113 -> 120
  CHECK(ssmkit::fft_conv_plan<float>(ssmkit::make_view(k.data(), 3, 1), 1).fft_size() == 2);
  ssmkit::fft_conv_options bidi;
  bidi.bidirectional = true;
  CHECK(ssmkit::fft_conv_plan<float>(ssmkit::make_view(k, 2, 3, 25), 25, bidi).fft_size() == 50);
  CHECK(ssmkit::fft_conv_plan<float>(ssmkit::make_view(k, 2, 3, 25), 25, bidi).channels() == 1);
}

TEST_CASE("fft_conv: scalar and SIMD backends agree", "[fft_conv]") {
  const conv_case cc{2, 513, 37, 2, 200, true, true};
  const auto d = make_data<float>(cc, 9);
  const auto a = run_plan<float, ssmkit::default_arch>(cc, d);
  const auto b = run_plan<float, ssmkit::scalar>(cc, d);
  // Both run the same butterflies; they may differ only by contraction into fma, a few ulp of the scale.
  CHECK(ssm_test::max_rel_error(a, b) <= 64 * std::numeric_limits<float>::epsilon());
}

TEST_CASE("fft_conv: every layout gives the same result", "[fft_conv]") {
  using T = double;
  const std::size_t B = 2, L = 45, H = 19, C = 2, Lk = 30;
  const conv_case cc{B, L, H, C, Lk, false, true};
  const auto d = make_data<T>(cc, 4);
  const auto want = run_plan<T, ssmkit::default_arch>(cc, d);
  const ssmkit::fft_conv_plan<T> plan(ssmkit::make_view(d.k, C, H, Lk), L);

  // (B, H, L) buffers seen as (B, L, H); y likewise, (B, C*H, L).
  std::vector<T> ut(B * H * L), yt(B * C * H * L);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t h = 0; h < H; ++h) ut[(b * H + h) * L + t] = d.u[(b * L + t) * H + h];
  // D transposed too: a (H, C) buffer seen as (C, H).
  std::vector<T> Dt(H * C);
  for (std::size_t c = 0; c < C; ++c)
    for (std::size_t h = 0; h < H; ++h) Dt[h * C + c] = d.D[c * H + h];
  plan.forward(ssmkit::make_view(ut, B, H, L).transposed(1, 2), ssmkit::make_view(yt, B, C * H, L).transposed(1, 2),
               ssmkit::make_view(Dt, H, C).transposed(0, 1));
  // y with negative and padded strides: (B, L, C*H) stored time-reversed with a gap of 3 per row.
  std::vector<T> ys(B * L * (C * H + 3));
  ssmkit::tensor_view<T, 3> yv(ys.data() + (L - 1) * (C * H + 3), {B, L, C * H},
                               {static_cast<std::ptrdiff_t>(L * (C * H + 3)), -static_cast<std::ptrdiff_t>(C * H + 3), 1});
  plan.forward(ssmkit::make_view(d.u, B, L, H), yv, ssmkit::make_view(d.D, C, H));
  const double scale = 4 * std::numeric_limits<T>::epsilon();
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t j = 0; j < C * H; ++j) {
        const T w = want[(b * L + t) * C * H + j];
        CHECK(std::abs(yt[(b * C * H + j) * L + t] - w) <= scale * (1 + std::abs(w)));
        CHECK(std::abs(yv(b, t, j) - w) <= scale * (1 + std::abs(w)));
      }
}

TEST_CASE("fft_conv: free functions, threads, workspace reuse and an empty batch", "[fft_conv]") {
  using T = float;
  const std::size_t B = 3, L = 100, H = 20, Lk = 64;
  const conv_case cc{B, L, H, 1, Lk, false, true};
  const auto d = make_data<T>(cc, 12);
  const auto want = run_plan<T, ssmkit::default_arch>(cc, d);
  std::vector<T> y(B * L * H);
  ssmkit::fft_conv(ssmkit::make_view(d.u, B, L, H), ssmkit::make_view(d.k, H, Lk), ssmkit::make_view(d.D, H),
                   ssmkit::make_view(y, B, L, H));
  CHECK(y == want);
  std::fill(y.begin(), y.end(), T(0));
  ssmkit::fft_conv(ssmkit::make_view(d.u, B, L, H), ssmkit::make_view(d.k, 1, H, Lk), ssmkit::make_view(d.D, 1, H),
                   ssmkit::make_view(y, B, L, H));
  CHECK(y == want);

  const ssmkit::fft_conv_plan<T> plan(ssmkit::make_view(d.k, H, Lk), L);
  ssmkit::fft_conv_workspace<T> ws;
  std::vector<T> y2(B * L * H);
  for (int threads : {1, 2, 1}) {
    ssmkit::parallel_options po;
    po.num_threads = threads;
    plan.forward(ssmkit::make_view(d.u, B, L, H), ssmkit::make_view(y2, B, L, H), ssmkit::make_view(d.D, 1, H), ws,
                 po);
    CHECK(y2 == want);
  }
  // One plan shared by two threads, each with its own workspace.
  std::vector<T> ya(B * L * H), yb(B * L * H);
  std::thread t1([&] { plan.forward(ssmkit::make_view(d.u, B, L, H), ssmkit::make_view(ya, B, L, H), ssmkit::make_view(d.D, 1, H)); });
  std::thread t2([&] { plan.forward(ssmkit::make_view(d.u, B, L, H), ssmkit::make_view(yb, B, L, H), ssmkit::make_view(d.D, 1, H)); });
  t1.join();
  t2.join();
  CHECK(ya == want);
  CHECK(yb == want);
  // B = 0 is a no-op.
  plan.forward(ssmkit::tensor_view<const T, 3>(nullptr, {0, L, H}), ssmkit::tensor_view<T, 3>(nullptr, {0, L, H}));
}

TEST_CASE("fft_conv: float32 at L = 65536 is within O(eps log n) of the direct convolution", "[fft_conv]") {
  using T = float;
  for (const std::size_t L : {std::size_t{65536}, std::size_t{10001}}) {
    const std::size_t H = 17;  // one full lane group and a partial one
    const conv_case cc{1, L, H, 1, L, false, false};
    const auto d = make_data<T>(cc, 21);
    std::size_t n = 0;
    const auto y = run_plan<T, ssmkit::default_arch>(cc, d, &n);
    // Normwise, as in the file comment: the largest error over the probed outputs against the
    // largest sum of |terms| (at t = L - 1).
    double worst = 0;
    long double scale = 0;
    for (std::size_t h : {std::size_t{0}, std::size_t{16}}) {
      for (std::size_t t : {std::size_t{0}, std::size_t{1}, L / 3, L / 2, L - 2, L - 1}) {
        long double acc = 0, mag = 0;
        for (std::size_t s = 0; s <= t; ++s) {
          const long double p = static_cast<long double>(d.k[h * L + s]) * d.u[(t - s) * H + h];
          acc += p;
          mag += std::fabs(p);
        }
        worst = std::max(worst, std::abs(static_cast<double>(y[t * H + h]) - static_cast<double>(acc)));
        scale = std::max(scale, mag);
      }
    }
    worst /= static_cast<double>(scale);
    const double ratio = worst / (std::numeric_limits<T>::epsilon() / 2 * std::log2(static_cast<double>(n)));
    std::printf("fft_conv float32 L = %zu (n = %zu): max |dy| / sum|k u| = %.3g = %.3f eps log2(n)\n", L, n, worst,
                ratio);
    CHECK(ratio <= 2);
  }
}

TEST_CASE("fft_conv: NaN propagates to its own channel only", "[fft_conv]") {
  using T = float;
  const std::size_t B = 2, L = 40, H = 18, Lk = 10;
  const conv_case cc{B, L, H, 1, Lk, false, true};
  auto d = make_data<T>(cc, 2);
  d.u[(1 * L + 25) * H + 5] = NAN;  // batch 1, t = 25, channel 5
  d.k[17 * Lk + 3] = NAN;           // kernel of channel 17
  const auto y = run_plan<T, ssmkit::default_arch>(cc, d, nullptr, ssmkit::fft_conv_method::fft);
  // The direct path spreads the NaN of u[b, 25, 5] to t = 25..25+Lk-1 only, exactly.
  const auto yd = run_plan<T, ssmkit::default_arch>(cc, d, nullptr, ssmkit::fft_conv_method::direct);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t h = 0; h < H; ++h) {
        INFO("direct: b " << b << " t " << t << " h " << h);
        CHECK(std::isnan(yd[(b * L + t) * H + h]) == (h == 17 || (b == 1 && h == 5 && t >= 25 && t < 25 + Lk)));
      }
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t h = 0; h < H; ++h) {
        const bool nan = std::isnan(y[(b * L + t) * H + h]);
        INFO("b " << b << " t " << t << " h " << h);
        if (h == 17 || (b == 1 && h == 5 && t >= 25)) {
          CHECK(nan);
        } else if (!(b == 1 && h == 5)) {
          CHECK(!nan);  // the FFT spreads a NaN over its own channel only, never across lanes
        }
      }
}

TEST_CASE("fft_conv: bad input gives exact messages", "[fft_conv]") {
  using ssm_test::error_of;
  using T = float;
  std::vector<T> k(3 * 50), u(2 * 40 * 3), y(2 * 40 * 3), D(3);
  auto uv = ssmkit::make_view(u, 2, 40, 3);
  auto yv = ssmkit::make_view(y, 2, 40, 3);
  CHECK(error_of([&] { ssmkit::fft_conv(uv, ssmkit::make_view(k, 3, 50), ssmkit::make_view(D, 3), yv); }) ==
        "fft_conv: k has shape (3, 50), expected (3, <= 40)");
  CHECK(error_of([&] { ssmkit::fft_conv(uv, ssmkit::make_view(k.data(), 3, 0), ssmkit::make_view(D, 3), yv); }) ==
        "fft_conv: k has shape (3, 0), expected (3, >= 1)");
  CHECK(error_of([&] { ssmkit::fft_conv_plan<T> p(ssmkit::make_view(k, 1, 3, 50), 40); }) ==
        "fft_conv_plan: k has shape (1, 3, 50), expected (1, 3, <= 40)");
  CHECK(error_of([&] { ssmkit::fft_conv_plan<T> p(ssmkit::make_view(k, 3, 50), 0); }) ==
        "fft_conv_plan: L must be >= 1, got 0");
  ssmkit::fft_conv_options bidi;
  bidi.bidirectional = true;
  CHECK(error_of([&] { ssmkit::fft_conv_plan<T> p(ssmkit::make_view(k, 3, 1, 50), 50, bidi); }) ==
        "fft_conv_plan: k has shape (3, 1, 50), expected (2*C, 1, <= 50)");
  const ssmkit::fft_conv_plan<T> plan(ssmkit::make_view(k.data(), 3, 40), 40);
  CHECK(error_of([&] { plan.forward(ssmkit::make_view(u, 2, 3, 40), yv); }) ==
        "fft_conv_plan: u has shape (2, 3, 40), expected (2, 40, 3)");
  CHECK(error_of([&] { plan.forward(uv, ssmkit::make_view(y.data(), 2, 40, 2)); }) ==
        "fft_conv_plan: y has shape (2, 40, 2), expected (2, 40, 3)");
  CHECK(error_of([&] { plan.forward(uv, yv, ssmkit::make_view(D.data(), 1, 2)); }) ==
        "fft_conv_plan: D has shape (1, 2), expected (1, 3)");
  CHECK(error_of([&] { plan.forward(uv, ssmkit::make_view(u, 2, 40, 3)); }) == "fft_conv_plan: y overlaps u in memory");
  CHECK(error_of([&] { plan.forward(ssmkit::tensor_view<const T, 3>(nullptr, {2, 40, 3}), yv); }) ==
        "fft_conv_plan: u is a null view of shape (2, 40, 3)");
}
