// Golden handler for the FFT convolution: fftconv.
#include "golden_runner.hpp"

namespace ssmkit_golden {

result run_fftconv(const ssmkit::golden::golden_case&, precision) {
  throw skip{"no ssmkit kernel for fftconv yet (the long-convolution issue)"};
}

}  // namespace ssmkit_golden
