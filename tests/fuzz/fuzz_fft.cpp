// libFuzzer target: the FFT plans on their own. The bytes choose a precision (float or double),
// a size n (5-smooth and small, any size up to 20000, 0, or a huge 64-bit one), and one of
//   - fft_plan: forward and backward on strided views (sometimes in place), on both backends,
//     the batched entry on rank-2 views (1-9 rows), and the many-transform forward_lanes /
//     backward_lanes entry for 1-9 lanes;
//   - rfft_plan: forward and backward on strided views on both backends, the batched entry, and
//     for even n the packed many-transform entry forward_packed / backward_packed;
// with sometimes one wrong view: an input or output of the wrong size, or scratch one element
// short. Properties:
//   - a plan constructs exactly when is_fast_len(n); otherwise ssmkit::error. Sizes above the
//     memory budget (a 5-smooth n > max_plan_size) are not planned, only next_fast_len checked:
//     next_fast_len(n) >= n is 5-smooth and, for n <= 5000, no smaller 5-smooth size is >= n;
//   - a wrong view throws ssmkit::error and leaves the outputs untouched;
//   - with tame values: forward agrees with a long double DFT for n <= max_dft_size, to
//     8 eps (log2 n + 1) normwise (test_fft.cpp's bound is 2 eps (log2 n + 1) in the 2-norm; the
//     max norm used here can be larger by a small factor); backward(forward(x)) = n x to the same
//     bound; the SIMD backend agrees with the scalar one; the batched, lane and packed entries
//     agree with the view entries transform by transform;
//   - with wild values (NaN, inf, subnormals, huge) every call returns or throws, without
//     touching memory it does not own (ASan) or undefined behaviour (UBSan).
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <ssmkit/fft.hpp>

#include "fuzz_input.hpp"

