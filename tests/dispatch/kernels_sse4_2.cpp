// Compiled with -march=x86-64-v2 (SSE4.2): the explicit instantiations only (docs/dispatch.md).
#include "kernels_impl.hpp"

SSMKIT_DISPATCH_TEST_INSTANTIATE(, xsimd::sse4_2);
