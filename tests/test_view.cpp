// tensor_view: construction from pointers, vectors and Eigen, strides, permutations and checks.
#include <array>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/view.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

TEST_CASE("make_view is row-major by default", "[view]") {
  std::vector<int> v(24);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = int(i);
  auto t = ssmkit::make_view(v, 2, 3, 4);
  STATIC_REQUIRE(decltype(t)::rank == 3);
  CHECK(t.extent(0) == 2);
  CHECK(t.stride(0) == 12);
  CHECK(t.stride(1) == 4);
  CHECK(t.stride(2) == 1);
  CHECK(t.size() == 24);
  CHECK(t.is_contiguous());
  CHECK(t(1, 2, 3) == 23);
  CHECK(t(1, 0, 2) == 14);
}
