#pragma once
/// \file conv1d.hpp
/// Short causal depthwise convolution, as in front of every Mamba scan (mamba's `causal_conv1d_fn`
/// and `causal_conv1d_update`, kernel widths 1 to 8):
///
///   y[b, t, d] = act( bias[d] + Σ_{k=0}^{W-1} weight[d, k] · x[b, t - (W-1) + k, d] ),
///
/// where x at times -(W-1)..-1 comes from the conv state (zeros when none is given) and act is the
/// identity or SiLU. The conv state of a sequence is its last W-1 inputs, oldest first:
/// state[b, d, j] = x[b, L-(W-1)+j, d], the layout (B, D, W-1) of mamba's `conv_state`.
///
/// Shapes: B batch, L length, D channels, W kernel width.
/// Two fast paths, both reading x and writing y once, as streams:
///   - token-major x and y, (B, L, D) with the channels contiguous: SIMD lanes across channels,
///     row by row through passes of 64 tokens and chunks of 4 KiB of channels; threads split
///     (batch, block of 256 tokens) tasks;
///   - time-contiguous x and y (mamba's channel-major (B, D, L), seen as (B, L, D) through
///     `.transposed(1, 2)`): SIMD lanes along time, one channel at a time with its W weights in
///     registers (a sliding window); threads split the (batch, channel) pairs.
/// Any other layout runs the second path with one lane and any strides. The width W is a
/// template parameter of the kernels (1..8, dispatched once per call). Scratch: at most 68 KiB of
/// stack (W = 8, double; 36 KiB at W = 4 in float). See docs/conv1d.md for the bandwidth reached.
///
/// Numerics: W fused multiply-adds per output, in the order k = 0..W-1, on both backends; the
/// backends differ only in SiLU's exp (within 2 ulp), so they agree to a few ulp.

#include <algorithm>
#include <array>
#include <cstddef>
#include <type_traits>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/batch.hpp>
#include <ssmkit/detail/math.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// The widest kernel causal_conv1d supports (mamba uses 4).
inline constexpr std::size_t conv1d_max_width = 8;

/// Options of causal_conv1d.
template <class T>
struct conv1d_options {
  /// Apply SiLU to the output (mamba's `activation="silu"`).
  bool silu = false;
  /// (B, D, W-1): the last W-1 inputs before this sequence, oldest first. Empty: zeros.
  tensor_view<const T, 3> initial_state{};
  /// (B, D, W-1): receives the last W-1 inputs, oldest first (the next call's initial_state).
  /// Empty: not wanted. May be the same buffer as initial_state.
  tensor_view<T, 3> final_state{};
  parallel_options parallel{};
};

/**
 * y = act(bias + causal depthwise convolution of x with weight); see the file comment.
 *
 * \param x       (B, L, D) input, any strides.
 * \param weight  (D, W) kernel, 1 <= W <= 8; weight[d, W-1] multiplies the current input.
 * \param bias    (D), or an empty view for no bias.
 * \param y       (B, L, D) output; must not overlap x.
 * \throws ssmkit::error on a shape mismatch, W outside 1..8, a null view or an overlap; nothing is
 *         written then.
 */
template <class T, class Arch = default_arch>
void causal_conv1d(const_view<T, 3> x, const_view<T, 2> weight, const_view<T, 1> bias, tensor_view<T, 3> y,
                   const conv1d_options<T>& options = {});

/**
 * One decoding step: y[b, d] = act(bias[d] + Σ_{k<W-1} weight[d, k]·state[b, d, k] + weight[d, W-1]·x[b, d]),
 * then the state shifts left by one and x enters at the end. Makes no heap allocation.
 * Applied to the tokens of a sequence one by one it equals causal_conv1d over the sequence.
 *
 * \param x           (B, D) the current input.
 * \param conv_state  (B, D, W-1), updated in place. Fast path: the channels contiguous, that is a
 *                    (B, W-1, D) buffer seen through `.transposed(1, 2)`; mamba's (B, D, W-1)
 *                    works too, one channel at a time.
 * \param weight      (D, W), 1 <= W <= 8.   \param bias (D) or empty.
 * \param y           (B, D) output; must not overlap x or conv_state.
 * \throws ssmkit::error on bad shapes or overlaps; nothing is written then.
 */
template <class T, class Arch = default_arch>
void causal_conv1d_update(const_view<T, 2> x, tensor_view<T, 3> conv_state, const_view<T, 2> weight,
                          const_view<T, 1> bias, tensor_view<T, 2> y, bool silu = false);

