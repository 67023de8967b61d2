// The machine's limits, measured in the same binary and run as the kernels, so that every kernel
// figure is a fraction of the limit that bounds it:
//   fma   float32 FMA peak: 16 independent FMA chains per thread (covers the 4-cycle latency of
//         2 FMA pipes with room to spare), in flop/s (2 flops per lane per FMA);
//   exp   vectorised float32 exp throughput (xsimd) on an L1-resident buffer, in exp/s;
//   dram  STREAM-like triad a = b + s*c over 3 arrays of 64 MiB (far beyond the L3), in bytes/s,
//         counting the three streams (the write-allocate read of `a` is not counted, as STREAM);
//   l2    the same triad over 3 arrays of 128 KiB (L2-resident), repeated.
// Each at 1 thread and at all threads (parallel_for). ../shared/perf/README.md has the figures
// measured on the reference machine.
#include <vector>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/batch.hpp>
#include <ssmkit/parallel.hpp>

#include "common.hpp"

namespace {

using arch = ssmkit::default_arch;
using batch = ssmkit::detail::batch_t<float, arch>;
constexpr std::size_t width = ssmkit::detail::width_v<float, arch>;

int threads_of(const benchmark::State& state) {
  return state.range(0) == 0 ? ssmkit::resolved_threads(0) : static_cast<int>(state.range(0));
}

void limits_fma(benchmark::State& state) {
  const int threads = threads_of(state);
  constexpr int chains = 16;
  constexpr long steps = 20000;
  std::vector<float> sink(static_cast<std::size_t>(threads) * width);
  for (auto _ : state) {
    ssmkit::parallel_for(0, threads, [&](int t) {
      batch acc[chains];
      for (int c = 0; c < chains; ++c) acc[c] = batch(1.0f + 1e-3f * float(c));
      const batch m(0.999999f), a(1e-7f);
      for (long s = 0; s < steps; ++s) {
        for (int c = 0; c < chains; ++c) acc[c] = ssmkit::detail::fma(acc[c], m, a);
      }
      batch total = acc[0];
      for (int c = 1; c < chains; ++c) total = total + acc[c];
      ssmkit::detail::store(sink.data() + static_cast<std::size_t>(t) * width, total);
    }, {threads});
    benchmark::DoNotOptimize(sink.data());
  }
  const double flops = 2.0 * width * chains * steps * threads;
  state.counters["flop/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("limit_of=fma;threads=" + std::to_string(threads));
}

void limits_exp(benchmark::State& state) {
  const int threads = threads_of(state);
  constexpr std::size_t n = 4096;  // 16 KiB: L1-resident
  constexpr int repeats = 64;
  std::vector<std::vector<float>> in(static_cast<std::size_t>(threads)), out(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    in[static_cast<std::size_t>(t)] = ssm_bench::uniform<float>(n, -10, 0, 7u + static_cast<unsigned>(t));
    out[static_cast<std::size_t>(t)].assign(n, 0.0f);
  }
  for (auto _ : state) {
    ssmkit::parallel_for(0, threads, [&](int t) {
      const float* x = in[static_cast<std::size_t>(t)].data();
      float* y = out[static_cast<std::size_t>(t)].data();
      for (int r = 0; r < repeats; ++r) {
        for (std::size_t i = 0; i + width <= n; i += width) {
          ssmkit::detail::store(y + i, ssmkit::detail::exp(ssmkit::detail::load<arch>(x + i)));
        }
      }
    }, {threads});
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["exp/s"] = benchmark::Counter(double(n) * repeats * threads, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("limit_of=exp;threads=" + std::to_string(threads));
}

void triad(benchmark::State& state, std::size_t n, int repeats, const char* name) {
  const int threads = threads_of(state);
  std::vector<float> a(n, 0.0f), b(n, 1.0f), c(n, 2.0f);
  const float s = 0.5f;
  for (auto _ : state) {
    ssmkit::parallel_for(0, threads, [&](int t) {
      const std::size_t lo = n * static_cast<std::size_t>(t) / static_cast<std::size_t>(threads);
      const std::size_t hi = n * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(threads);
      for (int r = 0; r < repeats; ++r) {
        std::size_t i = lo;
        for (; i + width <= hi; i += width) {
          ssmkit::detail::store(a.data() + i, ssmkit::detail::fma(batch(s), ssmkit::detail::load<arch>(c.data() + i),
                                                                ssmkit::detail::load<arch>(b.data() + i)));
        }
        for (; i < hi; ++i) a[i] = b[i] + s * c[i];
      }
    }, {threads});
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  state.counters["bytes/s"] = benchmark::Counter(3.0 * sizeof(float) * double(n) * repeats,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string("limit_of=") + name + ";threads=" + std::to_string(threads));
}

void limits_dram(benchmark::State& state) { triad(state, std::size_t{16} << 20, 1, "dram"); }
void limits_l2(benchmark::State& state) {
  // 3 x 128 KiB in all: every thread's share stays in its own L2.
  triad(state, std::size_t{32} << 10, 64, "l2");
}

}  // namespace

// Argument: threads (0 = all the threads parallel_for would use).
BENCHMARK(limits_fma)->ArgName("threads")->Arg(1)->Arg(0)->UseRealTime();
BENCHMARK(limits_exp)->ArgName("threads")->Arg(1)->Arg(0)->UseRealTime();
BENCHMARK(limits_dram)->ArgName("threads")->Arg(1)->Arg(0)->UseRealTime();
BENCHMARK(limits_l2)->ArgName("threads")->Arg(1)->Arg(0)->UseRealTime();
