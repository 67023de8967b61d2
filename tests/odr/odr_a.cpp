// With odr_b.cpp: every header in two translation units of one program.
#include <ssmkit/ssmkit.hpp>

#include <vector>

float odr_b_silu_sum();

int main() {
  std::vector<float> x(20, 1.0f), y(20);
  ssmkit::silu(ssmkit::make_view(x, 20), ssmkit::make_view(y, 20));
  const float a = y[0] * 20;
  const float b = odr_b_silu_sum();
  return a == b ? 0 : 1;
}
