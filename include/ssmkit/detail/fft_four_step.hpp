#pragma once
/// \file detail/fft_four_step.hpp
/// The real FFT of size n = 2M that fft_conv runs, many signals at once (one per lane), split in
/// four steps (Bailey, "FFTs in external or hierarchical memory", 1990) so that every sub-FFT
/// runs in L1/L2 instead of streaming the whole array through L3 once per radix pass.
///
/// With M = M1 * M2, the packed signal z_j = x_2j + i x_2j+1 (j = M2 j1 + j2) and k = k1 + M1 k2:
///   Z_k = sum_j2 w_M2^(j2 k2) [ w_M^(j2 k1) sum_j1 z_(M2 j1 + j2) w_M1^(j1 k1) ].
/// Step 1 runs the column FFTs of size M1 (blocks of adjacent columns at once, through a small
/// buffer) and applies w_M^(j2 k1); step 2 runs the row FFTs of size M2. Both work in place on
/// the caller's array, which the caller fills (and later reads) sequentially in time: gathering
/// straight from a (B, L, H) input in column order would jump 2*M2 rows per element, a TLB miss
/// each, and measured slower than the extra sequential pass. The spectrum stays in this transposed order (slot M2 k1 + k2 holds
/// Z_k): the pointwise product does not care, the real fix-up pairs slots through a precomputed
/// list, and the inverse undoes the steps in reverse order, so no transpose is ever made.
/// M2 = 1 is the plain Stockham FFT in natural order (used while the whole array fits in L2).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <ssmkit/detail/batch.hpp>
#include <ssmkit/detail/fft_kernels.hpp>
#include <ssmkit/fft.hpp>

namespace ssmkit::detail {

template <class T>
class four_step_rfft {
 public:
  four_step_rfft() = default;

  /// n even and 5-smooth. split_above: the largest M run as one Stockham FFT (M2 = 1).
  four_step_rfft(std::size_t n, std::size_t split_above) : n_(n), M_(n / 2) {
    M1_ = M_;
    M2_ = 1;
    if (M_ > split_above) {
      // The largest divisor of M not above sqrt(M): every divisor of a 5-smooth M is 5-smooth.
      // (Choosing the divisor with the fewest radix passes instead, 256 x 64 for 16384, measured
      // no faster.)
      for (std::size_t d = 1; d * d <= M_; ++d) {
        if (M_ % d == 0) M2_ = d;
      }
      M1_ = M_ / M2_;
    }
    core1_ = fft_core<T>(M1_);
    core2_ = fft_core<T>(M2_);
    if (M2_ > 1) {
      tw_re_.resize(M_);
      tw_im_.resize(M_);
      for (std::size_t j2 = 0; j2 < M2_; ++j2) {
        for (std::size_t k1 = 0; k1 < M1_; ++k1) {
          const auto w = fft_core<T>::unit_root(j2 * k1, M_);
          tw_re_[j2 * M1_ + k1] = w[0];
          tw_im_[j2 * M1_ + k1] = w[1];
        }
      }
    }
    // The fix-up pairs (k, M - k), k <= M/2, as slots of the transposed order, with w_n^k.
    // In storage order of p, so that the pass streams forwards through p and backwards through q.
    for (std::size_t k1 = 0; k1 < M1_; ++k1) {
      for (std::size_t k2 = 0; k2 < M2_; ++k2) {
        const std::size_t k = k1 + M1_ * k2;
        if (2 * k > M_) continue;
        const std::size_t p = M2_ * k1 + k2;
        const std::size_t q = k == 0 ? 0 : (k1 > 0 ? M2_ * (M1_ - k1) + (M2_ - 1 - k2) : M2_ - k2);
        pair_p_.push_back(static_cast<std::uint32_t>(p));
        pair_q_.push_back(static_cast<std::uint32_t>(q));
        const auto w = fft_core<T>::unit_root(k, n_);
        fix_re_.push_back(w[0]);
        fix_im_.push_back(w[1]);
      }
    }
  }

  std::size_t size() const noexcept { return n_; }
  std::size_t half() const noexcept { return M_; }
  std::size_t rows() const noexcept { return M1_; }
  std::size_t cols() const noexcept { return M2_; }
  /// Elements of T of each of the four small buffers (sr, si, wr, wi) per lane.
  std::size_t small_size() const noexcept { return std::max(M1_ * std::min(block, M2_), M2_); }

  /// Columns transformed together in steps 1 and 4: the B adjacent elements of one row are B
  /// adjacent cache lines (one lane group each), so the strided column access reads whole runs
  /// of lines, and the sub-FFT runs on B * lanes lanes.
  static constexpr std::size_t block = 4;  // 2 and 8 measured the same

