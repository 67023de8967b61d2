#pragma once
// The one Catch2 include of the tests: Debian ships Catch2 v2 (single header), a fetched Catch2 is
// v3 (split headers). Tests use only the subset common to both: TEST_CASE, SECTION, REQUIRE/CHECK,
// CHECK_THAT with WithinRel/WithinAbs/WithinULP, TEMPLATE_TEST_CASE, GENERATE, REQUIRE_THROWS_*,
// and ssm_test::Approx. v2 has no SKIP(): use WARN(...) and return.
#include <string>

#if __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/matchers/catch_matchers_floating_point.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#define SSMKIT_CATCH_V3 1
#else
#include <catch2/catch.hpp>
#define SSMKIT_CATCH_V3 0
#endif

namespace ssm_test {
#if SSMKIT_CATCH_V3
using Catch::Approx;
#else
using Catch::Detail::Approx;
#endif
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
using Catch::Matchers::WithinULP;
/// A matcher for REQUIRE_THROWS_WITH and CHECK_THAT: the string contains `text`.
inline auto contains(const std::string& text) {
#if SSMKIT_CATCH_V3
  return Catch::Matchers::ContainsSubstring(text);
#else
  return Catch::Matchers::Contains(text);
#endif
}
}  // namespace ssm_test
