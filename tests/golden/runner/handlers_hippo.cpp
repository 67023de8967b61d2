// Golden handlers for the HiPPO family: hippo_transition, hippo_nplr, s4d_init.
// All three are setup-time code, double-only by design: float32 runs report not_in_precision.
#include <complex>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/hippo.hpp>
#include <ssmkit/s4d_init.hpp>

#include "golden_runner.hpp"

namespace ssmkit_golden {
namespace {

const std::vector<ssmkit::detail::json>& items_of(const ssmkit::golden::golden_case& c) {
  const auto* items = c.params.find("items");
  if (items == nullptr) throw ssmkit::error(c.context("params.items is missing"));
  return items->as_array(c.context("params.items"));
}

std::string string_of(const ssmkit::golden::golden_case& c, const ssmkit::detail::json& item, const char* key) {
  const auto* v = item.find(key);
  if (v == nullptr) throw ssmkit::error(c.context(std::string("params.items[].") + key + " is missing"));
  return v->as_string(c.context(std::string("params.items[].") + key));
}

double number_of(const ssmkit::golden::golden_case& c, const ssmkit::detail::json& item, const char* key) {
  const auto* v = item.find(key);
  if (v == nullptr) throw ssmkit::error(c.context(std::string("params.items[].") + key + " is missing"));
  return v->as_number(c.context(std::string("params.items[].") + key));
}

// Row-major values of a real Eigen matrix.
std::vector<double> row_major(const Eigen::MatrixXd& m) {
  std::vector<double> v;
  v.reserve(static_cast<std::size_t>(m.size()));
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) v.push_back(m(i, j));
  }
  return v;
}

// Row-major interleaved (re, im) values of a complex Eigen matrix.
std::vector<double> row_major(const Eigen::MatrixXcd& m) {
  std::vector<double> v;
  v.reserve(2 * static_cast<std::size_t>(m.size()));
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      v.push_back(m(i, j).real());
      v.push_back(m(i, j).imag());
    }
  }
  return v;
}

void require_f64(precision p) {
  if (p == precision::f32) throw not_in_precision{"setup-time code is double only"};
}

}  // namespace

result run_hippo_transition(const ssmkit::golden::golden_case& c, precision p) {
  require_f64(p);
  result r;
  for (const auto& item : items_of(c)) {
    const std::string tag = string_of(c, item, "tag");
    const auto N = static_cast<Eigen::Index>(number_of(c, item, "N"));
    const auto rank = static_cast<Eigen::Index>(number_of(c, item, "rank"));
    ssmkit::hippo::measure_args args;
    if (const auto* a = item.find("args")) {
      if (const auto* alpha = a->find("alpha")) args.alpha = alpha->as_number(c.context("args.alpha"));
      if (const auto* beta = a->find("beta")) args.beta = beta->as_number(c.context("args.beta"));
    }
    const auto m = ssmkit::hippo::parse_measure(string_of(c, item, "measure"));
    const auto t = ssmkit::hippo::transition(m, N, args);
    r.outputs.push_back({tag + ".A", row_major(t.A)});
    r.outputs.push_back({tag + ".B", row_major(Eigen::MatrixXd(t.B))});
    if (rank > 0) r.outputs.push_back({tag + ".P", row_major(ssmkit::hippo::rank_correction(m, N, rank))});
  }
  return r;
}

// Only the phase-invariant outputs are compared: W, |P~|, |B~| and P~ conj(B~) before the clip, and
// the normal part. V, P, B and the clipped B depend on LAPACK's eigenvector phases.
result run_hippo_nplr(const ssmkit::golden::golden_case& c, precision p) {
  require_f64(p);
  result r;
  for (const auto& item : items_of(c)) {
    const std::string tag = string_of(c, item, "tag");
    const auto N = static_cast<Eigen::Index>(number_of(c, item, "N"));
    const auto rank = static_cast<Eigen::Index>(number_of(c, item, "rank"));
    const auto m = ssmkit::hippo::parse_measure(string_of(c, item, "measure"));
    ssmkit::hippo::nplr_options options;
    options.rank = rank;
    options.B_clip = std::nullopt;
    const auto d = ssmkit::hippo::nplr(m, N, options);
    r.outputs.push_back({tag + ".W", row_major(Eigen::MatrixXcd(d.W.transpose()))});
    r.outputs.push_back({tag + ".absP", row_major(Eigen::MatrixXd(d.P.cwiseAbs()))});
    r.outputs.push_back({tag + ".absB_noclip", row_major(Eigen::MatrixXd(d.B.cwiseAbs().transpose()))});
    Eigen::MatrixXcd pcb(d.P.rows(), d.P.cols());
    for (Eigen::Index q = 0; q < d.P.rows(); ++q) {
      for (Eigen::Index n = 0; n < d.P.cols(); ++n) pcb(q, n) = d.P(q, n) * std::conj(d.B(n));
    }
    r.outputs.push_back({tag + ".P_conjB_noclip", row_major(pcb)});
    const auto t = ssmkit::hippo::transition(m, N);
    const Eigen::MatrixXd P = ssmkit::hippo::rank_correction(m, N, rank);
    r.outputs.push_back({tag + ".normal_part", row_major(Eigen::MatrixXd(t.A + P.transpose() * P))});
  }
  return r;
}

// diag-legs B and P are expressed in the eigenbasis and depend on LAPACK's phases (its B is also
// clipped after that phase): only its A is compared.
result run_s4d_init(const ssmkit::golden::golden_case& c, precision p) {
  require_f64(p);
  const auto N = static_cast<Eigen::Index>(c.param_number("N", 0));
  const auto H = static_cast<Eigen::Index>(c.param_number("H", 0));
  result r;
  for (const auto& item : items_of(c)) {
    const std::string tag = string_of(c, item, "tag");
    const auto init = ssmkit::s4d::parse_diag_init(string_of(c, item, "init"));
    ssmkit::s4d::diag_init_options options;
    if (const auto* kw = item.find("kwargs")) {
      for (const auto& [key, value] : kw->as_object(c.context("kwargs"))) {
        const auto what = c.context("kwargs." + key);
        if (key == "B_init") options.B = ssmkit::s4d::parse_b_init(value.as_string(what));
        else if (key == "real_scale") options.real_scale = value.as_number(what);
        else if (key == "imag_scale") options.imag_scale = value.as_number(what);
        else if (key == "B_scale") options.B_scale = value.as_number(what);
        else if (key == "normalize") options.normalize = value.as_bool(what);
        else throw skip{"s4d_init option '" + key + "' is not mapped by this handler"};
      }
    }
    const auto d = ssmkit::s4d::diag(init, N, H, options);
    r.outputs.push_back({tag + ".A", row_major(d.A)});
    if (init != ssmkit::s4d::diag_init::legs) {
      r.outputs.push_back({tag + ".B", row_major(d.B)});
      r.outputs.push_back({tag + ".P", row_major(d.P)});
    }
  }
  return r;
}

}  // namespace ssmkit_golden
