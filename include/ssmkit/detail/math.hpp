#pragma once
/// \file detail/math.hpp
/// The activations that the reference kernels apply inside scans, for scalars and batches alike.
/// Each follows PyTorch's definition, which the golden cases were computed with.

#include <cmath>
#include <type_traits>

#include <ssmkit/detail/batch.hpp>

namespace ssmkit::detail {

/// torch.nn.functional.softplus with beta = 1 and threshold = 20: x > 20 ? x : log1p(exp(x)).
/// The threshold keeps exp from overflowing; at x = 20 the two sides differ by 2e-9 relative.
/// NaN propagates (NaN > 20 is false, and log1p(exp(NaN)) is NaN).
template <class V>
inline V softplus(const V& x) noexcept {
  if constexpr (std::is_floating_point_v<V>) {
    return x > V(20) ? x : std::log1p(std::exp(x));
  } else {
    using T = typename V::value_type;
    // No clamp before exp: min() would turn NaN into 20. exp overflows to inf above ~88 (float),
    // and select then takes x.
    return detail::select(x > V(T(20)), x, detail::log1p(detail::exp(x)));
  }
}

/// The logistic function 1 / (1 + exp(-x)).
template <class V>
inline V sigmoid(const V& x) noexcept {
  if constexpr (std::is_floating_point_v<V>) {
    return V(1) / (V(1) + std::exp(-x));
  } else {
    using T = typename V::value_type;
    return V(T(1)) / (V(T(1)) + detail::exp(-x));
  }
}

/// SiLU (swish): x * sigmoid(x).
template <class V>
inline V silu(const V& x) noexcept {
  return x * sigmoid(x);
}

}  // namespace ssmkit::detail
