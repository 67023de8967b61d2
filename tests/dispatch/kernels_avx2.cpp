// Compiled with -march=x86-64-v3 (AVX2 + FMA): the explicit instantiations only (docs/dispatch.md).
#include "kernels_impl.hpp"

SSMKIT_DISPATCH_TEST_INSTANTIATE(, xsimd::fma3<xsimd::avx2>);
