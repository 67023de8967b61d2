#pragma once
// Shared by the benchmarks: seeded inputs, and `describe`, which tags a benchmark for the
// ssmkit-bench report (bench/ssmkit_bench.cpp).
//
// Every benchmark of a kernel says
//   - which operation it times (`op`, e.g. "selective_scan D=1536 N=16 L=2048"): rows with the
//     same op and thread count are compared with each other, implementation against implementation;
//   - which implementation it is (`impl`: "ssmkit", "ssmkit-scalar", or a peer: "fftw", "eigen-fft",
//     "naive", ...);
//   - which machine limit bounds it (`limit`: "fma" in flop/s, "exp" in exp/s, "dram" or "l2" in
//     bytes/s, or "none") and how many of the limit's units one iteration consumes, so that the
//     report can say what fraction of the machine the kernel reaches.
// bench_limits.cpp measures the limits themselves in the same run.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <ssmkit/backend.hpp>

namespace ssm_bench {

/// True in `ssmkit-bench --quick` (set once by main before any benchmark runs). Peers with a slow
/// setup may shorten it then; each says how.
inline bool& quick_mode() noexcept {
  static bool quick = false;
  return quick;
}

/// n values uniform in [lo, hi), reproducible.
template <class T>
std::vector<T> uniform(std::size_t n, double lo, double hi, std::uint32_t seed = 42) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

/// uniform(), in a buffer that starts on a 64-byte line (ssmkit::aligned_vector). Inference engines
/// hand kernels tensors on cache lines (PyTorch's CPU allocator aligns to 64 bytes); a large
/// std::vector starts 16 bytes past one. The decode benchmarks keep the state they update in place
/// in such a buffer, as the mixers do.
template <class T>
ssmkit::aligned_vector<T> aligned_uniform(std::size_t n, double lo, double hi, std::uint32_t seed = 42) {
  const std::vector<T> v = uniform<T>(n, lo, hi, seed);
  return ssmkit::aligned_vector<T>(v.begin(), v.end());
}

/// Sets items/s and bytes/s from per-iteration counts.
inline void set_throughput(benchmark::State& state, double items_per_iteration, double bytes_per_iteration) {
  state.SetItemsProcessed(static_cast<std::int64_t>(items_per_iteration * static_cast<double>(state.iterations())));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes_per_iteration * static_cast<double>(state.iterations())));
}

/// Tags a benchmark for the report (see the top of this file). Call after the timing loop.
inline void describe(benchmark::State& state, const std::string& op, const std::string& impl, const std::string& limit,
                     double limit_units_per_iteration, int threads = 1) {
  state.SetLabel("op=" + op + ";impl=" + impl + ";limit=" + limit + ";threads=" + std::to_string(threads));
  if (limit != "none") {
    state.counters["limit_rate"] =
        benchmark::Counter(limit_units_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
  }
}

}  // namespace ssm_bench
