// Golden handler for the FFT convolution: fftconv (S4's FFTConv.forward).
#include <cmath>
#include <cstddef>
#include <vector>

#include <ssmkit/fft_conv.hpp>

#include "golden_runner.hpp"

namespace ssmkit_golden {

namespace {

// u (B, H, L), k (kc, H, Lk) with kc = channels (x2 when bidirectional), D (channels, H); the
// output y (B, channels*H, L) is channel-major, which is fft_conv_plan's (B, L, C*H) seen transposed.
template <class T>
result run(const ssmkit::golden::golden_case& c) {
  const auto& u_in = c.input("u");
  const auto& k_in = c.input("k");
  const std::size_t B = u_in.shape.at(0), H = u_in.shape.at(1), L = u_in.shape.at(2);
  const std::size_t kc = k_in.shape.at(0), Lk = k_in.shape.at(2);
  ssmkit::fft_conv_options options;
  options.bidirectional = c.param_bool("bidirectional", false);
  const std::size_t C = options.bidirectional ? kc / 2 : kc;

  auto u = values_as<T>(u_in);
  auto k = values_as<T>(k_in);
  std::vector<T> D;
  ssmkit::tensor_view<const T, 2> D_view;
  if (c.has_input("D")) {
    D = values_as<T>(c.input("D"));
    D_view = ssmkit::make_view(D, C, H);
  }
  std::vector<T> y(B * C * H * L);
  const ssmkit::fft_conv_plan<T> plan(ssmkit::make_view(k, kc, H, Lk), L, options);
  plan.forward(ssmkit::make_view(u, B, H, L).transposed(1, 2), ssmkit::make_view(y, B, C * H, L).transposed(1, 2),
               D_view);

  result r;
  r.outputs.push_back({"y", std::vector<double>(y.begin(), y.end())});
  // The FFT's error grows like log2(n) (Higham 24.1), relative to sum_s |k_s u_{t-s}|, which
  // exceeds |y_t| by up to sqrt(Lk) for data of mixed signs.
  r.f32_growth = std::log2(static_cast<double>(plan.fft_size())) * std::sqrt(static_cast<double>(Lk));
  return r;
}

}  // namespace

result run_fftconv(const ssmkit::golden::golden_case& c, precision p) {
  return p == precision::f64 ? run<double>(c) : run<float>(c);
}

}  // namespace ssmkit_golden
