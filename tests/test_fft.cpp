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

// ---------------------------------------------------------------------------------------------
// The batched interface (rank-2 views, one transform per SIMD lane).

namespace {

/// Counts around the lane width: 1, width - 1 (0 on the scalar backend), width, width + 3.
template <class T, class Arch>
std::vector<std::size_t> batch_counts() {
  constexpr std::size_t w = ssmkit::detail::width_v<T, Arch>;
  return {std::size_t{1}, w - 1, w, w + 3};
}

/// max_k |got_k - want_k| / max_k |want_k| for two complex rows in T.
template <class C>
double rel_diff(const C* got, const C* want, std::size_t n) {
  double num = 0, den = 0;
  for (std::size_t k = 0; k < n; ++k) {
    const std::complex<double> g(got[k]), w(want[k]);
    const double d = std::abs(g - w);
    num = std::isnan(d) ? INFINITY : std::max(num, d);
    den = std::max(den, std::abs(w));
  }
  return num / std::max(den, 1e-300);
}

/// Batched real forward against the long double DFT (n <= 256) or against the single-signal
/// transform (larger n, where both are within the FFT bound of the exact spectrum, so within
/// twice the bound of each other); batched backward of the batched spectra against n x, the
/// round trip. The rows are contiguous here; strides have their own test.
template <class T, class Arch>
void check_batched_real(const std::vector<std::size_t>& sizes) {
  double worst = 0;
  for (const std::size_t n : sizes) {
    const ssmkit::rfft_plan<T> plan(n);
    const std::size_t bins = plan.spectrum_size();
    for (const std::size_t count : batch_counts<T, Arch>()) {
      const auto xv = ssm_test::uniform<double>(count * n, -1, 1, static_cast<std::uint32_t>(n * 31 + count));
      const std::vector<T> x(xv.begin(), xv.end());
      std::vector<std::complex<T>> X(count * bins);
      std::vector<T> scratch(plan.template batch_scratch_size<Arch>());
      plan.template forward<Arch>(ssmkit::make_view(x, count, n), ssmkit::make_view(X, count, bins),
                                  ssmkit::make_view(scratch, scratch.size()));
      std::vector<T> back(count * n);
      plan.template backward<Arch>(ssmkit::make_view(X, count, bins), ssmkit::make_view(back, count, n));
      for (std::size_t r = 0; r < count; ++r) {
        double ef = 0;
        if (n <= 256) {
          std::vector<ldc> xl(n);
          for (std::size_t j = 0; j < n; ++j) xl[j] = ldc(x[r * n + j], 0);
          auto want = naive_dft(xl, -1);
          want.resize(bins);
          const std::vector<std::complex<T>> row(X.begin() + std::ptrdiff_t(r * bins),
                                                 X.begin() + std::ptrdiff_t((r + 1) * bins));
          ef = rel_error(row, want) / bound<T>(n);
        } else {
          std::vector<std::complex<T>> single(bins);
          plan.template forward<Arch>(ssmkit::make_view(x.data() + r * n, n), ssmkit::make_view(single, bins));
          ef = rel_diff(X.data() + r * bins, single.data(), bins) / (2 * bound<T>(n));
        }
        // Round trip: backward(forward(x)) = n x up to two transforms' error.
        double num = 0, den = 0;
        for (std::size_t j = 0; j < n; ++j) {
          num = std::max(num, std::abs(static_cast<double>(back[r * n + j]) / static_cast<double>(n) -
                                       static_cast<double>(x[r * n + j])));
          den = std::max(den, std::abs(static_cast<double>(x[r * n + j])));
        }
        const double eb = num / den / (2 * bound<T>(n));
        INFO("n = " << n << ", count = " << count << ", row " << r << ": forward error / bound " << ef
                    << ", round trip error / bound " << eb);
        CHECK(ef <= 1);
        CHECK(eb <= 1);
        worst = std::max(worst, std::max(ef, eb));
      }
    }
  }
  std::printf("batched real FFT (%s, %s): max error / bound %.3f\n", sizeof(T) == 4 ? "float" : "double",
              ssmkit::backend_name<Arch>(), worst);
}

/// Batched complex forward and backward against the long double DFT (n <= 256) or the
/// single-signal transform.
template <class T, class Arch>
void check_batched_complex(const std::vector<std::size_t>& sizes) {
  for (const std::size_t n : sizes) {
    const ssmkit::fft_plan<T> plan(n);
    for (const std::size_t count : batch_counts<T, Arch>()) {
      std::vector<std::complex<T>> x;
      for (std::size_t r = 0; r < count; ++r) {
        const auto row = random_complex<T>(n, static_cast<std::uint32_t>(7 * n + r));
        x.insert(x.end(), row.begin(), row.end());
      }
      std::vector<std::complex<T>> yf(count * n), yb(count * n);
      plan.template forward<Arch>(ssmkit::make_view(x, count, n), ssmkit::make_view(yf, count, n));
      plan.template backward<Arch>(ssmkit::make_view(x, count, n), ssmkit::make_view(yb, count, n));
      for (std::size_t r = 0; r < count; ++r) {
        const std::vector<std::complex<T>> xr(x.begin() + std::ptrdiff_t(r * n), x.begin() + std::ptrdiff_t((r + 1) * n));
        double ef = 0, eb = 0;
        if (n <= 256) {
          const auto xl = to_ld(xr);
          const std::vector<std::complex<T>> gf(yf.begin() + std::ptrdiff_t(r * n), yf.begin() + std::ptrdiff_t((r + 1) * n));
          const std::vector<std::complex<T>> gb(yb.begin() + std::ptrdiff_t(r * n), yb.begin() + std::ptrdiff_t((r + 1) * n));
          ef = rel_error(gf, naive_dft(xl, -1)) / bound<T>(n);
          eb = rel_error(gb, naive_dft(xl, +1)) / bound<T>(n);
        } else {
          std::vector<std::complex<T>> sf(n), sb(n);
          plan.template forward<Arch>(ssmkit::make_view(xr, n), ssmkit::make_view(sf, n));
          plan.template backward<Arch>(ssmkit::make_view(xr, n), ssmkit::make_view(sb, n));
          ef = rel_diff(yf.data() + r * n, sf.data(), n) / (2 * bound<T>(n));
          eb = rel_diff(yb.data() + r * n, sb.data(), n) / (2 * bound<T>(n));
        }
        INFO("n = " << n << ", count = " << count << ", row " << r << ": forward " << ef << ", backward " << eb);
        CHECK(ef <= 1);
        CHECK(eb <= 1);
      }
    }
  }
}

const std::vector<std::size_t> batched_sizes = {1, 2, 3, 5, 6, 8, 15, 30, 45, 64, 96, 125, 240, 625, 960, 4096, 3375};

}  // namespace

