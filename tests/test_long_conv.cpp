// Long-conv regularisers and layer against plain definitions and a direct convolution.
#include <cmath>
#include <limits>
#include <vector>

#include <ssmkit/long_conv.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

TEST_CASE("squash is a soft threshold and smooth a zero-padded moving average", "[long_conv]") {
  std::vector<double> k{-0.5, -0.1, 0.0, 0.05, 0.3, std::numeric_limits<double>::quiet_NaN()};
  std::vector<double> out(k.size());
  ssmkit::squash<double>(ssmkit::make_view(k, 1, 1, 6), ssmkit::make_view(out, 1, 1, 6), 0.1);
  CHECK(out[0] == -0.4);
  CHECK(out[1] == 0.0);
  CHECK(out[2] == 0.0);
  CHECK(out[3] == 0.0);
  CHECK(out[4] == ssm_test::Approx(0.2));
  CHECK(std::isnan(out[5]));
  std::vector<double> s{3, 6, 9, 12}, m(4);
  ssmkit::smooth<double>(ssmkit::make_view(s, 1, 1, 4), ssmkit::make_view(m, 1, 1, 4), 3);
  CHECK(m == std::vector<double>{3, 6, 9, 7});  // (0+3+6)/3, (3+6+9)/3, (6+9+12)/3, (9+12+0)/3
  CHECK(ssm_test::error_of([&] {
          ssmkit::smooth<double>(ssmkit::make_view(s, 1, 1, 4), ssmkit::make_view(m, 1, 1, 4), 4);
        }) == "smooth: window must be odd, got 4");
  CHECK(ssm_test::error_of([&] {
          ssmkit::squash<double>(ssmkit::make_view(s, 1, 1, 4), ssmkit::make_view(m, 1, 1, 4), -1);
        }) == "squash: lambda must be >= 0, got -1");
}

TEST_CASE("a long-conv layer equals the direct convolution with its regularised kernel", "[long_conv]") {
  const std::size_t B = 2, L = 61, H = 5, C = 2, Lk = 40;
  const auto k = ssm_test::uniform<double>(C * H * Lk, -1, 1, 1);
  const auto D = ssm_test::uniform<double>(C * H, -1, 1, 2);
  const auto u = ssm_test::uniform<double>(B * L * H, -1, 1, 3);
  const ssmkit::long_conv_regularizer reg{0.2, 5};
  const ssmkit::long_conv_layer<double> layer(ssmkit::make_view(k, C, H, Lk), ssmkit::make_view(D, C, H), L, reg);
  // The regularised kernel, by the definitions.
  std::vector<double> smoothed(k.size()), want_k(k.size());
  ssmkit::smooth<double>(ssmkit::make_view(k, C, H, Lk), ssmkit::make_view(smoothed, C, H, Lk), 5);
  ssmkit::squash<double>(ssmkit::make_view(smoothed, C, H, Lk), ssmkit::make_view(want_k, C, H, Lk), 0.2);
  const auto kv = layer.kernel();
  for (std::size_t i = 0; i < k.size(); ++i) CHECK(kv.data()[i] == want_k[i]);
  std::vector<double> y(B * L * C * H);
  ssmkit::fft_conv_workspace<double> ws;
  layer.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(y, B, L, C * H), ws);
  double worst = 0, scale = 0;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t h = 0; h < H; ++h) {
          double acc = D[c * H + h] * u[(b * L + t) * H + h];
          for (std::size_t s = 0; s < Lk && s <= t; ++s)
            acc += want_k[(c * H + h) * Lk + s] * u[(b * L + t - s) * H + h];
          worst = std::max(worst, std::abs(acc - y[(b * L + t) * C * H + c * H + h]));
          scale = std::max(scale, std::abs(acc));
        }
  CHECK(worst <= 1e-13 * scale);  // the FFT's O(eps log n) error
}
