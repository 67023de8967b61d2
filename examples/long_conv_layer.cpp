// A long-convolution layer (Fu et al. 2023) with its kernel regularisers: a directly learned
// kernel as long as the input, smoothed and soft-thresholded into a sparse kernel, then applied
// through a cached FFT plan, and checked against the direct convolution.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <ssmkit/long_conv.hpp>

int main() {
  const std::size_t H = 8, L = 4096;
  // A kernel like a trained one: decaying, noisy (safari's "double_exp" initialisation, roughly).
  std::mt19937 gen(1);
  std::normal_distribution<float> noise(0, 0.02f);
  std::vector<float> kernel(H * L), D(H, 1.0f);
  for (std::size_t h = 0; h < H; ++h)
    for (std::size_t l = 0; l < L; ++l)
      kernel[h * L + l] = noise(gen) * std::exp(-float(l) / float(L) * float(h + 1));

  const ssmkit::long_conv_regularizer regularizer{0.002, 7};  // lambda, moving-average window
  const ssmkit::long_conv_layer<float> layer(ssmkit::make_view(kernel, 1, H, L), ssmkit::make_view(D, 1, H), L, regularizer);
  const auto k = layer.kernel();
  std::size_t zeros = 0;
  for (std::size_t i = 0; i < k.size(); ++i) zeros += k.data()[i] == 0.0f;
  std::printf("kernel (1, %zu, %zu): %.1f%% zeros after smoothing (w = 7) and squash (lambda = 0.002)\n", H, L,
              100.0 * double(zeros) / double(k.size()));

  std::vector<float> u(L * H), y(L * H);
  std::normal_distribution<float> signal(0, 1);
  for (auto& v : u) v = signal(gen);
  ssmkit::fft_conv_workspace<float> workspace;
  layer.forward(ssmkit::make_view(u, 1, L, H), ssmkit::make_view(y, 1, L, H), workspace);

  // The direct convolution at a few positions, in double.
  double worst = 0, scale = 0;
  for (const std::size_t t : {std::size_t{0}, std::size_t{1}, std::size_t{100}, L / 2, L - 1}) {
    for (std::size_t h = 0; h < H; ++h) {
      double acc = double(D[h]) * double(u[t * H + h]);
      for (std::size_t s = 0; s <= t; ++s) acc += double(k(0, h, s)) * double(u[(t - s) * H + h]);
      worst = std::max(worst, std::abs(acc - double(y[t * H + h])));
      scale = std::max(scale, std::abs(acc));
    }
  }
  const bool ok = worst <= 1e-5 * std::max(scale, 1.0);
  std::printf("FFT plan (n = %zu) vs direct convolution: max |difference| %.2e at output scale %.2e %s\n",
              layer.plan().fft_size(), worst, scale, ok ? "ok" : "TOO LARGE");
  return ok ? 0 : 1;
}
