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
/// Fast path: token-major x and y, (B, L, D) with the channels contiguous (stride 1), vectorised
/// across channels, token by token, so that x streams through once in order. Any other layout (for
/// example channel-major (B, D, L) seen through `.transposed(1, 2)`) runs the same maths one channel
/// at a time. Threads split (batch, chunk of 256 channels) pairs. Scratch: a few KiB of stack.
///
/// Numerics: W fused multiply-adds per output, in the order k = 0..W-1, on both backends; the
/// backends differ only in SiLU's exp (within 2 ulp), so they agree to a few ulp.

#include <algorithm>
#include <array>
#include <cstddef>

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

/// Channels per task: the chunk's weights and pre-roll (W + W-1 rows) stay on the stack (up to
/// 60 KiB for double at W = 8), and its slice of one token's row is a few cache lines.
inline constexpr std::size_t conv1d_chunk = 256;

/// Convolves channels [c0, c0 + n) of batch b, n <= conv1d_chunk, over all L tokens.
///
/// Token-outer order: each step reads the chunk's slice of W token rows, which the previous steps
/// have just brought into L1, so x is read from memory once, with one forward stream. (A
/// channel-outer order that keeps the history in registers walks x with a stride of D elements
/// per token and misses the TLB on every load.) Inputs before t = 0 come from `pre_roll`, the
/// initial state (or zeros) laid out like a token row.
template <class T, class Arch>
void conv1d_chunk_rows(const tensor_view<const T, 3>& x, const tensor_view<const T, 2>& weight,
                       const tensor_view<const T, 1>& bias, const tensor_view<T, 3>& y,
                       const conv1d_options<T>& options, std::size_t b, std::size_t c0, std::size_t n) {
  constexpr std::size_t lanes = width_v<T, Arch>;
  const std::size_t width = weight.extent(1), length = x.extent(1), keep = width - 1;
  alignas(64) T w_rows[conv1d_max_width][conv1d_chunk];
  alignas(64) T pre_roll[conv1d_max_width][conv1d_chunk];
  alignas(64) T bias_row[conv1d_chunk];
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t d = c0 + i;
    for (std::size_t k = 0; k < width; ++k) w_rows[k][i] = weight(d, k);
    bias_row[i] = bias.empty() ? T(0) : bias(d);
    for (std::size_t j = 0; j < keep; ++j) {
      pre_roll[j][i] = options.initial_state.empty() ? T(0) : options.initial_state(b, d, j);
    }
  }
  const std::ptrdiff_t x_step = x.stride(2), y_step = y.stride(2);
  // One output batch at channel offset i (lanes channels; with Arch = scalar, one channel).
  const auto output = [&](auto arch_tag, std::size_t i, const T* const* rows, const std::ptrdiff_t* steps, T* out) {
    using A = decltype(arch_tag);
    const auto ii = static_cast<std::ptrdiff_t>(i);
    batch_t<T, A> acc = detail::load<A>(bias_row + i);
    for (std::size_t k = 0; k < width; ++k) {
      acc = detail::fma(detail::load<A>(w_rows[k] + i), detail::load<A>(rows[k] + ii * steps[k]), acc);
    }
    if (options.silu) acc = detail::silu(acc);
    detail::store(out + ii * y_step, acc);
  };
  const T* rows[conv1d_max_width];
  std::ptrdiff_t steps[conv1d_max_width];
  for (std::size_t t = 0; t < length; ++t) {
    for (std::size_t k = 0; k < width; ++k) {
      const auto s = static_cast<std::ptrdiff_t>(t + k) - static_cast<std::ptrdiff_t>(keep);
      rows[k] = s >= 0 ? &x(b, static_cast<std::size_t>(s), c0)
                       : pre_roll[static_cast<std::size_t>(s + static_cast<std::ptrdiff_t>(keep))];
      steps[k] = s >= 0 ? x_step : 1;
    }
    T* out = &y(b, t, c0);
    std::size_t i = 0;
    if constexpr (lanes > 1) {
      for (; i + lanes <= n; i += lanes) output(Arch{}, i, rows, steps, out);
    }
    for (; i < n; ++i) output(scalar{}, i, rows, steps, out);
  }
  if (!options.final_state.empty()) {
    for (std::size_t j = 0; j < keep; ++j) {
      const auto s = static_cast<std::ptrdiff_t>(length + j) - static_cast<std::ptrdiff_t>(keep);
      for (std::size_t i = 0; i < n; ++i) {
        options.final_state(b, c0 + i, j) =
            s >= 0 ? x(b, static_cast<std::size_t>(s), c0 + i)
                   : pre_roll[static_cast<std::size_t>(s + static_cast<std::ptrdiff_t>(keep))][i];
      }
    }
  }
}

}  // namespace detail

template <class T, class Arch>
void causal_conv1d(const_view<T, 3> x, const_view<T, 2> weight, const_view<T, 1> bias, tensor_view<T, 3> y,
                   const conv1d_options<T>& options) {
  constexpr const char* fn = "causal_conv1d";
  detail::check_data(fn, "x", x);
  detail::check_data(fn, "y", y);
  const std::size_t batches = x.extent(0), channels = x.extent(2);
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

  // Tasks: (batch, chunk of conv1d_chunk channels). SIMD lanes run across channels when they are
  // contiguous in x and y; other layouts take the width-1 body for every channel.
  const std::size_t chunks = (channels + detail::conv1d_chunk - 1) / detail::conv1d_chunk;
  const bool contiguous = x.stride(2) == 1 && y.stride(2) == 1;
  parallel_for(
      std::size_t{0}, batches * chunks,
      [&](std::size_t task) {
        const std::size_t b = task / chunks, c0 = (task % chunks) * detail::conv1d_chunk;
        const std::size_t n = std::min(detail::conv1d_chunk, channels - c0);
        if (contiguous) {
          detail::conv1d_chunk_rows<T, Arch>(x, weight, bias, y, options, b, c0, n);
        } else {
          detail::conv1d_chunk_rows<T, scalar>(x, weight, bias, y, options, b, c0, n);
        }
      },
      options.parallel);
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
