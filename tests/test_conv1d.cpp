// causal_conv1d and causal_conv1d_update against a plain double reference;
// states, layouts, backends, allocation and errors.
#include <cmath>
#include <limits>
#include <vector>

#include <ssmkit/conv1d.hpp>

#include "allocation_counter.hpp"
#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

// The definition, written for clarity: y[b,t,d] = act(bias[d] + Σ_k w[d,k]
// x[b,t-(W-1)+k,d]), with x before t = 0 taken from `initial` (B, D, W-1) or
// zero. x and y are (B, L, D) row-major.
std::vector<double> reference(const std::vector<double>& x, const std::vector<double>& w,
                              const std::vector<double>& bias, const std::vector<double>& initial, std::size_t B,
                              std::size_t L, std::size_t D, std::size_t W, bool silu) {
  std::vector<double> y(B * L * D);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t d = 0; d < D; ++d) {
        double acc = bias.empty() ? 0.0 : bias[d];
        for (std::size_t k = 0; k < W; ++k) {
          const long s = long(t) - long(W - 1) + long(k);
          double v = 0;
          if (s >= 0)
            v = x[(b * L + std::size_t(s)) * D + d];
          else if (!initial.empty())
            v = initial[(b * D + d) * (W - 1) + std::size_t(long(W - 1) + s)];
          acc += w[d * W + k] * v;
        }
        y[(b * L + t) * D + d] = silu ? acc / (1 + std::exp(-acc)) : acc;
      }
  return y;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

}  // namespace

TEMPLATE_TEST_CASE("causal_conv1d matches the reference on both backends", "[conv1d]", float, double) {
  using T = TestType;
  constexpr std::size_t simd_width = ssmkit::detail::width_v<T, ssmkit::default_arch>;
  const std::size_t W = GENERATE(1, 2, 4, 8);
  for (const std::size_t D : {std::size_t{1}, std::size_t{13}, simd_width - 1 + (simd_width == 1), simd_width,
                              simd_width + 1, std::size_t{67}}) {
    INFO("W " << W << " D " << D);
    const std::size_t B = 2, L = 37;
    const bool silu = W % 2 == 0;
    const auto x = ssm_test::uniform<double>(B * L * D, -1, 1, 1);
    const auto w = ssm_test::uniform<double>(D * W, -1, 1, 2);
    const auto bias = ssm_test::uniform<double>(D, -1, 1, 3);
    const auto initial = ssm_test::uniform<double>(B * D * (W - 1), -1, 1, 4);
    const auto want = reference(x, w, bias, initial, B, L, D, W, silu);

    auto xt = cast<T>(x), wt = cast<T>(w), bt = cast<T>(bias), it = cast<T>(initial);
    std::vector<T> simd(B * L * D), plain(B * L * D), final_state(B * D * (W - 1));
    ssmkit::conv1d_options<T> options;
    options.silu = silu;
    options.initial_state = ssmkit::make_view(it.data(), B, D, W - 1);
    options.final_state = ssmkit::make_view(final_state.data(), B, D, W - 1);
    ssmkit::causal_conv1d<T>(ssmkit::make_view(xt, B, L, D), ssmkit::make_view(wt, D, W), ssmkit::make_view(bt, D),
                             ssmkit::make_view(simd, B, L, D), options);
    ssmkit::causal_conv1d<T, ssmkit::scalar>(ssmkit::make_view(xt, B, L, D), ssmkit::make_view(wt, D, W),
                                             ssmkit::make_view(bt, D), ssmkit::make_view(plain, B, L, D), options);
    // Each output is a dot product of W + 1 terms of magnitude <= 1: error <=
    // (W + 2) u per term, plus SiLU's exp (2 ulp). 4 (W + 4) u normwise bounds
    // it with margin.
    const double u = std::numeric_limits<T>::epsilon() / 2;
    CHECK(ssm_test::max_rel_error(simd, want) <= 4 * double(W + 4) * u);
    CHECK(ssm_test::max_rel_error(plain, want) <= 4 * double(W + 4) * u);
    CHECK(ssm_test::max_rel_error(simd, plain) <= 8 * u);
    // The final state is the last W-1 inputs.
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t d = 0; d < D; ++d)
        for (std::size_t j = 0; j + 1 < W; ++j)
          CHECK(final_state[(b * D + d) * (W - 1) + j] == xt[(b * L + L - (W - 1) + j) * D + d]);
  }
}

