#pragma once
/// \file fft.hpp
/// ssmkit's own FFT: complex and real (r2c / c2r) discrete Fourier transforms of every size
/// n = 2^a 3^b 5^c, with plans that precompute the twiddles.
///
///   forward:  X_k = sum_j x_j exp(-2 pi i jk / n)
///   backward: x_j = sum_k X_k exp(+2 pi i jk / n)   (unnormalised: backward(forward(x)) = n x)
///
/// Algorithm: a Stockham autosort FFT (no bit reversal) with radix-4 passes, at most one radix-2
/// pass, and radix-3 and radix-5 passes. A real FFT of even size N is a complex FFT of size N/2 of
/// the packed pairs x_2j + i x_2j+1 plus a fix-up pass; an odd real size runs the complex FFT.
///
/// Which path runs (see detail/fft_kernels.hpp for the lane layout):
///   - `forward_lanes` / `backward_lanes` transform `lanes` signals at once, stored interleaved
///     lane by lane in split (re, im) arrays. With lanes == the SIMD width, every butterfly runs
///     one transform per SIMD lane with no shuffles: this is the many-transform path that
///     `fft_conv` uses (channels x batch).
///   - `forward` / `backward` on views transform one signal (lanes = 1): the later passes, whose
///     runs of contiguous elements are at least the SIMD width long, are vectorised within the
///     transform; the first passes run one element at a time.
///
/// Plans are immutable after construction and safe to share between threads. Scratch space is
/// caller-provided (`scratch_size()` elements of T) or allocated per call by the overloads
/// without it. There is no global state.
///
/// Numerics: twiddles are computed in long double and rounded once. The forward error of a
/// Stockham FFT is O(eps log n) in the normwise sense, ||fft(x) - X|| <= c eps log2(n) ||X||
/// (Higham, "Accuracy and Stability of Numerical Algorithms", 24.1). tests/test_fft.cpp checks
/// every 5-smooth n <= 1000 against a long double DFT with the bound 2 eps (log2 n + 1), and
/// measures the round trip: its error over eps log2(n) stays at 0.2-0.35 from n = 16 to 2^20.

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <cstddef>
#include <vector>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/batch.hpp>
#include <ssmkit/detail/fft_kernels.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// True when n >= 1 and n has no prime factor other than 2, 3 and 5: the sizes the FFT plans take.
constexpr bool is_fast_len(std::size_t n) noexcept {
  if (n == 0) return false;
  for (const std::size_t p : {std::size_t{2}, std::size_t{3}, std::size_t{5}}) {
    while (n % p == 0) n /= p;
  }
  return n == 1;
}

/// The smallest 2^a 3^b 5^c >= n (1 for n <= 1): the FFT size to pad a length-n signal to.
/// \throws ssmkit::error when no such size fits in std::size_t.
inline std::size_t next_fast_len(std::size_t n) {
  if (n <= 1) return 1;
  detail::require(n <= (std::size_t{1} << (8 * sizeof(std::size_t) - 2)), "next_fast_len", "n = ", n,
                  " is too large");
  std::size_t best = std::size_t{1} << (8 * sizeof(std::size_t) - 1);  // a power of two >= n
  while (best / 2 >= n) best /= 2;
  for (std::size_t p5 = 1; p5 < best; p5 *= 5) {
    for (std::size_t p35 = p5; p35 < best; p35 *= 3) {
      // The smallest power of two times p35 that reaches n.
      std::size_t v = p35;
      while (v < n) v *= 2;
      best = std::min(best, v);
      if (best == n) return n;
    }
  }
  return best;
}

namespace detail {

/// The twiddles of a Stockham plan and its passes; shared by fft_plan and rfft_plan.
template <class T>
class fft_core {
 public:
  struct stage {
    std::size_t radix;   // p
    std::size_t m;       // butterflies per run: n / (s * p)
    std::size_t stride;  // s: the product of the earlier radices
    std::size_t twiddle_offset;
  };

