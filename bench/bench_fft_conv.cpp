// Causal FFT convolution with a cached kernel spectrum (fft_conv_plan::forward), batch 1, float32,
// u and y in the (B, L, H) layout, kernel length L. Against the same plan on the scalar backend,
// a direct O(L^2) convolution (L = 1024 only), and Eigen's FFT (kissfft; kernel spectrum cached,
// one r2c and one c2r per channel). FFTW is not a dependency: the figures of ../shared/perf
// (FFTW 3.3.10, FFTW_MEASURE r2c/c2r, kernel spectrum precomputed) are the reference there.
//
// Also: short kernels (L = 4096, 16384, Lk = 4..64) through the plan's FFT path, its direct path,
// and the cost model's choice; and the streaming mode (fft_conv_stream, block 4096, chunks of one
// block) against the one-shot plan over the whole input, with the memory each holds.
//
// Limit: "fma", counting the usual 2 x 2.5 n log2(n) flops per channel for the r2c + c2r pair at
// FFT size n; the real bound is memory traffic between L2 and L3 (see docs/fft_conv.md).
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include <unsupported/Eigen/FFT>

#include <ssmkit/fft.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/fft_conv_stream.hpp>

#include "common.hpp"

namespace {

double conv_flops(std::size_t n, std::size_t H) {
  return 2 * 2.5 * static_cast<double>(n) * std::log2(static_cast<double>(n)) * static_cast<double>(H);
}

std::string op_name(std::size_t L, std::size_t H) {
  return "causal fft conv L=" + std::to_string(L) + " H=" + std::to_string(H);
}

template <class Arch>
void fft_conv_causal(benchmark::State& state) {
  const auto L = static_cast<std::size_t>(state.range(0));
  const auto H = static_cast<std::size_t>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  const auto k = ssm_bench::uniform<float>(H * L, -1, 1, 1);
  const auto u = ssm_bench::uniform<float>(L * H, -1, 1, 2);
  const auto D = ssm_bench::uniform<float>(H, -1, 1, 3);
  std::vector<float> y(L * H);
  const ssmkit::fft_conv_plan<float, Arch> plan(ssmkit::make_view(k, H, L), L);
  ssmkit::fft_conv_workspace<float> workspace;
  ssmkit::parallel_options options;
  options.num_threads = threads;
  for (auto _ : state) {
    plan.forward(ssmkit::make_view(u, 1, L, H), ssmkit::make_view(y, 1, L, H), ssmkit::make_view(D, 1, H), workspace,
                 options);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(L * H), 2.0 * double(L * H) * sizeof(float));
  state.counters["fft_n"] = double(plan.fft_size());
  ssm_bench::describe(state, op_name(L, H), ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit", "fma",
                      conv_flops(plan.fft_size(), H), threads);
}

/// The direct convolution, vectorisable across channels (h is contiguous).
void fft_conv_direct(benchmark::State& state) {
  const auto L = static_cast<std::size_t>(state.range(0));
  const auto H = static_cast<std::size_t>(state.range(1));
  const auto k = ssm_bench::uniform<float>(L * H, -1, 1, 1);  // stored (Lk, H) for the direct loop
  const auto u = ssm_bench::uniform<float>(L * H, -1, 1, 2);
  std::vector<float> y(L * H);
  for (auto _ : state) {
    for (std::size_t t = 0; t < L; ++t) {
      float* yt = y.data() + t * H;
      for (std::size_t h = 0; h < H; ++h) yt[h] = 0;
      for (std::size_t s = 0; s <= t; ++s) {
        const float* ks = k.data() + s * H;
        const float* us = u.data() + (t - s) * H;
        for (std::size_t h = 0; h < H; ++h) yt[h] += ks[h] * us[h];
      }
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(L * H), 2.0 * double(L * H) * sizeof(float));
  ssm_bench::describe(state, op_name(L, H), "direct", "fma", double(L) * double(L + 1) * double(H));
}

/// Eigen's FFT (kissfft) with the kernel spectra precomputed: per channel, one r2c, a product, one c2r.
void fft_conv_eigen(benchmark::State& state) {
  const auto L = static_cast<std::size_t>(state.range(0));
  const auto H = static_cast<std::size_t>(state.range(1));
  const std::size_t n = 2 * L;
  const auto k = ssm_bench::uniform<float>(H * L, -1, 1, 1);
  const auto u = ssm_bench::uniform<float>(L * H, -1, 1, 2);
  std::vector<float> y(L * H);
  Eigen::FFT<float> fft;
  std::vector<std::vector<std::complex<float>>> K(H);
  std::vector<float> buf(n), out(n);
  std::vector<std::complex<float>> X(n / 2 + 1);
  for (std::size_t h = 0; h < H; ++h) {
    std::fill(buf.begin(), buf.end(), 0.0f);
    for (std::size_t t = 0; t < L; ++t) buf[t] = k[h * L + t];
    fft.fwd(K[h], buf);
  }
  for (auto _ : state) {
    for (std::size_t h = 0; h < H; ++h) {
      std::fill(buf.begin(), buf.end(), 0.0f);
      for (std::size_t t = 0; t < L; ++t) buf[t] = u[t * H + h];
      fft.fwd(X, buf);
      for (std::size_t i = 0; i < X.size(); ++i) X[i] *= K[h][i];
      fft.inv(out, X);
      for (std::size_t t = 0; t < L; ++t) y[t * H + h] = out[t];
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(L * H), 2.0 * double(L * H) * sizeof(float));
  ssm_bench::describe(state, op_name(L, H), "eigen-fft", "fma", conv_flops(n, H));
}

/// Short kernels: the plan with the method forced (FFT or direct) and chosen by the cost model.
/// Argument "method": 0 automatic, 1 FFT, 2 direct.
void fft_conv_short_kernel(benchmark::State& state) {
  const auto L = static_cast<std::size_t>(state.range(0));
  const auto H = static_cast<std::size_t>(state.range(1));
  const auto Lk = static_cast<std::size_t>(state.range(2));
  const auto method = static_cast<ssmkit::fft_conv_method>(state.range(3));
  const auto k = ssm_bench::uniform<float>(H * Lk, -1, 1, 1);
  const auto u = ssm_bench::uniform<float>(L * H, -1, 1, 2);
  std::vector<float> y(L * H);
  ssmkit::fft_conv_options options;
  options.method = method;
  const ssmkit::fft_conv_plan<float> plan(ssmkit::make_view(k, H, Lk), L, options);
  ssmkit::fft_conv_workspace<float> workspace;
  for (auto _ : state) {
    plan.forward(ssmkit::make_view(u, 1, L, H), ssmkit::make_view(y, 1, L, H), {}, workspace);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(L * H), 2.0 * double(L * H) * sizeof(float));
  state.counters["direct"] = plan.uses_direct() ? 1 : 0;
  const char* impl = method == ssmkit::fft_conv_method::automatic ? "ssmkit (cost model)"
                     : method == ssmkit::fft_conv_method::fft     ? "ssmkit FFT path"
                                                                  : "ssmkit direct path";
  ssm_bench::describe(state, op_name(L, H) + " Lk=" + std::to_string(Lk), impl, "none", 0);
}

/// Streaming (partitioned overlap-save, block 4096, chunks of one block) against the one-shot plan
/// over the whole input, for a kernel of Lk taps. Argument "stream": 0 one-shot plan, 1 stream.
void fft_conv_streaming(benchmark::State& state) {
  const auto L = static_cast<std::size_t>(state.range(0));
  const auto H = static_cast<std::size_t>(state.range(1));
  const auto Lk = static_cast<std::size_t>(state.range(2));
  const bool streaming = state.range(3) != 0;
  const auto k = ssm_bench::uniform<float>(H * Lk, -1, 1, 1);
  const auto u = ssm_bench::uniform<float>(L * H, -1, 1, 2);
  std::vector<float> y(L * H);
  const std::string op = "causal conv L=" + std::to_string(L) + " H=" + std::to_string(H) + " Lk=" + std::to_string(Lk);
  if (streaming) {
    ssmkit::fft_conv_stream<float> stream(ssmkit::make_view(k, H, Lk), {}, 1);
    const std::size_t chunk = stream.block_size();
    for (auto _ : state) {
      stream.reset();
      for (std::size_t t = 0; t < L; t += chunk) {
        const std::size_t c = std::min(chunk, L - t);
        stream.process({u.data() + t * H, {1, c, H}}, {y.data() + t * H, {1, c, H}});
      }
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    state.counters["memory_MiB"] = double(stream.memory_size() * sizeof(float)) / (1 << 20);
    ssm_bench::set_throughput(state, double(L * H), 2.0 * double(L * H) * sizeof(float));
    ssm_bench::describe(state, op, "ssmkit stream (block 4096)", "none", 0);
  } else {
    ssmkit::fft_conv_options options;
    options.method = ssmkit::fft_conv_method::fft;
    const ssmkit::fft_conv_plan<float> plan(ssmkit::make_view(k, H, Lk), L, options);
    ssmkit::fft_conv_workspace<float> workspace;
    for (auto _ : state) {
      plan.forward(ssmkit::make_view(u, 1, L, H), ssmkit::make_view(y, 1, L, H), {}, workspace);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    // Workspace and the cached kernel spectrum (n reals per channel, lane groups padded).
    state.counters["memory_MiB"] =
        double((workspace.size() + plan.fft_size() * ((H + 15) / 16) * 16) * sizeof(float)) / (1 << 20);
    ssm_bench::set_throughput(state, double(L * H), 2.0 * double(L * H) * sizeof(float));
    ssm_bench::describe(state, op, "ssmkit one-shot plan", "none", 0);
  }
}

// The bare real FFT (fft.hpp): H signals of size n, each one r2c forward and one c2r backward
// through rfft_plan's single-signal view interface (one signal per call, vectorised within the
// transform), against the batched interface below (fft_conv_rfft_pair_batched), FFTW's plan_many
// r2c/c2r over the same H signals (peers/fftw_conv.cpp), and Eigen's FFT. items/s = real samples transformed both ways (n H per iteration); the limit is the
// FMA peak at the usual 2 x 2.5 n log2 n flop per pair and signal.
void fft_conv_rfft_pair(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0)), H = static_cast<std::size_t>(state.range(1));
  const ssmkit::rfft_plan<float> plan(n);
  auto x = ssm_bench::uniform<float>(n * H, -1, 1, 5);
  std::vector<std::complex<float>> X(plan.spectrum_size());
  std::vector<float> scratch(plan.scratch_size());
  for (auto _ : state) {
    for (std::size_t h = 0; h < H; ++h) {
      const auto row = ssmkit::make_view(x.data() + h * n, n);
      plan.forward(row, ssmkit::make_view(X, X.size()), ssmkit::make_view(scratch, scratch.size()));
      plan.backward(ssmkit::make_view(X, X.size()), row, ssmkit::make_view(scratch, scratch.size()));
    }
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(n * H), 2.0 * double(n * H) * sizeof(float));
  ssm_bench::describe(state, "rfft pair n=" + std::to_string(n) + " H=" + std::to_string(H), "ssmkit", "fma",
                      2 * 2.5 * double(n) * std::log2(double(n)) * double(H));
}

// The same pair through rfft_plan's batched view interface: the H signals as one (H, n) view,
// transformed width_v signals at a time, one per SIMD lane (the many-transform path), with the
// gather into and scatter out of the lane layout included in the time.
template <class Arch>
void fft_conv_rfft_pair_batched(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0)), H = static_cast<std::size_t>(state.range(1));
  const ssmkit::rfft_plan<float> plan(n);
  const std::size_t bins = plan.spectrum_size();
  auto x = ssm_bench::uniform<float>(n * H, -1, 1, 5);
  std::vector<std::complex<float>> X(H * bins);
  std::vector<float> scratch(plan.batch_scratch_size<Arch>());
  for (auto _ : state) {
    plan.forward<Arch>(ssmkit::make_view(x, H, n), ssmkit::make_view(X, H, bins),
                       ssmkit::make_view(scratch, scratch.size()));
    plan.backward<Arch>(ssmkit::make_view(X, H, bins), ssmkit::make_view(x, H, n),
                        ssmkit::make_view(scratch, scratch.size()));
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(n * H), 2.0 * double(n * H) * sizeof(float));
  ssm_bench::describe(state, "rfft pair n=" + std::to_string(n) + " H=" + std::to_string(H),
                      ssmkit::is_scalar_v<Arch> ? "ssmkit-batched-scalar" : "ssmkit-batched", "fma",
                      2 * 2.5 * double(n) * std::log2(double(n)) * double(H));
}

void fft_conv_rfft_pair_eigen(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0)), H = static_cast<std::size_t>(state.range(1));
  Eigen::FFT<float> fft;
  auto x = ssm_bench::uniform<float>(n * H, -1, 1, 5);
  std::vector<float> row(n);
  std::vector<std::complex<float>> X(n);
  for (auto _ : state) {
    for (std::size_t h = 0; h < H; ++h) {
      std::copy(x.begin() + std::ptrdiff_t(h * n), x.begin() + std::ptrdiff_t((h + 1) * n), row.begin());
      fft.fwd(X, row);
      fft.inv(row, X);
      std::copy(row.begin(), row.end(), x.begin() + std::ptrdiff_t(h * n));
    }
    benchmark::DoNotOptimize(x.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(n * H), 2.0 * double(n * H) * sizeof(float));
  ssm_bench::describe(state, "rfft pair n=" + std::to_string(n) + " H=" + std::to_string(H), "eigen-fft", "fma",
                      2 * 2.5 * double(n) * std::log2(double(n)) * double(H));
}

