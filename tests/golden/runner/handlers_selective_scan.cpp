// Golden handlers for Mamba: selective_scan, selective_state_update, selective_state_update_sequence.
#include "golden_runner.hpp"

namespace ssmkit_golden {

result run_selective_scan(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for selective_scan yet (the selective-scan issue)"};
}
result run_selective_state_update(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for selective_state_update yet (the selective-scan issue)"};
}
result run_selective_state_update_sequence(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for selective_state_update_sequence yet (the selective-scan issue)"};
}

}  // namespace ssmkit_golden
