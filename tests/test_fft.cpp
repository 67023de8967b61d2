// ssmkit's FFT against a plainly written DFT in long double.
//
// Tolerances. The Stockham FFT's normwise forward error is bounded by c * eps * log2(n) (Higham,
// Accuracy and Stability of Numerical Algorithms, 24.1, with c a small constant from the
// butterflies and the twiddle error). We check max_k |X_k - X*_k| / max_k |X*_k| <= 2 eps
// (log2(n) + 1), eps = the unit roundoff of T, against a long double reference of the same
// (rounded) input. The measured errors (printed by the "error growth" test) stay below a quarter
// of that bound.
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <vector>

#include <ssmkit/fft.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

using ldc = std::complex<long double>;

std::vector<std::size_t> fast_sizes_up_to(std::size_t limit) {
  std::vector<std::size_t> sizes;
  for (std::size_t n = 1; n <= limit; ++n) {
    if (ssmkit::is_fast_len(n)) sizes.push_back(n);
  }
  return sizes;
}

/// The DFT of x in long double (sign -1 forward, +1 backward), with exact argument reduction.
std::vector<ldc> naive_dft(const std::vector<ldc>& x, int sign) {
  const std::size_t n = x.size();
  const long double pi = 3.141592653589793238462643383279502884L;
  std::vector<ldc> roots(n);
  for (std::size_t k = 0; k < n; ++k) {
    const long double a = 2 * pi * static_cast<long double>(k) / static_cast<long double>(n);
    roots[k] = ldc(std::cos(a), sign * std::sin(a));
  }
  std::vector<ldc> out(n);
  for (std::size_t k = 0; k < n; ++k) {
    ldc acc = 0;
    std::size_t idx = 0;
    for (std::size_t j = 0; j < n; ++j) {
      acc += x[j] * roots[idx];
      idx += k;
      if (idx >= n) idx -= n;
    }
    out[k] = acc;
  }
  return out;
}

/// Bin k of the DFT only (for large n).
ldc naive_bin(const std::vector<ldc>& x, std::size_t k, int sign) {
  const std::size_t n = x.size();
  const long double pi = 3.141592653589793238462643383279502884L;
  ldc acc = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const std::size_t idx = static_cast<std::size_t>((static_cast<unsigned long long>(j) * k) % n);
    const long double a = 2 * pi * static_cast<long double>(idx) / static_cast<long double>(n);
    acc += x[j] * ldc(std::cos(a), sign * std::sin(a));
  }
  return acc;
}

template <class T>
std::vector<std::complex<T>> random_complex(std::size_t n, std::uint32_t seed) {
  auto v = ssm_test::uniform<double>(2 * n, -1, 1, seed);
  std::vector<std::complex<T>> x(n);
  for (std::size_t j = 0; j < n; ++j) x[j] = {static_cast<T>(v[2 * j]), static_cast<T>(v[2 * j + 1])};
  return x;
}

template <class T>
std::vector<ldc> to_ld(const std::vector<std::complex<T>>& x) {
  std::vector<ldc> out(x.size());
  for (std::size_t j = 0; j < x.size(); ++j) out[j] = ldc(x[j].real(), x[j].imag());
  return out;
}

template <class C>
double rel_error(const std::vector<C>& got, const std::vector<ldc>& want) {
  long double num = 0, den = 0;
  for (std::size_t k = 0; k < want.size(); ++k) {
    const ldc g(static_cast<long double>(got[k].real()), static_cast<long double>(got[k].imag()));
    const long double d = std::abs(g - want[k]);
    num = std::isnan(static_cast<double>(d)) ? INFINITY : std::max(num, d);
    den = std::max(den, std::abs(want[k]));
  }
  return static_cast<double>(num / std::max(den, 1e-300L));
}

template <class T>
double bound(std::size_t n) {
  const double eps = std::numeric_limits<T>::epsilon() / 2;
  return 2 * eps * (std::log2(static_cast<double>(n)) + 1);
}

