// Elementwise activations: SiLU and softplus over n floats, SIMD backend against the scalar
// backend. They are bound by exp throughput while the data sits in cache (the limit in
// ../shared/perf: about 8 G exp/s per core with xsimd on AVX-512), and by memory bandwidth beyond.
#include <vector>

#include <ssmkit/activation.hpp>

#include "common.hpp"

namespace {

template <class Arch>
void silu(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = ssm_bench::uniform<float>(n, -8, 8);
  std::vector<float> y(n);
  for (auto _ : state) {
    ssmkit::silu<float, Arch>(ssmkit::make_view(x, n), ssmkit::make_view(y, n), {1});
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(n), 2.0 * double(n) * sizeof(float));
}

template <class Arch>
void softplus(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = ssm_bench::uniform<float>(n, -8, 8);
  std::vector<float> y(n);
  for (auto _ : state) {
    ssmkit::softplus<float, Arch>(ssmkit::make_view(x, n), ssmkit::make_view(y, n), {1});
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(n), 2.0 * double(n) * sizeof(float));
}

}  // namespace

BENCHMARK_TEMPLATE(silu, ssmkit::default_arch)->ArgName("n")->Arg(4096)->Arg(1 << 20);
BENCHMARK_TEMPLATE(silu, ssmkit::scalar)->ArgName("n")->Arg(4096)->Arg(1 << 20);
BENCHMARK_TEMPLATE(softplus, ssmkit::default_arch)->ArgName("n")->Arg(4096)->Arg(1 << 20);
BENCHMARK_TEMPLATE(softplus, ssmkit::scalar)->ArgName("n")->Arg(4096)->Arg(1 << 20);

BENCHMARK_MAIN();
