// A downstream program: includes the umbrella header and calls the library.
#include <cmath>
#include <cstdio>
#include <vector>

#include <ssmkit/ssmkit.hpp>

int main() {
  std::vector<float> x{-2.0f, -0.5f, 0.0f, 0.5f, 2.0f, 30.0f};
  std::vector<float> y(x.size());
  ssmkit::softplus(ssmkit::make_view(x, x.size()), ssmkit::make_view(y, y.size()));
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double want = x[i] > 20 ? x[i] : std::log1p(std::exp(double(x[i])));
    if (std::abs(y[i] - want) > 1e-6 * (1 + std::abs(want))) {
      std::printf("softplus(%g) = %g, expected %g\n", double(x[i]), double(y[i]), want);
      return 1;
    }
  }
  std::printf("ssmkit %d.%d.%d consumer OK (backend %s)\n", SSMKIT_VERSION_MAJOR, SSMKIT_VERSION_MINOR,
              SSMKIT_VERSION_PATCH, ssmkit::backend_name<ssmkit::default_arch>());
  return 0;
}
