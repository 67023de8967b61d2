// Mamba-2 SSD: the recurrent and chunked scans and the decode step, float32, batch 1, g = 1,
// head dim 64, N = 128 (Mamba-2's shapes; d_inner = heads · 64). Counters:
//   items/s  = state updates per second (batch · H · P · N · L, one (channel, state, token) each),
//   the limit column: 5 flops per update (decay multiply 1, input FMA 2, output FMA 2: the
//              recurrence's own count, used for both algorithms so that the figures compare)
//              against the FMA peak measured in the same run (limits_fma in bench_limits.cpp;
//              267 GFLOP/s per core on an idle reference machine, ../shared/perf/README.md).
// Peer: ggml's Mamba-2 ssm_scan and its decode run in the same binary when it is configured with
// SSMKIT_BENCH_GGML (peers/ggml_ssm.cpp). On the reference machine (../shared/perf): 35.5-52.1 ms
// at d_inner 1536, L 2048, and 22.7 µs per decode token.
#include <string>
#include <vector>

#include <ssmkit/ssd.hpp>

#include "common.hpp"

namespace {

struct ssd_data {
  std::size_t h, p = 64, n = 128, L;
  std::vector<float> x, dt, A, D, z, dt_bias, out;
  // On cache lines, as an engine's tensors (common.hpp): the state the step updates in place, and
  // B and C, which a Mamba-2 engine slices from its in_proj output at multiples of d_inner.
  ssmkit::aligned_vector<float> B, C, state;
  ssd_data(std::size_t heads, std::size_t length) : h(heads), L(length) {
    x = ssm_bench::uniform<float>(L * h * p, -1, 1, 1);
    dt = ssm_bench::uniform<float>(L * h, -4, -1, 2);
    A = ssm_bench::uniform<float>(h, -8, -1, 3);
    B = ssm_bench::aligned_uniform<float>(L * n, -1, 1, 4);
    C = ssm_bench::aligned_uniform<float>(L * n, -1, 1, 5);
    D = ssm_bench::uniform<float>(h, -1, 1, 6);
    z = ssm_bench::uniform<float>(L * h * p, -2, 2, 7);
    dt_bias = ssm_bench::uniform<float>(h, -1, 1, 8);
    out.resize(L * h * p);
    state.assign(h * p * n, 0.0f);
  }
};

void set_counters(benchmark::State& state, double updates, const std::string& op, const std::string& impl,
                  int threads) {
  ssm_bench::set_throughput(state, updates, 0);
  ssm_bench::describe(state, op, impl, "fma", 5 * updates, threads);
}

const char* algorithm_name(ssmkit::ssd_algorithm a) {
  return a == ssmkit::ssd_algorithm::recurrent ? "recurrent" : a == ssmkit::ssd_algorithm::chunked ? "chunked" : "automatic";
}

template <class Arch>
void scan(benchmark::State& state, ssmkit::ssd_algorithm algorithm) {
  const auto d_inner = static_cast<std::size_t>(state.range(0));
  const auto L = static_cast<std::size_t>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  const std::size_t chunk = state.range(3) > 0 ? static_cast<std::size_t>(state.range(3)) : 0;
  ssd_data d(d_inner / 64, L);
  ssmkit::ssd_workspace<float> ws;
  ssmkit::ssd_options<float> opt;
  opt.D = ssmkit::make_view(d.D, d.h, 1);
  opt.z = ssmkit::make_view(d.z, 1, L, d.h, d.p);
  opt.dt_bias = ssmkit::make_view(d.dt_bias, d.h);
  opt.dt_softplus = true;
  opt.final_states = ssmkit::make_view(d.state, 1, d.h, d.p, d.n);
  opt.algorithm = algorithm;
  opt.chunk_size = chunk;
  opt.workspace = &ws;
  for (auto _ : state) {
    ssmkit::ssd_scan<float, Arch>(ssmkit::make_view(d.x, 1, L, d.h, d.p), ssmkit::make_view(d.dt, 1, L, d.h),
                                  ssmkit::make_view(d.A, d.h), ssmkit::make_view(d.B, 1, L, 1, d.n),
                                  ssmkit::make_view(d.C, 1, L, 1, d.n), ssmkit::make_view(d.out, 1, L, d.h, d.p),
                                  opt, {threads});
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  std::string impl = std::string(ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar " : "ssmkit ") + algorithm_name(algorithm);
  if (chunk > 0) impl += " chunk " + std::to_string(chunk);
  set_counters(state, double(d.h * d.p * d.n * L),
               "ssd_scan d_inner=" + std::to_string(d_inner) + " N=128 L=" + std::to_string(L), impl, threads);
}

template <class Arch>
void ssd_recurrent(benchmark::State& state) { scan<Arch>(state, ssmkit::ssd_algorithm::recurrent); }
template <class Arch>
void ssd_chunked(benchmark::State& state) { scan<Arch>(state, ssmkit::ssd_algorithm::chunked); }
template <class Arch>
void ssd_automatic(benchmark::State& state) { scan<Arch>(state, ssmkit::ssd_algorithm::automatic); }

template <class Arch>
void ssd_decode(benchmark::State& state) {
  const auto d_inner = static_cast<std::size_t>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  ssd_data d(d_inner / 64, 1);
  ssmkit::ssd_step_options<float> opt;
  opt.D = ssmkit::make_view(d.D, d.h, 1);
  opt.z = ssmkit::make_view(d.z, 1, d.h, d.p);
  opt.dt_bias = ssmkit::make_view(d.dt_bias, d.h);
  opt.dt_softplus = true;
  d.state = ssm_bench::aligned_uniform<float>(d.h * d.p * d.n, -1, 1, 9);
  for (auto _ : state) {
    ssmkit::ssd_step<float, Arch>(ssmkit::make_view(d.state, 1, d.h, d.p, d.n), ssmkit::make_view(d.x, 1, d.h, d.p),
                                  ssmkit::make_view(d.dt, 1, d.h), ssmkit::make_view(d.A, d.h),
                                  ssmkit::make_view(d.B, 1, 1, d.n), ssmkit::make_view(d.C, 1, 1, d.n),
                                  ssmkit::make_view(d.out, 1, d.h, d.p), opt, {threads});
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, double(d.h * d.p * d.n), "ssd_step d_inner=" + std::to_string(d_inner) + " N=128",
               ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit", threads);
}

void scan_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"d_inner", "L", "threads", "chunk"});
  for (const int threads : {1, 2}) b->Args({1536, 2048, threads, 0});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void length_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"d_inner", "L", "threads", "chunk"});
  for (const long d_inner : {1536L, 4096L})
    for (const long L : {1L, 128L, 2048L, 8192L}) b->Args({d_inner, L, 1, 0});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void chunk_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"d_inner", "L", "threads", "chunk"});
  for (const long chunk : {32L, 64L, 128L}) b->Args({1536, 2048, 1, chunk});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK_TEMPLATE(ssd_recurrent, ssmkit::default_arch)->Apply(scan_args);
BENCHMARK_TEMPLATE(ssd_chunked, ssmkit::default_arch)->Apply(scan_args);
BENCHMARK_TEMPLATE(ssd_chunked, ssmkit::default_arch)->Name("ssd_chunked_sizes")->Apply(chunk_args);
BENCHMARK_TEMPLATE(ssd_automatic, ssmkit::default_arch)->Apply(length_args);
BENCHMARK_TEMPLATE(ssd_recurrent, ssmkit::scalar)->ArgNames({"d_inner", "L", "threads", "chunk"})
    ->Args({1536, 128, 1, 0})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(ssd_decode, ssmkit::default_arch)->ArgNames({"d_inner", "threads"})
    ->Args({1536, 1})->Args({1536, 2})->Args({4096, 1})->UseRealTime();
BENCHMARK_TEMPLATE(ssd_decode, ssmkit::scalar)->ArgNames({"d_inner", "threads"})->Args({1536, 1});

