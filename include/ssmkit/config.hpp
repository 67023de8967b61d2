#pragma once
/// \file config.hpp
/// The few configuration macros of ssmkit, each with its default. Define them before the first
/// ssmkit include (or on the command line); every translation unit of a program must agree.

/// SSMKIT_FORCE_SCALAR=1 makes `ssmkit::default_arch` the scalar backend, whatever the ISA flags.
#ifndef SSMKIT_FORCE_SCALAR
#define SSMKIT_FORCE_SCALAR 0
#endif

/// SSMKIT_OPENMP=1 lets `ssmkit::parallel_for` use OpenMP, when the translation unit is also
/// compiled with OpenMP (`-fopenmp`, or CMake's OpenMP::OpenMP_CXX). Otherwise it runs serially.
#ifndef SSMKIT_OPENMP
#define SSMKIT_OPENMP 0
#endif

#if SSMKIT_OPENMP && defined(_OPENMP)
#define SSMKIT_HAS_OPENMP 1
#else
#define SSMKIT_HAS_OPENMP 0
#endif

/// Marks the few inner-loop helpers that must be inlined whatever the optimisation level: at -O2
/// GCC keeps a large `inline` function out of line when it has several callers, and a helper that
/// takes an array of registers then passes them through memory (the decode step ran 1.3x slower).
#if defined(__GNUC__) || defined(__clang__)
#define SSMKIT_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define SSMKIT_ALWAYS_INLINE __forceinline
#else
#define SSMKIT_ALWAYS_INLINE inline
#endif
