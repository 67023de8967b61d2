// Compiled with -march=x86-64-v4 (AVX-512 F/CD/DQ/BW/VL): the explicit instantiations only (docs/dispatch.md).
#include "kernels_impl.hpp"

SSMKIT_DISPATCH_TEST_INSTANTIATE(, xsimd::avx512bw);
