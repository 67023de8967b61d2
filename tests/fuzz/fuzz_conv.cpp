// libFuzzer target: the convolutions. The bytes choose one of
//   - fft_conv (both layouts of u, causal or bidirectional, 1-2 kernel channels, D or not, the FFT,
//     direct or automatic method) against a plain double direct convolution;
//   - fft_conv_stream fed in random chunks (any block size, 5-smooth or not) against one-shot
//     fft_conv;
//   - causal_conv1d (width 1-9, bias, SiLU, initial and final states) on both backends, and
//     causal_conv1d_update token by token against it.
// Properties: a wrong shape (or a width of 9, or a block size that is not 5-smooth) throws
// ssmkit::error and leaves the outputs untouched; with tame values the results agree to the
// stated tolerances, NaN in the same places; with wild values (NaN, inf, subnormals, huge) the
// call returns or throws, without crashing or touching memory it does not own (ASan).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <ssmkit/conv1d.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/fft_conv_stream.hpp>

#include "fuzz_input.hpp"

namespace {

using T = float;
constexpr T sentinel = T(-12345.5);

/// (B, L, H) from a (B, L, H) buffer, or a (B, H, L) buffer seen as (B, L, H).
template <class U>
ssmkit::tensor_view<U, 3> blh(U* p, std::size_t B, std::size_t L, std::size_t H, bool channel_major) {
  return channel_major ? ssmkit::make_view(p, B, H, L).transposed(1, 2) : ssmkit::make_view(p, B, L, H);
}

void fuzz_fft_conv(ssm_fuzz::fuzz_input& in) {
  const std::size_t B = in.size_in(1, 2), L = in.size_in(1, 160), H = in.size_in(1, 12), C = in.size_in(1, 2);
  const std::size_t Lk = in.size_in(0, L + 2);  // 0 and > L: errors
  const bool bidirectional = in.flag(), channel_major = in.flag(), has_D = in.flag();
  ssmkit::fft_conv_options o;
  o.bidirectional = bidirectional;
  o.method = static_cast<ssmkit::fft_conv_method>(in.byte() % 3);
  const std::size_t kc = bidirectional ? 2 * C : C;
  const auto u = in.values<T>(B * L * H, -1, 1);
  const auto k = in.values<T>(kc * H * std::max<std::size_t>(Lk, 1), -1, 1);
  const auto D = in.values<T>(C * H, -1, 1);
  std::vector<T> y(B * L * C * H, sentinel);
  const bool ok = ssm_fuzz::run_checked<T>(
      [&] {
        ssmkit::fft_conv<T>(blh(u.data(), B, L, H, channel_major), ssmkit::make_view(k.data(), kc, H, Lk),
                            has_D ? ssmkit::const_view<T, 2>(ssmkit::make_view(D.data(), C, H)) : ssmkit::const_view<T, 2>{},
                            ssmkit::make_view(y.data(), B, L, C * H), o);
      },
      {&y}, sentinel);
  if ((Lk == 0 || Lk > L) && ok) std::abort();  // an invalid kernel length was accepted
  if (!ok || !in.tame()) return;
  // y[b, t, c H + h] = sum_s k0[c, h, s] u[b, t - s, h] (+ sum_{m >= 1} k1[c, h, m - 1] u[b, t + m, h]) + D u.
  const auto U = blh(u.data(), B, L, H, channel_major);
  std::vector<T> want(y.size());
  double scale = 0;  // max over outputs of sum |terms|: the error bound's S
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t h = 0; h < H; ++h) {
          double sum = has_D ? double(D[c * H + h]) * double(U(b, t, h)) : 0.0, abs = std::abs(sum);
          for (std::size_t s = 0; s < Lk && s <= t; ++s) {
            const double term = double(k[(c * H + h) * Lk + s]) * double(U(b, t - s, h));
            sum += term, abs += std::abs(term);
          }
          for (std::size_t m = 1; bidirectional && m <= Lk && t + m < L; ++m) {
            const double term = double(k[((C + c) * H + h) * Lk + m - 1]) * double(U(b, t + m, h));
            sum += term, abs += std::abs(term);
          }
          want[(b * L + t) * C * H + c * H + h] = static_cast<T>(sum);
          scale = std::max(scale, abs);
        }
  // O(eps log n) for the FFT path, (taps + 1) eps for the direct one; 1e-4 of S covers both.
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(double(y[i]) - double(want[i])));
  if (worst > 1e-4 * std::max(scale, 1e-30)) std::abort();
}

