// Golden handlers for Mamba: selective_scan, selective_state_update, selective_state_update_sequence.
// Each runs the case through ssmkit's public API (selective_scan.hpp) in the requested precision.
#include <array>
#include <complex>
#include <cstddef>
#include <string>
#include <vector>

#include <ssmkit/selective_scan.hpp>

#include "golden_runner.hpp"

namespace ssmkit_golden {
namespace {

using ssmkit::golden::array;
using ssmkit::golden::golden_case;

template <std::size_t R>
std::array<std::size_t, R> extents_of(const array& a, const std::string& name) {
  if (a.shape.size() != R) {
    throw ssmkit::error("golden case: " + name + " has rank " + std::to_string(a.shape.size()) + ", expected " +
                        std::to_string(R));
  }
  std::array<std::size_t, R> e{};
  for (std::size_t i = 0; i < R; ++i) e[i] = a.shape[i];
  return e;
}

template <class T>
output as_output(const std::string& name, const std::vector<T>& values) {
  return {name, std::vector<double>(values.begin(), values.end())};
}

/// The inputs of a selective_scan case converted to T, kept alive while views point into them.
template <class T>
struct scan_inputs {
  std::vector<T> u, delta, A, B, C, D, z, delta_bias;
  std::size_t batch = 0, dim = 0, length = 0, nstate = 0;
  std::vector<std::size_t> b_shape, c_shape;
  bool softplus = false;
  bool complex_a = false;  ///< A (and fixed B/C, last_state) complex: values interleaved (re, im)

  explicit scan_inputs(const golden_case& c) {
    complex_a = c.input("A").is_complex();
    const auto ue = extents_of<3>(c.input("u"), "u");
    batch = ue[0];
    dim = ue[1];
    length = ue[2];
    nstate = extents_of<2>(c.input("A"), "A")[1];
    u = values_as<T>(c.input("u"));
    delta = values_as<T>(c.input("delta"));
    A = values_as<T>(c.input("A"));
    B = values_as<T>(c.input("B"));
    C = values_as<T>(c.input("C"));
    b_shape = c.input("B").shape;
    c_shape = c.input("C").shape;
    if (c.has_input("D")) D = values_as<T>(c.input("D"));
    if (c.has_input("z")) z = values_as<T>(c.input("z"));
    if (c.has_input("delta_bias")) delta_bias = values_as<T>(c.input("delta_bias"));
    softplus = c.param_bool("delta_softplus", false);
  }

  static ssmkit::bc_view<T> bc(const std::vector<T>& v, const std::vector<std::size_t>& s) {
    switch (s.size()) {
      case 2: return ssmkit::make_view(v.data(), s[0], s[1]);
      case 3: return ssmkit::make_view(v.data(), s[0], s[1], s[2]);
      case 4: return ssmkit::make_view(v.data(), s[0], s[1], s[2], s[3]);
      default: throw ssmkit::error("golden case: B/C must have rank 2, 3 or 4");
    }
  }

  /// A complex fixed (D, N) B/C, or a real variable/grouped one with the 2L interleaved axis.
  static ssmkit::complex_bc_view<T> complex_bc(const std::vector<T>& v, const std::vector<std::size_t>& s) {
    switch (s.size()) {
      case 2: return ssmkit::make_view(reinterpret_cast<const std::complex<T>*>(v.data()), s[0], s[1]);
      case 3: return ssmkit::make_view(v.data(), s[0], s[1], s[2]);
      case 4: return ssmkit::make_view(v.data(), s[0], s[1], s[2], s[3]);
      default: throw ssmkit::error("golden case: B/C must have rank 2, 3 or 4");
    }
  }

  /// The complex-A scan; last is (batch, dim, N) complex, interleaved (re, im) like the case.
  void scan_complex(std::vector<T>& out, std::vector<T>& last) const {
    out.assign(batch * dim * length, T(0));
    last.assign(2 * batch * dim * nstate, T(0));
    ssmkit::selective_scan_complex_options<T> o;
    if (!D.empty()) o.D = ssmkit::make_view(D.data(), dim);
    if (!z.empty()) o.z = ssmkit::make_view(z.data(), batch, dim, length);
    if (!delta_bias.empty()) o.delta_bias = ssmkit::make_view(delta_bias.data(), dim);
    o.delta_softplus = softplus;
    o.last_state = ssmkit::make_view(reinterpret_cast<std::complex<T>*>(last.data()), batch, dim, nstate);
    ssmkit::selective_scan(ssmkit::make_view(u.data(), batch, dim, length),
                           ssmkit::make_view(delta.data(), batch, dim, length),
                           ssmkit::make_view(reinterpret_cast<const std::complex<T>*>(A.data()), dim, nstate),
                           complex_bc(B, b_shape), complex_bc(C, c_shape),
                           ssmkit::make_view(out.data(), batch, dim, length), o);
  }