// ---- implementation

namespace detail {

/// Validates the weight and bias of both entry points and returns W.
template <class T>
std::size_t check_conv1d_weights(std::string_view function, std::size_t channels, const tensor_view<const T, 2>& weight,
                                 const tensor_view<const T, 1>& bias) {
  check_data(function, "weight", weight);
  check_data(function, "bias", bias);
  const std::size_t width = weight.extent(1);
  require(weight.extent(0) == channels, function, "weight has shape ", format_shape(weight.extents()), ", expected (",
          channels, ", W)");
  require(width >= 1 && width <= conv1d_max_width, function, "weight has width ", width, ", expected 1 to ",
          conv1d_max_width);
  if (!bias.empty()) check_shape(function, "bias", bias, {channels});
  return width;
}

/// Calls f(std::integral_constant<std::size_t, W>{}) for the runtime width W (1..8), so that each
/// kernel body is compiled with its W taps unrolled and its history in registers.
template <class F>
void with_conv1d_width(std::size_t width, F&& f) {
  switch (width) {
    case 1: f(std::integral_constant<std::size_t, 1>{}); break;
    case 2: f(std::integral_constant<std::size_t, 2>{}); break;
    case 3: f(std::integral_constant<std::size_t, 3>{}); break;
    case 4: f(std::integral_constant<std::size_t, 4>{}); break;
    case 5: f(std::integral_constant<std::size_t, 5>{}); break;
    case 6: f(std::integral_constant<std::size_t, 6>{}); break;
    case 7: f(std::integral_constant<std::size_t, 7>{}); break;
    default: f(std::integral_constant<std::size_t, 8>{}); break;
  }
}

/// bias + Σ_k w[k] x[k] with fused multiply-adds in the order k = 0..W-1, then the activation.
/// Every path of causal_conv1d evaluates an output this way (causal_conv1d_update uses the same order).
template <std::size_t W, class B, class Load>
inline B conv1d_point(B acc, const B* w, Load&& x_at, bool silu) noexcept {
  for (std::size_t k = 0; k < W; ++k) acc = detail::fma(w[k], x_at(k), acc);
  return silu ? detail::silu(acc) : acc;
}

/// Tokens per token-major task: threads split the sequence into contiguous stretches.
inline constexpr std::size_t conv1d_token_block = 256;
/// Tokens per pass: a pass re-gathers each chunk's weights (W + 1 values per channel, 1/50 of a
/// load per output at W = 4), and its rows of x and y (2 x 64 x 4 KiB per chunk) stay in L2.
inline constexpr std::size_t conv1d_token_pass = 64;
/// Channels per token-major chunk, 4 KiB of a row: the chunk's W + 1 weight rows and the W input
/// rows an output row reads (at W = 4 in float, 20 + 16 KiB) are L1 hits, and the newest row is
/// read as runs of a whole page, which the hardware prefetcher streams.
template <class T>
inline constexpr std::size_t conv1d_chunk = std::size_t{4096} / sizeof(T);

/// Token-major x and y (channels contiguous): tokens [t0, t1) of batch b, all channels.
///
/// Passes of conv1d_token_pass tokens; in a pass, chunk by chunk of conv1d_chunk channels, output
/// row by output row, across channels in SIMD batches. Every load is an L1 hit but the newest
/// input row's, which is read as a run of 4 KiB that the hardware prefetcher streams. History of
/// the design (D = 4096, L = 2048, float, this machine): one chunk of 256 channels down all L
/// tokens read 1 KiB of every 16 KiB row and waited on those loads 66% of the time (3 GB/s);
/// whole rows per token streamed but reloaded 80 KiB of weights from L2 for every row (6 GB/s);
/// one channel batch down 16 tokens with the history in registers, with a software prefetch per
/// line, reached 6-7 GB/s; chunks of 512 to 4096 channels, passes of 16 to 64 tokens, with or
/// without a software prefetch of the next rows, all measured 7-10 GB/s, within the noise of the
/// shared machine. The taps must be unrolled (W is a template parameter): a runtime loop over k
/// chains the fmas through memory. perf still puts a third of the time on the newest row's load.
template <class T, class Arch, std::size_t W>
void conv1d_token_major(const tensor_view<const T, 3>& x, const tensor_view<const T, 2>& weight,
                        const tensor_view<const T, 1>& bias, const tensor_view<T, 3>& y,
                        const conv1d_options<T>& options, std::size_t b, std::size_t t0, std::size_t t1) {
  using batch = batch_t<T, Arch>;
  using one = batch_t<T, scalar>;
  constexpr std::size_t lanes = width_v<T, Arch>, keep = W - 1;
  alignas(64) T w_rows[W][conv1d_chunk<T>];
  alignas(64) T bias_row[conv1d_chunk<T>];
  alignas(64) T pre_roll[W][conv1d_chunk<T>];  // the initial state as rows, for tokens t < W-1
  const std::size_t channels = x.extent(2);
  const auto x_step = x.stride(1);
  const bool silu = options.silu;
  for (std::size_t p0 = t0; p0 < t1; p0 += conv1d_token_pass) {
    const std::size_t p1 = std::min(t1, p0 + conv1d_token_pass);
    for (std::size_t c0 = 0; c0 < channels; c0 += conv1d_chunk<T>) {
      const std::size_t n = std::min(conv1d_chunk<T>, channels - c0);
      for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t k = 0; k < W; ++k) w_rows[k][i] = weight(c0 + i, k);
        bias_row[i] = bias.empty() ? T(0) : bias(c0 + i);
      }
      if (p0 < keep) {
        for (std::size_t j = 0; j < keep; ++j) {
          for (std::size_t i = 0; i < n; ++i) {
            pre_roll[j][i] = options.initial_state.empty() ? T(0) : options.initial_state(b, c0 + i, j);
          }
        }
      }
      const T* x0 = &x(b, 0, c0);
      for (std::size_t t = p0; t < p1; ++t) {
        const T* rows[W];
        for (std::size_t k = 0; k < W; ++k) {
          rows[k] = t + k >= keep ? x0 + static_cast<std::ptrdiff_t>(t + k - keep) * x_step : pre_roll[t + k];
        }
        T* out = &y(b, t, c0);
        std::size_t i = 0;
        for (; i + lanes <= n; i += lanes) {
          batch w[W];
          for (std::size_t k = 0; k < W; ++k) w[k] = detail::load<Arch>(w_rows[k] + i);
          detail::store(out + i, conv1d_point<W>(detail::load<Arch>(bias_row + i), w,
                                                 [&](std::size_t k) { return detail::load<Arch>(rows[k] + i); }, silu));
        }
        for (; i < n; ++i) {
          one w[W];
          for (std::size_t k = 0; k < W; ++k) w[k] = one(w_rows[k][i]);
          out[i] = conv1d_point<W>(one(bias_row[i]), w, [&](std::size_t k) { return one(rows[k][i]); }, silu).value;
        }
      }
    }
  }
}