namespace {

/// The largest plan the target builds (twiddles and scratch are O(n)): keeps one input ~1 ms.
constexpr std::size_t max_plan_size = 1U << 13;
/// The largest size checked against the O(n^2) long double DFT.
constexpr std::size_t max_dft_size = 160;

/// A size: 5-smooth and at most about 2^14, any size in [0, 20000], or any 64-bit value.
std::size_t fuzz_size(ssm_fuzz::fuzz_input& in) {
  switch (in.byte() % 4) {
    case 0: {
      std::size_t n = 1;
      for (std::size_t i = in.byte() % 15; i > 0; --i) n *= 2;
      for (std::size_t i = in.byte() % 7; i > 0; --i) n *= 3;
      for (std::size_t i = in.byte() % 5; i > 0; --i) n *= 5;
      return n;
    }
    case 1: return in.size_in(0, 200);
    case 2: return in.size_in(0, 20000);
    default: {
      std::size_t n = 0;
      for (int i = 0; i < 8; ++i) n = n << 8 | in.byte();
      return n;
    }
  }
}

/// next_fast_len(n) is the smallest 5-smooth size >= n (1 for n <= 1), or throws for n > 2^62.
void check_next_fast_len(std::size_t n) {
  std::size_t next = 0;
  try {
    next = ssmkit::next_fast_len(n);
  } catch (const ssmkit::error&) {
    if (n <= (std::size_t{1} << 62)) std::abort();  // a representable answer exists
    return;
  }
  if (next < n || !ssmkit::is_fast_len(next)) std::abort();
  if (n <= 5000) {
    for (std::size_t m = n; m < next; ++m) {
      if (ssmkit::is_fast_len(m)) std::abort();  // a smaller 5-smooth size was missed
    }
  }
}

template <class T>
std::vector<T> flat(const std::vector<std::complex<T>>& v) {
  std::vector<T> out;
  out.reserve(2 * v.size());
  for (const auto& c : v) out.push_back(c.real()), out.push_back(c.imag());
  return out;
}

/// X_k = sum_j x_j exp(-2 pi i jk / n), in long double, the roots tabulated once (index jk mod n).
template <class T>
std::vector<std::complex<T>> naive_dft(const std::vector<std::complex<T>>& x) {
  using cl = std::complex<long double>;
  const std::size_t n = x.size();
  const long double pi = 3.141592653589793238462643383279502884L;
  std::vector<cl> root(n);
  for (std::size_t k = 0; k < n; ++k) {
    const long double angle = 2 * pi * static_cast<long double>(k) / static_cast<long double>(n);
    root[k] = cl(std::cos(angle), -std::sin(angle));
  }
  std::vector<std::complex<T>> X(n);
  for (std::size_t k = 0; k < n; ++k) {
    cl sum = 0;
    for (std::size_t j = 0; j < n; ++j) sum += cl(x[j]) * root[(j * k) % n];
    X[k] = std::complex<T>(static_cast<T>(sum.real()), static_cast<T>(sum.imag()));
  }
  return X;
}

/// The FFT's normwise bound, 8 eps (log2 n + 1) (see the file comment).
template <class T>
double fft_tolerance(std::size_t n) {
  return 8 * double(std::numeric_limits<T>::epsilon()) * (std::log2(double(n)) + 1);
}

template <class T>
void fuzz_complex(ssm_fuzz::fuzz_input& in, std::size_t n) {
  using ct = std::complex<T>;
  const ct sentinel(T(-12345.5), T(6789.25));
  const std::size_t x_stride = in.size_in(1, 3), y_stride = in.size_in(1, 3);
  const bool in_place = in.flag();
  const std::size_t wrong = in.byte() % 8;  // 1: x one too long, 2: y one too short, 3: scratch one short
  const bool inverse = in.flag();
  const std::size_t lanes = in.size_in(1, 9);
  const ssmkit::fft_plan<T> plan(n);
  if (plan.size() != n || plan.scratch_size() != 4 * n) std::abort();
  std::vector<ct> x(n);
  for (auto& v : x) v = ct(in.value<T>(-1, 1), in.value<T>(-1, 1));
  const std::size_t x_len = wrong == 1 ? n + 1 : n, y_len = wrong == 2 ? n - 1 : n;
  std::vector<ct> x_buffer(x_stride * (n + 1), ct(0)), y_buffer(y_stride * n + 1, sentinel);
  for (std::size_t j = 0; j < n; ++j) x_buffer[j * x_stride] = x[j];
  std::vector<T> scratch(plan.scratch_size() - (wrong == 3 ? 1 : 0));
  const auto x_view = ssmkit::tensor_view<const ct, 1>(x_buffer.data(), {x_len}, {std::ptrdiff_t(x_stride)});
  const auto y_view = ssmkit::tensor_view<ct, 1>(y_buffer.data(), {y_len}, {std::ptrdiff_t(y_stride)});
  const auto scratch_view = ssmkit::make_view(scratch.data(), scratch.size());
  const bool ok = ssm_fuzz::run_checked<ct>(
      [&] {
        if (inverse) {
          plan.backward(x_view, y_view, scratch_view);
        } else {
          plan.forward(x_view, y_view, scratch_view);
        }
      },
      {&y_buffer}, sentinel);
  if (wrong >= 1 && wrong <= 3 && ok) std::abort();  // a wrong view was accepted
  if (!ok) return;
  std::vector<ct> y(n);
  for (std::size_t j = 0; j < n; ++j) y[j] = y_buffer[j * y_stride];
  // In place: y aliases x exactly, and the result is the same.
  if (in_place) {
    std::vector<ct> z = x;
    const auto z_view = ssmkit::make_view(z.data(), n);
    if (inverse) {
      plan.backward(z_view, z_view);
    } else {
      plan.forward(z_view, z_view);
    }
    if (in.tame()) ssm_fuzz::require_agreement(flat(z), flat(y), 0);
  }
  // The lane entry: `lanes` copies of x (lane l scaled by l + 1) transform like x.
  std::vector<T> re(n * lanes), im(n * lanes), work_re(n * lanes), work_im(n * lanes);
  for (std::size_t j = 0; j < n; ++j)
    for (std::size_t l = 0; l < lanes; ++l) {
      re[j * lanes + l] = x[j].real() * T(l + 1);
      im[j * lanes + l] = x[j].imag() * T(l + 1);
    }
  const bool in_work = inverse ? plan.backward_lanes(re.data(), im.data(), work_re.data(), work_im.data(), lanes)
                               : plan.forward_lanes(re.data(), im.data(), work_re.data(), work_im.data(), lanes);
  if (!in.tame()) return;
  const double tolerance = fft_tolerance<T>(n);
  for (std::size_t l = 0; l < lanes; ++l) {
    std::vector<ct> lane(n), want(n);
    for (std::size_t j = 0; j < n; ++j) {
      lane[j] = in_work ? ct(work_re[j * lanes + l], work_im[j * lanes + l]) : ct(re[j * lanes + l], im[j * lanes + l]);
      want[j] = y[j] * T(l + 1);
    }
    ssm_fuzz::require_agreement(flat(lane), flat(want), tolerance);
  }
  // The batched entry on rank-2 views (count = lanes rows, row l = (l + 1) x), either direction:
  // each row as the single transform. A y with one row too many is rejected, y untouched.
  std::vector<ct> xb(lanes * n), yb(lanes * n, sentinel), yb_wrong((lanes + 1) * n, sentinel);
  for (std::size_t l = 0; l < lanes; ++l)
    for (std::size_t j = 0; j < n; ++j) xb[l * n + j] = x[j] * T(l + 1);
  const auto xb_view = ssmkit::make_view(xb.data(), lanes, n);
  if (ssm_fuzz::run_checked<ct>([&] { plan.forward(xb_view, ssmkit::make_view(yb_wrong.data(), lanes + 1, n)); },
                                {&yb_wrong}, sentinel)) {
    std::abort();
  }
  if (inverse) {
    plan.backward(xb_view, ssmkit::make_view(yb.data(), lanes, n));
  } else {
    plan.forward(xb_view, ssmkit::make_view(yb.data(), lanes, n));
  }
  for (std::size_t l = 0; l < lanes; ++l) {
    std::vector<ct> row(yb.begin() + std::ptrdiff_t(l * n), yb.begin() + std::ptrdiff_t((l + 1) * n)), want(n);
    for (std::size_t j = 0; j < n; ++j) want[j] = y[j] * T(l + 1);
    ssm_fuzz::require_agreement(flat(row), flat(want), tolerance);
  }
  // The scalar backend agrees with the default one.
  std::vector<ct> y_scalar(n, sentinel);
  if (inverse) {
    plan.template backward<ssmkit::scalar>(ssmkit::make_view(x.data(), n), ssmkit::make_view(y_scalar.data(), n));
  } else {
    plan.template forward<ssmkit::scalar>(ssmkit::make_view(x.data(), n), ssmkit::make_view(y_scalar.data(), n));
  }
  ssm_fuzz::require_agreement(flat(y_scalar), flat(y), tolerance);
  // Against the DFT (backward: the DFT of conj x, conjugated), and the round trip.
  if (n <= max_dft_size) {
    std::vector<ct> x_in = x;
    if (inverse) {
      for (auto& v : x_in) v = std::conj(v);
    }
    auto want = naive_dft(x_in);
    if (inverse) {
      for (auto& v : want) v = std::conj(v);
    }
    ssm_fuzz::require_agreement(flat(y), flat(want), tolerance);
  }
  std::vector<ct> back(n);
  if (inverse) {
    plan.forward(ssmkit::make_view(y.data(), n), ssmkit::make_view(back.data(), n));
  } else {
    plan.backward(ssmkit::make_view(y.data(), n), ssmkit::make_view(back.data(), n));
  }
  for (auto& v : back) v /= T(n);
  ssm_fuzz::require_agreement(flat(back), flat(x), 2 * tolerance);
}

template <class T>
void fuzz_real(ssm_fuzz::fuzz_input& in, std::size_t n) {
  using ct = std::complex<T>;
  const T sentinel = T(-12345.5);
  const ct csentinel(sentinel, sentinel);
  const std::size_t x_stride = in.size_in(1, 3), X_stride = in.size_in(1, 3);
  const std::size_t wrong = in.byte() % 8;  // 1: x one too long, 2: X one too short, 3: scratch one short
  const std::size_t lanes = in.size_in(1, 9);
  const ssmkit::rfft_plan<T> plan(n);
  const std::size_t bins = n / 2 + 1;
  if (plan.size() != n || plan.spectrum_size() != bins) std::abort();
  const auto x = in.values<T>(n, -1, 1);
  std::vector<T> x_buffer(x_stride * (n + 1), T(0));
  for (std::size_t j = 0; j < n; ++j) x_buffer[j * x_stride] = x[j];
  std::vector<ct> X_buffer(X_stride * bins + 1, csentinel);
  std::vector<T> scratch(plan.scratch_size() - (wrong == 3 ? 1 : 0));
  const bool ok = ssm_fuzz::run_checked<ct>(
      [&] {
        plan.forward(ssmkit::tensor_view<const T, 1>(x_buffer.data(), {wrong == 1 ? n + 1 : n}, {std::ptrdiff_t(x_stride)}),
                     ssmkit::tensor_view<ct, 1>(X_buffer.data(), {wrong == 2 ? bins - 1 : bins}, {std::ptrdiff_t(X_stride)}),
                     ssmkit::make_view(scratch.data(), scratch.size()));
      },
      {&X_buffer}, csentinel);
  if (wrong >= 1 && wrong <= 3 && ok) std::abort();  // a wrong view was accepted
  if (!ok) {
    // The same wrong view on backward: an error, x untouched.
    std::vector<T> out(x_stride * (n + 1), sentinel);
    const std::vector<ct> spectrum(bins + 1);
    const bool back_ok = ssm_fuzz::run_checked<T>(
        [&] {
          plan.backward(ssmkit::tensor_view<const ct, 1>(spectrum.data(), {wrong == 2 ? bins - 1 : bins}, {1}),
                        ssmkit::tensor_view<T, 1>(out.data(), {wrong == 1 ? n + 1 : n}, {std::ptrdiff_t(x_stride)}),
                        ssmkit::make_view(scratch.data(), scratch.size()));
        },
        {&out}, sentinel);
    if (back_ok) std::abort();
    return;
  }
  std::vector<ct> X(bins);
  for (std::size_t k = 0; k < bins; ++k) X[k] = X_buffer[k * X_stride];
  // The packed lane entry (even n): slot 0 holds (X_0, X_{n/2}), slot k holds X_k.
  const std::size_t m = plan.packed_size();
  std::vector<T> re(m * lanes), im(m * lanes), work_re(m * lanes), work_im(m * lanes);
  bool packed_in_work = false;
  if (n % 2 == 0) {
    for (std::size_t j = 0; j < m; ++j)
      for (std::size_t l = 0; l < lanes; ++l) {
        re[j * lanes + l] = x[2 * j] * T(l + 1);
        im[j * lanes + l] = x[2 * j + 1] * T(l + 1);
      }
    packed_in_work = plan.forward_packed(re.data(), im.data(), work_re.data(), work_im.data(), lanes);
  }
  // Backward of the spectrum: n x (imaginary parts of X_0 and X_{n/2} ignored: perturb them).
  std::vector<ct> spectrum = X;
  if (in.tame()) {
    spectrum[0] += ct(0, T(0.5));
    if (n % 2 == 0) spectrum[bins - 1] += ct(0, T(-0.25));
  }
  std::vector<T> back(n, sentinel);
  plan.backward(ssmkit::make_view(spectrum.data(), bins), ssmkit::make_view(back.data(), n));
  if (!in.tame()) return;
  const double tolerance = fft_tolerance<T>(n);
  if (n % 2 == 0) {
    for (std::size_t l = 0; l < lanes; ++l) {
      const T* rr = packed_in_work ? work_re.data() : re.data();
      const T* ri = packed_in_work ? work_im.data() : im.data();
      std::vector<ct> got(bins), want(bins);
      got[0] = ct(rr[l], 0);
      got[m] = ct(ri[l], 0);
      for (std::size_t k = 1; k < m; ++k) got[k] = ct(rr[k * lanes + l], ri[k * lanes + l]);
      for (std::size_t k = 0; k < bins; ++k) want[k] = X[k] * T(l + 1);
      ssm_fuzz::require_agreement(flat(got), flat(want), tolerance);
    }
    // backward_packed inverts forward_packed: lane l returns n (l + 1) x.
    const bool back_in_work = packed_in_work
                                  ? plan.backward_packed(work_re.data(), work_im.data(), re.data(), im.data(), lanes)
                                  : plan.backward_packed(re.data(), im.data(), work_re.data(), work_im.data(), lanes);
    // The result lies in the other pair of arrays when the passes were odd in number.
    const bool result_in_work = packed_in_work != back_in_work;
    for (std::size_t l = 0; l < lanes; ++l) {
      const T* rr = result_in_work ? work_re.data() : re.data();
      const T* ri = result_in_work ? work_im.data() : im.data();
      std::vector<T> got(n), want(n);
      for (std::size_t j = 0; j < m; ++j) {
        got[2 * j] = rr[j * lanes + l] / T(n * (l + 1));
        got[2 * j + 1] = ri[j * lanes + l] / T(n * (l + 1));
      }
      ssm_fuzz::require_agreement(got, x, 2 * tolerance);
    }
  }
  // The batched entry on rank-2 views: `lanes` rows (row l = (l + 1) x) forward, then backward.
  std::vector<T> xb(lanes * n), back_b(lanes * n, sentinel);
  std::vector<ct> Xb(lanes * bins, csentinel);
  for (std::size_t l = 0; l < lanes; ++l)
    for (std::size_t j = 0; j < n; ++j) xb[l * n + j] = x[j] * T(l + 1);
  plan.forward(ssmkit::make_view(static_cast<const T*>(xb.data()), lanes, n), ssmkit::make_view(Xb.data(), lanes, bins));
  plan.backward(ssmkit::make_view(static_cast<const ct*>(Xb.data()), lanes, bins), ssmkit::make_view(back_b.data(), lanes, n));
  for (std::size_t l = 0; l < lanes; ++l) {
    std::vector<ct> row(Xb.begin() + std::ptrdiff_t(l * bins), Xb.begin() + std::ptrdiff_t((l + 1) * bins)), want(bins);
    for (std::size_t k = 0; k < bins; ++k) want[k] = X[k] * T(l + 1);
    ssm_fuzz::require_agreement(flat(row), flat(want), tolerance);
    std::vector<T> got(back_b.begin() + std::ptrdiff_t(l * n), back_b.begin() + std::ptrdiff_t((l + 1) * n)), orig(n);
    for (std::size_t j = 0; j < n; ++j) got[j] /= T(n * (l + 1)), orig[j] = x[j];
    ssm_fuzz::require_agreement(got, orig, 2 * tolerance);
  }
  // The scalar backend agrees with the default one.
  std::vector<ct> X_scalar(bins, csentinel);
  plan.template forward<ssmkit::scalar>(ssmkit::make_view(x.data(), n), ssmkit::make_view(X_scalar.data(), bins));
  ssm_fuzz::require_agreement(flat(X_scalar), flat(X), tolerance);
  if (n <= max_dft_size) {
    std::vector<ct> xc(n);
    for (std::size_t j = 0; j < n; ++j) xc[j] = ct(x[j], 0);
    auto want = naive_dft(xc);
    want.resize(bins);
    ssm_fuzz::require_agreement(flat(X), flat(want), tolerance);
  }
  for (auto& v : back) v /= T(n);
  ssm_fuzz::require_agreement(back, x, 2 * tolerance);
  std::vector<T> back_scalar(n, sentinel);
  plan.template backward<ssmkit::scalar>(ssmkit::make_view(spectrum.data(), bins), ssmkit::make_view(back_scalar.data(), n));
  for (auto& v : back_scalar) v /= T(n);
  ssm_fuzz::require_agreement(back_scalar, back, 2 * tolerance);
}

template <class T>
void fuzz_plans(ssm_fuzz::fuzz_input& in, bool real) {
  const std::size_t n = fuzz_size(in);
  check_next_fast_len(n);
  if (ssmkit::is_fast_len(n) && n > max_plan_size) return;  // over the memory budget
  try {
    if (real) {
      fuzz_real<T>(in, n);
    } else {
      fuzz_complex<T>(in, n);
    }
  } catch (const ssmkit::error&) {
    if (ssmkit::is_fast_len(n)) std::abort();  // only the constructor may throw here, and only for bad n
    return;
  }
  if (!ssmkit::is_fast_len(n)) std::abort();  // a plan was built for a size that is not 5-smooth
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ssm_fuzz::fuzz_input in(data, size);
  const std::uint8_t head = in.byte();
  in.set_tame((head & 4) == 0);
  const bool real = (head & 1) != 0, single = (head & 2) == 0;
  if (single) {
    fuzz_plans<float>(in, real);
  } else {
    fuzz_plans<double>(in, real);
  }
  return 0;
}
