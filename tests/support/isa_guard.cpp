// Linked into the per-ISA test executables and compiled for the baseline: before any other static
// initialiser (init_priority 101) it checks that this CPU can run the ISA the executable was built
// for (SSMKIT_REQUIRED_ISA: 2, 3 or 4 for x86-64-v2/v3/v4), and otherwise exits with 77, which
// ctest reports as skipped (SKIP_RETURN_CODE).
#include <cstdio>
#include <cstdlib>

#include <ssmkit/backend.hpp>

namespace {

bool cpu_supports_required_isa() {
#if SSMKIT_REQUIRED_ISA >= 4
  return ssmkit::backend_available<xsimd::avx512bw>();
#elif SSMKIT_REQUIRED_ISA >= 3
  return ssmkit::backend_available<xsimd::fma3<xsimd::avx2>>();
#elif SSMKIT_REQUIRED_ISA >= 2
  return ssmkit::backend_available<xsimd::sse4_2>();
#else
  return true;
#endif
}

struct isa_guard {
  isa_guard() {
    if (!cpu_supports_required_isa()) {
      std::printf("this CPU lacks x86-64-v%d: skipped\n", SSMKIT_REQUIRED_ISA);
      std::_Exit(77);
    }
  }
};

__attribute__((init_priority(101))) const isa_guard guard;

}  // namespace