/// One channel (b, d) over all L tokens, for time-contiguous layouts (mamba's channel-major
/// (B, D, L)) with Arch's lanes running along time: W broadcast weights, and each output batch is
/// W unaligned loads of the same few cache lines (a sliding window that L1 serves), so x streams
/// through once. With Arch = scalar the same body serves any strides (x_step, y_step) one token at
/// a time. The first W-1 inputs come from `pre` (the initial state, or zeros); the first and last
/// partial batches run on a small window copy so that every output takes the same SIMD path.
template <class T, class Arch, std::size_t W>
void conv1d_one_channel(const T* x, std::ptrdiff_t x_step, T* y, std::ptrdiff_t y_step, std::size_t length,
                        const T* w_values, T bias_value, const T* pre, bool silu) {
  using batch = batch_t<T, Arch>;
  constexpr std::size_t lanes = width_v<T, Arch>, keep = W - 1;
  if constexpr (lanes > 1) x_step = 1, y_step = 1;
  batch w[W];
  for (std::size_t k = 0; k < W; ++k) w[k] = batch(w_values[k]);
  const batch bias_b(bias_value);
  // Window runs: [keep values before, then up to `run` inputs], computed in batches from a copy.
  constexpr std::size_t head_len = (keep + lanes - 1) / lanes * lanes;
  constexpr std::size_t window = keep + (head_len > lanes ? head_len : lanes);
  alignas(64) T win[window];
  alignas(64) T out[window];
  const auto from_window = [&](std::size_t t_first, std::size_t count) {
    // win[j] holds the input at time t_first - keep + j (count outputs, count <= window - keep).
    for (std::size_t j = 0; j < count; j += lanes) {
      detail::store(out + j, conv1d_point<W>(
                                 bias_b, w, [&](std::size_t k) { return detail::load<Arch>(win + j + k); }, silu));
    }
    for (std::size_t j = 0; j < count; ++j) y[static_cast<std::ptrdiff_t>(t_first + j) * y_step] = out[j];
  };
  // Head: outputs [0, min(L, head_len)) (all of them with lanes == 1: head_len = keep).
  const std::size_t head = std::min(length, head_len);
  if (head > 0) {
    for (std::size_t j = 0; j < window; ++j) {
      win[j] = j < keep ? pre[j] : (j - keep < length ? x[static_cast<std::ptrdiff_t>(j - keep) * x_step] : T(0));
    }
    from_window(0, head);
  }
  std::size_t t = head;
  for (; t + lanes <= length; t += lanes) {
    const T* xt = x + (static_cast<std::ptrdiff_t>(t) - static_cast<std::ptrdiff_t>(keep)) * x_step;
    detail::store(y + static_cast<std::ptrdiff_t>(t) * y_step,
                  conv1d_point<W>(bias_b, w,
                                  [&](std::size_t k) {
                                    return detail::load<Arch>(xt + static_cast<std::ptrdiff_t>(k) * x_step);
                                  },
                                  silu));
  }
  if (t < length) {  // a partial last batch (lanes > 1 only); t >= head_len >= keep
    for (std::size_t j = 0; j < window; ++j) {
      win[j] = j < keep + length - t ? x[static_cast<std::ptrdiff_t>(t - keep + j) * x_step] : T(0);
    }
    from_window(t, length - t);
  }
}

}  // namespace detail

