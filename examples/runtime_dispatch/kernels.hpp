#pragma once
// Runtime dispatch, the xsimd way: one functor whose call operator is a template on the
// architecture, defined out of class (an in-class definition would be implicitly inline and
// bypass `extern template`), and instantiated once per ISA in its own translation unit that is
// compiled with that ISA's flags. This header is all the baseline translation unit sees: the
// `extern template` lines stop it from instantiating (and miscompiling) the ISA bodies itself.
//
// Rules that keep such a program correct (docs/dispatch.md explains each):
// - the per-ISA units hold only the explicit instantiation;
// - no Eigen object crosses a unit boundary (pass raw pointers), and every unit defines the same
//   EIGEN_MAX_ALIGN_BYTES / EIGEN_MAX_STATIC_ALIGN_BYTES (CMake does it for this target);
// - the baseline object is linked first, so shared inline functions come from baseline code.
#include <cstddef>

#include <ssmkit/backend.hpp>

struct silu_kernel {
  template <class Arch>
  void operator()(Arch, const float* x, float* y, std::size_t n) const;
};

// The list must be sorted from the best architecture to the baseline.
using dispatch_archs = xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse4_2>;

extern template void silu_kernel::operator()<xsimd::avx512bw>(xsimd::avx512bw, const float*, float*, std::size_t) const;
extern template void silu_kernel::operator()<xsimd::fma3<xsimd::avx2>>(xsimd::fma3<xsimd::avx2>, const float*, float*,
                                                                      std::size_t) const;
extern template void silu_kernel::operator()<xsimd::sse4_2>(xsimd::sse4_2, const float*, float*, std::size_t) const;
