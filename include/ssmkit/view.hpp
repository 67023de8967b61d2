#pragma once
/// \file view.hpp
/// Strided tensor views: a pointer, extents and element strides, for rank 1 to 5 (an mdspan-like
/// type that C++17 lacks). Every kernel takes views, so both mamba's channel-major layout
/// (batch, D, L) and the token-major layout (batch, L, D) of inference engines are passed without a
/// copy: a token-major buffer seen as (batch, D, L) is `make_view(p, batch, L, D).transposed(1, 2)`.
///
/// A view never owns memory and never allocates. Strides are in elements, may be zero (broadcast)
/// or negative, and are signed (`std::ptrdiff_t`). The default layout is row-major (C order): the
/// last index is contiguous. Views of const data are `tensor_view<const T, Rank>`; a view of
/// mutable data converts to it implicitly.
///
/// Shape letters used across ssmkit: B batch, L length, H or D channels, N state size, P head dim,
/// G groups.

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/error.hpp>

namespace ssmkit {

template <class T, std::size_t Rank>
class tensor_view {
  static_assert(Rank >= 1 && Rank <= 5, "ssmkit::tensor_view supports rank 1 to 5");

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using extents_type = std::array<std::size_t, Rank>;
  using strides_type = std::array<std::ptrdiff_t, Rank>;
  static constexpr std::size_t rank = Rank;

  /// An empty view: null data, all extents 0.
  constexpr tensor_view() noexcept = default;

  /// A view with explicit element strides.
  constexpr tensor_view(T* data, const extents_type& extents, const strides_type& strides) noexcept
      : data_(data), extents_(extents), strides_(strides) {}

  /// A row-major (C order) view: the last index is contiguous.
  constexpr tensor_view(T* data, const extents_type& extents) noexcept
      : data_(data), extents_(extents), strides_(row_major_strides(extents)) {}

  /// A view of mutable data converts to a view of const data.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  constexpr tensor_view(const tensor_view<U, Rank>& other) noexcept  // NOLINT(google-explicit-constructor)
      : data_(other.data()), extents_(other.extents()), strides_(other.strides()) {}

  constexpr T* data() const noexcept { return data_; }
  constexpr const extents_type& extents() const noexcept { return extents_; }
  constexpr const strides_type& strides() const noexcept { return strides_; }
  constexpr std::size_t extent(std::size_t dim) const noexcept { return extents_[dim]; }
  constexpr std::ptrdiff_t stride(std::size_t dim) const noexcept { return strides_[dim]; }

  /// The number of elements: the product of the extents.
  constexpr std::size_t size() const noexcept {
    std::size_t n = 1;
    for (const auto e : extents_) n *= e;
    return n;
  }
  constexpr bool empty() const noexcept { return size() == 0; }

  /// Unchecked element access: `v(b, d, l)`. Kernels use raw pointers and strides instead.
  template <class... Indices>
  constexpr T& operator()(Indices... indices) const noexcept {
    static_assert(sizeof...(Indices) == Rank, "tensor_view: wrong number of indices");
    const std::array<std::ptrdiff_t, Rank> idx{static_cast<std::ptrdiff_t>(indices)...};
    std::ptrdiff_t offset = 0;
    for (std::size_t d = 0; d < Rank; ++d) offset += idx[d] * strides_[d];
    return data_[offset];
  }

  /// Checked element access: throws `ssmkit::error` when an index is out of range.
  template <class... Indices>
  T& at(Indices... indices) const {
    static_assert(sizeof...(Indices) == Rank, "tensor_view: wrong number of indices");
    const std::array<std::ptrdiff_t, Rank> idx{static_cast<std::ptrdiff_t>(indices)...};
    for (std::size_t d = 0; d < Rank; ++d) {
      detail::require(idx[d] >= 0 && static_cast<std::size_t>(idx[d]) < extents_[d], "tensor_view::at", "index ",
                      idx[d], " out of range for dimension ", d, " of shape ", detail::format_shape(extents_));
    }
    return (*this)(indices...);
  }

  /// True when the elements are densely packed in row-major order (the layout of make_view(p, ...)).
  constexpr bool is_contiguous() const noexcept { return strides_ == row_major_strides(extents_); }

  /// The view with dimensions `a` and `b` exchanged (no data moves).
  constexpr tensor_view transposed(std::size_t a, std::size_t b) const noexcept {
    tensor_view result = *this;
    std::swap(result.extents_[a], result.extents_[b]);
    std::swap(result.strides_[a], result.strides_[b]);
    return result;
  }

