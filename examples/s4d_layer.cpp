// An S4D layer on a synthetic long-range signal: white noise plus a copy of itself delayed by
// 1000 steps, L = 4096. The layer (S4D-Lin, dt log-uniform in [1e-3, 1e-1]) runs once in
// convolution mode (kernel of length L through a cached FFT plan) and once in recurrent mode (one
// token at a time, as a decoder would); the two must agree token by token. Exits 1 if they differ
// by more than the tolerance of tests/test_s4d_layer.cpp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include <ssmkit/s4d_layer.hpp>

int main() {
  const std::size_t B = 1, L = 4096, H = 16, N = 64, C = 1, delay = 1000;
  using clock = std::chrono::steady_clock;

  ssmkit::s4d_layer_init init;
  init.init = ssmkit::s4d::diag_init::lin;
  init.seed = 42;
  const auto t_build = clock::now();
  const auto layer = ssmkit::s4d_layer<float>::random(H, N, C, L, init);
  const double build_ms = std::chrono::duration<double, std::milli>(clock::now() - t_build).count();

  // The long-range content: how much of each kernel's mass lies at lags >= delay.
  double far = 0, total = 0;
  for (std::size_t h = 0; h < H; ++h)
    for (std::size_t l = 0; l < L; ++l) {
      const double k = std::abs(double(layer.kernel()(0, h, l)));
      total += k;
      if (l >= delay) far += k;
    }
  std::printf("S4D-Lin layer: H = %zu, N = %zu, L = %zu; kernel + FFT plan built in %.1f ms; %.1f%% of the kernels' "
              "|mass| at lags >= %zu\n", H, N, L, build_ms, 100.0 * far / total, delay);

  // u[t, h] = s[t, h] + s[t - delay, h] (s white noise; the copy starts at t = delay).
  std::mt19937 gen(7);
  std::normal_distribution<float> noise(0, 1);
  std::vector<float> s(L * H), u(B * L * H);
  for (auto& v : s) v = noise(gen);
  float max_u = 0;
  for (std::size_t t = 0; t < L; ++t)
    for (std::size_t h = 0; h < H; ++h) {
      u[t * H + h] = s[t * H + h] + (t >= delay ? s[(t - delay) * H + h] : 0.0f);
      max_u = std::max(max_u, std::abs(u[t * H + h]));
    }

  // Convolution mode (one warm-up call grows the workspace; the second is timed).
  std::vector<float> y_conv(B * L * C * H), y_step(B * L * C * H);
  ssmkit::fft_conv_workspace<float> workspace;
  layer.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(y_conv, B, L, C * H), workspace);
  const auto t_conv = clock::now();
  layer.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(y_conv, B, L, C * H), workspace);
  const double conv_ms = std::chrono::duration<double, std::milli>(clock::now() - t_conv).count();

  // Recurrent mode: L calls of step on a (B, H) token.
  auto state = layer.make_state(B);
  const auto t_step = clock::now();
  for (std::size_t t = 0; t < L; ++t) {
    layer.step(ssmkit::make_view(u.data() + t * H, B, H), ssmkit::make_view(y_step.data() + t * C * H, B, C * H), state);
  }
  const double step_ms = std::chrono::duration<double, std::milli>(clock::now() - t_step).count();

  // Agreement, relative to M[h] = max|u| (2 sum_n |C dB| / (1 - |dA|) + |D|), a bound on |y|
  // without cancellation; the tolerance is the test's: eps (3 L + N/2 + 5 + 4 log2(2 L)).
  double worst = 0, worst_abs = 0, max_y = 0;
  for (std::size_t h = 0; h < H; ++h) {
    double m = 0;
    for (std::size_t n = 0; n < N / 2; ++n) {
      m += 2 * std::abs(std::complex<double>(layer.C()(0, h, n)) * std::complex<double>(layer.dB()(h, n))) /
           (1 - std::abs(std::complex<double>(layer.dA()(h, n))));
    }
    m = double(max_u) * (m + std::abs(double(layer.D()(0, h))));
    for (std::size_t t = 0; t < L; ++t) {
      const double d = std::abs(double(y_conv[t * H + h]) - double(y_step[t * H + h]));
      worst = std::max(worst, d / m);
      worst_abs = std::max(worst_abs, d);
      max_y = std::max(max_y, std::abs(double(y_conv[t * H + h])));
    }
  }
  const double eps = std::numeric_limits<float>::epsilon();
  const double tol = eps * (3.0 * double(L) + double(N / 2) + 5.0 + 4.0 * std::log2(2.0 * double(L)));
  const bool ok = worst <= tol;
  std::printf("conv mode: %.2f ms (FFT size %zu); step mode: %.2f ms (%.2f us/token)\n", conv_ms,
              layer.plan().fft_size(), step_ms, 1e3 * step_ms / double(L));
  std::printf("conv vs step over %zu tokens: max |difference| %.2e (max |y| %.2e), %.2e of the bound M = %.1f eps; "
              "tolerance %.2e %s\n", L, worst_abs, max_y, worst, worst / eps, tol, ok ? "ok" : "TOO LARGE");
  return ok ? 0 : 1;
}