template <class T, class Arch>
void causal_conv1d(const_view<T, 3> x, const_view<T, 2> weight, const_view<T, 1> bias, tensor_view<T, 3> y,
                   const conv1d_options<T>& options) {
  constexpr const char* fn = "causal_conv1d";
  detail::check_data(fn, "x", x);
  detail::check_data(fn, "y", y);
  const std::size_t batches = x.extent(0), length = x.extent(1), channels = x.extent(2);
  const std::size_t width = detail::check_conv1d_weights<T>(fn, channels, weight, bias);
  detail::check_shape(fn, "y", y, x.extents());
  detail::check_no_overlap(fn, "y", y, "x", x);
  const std::array<std::size_t, 3> state_shape{batches, channels, width - 1};
  if (!options.initial_state.empty() || options.initial_state.data() != nullptr) {
    detail::check_data(fn, "initial_state", options.initial_state);
    detail::check_shape(fn, "initial_state", options.initial_state, state_shape);
  }
  if (!options.final_state.empty() || options.final_state.data() != nullptr) {
    detail::check_data(fn, "final_state", options.final_state);
    detail::check_shape(fn, "final_state", options.final_state, state_shape);
    detail::check_no_overlap(fn, "final_state", options.final_state, "x", x);
    detail::check_no_overlap(fn, "final_state", options.final_state, "y", y);
  }
  if (x.empty() && options.final_state.empty()) return;
  const std::size_t keep = width - 1;

  if (x.stride(2) == 1 && y.stride(2) == 1 && channels > 1) {
    // Token-major: tasks are (batch, block of tokens), whole rows each.
    const std::size_t blocks = (length + detail::conv1d_token_block - 1) / detail::conv1d_token_block;
    detail::with_conv1d_width(width, [&](auto w_tag) {
      constexpr std::size_t W = decltype(w_tag)::value;
      parallel_for(
          std::size_t{0}, batches * blocks,
          [&](std::size_t task) {
            const std::size_t b = task / blocks, t0 = (task % blocks) * detail::conv1d_token_block;
            detail::conv1d_token_major<T, Arch, W>(x, weight, bias, y, options, b, t0,
                                                   std::min(length, t0 + detail::conv1d_token_block));
          },
          options.parallel);
    });
    // The final state after all tasks: it may share its buffer with the initial state, which the
    // first tokens read. In place, entry j takes entry j + L (or x), which is not yet overwritten.
    if (!options.final_state.empty()) {
      for (std::size_t b = 0; b < batches; ++b) {
        for (std::size_t d = 0; d < channels; ++d) {
          for (std::size_t j = 0; j < keep; ++j) {
            const std::size_t s = length + j;  // the input at time s - keep
            options.final_state(b, d, j) = s >= keep ? x(b, s - keep, d)
                                           : options.initial_state.empty() ? T(0)
                                                                           : options.initial_state(b, d, s);
          }
        }
      }
    }
    return;
  }

  // Any other layout: tasks are channels (b, d); lanes run along time when it is contiguous.
  const bool time_contiguous = x.stride(1) == 1 && y.stride(1) == 1;
  detail::with_conv1d_width(width, [&](auto w_tag) {
    constexpr std::size_t W = decltype(w_tag)::value;
    parallel_for(
        std::size_t{0}, batches * channels,
        [&](std::size_t task) {
          const std::size_t b = task / channels, d = task % channels;
          T w_values[W];
          T pre[W];
          for (std::size_t k = 0; k < W; ++k) w_values[k] = weight(d, k);
          for (std::size_t j = 0; j < keep; ++j) {
            pre[j] = options.initial_state.empty() ? T(0) : options.initial_state(b, d, j);
          }
          const T bias_value = bias.empty() ? T(0) : bias(d);
          if (length > 0) {
            const T* xp = &x(b, 0, d);
            T* yp = &y(b, 0, d);
            if (time_contiguous) {
              detail::conv1d_one_channel<T, Arch, W>(xp, 1, yp, 1, length, w_values, bias_value, pre, options.silu);
            } else {
              detail::conv1d_one_channel<T, scalar, W>(xp, x.stride(1), yp, y.stride(1), length, w_values, bias_value,
                                                       pre, options.silu);
            }
          }
          if (!options.final_state.empty()) {
            for (std::size_t j = 0; j < keep; ++j) {
              const std::size_t s = length + j;
              options.final_state(b, d, j) = s >= keep ? x(b, s - keep, d) : pre[s];
            }
          }
        },
        options.parallel);
  });
}

