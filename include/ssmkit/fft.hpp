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
///   - `forward` / `backward` on rank-2 views (count, n) -- the batched interface, for many
///     transforms of one size (channels x batch) -- run the many-transform path: the signals are
///     gathered, width_v<T, Arch> at a time (16 floats or 8 doubles with AVX-512, 8 / 4 with AVX2,
///     1 on the scalar backend), into the lane layout, every butterfly of every pass runs one
///     transform per SIMD lane with no shuffles, and the results are scattered back. A last group
///     of fewer signals than lanes is padded with zeros. The gather and scatter of rfft_plan run
///     by W x W register transposes on AVX-512 for full groups of dense rows (unit stride along
///     n), element by element otherwise.
///   - `forward` / `backward` on rank-1 views transform one signal. When the complex size m (n/2
///     for a real FFT of even n) is S * n2 with S = 64 / sizeof(T) (16 floats, 8 doubles) and
///     n2 >= S, and the backend is a SIMD one, the signal runs as two many-transform FFTs (the
///     four-step split, fft_core::execute_split): its n2-point FFTs on S lanes straight from the
///     contiguous signal, a twiddle and transpose pass, then S-point FFTs on n2 lanes, so that
///     every butterfly is vectorised. Otherwise the plain Stockham passes run with lanes = 1:
///     the later passes, whose runs of contiguous elements are at least the SIMD width long, are
///     vectorised within the transform, the first ones run one element at a time.
///   - `forward_lanes` / `backward_lanes` (fft_plan) and `forward_packed` / `backward_packed`
///     (rfft_plan) are the unchecked pointer entries of the many-transform path, for callers that
///     keep their data in the lane layout (fft_conv does: channels in lanes).
/// For many signals, the batched interface is the faster one, by 3.4-5.3x where a single signal
/// cannot be split (small m, or m not a multiple of S) and by up to 2x at most split sizes; a loop
/// of single-signal calls is up to 1.3x faster at float n = 2048-8192 on AVX-512: a lane group is
/// W times larger than one signal and streams through L2, while a split signal stays in L1.
/// docs/fft_conv.md, "Batched transforms", has the measured table and the ratios to FFTW.
///
/// Plans are immutable after construction and safe to share between threads. Scratch space is
/// caller-provided (`scratch_size()` elements of T for one signal, `batch_scratch_size<Arch>()`
/// for the batched interface) or allocated per call by the overloads without it. There is no
/// global state.
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
#include <ssmkit/detail/transpose.hpp>
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
  /// allow_split: precompute the single-signal split (see execute_split); off for its sub-plans.
  explicit fft_core(std::size_t n, bool allow_split = true) : n_(n) {
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
    if (allow_split && n % split_lanes == 0 && n / split_lanes >= split_lanes) {
      const std::size_t n2 = n / split_lanes;
      split_.emplace_back(n2, false);
      split_.emplace_back(split_lanes, false);
      split_tw_re_.resize(n);
      split_tw_im_.resize(n);
      for (std::size_t k2 = 0; k2 < n2; ++k2) {
        for (std::size_t j1 = 0; j1 < split_lanes; ++j1) {
          const auto w = unit_root(j1 * k2, n);
          split_tw_re_[k2 * split_lanes + j1] = w[0];
          split_tw_im_[k2 * split_lanes + j1] = w[1];
        }
      }
    }
  }

  /// The lane count S of the single-signal split: one cache line of T (16 floats, 8 doubles), a
  /// multiple of every backend's width. A constant rather than the backend's width, so that the
  /// plan is the same in every translation unit whatever its flags.
  static constexpr std::size_t split_lanes = 64 / sizeof(T);

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
    if constexpr (width_v<T, Arch> > 1) {
      if (lanes == 1 && !split_.empty()) return execute_split<Arch>(xr, xi, yr, yi);
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
  /// One signal, forward, as two many-transform FFTs (the four-step split of Bailey 1990 with
  /// the transpose in the middle): with n = S n2, j = j1 + S j2 and k = k2 + n2 k1,
  ///   X_k = sum_j1 w_S^(j1 k1) [ w_n^(j1 k2) sum_j2 x_(j1 + S j2) w_n2^(j2 k2) ].
  /// The contiguous signal, read as n2 rows of S, is already the lane layout of the S decimated
  /// signals x_(j1 + S j2): step 1 runs their n2-point FFTs on S lanes. Step 2 multiplies by
  /// w_n^(j1 k2) and transposes, so that step 3, the S-point FFTs over j1, runs on n2 lanes and
  /// writes X in natural order. Every butterfly is then vectorised across lanes; the plain
  /// stride-s passes would run the first log_p(width) passes one element at a time. Returns true
  /// when the result is in (yr, yi).
  template <class Arch>
  bool execute_split(T* xr, T* xi, T* yr, T* yi) const noexcept {
    using V = batch_t<T, Arch>;
    constexpr std::size_t width = width_v<T, Arch>;
    constexpr std::size_t S = split_lanes;
    const std::size_t n2 = n_ / S;
    const bool first_in_y = split_[0].template execute<Arch>(xr, xi, yr, yi, S, false);
    T* ar = first_in_y ? yr : xr;
    T* ai = first_in_y ? yi : xi;
    T* br = first_in_y ? xr : yr;
    T* bi = first_in_y ? xi : yi;
    for (std::size_t i = 0; i < n_; i += width) {
      V vr = V::load_unaligned(ar + i), vi = V::load_unaligned(ai + i);
      fft_twiddle(vr, vi, V::load_unaligned(split_tw_re_.data() + i), V::load_unaligned(split_tw_im_.data() + i));
      vr.store_unaligned(ar + i);
      vi.store_unaligned(ai + i);
    }
    // b[j1 n2 + k2] = a[k2 S + j1], in blocks of 16 rows: a block's reads stay in L1 while each
    // j1 writes a contiguous run.
    constexpr std::size_t rows_per_block = 16;
    for (std::size_t k0 = 0; k0 < n2; k0 += rows_per_block) {
      const std::size_t k1 = std::min(n2, k0 + rows_per_block);
      for (std::size_t j1 = 0; j1 < S; ++j1) {
        for (std::size_t k2 = k0; k2 < k1; ++k2) {
          br[j1 * n2 + k2] = ar[k2 * S + j1];
          bi[j1 * n2 + k2] = ai[k2 * S + j1];
        }
      }
    }
    const bool last_in_a = split_[1].template execute<Arch>(br, bi, ar, ai, n2, false);
    return (last_in_a ? ar : br) == yr;
  }

  std::size_t n_ = 0;
  std::vector<stage> stages_;
  std::vector<T> twiddle_re_, twiddle_im_;
  // The single-signal split, when n = S n2 with n2 >= S: the sub-plans of sizes n2 and S, and
  // w_n^(j1 k2) at k2 S + j1.
  std::vector<fft_core> split_;
  std::vector<T> split_tw_re_, split_tw_im_;
};

