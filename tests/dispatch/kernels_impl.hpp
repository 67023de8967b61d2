#pragma once
// The functors' bodies: included by the per-ISA units (explicit instantiations) and by main.cpp,
// which instantiates them only for ssmkit::scalar, the reference (the `extern template` lines of
// kernels.hpp keep it from instantiating the ISA versions). Only float, and only the overloads
// called here, to keep the four instantiations cheap to compile.
#include <ssmkit/activation.hpp>
#include <ssmkit/conv1d.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/s4d.hpp>
#include <ssmkit/selective_scan.hpp>
#include <ssmkit/ssd.hpp>
#include <ssmkit/view.hpp>

#include "kernels.hpp"

namespace dispatch_test {

inline constexpr ssmkit::parallel_options one_thread{1, 1};

template <class Arch>
void silu_op::operator()(Arch, const silu_args& a) const {
  ssmkit::silu<float, Arch>(ssmkit::make_view(a.x, a.n), ssmkit::make_view(a.y, a.n), one_thread);
}

template <class Arch>
void conv1d_op::operator()(Arch, const conv1d_args& a) const {
  ssmkit::conv1d_options<float> options;
  options.silu = true;
  options.parallel = one_thread;
  ssmkit::causal_conv1d<float, Arch>(ssmkit::make_view(a.x, a.batch, a.length, a.channels),
                                     ssmkit::make_view(a.weight, a.channels, conv1d_args::width),
                                     ssmkit::make_view(a.bias, a.channels),
                                     ssmkit::make_view(a.y, a.batch, a.length, a.channels), options);
}

template <class Arch>
void fft_conv_op::operator()(Arch, const fft_conv_args& a) const {
  // The one-shot form builds an fft_conv_plan<float, Arch> for this kernel; `fft` keeps the cost
  // model from choosing the direct sum, so the transforms themselves run on Arch.
  ssmkit::fft_conv_options options;
  options.method = ssmkit::fft_conv_method::fft;
  ssmkit::fft_conv<float, Arch>(ssmkit::make_view(a.u, a.batch, a.length, a.channels),
                                ssmkit::make_view(a.k, 1, a.channels, a.kernel_length),
                                ssmkit::make_view(a.D, 1, a.channels),
                                ssmkit::make_view(a.y, a.batch, a.length, a.channels), options, one_thread);
}

template <class Arch>
void scan_op::operator()(Arch, const scan_args& a) const {
  ssmkit::selective_scan_options<float> options;
  options.D = ssmkit::make_view(a.D, a.dim);
  options.z = ssmkit::make_view(a.z, a.batch, a.dim, a.length);
  options.delta_bias = ssmkit::make_view(a.delta_bias, a.dim);
  options.delta_softplus = true;
  options.last_state = ssmkit::make_view(a.last_state, a.batch, a.dim, a.nstate);
  options.parallel = one_thread;
  const ssmkit::tensor_view<const float, 3> B = ssmkit::make_view(a.B, a.batch, a.nstate, a.length);
  const ssmkit::tensor_view<const float, 3> C = ssmkit::make_view(a.C, a.batch, a.nstate, a.length);
  ssmkit::selective_scan<float, Arch>(
      ssmkit::make_view(a.u, a.batch, a.dim, a.length), ssmkit::make_view(a.delta, a.batch, a.dim, a.length),
      ssmkit::make_view(a.A, a.dim, a.nstate), B, C, ssmkit::make_view(a.out, a.batch, a.dim, a.length), options);
}

template <class Arch>
void state_update_op::operator()(Arch, const state_update_args& a) const {
  ssmkit::selective_state_update_options<float, 4> options;
  options.D = ssmkit::make_view(a.D, a.heads, a.head_dim);
  options.z = ssmkit::make_view(a.z, a.batch, a.heads, a.head_dim);
  options.dt_bias = ssmkit::make_view(a.dt_bias, a.heads, a.head_dim);
  options.dt_softplus = true;
  options.parallel = one_thread;
  ssmkit::selective_state_update<float, Arch>(
      ssmkit::make_view(a.state, a.batch, a.heads, a.head_dim, a.nstate),
      ssmkit::make_view(a.x, a.batch, a.heads, a.head_dim), ssmkit::make_view(a.dt, a.batch, a.heads, a.head_dim),
      ssmkit::make_view(a.A, a.heads, a.head_dim, a.nstate), ssmkit::make_view(a.B, a.batch, a.groups, a.nstate),
      ssmkit::make_view(a.C, a.batch, a.groups, a.nstate), ssmkit::make_view(a.out, a.batch, a.heads, a.head_dim),
      options);
}

template <class Arch>
void ssd_op::operator()(Arch, const ssd_args& a) const {
  ssmkit::ssd_options<float> options;
  options.D = ssmkit::make_view(a.D, a.heads, a.head_dim);
  options.z = ssmkit::make_view(a.z, a.batch, a.length, a.heads, a.head_dim);
  options.dt_bias = ssmkit::make_view(a.dt_bias, a.heads);
  options.dt_softplus = true;
  options.final_states = ssmkit::make_view(a.final_states, a.batch, a.heads, a.head_dim, a.nstate);
  options.algorithm = a.chunked ? ssmkit::ssd_algorithm::chunked : ssmkit::ssd_algorithm::recurrent;
  options.chunk_size = a.chunk_size;
  ssmkit::ssd_scan<float, Arch>(ssmkit::make_view(a.x, a.batch, a.length, a.heads, a.head_dim),
                                ssmkit::make_view(a.dt, a.batch, a.length, a.heads), ssmkit::make_view(a.A, a.heads),
                                ssmkit::make_view(a.B, a.batch, a.length, a.groups, a.nstate),
                                ssmkit::make_view(a.C, a.batch, a.length, a.groups, a.nstate),
                                ssmkit::make_view(a.out, a.batch, a.length, a.heads, a.head_dim), options, one_thread);
}

template <class Arch>
void s4d_op::operator()(Arch, const s4d_args& a) const {
  ssmkit::s4d_kernel_options options;
  options.parallel = one_thread;
  ssmkit::s4d_kernel<float, Arch>(ssmkit::make_view(a.dt, a.H, 1), ssmkit::make_view(a.A, a.H, a.N2),
                                  ssmkit::make_view(a.B, a.H, a.N2), ssmkit::make_view(a.C, a.channels, a.H, a.N2),
                                  ssmkit::make_view(a.K, a.channels, a.H, a.L), options);
}

}  // namespace dispatch_test
