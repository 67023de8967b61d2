# Settings for ssmkit's own tests, benchmarks and examples. Nothing here reaches a consumer.

# ssmkit_project_options: warnings, OpenMP and ISA flags for one of our own targets.
add_library(ssmkit_project_options INTERFACE)
target_link_libraries(ssmkit_project_options INTERFACE ssmkit::ssmkit)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(ssmkit_project_options INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # GCC 12 false positives in its own AVX-512 intrinsics, reached through xsimd (see
    # detail/simd.hpp) and through Eigen's AVX-512 ptranspose (Eigen's headers come first in many
    # units, so a pragma wrap cannot reach them). clang's -Wuninitialized still guards our code in CI.
    target_compile_options(ssmkit_project_options INTERFACE -Wno-maybe-uninitialized -Wno-uninitialized)
  endif()
  if(SSMKIT_WARNINGS_AS_ERRORS)
    target_compile_options(ssmkit_project_options INTERFACE -Werror)
  endif()
endif()
if(SSMKIT_OPENMP AND TARGET OpenMP::OpenMP_CXX)
  target_link_libraries(ssmkit_project_options INTERFACE OpenMP::OpenMP_CXX)
  # All threads come from parallel_for. Eigen would otherwise open its own OpenMP team inside every
  # GEMM, nested in ours, and ignore the thread count the caller asked for.
  target_compile_definitions(ssmkit_project_options INTERFACE SSMKIT_OPENMP=1 EIGEN_DONT_PARALLELIZE)
endif()

# ssmkit_native_arch: the ISA of our own tests, benchmarks and examples. "native" is right on the
# machine that builds and runs them; set SSMKIT_ARCH_FLAGS to "" for a portable baseline build.
# The runtime-dispatch example does not link it: it sets its ISA per translation unit.
set(SSMKIT_ARCH_FLAGS "-march=native" CACHE STRING "ISA flags for ssmkit's own tests, benches and examples")
add_library(ssmkit_native_arch INTERFACE)
if(SSMKIT_ARCH_FLAGS)
  separate_arguments(_ssmkit_arch_flags UNIX_COMMAND "${SSMKIT_ARCH_FLAGS}")
  target_compile_options(ssmkit_native_arch INTERFACE ${_ssmkit_arch_flags})
endif()
