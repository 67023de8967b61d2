#pragma once
/// \file detail/simd.hpp
/// The only file that includes xsimd. It hides the GCC 12 false-positive warnings inside xsimd and
/// GCC's AVX-512 intrinsics, and papers over the API differences between xsimd 8.1 (Debian 12)
/// and later versions:
///   - `hadd` became `reduce_add` in 9.0;
///   - before 11.0, `fma` on AVX-512 batches is a separate multiply and add (not fused), so the
///     AVX-512 path would round differently from AVX2 and from std::fma;
///   - the free `load_unaligned<Arch>` ignores Arch before 10.0: always use the static
///     `batch<T, Arch>::load_unaligned`.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <type_traits>

namespace ssmkit::detail {

/// Sum of the lanes of a batch.
template <class T, class A>
inline T reduce_add(const xsimd::batch<T, A>& x) noexcept {
#if XSIMD_VERSION_MAJOR < 9
  return xsimd::hadd(x);
#else
  return xsimd::reduce_add(x);
#endif
}

/// x * y + z, with one rounding wherever the ISA has FMA (fused on AVX-512 also with xsimd < 11);
/// on ISAs without it (SSE, x86-64-v2) xsimd rounds the product and the sum separately.
template <class T, class A>
inline xsimd::batch<T, A> fma(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& y,
                              const xsimd::batch<T, A>& z) noexcept {
#if XSIMD_VERSION_MAJOR < 11 && XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) {
    if constexpr (std::is_same_v<T, float>) {
      return _mm512_fmadd_ps(x, y, z);
    } else if constexpr (std::is_same_v<T, double>) {
      return _mm512_fmadd_pd(x, y, z);
    }
  }
#endif
  return xsimd::fma(x, y, z);
}

}  // namespace ssmkit::detail
