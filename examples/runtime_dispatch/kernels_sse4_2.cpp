// Compiled with -march=x86-64-v2 (SSE4.2).
#include "kernels_impl.hpp"

template void silu_kernel::operator()<xsimd::sse4_2>(xsimd::sse4_2, const float*, float*, std::size_t) const;
