#include <ssmkit/ssmkit.hpp>

#include <vector>

float odr_b_silu_sum() {
  std::vector<float> x(20, 1.0f), y(20);
  ssmkit::silu(ssmkit::make_view(x, 20), ssmkit::make_view(y, 20));
  float sum = 0;
  for (const float v : y) sum += v;
  return y[0] * 20 + (sum - sum);
}