template <class T, class Arch>
void causal_conv1d_update(const_view<T, 2> x, tensor_view<T, 3> conv_state, const_view<T, 2> weight,
                          const_view<T, 1> bias, tensor_view<T, 2> y, bool silu) {
  constexpr const char* fn = "causal_conv1d_update";
  detail::check_data(fn, "x", x);
  detail::check_data(fn, "y", y);
  detail::check_data(fn, "conv_state", conv_state);
  const std::size_t batches = x.extent(0), channels = x.extent(1);
  const std::size_t width = detail::check_conv1d_weights<T>(fn, channels, weight, bias);
  const std::size_t keep = width - 1;
  detail::check_shape(fn, "y", y, x.extents());
  detail::check_shape(fn, "conv_state", conv_state, {batches, channels, keep});
  detail::check_no_overlap(fn, "y", y, "x", x);
  detail::check_no_overlap(fn, "y", y, "conv_state", conv_state);
  detail::check_no_overlap(fn, "conv_state", conv_state, "x", x);

  // One body for both layouts: lanes run across channels where the state, x and y have them
  // contiguous, else one channel at a time. No allocation: per-lane gathers use stack arrays.
  const auto run = [&](auto arch_tag, std::size_t b, std::size_t d0) {
    using A = decltype(arch_tag);
    using batch = detail::batch_t<T, A>;
    constexpr std::size_t lanes = detail::width_v<T, A>;
    alignas(64) std::array<T, lanes> lane_values{};
    const auto gather = [&](auto&& value_of) {
      for (std::size_t lane = 0; lane < lanes; ++lane) lane_values[lane] = value_of(d0 + lane);
      return detail::load<A>(lane_values.data());
    };
    const batch now = detail::load<A>(&x(b, d0));
    batch acc = bias.empty() ? batch(T(0)) : gather([&](std::size_t d) { return bias(d); });
    batch older[conv1d_max_width];
    for (std::size_t k = 0; k < keep; ++k) {
      older[k] = detail::load<A>(&conv_state(b, d0, k));
      acc = detail::fma(gather([&](std::size_t d) { return weight(d, k); }), older[k], acc);
    }
    acc = detail::fma(gather([&](std::size_t d) { return weight(d, keep); }), now, acc);
    if (silu) acc = detail::silu(acc);
    detail::store(&y(b, d0), acc);
    for (std::size_t k = 0; k + 1 < keep; ++k) detail::store(&conv_state(b, d0, k), older[k + 1]);
    if (keep > 0) detail::store(&conv_state(b, d0, keep - 1), now);
  };
  constexpr std::size_t lanes = detail::width_v<T, Arch>;
  const bool contiguous = x.stride(1) == 1 && y.stride(1) == 1 && conv_state.stride(1) == 1;
  for (std::size_t b = 0; b < batches; ++b) {
    std::size_t d = 0;
    if (contiguous) {
      for (; d + lanes <= channels; d += lanes) run(Arch{}, b, d);
    }
    for (; d < channels; ++d) run(scalar{}, b, d);
  }
}

}  // namespace ssmkit