  fft_core() = default;
  explicit fft_core(std::size_t n) : n_(n) {
    std::size_t rest = n;
    std::vector<std::size_t> radices;
    while (rest % 4 == 0) radices.push_back(4), rest /= 4;
    while (rest % 2 == 0) radices.push_back(2), rest /= 2;
    while (rest % 3 == 0) radices.push_back(3), rest /= 3;
    while (rest % 5 == 0) radices.push_back(5), rest /= 5;
    std::size_t stride = 1;
    for (const std::size_t p : radices) {
      const std::size_t ncur = n / stride;
      const std::size_t m = ncur / p;
      stages_.push_back({p, m, stride, twiddle_re_.size()});
      for (std::size_t j = 0; j < m; ++j) {
        for (std::size_t k = 1; k < p; ++k) {
          const auto w = unit_root(j * k, ncur);
          twiddle_re_.push_back(w[0]);
          twiddle_im_.push_back(w[1]);
        }
      }
      stride *= p;
    }
  }

  std::size_t size() const noexcept { return n_; }

  /// exp(-2 pi i k / n), computed in long double with the argument reduced exactly.
  static std::array<T, 2> unit_root(std::size_t k, std::size_t n) {
    k %= n;
    // Use the symmetries so that the long double argument stays in [0, pi/4]-ish accuracy.
    const long double pi = 3.141592653589793238462643383279502884L;
    const long double angle = 2 * pi * static_cast<long double>(k) / static_cast<long double>(n);
    if (4 * k == n) return {T(0), T(-1)};
    if (2 * k == n) return {T(-1), T(0)};
    if (4 * k == 3 * n) return {T(0), T(1)};
    return {static_cast<T>(std::cos(angle)), static_cast<T>(-std::sin(angle))};
  }

  /// Transforms `lanes` signals in the lane layout (x in (xr, xi)); (yr, yi) is work space of the
  /// same size. Both arrays are overwritten; returns true when the result is in y, false when in x.
  template <class Arch>
  bool execute(T* xr, T* xi, T* yr, T* yi, std::size_t lanes, bool inverse) const noexcept {
    if (inverse) {
      std::swap(xr, xi);
      std::swap(yr, yi);
    }
    bool in_y = false;
    for (const auto& st : stages_) {
      const std::size_t span = st.stride * lanes;
      const T* twr = twiddle_re_.data() + st.twiddle_offset;
      const T* twi = twiddle_im_.data() + st.twiddle_offset;
      switch (st.radix) {
        case 4: fft_stockham_pass<4, T, Arch>(st.m, span, xr, xi, yr, yi, twr, twi); break;
        case 2: fft_stockham_pass<2, T, Arch>(st.m, span, xr, xi, yr, yi, twr, twi); break;
        case 3: fft_stockham_pass<3, T, Arch>(st.m, span, xr, xi, yr, yi, twr, twi); break;
        default: fft_stockham_pass<5, T, Arch>(st.m, span, xr, xi, yr, yi, twr, twi); break;
      }
      std::swap(xr, yr);
      std::swap(xi, yi);
      in_y = !in_y;
    }
    return in_y;
  }

 private:
  std::size_t n_ = 0;
  std::vector<stage> stages_;
  std::vector<T> twiddle_re_, twiddle_im_;
};

inline void check_fast_len(const char* function, std::size_t n) {
  require(n >= 1, function, "size must be >= 1, got 0");
  require(is_fast_len(n), function, "size ", n, " is not of the form 2^a 3^b 5^c (next_fast_len gives ",
          next_fast_len(n), ")");
}

}  // namespace detail

/**
 * A plan for complex DFTs of one size n = 2^a 3^b 5^c, for element type T (float or double).
 *
 * Immutable after construction; every method is const and may be called from several threads at
 * once (each with its own scratch). Scratch: `scratch_size()` elements of T.
 *
 * \throws ssmkit::error from the constructor when n is 0 or not 5-smooth.
 */
template <class T>
class fft_plan {
  static_assert(std::is_floating_point_v<T>, "fft_plan: T must be float or double");

 public:
  using complex_type = std::complex<T>;

  explicit fft_plan(std::size_t n) : core_((detail::check_fast_len("fft_plan", n), n)) {}

  std::size_t size() const noexcept { return core_.size(); }
  /// Scratch needed by forward/backward on views, in elements of T.
  std::size_t scratch_size() const noexcept { return 4 * size(); }

