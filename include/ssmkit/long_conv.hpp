#pragma once
/// \file long_conv.hpp
/// Long convolutions with directly learned kernels ("Simple Hardware-Efficient Long Convolutions
/// for Sequence Modeling", Fu et al. 2023; HazyResearch/safari's LongConvKernel and LongConv):
/// the kernel regularisers and a layer that owns a kernel and a D skip and runs through a cached
/// FFT convolution plan.
///
/// The regularisers, applied in the reference's order to the kernel k (C, H, Lk):
///   1. smoothing (use_ma_smoothing): average pooling along the length with an odd window w, stride
///      1, zero padding w/2, dividing by w also at the edges (AvgPool1d with count_include_pad);
///   2. squash: k ← sign(k) · max(|k| − λ, 0), a soft threshold that makes the kernel sparse.
/// At inference the kernel is fixed, so the layer applies them once, when it is built.

#include <cmath>
#include <cstddef>
#include <vector>

#include <ssmkit/backend.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/**
 * out = sign(k) · max(|k| − lambda, 0), elementwise over a kernel (C, H, Lk). out may be k itself.
 * \throws ssmkit::error when lambda < 0 (or NaN), or on a shape mismatch.
 */
template <class T>
void squash(const_view<T, 3> k, tensor_view<T, 3> out, T lambda) {
  detail::require(lambda >= T(0), "squash", "lambda must be >= 0, got ", lambda);
  detail::check_data("squash", "k", k);
  detail::check_data("squash", "out", out);
  detail::check_shape("squash", "out", out, k.extents());
  for (std::size_t c = 0; c < k.extent(0); ++c)
    for (std::size_t h = 0; h < k.extent(1); ++h)
      for (std::size_t l = 0; l < k.extent(2); ++l) {
        const T v = k(c, h, l);
        const T magnitude = std::abs(v) - lambda;
        // NaN stays NaN: the comparison is false for NaN and v carries it.
        out(c, h, l) = magnitude > T(0) ? std::copysign(magnitude, v) : (std::isnan(v) ? v : T(0));
      }
}

/**
 * out[c, h, l] = (1/w) Σ_{j=-w/2}^{w/2} k[c, h, l + j], zero outside [0, Lk): a moving average along
 * the length with an odd window w (w = 1 copies). out must not overlap k.
 * \throws ssmkit::error when w is even or 0, or on a shape mismatch or overlap.
 */
template <class T>
void smooth(const_view<T, 3> k, tensor_view<T, 3> out, std::size_t window) {
  detail::require(window % 2 == 1, "smooth", "window must be odd, got ", window);
  detail::check_data("smooth", "k", k);
  detail::check_data("smooth", "out", out);
  detail::check_shape("smooth", "out", out, k.extents());
  detail::check_no_overlap("smooth", "out", out, "k", k);
  const auto half = static_cast<std::ptrdiff_t>(window / 2);
  const auto length = static_cast<std::ptrdiff_t>(k.extent(2));
  for (std::size_t c = 0; c < k.extent(0); ++c)
    for (std::size_t h = 0; h < k.extent(1); ++h)
      for (std::ptrdiff_t l = 0; l < length; ++l) {
        T sum = 0;
        for (std::ptrdiff_t j = std::max<std::ptrdiff_t>(0, l - half); j <= std::min(length - 1, l + half); ++j) {
          sum += k(c, h, static_cast<std::size_t>(j));
        }
        out(c, h, static_cast<std::size_t>(l)) = sum / static_cast<T>(window);
      }
}

/// How long_conv_layer regularises its kernel.
struct long_conv_regularizer {
  double squash_lambda = 0;       ///< λ of the soft threshold; 0 leaves the kernel as it is
  std::size_t smooth_window = 1;  ///< odd moving-average window; 1 is no smoothing
};

/**
 * A long-convolution layer (safari's LongConv without its output projection): it owns a kernel
 * k (C, H, Lk) and a skip D (C, H), regularises the kernel once, and computes
 *
 *     y[b, t, c·H + h] = Σ_s k'[c, h, s] u[b, t − s, h] + D[c, h] u[b, t, h]
 *
 * (plus the anticausal half when bidirectional, see fft_conv.hpp) through a cached FFT plan for
 * inputs of length L. Immutable after construction: forward is const and thread-safe with one
 * workspace per thread.
 */
template <class T, class Arch = default_arch>
class long_conv_layer {
 public:
  /// \throws ssmkit::error on bad shapes or regulariser settings (see squash, smooth, fft_conv_plan).
  long_conv_layer(const_view<T, 3> kernel, const_view<T, 2> D, std::size_t L,
                  const long_conv_regularizer& regularizer = {}, fft_conv_options options = {})
      : kernel_(kernel.size()),
        D_(D.size()),
        has_D_(D.data() != nullptr || !D.empty()),
        plan_("long_conv_layer", regularized(kernel, regularizer, kernel_), L, options) {
    const std::size_t channels = options.bidirectional ? kernel.extent(0) / 2 : kernel.extent(0);
    if (has_D_) {
      detail::check_data("long_conv_layer", "D", D);
      detail::check_shape("long_conv_layer", "D", D, {channels, kernel.extent(1)});
      for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t h = 0; h < kernel.extent(1); ++h) D_[c * kernel.extent(1) + h] = D(c, h);
    }
    D_shape_ = {channels, kernel.extent(1)};
  }

  /// The kernel after regularisation, (C', H, Lk).
  tensor_view<const T, 3> kernel() const noexcept {
    return {kernel_.data(),
            {plan_.bidirectional() ? 2 * plan_.channels() : plan_.channels(), plan_.width(), plan_.kernel_length()}};
  }
  const fft_conv_plan<T, Arch>& plan() const noexcept { return plan_; }

  /// y (B, L, C·H) from u (B, L, H); see fft_conv_plan::forward for layouts and errors.
  void forward(const_view<T, 3> u, tensor_view<T, 3> y, fft_conv_workspace<T>& workspace,
               const parallel_options& parallel = {}) const {
    const tensor_view<const T, 2> D = has_D_ ? tensor_view<const T, 2>(D_.data(), D_shape_) : tensor_view<const T, 2>{};
    plan_.forward(u, y, D, workspace, parallel);
  }

 private:
  // Smoothing then squash, into `storage` (row-major (C', H, Lk)); returns the view the plan uses.
  static tensor_view<const T, 3> regularized(const_view<T, 3> kernel, const long_conv_regularizer& r,
                                             std::vector<T>& storage) {
    detail::check_data("long_conv_layer", "kernel", kernel);
    detail::require(r.squash_lambda >= 0, "long_conv_layer", "squash_lambda must be >= 0, got ", r.squash_lambda);
    detail::require(r.smooth_window % 2 == 1, "long_conv_layer", "smooth_window must be odd, got ", r.smooth_window);
    const auto shape = kernel.extents();
    const tensor_view<T, 3> out(storage.data(), shape);
    if (r.smooth_window > 1) {
      smooth<T>(kernel, out, r.smooth_window);
    } else {
      for (std::size_t c = 0; c < shape[0]; ++c)
        for (std::size_t h = 0; h < shape[1]; ++h)
          for (std::size_t l = 0; l < shape[2]; ++l) out(c, h, l) = kernel(c, h, l);
    }
    if (r.squash_lambda > 0) squash<T>(out, out, static_cast<T>(r.squash_lambda));
    return out;
  }

  std::vector<T> kernel_;
  std::vector<T> D_;
  bool has_D_;
  std::array<std::size_t, 2> D_shape_{};
  fft_conv_plan<T, Arch> plan_;
};

}  // namespace ssmkit
