// The allocation counter itself, and the allocation discipline of the foundation: a view never
// allocates, and an elementwise kernel on caller buffers allocates nothing.
#include <vector>

#include <ssmkit/activation.hpp>
#include <ssmkit/view.hpp>

#include "allocation_counter.hpp"
#include "catch_compat.hpp"

TEST_CASE("the counter sees allocations on this thread", "[allocation]") {
  ssm_test::allocation_scope scope;
  // Through a volatile pointer, so that the compiler cannot elide the pair (C++14 allows it).
  std::vector<double>* volatile v = new std::vector<double>(100);
  delete v;
  CHECK(scope.allocations() == 2);  // the vector object and its buffer
}

TEST_CASE("views and elementwise kernels make no heap allocation", "[allocation]") {
  std::vector<float> x(1000, 0.5f), y(1000);
  auto xv = ssmkit::make_view(x, 10, 100);
  auto yv = ssmkit::make_view(y, 10, 100);
  // Warm-up: under clang's AddressSanitizer the first call made one operator new (a one-time
  // runtime setup, not the kernel's); the discipline is about every call after the first.
  ssmkit::silu(xv, yv, {1});
  ssm_test::allocation_scope scope;
  ssmkit::silu(xv.transposed(0, 1), yv.transposed(0, 1), {1});
  ssmkit::softplus(xv, yv, {1});
  CHECK(scope.allocations() == 0);
}
