// parallel_for: every index exactly once, any thread count, serial fallback, exceptions.
#include <atomic>
#include <stdexcept>
#include <vector>

#include <ssmkit/parallel.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

TEST_CASE("parallel_for visits every index exactly once", "[parallel]") {
  const int threads = GENERATE(0, 1, 2, 3, 7);
  const long n = GENERATE(0L, 1L, 2L, 5L, 1000L, 100003L);
  std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
  ssmkit::parallel_for(0L, n, [&](long i) { hits[static_cast<std::size_t>(i)]++; }, {threads});
  for (const auto& h : hits) REQUIRE(h.load() == 1);
}

TEST_CASE("parallel_for over an offset range and an empty or reversed one", "[parallel]") {
  std::atomic<long> sum{0};
  ssmkit::parallel_for(10, 20, [&](int i) { sum += i; });
  CHECK(sum == 145);
  int calls = 0;
  ssmkit::parallel_for(5, 5, [&](int) { ++calls; });
  ssmkit::parallel_for(7, 3, [&](int) { ++calls; });
  CHECK(calls == 0);
}

TEST_CASE("parallel_for keeps each thread's indices in increasing order", "[parallel]") {
  // Thread-local order: a block is contiguous and runs forward, so a running maximum never drops.
  const std::size_t n = 10000;
  std::vector<int> order(n, -1);
  std::atomic<int> ticket{0};
  ssmkit::parallel_for(std::size_t{0}, n, [&](std::size_t i) { order[i] = ticket++; }, {2});
  // Within each half assigned to one thread the tickets increase.
  std::size_t decreases = 0;
  for (std::size_t i = 1; i < n; ++i) decreases += order[i] < order[i - 1];
  CHECK(decreases <= 1);  // at most once, at the boundary between the two threads' blocks
}

TEST_CASE("parallel_for rethrows the exception of a call on the calling thread", "[parallel][errors]") {
  const int threads = GENERATE(1, 2);
  std::atomic<int> calls{0};
  CHECK_THROWS_AS(ssmkit::parallel_for(0, 100, [&](int i) {
                    ++calls;
                    if (i == 37) throw std::runtime_error("boom");
                  }, {threads}),
                  std::runtime_error);
  CHECK(calls >= 38);
}

TEST_CASE("parallel_for validates its options", "[parallel][errors]") {
  using ssm_test::error_of;
  CHECK(error_of([] { ssmkit::parallel_for(0, 10, [](int) {}, {-1}); }) == "parallel_for: num_threads must be >= 0, got -1");
  CHECK(error_of([] { ssmkit::parallel_for(0, 10, [](int) {}, {0, 0}); }) == "parallel_for: min_block must be >= 1, got 0");
}

TEST_CASE("the thread count resolves as documented", "[parallel]") {
  CHECK(ssmkit::resolved_threads(3) == (ssmkit::parallel_enabled() ? 3 : 1));
  CHECK(ssmkit::resolved_threads(0) >= 1);
  if (ssmkit::parallel_enabled()) {
    std::atomic<int> distinct_max{0};
    std::vector<std::atomic<int>> seen(64);
#if SSMKIT_HAS_OPENMP
    ssmkit::parallel_for(0, 64, [&](int) { seen[static_cast<std::size_t>(omp_get_thread_num())] = 1; }, {2});
#endif
    for (auto& s : seen) distinct_max += s.load();
    CHECK(distinct_max == 2);
  }
}
