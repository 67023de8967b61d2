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
