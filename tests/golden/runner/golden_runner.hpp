#pragma once
// The golden-case runner's handler interface. A handler maps one reference kernel's case
// (tests/golden/cases/README.md gives each kernel's argument conventions) onto ssmkit's public API,
// runs it in the requested precision and returns the outputs it computed, by the case's output
// names. The runner compares them with the case's expected outputs.

#include <string>
#include <vector>

#include <ssmkit/golden_case.hpp>

namespace ssmkit_golden {

enum class precision { f64, f32 };

/// Thrown by a handler when ssmkit has no kernel for this case (yet): the runner prints SKIP.
struct skip {
  std::string reason;
};

/// Thrown by a handler for one precision it does not run (for example setup-time code that is
/// double-only by design): the runner reports it and still judges the other precision.
struct not_in_precision {
  std::string reason;
};

struct output {
  std::string name;            ///< the case's output name
  std::vector<double> values;  ///< row-major; complex outputs interleaved (re, im) like the case
};

struct result {
  std::vector<output> outputs;
  /// For f64 cases also run in float32: the accumulation length of the computation (for example L
  /// for a scan, L * N for a kernel sum). The runner's f32 tolerance grows linearly with it, see
  /// docs/golden.md.
  double f32_growth = 1;
};

using handler = result (*)(const ssmkit::golden::golden_case&, precision);

/// The case's array converted to T (complex arrays stay interleaved).
template <class T>
std::vector<T> values_as(const ssmkit::golden::array& a) {
  return std::vector<T>(a.values.begin(), a.values.end());
}

// One function per reference kernel, defined in handlers_<family>.cpp.
result run_hippo_transition(const ssmkit::golden::golden_case&, precision);
result run_hippo_nplr(const ssmkit::golden::golden_case&, precision);
result run_s4d_init(const ssmkit::golden::golden_case&, precision);
result run_s4d_kernel(const ssmkit::golden::golden_case&, precision);
result run_s4d_minimal_kernel(const ssmkit::golden::golden_case&, precision);
result run_s4_dplr_kernel(const ssmkit::golden::golden_case&, precision);
result run_fftconv(const ssmkit::golden::golden_case&, precision);
result run_selective_scan(const ssmkit::golden::golden_case&, precision);
result run_selective_state_update(const ssmkit::golden::golden_case&, precision);
result run_selective_state_update_sequence(const ssmkit::golden::golden_case&, precision);
result run_ssd_minimal_discrete(const ssmkit::golden::golden_case&, precision);
result run_ssd_chunk_scan_combined(const ssmkit::golden::golden_case&, precision);

}  // namespace ssmkit_golden
