// Short causal depthwise conv1d (Mamba's, width 4, SiLU) over float32 in both layouts: token-major
// (1, L, D), the layout of ssmkit's Mamba blocks, and mamba's channel-major (1, D, L), seen as
// (1, L, D) through `.transposed(1, 2)`. Against a plain loop over the same layout. Memory-bound:
// it reads x and writes y once, so bytes/s (x read + y written) is compared with the DRAM
// bandwidth (the arrays, 2 x 32 MiB at D = 4096, L = 2048, exceed the L3).
// ggml's ssm_conv took 21.0 ms (D = 1536) and 29.7-34.0 ms (D = 4096) at L = 2048 on the reference
// machine (../shared/perf/README.md).
#include <cmath>
#include <string>
#include <vector>

#include <ssmkit/conv1d.hpp>

#include "common.hpp"

namespace {

constexpr std::size_t width = 4;

// Argument "channel_major": 0 for x and y stored (1, L, D), 1 for (1, D, L).
std::string op_name(std::size_t D, std::size_t L, bool channel_major) {
  return std::string("conv1d W=4 D=") + std::to_string(D) + " L=" + std::to_string(L) +
         (channel_major ? " (B,D,L)" : " (B,L,D)");
}

ssmkit::tensor_view<float, 3> view_of(std::vector<float>& v, std::size_t D, std::size_t L, bool channel_major) {
  return channel_major ? ssmkit::make_view(v, 1, D, L).transposed(1, 2) : ssmkit::make_view(v, 1, L, D);
}

template <class Arch>
void conv1d_causal(benchmark::State& state) {
  const auto D = static_cast<std::size_t>(state.range(0)), L = static_cast<std::size_t>(state.range(1));
  const bool channel_major = state.range(2) != 0;
  const int threads = static_cast<int>(state.range(3));
  auto x = ssm_bench::uniform<float>(L * D, -1, 1);
  auto w = ssm_bench::uniform<float>(D * width, -1, 1, 2);
  auto bias = ssm_bench::uniform<float>(D, -1, 1, 3);
  std::vector<float> y(L * D);
  ssmkit::conv1d_options<float> options;
  options.silu = true;
  options.parallel.num_threads = threads;
  const auto xv = view_of(x, D, L, channel_major), yv = view_of(y, D, L, channel_major);
  for (auto _ : state) {
    ssmkit::causal_conv1d<float, Arch>(xv, ssmkit::make_view(w, D, width), ssmkit::make_view(bias, D), yv, options);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = 2.0 * double(L * D) * sizeof(float);
  ssm_bench::set_throughput(state, double(L * D), bytes);
  ssm_bench::describe(state, op_name(D, L, channel_major), ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit",
                      "dram", bytes, threads);
}

// The peer: the obvious loop, output-stationary over (t, d) in the order of the layout, reading W
// inputs per output with a branch for the start of the sequence.
void conv1d_plain_loop(benchmark::State& state) {
  const auto D = static_cast<std::size_t>(state.range(0)), L = static_cast<std::size_t>(state.range(1));
  const bool channel_major = state.range(2) != 0;
  auto x = ssm_bench::uniform<float>(L * D, -1, 1);
  auto w = ssm_bench::uniform<float>(D * width, -1, 1, 2);
  auto bias = ssm_bench::uniform<float>(D, -1, 1, 3);
  std::vector<float> y(L * D);
  const auto one = [&](std::size_t t, std::size_t d, std::size_t x_t, std::size_t x_d) {
    float acc = bias[d];
    for (std::size_t k = 0; k < width; ++k) {
      if (t + k >= width - 1) acc += w[d * width + k] * x[(t + k - (width - 1)) * x_t + d * x_d];
    }
    return acc / (1.0f + std::exp(-acc));
  };
  for (auto _ : state) {
    if (channel_major) {
      for (std::size_t d = 0; d < D; ++d)
        for (std::size_t t = 0; t < L; ++t) y[d * L + t] = one(t, d, 1, L);
    } else {
      for (std::size_t t = 0; t < L; ++t)
        for (std::size_t d = 0; d < D; ++d) y[t * D + d] = one(t, d, D, 1);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = 2.0 * double(L * D) * sizeof(float);
  ssm_bench::set_throughput(state, double(L * D), bytes);
  ssm_bench::describe(state, op_name(D, L, channel_major), "plain loop", "dram", bytes);
}

}  // namespace

BENCHMARK_TEMPLATE(conv1d_causal, ssmkit::default_arch)
    ->ArgNames({"D", "L", "channel_major", "threads"})
    ->Args({1536, 2048, 0, 1})
    ->Args({4096, 2048, 0, 1})
    ->Args({4096, 2048, 0, 2})
    ->Args({1536, 2048, 1, 1})
    ->Args({4096, 2048, 1, 1})
    ->Args({4096, 2048, 1, 2})
    ->UseRealTime();
BENCHMARK_TEMPLATE(conv1d_causal, ssmkit::scalar)
    ->ArgNames({"D", "L", "channel_major", "threads"})
    ->Args({4096, 2048, 0, 1})
    ->Args({4096, 2048, 1, 1})
    ->UseRealTime();
BENCHMARK(conv1d_plain_loop)
    ->ArgNames({"D", "L", "channel_major"})
    ->Args({1536, 2048, 0})
    ->Args({4096, 2048, 0})
    ->Args({4096, 2048, 1})
    ->UseRealTime();
