#pragma once
/// \file detail/transpose.hpp
/// Register transposes of W x W blocks (W the SIMD width), shared by the selective scan's
/// channel-major gathers and the batched FFT's lane layout, and the prefetch hint they issue.
#include <cstddef>
#include <type_traits>

#include <ssmkit/detail/batch.hpp>

namespace ssmkit::detail {

/// A cache prefetch hint (for writing when `write`). The scan reads 3 or 4 streams per channel of
/// a block (u, delta, z, out): 64 concurrent streams are more than the hardware prefetchers follow,
/// so the gathers prefetch the same position of the next chunk (~4 µs of work ahead, far more than
/// the DRAM latency). Issued next to real loads: GCC deletes loops that only prefetch.
template <class T>
inline void prefetch(const T* p, bool write) noexcept {
#if defined(__GNUC__)
  if (write) {
    __builtin_prefetch(p, 1, 2);
  } else {
    __builtin_prefetch(p, 0, 2);
  }
#else
  (void)p, (void)write;
#endif
}

/// dst[j * dst_stride + i] = src[i * src_stride + j] for i, j < W: a W x W transposition, in
/// registers on AVX-512 (4 or 3 shuffle stages instead of W^2 scalar moves; the scalar moves cost
/// as much as the scan itself in channel-major layouts), element by element elsewhere.
template <class T, class Arch>
inline void transpose_block(const T* src, std::ptrdiff_t src_stride, T* dst, std::ptrdiff_t dst_stride,
                            std::ptrdiff_t src_ahead = 0, std::ptrdiff_t dst_ahead = 0) noexcept {
  constexpr std::size_t W = width_v<T, Arch>;
#if XSIMD_WITH_AVX512F
  if constexpr (!is_scalar_v<Arch> && std::is_base_of_v<xsimd::avx512f, Arch> && std::is_same_v<T, float>) {
    // u[4g + m], lane l = column 4l + m of rows 4g..4g+3; then two 128-bit lane shuffles.
    __m512 r[16], u[16];
    for (int i = 0; i < 16; ++i) {
      prefetch(src + i * src_stride + src_ahead, false);
      r[i] = _mm512_loadu_ps(src + i * src_stride);
    }
    for (int g = 0; g < 4; ++g) {
      const __m512 lo01 = _mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]), hi01 = _mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]);
      const __m512 lo23 = _mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
      const __m512 hi23 = _mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
      u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(lo01), _mm512_castps_pd(lo23)));
      u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(lo01), _mm512_castps_pd(lo23)));
      u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(hi01), _mm512_castps_pd(hi23)));
      u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(hi01), _mm512_castps_pd(hi23)));
    }
    for (int m = 0; m < 4; ++m) {
      for (int q = 0; q < 4; ++q) prefetch(dst + (4 * q + m) * dst_stride + dst_ahead, true);
      const __m512 x = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88), y = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xdd);
      const __m512 x2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
      const __m512 y2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xdd);
      _mm512_storeu_ps(dst + m * dst_stride, _mm512_shuffle_f32x4(x, x2, 0x88));
      _mm512_storeu_ps(dst + (4 + m) * dst_stride, _mm512_shuffle_f32x4(y, y2, 0x88));
      _mm512_storeu_ps(dst + (8 + m) * dst_stride, _mm512_shuffle_f32x4(x, x2, 0xdd));
      _mm512_storeu_ps(dst + (12 + m) * dst_stride, _mm512_shuffle_f32x4(y, y2, 0xdd));
    }
    return;
  } else if constexpr (!is_scalar_v<Arch> && std::is_base_of_v<xsimd::avx512f, Arch> && std::is_same_v<T, double>) {
    // t[2p + m], lane l = column 2l + m of rows 2p, 2p+1; then two 128-bit lane shuffles.
    __m512d r[8], t[8];
    for (int i = 0; i < 8; ++i) {
      prefetch(src + i * src_stride + src_ahead, false);
      r[i] = _mm512_loadu_pd(src + i * src_stride);
    }
    for (int q = 0; q < 4; ++q) {
      t[2 * q] = _mm512_unpacklo_pd(r[2 * q], r[2 * q + 1]);
      t[2 * q + 1] = _mm512_unpackhi_pd(r[2 * q], r[2 * q + 1]);
    }
    for (int m = 0; m < 2; ++m) {
      for (int q = 0; q < 4; ++q) prefetch(dst + (2 * q + m) * dst_stride + dst_ahead, true);
      const __m512d x = _mm512_shuffle_f64x2(t[m], t[2 + m], 0x88), y = _mm512_shuffle_f64x2(t[m], t[2 + m], 0xdd);
      const __m512d x2 = _mm512_shuffle_f64x2(t[4 + m], t[6 + m], 0x88);
      const __m512d y2 = _mm512_shuffle_f64x2(t[4 + m], t[6 + m], 0xdd);
      _mm512_storeu_pd(dst + m * dst_stride, _mm512_shuffle_f64x2(x, x2, 0x88));
      _mm512_storeu_pd(dst + (2 + m) * dst_stride, _mm512_shuffle_f64x2(y, y2, 0x88));
      _mm512_storeu_pd(dst + (4 + m) * dst_stride, _mm512_shuffle_f64x2(x, x2, 0xdd));
      _mm512_storeu_pd(dst + (6 + m) * dst_stride, _mm512_shuffle_f64x2(y, y2, 0xdd));
    }
    return;
  }
#endif
  (void)src_ahead, (void)dst_ahead;
  for (std::size_t i = 0; i < W; ++i)
    for (std::size_t j = 0; j < W; ++j)
      dst[static_cast<std::ptrdiff_t>(j) * dst_stride + static_cast<std::ptrdiff_t>(i)] =
          src[static_cast<std::ptrdiff_t>(i) * src_stride + static_cast<std::ptrdiff_t>(j)];
}

}  // namespace ssmkit::detail
