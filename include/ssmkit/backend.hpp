#pragma once
/// \file backend.hpp
/// Backends: every kernel is `template <class T, class Arch = ssmkit::default_arch>`, where Arch is
///   - `ssmkit::scalar`: plain C++ code, one element at a time (the same kernel body, run with a
///     width-1 batch), or
///   - any xsimd architecture tag, for example `xsimd::sse4_2`, `xsimd::fma3<xsimd::avx2>` or
///     `xsimd::avx512bw`. The translation unit must be compiled with flags that enable it.
///
/// `ssmkit::default_arch` is the best architecture the translation unit's flags enable
/// (`xsimd::default_arch`), or `scalar` when SSMKIT_FORCE_SCALAR=1 or xsimd has none.
/// For runtime dispatch over several ISAs in one program, see examples/runtime_dispatch and the
/// README section "Runtime dispatch".

#include <type_traits>
#include <vector>

#include <ssmkit/config.hpp>
#include <ssmkit/detail/simd.hpp>

namespace ssmkit {

/// The scalar backend tag.
struct scalar {
  static constexpr const char* name() noexcept { return "scalar"; }
  static constexpr bool supported() noexcept { return true; }
  static constexpr bool available() noexcept { return true; }
};

/// A std::vector whose storage starts on a 64-byte cache line (a large plain std::vector starts
/// 16 bytes past one, after glibc's chunk header). The mixers keep their recurrent states in one:
/// a decode step reads and writes every state row, and rows split over two lines made the SSD
/// step 1.15x slower.
template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, 64>>;

/// True for the scalar backend.
template <class Arch>
inline constexpr bool is_scalar_v = std::is_same_v<Arch, scalar>;

#if SSMKIT_FORCE_SCALAR
using default_arch = scalar;
#else
using default_arch = std::conditional_t<xsimd::default_arch::supported(), xsimd::default_arch, scalar>;
#endif

/// The backend's name: "scalar", "sse4.2", "avx2", "avx512bw", ...
template <class Arch>
constexpr const char* backend_name() noexcept {
  return Arch::name();
}

/// True when this CPU can run code compiled for `Arch`. Always true for `scalar`. Note that xsimd
/// before 13 reads the CPUID feature bits only, not whether the OS enabled the register state.
template <class Arch>
bool backend_available() noexcept {
  if constexpr (is_scalar_v<Arch>) {
    return true;
  } else {
    return xsimd::available_architectures().best >= Arch::version();
  }
}

}  // namespace ssmkit
