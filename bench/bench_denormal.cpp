// Denormal-heavy inputs against normal ones (issue #7, "numerical extremes"): the selective scan,
// the short causal conv1d and the FFT convolution, float32, one thread. Each benchmark runs in
// three modes (argument "mode"):
//   0  normal inputs, uniform in [-1, 1);
//   1  the same inputs scaled by 1e-39, so that every input is subnormal (float's smallest normal
//      number is 1.18e-38) and so is almost every intermediate (Δ u B, the state, the products);
//   2  mode 1's inputs with the FTZ and DAZ bits of MXCSR set around the timing loop (x86 only;
//      elsewhere mode 2 is not registered): what flushing would buy. The library never sets them
//      itself (docs/numerics.md: the reference keeps IEEE gradual underflow, and MXCSR belongs to
//      the caller's thread).
// The slowdown is the ratio of the items/s of mode 0 to mode 1. The tests never time anything;
// tests/test_extremes.cpp checks the values of the same denormal-heavy runs.
#include <cstddef>
#include <string>
#include <vector>

#if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define SSMKIT_BENCH_HAS_MXCSR 1
#else
#define SSMKIT_BENCH_HAS_MXCSR 0
#endif

#include <ssmkit/conv1d.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/selective_scan.hpp>

#include "common.hpp"

namespace {

/// Scale of the inputs in mode 1 and 2: 1e-39 times U[-1, 1) is subnormal in float.
constexpr float subnormal_scale = 1e-39f;

const char* mode_name(long mode) { return mode == 0 ? "normal" : mode == 1 ? "subnormal" : "subnormal FTZ/DAZ"; }

/// Sets FTZ (bit 15) and DAZ (bit 6) of MXCSR while alive when `on`, and restores the old value.
class flush_denormals {
 public:
  explicit flush_denormals(bool on) {
#if SSMKIT_BENCH_HAS_MXCSR
    saved_ = _mm_getcsr();
    if (on) _mm_setcsr(saved_ | 0x8040u);
#else
    (void)on;
#endif
  }
  ~flush_denormals() {
#if SSMKIT_BENCH_HAS_MXCSR
    _mm_setcsr(saved_);
#endif
  }
  flush_denormals(const flush_denormals&) = delete;
  flush_denormals& operator=(const flush_denormals&) = delete;

