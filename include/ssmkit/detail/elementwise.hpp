#pragma once
/// \file detail/elementwise.hpp
/// The loop behind the elementwise public functions: validation, then rows over parallel_for, with
/// a SIMD body where the last dimension is contiguous in both views.

#include <algorithm>
#include <array>
#include <cstddef>
#include <string_view>

#include <ssmkit/detail/batch.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit::detail {

/// Offset of row `row` (a flat index over all dimensions but the last) in a view with `strides`.
template <std::size_t Rank>
std::ptrdiff_t row_offset(std::size_t row, const std::array<std::size_t, Rank>& extents,
                          const std::array<std::ptrdiff_t, Rank>& strides) noexcept {
  std::ptrdiff_t offset = 0;
  for (std::size_t d = Rank - 1; d-- > 0;) {
    offset += static_cast<std::ptrdiff_t>(row % extents[d]) * strides[d];
    row /= extents[d];
  }
  return offset;
}

/// y = f(x) elementwise; `f` is a generic callable applied to batches and to width-1 batches.
template <class T, class Arch, std::size_t Rank, class F>
void unary_elementwise(std::string_view function, tensor_view<const T, Rank> x, tensor_view<T, Rank> y,
                       const parallel_options& options, F f) {
  check_shape(function, "y", y, x.extents());
  check_data(function, "x", x);
  check_data(function, "y", y);
  const bool in_place = x.data() == y.data() && x.strides() == y.strides();
  if (!in_place) check_no_overlap(function, "y", y, "x", x);
  if (x.empty()) return;

  using one = scalar_batch<T>;
  constexpr std::size_t width = width_v<T, Arch>;
  const std::size_t inner = x.extent(Rank - 1);
  const std::size_t rows = x.size() / inner;
  const std::ptrdiff_t sx = x.stride(Rank - 1), sy = y.stride(Rank - 1);
  parallel_options row_options = options;
  // Split only when each thread gets at least ~16 KiB of work.
  row_options.min_block = std::max<std::ptrdiff_t>(options.min_block, static_cast<std::ptrdiff_t>(4096 / inner + 1));

  parallel_for(std::size_t{0}, rows, [&](std::size_t row) {
    const T* xr = x.data() + row_offset(row, x.extents(), x.strides());
    T* yr = y.data() + row_offset(row, y.extents(), y.strides());
    std::size_t i = 0;
    if (sx == 1 && sy == 1) {
      for (; i + width <= inner; i += width) detail::store(yr + i, f(detail::load<Arch>(xr + i)));
      for (; i < inner; ++i) yr[i] = f(one(xr[i])).value;
    } else {
      for (; i < inner; ++i) {
        const auto ii = static_cast<std::ptrdiff_t>(i);
        yr[ii * sy] = f(one(xr[ii * sx])).value;
      }
    }
  }, row_options);
}

}  // namespace ssmkit::detail