  /// Forward, in place: (ar, ai) holds the packed signals z_j (natural order, M*lanes T's each)
  /// and receives the packed half spectrum (transposed order, slot 0 = (X_0, X_M)).
  /// s*, w*: small buffers of small_size()*lanes T's each.
  template <class Arch>
  void forward(T* ar, T* ai, T* sr, T* si, T* wr, T* wi, std::size_t lanes) const {
    columns_transform<Arch>(ar, ai, sr, si, wr, wi, lanes, false);
    rows_transform<Arch>(ar, ai, wr, wi, lanes, false);
    forward_fixup<Arch>(ar, ai, lanes);
  }

  /// out = inverse_fixup(X * (K + d)) on packed transposed spectra, d[l] a real constant per lane
  /// (the spectrum of d times a unit impulse: a skip connection d u folded into the product); out
  /// may be X exactly.
  template <class Arch>
  void multiply_inverse_fixup(const T* xr, const T* xi, const T* kr, const T* ki, const T* d, T* out_r, T* out_i,
                              std::size_t lanes) const noexcept {
    using V = batch_t<T, Arch>;
    constexpr std::size_t width = width_v<T, Arch>;
    for (std::size_t i = 0; i < pair_p_.size(); ++i) {
      const std::size_t p0 = pair_p_[i] * lanes, q0 = pair_q_[i] * lanes;
      const V wr(fix_re_[i]), wi(-fix_im_[i]);
      for (std::size_t l = 0; l < lanes; l += width) {
        const std::size_t p = p0 + l, q = q0 + l;
        const V dv = detail::load<Arch>(d + l);
        if (i == 0) {
          const V a = detail::load<Arch>(xr + p) * (detail::load<Arch>(kr + p) + dv);
          const V b = detail::load<Arch>(xi + p) * (detail::load<Arch>(ki + p) + dv);
          detail::store(out_r + p, a + b);
          detail::store(out_i + p, a - b);
          continue;
        }
        V ar = detail::load<Arch>(xr + p), ai = detail::load<Arch>(xi + p);
        V br = detail::load<Arch>(xr + q), bi = detail::load<Arch>(xi + q);
        fft_twiddle(ar, ai, detail::load<Arch>(kr + p) + dv, detail::load<Arch>(ki + p));
        fft_twiddle(br, bi, detail::load<Arch>(kr + q) + dv, detail::load<Arch>(ki + q));
        const V er = ar + br, ei = ai - bi;
        V dr = ar - br, di = ai + bi;
        fft_twiddle(dr, di, wr, wi);
        detail::store(out_r + p, er - di);
        detail::store(out_i + p, ei + dr);
        detail::store(out_r + q, er + di);
        detail::store(out_i + q, dr - ei);
      }
    }
  }

  /// Inverse, in place (after multiply_inverse_fixup), unnormalised: (pr, pi) receives
  /// n * (x_2j + i x_2j+1) in natural order.
  template <class Arch>
  void inverse(T* pr, T* pi, T* sr, T* si, T* wr, T* wi, std::size_t lanes) const {
    rows_transform<Arch>(pr, pi, wr, wi, lanes, true);
    columns_transform<Arch>(pr, pi, sr, si, wr, wi, lanes, true);
  }

 private:
  /// dst[0..count) = src[0..count), count a multiple of the width: the runs here are a few cache
  /// lines long, too short for memmove's call overhead to pay off.
  template <class Arch>
  static void copy_lanes(const T* src, T* dst, std::size_t count) noexcept {
    constexpr std::size_t width = width_v<T, Arch>;
    for (std::size_t l = 0; l < count; l += width) detail::store(dst + l, detail::load<Arch>(src + l));
  }