template <class T, class Arch>
void check_complex_sizes(const std::vector<std::size_t>& sizes) {
  double worst = 0, worst_abs = 0;
  for (const std::size_t n : sizes) {
    const ssmkit::fft_plan<T> plan(n);
    const auto x = random_complex<T>(n, static_cast<std::uint32_t>(n));
    const auto xl = to_ld(x);
    const auto want_f = naive_dft(xl, -1);
    const auto want_b = naive_dft(xl, +1);
    std::vector<std::complex<T>> y(n);
    plan.template forward<Arch>(ssmkit::make_view(x, n), ssmkit::make_view(y, n));
    const double ef = rel_error(y, want_f);
    plan.template backward<Arch>(ssmkit::make_view(x, n), ssmkit::make_view(y, n));
    const double eb = rel_error(y, want_b);
    INFO("n = " << n << ", forward error " << ef << ", backward error " << eb << ", bound " << bound<T>(n));
    CHECK(ef <= bound<T>(n));
    CHECK(eb <= bound<T>(n));
    worst = std::max(worst, std::max(ef, eb) / bound<T>(n));
    worst_abs = std::max(worst_abs, std::max(ef, eb));
  }
  std::printf("complex FFT (%s, %s), sizes %zu..%zu: max relative error %.3g, max error / (2 eps (log2 n + 1)) %.3f\n",
              sizeof(T) == 4 ? "float" : "double", ssmkit::backend_name<Arch>(), sizes.front(), sizes.back(), worst_abs,
              worst);
  INFO("worst error / bound = " << worst);
  CHECK(worst <= 1);
}

template <class T, class Arch>
void check_real_sizes(const std::vector<std::size_t>& sizes) {
  for (const std::size_t n : sizes) {
    const ssmkit::rfft_plan<T> plan(n);
    auto xv = ssm_test::uniform<double>(n, -1, 1, static_cast<std::uint32_t>(n + 7));
    std::vector<T> x(xv.begin(), xv.end());
    std::vector<ldc> xl(n);
    for (std::size_t j = 0; j < n; ++j) xl[j] = ldc(x[j], 0);
    auto want = naive_dft(xl, -1);
    want.resize(n / 2 + 1);
    std::vector<std::complex<T>> X(n / 2 + 1);
    plan.template forward<Arch>(ssmkit::make_view(x, n), ssmkit::make_view(X, n / 2 + 1));
    const double ef = rel_error(X, want);
    // backward of the exact spectrum: n * x.
    std::vector<std::complex<T>> Xw(n / 2 + 1);
    for (std::size_t k = 0; k <= n / 2; ++k) {
      Xw[k] = {static_cast<T>(want[k].real()), static_cast<T>(want[k].imag())};
    }
    std::vector<T> xb(n);
    plan.template backward<Arch>(ssmkit::make_view(Xw, n / 2 + 1), ssmkit::make_view(xb, n));
    std::vector<std::complex<T>> got(n);
    std::vector<ldc> want_b(n);
    for (std::size_t j = 0; j < n; ++j) {
      got[j] = xb[j];
      want_b[j] = xl[j] * static_cast<long double>(n);
    }
    const double eb = rel_error(got, want_b);
    INFO("real n = " << n << ", forward error " << ef << ", backward error " << eb);
    CHECK(ef <= bound<T>(n));
    CHECK(eb <= 2 * bound<T>(n));  // the input spectrum itself carries one rounding
  }
}

}  // namespace

TEST_CASE("next_fast_len and is_fast_len", "[fft]") {
  CHECK(ssmkit::next_fast_len(0) == 1);
  CHECK(ssmkit::next_fast_len(1) == 1);
  CHECK(ssmkit::next_fast_len(7) == 8);
  CHECK(ssmkit::next_fast_len(11) == 12);
  CHECK(ssmkit::next_fast_len(16383) == 16384);
  CHECK(ssmkit::next_fast_len(16385) == 16875);
  CHECK(ssmkit::next_fast_len(20000) == 20000);
  CHECK(ssmkit::next_fast_len(20001) == 20250);
  for (std::size_t n = 1; n <= 5000; ++n) {
    std::size_t want = n;
    while (!ssmkit::is_fast_len(want)) ++want;
    REQUIRE(ssmkit::next_fast_len(n) == want);
  }
  CHECK(!ssmkit::is_fast_len(0));
  CHECK(ssmkit::is_fast_len(2 * 3 * 5 * 1024));
  CHECK(!ssmkit::is_fast_len(14));
}

