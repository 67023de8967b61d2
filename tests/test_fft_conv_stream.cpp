// fft_conv_stream (partitioned overlap-save over chunks) and fft_conv_blocked.
//
// Tolerances. Each output of the stream is a sum over the kernel's partitions of FFT convolutions
// of size n = 2 Bs; each is within O(eps log2 n) of its exact value relative to the sum of |k u|
// it covers (Higham 24.1), so, as in test_fft_conv.cpp, we check every output against
//   |y_t - y*_t| <= 2 eps log2(n) S,   S = max_t ( sum_s |k_s u_{t-s}| + |D u_t| ),
// with a long double direct convolution as y*. Against the one-shot fft_conv (itself within
// 2 eps log2(n1) S of y*), the difference is bounded by the sum of the two bounds.
#include <cmath>
#include <cstdio>
#include <vector>

#include <ssmkit/fft_conv.hpp>
#include <ssmkit/fft_conv_stream.hpp>

#include "allocation_counter.hpp"
#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

/// y* (B, L, H) in long double and the scale S of the file comment.
template <class T>
std::vector<long double> direct(std::size_t B, std::size_t L, std::size_t H, std::size_t Lk, const std::vector<T>& u,
                                const std::vector<T>& k, const std::vector<T>* D, long double& scale) {
  std::vector<long double> y(B * L * H);
  scale = 0;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t t = 0; t < L; ++t) {
        long double acc = 0, mag = 0;
        for (std::size_t s = 0; s < Lk && s <= t; ++s) {
          const long double p = static_cast<long double>(k[h * Lk + s]) * u[(b * L + t - s) * H + h];
          acc += p;
          mag += std::fabs(p);
        }
        if (D) {
          const long double p = static_cast<long double>((*D)[h]) * u[(b * L + t) * H + h];
          acc += p;
          mag += std::fabs(p);
        }
        y[(b * L + t) * H + h] = acc;
        scale = std::max(scale, mag);
      }
  return y;
}

/// Runs the stream over u in chunks of the given sizes (cycled), returns y.
template <class T, class Arch>
std::vector<T> run_stream(ssmkit::fft_conv_stream<T, Arch>& stream, const std::vector<T>& u, std::size_t B,
                          std::size_t L, std::size_t H, const std::vector<std::size_t>& chunks) {
  std::vector<T> y(B * L * H, T(-7));
  const ssmkit::tensor_view<const T, 3> uv = ssmkit::make_view(u, B, L, H);
  const ssmkit::tensor_view<T, 3> yv = ssmkit::make_view(y, B, L, H);
  std::size_t t = 0;
  for (std::size_t i = 0; t < L; ++i) {
    const std::size_t c = std::min(chunks[i % chunks.size()], L - t);
    stream.process({u.data() + t * H, {B, c, H}, uv.strides()}, {y.data() + t * H, {B, c, H}, yv.strides()});
    t += c;
  }
  return y;
}

template <class T, class Arch>
void check_stream(std::size_t B, std::size_t L, std::size_t H, std::size_t Lk, std::size_t block, bool with_D,
                  const std::vector<std::size_t>& chunks) {
  const auto seed = static_cast<std::uint32_t>(L * 7 + H * 3 + Lk + block);
  const auto u = ssm_test::uniform<T>(B * L * H, -1, 1, seed);
  const auto k = ssm_test::uniform<T>(H * Lk, -1, 1, seed + 1);
  const auto D = ssm_test::uniform<T>(H, -1, 1, seed + 2);
  ssmkit::fft_conv_stream_options options;
  options.block = block;
  ssmkit::fft_conv_stream<T, Arch> stream(ssmkit::make_view(k, H, Lk),
                                          with_D ? ssmkit::make_view(D, H) : ssmkit::tensor_view<const T, 1>{}, B,
                                          options);
  const auto y = run_stream(stream, u, B, L, H, chunks);
  long double scale = 0;
  const auto want = direct(B, L, H, Lk, u, k, with_D ? &D : nullptr, scale);
  const double eps = std::numeric_limits<T>::epsilon() / 2;
  const double tol = 2 * eps * std::log2(static_cast<double>(stream.fft_size())) * static_cast<double>(scale);
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double e = std::abs(static_cast<double>(y[i]) - static_cast<double>(want[i]));
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  INFO("B " << B << " L " << L << " H " << H << " Lk " << Lk << " block " << block << " D " << with_D
            << " chunks[0] " << chunks[0] << ": max error " << worst << ", tolerance " << tol);
  CHECK(worst <= tol);
  CHECK(stream.position() == L);
}

}  // namespace