  /// y = DFT(x). x and y have n elements and any strides; y may alias x exactly (in place).
  /// \throws ssmkit::error on a wrong size, a null view, or scratch smaller than scratch_size().
  template <class Arch = default_arch>
  void forward(const_view<complex_type, 1> x, tensor_view<complex_type, 1> y, tensor_view<T, 1> scratch) const {
    run<Arch>("fft_plan::forward", x, y, scratch, false);
  }
  template <class Arch = default_arch>
  void forward(const_view<complex_type, 1> x, tensor_view<complex_type, 1> y) const {
    std::vector<T> scratch(scratch_size());
    run<Arch>("fft_plan::forward", x, y, make_view(scratch, scratch.size()), false);
  }

  /// y = n * IDFT(x) (unnormalised inverse). Same conventions as forward.
  template <class Arch = default_arch>
  void backward(const_view<complex_type, 1> x, tensor_view<complex_type, 1> y, tensor_view<T, 1> scratch) const {
    run<Arch>("fft_plan::backward", x, y, scratch, true);
  }
  template <class Arch = default_arch>
  void backward(const_view<complex_type, 1> x, tensor_view<complex_type, 1> y) const {
    std::vector<T> scratch(scratch_size());
    run<Arch>("fft_plan::backward", x, y, make_view(scratch, scratch.size()), true);
  }

  /// The many-transform entry: transforms `lanes` signals stored in the lane layout, element j of
  /// signal l at re[j*lanes + l], im[j*lanes + l] (n*lanes T's each). work_re/work_im are scratch
  /// of the same size. All four arrays are overwritten. Returns true when the result is in
  /// (work_re, work_im), false when in (re, im). Unchecked: the pointers must be valid.
  template <class Arch = default_arch>
  bool forward_lanes(T* re, T* im, T* work_re, T* work_im, std::size_t lanes) const noexcept {
    return core_.template execute<Arch>(re, im, work_re, work_im, lanes, false);
  }
  template <class Arch = default_arch>
  bool backward_lanes(T* re, T* im, T* work_re, T* work_im, std::size_t lanes) const noexcept {
    return core_.template execute<Arch>(re, im, work_re, work_im, lanes, true);
  }

 private:
  template <class Arch>
  void run(const char* function, const_view<complex_type, 1> x, tensor_view<complex_type, 1> y,
           tensor_view<T, 1> scratch, bool inverse) const {
    const std::size_t n = size();
    detail::check_shape(function, "x", x, {n});
    detail::check_shape(function, "y", y, {n});
    detail::check_data(function, "x", x);
    detail::check_data(function, "y", y);
    detail::check_data(function, "scratch", scratch);
    detail::require(scratch.extent(0) >= scratch_size(), function, "scratch has shape ",
                    detail::format_shape(scratch.extents()), ", expected (>= ", scratch_size(), ")");
    detail::require(scratch.stride(0) == 1, function, "scratch must be contiguous");
    T* re = scratch.data();
    T* im = re + n;
    T* wre = im + n;
    T* wim = wre + n;
    for (std::size_t j = 0; j < n; ++j) {
      const complex_type v = x(j);
      re[j] = v.real();
      im[j] = v.imag();
    }
    const bool in_work = core_.template execute<Arch>(re, im, wre, wim, 1, inverse);
    const T* rr = in_work ? wre : re;
    const T* ri = in_work ? wim : im;
    for (std::size_t j = 0; j < n; ++j) y(j) = complex_type(rr[j], ri[j]);
  }

  detail::fft_core<T> core_;
};

/**
 * A plan for real DFTs of one size n = 2^a 3^b 5^c: forward maps n reals to the n/2 + 1
 * non-negative-frequency bins X_0 .. X_{n/2}; backward maps them back to n * x (unnormalised;
 * the imaginary parts of X_0 and, for even n, X_{n/2} are ignored, as in every c2r transform).
 *
 * Even n: a complex FFT of size n/2 of z_j = x_2j + i x_2j+1, then the fix-up
 * X_k = (Z_k + conj Z_{n/2-k})/2 + w^k (Z_k - conj Z_{n/2-k})/(2i), w = exp(-2 pi i / n).
 * Odd n: a complex FFT of size n.
 *
 * Immutable after construction and safe to share between threads.
 * \throws ssmkit::error from the constructor when n is 0 or not 5-smooth.
 */
