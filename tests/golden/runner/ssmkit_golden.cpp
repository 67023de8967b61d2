// ssmkit-golden: runs golden cases through ssmkit's public API and compares with the reference.
//
//   ssmkit-golden DIR [DIR...]      each DIR is a case directory or a directory of cases
//
// One line per case: PASS, FAIL or SKIP, with the max abs and rel error per output and precision.
// The last line is exactly "N passed, M failed, K skipped". Exit status: 0 when nothing failed,
// 1 when a case failed or was malformed, 2 on a usage error.
//
// Tolerances (docs/golden.md gives the derivation):
// - in the case's own precision: the case's |got - want| <= atol + rtol * |want|;
// - f64 cases are also run in float32, where the check is
//     |got - want| <= tau * (|want| + max|want|),  tau = 16 * u32 * growth,  u32 = 2^-24,
//   growth being the handler's accumulation length (L for a scan, ...): the forward error of a
//   sum of `growth` rounded terms is bounded by growth * u (Higham, Accuracy and Stability, 3.1),
//   and 16 covers the rounding of the inputs to float and of exp/log1p (a few ulp each).
//   The max|want| term makes the check normwise for outputs that pass through zero.

#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "golden_runner.hpp"

namespace {

using ssmkit_golden::precision;

const std::map<std::string, ssmkit_golden::handler>& handlers() {
  static const std::map<std::string, ssmkit_golden::handler> table = {
      {"hippo_transition", ssmkit_golden::run_hippo_transition},
      {"hippo_nplr", ssmkit_golden::run_hippo_nplr},
      {"s4d_init", ssmkit_golden::run_s4d_init},
      {"s4d_kernel", ssmkit_golden::run_s4d_kernel},
      {"s4d_minimal_kernel", ssmkit_golden::run_s4d_minimal_kernel},
      {"s4_dplr_kernel", ssmkit_golden::run_s4_dplr_kernel},
      {"fftconv", ssmkit_golden::run_fftconv},
      {"selective_scan", ssmkit_golden::run_selective_scan},
      {"selective_state_update", ssmkit_golden::run_selective_state_update},
      {"selective_state_update_sequence", ssmkit_golden::run_selective_state_update_sequence},
      {"ssd_minimal_discrete", ssmkit_golden::run_ssd_minimal_discrete},
      {"ssd_chunk_scan_combined_ref", ssmkit_golden::run_ssd_chunk_scan_combined},
  };
  return table;
}

struct comparison {
  bool ok = true;
  std::string text;
};

// Compares every output the handler returned with the case's expected array of the same name.
comparison compare(const ssmkit::golden::golden_case& c, const ssmkit_golden::result& r, precision p) {
  comparison cmp;
  const bool native = (p == precision::f64) == (c.precision == "f64");
  const double u32 = std::ldexp(1.0, -24);
  const double tau = 16 * u32 * std::max(1.0, r.f32_growth);
  cmp.text = p == precision::f64 ? " [f64]" : " [f32]";
  if (r.outputs.empty()) {
    cmp.ok = false;
    cmp.text += " the handler returned no outputs";
  }
  for (const auto& out : r.outputs) {
    const auto& want = c.output(out.name).values;
    cmp.text += " " + out.name + ":";
    if (out.values.size() != want.size()) {
      cmp.ok = false;
      cmp.text += " got " + std::to_string(out.values.size()) + " values, expected " + std::to_string(want.size());
      continue;
    }
    double scale = 0;
    for (const double w : want) scale = std::max(scale, std::abs(w));
    double max_abs = 0, max_rel = 0;
    bool out_ok = true;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double g = out.values[i], w = want[i];
      const double d = std::abs(g - w);
      const bool both_nan = std::isnan(g) && std::isnan(w);
      const bool same_inf = std::isinf(g) && g == w;
      if (both_nan || same_inf) continue;
      const double bound = native ? c.atol + c.rtol * std::abs(w) : tau * (std::abs(w) + scale);
      if (!(d <= bound)) out_ok = false;  // also catches NaN where a number was expected
      max_abs = std::max(max_abs, std::isnan(d) ? INFINITY : d);
      if (w != 0) max_rel = std::max(max_rel, d / std::abs(w));
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, " abs %.2e rel %.2e", max_abs, max_rel);
    cmp.text += buf;
    if (!out_ok) {
      cmp.ok = false;
      cmp.text += " (over tolerance)";
    }
  }
  if (!native) {
    char buf[48];
    std::snprintf(buf, sizeof buf, " tol %.1e", tau);
    cmp.text += buf;
  }
  return cmp;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CASE_DIR_OR_ROOT [...]\n", argv[0]);
    return 2;
  }
  int passed = 0, failed = 0, skipped = 0;
  for (int a = 1; a < argc; ++a) {
    std::vector<std::filesystem::path> cases;
    try {
      cases = ssmkit::golden::list_cases(argv[a]);
    } catch (const std::exception& e) {
      std::printf("FAIL %s: %s\n", argv[a], e.what());
      ++failed;
      continue;
    }
    for (const auto& dir : cases) {
      const std::string name = dir.filename().string();
      try {
        const auto c = ssmkit::golden::load_case(dir);
        const auto h = handlers().find(c.kernel);
        if (h == handlers().end()) {
          std::printf("FAIL %s: unknown kernel '%s'\n", name.c_str(), c.kernel.c_str());
          ++failed;
          continue;
        }
        std::vector<precision> runs{c.precision == "f64" ? precision::f64 : precision::f32};
        if (c.precision == "f64") runs.push_back(precision::f32);
        bool ok = true;
        int judged = 0;
        std::string detail;
        for (const auto p : runs) {
          try {
            const auto cmp = compare(c, h->second(c, p), p);
            ok = ok && cmp.ok;
            detail += cmp.text;
            ++judged;
          } catch (const ssmkit_golden::not_in_precision& n) {
            detail += std::string(p == precision::f64 ? " [f64]" : " [f32]") + " n/a: " + n.reason;
          }
        }
        if (judged == 0) ok = false;
        std::printf("%s %s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
        ++(ok ? passed : failed);
      } catch (const ssmkit_golden::skip& s) {
        std::printf("SKIP %s: %s\n", name.c_str(), s.reason.c_str());
        ++skipped;
      } catch (const std::exception& e) {
        std::printf("FAIL %s: %s\n", name.c_str(), e.what());
        ++failed;
      }
    }
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}