/// Throws unless scratch is a dense view of at least `need` elements.
template <class T>
void check_scratch(const char* function, const tensor_view<T, 1>& scratch, std::size_t need) {
  check_data(function, "scratch", scratch);
  require(scratch.extent(0) >= need, function, "scratch has shape ", format_shape(scratch.extents()), ", expected (>= ",
          need, ")");
  require(scratch.stride(0) == 1, function, "scratch has stride ", scratch.stride(0), ", expected 1");
}

/// The four lane arrays of one group of a batched transform (the data pair and the work pair),
/// `per` elements each, carved from a caller's scratch.
template <class T>
struct lane_arrays {
  T* re;
  T* im;
  T* work_re;
  T* work_im;
  lane_arrays(T* p, std::size_t per) noexcept : re(p), im(p + per), work_re(p + 2 * per), work_im(p + 3 * per) {}
};

/// Columns per block of the gathers into (and scatters out of) the lane layout: a block writes
/// (reads) lane_block * lanes consecutive T's of each lane array, which stay in L1 while the
/// `lanes` rows are visited one after another, each read (written) contiguously.
inline constexpr std::size_t lane_block = 16;

/// True when transpose_block runs in registers for Arch (AVX-512), so that the tile gathers and
/// scatters below beat the element-by-element ones.
template <class T, class Arch>
constexpr bool transposes_in_registers() noexcept {
#if XSIMD_WITH_AVX512F
  return !is_scalar_v<Arch> && std::is_base_of_v<xsimd::avx512f, Arch>;
#else
  return false;
#endif
}