template <class T>
class rfft_plan {
  static_assert(std::is_floating_point_v<T>, "rfft_plan: T must be float or double");

 public:
  using complex_type = std::complex<T>;

  explicit rfft_plan(std::size_t n)
      : n_((detail::check_fast_len("rfft_plan", n), n)), core_(n % 2 == 0 ? n / 2 : n) {
    if (n % 2 == 0) {
      const std::size_t half = n / 2;
      for (std::size_t k = 0; k <= half / 2; ++k) {
        const auto w = detail::fft_core<T>::unit_root(k, n);
        fixup_re_.push_back(w[0]);
        fixup_im_.push_back(w[1]);
      }
    }
  }

  std::size_t size() const noexcept { return n_; }
  /// The number of spectrum bins, n/2 + 1.
  std::size_t spectrum_size() const noexcept { return n_ / 2 + 1; }
  /// The number of complex points of the packed lane transform: n/2 for even n.
  std::size_t packed_size() const noexcept { return core_.size(); }
  /// Scratch needed by forward/backward on views, in elements of T.
  std::size_t scratch_size() const noexcept { return 4 * core_.size(); }

  /// X = rDFT(x): x has n elements, X has n/2 + 1; any strides. \throws ssmkit::error on bad views.
  template <class Arch = default_arch>
  void forward(const_view<T, 1> x, tensor_view<complex_type, 1> X, tensor_view<T, 1> scratch) const {
    const char* fn = "rfft_plan::forward";
    detail::check_shape(fn, "x", x, {n_});
    detail::check_shape(fn, "X", X, {spectrum_size()});
    check_common(fn, x, X, scratch);
    const std::size_t m = core_.size();
    T* re = scratch.data();
    T* im = re + m;
    T* wre = im + m;
    T* wim = wre + m;
    if (n_ % 2 == 0) {
      for (std::size_t j = 0; j < m; ++j) re[j] = x(2 * j), im[j] = x(2 * j + 1);
      const bool in_work = forward_packed<Arch>(re, im, wre, wim, 1);
      const T* rr = in_work ? wre : re;
      const T* ri = in_work ? wim : im;
      X(0) = complex_type(rr[0], 0);
      X(m) = complex_type(ri[0], 0);
      for (std::size_t k = 1; k < m; ++k) X(k) = complex_type(rr[k], ri[k]);
    } else {
      for (std::size_t j = 0; j < m; ++j) re[j] = x(j), im[j] = 0;
      const bool in_work = core_.template execute<Arch>(re, im, wre, wim, 1, false);
      const T* rr = in_work ? wre : re;
      const T* ri = in_work ? wim : im;
      for (std::size_t k = 0; k < spectrum_size(); ++k) X(k) = complex_type(rr[k], ri[k]);
    }
  }
  template <class Arch = default_arch>
  void forward(const_view<T, 1> x, tensor_view<complex_type, 1> X) const {
    std::vector<T> scratch(scratch_size());
    forward<Arch>(x, X, make_view(scratch, scratch.size()));
  }

  /// x = n * IDFT(X) for the Hermitian spectrum X (n/2 + 1 bins). \throws ssmkit::error on bad views.
  template <class Arch = default_arch>
  void backward(const_view<complex_type, 1> X, tensor_view<T, 1> x, tensor_view<T, 1> scratch) const {
    const char* fn = "rfft_plan::backward";
    detail::check_shape(fn, "X", X, {spectrum_size()});
    detail::check_shape(fn, "x", x, {n_});
    check_common(fn, X, x, scratch);
    const std::size_t m = core_.size();
    T* re = scratch.data();
    T* im = re + m;
    T* wre = im + m;
    T* wim = wre + m;
    if (n_ % 2 == 0) {
      re[0] = X(0).real();
      im[0] = X(m).real();
      for (std::size_t k = 1; k < m; ++k) re[k] = X(k).real(), im[k] = X(k).imag();
      const bool in_work = backward_packed<Arch>(re, im, wre, wim, 1);
      const T* rr = in_work ? wre : re;
      const T* ri = in_work ? wim : im;
      for (std::size_t j = 0; j < m; ++j) x(2 * j) = rr[j], x(2 * j + 1) = ri[j];
    } else {
      re[0] = X(0).real();
      im[0] = 0;
      for (std::size_t k = 1; k < spectrum_size(); ++k) {
        re[k] = X(k).real(), im[k] = X(k).imag();
        re[m - k] = X(k).real(), im[m - k] = -X(k).imag();
      }
      const bool in_work = core_.template execute<Arch>(re, im, wre, wim, 1, true);
      const T* rr = in_work ? wre : re;
      for (std::size_t j = 0; j < m; ++j) x(j) = rr[j];
    }
  }
  template <class Arch = default_arch>
  void backward(const_view<complex_type, 1> X, tensor_view<T, 1> x) const {
    std::vector<T> scratch(scratch_size());
    backward<Arch>(X, x, make_view(scratch, scratch.size()));
  }

