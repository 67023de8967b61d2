// ssmkit::error and the checking helpers.
#include <array>
#include <stdexcept>
#include <vector>

#include <ssmkit/error.hpp>

#include "allocation_counter.hpp"
#include "catch_compat.hpp"
#include "test_support.hpp"

TEST_CASE("ssmkit::error is a std::invalid_argument", "[errors]") {
  STATIC_REQUIRE(std::is_base_of_v<std::invalid_argument, ssmkit::error>);
  try {
    ssmkit::detail::throw_error("selective_scan", "N must be positive, got ", -3);
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) == "selective_scan: N must be positive, got -3");
  }
}

TEST_CASE("require throws only when the condition fails", "[errors]") {
  CHECK_NOTHROW(ssmkit::detail::require(true, "f", "never"));
  CHECK(ssm_test::error_of([] { ssmkit::detail::require(false, "fft_conv", "k has ", 3, " channels, expected ", 4); }) ==
        "fft_conv: k has 3 channels, expected 4");
}

TEST_CASE("format_shape writes tuples", "[errors]") {
  CHECK(ssmkit::detail::format_shape(std::vector<int>{}).str() == "()");
  CHECK(ssmkit::detail::format_shape(std::vector<int>{7}).str() == "(7)");
  CHECK(ssmkit::detail::format_shape(std::array<std::size_t, 3>{2, 64, 100}).str() == "(2, 64, 100)");
  CHECK(ssmkit::detail::concat("x has shape ", ssmkit::detail::format_shape(std::array<std::size_t, 2>{3, 4})) ==
        "x has shape (3, 4)");
}

TEST_CASE("a check that passes formats no shape and allocates nothing", "[errors]") {
  // A shape text longer than any small-string buffer: formatting it would allocate.
  const std::array<std::size_t, 4> extents{123456789, 123456789, 123456789, 123456789};
  ssm_test::allocation_scope scope;
  ssmkit::detail::require(true, "ssd_step", "B has shape ", ssmkit::detail::format_shape(extents),
                          ", expected (1, G, 128)");
  CHECK(scope.allocations() == 0);
  CHECK(ssm_test::error_of([&] {
          ssmkit::detail::require(false, "f", "x has shape ", ssmkit::detail::format_shape(extents));
        }) ==
        "f: x has shape (123456789, 123456789, 123456789, 123456789)");
}