/// The columns [0, c_end) of W dense rows (row l at rows + l * row_stride) into two lane arrays:
/// column c of row l goes to (c even ? even_dst : odd_dst)[(c / 2) * W + l]. By W x W register
/// transposes through a tile; c_end is the largest multiple of W <= cols, returned.
template <class T, class Arch>
std::size_t gather_tiles(const T* rows, std::ptrdiff_t row_stride, std::size_t cols, T* even_dst, T* odd_dst) noexcept {
  constexpr std::size_t W = width_v<T, Arch>;
  alignas(64) T tile[W * W];
  std::size_t c0 = 0;
  for (; c0 + W <= cols; c0 += W) {
    transpose_block<T, Arch>(rows + c0, row_stride, tile, static_cast<std::ptrdiff_t>(W));
    for (std::size_t t = 0; t < W; ++t) {
      const std::size_t c = c0 + t;
      load<Arch>(tile + t * W).store_unaligned(((c % 2) ? odd_dst : even_dst) + (c / 2) * W);
    }
  }
  return c0;
}

/// The inverse of gather_tiles: column c of row l from (c even ? even_src : odd_src)[(c / 2) * W + l].
template <class T, class Arch>
std::size_t scatter_tiles(const T* even_src, const T* odd_src, T* rows, std::ptrdiff_t row_stride,
                          std::size_t cols) noexcept {
  constexpr std::size_t W = width_v<T, Arch>;
  alignas(64) T tile[W * W];
  std::size_t c0 = 0;
  for (; c0 + W <= cols; c0 += W) {
    for (std::size_t t = 0; t < W; ++t) {
      const std::size_t c = c0 + t;
      load<Arch>(((c % 2) ? odd_src : even_src) + (c / 2) * W).store_unaligned(tile + t * W);
    }
    transpose_block<T, Arch>(tile, static_cast<std::ptrdiff_t>(W), rows + c0, row_stride);
  }
  return c0;
}

