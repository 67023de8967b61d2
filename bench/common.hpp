#pragma once
// Shared by the benchmarks: seeded inputs and the counters every benchmark reports.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

namespace ssm_bench {

/// n values uniform in [lo, hi), reproducible.
template <class T>
std::vector<T> uniform(std::size_t n, double lo, double hi, std::uint32_t seed = 42) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

/// Sets items/s and bytes/s from per-iteration counts.
inline void set_throughput(benchmark::State& state, double items_per_iteration, double bytes_per_iteration) {
  state.SetItemsProcessed(static_cast<std::int64_t>(items_per_iteration * static_cast<double>(state.iterations())));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes_per_iteration * static_cast<double>(state.iterations())));
}

}  // namespace ssm_bench
