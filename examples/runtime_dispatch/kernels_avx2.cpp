// Compiled with -march=x86-64-v3 (AVX2 + FMA).
#include "kernels_impl.hpp"

template void silu_kernel::operator()<xsimd::fma3<xsimd::avx2>>(xsimd::fma3<xsimd::avx2>, const float*, float*,
                                                               std::size_t) const;
