// The README's API tour, compiled and run by ctest so that it cannot rot.
#include <cstdio>
#include <vector>

#include <ssmkit/ssmkit.hpp>

int main() {
  // Token-major activations (batch, L, D), as an inference engine stores them ...
  const std::size_t batch = 2, length = 5, dim = 3;
  std::vector<float> x(batch * length * dim), y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * float(i) - 3.0f;
  auto tokens = ssmkit::make_view(x, batch, length, dim);

  // ... seen channel-major (batch, D, L), as mamba's kernels index them: no copy, only strides.
  auto channels = tokens.transposed(1, 2);
  std::printf("token-major (%zu, %zu, %zu) -> channel-major (%zu, %zu, %zu), strides (%td, %td, %td)\n",
              tokens.extent(0), tokens.extent(1), tokens.extent(2), channels.extent(0), channels.extent(1),
              channels.extent(2), channels.stride(0), channels.stride(1), channels.stride(2));

  // An elementwise kernel on the best backend this file was compiled for, and on the scalar one.
  auto out = ssmkit::make_view(y, batch, length, dim);
  ssmkit::silu(tokens, out);
  const float simd = y[7];
  ssmkit::silu<float, ssmkit::scalar>(tokens, out);
  std::printf("silu(%g) = %g (%s), %g (scalar)\n", double(x[7]), double(simd),
              ssmkit::backend_name<ssmkit::default_arch>(), double(y[7]));

  // Bad input throws ssmkit::error with the function, argument and both shapes.
  try {
    ssmkit::silu(tokens, ssmkit::make_view(y.data(), batch, dim, length));
  } catch (const ssmkit::error& e) {
    std::printf("caught: %s\n", e.what());
  }
  return 0;
}
