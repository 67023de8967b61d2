// The FFTW peer of the causal FFT convolution benchmark (bench_fft_conv.cpp), built into
// ssmkit-bench only when SSMKIT_BENCH_FFTW is on and libfftw3f is found. FFTW is GPL: it is never
// a dependency of the headers, and a bench binary linked with it must not be distributed under
// ssmkit's license.
//
// The same operation as fft_conv_causal (kernel length L, a D skip, FFT size n = the even
// 5-smooth size ssmkit uses, >= 2L - 1, float32, one thread), in the layout that suits FFTW best:
// u and y channel-major (1, H, L), so that each channel is one contiguous row and the only layout
// work is a copy into the zero-padded row. (ssmkit is timed on token-major (1, L, H) data, its
// harder case.) FFTW's best practice: FFTW_MEASURE plans over all H channels at once (plan_many,
// r2c then c2r) and the kernel spectrum precomputed and pre-scaled by 1/n.
#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include <ssmkit/fft.hpp>

#include "../common.hpp"

namespace {

// FFTW_MEASURE plans take seconds each at the large sizes: 18 s of the quick run's minute. In
// --quick mode the planner gets 0.2 s per plan (fftwf_set_timelimit), after which FFTW uses the best
// plan it has measured so far; the full run plans without a limit.
void limit_planning_in_quick_mode() {
  if (ssm_bench::quick_mode()) fftwf_set_timelimit(0.2);
}

struct fftw_buffer {
  float* real;
  fftwf_complex* spectrum;
  fftw_buffer(std::size_t reals, std::size_t complexes)
      : real(fftwf_alloc_real(reals)), spectrum(fftwf_alloc_complex(complexes)) {}
  ~fftw_buffer() {
    fftwf_free(real);
    fftwf_free(spectrum);
  }
  fftw_buffer(const fftw_buffer&) = delete;
  fftw_buffer& operator=(const fftw_buffer&) = delete;
};

void fft_conv_fftw(benchmark::State& state) {
  const auto L = static_cast<std::size_t>(state.range(0));
  const auto H = static_cast<std::size_t>(state.range(1));
  const std::size_t n = 2 * ssmkit::next_fast_len(L), m = n / 2 + 1;
  const auto k = ssm_bench::uniform<float>(H * L, -1, 1, 1);
  const auto u = ssm_bench::uniform<float>(L * H, -1, 1, 2);
  const auto D = ssm_bench::uniform<float>(H, -1, 1, 3);
  std::vector<float> y(L * H);
  fftw_buffer work(H * n, H * m), kernel(H * n, H * m);
  limit_planning_in_quick_mode();
  const int size = static_cast<int>(n), howmany = static_cast<int>(H);
  fftwf_plan forward = fftwf_plan_many_dft_r2c(1, &size, howmany, work.real, nullptr, 1, size, work.spectrum, nullptr,
                                               1, static_cast<int>(m), FFTW_MEASURE);
  fftwf_plan backward = fftwf_plan_many_dft_c2r(1, &size, howmany, work.spectrum, nullptr, 1, static_cast<int>(m),
                                                work.real, nullptr, 1, size, FFTW_MEASURE);
  fftwf_plan kernel_plan = fftwf_plan_many_dft_r2c(1, &size, howmany, kernel.real, nullptr, 1, size, kernel.spectrum,
                                                   nullptr, 1, static_cast<int>(m), FFTW_ESTIMATE);
  // The kernel spectrum, once, scaled by 1/n (FFTW's c2r is unnormalised).
  for (std::size_t h = 0; h < H; ++h)
    for (std::size_t t = 0; t < n; ++t) kernel.real[h * n + t] = t < L ? k[h * L + t] : 0.0f;
  fftwf_execute(kernel_plan);
  const float scale = 1.0f / float(n);
  for (std::size_t i = 0; i < H * m; ++i) kernel.spectrum[i][0] *= scale, kernel.spectrum[i][1] *= scale;

  for (auto _ : state) {
    for (std::size_t h = 0; h < H; ++h) {
      float* row = work.real + h * n;
      std::copy(u.data() + h * L, u.data() + (h + 1) * L, row);
      std::fill(row + L, row + n, 0.0f);
    }
    fftwf_execute(forward);
    auto* s = reinterpret_cast<std::complex<float>*>(work.spectrum);
    const auto* ks = reinterpret_cast<const std::complex<float>*>(kernel.spectrum);
    for (std::size_t i = 0; i < H * m; ++i) s[i] *= ks[i];
    fftwf_execute(backward);
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t t = 0; t < L; ++t) y[h * L + t] = work.real[h * n + t] + D[h] * u[h * L + t];
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  fftwf_destroy_plan(forward);
  fftwf_destroy_plan(backward);
  fftwf_destroy_plan(kernel_plan);
  ssm_bench::set_throughput(state, double(L * H), 2.0 * double(L * H) * sizeof(float));
  ssm_bench::describe(state, "causal fft conv L=" + std::to_string(L) + " H=" + std::to_string(H), "fftw", "fma",
                      2 * 2.5 * double(n) * std::log2(double(n)) * double(H));
}

// The bare real FFT pair, H signals of size n (bench_fft_conv.cpp's fft_conv_rfft_pair and
// fft_conv_rfft_pair_batched): one FFTW_MEASURE plan_many r2c and one c2r over all H signals,
// out of place into an (H, n/2 + 1) spectrum and back, as ssmkit's batched pair does.
void fft_conv_rfft_pair_fftw(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0)), H = static_cast<std::size_t>(state.range(1));
  const std::size_t m = n / 2 + 1;
  fftw_buffer work(H * n, H * m);
  limit_planning_in_quick_mode();
  const int size = static_cast<int>(n), howmany = static_cast<int>(H);
  fftwf_plan forward = fftwf_plan_many_dft_r2c(1, &size, howmany, work.real, nullptr, 1, size, work.spectrum, nullptr,
                                               1, static_cast<int>(m), FFTW_MEASURE);
  fftwf_plan backward = fftwf_plan_many_dft_c2r(1, &size, howmany, work.spectrum, nullptr, 1, static_cast<int>(m),
                                                work.real, nullptr, 1, size, FFTW_MEASURE);
  const auto x = ssm_bench::uniform<float>(n * H, -1, 1, 5);
  std::copy(x.begin(), x.end(), work.real);  // after planning: FFTW_MEASURE overwrites the arrays
  for (auto _ : state) {
    fftwf_execute(forward);
    fftwf_execute(backward);
    benchmark::DoNotOptimize(work.real);
    benchmark::ClobberMemory();
  }
  fftwf_destroy_plan(forward);
  fftwf_destroy_plan(backward);
  ssm_bench::set_throughput(state, double(n * H), 2.0 * double(n * H) * sizeof(float));
  ssm_bench::describe(state, "rfft pair n=" + std::to_string(n) + " H=" + std::to_string(H), "fftw", "fma",
                      2 * 2.5 * double(n) * std::log2(double(n)) * double(H));
}

}  // namespace

BENCHMARK(fft_conv_rfft_pair_fftw)->ArgNames({"n", "H"})->Args({4096, 64})->Args({32768, 64})->Unit(benchmark::kMillisecond);
BENCHMARK(fft_conv_fftw)
    ->ArgNames({"L", "H"})
    ->Args({1024, 512})
    ->Args({4096, 512})
    ->Args({4096, 256})
    ->Args({16384, 256})
    ->Args({65536, 128})
    ->Args({10000, 256})
    ->Args({16384, 250})
    ->Unit(benchmark::kMillisecond);