TEST_CASE("causal_conv1d in two calls with the state equals one call", "[conv1d]") {
  const std::size_t B = 3, L = 50, D = 40, W = 4;
  auto x = ssm_test::uniform<float>(B * L * D, -1, 1, 5);
  auto w = ssm_test::uniform<float>(D * W, -1, 1, 6);
  std::vector<float> whole(B * L * D), parts(B * L * D), state(B * D * (W - 1));
  const ssmkit::tensor_view<const float, 1> no_bias{};
  ssmkit::causal_conv1d<float>(ssmkit::make_view(x, B, L, D), ssmkit::make_view(w, D, W), no_bias,
                               ssmkit::make_view(whole, B, L, D));
  for (const std::size_t split : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{17}, L}) {
    ssmkit::conv1d_options<float> first;
    first.final_state = ssmkit::make_view(state, B, D, W - 1);
    const ssmkit::tensor_view<const float, 3> xs = ssmkit::make_view(x, B, L, D);
    const ssmkit::tensor_view<float, 3> ys = ssmkit::make_view(parts, B, L, D);
    ssmkit::causal_conv1d<float>({x.data(), {B, split, D}, xs.strides()}, ssmkit::make_view(w, D, W), no_bias,
                                 {parts.data(), {B, split, D}, ys.strides()}, first);
    ssmkit::conv1d_options<float> second;
    second.initial_state = ssmkit::make_view(state, B, D, W - 1);
    second.final_state = ssmkit::make_view(state, B, D, W - 1);  // in and out in one buffer
    ssmkit::causal_conv1d<float>({x.data() + split * D, {B, L - split, D}, xs.strides()}, ssmkit::make_view(w, D, W),
                                 no_bias, {parts.data() + split * D, {B, L - split, D}, ys.strides()}, second);
    INFO("split " << split);
    CHECK(parts == whole);
  }
}

TEST_CASE("causal_conv1d on a channel-major layout equals the token-major one", "[conv1d]") {
  const std::size_t B = 2, L = 33, D = 21, W = 4;
  auto x = ssm_test::uniform<float>(B * L * D, -1, 1, 7);
  auto w = ssm_test::uniform<float>(D * W, -1, 1, 8);
  auto bias = ssm_test::uniform<float>(D, -1, 1, 9);
  std::vector<float> x_cm(B * D * L), token(B * L * D), channel(B * D * L);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t d = 0; d < D; ++d) x_cm[(b * D + d) * L + t] = x[(b * L + t) * D + d];
  ssmkit::conv1d_options<float> options;
  options.silu = true;
  ssmkit::causal_conv1d<float>(ssmkit::make_view(x, B, L, D), ssmkit::make_view(w, D, W), ssmkit::make_view(bias, D),
                               ssmkit::make_view(token, B, L, D), options);
  ssmkit::causal_conv1d<float>(ssmkit::make_view(x_cm, B, D, L).transposed(1, 2), ssmkit::make_view(w, D, W),
                               ssmkit::make_view(bias, D), ssmkit::make_view(channel, B, D, L).transposed(1, 2),
                               options);
  double worst = 0;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t d = 0; d < D; ++d)
        worst = std::max(worst, double(std::abs(token[(b * L + t) * D + d] - channel[(b * D + d) * L + t])));
  CHECK(worst <= 1e-6);  // the same fmas; SiLU's exp from xsimd against libm
}

TEST_CASE(
    "causal_conv1d_update over L tokens equals causal_conv1d, in both "
    "state layouts",
    "[conv1d]") {
  const std::size_t B = 2, L = 25, D = 35, W = 4;
  auto x = ssm_test::uniform<float>(B * L * D, -1, 1, 10);
  auto w = ssm_test::uniform<float>(D * W, -1, 1, 11);
  auto bias = ssm_test::uniform<float>(D, -1, 1, 12);
  std::vector<float> whole(B * L * D);
  ssmkit::conv1d_options<float> options;
  options.silu = true;
  ssmkit::causal_conv1d<float>(ssmkit::make_view(x, B, L, D), ssmkit::make_view(w, D, W), ssmkit::make_view(bias, D),
                               ssmkit::make_view(whole, B, L, D), options);
  for (const bool channels_contiguous : {true, false}) {
    std::vector<float> state(B * D * (W - 1), 0.0f), steps(B * L * D), x_t(B * D), y_t(B * D);
    // mamba's (B, D, W-1), or a (B, W-1, D) buffer seen as (B, D, W-1): the
    // fast path.
    auto state_view = channels_contiguous ? ssmkit::make_view(state, B, W - 1, D).transposed(1, 2)
                                          : ssmkit::make_view(state, B, D, W - 1);
    std::size_t allocations = 0;
    for (std::size_t t = 0; t < L; ++t) {
      for (std::size_t b = 0; b < B; ++b)
        for (std::size_t d = 0; d < D; ++d) x_t[b * D + d] = x[(b * L + t) * D + d];
      ssm_test::allocation_scope scope;
      ssmkit::causal_conv1d_update<float>(ssmkit::make_view(x_t, B, D), state_view, ssmkit::make_view(w, D, W),
                                          ssmkit::make_view(bias, D), ssmkit::make_view(y_t, B, D), true);
      allocations += scope.allocations();
      for (std::size_t b = 0; b < B; ++b)
        for (std::size_t d = 0; d < D; ++d) steps[(b * L + t) * D + d] = y_t[b * D + d];
    }
    INFO("channels contiguous: " << channels_contiguous);
    CHECK(allocations == 0);
    CHECK(ssm_test::max_rel_error(steps, whole) <= 1e-6);
  }
}

