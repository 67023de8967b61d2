// Compiled with -march=x86-64-v4 (AVX-512 F/CD/DQ/BW/VL).
#include "kernels_impl.hpp"

template void silu_kernel::operator()<xsimd::avx512bw>(xsimd::avx512bw, const float*, float*, std::size_t) const;