  /// The view whose dimension k is this view's dimension order[k] (no data moves). `order` must be
  /// a permutation of 0..Rank-1; throws `ssmkit::error` otherwise.
  tensor_view permuted(const std::array<std::size_t, Rank>& order) const {
    std::array<bool, Rank> seen{};
    tensor_view result = *this;
    for (std::size_t k = 0; k < Rank; ++k) {
      detail::require(order[k] < Rank && !seen[order[k]], "tensor_view::permuted", "order ",
                      detail::format_shape(order), " is not a permutation of 0..", Rank - 1);
      seen[order[k]] = true;
      result.extents_[k] = extents_[order[k]];
      result.strides_[k] = strides_[order[k]];
    }
    return result;
  }

  /// The sub-view with the leading index fixed to `i` (rank - 1). Unchecked, like operator().
  template <std::size_t R = Rank, class = std::enable_if_t<(R > 1)>>
  constexpr tensor_view<T, Rank - 1> operator[](std::size_t i) const noexcept {
    std::array<std::size_t, Rank - 1> e{};
    std::array<std::ptrdiff_t, Rank - 1> s{};
    for (std::size_t d = 1; d < Rank; ++d) {
      e[d - 1] = extents_[d];
      s[d - 1] = strides_[d];
    }
    return {data_ + static_cast<std::ptrdiff_t>(i) * strides_[0], e, s};
  }

  /// The row-major strides of `extents`.
  static constexpr strides_type row_major_strides(const extents_type& extents) noexcept {
    strides_type s{};
    std::ptrdiff_t step = 1;
    for (std::size_t d = Rank; d-- > 0;) {
      s[d] = step;
      step *= static_cast<std::ptrdiff_t>(extents[d]);
    }
    return s;
  }