TEST_CASE("batched real FFT: every row equals the DFT, counts around the lane width, round trip", "[fft]") {
  SECTION("float, SIMD") { check_batched_real<float, ssmkit::default_arch>(batched_sizes); }
  SECTION("double, SIMD") { check_batched_real<double, ssmkit::default_arch>(batched_sizes); }
  SECTION("float, scalar") { check_batched_real<float, ssmkit::scalar>({1, 2, 15, 30, 64, 125, 4096}); }
  SECTION("double, scalar") { check_batched_real<double, ssmkit::scalar>({1, 2, 15, 30, 64, 125, 3375}); }
}

TEST_CASE("batched complex FFT: every row equals the DFT, counts around the lane width", "[fft]") {
  SECTION("float, SIMD") { check_batched_complex<float, ssmkit::default_arch>(batched_sizes); }
  SECTION("double, SIMD") { check_batched_complex<double, ssmkit::default_arch>(batched_sizes); }
  SECTION("float, scalar") { check_batched_complex<float, ssmkit::scalar>({1, 2, 15, 64, 125, 4096}); }
  SECTION("double, scalar") { check_batched_complex<double, ssmkit::scalar>({1, 30, 3375}); }
}

TEST_CASE("batched FFT: strided and transposed views give the dense result exactly", "[fft]") {
  // The same rows in the same groups and lanes: the results are bitwise equal whatever the strides.
  using T = float;
  const std::size_t w = ssmkit::detail::width_v<T, ssmkit::default_arch>;
  const std::size_t count = w + 3;
  for (const std::size_t n : {std::size_t{30}, std::size_t{45}, std::size_t{64}}) {
    const ssmkit::rfft_plan<T> plan(n);
    const std::size_t bins = plan.spectrum_size();
    const auto x = ssm_test::uniform<T>(count * n, -1, 1, 77);
    std::vector<std::complex<T>> X(count * bins);
    plan.forward(ssmkit::make_view(x, count, n), ssmkit::make_view(X, count, bins));
    // Input token-major (n, count) seen as (count, n); output into every other column of a
    // (count, 2 bins) buffer, rows in reverse order (a negative row stride).
    std::vector<T> xt(n * count);
    for (std::size_t r = 0; r < count; ++r)
      for (std::size_t j = 0; j < n; ++j) xt[j * count + r] = x[r * n + j];
    std::vector<std::complex<T>> Xs(count * 2 * bins, {-7, -7});
    const ssmkit::tensor_view<std::complex<T>, 2> out(Xs.data() + (count - 1) * 2 * bins, {count, bins},
                                                      {-static_cast<std::ptrdiff_t>(2 * bins), 2});
    plan.forward(ssmkit::make_view(xt, n, count).transposed(0, 1), out);
    bool same = true;
    for (std::size_t r = 0; r < count; ++r)
      for (std::size_t k = 0; k < bins; ++k) {
        same = same && Xs[(count - 1 - r) * 2 * bins + 2 * k] == X[r * bins + k];
        same = same && Xs[(count - 1 - r) * 2 * bins + 2 * k + 1] == std::complex<T>(-7, -7);  // gaps untouched
      }
    INFO("n = " << n);
    CHECK(same);
    // Backward from the strided spectrum into a transposed output equals the dense backward.
    std::vector<T> back(count * n), back_t(n * count);
    plan.backward(ssmkit::make_view(X, count, bins), ssmkit::make_view(back, count, n));
    plan.backward(ssmkit::tensor_view<const std::complex<T>, 2>(out), ssmkit::make_view(back_t, n, count).transposed(0, 1));
    bool same_back = true;
    for (std::size_t r = 0; r < count; ++r)
      for (std::size_t j = 0; j < n; ++j) same_back = same_back && back_t[j * count + r] == back[r * n + j];
    CHECK(same_back);
  }
  // Complex, in place on a transposed view.
  const std::size_t n = 60;
  const ssmkit::fft_plan<T> plan(n);
  std::vector<std::complex<T>> x(count * n), y(count * n);
  for (std::size_t r = 0; r < count; ++r) {
    const auto row = random_complex<T>(n, static_cast<std::uint32_t>(r));
    std::copy(row.begin(), row.end(), x.begin() + std::ptrdiff_t(r * n));
  }
  plan.forward(ssmkit::make_view(x, count, n), ssmkit::make_view(y, count, n));
  std::vector<std::complex<T>> xt(n * count);
  for (std::size_t r = 0; r < count; ++r)
    for (std::size_t j = 0; j < n; ++j) xt[j * count + r] = x[r * n + j];
  const auto t = ssmkit::make_view(xt, n, count).transposed(0, 1);
  plan.forward(ssmkit::tensor_view<const std::complex<T>, 2>(t), t);
  bool same = true;
  for (std::size_t r = 0; r < count; ++r)
    for (std::size_t j = 0; j < n; ++j) same = same && xt[j * count + r] == y[r * n + j];
  CHECK(same);
}

