// Golden handlers for Mamba-2 SSD: ssd_minimal_discrete, ssd_chunk_scan_combined_ref.
#include "golden_runner.hpp"

namespace ssmkit_golden {

result run_ssd_minimal_discrete(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for ssd_minimal_discrete yet (the SSD issue)"};
}
result run_ssd_chunk_scan_combined(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for ssd_chunk_scan_combined_ref yet (the SSD issue)"};
}

}  // namespace ssmkit_golden