void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"L", "H", "threads"});
  for (const auto& lh :
       {std::pair<int, int>{1024, 512}, {4096, 512}, {4096, 256}, {16384, 256}, {65536, 128}, {10000, 256}}) {
    b->Args({lh.first, lh.second, 1});
  }
  b->Args({16384, 250, 1});  // H not a multiple of the SIMD width
  b->Args({16384, 256, 2});
  b->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK_TEMPLATE(fft_conv_causal, ssmkit::default_arch)->Apply(shapes);
BENCHMARK_TEMPLATE(fft_conv_causal, ssmkit::scalar)
    ->ArgNames({"L", "H", "threads"})
    ->Args({1024, 512, 1})
    ->Args({16384, 256, 1})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(fft_conv_rfft_pair)->ArgNames({"n", "H"})->Args({4096, 64})->Args({32768, 64})->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(fft_conv_rfft_pair_batched, ssmkit::default_arch)
    ->ArgNames({"n", "H"})
    ->Args({4096, 64})
    ->Args({32768, 64})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(fft_conv_rfft_pair_batched, ssmkit::scalar)
    ->ArgNames({"n", "H"})
    ->Args({4096, 64})
    ->Args({32768, 64})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(fft_conv_rfft_pair_eigen)->ArgNames({"n", "H"})->Args({4096, 64})->Args({32768, 64})->Unit(benchmark::kMillisecond);
BENCHMARK(fft_conv_direct)->ArgNames({"L", "H"})->Args({1024, 512})->Unit(benchmark::kMillisecond);
BENCHMARK(fft_conv_eigen)->ArgNames({"L", "H"})->Args({1024, 512})->Args({16384, 256})->Unit(benchmark::kMillisecond);
BENCHMARK(fft_conv_short_kernel)
    ->ArgNames({"L", "H", "Lk", "method"})
    ->ArgsProduct({{4096, 16384}, {256}, {4, 16, 64}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(fft_conv_streaming)
    ->ArgNames({"L", "H", "Lk", "stream"})
    ->ArgsProduct({{262144}, {16}, {4096, 65536}, {0, 1}})
    ->Unit(benchmark::kMillisecond);
