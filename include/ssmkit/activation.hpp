#pragma once
/// \file activation.hpp
/// Elementwise activations over views of any rank, as the Mamba blocks use them: softplus (on dt),
/// SiLU (the gate and the conv1d output) and sigmoid. Each follows PyTorch's definition (see
/// detail/math.hpp); softplus uses PyTorch's threshold of 20.
///
/// Fast path: both views have a contiguous last dimension (stride 1); other layouts run the same
/// maths one element at a time. Rows (all indices but the last) are split over parallel_for.
/// Numerics: the xsimd backend's exp and log1p are within 2 ulp of the scalar backend's libm ones,
/// so the two backends agree to a few ulp.

#include <cstddef>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/elementwise.hpp>
#include <ssmkit/detail/math.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/**
 * y = softplus(x) = (x > 20 ? x : log1p(exp(x))), elementwise.
 *
 * \param x  input of any shape and strides.
 * \param y  output of the same shape; may be exactly x (in place), must not partially overlap it.
 * \throws ssmkit::error on a shape mismatch, a null view or a partial overlap.
 */
template <class T, class Arch = default_arch, std::size_t Rank>
void softplus(const_view<T, Rank> x, tensor_view<T, Rank> y, const parallel_options& options = {}) {
  detail::unary_elementwise<T, Arch>("softplus", x, y, options, [](auto v) { return detail::softplus(v); });
}

/**
 * y = silu(x) = x / (1 + exp(-x)), elementwise.
 *
 * \param x  input of any shape and strides.
 * \param y  output of the same shape; may be exactly x (in place), must not partially overlap it.
 * \throws ssmkit::error on a shape mismatch, a null view or a partial overlap.
 */
template <class T, class Arch = default_arch, std::size_t Rank>
void silu(const_view<T, Rank> x, tensor_view<T, Rank> y, const parallel_options& options = {}) {
  detail::unary_elementwise<T, Arch>("silu", x, y, options, [](auto v) { return detail::silu(v); });
}

/**
 * y = sigmoid(x) = 1 / (1 + exp(-x)), elementwise.
 *
 * \param x  input of any shape and strides.
 * \param y  output of the same shape; may be exactly x (in place), must not partially overlap it.
 * \throws ssmkit::error on a shape mismatch, a null view or a partial overlap.
 */
template <class T, class Arch = default_arch, std::size_t Rank>
void sigmoid(const_view<T, Rank> x, tensor_view<T, Rank> y, const parallel_options& options = {}) {
  detail::unary_elementwise<T, Arch>("sigmoid", x, y, options, [](auto v) { return detail::sigmoid(v); });
}

}  // namespace ssmkit