TEST_CASE("fft_conv_stream equals the direct convolution for any chunking", "[fft_conv_stream]") {
  const std::vector<std::size_t> whole{1u << 30}, tokens{1}, mixed{1, 7, 64, 3, 100, 250, 1, 999};
  SECTION("float, SIMD: kernel shorter than, equal to, and longer than a block, several blocks") {
    for (const std::size_t Lk : {std::size_t{1}, std::size_t{17}, std::size_t{64}, std::size_t{65}, std::size_t{300},
                                 std::size_t{1000}}) {
      for (const std::size_t H : {std::size_t{1}, std::size_t{17}}) {
        check_stream<float, ssmkit::default_arch>(2, 1000, H, Lk, 64, Lk % 2 == 1, mixed);
      }
    }
    check_stream<float, ssmkit::default_arch>(1, 1000, 3, 300, 64, true, whole);
    check_stream<float, ssmkit::default_arch>(1, 300, 3, 100, 64, true, tokens);
  }
  SECTION("double and the scalar backend, 5-smooth blocks that are not powers of two") {
    check_stream<double, ssmkit::default_arch>(2, 1500, 9, 700, 100, true, mixed);
    check_stream<double, ssmkit::scalar>(1, 800, 2, 333, 90, false, mixed);
    check_stream<float, ssmkit::scalar>(1, 800, 3, 1, 25, true, mixed);
  }
  SECTION("the block size above the four-step threshold (n/2 = 4096)") {
    check_stream<float, ssmkit::default_arch>(1, 10000, 5, 5000, 4096, true, {4096, 1, 3000, 77});
  }
}

TEST_CASE("fft_conv_stream at L = 1e6 equals one-shot fft_conv, in bounded memory", "[fft_conv_stream]") {
  using T = float;
  const std::size_t L = 1000000, H = 2;
  for (const std::size_t Lk : {std::size_t{5000}, std::size_t{100000}}) {
    const auto u = ssm_test::uniform<T>(L * H, -1, 1, 31);
    const auto k = ssm_test::uniform<T>(H * Lk, -1, 1, 32);
    const auto D = ssm_test::uniform<T>(H, -1, 1, 33);
    std::vector<T> once(L * H);
    ssmkit::fft_conv(ssmkit::make_view(u, 1, L, H), ssmkit::make_view(k, H, Lk), ssmkit::make_view(D, H),
                     ssmkit::make_view(once, 1, L, H));
    ssmkit::fft_conv_stream<T> stream(ssmkit::make_view(k, H, Lk), ssmkit::make_view(D, H), 1);  // block 4096
    const std::size_t memory = stream.memory_size();
    // Per lane group of `lanes` channels, kernel spectra: P spectra of n reals per lane; state:
    // (P + 3) n + small buffers per lane. H / lanes groups (more with the narrower backends).
    const std::size_t lanes = ssmkit::fft_conv_stream<T>::lanes, P = stream.partitions(), n = stream.fft_size();
    const std::size_t groups = (H + lanes - 1) / lanes;
    CHECK(P == (Lk + 4095) / 4096);
    CHECK(memory >= 2 * P * n * lanes * groups);
    CHECK(memory <= (2 * P + 8) * n * lanes * groups);  // independent of L
    std::size_t allocations = 0;
    std::vector<T> streamed(L * H);
    {
      const std::vector<std::size_t> chunks{4096, 1, 10000, 777, 65536, 4095};
      std::size_t t = 0;
      for (std::size_t i = 0; t < L; ++i) {
        const std::size_t c = std::min(chunks[i % chunks.size()], L - t);
        ssm_test::allocation_scope scope;
        stream.process({u.data() + t * H, {1, c, H}}, {streamed.data() + t * H, {1, c, H}});
        allocations += scope.allocations();
        t += c;
      }
    }
    CHECK(allocations == 0);
    CHECK(stream.memory_size() == memory);
    double worst = 0, peak = 0;
    for (std::size_t i = 0; i < once.size(); ++i) {
      worst = std::max(worst, std::abs(static_cast<double>(streamed[i]) - static_cast<double>(once[i])));
      peak = std::max(peak, std::abs(static_cast<double>(once[i])));
    }
    // Relative to max|y| (smaller than S by about sqrt(Lk) for random data, so stricter than the
    // bounds of the file comment): measured ratios are printed; 8 eps log2(n1) is the check,
    // n1 ~ 2^21 the one-shot FFT size.
    const double eps = std::numeric_limits<T>::epsilon() / 2;
    const double ratio = worst / peak / (eps * std::log2(2.0 * static_cast<double>(L)));
    std::printf("fft_conv_stream float32 L = %zu, Lk = %zu, block 4096: max |y_stream - y_oneshot| / max|y| = %.3g = "
                "%.3f eps log2(2L); memory %zu floats\n",
                L, Lk, worst / peak, ratio, memory);
    CHECK(ratio <= 8);
  }
}

