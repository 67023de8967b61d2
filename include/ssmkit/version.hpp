#pragma once
/// \file version.hpp
/// The library version. CMake reads these three lines; they are the single source of truth.

#define SSMKIT_VERSION_MAJOR 0
#define SSMKIT_VERSION_MINOR 1
#define SSMKIT_VERSION_PATCH 0

/// MAJOR * 10000 + MINOR * 100 + PATCH, for `#if SSMKIT_VERSION >= 100` style checks.
#define SSMKIT_VERSION (SSMKIT_VERSION_MAJOR * 10000 + SSMKIT_VERSION_MINOR * 100 + SSMKIT_VERSION_PATCH)
