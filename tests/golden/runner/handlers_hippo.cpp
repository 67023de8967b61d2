// Golden handlers for the HiPPO family: hippo_transition, hippo_nplr, s4d_init.
#include "golden_runner.hpp"

namespace ssmkit_golden {

result run_hippo_transition(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for hippo_transition yet (the S4 family issue)"};
}
result run_hippo_nplr(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for hippo_nplr yet (the S4 family issue)"};
}
result run_s4d_init(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for s4d_init yet (the S4 family issue)"};
}

}  // namespace ssmkit_golden