  /// Runs selective_scan; fills out (batch, dim, L) and last (batch, dim, N).
  void scan(std::vector<T>& out, std::vector<T>& last) const {
    if (complex_a) {
      scan_complex(out, last);
      return;
    }
    out.assign(batch * dim * length, T(0));
    last.assign(batch * dim * nstate, T(0));
    ssmkit::selective_scan_options<T> o;
    if (!D.empty()) o.D = ssmkit::make_view(D.data(), dim);
    if (!z.empty()) o.z = ssmkit::make_view(z.data(), batch, dim, length);
    if (!delta_bias.empty()) o.delta_bias = ssmkit::make_view(delta_bias.data(), dim);
    o.delta_softplus = softplus;
    o.last_state = ssmkit::make_view(last.data(), batch, dim, nstate);
    ssmkit::selective_scan(ssmkit::make_view(u.data(), batch, dim, length),
                           ssmkit::make_view(delta.data(), batch, dim, length), ssmkit::make_view(A.data(), dim, nstate),
                           bc(B, b_shape), bc(C, c_shape), ssmkit::make_view(out.data(), batch, dim, length), o);
  }
};

template <class T>
result scan_case(const golden_case& c) {
  const scan_inputs<T> in(c);
  std::vector<T> out, last;
  in.scan(out, last);
  result r;
  r.outputs.push_back(as_output("out", out));
  if (c.outputs.count("last_state") != 0) r.outputs.push_back(as_output("last_state", last));
  // The state sums up to L decayed terms and y sums N states (docs/selective_scan.md).
  r.f32_growth = double(in.length + in.nstate);
  return r;
}

template <class T>
result state_update_case(const golden_case& c) {
  const auto& s = c.input("state");
  const bool heads = s.shape.size() == 4;
  std::vector<T> state = values_as<T>(s);
  const auto x = values_as<T>(c.input("x"));
  const auto dt = values_as<T>(c.input("dt"));
  const auto A = values_as<T>(c.input("A"));
  const auto B = values_as<T>(c.input("B"));
  const auto C = values_as<T>(c.input("C"));
  std::vector<T> D, z, bias;
  if (c.has_input("D")) D = values_as<T>(c.input("D"));
  if (c.has_input("z")) z = values_as<T>(c.input("z"));
  if (c.has_input("dt_bias")) bias = values_as<T>(c.input("dt_bias"));
  std::vector<T> out(x.size());
  const bool softplus = c.param_bool("dt_softplus", false);
  std::size_t nstate = 0;
  if (heads) {
    const auto se = extents_of<4>(s, "state");
    const std::size_t batch = se[0], H = se[1], P = se[2], N = se[3];
    const std::size_t gb = extents_of<3>(c.input("B"), "B")[1], gc = extents_of<3>(c.input("C"), "C")[1];
    nstate = N;
    ssmkit::selective_state_update_options<T, 4> o;
    if (!D.empty()) o.D = ssmkit::make_view(D.data(), H, P);
    if (!z.empty()) o.z = ssmkit::make_view(z.data(), batch, H, P);
    if (!bias.empty()) o.dt_bias = ssmkit::make_view(bias.data(), H, P);
    o.dt_softplus = softplus;
    ssmkit::selective_state_update(ssmkit::make_view(state.data(), batch, H, P, N),
                                   ssmkit::make_view(x.data(), batch, H, P), ssmkit::make_view(dt.data(), batch, H, P),
                                   ssmkit::make_view(A.data(), H, P, N), ssmkit::make_view(B.data(), batch, gb, N),
                                   ssmkit::make_view(C.data(), batch, gc, N), ssmkit::make_view(out.data(), batch, H, P),
                                   o);
  } else {
    const auto se = extents_of<3>(s, "state");
    const std::size_t batch = se[0], dim = se[1], N = se[2];
    nstate = N;
    ssmkit::selective_state_update_options<T, 3> o;
    if (!D.empty()) o.D = ssmkit::make_view(D.data(), dim);
    if (!z.empty()) o.z = ssmkit::make_view(z.data(), batch, dim);
    if (!bias.empty()) o.dt_bias = ssmkit::make_view(bias.data(), dim);
    o.dt_softplus = softplus;
    ssmkit::selective_state_update(ssmkit::make_view(state.data(), batch, dim, N), ssmkit::make_view(x.data(), batch, dim),
                                   ssmkit::make_view(dt.data(), batch, dim), ssmkit::make_view(A.data(), dim, N),
                                   ssmkit::make_view(B.data(), batch, N), ssmkit::make_view(C.data(), batch, N),
                                   ssmkit::make_view(out.data(), batch, dim), o);
  }
  result r;
  r.outputs.push_back(as_output("out", out));
  r.outputs.push_back(as_output("state_out", state));
  r.f32_growth = double(nstate + 1);
  return r;
}

/// L decode steps from a zero state on selective_scan-layout inputs, and the scan itself.
template <class T>
result state_update_sequence_case(const golden_case& c) {
  const scan_inputs<T> in(c);
  if (in.complex_a) throw ssmkit::error("golden case " + c.name + ": the decode sequence has real A only");
  if (in.b_shape.size() != 3 || in.c_shape.size() != 3) {
    throw ssmkit::error("golden case " + c.name + ": the decode sequence expects variable B and C (batch, N, L)");
  }
  const std::size_t batch = in.batch, dim = in.dim, L = in.length, N = in.nstate;
  std::vector<T> state(batch * dim * N, T(0)), out(batch * dim * L), out_step(batch * dim);
  // Token t of the (batch, dim, L) and (batch, N, L) inputs is a (batch, dim) or (batch, N) view
  // with stride L: no copies.
  const auto u3 = ssmkit::make_view(in.u.data(), batch, dim, L);
  const auto d3 = ssmkit::make_view(in.delta.data(), batch, dim, L);
  const auto z3 = ssmkit::make_view(in.z.data(), in.z.empty() ? 0 : batch, dim, L);
  const auto b3 = ssmkit::make_view(in.B.data(), batch, N, L);
  const auto c3 = ssmkit::make_view(in.C.data(), batch, N, L);
  const auto token = [](auto view3, std::size_t t) {
    using E = std::remove_pointer_t<decltype(view3.data())>;
    return ssmkit::tensor_view<E, 2>(view3.data() + t, {view3.extent(0), view3.extent(1)},
                                     {view3.stride(0), view3.stride(1)});
  };
  ssmkit::selective_state_update_options<T, 3> o;
  if (!in.D.empty()) o.D = ssmkit::make_view(in.D.data(), dim);
  if (!in.delta_bias.empty()) o.dt_bias = ssmkit::make_view(in.delta_bias.data(), dim);
  o.dt_softplus = in.softplus;
  for (std::size_t t = 0; t < L; ++t) {
    if (!in.z.empty()) o.z = token(z3, t);
    ssmkit::selective_state_update(ssmkit::make_view(state.data(), batch, dim, N), token(u3, t), token(d3, t),
                                   ssmkit::make_view(in.A.data(), dim, N), token(b3, t), token(c3, t),
                                   ssmkit::make_view(out_step.data(), batch, dim), o);
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t d = 0; d < dim; ++d) out[(b * dim + d) * L + t] = out_step[b * dim + d];
  }
  std::vector<T> scan_out, scan_last;
  in.scan(scan_out, scan_last);
  result r;
  r.outputs.push_back(as_output("out", out));
  r.outputs.push_back(as_output("state_final", state));
  r.outputs.push_back(as_output("out_selective_scan_ref", scan_out));
  r.outputs.push_back(as_output("last_state_selective_scan_ref", scan_last));
  r.f32_growth = double(L + N);
  return r;
}

}  // namespace

result run_selective_scan(const golden_case& c, precision p) {
  return p == precision::f64 ? scan_case<double>(c) : scan_case<float>(c);
}
result run_selective_state_update(const golden_case& c, precision p) {
  return p == precision::f64 ? state_update_case<double>(c) : state_update_case<float>(c);
}
result run_selective_state_update_sequence(const golden_case& c, precision p) {
  return p == precision::f64 ? state_update_sequence_case<double>(c) : state_update_sequence_case<float>(c);
}

}  // namespace ssmkit_golden
