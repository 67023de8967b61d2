// Backends: the default, the scalar batch, and the version shims.
#include <cmath>
#include <vector>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/batch.hpp>

#include "catch_compat.hpp"

TEST_CASE("the default backend is the best one compiled in, or scalar when forced", "[backend]") {
#if SSMKIT_FORCE_SCALAR
  STATIC_REQUIRE(ssmkit::is_scalar_v<ssmkit::default_arch>);
#else
  STATIC_REQUIRE(std::is_same_v<ssmkit::default_arch, xsimd::default_arch>);
#endif
  CHECK(ssmkit::backend_available<ssmkit::default_arch>());
  CHECK(ssmkit::backend_available<ssmkit::scalar>());
  CHECK(std::string(ssmkit::backend_name<ssmkit::scalar>()) == "scalar");
  STATIC_REQUIRE(ssmkit::detail::width_v<float, ssmkit::scalar> == 1);
}

TEMPLATE_TEST_CASE("fma rounds once on every backend", "[backend]", float, double) {
  using T = TestType;
  // x*y+z with x = 1+e, y = 1-e, z = -1: exactly -e^2, which a separate multiply rounds to 0.
  const T e = std::ldexp(T(1), std::numeric_limits<T>::digits / 2 + 1 - std::numeric_limits<T>::digits);
  using B = ssmkit::detail::batch_t<T, ssmkit::default_arch>;
  const B r = ssmkit::detail::fma(B(T(1) + e), B(T(1) - e), B(T(-1)));
  std::vector<T> out(ssmkit::detail::width_v<T, ssmkit::default_arch>);
  ssmkit::detail::store(out.data(), r);
  CHECK(out[0] == -e * e);
  const auto s = ssmkit::detail::fma(ssmkit::detail::scalar_batch<T>(T(1) + e), ssmkit::detail::scalar_batch<T>(T(1) - e),
                                     ssmkit::detail::scalar_batch<T>(T(-1)));
  CHECK(s.value == -e * e);
}

TEMPLATE_TEST_CASE("reduce_add sums every lane", "[backend]", float, double) {
  using T = TestType;
  using A = ssmkit::default_arch;
  constexpr std::size_t w = ssmkit::detail::width_v<T, A>;
  std::vector<T> v(w);
  for (std::size_t i = 0; i < w; ++i) v[i] = T(i + 1);
  CHECK(ssmkit::detail::reduce_add(ssmkit::detail::load<A>(v.data())) == T(w * (w + 1) / 2));
}
