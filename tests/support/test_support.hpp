#pragma once
// Helpers shared by the tests: seeded data, error capture, and error norms.

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <ssmkit/error.hpp>

namespace ssm_test {

/// The message of the ssmkit::error that f throws, or a marker when it throws none. Other
/// exception types propagate, so a test sees them as failures too.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ssmkit::error& e) {
    return e.what();
  }
  return "<no ssmkit::error thrown>";
}

/// n values uniform in [lo, hi), reproducible from `seed`.
template <class T>
std::vector<T> uniform(std::size_t n, double lo, double hi, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

/// max_i |a_i - b_i| / max(max_i |b_i|, tiny): the normwise relative error of a against b.
template <class A, class B>
double max_rel_error(const std::vector<A>& a, const std::vector<B>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double d = std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    num = std::isnan(d) ? INFINITY : std::max(num, d);
    den = std::max(den, std::abs(static_cast<double>(b[i])));
  }
  if (a.size() != b.size()) return INFINITY;
  return num / std::max(den, 1e-300);
}

}  // namespace ssm_test