/// Element j of row r of a rank-2 view, by pointer arithmetic (the views are checked by then).
template <class T>
inline T* element(const tensor_view<T, 2>& v, std::size_t r, std::size_t j) noexcept {
  return v.data() + static_cast<std::ptrdiff_t>(r) * v.stride(0) + static_cast<std::ptrdiff_t>(j) * v.stride(1);
}

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

  /// Scratch needed by the batched forward/backward (rank-2 views), in elements of T: the four
  /// lane arrays of one group of width_v<T, Arch> signals, whatever the count.
  template <class Arch = default_arch>
  std::size_t batch_scratch_size() const noexcept {
    return 4 * size() * detail::width_v<T, Arch>;
  }

  /**
   * Batched: y[i, :] = DFT(x[i, :]) for each of the `count` rows of x (count, n) into y (count, n).
   * Any strides (a (n, count) buffer is `make_view(p, n, count).transposed(0, 1)`); y may alias x
   * exactly (in place). Runs the many-transform path, width_v<T, Arch> signals per group, one per
   * SIMD lane (see the file comment); each row's result is bitwise the same whichever group and
   * lane it runs in. count == 0 does nothing.
   * \throws ssmkit::error when x or y has the wrong shape (y must be (count, n) with count =
   *         x.extent(0)), is a null view, or scratch is smaller than batch_scratch_size<Arch>() or
   *         not dense; nothing is written then.
   * Numerics: the same as the single-signal transform, O(eps log2 n) normwise per row.
   */
  template <class Arch = default_arch>
  void forward(const_view<complex_type, 2> x, tensor_view<complex_type, 2> y, tensor_view<T, 1> scratch) const {
    run_batch<Arch>("fft_plan::forward", x, y, scratch, false);
  }
  template <class Arch = default_arch>
  void forward(const_view<complex_type, 2> x, tensor_view<complex_type, 2> y) const {
    std::vector<T> scratch(batch_scratch_size<Arch>());
    run_batch<Arch>("fft_plan::forward", x, y, make_view(scratch, scratch.size()), false);
  }
  /// Batched y[i, :] = n * IDFT(x[i, :]). Same conventions as the batched forward.
  template <class Arch = default_arch>
  void backward(const_view<complex_type, 2> x, tensor_view<complex_type, 2> y, tensor_view<T, 1> scratch) const {
    run_batch<Arch>("fft_plan::backward", x, y, scratch, true);
  }
  template <class Arch = default_arch>
  void backward(const_view<complex_type, 2> x, tensor_view<complex_type, 2> y) const {
    std::vector<T> scratch(batch_scratch_size<Arch>());
    run_batch<Arch>("fft_plan::backward", x, y, make_view(scratch, scratch.size()), true);
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
    detail::check_scratch(function, scratch, scratch_size());
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

  template <class Arch>
  void run_batch(const char* function, const_view<complex_type, 2> x, tensor_view<complex_type, 2> y,
                 tensor_view<T, 1> scratch, bool inverse) const {
    constexpr std::size_t lanes = detail::width_v<T, Arch>;
    const std::size_t n = size(), count = x.extent(0);
    detail::check_shape(function, "x", x, {count, n});
    detail::check_shape(function, "y", y, {count, n});
    detail::check_data(function, "x", x);
    detail::check_data(function, "y", y);
    detail::check_scratch(function, scratch, batch_scratch_size<Arch>());
    const std::size_t per = n * lanes;
    const auto [re, im, wre, wim] = detail::lane_arrays<T>(scratch.data(), per);
    for (std::size_t first = 0; first < count; first += lanes) {
      const std::size_t active = std::min(lanes, count - first);
      if (active < lanes) {  // the padding lanes: zeros, not stale values (NaN, denormals)
        std::fill(re, re + per, T(0));
        std::fill(im, im + per, T(0));
      }
      for (std::size_t j0 = 0; j0 < n; j0 += detail::lane_block) {
        const std::size_t j1 = std::min(n, j0 + detail::lane_block);
        for (std::size_t l = 0; l < active; ++l) {
          const complex_type* src = detail::element(x, first + l, 0);
          const std::ptrdiff_t s = x.stride(1);
          for (std::size_t j = j0; j < j1; ++j) {
            const complex_type v = src[static_cast<std::ptrdiff_t>(j) * s];
            re[j * lanes + l] = v.real();
            im[j * lanes + l] = v.imag();
          }
        }
      }
      const bool in_work = core_.template execute<Arch>(re, im, wre, wim, lanes, inverse);
      const T* rr = in_work ? wre : re;
      const T* ri = in_work ? wim : im;
      for (std::size_t j0 = 0; j0 < n; j0 += detail::lane_block) {
        const std::size_t j1 = std::min(n, j0 + detail::lane_block);
        for (std::size_t l = 0; l < active; ++l) {
          complex_type* dst = detail::element(y, first + l, 0);
          const std::ptrdiff_t s = y.stride(1);
          for (std::size_t j = j0; j < j1; ++j) {
            dst[static_cast<std::ptrdiff_t>(j) * s] = complex_type(rr[j * lanes + l], ri[j * lanes + l]);
          }
        }
      }
    }
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

  /// Scratch needed by the batched forward/backward (rank-2 views), in elements of T: the four
  /// lane arrays of one group of width_v<T, Arch> signals, whatever the count.
  template <class Arch = default_arch>
  std::size_t batch_scratch_size() const noexcept {
    return 4 * core_.size() * detail::width_v<T, Arch>;
  }

  /**
   * Batched: X[i, :] = rDFT(x[i, :]) for each of the `count` rows of x (count, n), into X
   * (count, n/2 + 1). Any strides: the (B, H, L) signals of a model are `make_view(p, B*H, L)`,
   * a token-major (L, H) buffer is `make_view(p, L, H).transposed(0, 1)`. Runs the many-transform
   * path, width_v<T, Arch> signals per group, one per SIMD lane (see the file comment). count == 0
   * does nothing.
   * \throws ssmkit::error when x or X has the wrong shape (X must be (count, n/2 + 1) with
   *         count = x.extent(0)), is a null view, or scratch is smaller than
   *         batch_scratch_size<Arch>() or not dense; nothing is written then.
   * Numerics: the same as the single-signal transform, O(eps log2 n) normwise per row.
   */
  template <class Arch = default_arch>
  void forward(const_view<T, 2> x, tensor_view<complex_type, 2> X, tensor_view<T, 1> scratch) const {
    const std::size_t count = x.extent(0);
    const auto [re, im, wre, wim] =
        prepare_batch<Arch>("rfft_plan::forward", "x", x, n_, "X", X, spectrum_size(), scratch);
    constexpr std::size_t lanes = detail::width_v<T, Arch>;
    const std::size_t m = core_.size(), per = m * lanes, bins = spectrum_size();
    const bool even = n_ % 2 == 0;
    for (std::size_t first = 0; first < count; first += lanes) {
      const std::size_t active = std::min(lanes, count - first);
      if (active < lanes || !even) {  // padding lanes, and the zero imaginary part of odd sizes
        std::fill(re, re + per, T(0));
        std::fill(im, im + per, T(0));
      }
      // Even n: slot j holds the pair (x_2j, x_2j+1); odd n: slot j holds x_j.
      const std::size_t per_slot = even ? 2 : 1;
      // Full groups of dense rows: by register transposes, the rest element by element.
      std::size_t j_start = 0;
      if (detail::transposes_in_registers<T, Arch>() && even && active == lanes && x.stride(1) == 1) {
        j_start = detail::gather_tiles<T, Arch>(detail::element(x, first, 0), x.stride(0), n_, re, im) / 2;
      }
      for (std::size_t j0 = j_start; j0 < m; j0 += detail::lane_block) {
        const std::size_t j1 = std::min(m, j0 + detail::lane_block);
        for (std::size_t l = 0; l < active; ++l) {
          const T* src = detail::element(x, first + l, 0);
          const std::ptrdiff_t s = x.stride(1);
          for (std::size_t j = j0; j < j1; ++j) {
            const std::ptrdiff_t t = static_cast<std::ptrdiff_t>(per_slot * j);
            re[j * lanes + l] = src[t * s];
            if (even) im[j * lanes + l] = src[(t + 1) * s];
          }
        }
      }
      const bool in_work = even ? forward_packed<Arch>(re, im, wre, wim, lanes)
                                : core_.template execute<Arch>(re, im, wre, wim, lanes, false);
      const T* rr = in_work ? wre : re;
      const T* ri = in_work ? wim : im;
      // Full groups into dense rows: bins [0, k_start) by register transposes (the row of X seen
      // as 2 (n/2 + 1) T's, which std::complex's layout guarantees), then bin 0 again (slot 0
      // packs two real bins) and the rest element by element.
      std::size_t k_start = 0;
      if (detail::transposes_in_registers<T, Arch>() && even && active == lanes && X.stride(1) == 1) {
        k_start = detail::scatter_tiles<T, Arch>(rr, ri, reinterpret_cast<T*>(detail::element(X, first, 0)),
                                                 2 * X.stride(0), 2 * m) / 2;
        for (std::size_t l = 0; l < lanes; ++l) *detail::element(X, first + l, 0) = complex_type(rr[l], 0);
      }
      for (std::size_t k0 = k_start; k0 < bins; k0 += detail::lane_block) {
        const std::size_t k1 = std::min(bins, k0 + detail::lane_block);
        for (std::size_t l = 0; l < active; ++l) {
          complex_type* dst = detail::element(X, first + l, 0);
          const std::ptrdiff_t s = X.stride(1);
          for (std::size_t k = k0; k < k1; ++k) {
            complex_type v;
            if (even && k == 0) {
              v = complex_type(rr[l], 0);  // slot 0 packs the two real bins (X_0, X_{n/2})
            } else if (even && k == m) {
              v = complex_type(ri[l], 0);
            } else {
              v = complex_type(rr[k * lanes + l], ri[k * lanes + l]);
            }
            dst[static_cast<std::ptrdiff_t>(k) * s] = v;
          }
        }
      }
    }
  }
  template <class Arch = default_arch>
  void forward(const_view<T, 2> x, tensor_view<complex_type, 2> X) const {
    std::vector<T> scratch(batch_scratch_size<Arch>());
    forward<Arch>(x, X, make_view(scratch, scratch.size()));
  }

  /// Batched x[i, :] = n * IDFT(X[i, :]) for the Hermitian spectra X (count, n/2 + 1) into x
  /// (count, n); the imaginary parts of X_0 and (even n) X_{n/2} are ignored. Same conventions
  /// and errors as the batched forward.
  template <class Arch = default_arch>
  void backward(const_view<complex_type, 2> X, tensor_view<T, 2> x, tensor_view<T, 1> scratch) const {
    const std::size_t count = X.extent(0);
    const auto [re, im, wre, wim] =
        prepare_batch<Arch>("rfft_plan::backward", "X", X, spectrum_size(), "x", x, n_, scratch);
    constexpr std::size_t lanes = detail::width_v<T, Arch>;
    const std::size_t m = core_.size(), per = m * lanes, bins = spectrum_size();
    const bool even = n_ % 2 == 0;
    for (std::size_t first = 0; first < count; first += lanes) {
      const std::size_t active = std::min(lanes, count - first);
      if (active < lanes) {
        std::fill(re, re + per, T(0));
        std::fill(im, im + per, T(0));
      }
      // Full groups from dense rows: bins [0, k_start) by register transposes (slot 0's im, X_0's
      // imaginary part, is then overwritten by X_{n/2} below), the rest element by element.
      std::size_t k_start = 0;
      if (detail::transposes_in_registers<T, Arch>() && even && active == lanes && X.stride(1) == 1) {
        k_start = detail::gather_tiles<T, Arch>(reinterpret_cast<const T*>(detail::element(X, first, 0)),
                                                2 * X.stride(0), 2 * m, re, im) / 2;
      }
      for (std::size_t k0 = k_start; k0 < bins; k0 += detail::lane_block) {
        const std::size_t k1 = std::min(bins, k0 + detail::lane_block);
        for (std::size_t l = 0; l < active; ++l) {
          const complex_type* src = detail::element(X, first + l, 0);
          const std::ptrdiff_t s = X.stride(1);
          for (std::size_t k = k0; k < k1; ++k) {
            const complex_type v = src[static_cast<std::ptrdiff_t>(k) * s];
            if (even) {
              // The packed spectrum: slot 0 = (X_0, X_{n/2}) real parts, slot k = X_k.
              if (k == 0) {
                re[l] = v.real();
              } else if (k == m) {
                im[l] = v.real();
              } else {
                re[k * lanes + l] = v.real();
                im[k * lanes + l] = v.imag();
              }
            } else if (k == 0) {
              re[l] = v.real();
              im[l] = 0;
            } else {
              // The full spectrum of a real signal: X_{n-k} = conj X_k.
              re[k * lanes + l] = v.real();
              im[k * lanes + l] = v.imag();
              re[(m - k) * lanes + l] = v.real();
              im[(m - k) * lanes + l] = -v.imag();
            }
          }
        }
      }
      const bool in_work = even ? backward_packed<Arch>(re, im, wre, wim, lanes)
                                : core_.template execute<Arch>(re, im, wre, wim, lanes, true);
      const T* rr = in_work ? wre : re;
      const T* ri = in_work ? wim : im;
      const std::size_t per_slot = even ? 2 : 1;
      std::size_t j_start = 0;
      if (detail::transposes_in_registers<T, Arch>() && even && active == lanes && x.stride(1) == 1) {
        j_start = detail::scatter_tiles<T, Arch>(rr, ri, detail::element(x, first, 0), x.stride(0), n_) / 2;
      }
      for (std::size_t j0 = j_start; j0 < m; j0 += detail::lane_block) {
        const std::size_t j1 = std::min(m, j0 + detail::lane_block);
        for (std::size_t l = 0; l < active; ++l) {
          T* dst = detail::element(x, first + l, 0);
          const std::ptrdiff_t s = x.stride(1);
          for (std::size_t j = j0; j < j1; ++j) {
            const std::ptrdiff_t t = static_cast<std::ptrdiff_t>(per_slot * j);
            dst[t * s] = rr[j * lanes + l];
            if (even) dst[(t + 1) * s] = ri[j * lanes + l];
          }
        }
      }
    }
  }
  template <class Arch = default_arch>
  void backward(const_view<complex_type, 2> X, tensor_view<T, 2> x) const {
    std::vector<T> scratch(batch_scratch_size<Arch>());
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
    detail::check_scratch(fn, scratch, scratch_size());
  }

  /// Validates a batched call, `in` (count, in_length) to `out` (count, out_length) with count =
  /// in.extent(0), and carves the lane arrays of one group from the scratch.
  template <class Arch, class In, class Out>
  detail::lane_arrays<T> prepare_batch(const char* fn, const char* in_name, const In& in, std::size_t in_length,
                                       const char* out_name, const Out& out, std::size_t out_length,
                                       tensor_view<T, 1> scratch) const {
    const std::size_t count = in.extent(0);
    detail::check_shape(fn, in_name, in, {count, in_length});
    detail::check_shape(fn, out_name, out, {count, out_length});
    detail::check_data(fn, in_name, in);
    detail::check_data(fn, out_name, out);
    detail::check_scratch(fn, scratch, batch_scratch_size<Arch>());
    return {scratch.data(), core_.size() * detail::width_v<T, Arch>};
  }

  std::size_t n_;
  detail::fft_core<T> core_;
  std::vector<T> fixup_re_, fixup_im_;
};

}  // namespace ssmkit