TEST_CASE("batched FFT: a row's result does not depend on its lane, and lanes do not mix", "[fft]") {
  using T = double;
  const std::size_t w = ssmkit::detail::width_v<T, ssmkit::default_arch>;
  const std::size_t count = w + 3, n = 90;
  const ssmkit::rfft_plan<T> plan(n);
  const std::size_t bins = plan.spectrum_size();
  // Every row the same signal: every row of the result bitwise the same (the tail group, padded
  // with zeros, included).
  const auto one = ssm_test::uniform<T>(n, -1, 1, 4);
  std::vector<T> x(count * n);
  for (std::size_t r = 0; r < count; ++r) std::copy(one.begin(), one.end(), x.begin() + std::ptrdiff_t(r * n));
  std::vector<std::complex<T>> X(count * bins);
  plan.forward(ssmkit::make_view(x, count, n), ssmkit::make_view(X, count, bins));
  bool same = true;
  for (std::size_t r = 1; r < count; ++r)
    for (std::size_t k = 0; k < bins; ++k) same = same && X[r * bins + k] == X[k];
  CHECK(same);
  // A NaN in row 1 makes all of row 1 NaN and no other row.
  x[n + 17] = NAN;
  plan.forward(ssmkit::make_view(x, count, n), ssmkit::make_view(X, count, bins));
  for (std::size_t r = 0; r < count; ++r) {
    bool all_nan = true, any_nan = false;
    for (std::size_t k = 0; k < bins; ++k) {
      const bool nan = std::isnan(X[r * bins + k].real() + X[r * bins + k].imag());
      all_nan = all_nan && nan;
      any_nan = any_nan || nan;
    }
    INFO("row " << r);
    CHECK((r == 1 ? all_nan : !any_nan));
  }
}