  /// The many-transform entry for even n (m = n/2): `lanes` real signals in the packed lane layout,
  /// re[j*lanes + l] = x_l[2j], im[j*lanes + l] = x_l[2j+1], j < m. On return the packed spectrum:
  /// slot 0 holds (X_0, X_{n/2}) (both real), slot k in 1..m-1 holds X_k. Returns true when the
  /// result is in (work_re, work_im). Unchecked.
  template <class Arch = default_arch>
  bool forward_packed(T* re, T* im, T* work_re, T* work_im, std::size_t lanes) const noexcept {
    const bool in_work = core_.template execute<Arch>(re, im, work_re, work_im, lanes, false);
    T* rr = in_work ? work_re : re;
    T* ri = in_work ? work_im : im;
    detail::rfft_forward_fixup<T, Arch>(core_.size(), lanes, rr, ri, fixup_re_.data(), fixup_im_.data());
    return in_work;
  }

  /// The inverse of forward_packed, unnormalised: from a packed spectrum to n * x in the packed
  /// lane layout. Returns true when the result is in (work_re, work_im). Unchecked.
  template <class Arch = default_arch>
  bool backward_packed(T* re, T* im, T* work_re, T* work_im, std::size_t lanes) const noexcept {
    detail::rfft_inverse_fixup<T, Arch>(core_.size(), lanes, re, im, fixup_re_.data(), fixup_im_.data());
    return core_.template execute<Arch>(re, im, work_re, work_im, lanes, true);
  }

  /// The inverse fix-up alone (in place on the packed spectrum), for callers that fuse it with a
  /// pointwise product; follow it with `packed_backward_fft`.
  template <class Arch = default_arch>
  void inverse_fixup(T* re, T* im, std::size_t lanes) const noexcept {
    detail::rfft_inverse_fixup<T, Arch>(core_.size(), lanes, re, im, fixup_re_.data(), fixup_im_.data());
  }
  /// out = inverse_fixup(X * K) for packed spectra X and K (lane layout), in one pass; out may be
  /// X exactly. Follow it with `packed_backward_fft` to finish a convolution.
  template <class Arch = default_arch>
  void multiply_inverse_fixup(const T* xr, const T* xi, const T* kr, const T* ki, T* out_r, T* out_i,
                              std::size_t lanes) const noexcept {
    detail::rfft_multiply_inverse_fixup<T, Arch>(core_.size(), lanes, xr, xi, kr, ki, out_r, out_i, fixup_re_.data(),
                                                 fixup_im_.data());
  }
  /// The complex inverse FFT of size n/2 alone (after inverse_fixup or multiply_inverse_fixup).
  template <class Arch = default_arch>
  bool packed_backward_fft(T* re, T* im, T* work_re, T* work_im, std::size_t lanes) const noexcept {
    return core_.template execute<Arch>(re, im, work_re, work_im, lanes, true);
  }

 private:
  template <class A, class B>
  void check_common(const char* fn, const A& in, const B& out, tensor_view<T, 1> scratch) const {
    detail::check_data(fn, "input", in);
    detail::check_data(fn, "output", out);
    detail::check_data(fn, "scratch", scratch);
    detail::require(scratch.extent(0) >= scratch_size(), fn, "scratch has shape ",
                    detail::format_shape(scratch.extents()), ", expected (>= ", scratch_size(), ")");
    detail::require(scratch.stride(0) == 1, fn, "scratch must be contiguous");
  }

  std::size_t n_;
  detail::fft_core<T> core_;
  std::vector<T> fixup_re_, fixup_im_;
};

}  // namespace ssmkit
