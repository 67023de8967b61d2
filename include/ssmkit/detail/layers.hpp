#pragma once
/// \file detail/layers.hpp
/// The dense pieces the Mamba blocks share: row-major Eigen types, `linear_rows` (a bias-free
/// nn.Linear over row blocks split by parallel_for) and `rms_norm_rows` (RMSNorm, optionally gated
/// and in groups, as mamba's RMSNorm and RMSNormGated).

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <Eigen/Core>

#include <ssmkit/detail/math.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>

namespace ssmkit {

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using column_vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

namespace detail {

/// out (rows, n) = in (rows, k) · weightᵀ for row-major buffers with leading dimensions in_ld and
/// out_ld (PyTorch's Linear without bias: weight is (n, k)). Rows are split into blocks of 64 over
/// parallel_for; each block is one Eigen GEMM (a GEMV for one row).
template <class T>
void linear_rows(const T* in, std::size_t in_ld, const row_matrix<T>& weight, T* out, std::size_t out_ld,
                 std::size_t rows, const parallel_options& parallel) {
  using map_in = Eigen::Map<const row_matrix<T>, 0, Eigen::OuterStride<>>;
  using map_out = Eigen::Map<row_matrix<T>, 0, Eigen::OuterStride<>>;
  const auto k = static_cast<Eigen::Index>(weight.cols()), n = static_cast<Eigen::Index>(weight.rows());
  constexpr std::size_t block = 64;
  parallel_for(
      std::size_t{0}, (rows + block - 1) / block,
      [&](std::size_t task) {
        const std::size_t r0 = task * block, count = std::min(block, rows - r0);
        map_in a(in + r0 * in_ld, static_cast<Eigen::Index>(count), k,
                 Eigen::OuterStride<>(static_cast<Eigen::Index>(in_ld)));
        map_out c(out + r0 * out_ld, static_cast<Eigen::Index>(count), n,
                  Eigen::OuterStride<>(static_cast<Eigen::Index>(out_ld)));
        c.noalias() = a * weight.transpose();
      },
      parallel);
}

/// Throws "<function>: <what> has shape (r, c), expected (rows, cols)" unless matrix m is rows x cols.
template <class M>
void check_weight(const char* function, const char* what, const M& m, std::size_t rows, std::size_t cols) {
  if (static_cast<std::size_t>(m.rows()) != rows || static_cast<std::size_t>(m.cols()) != cols) {
    throw_error(function, what, " has shape (", m.rows(), ", ", m.cols(), "), expected (", rows, ", ", cols, ")");
  }
}

/// For each of `rows` rows of `width` values (rows `ld` apart): v = x · silu(z) when z is given
/// (gate before the norm, mamba's RMSNormGated with norm_before_gate=False), then every group of
/// `group` values is scaled by 1/sqrt(mean(v²) + 1e-5) and multiplied by weight. The mean is
/// accumulated in double. y may be x.
template <class T>
void rms_norm_rows(const T* x, const T* z, const T* weight, T* y, std::size_t rows, std::size_t width, std::size_t ld,
                   const parallel_options& parallel, std::size_t group = 0, std::size_t z_ld = 0) {
  if (group == 0) group = width;
  parallel_for(
      std::size_t{0}, rows,
      [&](std::size_t row) {
        const T* xr = x + row * ld;
        T* yr = y + row * ld;
        for (std::size_t g0 = 0; g0 < width; g0 += group) {
          double sum = 0;
          for (std::size_t j = g0; j < g0 + group; ++j) {
            const T v = z ? xr[j] * detail::silu(z[row * z_ld + j]) : xr[j];
            sum += double(v) * double(v);
          }
          const T scale = static_cast<T>(1 / std::sqrt(sum / double(group) + 1e-5));
          for (std::size_t j = g0; j < g0 + group; ++j) {
            const T v = z ? xr[j] * detail::silu(z[row * z_ld + j]) : xr[j];
            yr[j] = v * scale * weight[j];
          }
        }
      },
      parallel);
}

}  // namespace detail
}  // namespace ssmkit
