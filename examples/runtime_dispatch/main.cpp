// Runtime dispatch: this file is compiled for the baseline (x86-64-v2) and picks, when the program
// starts, the best of the per-ISA instantiations the CPU can run. It then checks every ISA the CPU
// supports against the scalar backend.
#include <cmath>
#include <cstdio>
#include <vector>

#include <ssmkit/activation.hpp>

#include "kernels.hpp"

int main() {
  const std::size_t n = 1000;
  std::vector<float> x(n), y(n), reference(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = -10.0f + 0.02f * float(i);
  ssmkit::silu<float, ssmkit::scalar>(ssmkit::make_view(x, n), ssmkit::make_view(reference, n));

  auto dispatched = xsimd::dispatch<dispatch_archs>(silu_kernel{});
  dispatched(x.data(), y.data(), n);

  const unsigned best = xsimd::available_architectures().best;
  const char* chosen = best >= xsimd::avx512bw::version()           ? "avx512bw"
                       : best >= xsimd::fma3<xsimd::avx2>::version() ? "fma3<avx2>"
                                                                      : "sse4.2";
  int failures = 0;
  const auto check = [&](const char* name, const std::vector<float>& got) {
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, double(std::abs(got[i] - reference[i])) / (1 + std::abs(reference[i])));
    const bool ok = worst <= 8e-7;  // a few float ulp: xsimd's exp against libm's
    std::printf("%-11s max rel. difference to scalar %.2e %s\n", name, worst, ok ? "ok" : "TOO LARGE");
    failures += !ok;
  };
  std::printf("dispatched to %s\n", chosen);
  check("dispatched", y);
  if (ssmkit::backend_available<xsimd::sse4_2>()) {
    silu_kernel{}(xsimd::sse4_2{}, x.data(), y.data(), n);
    check("sse4.2", y);
  }
  if (ssmkit::backend_available<xsimd::fma3<xsimd::avx2>>()) {
    silu_kernel{}(xsimd::fma3<xsimd::avx2>{}, x.data(), y.data(), n);
    check("fma3<avx2>", y);
  }
  if (ssmkit::backend_available<xsimd::avx512bw>()) {
    silu_kernel{}(xsimd::avx512bw{}, x.data(), y.data(), n);
    check("avx512bw", y);
  }
  return failures == 0 ? 0 : 1;
}