TEST_CASE("batched FFT: bad shapes and scratch throw with exact messages, outputs untouched", "[fft]") {
  using ssm_test::error_of;
  const ssmkit::rfft_plan<double> rplan(8);
  std::vector<double> x(3 * 9, 1.0);
  std::vector<std::complex<double>> X(3 * 5, {5, 5});
  const auto X_before = X;
  CHECK(error_of([&] { rplan.forward(ssmkit::make_view(x.data(), 3, 8), ssmkit::make_view(X.data(), 3, 4)); }) ==
        "rfft_plan::forward: X has shape (3, 4), expected (3, 5)");
  CHECK(error_of([&] { rplan.forward(ssmkit::make_view(x.data(), 3, 9), ssmkit::make_view(X.data(), 3, 5)); }) ==
        "rfft_plan::forward: x has shape (3, 9), expected (3, 8)");
  CHECK(error_of([&] { rplan.forward(ssmkit::make_view(x.data(), 3, 8), ssmkit::make_view(X.data(), 2, 5)); }) ==
        "rfft_plan::forward: X has shape (2, 5), expected (3, 5)");
  CHECK(error_of([&] {
          rplan.forward(ssmkit::tensor_view<const double, 2>(nullptr, {3, 8}), ssmkit::make_view(X.data(), 3, 5));
        }) == "rfft_plan::forward: x is a null view of shape (3, 8)");
  const std::size_t need = rplan.batch_scratch_size();
  std::vector<double> scratch(need);
  CHECK(error_of([&] {
          rplan.forward(ssmkit::make_view(x.data(), 3, 8), ssmkit::make_view(X.data(), 3, 5),
                        ssmkit::make_view(scratch.data(), need - 1));
        }) == "rfft_plan::forward: scratch has shape (" + std::to_string(need - 1) + "), expected (>= " +
                  std::to_string(need) + ")");
  CHECK(error_of([&] {
          rplan.forward(ssmkit::make_view(x.data(), 3, 8), ssmkit::make_view(X.data(), 3, 5),
                        ssmkit::tensor_view<double, 1>(scratch.data(), {need / 2}, {2}));
        }) == "rfft_plan::forward: scratch has shape (" + std::to_string(need / 2) + "), expected (>= " +
                  std::to_string(need) + ")");
  CHECK(X == X_before);
  const auto x_before = x;
  CHECK(error_of([&] { rplan.backward(ssmkit::make_view(X.data(), 3, 5), ssmkit::make_view(x.data(), 3, 9)); }) ==
        "rfft_plan::backward: x has shape (3, 9), expected (3, 8)");
  CHECK(error_of([&] { rplan.backward(ssmkit::make_view(X.data(), 3, 6), ssmkit::make_view(x.data(), 3, 8)); }) ==
        "rfft_plan::backward: X has shape (3, 6), expected (3, 5)");
  CHECK(x == x_before);
  // The scratch size is per group of lanes, independent of the count; the scalar backend needs one lane.
  CHECK(rplan.batch_scratch_size<ssmkit::scalar>() == rplan.scratch_size());
  CHECK(rplan.batch_scratch_size() == rplan.scratch_size() * ssmkit::detail::width_v<double, ssmkit::default_arch>);

  const ssmkit::fft_plan<float> plan(6);
  std::vector<std::complex<float>> c(4 * 6), d(4 * 6, {3, 3});
  const auto d_before = d;
  CHECK(error_of([&] { plan.forward(ssmkit::make_view(c.data(), 4, 6), ssmkit::make_view(d.data(), 4, 5)); }) ==
        "fft_plan::forward: y has shape (4, 5), expected (4, 6)");
  CHECK(error_of([&] { plan.backward(ssmkit::make_view(c.data(), 4, 5), ssmkit::make_view(d.data(), 4, 5)); }) ==
        "fft_plan::backward: x has shape (4, 5), expected (4, 6)");
  std::vector<float> small(plan.batch_scratch_size<ssmkit::scalar>());
  CHECK(error_of([&] {
          plan.backward<ssmkit::scalar>(ssmkit::make_view(c.data(), 4, 6), ssmkit::make_view(d.data(), 4, 6),
                                        ssmkit::make_view(small.data(), small.size() - 1));
        }) == "fft_plan::backward: scratch has shape (23), expected (>= 24)");
  CHECK(d == d_before);
  // count == 0: nothing to do, no error.
  plan.forward(ssmkit::make_view(c.data(), 0, 6), ssmkit::make_view(d.data(), 0, 6));
  CHECK(d == d_before);
}