TEST_CASE("complex FFT matches the long double DFT on every 5-smooth size up to 1000", "[fft]") {
  const auto sizes = fast_sizes_up_to(1000);
  SECTION("double, SIMD") { check_complex_sizes<double, ssmkit::default_arch>(sizes); }
  SECTION("float, SIMD") { check_complex_sizes<float, ssmkit::default_arch>(sizes); }
  SECTION("double, scalar") { check_complex_sizes<double, ssmkit::scalar>(fast_sizes_up_to(200)); }
  SECTION("float, scalar") { check_complex_sizes<float, ssmkit::scalar>(fast_sizes_up_to(200)); }
}

TEST_CASE("real FFT matches the long double DFT on every 5-smooth size up to 1000", "[fft]") {
  const auto sizes = fast_sizes_up_to(1000);
  SECTION("double") { check_real_sizes<double, ssmkit::default_arch>(sizes); }
  SECTION("float") { check_real_sizes<float, ssmkit::default_arch>(sizes); }
  SECTION("float, scalar") { check_real_sizes<float, ssmkit::scalar>(fast_sizes_up_to(200)); }
}

TEST_CASE("large sizes: selected bins against the long double DFT", "[fft]") {
  for (const std::size_t n : {std::size_t{1000}, std::size_t{4096}, std::size_t{6000}, std::size_t{65536},
                              std::size_t{131072}, std::size_t{3 * 5 * 5 * 5 * 64}}) {
    const auto x = random_complex<double>(n, 11);
    const auto xl = to_ld(x);
    std::vector<std::complex<double>> y(n);
    ssmkit::fft_plan<double>(n).forward(ssmkit::make_view(x, n), ssmkit::make_view(y, n));
    std::vector<std::complex<float>> xf(n), yf(n);
    for (std::size_t j = 0; j < n; ++j) xf[j] = std::complex<float>(x[j]);
    ssmkit::fft_plan<float>(n).forward(ssmkit::make_view(xf, n), ssmkit::make_view(yf, n));
    const auto xfl = to_ld(xf);
    // |X_k| ~ sqrt(n) for random data: compare against that scale.
    const double scale = std::sqrt(static_cast<double>(n));
    double err = 0, errf = 0;
    for (std::size_t k : {std::size_t{0}, std::size_t{1}, n / 3, n / 2, n - 1, std::size_t{12345} % n}) {
      const ldc w = naive_bin(xl, k, -1);
      const ldc wf = naive_bin(xfl, k, -1);
      err = std::max(err, static_cast<double>(std::abs(ldc(y[k].real(), y[k].imag()) - w)) / scale);
      errf = std::max(errf, static_cast<double>(std::abs(ldc(yf[k].real(), yf[k].imag()) - wf)) / scale);
    }
    INFO("n = " << n << " double error " << err << " float error " << errf);
    CHECK(err <= bound<double>(n));
    CHECK(errf <= bound<float>(n));
  }
}

TEST_CASE("many-transform lane layout equals one transform at a time", "[fft]") {
  using T = float;
  using Arch = ssmkit::default_arch;
  for (const std::size_t lanes : {std::size_t{1}, std::size_t{3}, ssmkit::detail::width_v<T, Arch>,
                                  ssmkit::detail::width_v<T, Arch> + 1}) {
    for (const std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{45}, std::size_t{64}, std::size_t{960}}) {
      const ssmkit::fft_plan<T> plan(n);
      std::vector<T> re(n * lanes), im(n * lanes), wr(n * lanes), wi(n * lanes);
      std::vector<std::vector<std::complex<T>>> signals;
      for (std::size_t l = 0; l < lanes; ++l) {
        signals.push_back(random_complex<T>(n, static_cast<std::uint32_t>(100 + l)));
        for (std::size_t j = 0; j < n; ++j) {
          re[j * lanes + l] = signals[l][j].real();
          im[j * lanes + l] = signals[l][j].imag();
        }
      }
      const bool in_work = plan.forward_lanes<Arch>(re.data(), im.data(), wr.data(), wi.data(), lanes);
      const auto& rr = in_work ? wr : re;
      const auto& ri = in_work ? wi : im;
      for (std::size_t l = 0; l < lanes; ++l) {
        std::vector<std::complex<T>> y(n);
        plan.forward<ssmkit::scalar>(ssmkit::make_view(signals[l], n), ssmkit::make_view(y, n));
        double err = 0;
        for (std::size_t j = 0; j < n; ++j) {
          err = std::max(err, static_cast<double>(std::abs(y[j] - std::complex<T>(rr[j * lanes + l], ri[j * lanes + l]))));
        }
        INFO("lanes " << lanes << " n " << n << " lane " << l);
        CHECK(err <= 4 * bound<T>(n) * std::sqrt(static_cast<double>(n)));
      }
    }
  }
}