TEST_CASE("fft_conv_stream: reset, kernel longer than the input, and fft_conv_blocked", "[fft_conv_stream]") {
  using T = double;
  const std::size_t B = 2, L = 700, H = 5, Lk = 2000;
  const auto u = ssm_test::uniform<T>(B * L * H, -1, 1, 3);
  const auto k = ssm_test::uniform<T>(H * Lk, -1, 1, 4);
  ssmkit::fft_conv_stream_options options;
  options.block = 128;
  ssmkit::fft_conv_stream<T> stream(ssmkit::make_view(k, H, Lk), {}, B, options);
  const auto first = run_stream(stream, u, B, L, H, {50});
  stream.reset();
  CHECK(stream.position() == 0);
  const auto second = run_stream(stream, u, B, L, H, {50});
  CHECK(first == second);
  std::vector<T> blocked(B * L * H);
  ssmkit::fft_conv_blocked(ssmkit::make_view(u, B, L, H), ssmkit::make_view(k, H, Lk), {},
                           ssmkit::make_view(blocked, B, L, H), options);
  long double scale = 0;
  const auto want = direct(B, L, H, Lk, u, k, static_cast<const std::vector<T>*>(nullptr), scale);
  const double tol = 2 * std::numeric_limits<T>::epsilon() / 2 * std::log2(256.0) * static_cast<double>(scale);
  double worst = 0;
  for (std::size_t i = 0; i < blocked.size(); ++i) worst = std::max(worst, std::abs(double(blocked[i] - want[i])));
  CHECK(worst <= tol);
}

TEST_CASE("fft_conv_stream: bad input gives exact messages and leaves the stream unchanged",
          "[fft_conv_stream][errors]") {
  using ssm_test::error_of;
  using T = float;
  std::vector<T> k(3 * 10), D(3), u(2 * 5 * 3), y(2 * 5 * 3);
  CHECK(error_of([&] { ssmkit::fft_conv_stream<T> s(ssmkit::make_view(k.data(), 3, 0), {}, 1); }) ==
        "fft_conv_stream: k has shape (3, 0), expected (>= 1, >= 1)");
  CHECK(error_of([&] {
          ssmkit::fft_conv_stream<T> s(ssmkit::make_view(k, 3, 10), ssmkit::make_view(D.data(), 2), 1);
        }) == "fft_conv_stream: D has shape (2), expected (3)");
  CHECK(error_of([&] { ssmkit::fft_conv_stream<T> s(ssmkit::make_view(k, 3, 10), {}, 0); }) ==
        "fft_conv_stream: batch must be >= 1, got 0");
  ssmkit::fft_conv_stream_options bad;
  bad.block = 7;
  CHECK(error_of([&] { ssmkit::fft_conv_stream<T> s(ssmkit::make_view(k, 3, 10), {}, 1, bad); }) ==
        "fft_conv_stream: block 7 is not of the form 2^a 3^b 5^c (next_fast_len gives 8)");
  bad.block = 0;
  CHECK(error_of([&] { ssmkit::fft_conv_stream<T> s(ssmkit::make_view(k, 3, 10), {}, 1, bad); }) ==
        "fft_conv_stream: block 0 is not of the form 2^a 3^b 5^c (next_fast_len gives 1)");
  CHECK(error_of([&] {
          ssmkit::fft_conv_stream<T> s(ssmkit::tensor_view<const T, 2>(nullptr, {3, 10}), {}, 1);
        }) == "fft_conv_stream: k is a null view of shape (3, 10)");
  ssmkit::fft_conv_stream<T> stream(ssmkit::make_view(k, 3, 10), ssmkit::make_view(D, 3), 2);
  CHECK(error_of([&] { stream.process(ssmkit::make_view(u, 1, 10, 3), ssmkit::make_view(y, 1, 10, 3)); }) ==
        "fft_conv_stream::process: u has shape (1, 10, 3), expected (2, 10, 3)");
  CHECK(error_of([&] { stream.process(ssmkit::make_view(u, 2, 5, 3), ssmkit::make_view(y, 2, 3, 5)); }) ==
        "fft_conv_stream::process: y has shape (2, 3, 5), expected (2, 5, 3)");
  CHECK(error_of([&] { stream.process(ssmkit::make_view(u, 2, 5, 3), ssmkit::make_view(u, 2, 5, 3)); }) ==
        "fft_conv_stream::process: y overlaps u in memory");
  CHECK(stream.position() == 0);
  stream.process(ssmkit::make_view(u, 2, 5, 3), ssmkit::make_view(y, 2, 5, 3));
  CHECK(stream.position() == 5);
}
