#pragma once
// The functor's body, included only by the per-ISA translation units.
#include <ssmkit/activation.hpp>

#include "kernels.hpp"

template <class Arch>
void silu_kernel::operator()(Arch, const float* x, float* y, std::size_t n) const {
  // One thread: the caller decides about threads, the dispatcher only about the ISA.
  ssmkit::silu<float, Arch>(ssmkit::make_view(x, n), ssmkit::make_view(y, n), {1});
}
