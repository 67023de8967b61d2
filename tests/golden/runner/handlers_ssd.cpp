// Golden handlers for Mamba-2 SSD: ssd_minimal_discrete, ssd_chunk_scan_combined_ref.
// Both run the chunked path with the case's chunk size (the reference's algorithm); the unit
// tests check the recurrent path against the same files.
#include <ssmkit/ssd.hpp>

#include "golden_runner.hpp"

namespace ssmkit_golden {

namespace {

template <class T>
result ssd_minimal(const ssmkit::golden::golden_case& c) {
  const auto& xs = c.input("X").shape;  // (b, L, h, p)
  const auto& bs = c.input("B").shape;  // (b, L, h, n): per head, i.e. G = H
  const std::size_t batch = xs[0], L = xs[1], h = xs[2], p = xs[3], n = bs[3];
  const auto X = values_as<T>(c.input("X"));
  const auto A = values_as<T>(c.input("A"));
  const auto B = values_as<T>(c.input("B"));
  const auto C = values_as<T>(c.input("C"));
  std::vector<T> init;
  std::vector<T> Y(batch * L * h * p), final_state(batch * h * p * n);
  ssmkit::ssd_discrete_options<T> opt;
  if (c.has_input("initial_states")) {
    init = values_as<T>(c.input("initial_states"));       // (b, 1, h, p, n)
    opt.initial_states = ssmkit::make_view(init, batch, h, p, n);  // drop the singleton chunk axis
  }
  opt.final_states = ssmkit::make_view(final_state, batch, h, p, n);
  opt.algorithm = ssmkit::ssd_algorithm::chunked;
  opt.chunk_size = static_cast<std::size_t>(c.param_number("block_len", 64));
  ssmkit::ssd_scan_discrete<T>(ssmkit::make_view(X, batch, L, h, p), ssmkit::make_view(A, batch, L, h),
                               ssmkit::make_view(B, batch, L, h, n), ssmkit::make_view(C, batch, L, h, n),
                               ssmkit::make_view(Y, batch, L, h, p), opt);
  result r;
  r.outputs.push_back({"Y", std::vector<double>(Y.begin(), Y.end())});
  r.outputs.push_back({"final_state", std::vector<double>(final_state.begin(), final_state.end())});
  r.f32_growth = double(L);
  return r;
}

template <class T>
result ssd_combined(const ssmkit::golden::golden_case& c) {
  const auto& xs = c.input("x").shape;  // (b, L, h, p)
  const auto& bs = c.input("B").shape;  // (b, L, g, n)
  const std::size_t batch = xs[0], L = xs[1], h = xs[2], p = xs[3], g = bs[2], n = bs[3];
  const auto x = values_as<T>(c.input("x"));
  const auto dt = values_as<T>(c.input("dt"));
  const auto A = values_as<T>(c.input("A"));
  const auto B = values_as<T>(c.input("B"));
  const auto C = values_as<T>(c.input("C"));
  std::vector<T> D, z, dt_bias, out(batch * L * h * p);
  ssmkit::ssd_options<T> opt;
  if (c.has_input("D")) {
    D = values_as<T>(c.input("D"));
    opt.D = ssmkit::make_view(D, h, D.size() / h);  // (h, p) or (h) seen as (h, 1)
  }
  if (c.has_input("z")) {
    z = values_as<T>(c.input("z"));
    opt.z = ssmkit::make_view(z, batch, L, h, p);
  }
  if (c.has_input("dt_bias")) {
    dt_bias = values_as<T>(c.input("dt_bias"));
    opt.dt_bias = ssmkit::make_view(dt_bias, h);
  }
  opt.dt_softplus = c.param_bool("dt_softplus", false);
  opt.algorithm = ssmkit::ssd_algorithm::chunked;
  opt.chunk_size = static_cast<std::size_t>(c.param_number("chunk_size", 64));
  ssmkit::ssd_scan<T>(ssmkit::make_view(x, batch, L, h, p), ssmkit::make_view(dt, batch, L, h),
                      ssmkit::make_view(A, h), ssmkit::make_view(B, batch, L, g, n),
                      ssmkit::make_view(C, batch, L, g, n), ssmkit::make_view(out, batch, L, h, p), opt);
  result r;
  const std::vector<double> values(out.begin(), out.end());
  r.outputs.push_back({"out", values});
  // The selective-scan route computes the same function (ssd_selective_scan): compare against it too.
  if (c.outputs.count("out_via_selective_scan_ref") != 0) r.outputs.push_back({"out_via_selective_scan_ref", values});
  r.f32_growth = double(L);
  return r;
}

}  // namespace

result run_ssd_minimal_discrete(const ssmkit::golden::golden_case& c, precision p) {
  return p == precision::f64 ? ssd_minimal<double>(c) : ssd_minimal<float>(c);
}
result run_ssd_chunk_scan_combined(const ssmkit::golden::golden_case& c, precision p) {
  return p == precision::f64 ? ssd_combined<double>(c) : ssd_combined<float>(c);
}

}  // namespace ssmkit_golden