  /// Steps 1 (forward: FFT then twiddle) and 4 (inverse: conjugate twiddle then FFT) on blocks of
  /// adjacent columns, in place: column j2 is the slots M2 * j1 + j2.
  template <class Arch>
  void columns_transform(T* ar, T* ai, T* sr, T* si, T* wr, T* wi, std::size_t lanes, bool inverse) const {
    using V = batch_t<T, Arch>;
    constexpr std::size_t width = width_v<T, Arch>;
    if (M2_ == 1) {
      if (core1_.template execute<Arch>(ar, ai, wr, wi, lanes, inverse)) {
        std::copy(wr, wr + M1_ * lanes, ar);
        std::copy(wi, wi + M1_ * lanes, ai);
      }
      return;
    }
    const T sign = inverse ? T(-1) : T(1);
    for (std::size_t j2 = 0; j2 < M2_; j2 += block) {
      const std::size_t nb = std::min(block, M2_ - j2);
      const std::size_t bl = nb * lanes;  // lanes of the column block
      // Gather (forward: plain copy; inverse: times the conjugate twiddle).
      for (std::size_t k1 = 0; k1 < M1_; ++k1) {
        const T* xr = ar + (M2_ * k1 + j2) * lanes;
        const T* xi = ai + (M2_ * k1 + j2) * lanes;
        T* dr = sr + k1 * bl;
        T* di = si + k1 * bl;
        if (!inverse || j2 + nb <= 1 || k1 == 0) {
          copy_lanes<Arch>(xr, dr, bl);
          copy_lanes<Arch>(xi, di, bl);
          continue;
        }
        for (std::size_t c = 0; c < nb; ++c) {
          const std::size_t col = j2 + c;
          const V twr(tw_re_[col * M1_ + k1]), twi(-tw_im_[col * M1_ + k1]);
          for (std::size_t l = c * lanes; l < (c + 1) * lanes; l += width) {
            V vr = detail::load<Arch>(xr + l), vi = detail::load<Arch>(xi + l);
            fft_twiddle(vr, vi, twr, twi);
            detail::store(dr + l, vr);
            detail::store(di + l, vi);
          }
        }
      }
      const bool in_w = core1_.template execute<Arch>(sr, si, wr, wi, bl, inverse);
      const T* rr = in_w ? wr : sr;
      const T* ri = in_w ? wi : si;
      // Scatter back (forward: times the twiddle; inverse: plain copy).
      for (std::size_t k1 = 0; k1 < M1_; ++k1) {
        T* dr = ar + (M2_ * k1 + j2) * lanes;
        T* di = ai + (M2_ * k1 + j2) * lanes;
        const T* xr = rr + k1 * bl;
        const T* xi = ri + k1 * bl;
        if (inverse || j2 + nb <= 1 || k1 == 0) {
          copy_lanes<Arch>(xr, dr, bl);
          copy_lanes<Arch>(xi, di, bl);
          continue;
        }
        for (std::size_t c = 0; c < nb; ++c) {
          const std::size_t col = j2 + c;
          const V twr(tw_re_[col * M1_ + k1]), twi(sign * tw_im_[col * M1_ + k1]);
          for (std::size_t l = c * lanes; l < (c + 1) * lanes; l += width) {
            V vr = detail::load<Arch>(xr + l), vi = detail::load<Arch>(xi + l);
            fft_twiddle(vr, vi, twr, twi);
            detail::store(dr + l, vr);
            detail::store(di + l, vi);
          }
        }
      }
    }
  }

  template <class Arch>
  void rows_transform(T* ar, T* ai, T* wr, T* wi, std::size_t lanes, bool inverse) const noexcept {
    if (M2_ == 1) return;
    for (std::size_t k1 = 0; k1 < M1_; ++k1) {
      T* rr = ar + M2_ * k1 * lanes;
      T* ri = ai + M2_ * k1 * lanes;
      if (core2_.template execute<Arch>(rr, ri, wr, wi, lanes, inverse)) {
        std::copy(wr, wr + M2_ * lanes, rr);
        std::copy(wi, wi + M2_ * lanes, ri);
      }
    }
  }

  template <class Arch>
  void forward_fixup(T* re, T* im, std::size_t lanes) const noexcept {
    using V = batch_t<T, Arch>;
    constexpr std::size_t width = width_v<T, Arch>;
    const V half(T(0.5));
    for (std::size_t i = 0; i < pair_p_.size(); ++i) {
      const std::size_t p0 = pair_p_[i] * lanes, q0 = pair_q_[i] * lanes;
      const V wr(fix_re_[i]), wi(fix_im_[i]);
      for (std::size_t l = 0; l < lanes; l += width) {
        const std::size_t p = p0 + l, q = q0 + l;
        if (i == 0) {
          const V a = detail::load<Arch>(re + p), b = detail::load<Arch>(im + p);
          detail::store(re + p, a + b);
          detail::store(im + p, a - b);
          continue;
        }
        const V ar = detail::load<Arch>(re + p), ai = detail::load<Arch>(im + p);
        const V br = detail::load<Arch>(re + q), bi = detail::load<Arch>(im + q);
        const V er = half * (ar + br), ei = half * (ai - bi);
        V or_ = half * (ai + bi), oi = half * (br - ar);
        fft_twiddle(or_, oi, wr, wi);
        detail::store(re + q, er - or_);
        detail::store(im + q, oi - ei);
        detail::store(re + p, er + or_);
        detail::store(im + p, ei + oi);
      }
    }
  }

  std::size_t n_ = 0, M_ = 0, M1_ = 0, M2_ = 1;
  fft_core<T> core1_, core2_;
  std::vector<T> tw_re_, tw_im_;
  std::vector<std::uint32_t> pair_p_, pair_q_;
  std::vector<T> fix_re_, fix_im_;
};

}  // namespace ssmkit::detail