TEST_CASE("causal_conv1d propagates NaN to the outputs that depend on it", "[conv1d]") {
  const std::size_t L = 10, D = 17, W = 4;
  std::vector<float> x(L * D, 1.0f), w(D * W, 0.5f), y(L * D);
  x[3 * D + 5] = std::numeric_limits<float>::quiet_NaN();
  const ssmkit::tensor_view<const float, 1> no_bias{};
  ssmkit::causal_conv1d<float>(ssmkit::make_view(x, 1, L, D), ssmkit::make_view(w, D, W), no_bias,
                               ssmkit::make_view(y, 1, L, D));
  for (std::size_t t = 0; t < L; ++t)
    for (std::size_t d = 0; d < D; ++d) CHECK(std::isnan(y[t * D + d]) == (d == 5 && t >= 3 && t < 3 + W));
}

TEST_CASE("causal_conv1d validates its arguments and writes nothing on error", "[conv1d][errors]") {
  using ssm_test::error_of;
  const std::size_t B = 2, L = 8, D = 6, W = 4;
  std::vector<float> x(B * L * D), w(D * W), bias(D), y(B * L * D, 7.0f), state(B * D * (W - 1), 7.0f);
  auto xv = ssmkit::make_view(x, B, L, D);
  auto yv = ssmkit::make_view(y, B, L, D);
  const ssmkit::tensor_view<const float, 1> no_bias{};
  CHECK(error_of([&] { ssmkit::causal_conv1d<float>(xv, ssmkit::make_view(w.data(), D + 1, W - 1), no_bias, yv); }) ==
        "causal_conv1d: weight has shape (7, 3), expected (6, W)");
  std::vector<float> wide(D * 9);
  CHECK(error_of([&] { ssmkit::causal_conv1d<float>(xv, ssmkit::make_view(wide, D, 9), no_bias, yv); }) ==
        "causal_conv1d: weight has width 9, expected 1 to 8");
  CHECK(error_of([&] {
          ssmkit::causal_conv1d<float>(xv, ssmkit::make_view(w, D, W), ssmkit::make_view(bias.data(), 5), yv);
        }) == "causal_conv1d: bias has shape (5), expected (6)");
  CHECK(error_of([&] {
          ssmkit::causal_conv1d<float>(xv, ssmkit::make_view(w, D, W), no_bias, ssmkit::make_view(y.data(), B, D, L));
        }) == "causal_conv1d: y has shape (2, 6, 8), expected (2, 8, 6)");
  CHECK(error_of([&] {
          ssmkit::causal_conv1d<float>(xv, ssmkit::make_view(w, D, W), no_bias, ssmkit::make_view(x, B, L, D));
        }) == "causal_conv1d: y overlaps x in memory");
  ssmkit::conv1d_options<float> bad_state;
  bad_state.initial_state = ssmkit::make_view(state.data(), B, D, W);
  CHECK(error_of([&] { ssmkit::causal_conv1d<float>(xv, ssmkit::make_view(w, D, W), no_bias, yv, bad_state); }) ==
        "causal_conv1d: initial_state has shape (2, 6, 4), expected (2, 6, 3)");
  CHECK(y == std::vector<float>(B * L * D, 7.0f));
  std::vector<float> x_t(B * D), y_t(B * D, 7.0f);
  CHECK(error_of([&] {
          ssmkit::causal_conv1d_update<float>(ssmkit::make_view(x_t, B, D), ssmkit::make_view(state.data(), B, D, W),
                                              ssmkit::make_view(w, D, W), no_bias, ssmkit::make_view(y_t, B, D));
        }) ==
        "causal_conv1d_update: conv_state has shape (2, 6, 4), expected "
        "(2, 6, 3)");
  CHECK(y_t == std::vector<float>(B * D, 7.0f));
  CHECK(state == std::vector<float>(B * D * (W - 1), 7.0f));
}