 private:
  T* data_ = nullptr;
  extents_type extents_{};
  strides_type strides_{};
};

/// `tensor_view<const T, Rank>`, spelled so that T is not deduced from this argument. Kernels take
/// inputs as `const_view<T, R>` and outputs as `tensor_view<T, R>`: T comes from the output, and a
/// mutable view passed as an input converts implicitly.
template <class T, std::size_t Rank>
using const_view = typename std::enable_if<true, tensor_view<const T, Rank>>::type;

template <class T>
using vector_view = tensor_view<T, 1>;
template <class T>
using matrix_view = tensor_view<T, 2>;

/// A row-major view of `data` with the given extents: `make_view(p, batch, dim, L)`.
template <class T, class... Extents>
constexpr tensor_view<T, sizeof...(Extents)> make_view(T* data, Extents... extents) noexcept {
  static_assert((std::is_integral_v<Extents> && ...), "make_view: extents must be integers");
  return {data, {static_cast<std::size_t>(extents)...}};
}

/// A row-major view of a std::vector's storage. Throws `ssmkit::error` unless the vector holds
/// exactly the product of the extents, so that the view can never reach past the buffer.
template <class T, class Alloc, class... Extents>
tensor_view<T, sizeof...(Extents)> make_view(std::vector<T, Alloc>& vector, Extents... extents) {
  const std::array<std::size_t, sizeof...(Extents)> shape{static_cast<std::size_t>(extents)...};
  std::size_t n = 1;
  for (const auto e : shape) n *= e;
  detail::require(vector.size() == n, "make_view", "vector of size ", vector.size(), " cannot be viewed with shape ",
                  detail::format_shape(shape), " (", n, " elements)");
  return {vector.data(), shape};
}

/// The const overload of make_view for std::vector.
template <class T, class Alloc, class... Extents>
tensor_view<const T, sizeof...(Extents)> make_view(const std::vector<T, Alloc>& vector, Extents... extents) {
  auto& mutable_vector = const_cast<std::vector<T, Alloc>&>(vector);
  return make_view(mutable_vector, extents...);
}

namespace detail {

/// The (rows, cols) view of a direct-access Eigen object, following its storage order and strides.
template <class Scalar, class Derived>
tensor_view<Scalar, 2> eigen_view(Scalar* data, const Derived& m) noexcept {
  const auto inner = static_cast<std::ptrdiff_t>(m.innerStride());
  const auto outer = static_cast<std::ptrdiff_t>(m.outerStride());
  const bool row_major = Derived::IsRowMajor;
  return {data,
          {static_cast<std::size_t>(m.rows()), static_cast<std::size_t>(m.cols())},
          {row_major ? outer : inner, row_major ? inner : outer}};
}

}  // namespace detail

/// A (rows, cols) view of an Eigen matrix, array, Map, Ref or block with direct access. The
/// view follows the object's storage order and strides: it indexes as `view(row, col)`.
/// A vector is viewed as (n, 1) or (1, n) like Eigen does; use `make_vector_view` for rank 1.
template <class Derived,
          class = std::enable_if_t<(Eigen::internal::traits<Derived>::Flags & Eigen::DirectAccessBit) != 0>>
auto make_view(Eigen::DenseBase<Derived>& object) noexcept {
  return detail::eigen_view(object.derived().data(), object.derived());
}

/// The const overload of make_view for Eigen objects.
template <class Derived,
          class = std::enable_if_t<(Eigen::internal::traits<Derived>::Flags & Eigen::DirectAccessBit) != 0>>
auto make_view(const Eigen::DenseBase<Derived>& object) noexcept {
  return detail::eigen_view(object.derived().data(), object.derived());  // data() is const here
}

/// A rank-1 view of an Eigen vector (or any direct-access expression with one row or column).
template <class Derived,
          class = std::enable_if_t<(Eigen::internal::traits<Derived>::Flags & Eigen::DirectAccessBit) != 0>>
auto make_vector_view(Eigen::DenseBase<Derived>& object) {
  auto& m = object.derived();
  detail::require(m.rows() == 1 || m.cols() == 1, "make_vector_view", "expected a vector, got shape (", m.rows(), ", ",
                  m.cols(), ")");
  using Scalar = std::remove_pointer_t<decltype(m.data())>;
  return tensor_view<Scalar, 1>(m.data(), {static_cast<std::size_t>(m.size())},
                                {static_cast<std::ptrdiff_t>(m.innerStride())});
}

namespace detail {

/// Throws unless `view` has exactly the `expected` extents:
/// "selective_scan: delta has shape (2, 64, 100), expected (2, 64, 128)".
template <class T, std::size_t Rank>
void check_shape(std::string_view function, std::string_view argument, const tensor_view<T, Rank>& view,
                 const std::array<std::size_t, Rank>& expected) {
  if (view.extents() != expected) {
    throw_error(function, argument, " has shape ", format_shape(view.extents()), ", expected ", format_shape(expected));
  }
}

/// Throws unless a non-empty view has data: a null pointer with a non-zero size is a caller bug
/// that would otherwise crash.
template <class T, std::size_t Rank>
void check_data(std::string_view function, std::string_view argument, const tensor_view<T, Rank>& view) {
  if (view.data() == nullptr && !view.empty()) {
    throw_error(function, argument, " is a null view of shape ", format_shape(view.extents()));
  }
}

/// The [lowest, highest] byte addresses a view can touch (as integers: comparing pointers into
/// different objects is undefined).
template <class T, std::size_t Rank>
std::array<std::uintptr_t, 2> address_range(const tensor_view<T, Rank>& view) noexcept {
  const auto base = reinterpret_cast<std::uintptr_t>(view.data());
  std::ptrdiff_t low = 0, high = 0;
  for (std::size_t d = 0; d < Rank; ++d) {
    const auto span = static_cast<std::ptrdiff_t>(view.extent(d) == 0 ? 0 : view.extent(d) - 1) * view.stride(d);
    (span < 0 ? low : high) += span;
  }
  const auto bytes = static_cast<std::ptrdiff_t>(sizeof(T));
  return {base + static_cast<std::uintptr_t>(low * bytes),
          base + static_cast<std::uintptr_t>(high * bytes + bytes - 1)};
}

/// True when two non-empty views may share memory (their address ranges intersect). Used to refuse
/// an output that aliases an input, where the kernel would read what it has already written.
template <class T, std::size_t R1, class U, std::size_t R2>
bool may_overlap(const tensor_view<T, R1>& a, const tensor_view<U, R2>& b) noexcept {
  if (a.empty() || b.empty()) return false;
  const auto ra = address_range(a);
  const auto rb = address_range(b);
  return !(ra[1] < rb[0] || rb[1] < ra[0]);
}

/// Throws unless `output` and `input` are disjoint.
template <class T, std::size_t R1, class U, std::size_t R2>
void check_no_overlap(std::string_view function, std::string_view output, const tensor_view<T, R1>& out_view,
                      std::string_view input, const tensor_view<U, R2>& in_view) {
  if (may_overlap(out_view, in_view)) throw_error(function, output, " overlaps ", input, " in memory");
}

}  // namespace detail
}  // namespace ssmkit
