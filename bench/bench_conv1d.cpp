// Short causal depthwise conv1d (Mamba's, width 4, SiLU) over token-major (1, L, D) float32, against
// a plain loop over the same layout. Memory-bound: it reads x and writes y once, so bytes/s is
// compared with the DRAM bandwidth (the arrays, 2 x 32 MiB at D = 4096, L = 2048, exceed the L3).
// ggml's ssm_conv took 21.0 ms (D = 1536) and 29.7-34.0 ms (D = 4096) at L = 2048 on the reference
// machine (../shared/perf/README.md).
#include <string>
#include <vector>

#include <ssmkit/conv1d.hpp>

#include "common.hpp"

namespace {

constexpr std::size_t width = 4;

template <class Arch>
void conv1d_causal(benchmark::State& state) {
  const auto D = static_cast<std::size_t>(state.range(0)), L = static_cast<std::size_t>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  auto x = ssm_bench::uniform<float>(L * D, -1, 1);
  auto w = ssm_bench::uniform<float>(D * width, -1, 1, 2);
  auto bias = ssm_bench::uniform<float>(D, -1, 1, 3);
  std::vector<float> y(L * D);
  ssmkit::conv1d_options<float> options;
  options.silu = true;
  options.parallel.num_threads = threads;
  for (auto _ : state) {
    ssmkit::causal_conv1d<float, Arch>(ssmkit::make_view(x, 1, L, D), ssmkit::make_view(w, D, width),
                                       ssmkit::make_view(bias, D), ssmkit::make_view(y, 1, L, D), options);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = 2.0 * double(L * D) * sizeof(float);
  ssm_bench::set_throughput(state, double(L * D), bytes);
  ssm_bench::describe(state, "conv1d W=4 D=" + std::to_string(D) + " L=" + std::to_string(L),
                      ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit", "dram", bytes, threads);
}

// The peer: the obvious loop, output-stationary over (t, d), reading W inputs per output.
void conv1d_plain_loop(benchmark::State& state) {
  const auto D = static_cast<std::size_t>(state.range(0)), L = static_cast<std::size_t>(state.range(1));
  auto x = ssm_bench::uniform<float>(L * D, -1, 1);
  auto w = ssm_bench::uniform<float>(D * width, -1, 1, 2);
  auto bias = ssm_bench::uniform<float>(D, -1, 1, 3);
  std::vector<float> y(L * D);
  for (auto _ : state) {
    for (std::size_t t = 0; t < L; ++t) {
      for (std::size_t d = 0; d < D; ++d) {
        float acc = bias[d];
        for (std::size_t k = 0; k < width; ++k) {
          if (t + k >= width - 1) acc += w[d * width + k] * x[(t + k - (width - 1)) * D + d];
        }
        y[t * D + d] = acc / (1.0f + std::exp(-acc));
      }
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = 2.0 * double(L * D) * sizeof(float);
  ssm_bench::set_throughput(state, double(L * D), bytes);
  ssm_bench::describe(state, "conv1d W=4 D=" + std::to_string(D) + " L=" + std::to_string(L), "plain loop", "dram", bytes);
}

}  // namespace

BENCHMARK_TEMPLATE(conv1d_causal, ssmkit::default_arch)
    ->ArgNames({"D", "L", "threads"})
    ->Args({1536, 2048, 1})
    ->Args({4096, 2048, 1})
    ->Args({4096, 2048, 2})
    ->UseRealTime();
BENCHMARK_TEMPLATE(conv1d_causal, ssmkit::scalar)->ArgNames({"D", "L", "threads"})->Args({4096, 2048, 1})->UseRealTime();
BENCHMARK(conv1d_plain_loop)->ArgNames({"D", "L"})->Args({1536, 2048})->Args({4096, 2048})->UseRealTime();