TEST_CASE("single-signal split (n = S n2) equals the plain passes of the scalar backend", "[fft]") {
  // The SIMD backends run a single signal of size S * n2 (S = 16 floats, 8 doubles, n2 >= S) as
  // two many-transform FFTs with a transpose (fft_core::execute_split); the scalar backend runs
  // the plain Stockham passes. Both are within the FFT bound of the exact result, so within twice
  // the bound of each other. Sizes: the smallest split (S^2), powers of two and 5-smooth ones.
  auto run = [](auto tag, std::size_t n) {
    using T = decltype(tag);
    const ssmkit::fft_plan<T> plan(n);
    const auto x = random_complex<T>(n, static_cast<std::uint32_t>(n));
    std::vector<std::complex<T>> simd(n), plain(n), back(n);
    plan.forward(ssmkit::make_view(x, n), ssmkit::make_view(simd, n));
    plan.template forward<ssmkit::scalar>(ssmkit::make_view(x, n), ssmkit::make_view(plain, n));
    const double ef = rel_diff(simd.data(), plain.data(), n) / (2 * bound<T>(n));
    plan.backward(ssmkit::make_view(x, n), ssmkit::make_view(simd, n));
    plan.template backward<ssmkit::scalar>(ssmkit::make_view(x, n), ssmkit::make_view(plain, n));
    const double eb = rel_diff(simd.data(), plain.data(), n) / (2 * bound<T>(n));
    INFO((sizeof(T) == 4 ? "float" : "double") << " n = " << n << ": forward " << ef << ", backward " << eb);
    CHECK(ef <= 1);
    CHECK(eb <= 1);
  };
  for (const std::size_t n : {std::size_t{64}, std::size_t{256}, std::size_t{2048}, std::size_t{3840}, std::size_t{16384},
                              std::size_t{15360}}) {
    run(float{}, n);
    run(double{}, n);
  }
}
