#pragma once
// The kernels that test_runtime_dispatch runs through xsimd::dispatch, as in
// examples/runtime_dispatch/ (docs/dispatch.md): one functor per kernel whose call operator is a
// template on the architecture, defined out of class in kernels_impl.hpp (an in-class definition
// would be implicitly inline and bypass `extern template`), explicitly instantiated once per ISA
// in kernels_<isa>.cpp, each compiled with that ISA's -march. This header is all that the other
// units see of the ISA bodies: the `extern template` lines stop them from instantiating them.
//
// Arguments cross the unit boundary as plain structs of raw pointers and sizes, never as Eigen
// objects (Eigen's alignment follows each unit's ISA unless EIGEN_MAX_ALIGN_BYTES is pinned, which
// CMake does for this target). Every kernel runs on one thread: the test is about the ISA.
#include <complex>
#include <cstddef>

#include <ssmkit/backend.hpp>

namespace dispatch_test {

/// y = silu(x), n elements.
struct silu_args {
  const float* x;
  float* y;
  std::size_t n;
};

/// causal_conv1d, width 4 with SiLU, token-major: x, y (batch, length, channels), weight
/// (channels, 4), bias (channels).
struct conv1d_args {
  static constexpr std::size_t width = 4;
  const float* x;
  const float* weight;
  const float* bias;
  float* y;
  std::size_t batch, length, channels;
};

/// Causal fft_conv with one kernel channel, forced onto the FFT path: u (batch, length, channels),
/// k (channels, kernel_length), D (channels), y (batch, length, channels).
struct fft_conv_args {
  const float* u;
  const float* k;
  const float* D;
  float* y;
  std::size_t batch, length, channels, kernel_length;
};

/// selective_scan, channel-major: u, delta, z, out (batch, dim, length), A (dim, nstate), variable
/// B and C (batch, nstate, length), D and delta_bias (dim), delta_softplus; last_state
/// (batch, dim, nstate) receives h_{L-1}.
struct scan_args {
  const float* u;
  const float* delta;
  const float* A;
  const float* B;
  const float* C;
  const float* D;
  const float* z;
  const float* delta_bias;
  float* out;
  float* last_state;
  std::size_t batch, dim, length, nstate;
};

/// selective_state_update with heads: state (batch, heads, head_dim, nstate) updated in place,
/// x, dt, z, out (batch, heads, head_dim), A (heads, head_dim, nstate), B and C
/// (batch, groups, nstate), D and dt_bias (heads, head_dim), dt_softplus.
struct state_update_args {
  float* state;
  const float* x;
  const float* dt;
  const float* A;
  const float* B;
  const float* C;
  const float* D;
  const float* z;
  const float* dt_bias;
  float* out;
  std::size_t batch, heads, head_dim, nstate, groups;
};

/// ssd_scan, token-major: x, z, out (batch, length, heads, head_dim), dt (batch, length, heads),
/// A and dt_bias (heads), B and C (batch, length, groups, nstate), D (heads, head_dim),
/// dt_softplus; final_states (batch, heads, head_dim, nstate). `chunked` picks the algorithm
/// (chunked with chunks of chunk_size tokens, or recurrent).
struct ssd_args {
  const float* x;
  const float* dt;
  const float* A;
  const float* B;
  const float* C;
  const float* D;
  const float* z;
  const float* dt_bias;
  float* out;
  float* final_states;
  std::size_t batch, length, heads, head_dim, groups, nstate, chunk_size;
  bool chunked;
};

/// s4d_kernel (ZOH, the SIMD Vandermonde path): dt (H, 1) tied, A and B (H, N2), C (channels, H, N2),
/// K (channels, H, L).
struct s4d_args {
  const float* dt;
  const std::complex<float>* A;
  const std::complex<float>* B;
  const std::complex<float>* C;
  float* K;
  std::size_t channels, H, N2, L;
};

struct silu_op {
  template <class Arch>
  void operator()(Arch, const silu_args& a) const;
};
struct conv1d_op {
  template <class Arch>
  void operator()(Arch, const conv1d_args& a) const;
};
struct fft_conv_op {
  template <class Arch>
  void operator()(Arch, const fft_conv_args& a) const;
};
struct scan_op {
  template <class Arch>
  void operator()(Arch, const scan_args& a) const;
};
struct state_update_op {
  template <class Arch>
  void operator()(Arch, const state_update_args& a) const;
};
struct ssd_op {
  template <class Arch>
  void operator()(Arch, const ssd_args& a) const;
};
struct s4d_op {
  template <class Arch>
  void operator()(Arch, const s4d_args& a) const;
};

// The list must be sorted from the best architecture to the baseline.
using dispatch_archs = xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse4_2>;

}  // namespace dispatch_test

// One explicit instantiation (or, with `extern`, its declaration) of every functor for ARCH.
// kernels_<isa>.cpp expand it with an empty first argument, this header with `extern`.
#define SSMKIT_DISPATCH_TEST_INSTANTIATE(EXTERN, ARCH)                                                                 \
  EXTERN template void dispatch_test::silu_op::operator()<ARCH>(ARCH, const dispatch_test::silu_args&) const;          \
  EXTERN template void dispatch_test::conv1d_op::operator()<ARCH>(ARCH, const dispatch_test::conv1d_args&) const;      \
  EXTERN template void dispatch_test::fft_conv_op::operator()<ARCH>(ARCH, const dispatch_test::fft_conv_args&) const;  \
  EXTERN template void dispatch_test::scan_op::operator()<ARCH>(ARCH, const dispatch_test::scan_args&) const;          \
  EXTERN template void dispatch_test::state_update_op::operator()<ARCH>(ARCH, const dispatch_test::state_update_args&) \
      const;                                                                                                           \
  EXTERN template void dispatch_test::ssd_op::operator()<ARCH>(ARCH, const dispatch_test::ssd_args&) const;            \
  EXTERN template void dispatch_test::s4d_op::operator()<ARCH>(ARCH, const dispatch_test::s4d_args&) const

SSMKIT_DISPATCH_TEST_INSTANTIATE(extern, xsimd::avx512bw);
SSMKIT_DISPATCH_TEST_INSTANTIATE(extern, xsimd::fma3<xsimd::avx2>);
SSMKIT_DISPATCH_TEST_INSTANTIATE(extern, xsimd::sse4_2);
