// The fuzz bytes as a stream of decisions: sizes, flags and values. An exhausted input reads as
// zeros, so every prefix of an input is itself a valid input (libFuzzer's mutations stay useful).
//
// Values come in two regimes. A *tame* input draws finite values from a range where the SIMD and
// scalar backends must agree to a stated tolerance (the target then checks that). Otherwise about
// one value in four is special: NaN, ±inf, ±0, a subnormal, the largest finite value or a huge
// one, and the target only checks that the call either throws ssmkit::error or returns.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <vector>

#include <ssmkit/error.hpp>

namespace ssm_fuzz {

class fuzz_input {
 public:
  fuzz_input(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  std::uint8_t byte() noexcept { return pos_ < size_ ? data_[pos_++] : 0; }

  bool flag() noexcept { return (byte() & 1) != 0; }

  /// A size in [lo, hi].
  std::size_t size_in(std::size_t lo, std::size_t hi) noexcept {
    const std::size_t v = static_cast<std::size_t>(byte()) << 8 | byte();
    return lo + v % (hi - lo + 1);
  }

  /// A value in [lo, hi] (tame), or a special value about one time in four (wild inputs).
  template <class T>
  T value(double lo, double hi) noexcept {
    const std::uint8_t kind = byte();
    const double unit = static_cast<double>(static_cast<std::uint16_t>(byte() << 8 | byte())) / 65535.0;
    if (!tame_ && kind % 4 == 0) {
      constexpr T specials[] = {std::numeric_limits<T>::quiet_NaN(),   std::numeric_limits<T>::infinity(),
                                -std::numeric_limits<T>::infinity(),  T(0),
                                -T(0),                                std::numeric_limits<T>::denorm_min(),
                                std::numeric_limits<T>::min() / T(4), std::numeric_limits<T>::max(),
                                -std::numeric_limits<T>::max(),       T(1e30),
                                T(-1e4),                              T(1e-30)};
      return specials[(kind / 4) % (sizeof(specials) / sizeof(specials[0]))];
    }
    return static_cast<T>(lo + (hi - lo) * unit);
  }

  template <class T>
  std::vector<T> values(std::size_t n, double lo, double hi) {
    std::vector<T> v(n);
    for (auto& x : v) x = value<T>(lo, hi);
    return v;
  }

  /// Whether values are tame (decided by the first byte of the input).
  bool tame() const noexcept { return tame_; }
  void set_tame(bool tame) noexcept { tame_ = tame; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  bool tame_ = true;
};

/// max |a - b| / max |b| over finite pairs (0 when b is all zero or nothing is finite).
template <class T>
double normwise_difference(const std::vector<T>& a, const std::vector<T>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) continue;
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return den == 0 ? num : num / den;
}

/// Aborts (a fuzz finding) unless `got` agrees with `want` to `tolerance`, normwise, and both have
/// non-finite values in the same places.
template <class T>
void require_agreement(const std::vector<T>& got, const std::vector<T>& want, double tolerance) {
  if (got.size() != want.size()) std::abort();
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) != std::isnan(want[i])) {
      std::fprintf(stderr, "NaN mismatch at %zu of %zu: got %g, want %g\n", i, got.size(), double(got[i]), double(want[i]));
      std::abort();
    }
  }
  const double difference = normwise_difference(got, want);
  if (difference > tolerance) {
    std::fprintf(stderr, "normwise difference %g > %g over %zu values\n", difference, tolerance, got.size());
    std::abort();
  }
}

/// Runs `call`. A clean ssmkit::error is an accepted outcome; then the outputs must be untouched:
/// `outputs` are the output buffers, which the caller filled with `sentinel` before the call.
/// Returns whether the call succeeded.
template <class T, class Call>
bool run_checked(Call&& call, std::initializer_list<const std::vector<T>*> outputs, T sentinel) {
  try {
    call();
    return true;
  } catch (const ssmkit::error&) {
    for (const auto* out : outputs) {
      for (const T& v : *out) {
        if (!(v == sentinel)) std::abort();  // an output was written before the error
      }
    }
    return false;
  }
}

}  // namespace ssm_fuzz