TEST_CASE("causal_conv1d: the three paths agree for every width, with states, at short and odd lengths",
          "[conv1d]") {
  // token-major (lanes across channels), channel-major (lanes along time, with head and tail
  // windows), and a strided layout that is neither (one lane, any strides).
  for (std::size_t W = 1; W <= 8; ++W) {
    for (const std::size_t L : {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{16}, std::size_t{17},
                                std::size_t{40}}) {
      for (const std::size_t D : {std::size_t{1}, std::size_t{3}, std::size_t{20}}) {
        const std::size_t B = 2, keep = W - 1;
        const auto seed = static_cast<std::uint32_t>(W * 1000 + L * 10 + D);
        auto x = ssm_test::uniform<float>(B * L * D, -1, 1, seed);
        auto w = ssm_test::uniform<float>(D * W, -1, 1, seed + 1);
        auto bias = ssm_test::uniform<float>(D, -1, 1, seed + 2);
        auto initial = ssm_test::uniform<float>(B * D * keep, -1, 1, seed + 3);
        std::vector<float> x_cm(B * D * L), x_pad(B * L * D * 2), token(B * L * D), channel(B * D * L),
            padded(B * L * D * 2), fs_token(B * D * keep), fs_channel(B * D * keep), fs_padded(B * D * keep);
        for (std::size_t b = 0; b < B; ++b)
          for (std::size_t t = 0; t < L; ++t)
            for (std::size_t d = 0; d < D; ++d) {
              x_cm[(b * D + d) * L + t] = x[(b * L + t) * D + d];
              x_pad[((b * L + t) * D + d) * 2] = x[(b * L + t) * D + d];
            }
        const auto run = [&](ssmkit::tensor_view<const float, 3> xv, ssmkit::tensor_view<float, 3> yv,
                             std::vector<float>& final_state) {
          ssmkit::conv1d_options<float> options;
          options.silu = true;
          options.initial_state = ssmkit::make_view(initial.data(), B, D, keep);
          options.final_state = ssmkit::make_view(final_state.data(), B, D, keep);
          ssmkit::causal_conv1d<float>(xv, ssmkit::make_view(w, D, W), ssmkit::make_view(bias, D), yv, options);
        };
        run(ssmkit::make_view(x, B, L, D), ssmkit::make_view(token, B, L, D), fs_token);
        run(ssmkit::make_view(x_cm, B, D, L).transposed(1, 2), ssmkit::make_view(channel, B, D, L).transposed(1, 2),
            fs_channel);
        const ssmkit::tensor_view<const float, 3> xp(x_pad.data(), {B, L, D},
                                                     {static_cast<std::ptrdiff_t>(2 * L * D), static_cast<std::ptrdiff_t>(2 * D), 2});
        const ssmkit::tensor_view<float, 3> yp(padded.data(), {B, L, D},
                                               {static_cast<std::ptrdiff_t>(2 * L * D), static_cast<std::ptrdiff_t>(2 * D), 2});
        run(xp, yp, fs_padded);
        double worst = 0;
        for (std::size_t b = 0; b < B; ++b)
          for (std::size_t t = 0; t < L; ++t)
            for (std::size_t d = 0; d < D; ++d) {
              const float want = token[(b * L + t) * D + d];
              worst = std::max(worst, double(std::abs(want - channel[(b * D + d) * L + t])));
              worst = std::max(worst, double(std::abs(want - padded[((b * L + t) * D + d) * 2])));
            }
        INFO("W " << W << " L " << L << " D " << D);
        CHECK(worst <= 1e-6);  // the same fmas; SiLU's exp from xsimd against libm
        CHECK(fs_channel == fs_token);
        CHECK(fs_padded == fs_token);
        // The final state: the last W-1 inputs, reaching into the initial state when L < W-1.
        for (std::size_t b = 0; b < B; ++b)
          for (std::size_t d = 0; d < D; ++d)
            for (std::size_t j = 0; j < keep; ++j) {
              const std::size_t s = L + j;
              const float want = s >= keep ? x[(b * L + s - keep) * D + d] : initial[(b * D + d) * keep + s];
              CHECK(fs_token[(b * D + d) * keep + j] == want);
            }
      }
    }
  }
}
