// Activations: both backends against a long-double reference, layouts, in place, NaN, errors.
#include <cmath>
#include <limits>
#include <vector>

#include <ssmkit/activation.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

long double softplus_ref(long double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
long double silu_ref(long double x) { return x / (1 + std::exp(-x)); }
long double sigmoid_ref(long double x) { return 1 / (1 + std::exp(-x)); }

// Bound: libm and xsimd's exp/log1p are within 2 ulp; a quotient or product adds 1 ulp each, and
// softplus at x just below 20 is well conditioned. 8 ulp relative (plus 8 ulp absolute, for results
// near zero where relative error is meaningless) covers every path with margin.
template <class T>
void check_close(const std::vector<T>& got, const std::vector<long double>& want) {
  const double eps = std::numeric_limits<T>::epsilon();
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double w = static_cast<double>(want[i]);
    INFO("index " << i << " got " << got[i] << " want " << w);
    CHECK(std::abs(double(got[i]) - w) <= 8 * eps * (1 + std::abs(w)));
  }
}

template <class T, class Arch, class Fn, class Ref>
void check_activation(Fn fn, Ref ref) {
  // Sizes: 1, a prime, SIMD width +- 1, and a large odd size, so every tail path runs.
  constexpr std::size_t w = ssmkit::detail::width_v<T, Arch>;
  for (const std::size_t n : {std::size_t{1}, std::size_t{13}, w - 1 + (w == 1), w, w + 1, std::size_t{4099}}) {
    auto x = ssm_test::uniform<T>(n, -30, 30, 7);
    x[0] = T(20);  // the softplus threshold itself
    std::vector<T> y(n);
    fn(ssmkit::make_view(x, n), ssmkit::make_view(y, n));
    std::vector<long double> want(n);
    for (std::size_t i = 0; i < n; ++i) want[i] = ref(static_cast<long double>(x[i]));
    check_close(y, want);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("activations match a long double reference on both backends", "[activation]", float, double) {
  using T = TestType;
  SECTION("simd") {
    check_activation<T, ssmkit::default_arch>([](auto x, auto y) { ssmkit::softplus<T>(x, y); }, softplus_ref);
    check_activation<T, ssmkit::default_arch>([](auto x, auto y) { ssmkit::silu<T>(x, y); }, silu_ref);
    check_activation<T, ssmkit::default_arch>([](auto x, auto y) { ssmkit::sigmoid<T>(x, y); }, sigmoid_ref);
  }
  SECTION("scalar") {
    check_activation<T, ssmkit::scalar>([](auto x, auto y) { ssmkit::softplus<T, ssmkit::scalar>(x, y); }, softplus_ref);
    check_activation<T, ssmkit::scalar>([](auto x, auto y) { ssmkit::silu<T, ssmkit::scalar>(x, y); }, silu_ref);
    check_activation<T, ssmkit::scalar>([](auto x, auto y) { ssmkit::sigmoid<T, ssmkit::scalar>(x, y); }, sigmoid_ref);
  }
}

TEST_CASE("activations work on strided layouts and in place", "[activation]") {
  const std::size_t batch = 3, length = 37, dim = 19;
  auto x = ssm_test::uniform<float>(batch * length * dim, -5, 5, 11);
  std::vector<float> contiguous(x.size()), strided(x.size());
  auto tokens = ssmkit::make_view(x, batch, length, dim);
  ssmkit::silu(tokens, ssmkit::make_view(contiguous, batch, length, dim));
  // The same data seen channel-major: the last dimension now has stride `dim`.
  ssmkit::silu(tokens.transposed(1, 2), ssmkit::make_view(strided, batch, length, dim).transposed(1, 2));
  // The strided path evaluates lane by lane with libm, the contiguous one with xsimd: a few ulp apart.
  CHECK(ssm_test::max_rel_error(strided, contiguous) <= 4 * std::numeric_limits<float>::epsilon());
  std::vector<float> in_place = x;
  auto v = ssmkit::make_view(in_place, batch, length, dim);
  ssmkit::silu(v, v);
  CHECK(in_place == contiguous);
}

TEST_CASE("activations propagate NaN and handle infinities", "[activation]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x{nan, inf, -inf, 100.0f, -100.0f, nan, 0.0f, 1.0f,
                       nan, nan, nan, nan, nan, nan, nan, nan, nan};
  std::vector<float> y(x.size());
  ssmkit::softplus(ssmkit::make_view(x, x.size()), ssmkit::make_view(y, y.size()));
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == inf);
  CHECK(y[2] == 0.0f);
  CHECK(y[3] == 100.0f);
  CHECK(y[4] >= 0.0f);
  for (std::size_t i = 8; i < x.size(); ++i) CHECK(std::isnan(y[i]));
  ssmkit::silu(ssmkit::make_view(x, x.size()), ssmkit::make_view(y, y.size()));
  CHECK(std::isnan(y[0]));
  CHECK(y[3] == 100.0f);
  CHECK(y[4] <= 0.0f);
}

TEST_CASE("activations validate their arguments", "[activation][errors]") {
  using ssm_test::error_of;
  std::vector<float> x(12), y(12);
  CHECK(error_of([&] { ssmkit::silu(ssmkit::make_view(x, 3, 4), ssmkit::make_view(y, 4, 3)); }) ==
        "silu: y has shape (4, 3), expected (3, 4)");
  CHECK(error_of([&] { ssmkit::softplus(ssmkit::make_view(x.data(), 6), ssmkit::make_view(x.data() + 3, 6)); }) ==
        "softplus: y overlaps x in memory");
  ssmkit::tensor_view<float, 1> null_out(nullptr, {12});
  CHECK(error_of([&] { ssmkit::sigmoid(ssmkit::make_view(x, 12), null_out); }) == "sigmoid: y is a null view of shape (12)");
  // On error the output is untouched.
  std::vector<float> guard(12, 7.0f);
  CHECK_THROWS_AS(ssmkit::silu(ssmkit::make_view(x, 3, 4), ssmkit::make_view(guard, 4, 3)), ssmkit::error);
  CHECK(guard == std::vector<float>(12, 7.0f));
}

TEST_CASE("float softplus is within 2 ulp, relative, also where it is tiny", "[activation]") {
  // The SIMD float softplus is max(x, 0) + log1p(exp(-|x|)) with its own log1p on [0, 1]
  // (detail/math.hpp); relative accuracy must hold down to softplus(-87) ~ 1.6e-38, not only
  // against the absolute floor of check_close.
  std::vector<float> x;
  for (double v = -87; v < 40; v += 0.00317) x.push_back(float(v));
  for (const float v : {20.0f, std::nextafter(20.0f, 0.0f), std::nextafter(20.0f, 30.0f), 0.0f, -0.0f}) x.push_back(v);
  std::vector<float> y(x.size());
  ssmkit::softplus<float>(ssmkit::make_view(x, x.size()), ssmkit::make_view(y, y.size()));
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const long double want = softplus_ref(static_cast<long double>(x[i]));
    worst = std::max(worst, double(std::abs((static_cast<long double>(y[i]) - want) / want)));
  }
  INFO("max relative error " << worst << " = " << worst / std::numeric_limits<float>::epsilon() << " ulp");
  CHECK(worst <= 2 * std::numeric_limits<float>::epsilon());
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i] > 20) CHECK(y[i] == x[i]);  // torch's threshold: exactly x above 20
  }
}
