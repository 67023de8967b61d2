// Golden handlers for the S4 kernels: s4d_kernel, s4d_minimal_kernel, s4_dplr_kernel.
#include "golden_runner.hpp"

namespace ssmkit_golden {

result run_s4d_kernel(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for s4d_kernel yet (the S4 family issue)"};
}
result run_s4d_minimal_kernel(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for s4d_minimal_kernel yet (the S4 family issue)"};
}
result run_s4_dplr_kernel(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for s4_dplr_kernel yet (the S4 family issue)"};
}

}  // namespace ssmkit_golden
