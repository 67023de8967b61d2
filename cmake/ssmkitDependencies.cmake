# Dependencies: find_package first (the Debian packages), FetchContent otherwise.
#
# - FIND_PACKAGE_ARGS without a version: Eigen, xsimd and Catch2 ship SameMajorVersion files that
#   reject cross-major ranges (Eigen master calls itself 5.x, xsimd is at 14.x, Catch2 at 3.x), so
#   we request no version and check <Pkg>_VERSION ourselves below.
# - SYSTEM comes before the source arguments (after URL it would be swallowed into the URL list),
#   so fetched headers are -isystem and cannot break our -Werror builds.
# - Fetched sources are pinned by tag; a machine without network must have the packages.
include(FetchContent)

FetchContent_Declare(Eigen3 SYSTEM
  GIT_REPOSITORY https://gitlab.com/libeigen/eigen.git
  GIT_TAG 3.4.0
  GIT_SHALLOW TRUE
  SOURCE_SUBDIR _ssmkit_no_cmake_  # headers only: Eigen's own CMake never runs
  FIND_PACKAGE_ARGS NO_MODULE)
FetchContent_Declare(xsimd SYSTEM
  GIT_REPOSITORY https://github.com/xtensor-stack/xsimd.git
  GIT_TAG 13.2.0
  GIT_SHALLOW TRUE
  FIND_PACKAGE_ARGS)
FetchContent_MakeAvailable(Eigen3 xsimd)

if(NOT TARGET Eigen3::Eigen)
  # Fetched through the SOURCE_SUBDIR trick: synthesise the target Eigen's config would define.
  add_library(Eigen3::Eigen INTERFACE IMPORTED)
  set_target_properties(Eigen3::Eigen PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${eigen3_SOURCE_DIR}"
    INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${eigen3_SOURCE_DIR}")
endif()
if(Eigen3_VERSION AND Eigen3_VERSION VERSION_LESS 3.4)
  message(FATAL_ERROR "ssmkit needs Eigen >= 3.4 (found ${Eigen3_VERSION})")
endif()
if(xsimd_VERSION AND xsimd_VERSION VERSION_LESS 8.1)
  message(FATAL_ERROR "ssmkit needs xsimd >= 8.1 (found ${xsimd_VERSION})")
endif()
include(ssmkitXsimdWorkaround)

if(SSMKIT_BUILD_TESTS)
  FetchContent_Declare(Catch2 SYSTEM
    GIT_REPOSITORY https://github.com/catchorg/Catch2.git
    GIT_TAG v3.7.1
    GIT_SHALLOW TRUE
    FIND_PACKAGE_ARGS)  # accepts Debian's v2 or any v3
  FetchContent_MakeAvailable(Catch2)
  if(DEFINED catch2_SOURCE_DIR)  # a fetched v3 keeps Catch.cmake in extras/
    list(APPEND CMAKE_MODULE_PATH "${catch2_SOURCE_DIR}/extras")
  endif()
endif()

if(SSMKIT_BUILD_BENCHMARKS)
  set(BENCHMARK_ENABLE_TESTING OFF CACHE BOOL "" FORCE)
  set(BENCHMARK_ENABLE_GTEST_TESTS OFF CACHE BOOL "" FORCE)
  FetchContent_Declare(benchmark SYSTEM
    GIT_REPOSITORY https://github.com/google/benchmark.git
    GIT_TAG v1.9.1
    GIT_SHALLOW TRUE
    FIND_PACKAGE_ARGS 1.7)
  FetchContent_MakeAvailable(benchmark)
endif()

if(SSMKIT_OPENMP AND (SSMKIT_BUILD_TESTS OR SSMKIT_BUILD_BENCHMARKS OR SSMKIT_BUILD_EXAMPLES OR SSMKIT_BUILD_GOLDEN))
  find_package(OpenMP COMPONENTS CXX)
endif()