TEST_CASE("error growth: the round trip error grows like eps log2(n)", "[fft]") {
  // Printed for the documentation; checked against 2 eps (log2 n + 1).
  std::printf("FFT round trip (backward(forward(x))/n - x, normwise relative), random complex data\n");
  std::printf("%10s %14s %14s %14s %14s\n", "n", "float", "float/(e lg n)", "double", "double/(e lg n)");
  for (std::size_t n : {std::size_t{16}, std::size_t{1000}, std::size_t{4096}, std::size_t{6000}, std::size_t{65536},
                        std::size_t{1} << 20}) {
    double errs[2];
    int idx = 0;
    auto run = [&](auto tag) {
      using T = decltype(tag);
      const auto x = random_complex<T>(n, 5);
      std::vector<std::complex<T>> y(n), z(n);
      const ssmkit::fft_plan<T> plan(n);
      plan.forward(ssmkit::make_view(x, n), ssmkit::make_view(y, n));
      plan.backward(ssmkit::make_view(y, n), ssmkit::make_view(z, n));
      double num = 0, den = 0;
      for (std::size_t j = 0; j < n; ++j) {
        const std::complex<double> zj(z[j]), xj(x[j]);
        num = std::max(num, std::abs(zj / static_cast<double>(n) - xj));
        den = std::max(den, std::abs(xj));
      }
      errs[idx++] = num / den;
      const double lg = std::log2(static_cast<double>(n));
      CHECK(num / den <= 2 * bound<T>(n));
      return lg;
    };
    const double lg = run(float{});
    run(double{});
    const double ef = std::numeric_limits<float>::epsilon(), ed = std::numeric_limits<double>::epsilon();
    std::printf("%10zu %14.3g %14.3f %14.3g %14.3f\n", n, errs[0], errs[0] / (ef * lg), errs[1], errs[1] / (ed * lg));
  }
}

TEST_CASE("FFT plans reject bad sizes and views with exact messages", "[fft]") {
  using ssm_test::error_of;
  CHECK(error_of([] { ssmkit::fft_plan<double> p(7); }) ==
        "fft_plan: size 7 is not of the form 2^a 3^b 5^c (next_fast_len gives 8)");
  CHECK(error_of([] { ssmkit::fft_plan<double> p(0); }) == "fft_plan: size must be >= 1, got 0");
  CHECK(error_of([] { ssmkit::rfft_plan<float> p(22); }) ==
        "rfft_plan: size 22 is not of the form 2^a 3^b 5^c (next_fast_len gives 24)");
  const ssmkit::fft_plan<double> plan(8);
  std::vector<std::complex<double>> x(8), y(9);
  CHECK(error_of([&] { plan.forward(ssmkit::make_view(x, 8), ssmkit::make_view(y, 9)); }) ==
        "fft_plan::forward: y has shape (9), expected (8)");
  std::vector<double> scratch(31);
  CHECK(error_of([&] {
          plan.forward(ssmkit::make_view(x, 8), ssmkit::make_view(x, 8), ssmkit::make_view(scratch, 31));
        }) == "fft_plan::forward: scratch has shape (31), expected (>= 32)");
  const ssmkit::rfft_plan<double> rplan(8);
  std::vector<double> xr(8);
  std::vector<std::complex<double>> X(4);
  CHECK(error_of([&] { rplan.forward(ssmkit::make_view(xr, 8), ssmkit::make_view(X, 4)); }) ==
        "rfft_plan::forward: X has shape (4), expected (5)");
}

