// Elementwise activations: SiLU and softplus over n floats, SIMD backend against the scalar
// backend. Bound by exp throughput while the data sits in cache (one exp per element; the limit is
// about 8 G exp/s per core with xsimd on AVX-512), and by memory bandwidth beyond.
#include <string>
#include <vector>

#include <ssmkit/activation.hpp>

#include "common.hpp"

namespace {

template <class Arch>
void activation_silu(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = ssm_bench::uniform<float>(n, -8, 8);
  std::vector<float> y(n);
  for (auto _ : state) {
    ssmkit::silu<float, Arch>(ssmkit::make_view(x, n), ssmkit::make_view(y, n), {1});
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(n), 2.0 * double(n) * sizeof(float));
  ssm_bench::describe(state, "silu n=" + std::to_string(n), ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit",
                      "exp", double(n));
}

template <class Arch>
void activation_softplus(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = ssm_bench::uniform<float>(n, -8, 8);
  std::vector<float> y(n);
  for (auto _ : state) {
    ssmkit::softplus<float, Arch>(ssmkit::make_view(x, n), ssmkit::make_view(y, n), {1});
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(n), 2.0 * double(n) * sizeof(float));
  ssm_bench::describe(state, "softplus n=" + std::to_string(n), ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit",
                      "exp", double(n));
}

}  // namespace

BENCHMARK_TEMPLATE(activation_silu, ssmkit::default_arch)->ArgName("n")->Arg(4096)->Arg(1 << 20);
BENCHMARK_TEMPLATE(activation_silu, ssmkit::scalar)->ArgName("n")->Arg(4096)->Arg(1 << 20);
BENCHMARK_TEMPLATE(activation_softplus, ssmkit::default_arch)->ArgName("n")->Arg(4096)->Arg(1 << 20);
BENCHMARK_TEMPLATE(activation_softplus, ssmkit::scalar)->ArgName("n")->Arg(4096)->Arg(1 << 20);