void fuzz_stream(ssm_fuzz::fuzz_input& in) {
  const std::size_t B = in.size_in(1, 2), H = in.size_in(1, 17), Lk = in.size_in(0, 120);
  const std::size_t L = in.size_in(0, 400);
  ssmkit::fft_conv_stream_options o;
  o.block = in.size_in(0, 130);  // 0 or not 5-smooth: an error
  const bool has_D = in.flag();
  const auto k = in.values<T>(H * std::max<std::size_t>(Lk, 1), -1, 1);
  const auto D = in.values<T>(H, -1, 1);
  const auto u = in.values<T>(B * L * H, -1, 1);
  const auto Dv = has_D ? ssmkit::const_view<T, 1>(ssmkit::make_view(D.data(), H)) : ssmkit::const_view<T, 1>{};
  std::vector<T> y(B * L * H, sentinel);
  bool ok = true;
  try {
    ssmkit::fft_conv_stream<T> stream(ssmkit::make_view(k.data(), H, Lk), Dv, B, o);
    for (std::size_t t0 = 0; t0 < L;) {
      const std::size_t c = std::min(L - t0, in.size_in(1, 150));
      const std::ptrdiff_t sb = std::ptrdiff_t(L * H), sl = std::ptrdiff_t(H);
      stream.process(ssmkit::tensor_view<const T, 3>(u.data() + t0 * H, {B, c, H}, {sb, sl, 1}),
                     ssmkit::tensor_view<T, 3>(y.data() + t0 * H, {B, c, H}, {sb, sl, 1}));
      t0 += c;
    }
  } catch (const ssmkit::error&) {
    ok = false;
    for (const T v : y) {
      if (!(v == sentinel)) std::abort();  // the error came from the constructor: nothing written
    }
  }
  if (!ok || !in.tame() || L == 0 || Lk > L) return;
  std::vector<T> want(y.size(), sentinel);
  ssmkit::fft_conv<T>(ssmkit::make_view(u.data(), B, L, H), ssmkit::make_view(k.data(), H, Lk), Dv,
                      ssmkit::make_view(want.data(), B, L, H));
  ssm_fuzz::require_agreement(y, want, 1e-4);
}

void fuzz_conv1d(ssm_fuzz::fuzz_input& in) {
  const std::size_t B = in.size_in(1, 3), L = in.size_in(0, 100), D = in.size_in(1, 40), W = in.size_in(1, 9);
  const bool channel_major = in.flag(), has_bias = in.flag(), has_initial = in.flag();
  ssmkit::conv1d_options<T> o;
  o.silu = in.flag();
  const std::size_t S = W > 1 ? W - 1 : 0;
  const auto x = in.values<T>(B * L * D, -2, 2);
  const auto w = in.values<T>(D * W, -1, 1);
  const auto bias = in.values<T>(D, -1, 1);
  const auto initial = in.values<T>(B * D * S, -2, 2);
  std::vector<T> y(B * L * D, sentinel), final_state(B * D * S, sentinel);
  if (has_initial) o.initial_state = ssmkit::make_view(initial.data(), B, D, S);
  o.final_state = ssmkit::make_view(final_state.data(), B, D, S);
  const auto bias_view = has_bias ? ssmkit::const_view<T, 1>(ssmkit::make_view(bias.data(), D)) : ssmkit::const_view<T, 1>{};
  const auto run = [&](auto arch, std::vector<T>& out, std::vector<T>& fin) {
    using Arch = decltype(arch);
    auto opt = o;
    opt.final_state = ssmkit::make_view(fin.data(), B, D, S);
    ssmkit::causal_conv1d<T, Arch>(blh(x.data(), B, L, D, channel_major), ssmkit::make_view(w.data(), D, W), bias_view,
                                   blh(out.data(), B, L, D, channel_major), opt);
  };
  const bool ok = ssm_fuzz::run_checked<T>([&] { run(ssmkit::default_arch{}, y, final_state); }, {&y, &final_state},
                                           sentinel);
  if (W > 8 && ok) std::abort();  // widths are 1..8
  if (!ok || !in.tame()) return;
  std::vector<T> y_scalar(y.size(), sentinel), final_scalar(final_state.size(), sentinel);
  run(ssmkit::scalar{}, y_scalar, final_scalar);
  ssm_fuzz::require_agreement(y, y_scalar, 1e-5);
  ssm_fuzz::require_agreement(final_state, final_scalar, 0);
  // The decode update over the tokens equals the sequence (channel-major y, (B, D, W-1) state).
  std::vector<T> state = has_initial ? initial : std::vector<T>(B * D * S, T(0)), step(B * D), y_steps(y.size());
  for (std::size_t t = 0; t < L; ++t) {
    std::vector<T> xt(B * D);
    const auto X = blh(x.data(), B, L, D, channel_major);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t d = 0; d < D; ++d) xt[b * D + d] = X(b, t, d);
    ssmkit::causal_conv1d_update<T>(ssmkit::make_view(xt.data(), B, D), ssmkit::make_view(state.data(), B, D, S),
                                    ssmkit::make_view(w.data(), D, W), bias_view, ssmkit::make_view(step.data(), B, D),
                                    o.silu);
    const auto Y = blh(y_steps.data(), B, L, D, channel_major);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t d = 0; d < D; ++d) Y(b, t, d) = step[b * D + d];
  }
  ssm_fuzz::require_agreement(y_steps, y, 1e-5);
  if (L > 0) ssm_fuzz::require_agreement(state, final_state, 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ssm_fuzz::fuzz_input in(data, size);
  const std::uint8_t head = in.byte();
  in.set_tame((head & 4) == 0);
  switch (head % 3) {
    case 0: fuzz_fft_conv(in); break;
    case 1: fuzz_stream(in); break;
    default: fuzz_conv1d(in); break;
  }
  return 0;
}