TEST_CASE("FFT: in place, strided views and NaN", "[fft]") {
  const std::size_t n = 60;
  const ssmkit::fft_plan<double> plan(n);
  auto x = random_complex<double>(n, 3);
  std::vector<std::complex<double>> y(n);
  plan.forward(ssmkit::make_view(x, n), ssmkit::make_view(y, n));
  // Strided: every other element of a 2n buffer, written in reverse order.
  std::vector<std::complex<double>> big(2 * n);
  for (std::size_t j = 0; j < n; ++j) big[2 * j] = x[j];
  std::vector<std::complex<double>> rev(n);
  ssmkit::tensor_view<std::complex<double>, 1> out(rev.data() + n - 1, {n}, {-1});
  plan.forward(ssmkit::tensor_view<const std::complex<double>, 1>(big.data(), {n}, {2}), out);
  for (std::size_t j = 0; j < n; ++j) CHECK(rev[n - 1 - j] == y[j]);
  // In place.
  plan.forward(ssmkit::make_view(x, n), ssmkit::make_view(x, n));
  for (std::size_t j = 0; j < n; ++j) CHECK(x[j] == y[j]);
  // A NaN input makes every output NaN (every output depends on every input).
  x[17] = {NAN, 0};
  plan.forward(ssmkit::make_view(x, n), ssmkit::make_view(y, n));
  for (std::size_t j = 0; j < n; ++j) CHECK(std::isnan(y[j].real() + y[j].imag()));
}

TEST_CASE("rfft packed lane entries: forward, product with the impulse spectrum, inverse", "[fft]") {
  using T = double;
  using Arch = ssmkit::default_arch;
  for (const std::size_t n : {std::size_t{2}, std::size_t{64}, std::size_t{90}}) {
    const std::size_t lanes = ssmkit::detail::width_v<T, Arch>;
    const std::size_t m = n / 2;
    const ssmkit::rfft_plan<T> plan(n);
    const auto x = ssm_test::uniform<T>(n * lanes, -1, 1, 8);  // x_l[t] at x[t*lanes + l]
    std::vector<T> re(m * lanes), im(m * lanes), wr(m * lanes), wi(m * lanes);
    for (std::size_t j = 0; j < m; ++j)
      for (std::size_t l = 0; l < lanes; ++l) {
        re[j * lanes + l] = x[2 * j * lanes + l];
        im[j * lanes + l] = x[(2 * j + 1) * lanes + l];
      }
    const bool in_w = plan.forward_packed<Arch>(re.data(), im.data(), wr.data(), wi.data(), lanes);
    T* sr = in_w ? wr.data() : re.data();
    T* si = in_w ? wi.data() : im.data();
    T* or_ = in_w ? re.data() : wr.data();
    T* oi = in_w ? im.data() : wi.data();
    // The unit impulse's packed spectrum: every bin 1, slot 0 = (X_0, X_{n/2}) = (1, 1).
    std::vector<T> kr(m * lanes, 1), ki(m * lanes, 0);
    for (std::size_t l = 0; l < lanes; ++l) ki[l] = 1;
    plan.multiply_inverse_fixup<Arch>(sr, si, kr.data(), ki.data(), sr, si, lanes);
    const bool back_in_o = plan.packed_backward_fft<Arch>(sr, si, or_, oi, lanes);
    const T* rr = back_in_o ? or_ : sr;
    const T* ri = back_in_o ? oi : si;
    double err = 0;
    for (std::size_t j = 0; j < m; ++j)
      for (std::size_t l = 0; l < lanes; ++l) {
        err = std::max(err, std::abs(rr[j * lanes + l] / static_cast<T>(n) - x[2 * j * lanes + l]));
        err = std::max(err, std::abs(ri[j * lanes + l] / static_cast<T>(n) - x[(2 * j + 1) * lanes + l]));
      }
    INFO("n = " << n);
    CHECK(err <= 2 * bound<T>(n));
  }
}