 private:
  unsigned saved_ = 0;
};

void scale(std::vector<float>& v, long mode) {
  if (mode == 0) return;
  for (auto& x : v) x *= subnormal_scale;
}

/// Selective scan, batch 1, N = 16, variable B and C, D and delta_softplus (Δ in [0.02, 0.3]):
/// in modes 1-2 u is subnormal, so Δ u B, the state and y are too. items/s = state updates/s.
void denormal_selective_scan(benchmark::State& state) {
  constexpr std::size_t nstate = 16;
  const auto dim = static_cast<std::size_t>(state.range(0));
  const auto length = static_cast<std::size_t>(state.range(1));
  const long mode = static_cast<long>(state.range(2));
  auto u = ssm_bench::uniform<float>(dim * length, -1, 1, 1);
  scale(u, mode);
  const auto delta = ssm_bench::uniform<float>(dim * length, -4, -1, 2);
  const auto B = ssm_bench::uniform<float>(nstate * length, -1, 1, 4);
  const auto C = ssm_bench::uniform<float>(nstate * length, -1, 1, 5);
  std::vector<float> A(dim * nstate), D(dim, 1.0f), out(dim * length), last(dim * nstate);
  for (std::size_t i = 0; i < A.size(); ++i) A[i] = -float(i % nstate + 1);  // S4D-real init
  ssmkit::selective_scan_options<float> o;
  o.D = ssmkit::make_view(D.data(), dim);
  o.delta_softplus = true;
  o.last_state = ssmkit::make_view(last.data(), 1, dim, nstate);
  o.parallel.num_threads = 1;
  {
    const flush_denormals flush(mode == 2);
    for (auto _ : state) {
      ssmkit::selective_scan<float>(
          ssmkit::make_view(u.data(), 1, dim, length), ssmkit::make_view(delta.data(), 1, dim, length),
          ssmkit::make_view(A.data(), dim, nstate), ssmkit::make_view(B.data(), 1, nstate, length),
          ssmkit::make_view(C.data(), 1, nstate, length), ssmkit::make_view(out.data(), 1, dim, length), o);
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
  }
  ssm_bench::set_throughput(state, double(dim * nstate * length), 4.0 * double(3 * dim * length + 2 * nstate * length));
  ssm_bench::describe(state,
                      "selective_scan D=" + std::to_string(dim) + " N=16 L=" + std::to_string(length) + " " +
                          mode_name(mode),
                      "ssmkit", "exp", double(dim * nstate * length));
}

/// causal_conv1d, W = 4, (1, L, D) token-major, with bias and SiLU: in modes 1-2 x is subnormal
/// (the bias is scaled too, so that the pre-activation stays subnormal). items/s = outputs/s.
void denormal_conv1d(benchmark::State& state) {
  constexpr std::size_t width = 4;
  const auto dim = static_cast<std::size_t>(state.range(0));
  const auto length = static_cast<std::size_t>(state.range(1));
  const long mode = static_cast<long>(state.range(2));
  auto x = ssm_bench::uniform<float>(length * dim, -1, 1, 1);
  auto bias = ssm_bench::uniform<float>(dim, -1, 1, 3);
  scale(x, mode);
  scale(bias, mode);
  const auto w = ssm_bench::uniform<float>(dim * width, -1, 1, 2);
  std::vector<float> y(length * dim);
  ssmkit::conv1d_options<float> options;
  options.silu = true;
  options.parallel.num_threads = 1;
  {
    const flush_denormals flush(mode == 2);
    for (auto _ : state) {
      ssmkit::causal_conv1d<float>(ssmkit::make_view(x.data(), 1, length, dim), ssmkit::make_view(w.data(), dim, width),
                                   ssmkit::make_view(bias.data(), dim), ssmkit::make_view(y.data(), 1, length, dim),
                                   options);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
  }
  const double bytes = 2.0 * double(length * dim) * sizeof(float);
  ssm_bench::set_throughput(state, double(length * dim), bytes);
  ssm_bench::describe(state,
                      "conv1d W=4 D=" + std::to_string(dim) + " L=" + std::to_string(length) + " " + mode_name(mode),
                      "ssmkit", "dram", bytes);
}

/// fft_conv_plan::forward, causal, Lk = L (the FFT path), D skip: in modes 1-2 u is subnormal, the
/// kernel normal, so the spectra of u and every product are subnormal. items/s = outputs/s.
void denormal_fft_conv(benchmark::State& state) {
  const auto length = static_cast<std::size_t>(state.range(0));
  const auto channels = static_cast<std::size_t>(state.range(1));
  const long mode = static_cast<long>(state.range(2));
  const auto k = ssm_bench::uniform<float>(channels * length, -1, 1, 1);
  auto u = ssm_bench::uniform<float>(length * channels, -1, 1, 2);
  scale(u, mode);
  const auto D = ssm_bench::uniform<float>(channels, -1, 1, 3);
  std::vector<float> y(length * channels);
  ssmkit::fft_conv_options plan_options;
  plan_options.method = ssmkit::fft_conv_method::fft;
  const ssmkit::fft_conv_plan<float> plan(ssmkit::make_view(k.data(), channels, length), length, plan_options);
  ssmkit::fft_conv_workspace<float> workspace;
  ssmkit::parallel_options parallel;
  parallel.num_threads = 1;
  {
    const flush_denormals flush(mode == 2);
    for (auto _ : state) {
      plan.forward(ssmkit::make_view(u.data(), 1, length, channels), ssmkit::make_view(y.data(), 1, length, channels),
                   ssmkit::make_view(D.data(), 1, channels), workspace, parallel);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
  }
  ssm_bench::set_throughput(state, double(length * channels), 2.0 * double(length * channels) * sizeof(float));
  ssm_bench::describe(state,
                      "causal fft conv L=" + std::to_string(length) + " H=" + std::to_string(channels) + " " +
                          mode_name(mode),
                      "ssmkit", "none", 0.0);
}

/// Modes 0 and 1 everywhere; mode 2 where MXCSR exists.
void modes(benchmark::internal::Benchmark* b, long a0, long a1) {
  for (long mode = 0; mode <= (SSMKIT_BENCH_HAS_MXCSR ? 2 : 1); ++mode) b->Args({a0, a1, mode});
}

}  // namespace

BENCHMARK(denormal_selective_scan)
    ->ArgNames({"dim", "L", "mode"})
    ->Apply([](benchmark::internal::Benchmark* b) { modes(b, 256, 2048); })
    ->UseRealTime();
BENCHMARK(denormal_conv1d)
    ->ArgNames({"dim", "L", "mode"})
    ->Apply([](benchmark::internal::Benchmark* b) { modes(b, 1024, 2048); })
    ->UseRealTime();
BENCHMARK(denormal_fft_conv)
    ->ArgNames({"L", "H", "mode"})
    ->Apply([](benchmark::internal::Benchmark* b) { modes(b, 4096, 64); })
    ->UseRealTime();
