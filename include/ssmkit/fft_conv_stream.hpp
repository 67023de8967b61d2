#pragma once
/// \file fft_conv_stream.hpp
/// Causal FFT convolution of an unbounded input, chunk by chunk, in memory that does not grow
/// with the input's length: uniformly partitioned overlap-save (Stockham 1966 for overlap-save;
/// the uniform partition of the kernel is the usual one of real-time convolution, e.g. Wefers,
/// "Partitioned convolution algorithms for real-time auralization", 2015, ch. 5).
///
/// Shapes: B batch, H channels, Lk kernel length, Bs the block size (default 4096).
///
///   y[b, t, h] = sum_{s=0}^{min(t, Lk-1)} k[h, s] u[b, t-s, h] + D[h] u[b, t, h],   t = 0, 1, 2, ...
///
/// over all the chunks given so far, as if they were one input: the same formula as the causal
/// fft_conv with one kernel channel, but without a bound on t.
///
/// Algorithm: the kernel is cut into P = ceil(Lk / Bs) partitions of Bs taps; each partition's
/// spectrum (real FFT of size n = 2 Bs, scaled by 1/n) is computed once. Input block j (Bs tokens)
/// is transformed together with block j-1; the output of block j is the inverse transform of
/// sum_p X_{j-p} K_p, whose last Bs samples are free of circular wrap. The spectra of the last P
/// blocks are kept in a ring (the frequency-domain delay line); the part of the sum with p >= 1
/// is computed once per block, when its first token arrives. A chunk that ends inside a block is
/// answered at once: the block's unfinished part counts as zeros, which is exact for the tokens
/// already given (the convolution is causal), and the block is transformed again when more of it
/// arrives. So any chunking gives the same y, and chunks of whole blocks cost one FFT pair per
/// block. Channels go width_v<T, Arch> per lane group, one per lane, as in fft_conv_plan.
///
/// Memory: per (batch, lane group), (P + 3) n + 4 small-buffer lanes of T, plus the kernel
/// spectra, P n per lane group: O(H (P + 1) Bs) = O(H (Lk + Bs)), fixed at construction and
/// independent of how many tokens are processed (`memory_size()` reports it; process() never
/// allocates).
///
/// Numerics: each output is a sum of P + 1 FFT-convolution terms, each within O(eps log2 n) of its
/// exact value relative to the sum of |k u| it covers, so the error is O(eps log2 n) relative to
/// S = max_t (sum_s |k_s u_{t-s}| + |D u_t|), and does not grow with t.

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/batch.hpp>
#include <ssmkit/detail/fft_four_step.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/fft.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// Options of fft_conv_stream.
struct fft_conv_stream_options {
  /// Tokens per block, Bs: a 5-smooth size (2^a 3^b 5^c, see next_fast_len). The FFT size is 2 Bs.
  /// Larger blocks cost fewer operations per token for long kernels and more memory.
  std::size_t block = 4096;
  parallel_options parallel{};
};

/**
 * A causal convolution over an unbounded stream of inputs, for a fixed kernel k (H, Lk), an
 * optional skip D (H) and a fixed batch size B; see the file comment.
 *
 * Not thread-safe: process() changes the stream's state (one object per stream). The kernel's
 * spectra could be shared, but are owned here for simplicity.
 */
template <class T, class Arch = default_arch>
class fft_conv_stream {
  static_assert(std::is_floating_point_v<T>, "fft_conv_stream: T must be float or double");

 public:
  static constexpr std::size_t lanes = detail::width_v<T, Arch>;

  /**
   * \param k      (H, Lk) kernel, any strides, Lk >= 1, H >= 1.
   * \param D      (H) skip weights, or a default-constructed view for none.
   * \param batch  B >= 1, the batch size of every chunk.
   * \throws ssmkit::error on bad shapes, a null view, B == 0, or a block size that is 0 or not
   *         5-smooth.
   */
  fft_conv_stream(const_view<T, 2> k, const_view<T, 1> D, std::size_t batch, fft_conv_stream_options options = {})
      : options_(options) {
    constexpr const char* fn = "fft_conv_stream";
    detail::check_data(fn, "k", k);
    detail::check_data(fn, "D", D);
    if (k.extent(0) < 1 || k.extent(1) < 1) {
      detail::throw_error(fn, "k has shape ", detail::format_shape(k.extents()), ", expected (>= 1, >= 1)");
    }
    H_ = k.extent(0);
    Lk_ = k.extent(1);
    has_D_ = D.data() != nullptr || !D.empty();
    if (has_D_) detail::check_shape(fn, "D", D, {H_});
    detail::require(batch >= 1, fn, "batch must be >= 1, got 0");
    detail::require(options.block >= 1 && is_fast_len(options.block), fn, "block ", options.block,
                    " is not of the form 2^a 3^b 5^c (next_fast_len gives ",
                    next_fast_len(std::max<std::size_t>(options.block, 1)), ")");
    B_ = batch;
    Bs_ = options.block;
    n_ = 2 * Bs_;
    M_ = Bs_;
    P_ = (Lk_ + Bs_ - 1) / Bs_;
    groups_ = (H_ + lanes - 1) / lanes;
    fft_ = detail::four_step_rfft<T>(n_, split_above);
    small_ = fft_.small_size() * lanes;
    per_ = M_ * lanes;

    // Kernel partitions: spectrum (g, p) at spectra_[((g * P + p) * 2) * per_], re then im.
    spectra_.reserve(groups_ * P_ * 2 * per_);
    if (has_D_) {
      D_.assign(groups_ * lanes, T(0));
      for (std::size_t h = 0; h < H_; ++h) D_[h] = D(h);
    }
    one_.assign(lanes, T(1));
    zero_spectrum_.reserve(per_);
    std::vector<T> small(4 * small_);
    const T scale = T(1) / static_cast<T>(n_);
    for (std::size_t g = 0; g < groups_; ++g) {
      for (std::size_t p = 0; p < P_; ++p) {
        T* re = spectrum(g, p);
        T* im = re + per_;
        for (std::size_t l = 0; l < lanes && g * lanes + l < H_; ++l) {
          const std::size_t h = g * lanes + l;
          for (std::size_t s = 0; s < Bs_ && p * Bs_ + s < Lk_; ++s) {
            (s % 2 == 0 ? re : im)[(s / 2) * lanes + l] = k(h, p * Bs_ + s);
          }
        }
        fft_.template forward<Arch>(re, im, small.data(), small.data() + small_, small.data() + 2 * small_,
                                    small.data() + 3 * small_, lanes);
        for (std::size_t i = 0; i < 2 * per_; ++i) re[i] *= scale;
      }
    }
    state_.reserve(B_ * groups_ * state_size());
  }

  std::size_t width() const noexcept { return H_; }
  std::size_t kernel_length() const noexcept { return Lk_; }
  std::size_t batch() const noexcept { return B_; }
  std::size_t block_size() const noexcept { return Bs_; }
  std::size_t fft_size() const noexcept { return n_; }
  /// The number of kernel partitions, ceil(Lk / Bs).
  std::size_t partitions() const noexcept { return P_; }
  /// Tokens processed since construction or reset().
  std::size_t position() const noexcept { return position_; }
  /// Elements of T the stream holds (kernel spectra and state): fixed at construction.
  std::size_t memory_size() const noexcept {
    return spectra_.size() + state_.size() + zero_spectrum_.size() + D_.size() + one_.size();
  }

  /// Forgets all inputs: the next token is t = 0 again.
  void reset() {
    std::fill(state_.data(), state_.data() + state_.size(), T(0));
    position_ = 0;
  }

  /**
   * Consumes the next chunk u (B, c, H) and writes its outputs y (B, c, H); c may be 0 or any
   * length, and need not be the same from call to call. Makes no heap allocation.
   * \throws ssmkit::error on a shape mismatch, a null view or an overlap of y with u; the stream
   *         is unchanged then.
   */
  void process(const_view<T, 3> u, tensor_view<T, 3> y) {
    constexpr const char* fn = "fft_conv_stream::process";
    detail::check_shape(fn, "u", u, {B_, u.extent(1), H_});
    detail::check_shape(fn, "y", y, u.extents());
    detail::check_data(fn, "u", u);
    detail::check_data(fn, "y", y);
    detail::check_no_overlap(fn, "y", y, "u", u);
    const std::size_t c = u.extent(1);
    if (c == 0) return;
    parallel_for(
        std::size_t{0}, B_ * groups_,
        [&](std::size_t task) { run_task(task / groups_, task % groups_, u, y, c); }, options_.parallel);
    position_ += c;
  }

 private:
  /// The largest n/2 transformed as one Stockham FFT: as in fft_conv_plan.
  static constexpr std::size_t split_above = 2048;

  /// Per (batch, group): history (2 Bs time-domain lanes: the previous block, then the current
  /// one), the delay line (P spectra), the partial sum (1 spectrum), the work spectrum (1) and
  /// the small buffers.
  std::size_t state_size() const noexcept { return 2 * per_ + P_ * 2 * per_ + 2 * per_ + 2 * per_ + 4 * small_; }
  T* spectrum(std::size_t g, std::size_t p) noexcept { return spectra_.data() + (g * P_ + p) * 2 * per_; }
  const T* spectrum(std::size_t g, std::size_t p) const noexcept { return spectra_.data() + (g * P_ + p) * 2 * per_; }

  /// acc += x * k on packed half spectra (slot 0 holds the real DC and Nyquist bins separately).
  static void multiply_add(const T* xr, const T* xi, const T* kr, const T* ki, T* ar, T* ai, std::size_t count) noexcept {
    using V = detail::batch_t<T, Arch>;
    for (std::size_t i = 0; i < lanes; i += lanes) {
      detail::store(ar + i, detail::fma(detail::load<Arch>(xr + i), detail::load<Arch>(kr + i), detail::load<Arch>(ar + i)));
      detail::store(ai + i, detail::fma(detail::load<Arch>(xi + i), detail::load<Arch>(ki + i), detail::load<Arch>(ai + i)));
    }
    for (std::size_t i = lanes; i < count; i += lanes) {
      const V a = detail::load<Arch>(xr + i), b = detail::load<Arch>(xi + i);
      const V c = detail::load<Arch>(kr + i), d = detail::load<Arch>(ki + i);
      detail::store(ar + i, detail::fma(a, c, detail::fma(-b, d, detail::load<Arch>(ar + i))));
      detail::store(ai + i, detail::fma(a, d, detail::fma(b, c, detail::load<Arch>(ai + i))));
    }
  }

  void run_task(std::size_t b, std::size_t g, const_view<T, 3> u, tensor_view<T, 3> y, std::size_t c) {
    T* st = state_.data() + (b * groups_ + g) * state_size();
    T* hist = st;                        // 2 Bs lanes, time order
    T* ring = hist + 2 * per_;           // P spectra
    T* partial = ring + P_ * 2 * per_;   // sum_{p >= 1} X_{j-p} K_p of the current block
    T* work = partial + 2 * per_;        // the current block's spectrum, then the product
    T* sr = work + 2 * per_;
    T* si = sr + small_;
    T* wr = si + small_;
    T* wi = wr + small_;
    const std::size_t h0 = g * lanes, active = std::min(lanes, H_ - h0);
    const T* ub = u.data() + static_cast<std::ptrdiff_t>(b) * u.stride(0) + static_cast<std::ptrdiff_t>(h0) * u.stride(2);
    T* yb = y.data() + static_cast<std::ptrdiff_t>(b) * y.stride(0) + static_cast<std::ptrdiff_t>(h0) * y.stride(2);
    const std::ptrdiff_t ut = u.stride(1), uh = u.stride(2), yt = y.stride(1), yh = y.stride(2);
    const bool dense = uh == 1 && yh == 1 && active == lanes;

    std::size_t pos = position_ % Bs_, j = position_ / Bs_;
    for (std::size_t i = 0; i < c;) {
      const std::size_t m = std::min(c - i, Bs_ - pos);
      if (pos == 0) {
        // A new block: the delay line's part of its sum.
        std::fill(partial, partial + 2 * per_, T(0));
        for (std::size_t p = 1; p < P_ && p <= j; ++p) {
          const T* x = ring + ((j - p) % P_) * 2 * per_;
          const T* k = spectrum(g, p);
          multiply_add(x, x + per_, k, k + per_, partial, partial + per_, per_);
        }
      }
      // Append the m new tokens to the current block (hist[Bs + pos ...]).
      T* cur = hist + per_;
      for (std::size_t t = 0; t < m; ++t) {
        const T* src = ub + static_cast<std::ptrdiff_t>(i + t) * ut;
        T* dst = cur + (pos + t) * lanes;
        if (dense) {
          detail::store(dst, detail::load<Arch>(src));
        } else {
          for (std::size_t l = 0; l < active; ++l) dst[l] = src[static_cast<std::ptrdiff_t>(l) * uh];
        }
      }
      // Spectrum of [previous block, current block so far, zeros].
      T* xr = work;
      T* xi = work + per_;
      // (The current block's unfinished part is zero: it is cleared when the block starts.)
      for (std::size_t s = 0; s < M_; ++s) {
        detail::store(xr + s * lanes, detail::load<Arch>(hist + 2 * s * lanes));
        detail::store(xi + s * lanes, detail::load<Arch>(hist + (2 * s + 1) * lanes));
      }
      fft_.template forward<Arch>(xr, xi, sr, si, wr, wi, lanes);
      const bool complete = pos + m == Bs_;
      if (complete) std::copy(work, work + 2 * per_, ring + (j % P_) * 2 * per_);
      // work = partial + X_j K_0, then back to the time domain.
      {
        const T* k = spectrum(g, 0);
        T* pr = partial;
        // The product goes into work itself (x is not needed any more), partial is added first.
        using V = detail::batch_t<T, Arch>;
        for (std::size_t s = 0; s < lanes; s += lanes) {
          detail::store(xr + s, detail::fma(detail::load<Arch>(xr + s), detail::load<Arch>(k + s), detail::load<Arch>(pr + s)));
          detail::store(xi + s, detail::fma(detail::load<Arch>(xi + s), detail::load<Arch>(k + per_ + s), detail::load<Arch>(pr + per_ + s)));
        }
        for (std::size_t s = lanes; s < per_; s += lanes) {
          const V a = detail::load<Arch>(xr + s), bb = detail::load<Arch>(xi + s);
          const V kr = detail::load<Arch>(k + s), ki = detail::load<Arch>(k + per_ + s);
          detail::store(xr + s, detail::fma(a, kr, detail::fma(-bb, ki, detail::load<Arch>(pr + s))));
          detail::store(xi + s, detail::fma(a, ki, detail::fma(bb, kr, detail::load<Arch>(pr + per_ + s))));
        }
      }
      // inverse_fixup(work * (0 + 1)): the plan's fused step with a zero kernel and a unit skip.
      fft_.template multiply_inverse_fixup<Arch>(xr, xi, zero_spectrum_.data(), zero_spectrum_.data(), one_.data(), xr,
                                                 xi, lanes);
      fft_.template inverse<Arch>(xr, xi, sr, si, wr, wi, lanes);
      // Outputs: times Bs + pos .. Bs + pos + m - 1 of the transform.
      for (std::size_t t = 0; t < m; ++t) {
        const std::size_t tt = Bs_ + pos + t;
        const T* slot = (tt % 2 == 0 ? xr : xi) + (tt / 2) * lanes;
        T* dst = yb + static_cast<std::ptrdiff_t>(i + t) * yt;
        const T* now = cur + (pos + t) * lanes;
        if (dense) {
          auto v = detail::load<Arch>(slot);
          if (has_D_) v = detail::fma(detail::load<Arch>(D_.data() + h0), detail::load<Arch>(now), v);
          detail::store(dst, v);
        } else {
          for (std::size_t l = 0; l < active; ++l) {
            dst[static_cast<std::ptrdiff_t>(l) * yh] = has_D_ ? slot[l] + D_[h0 + l] * now[l] : slot[l];
          }
        }
      }
      i += m;
      pos += m;
      if (complete) {
        // The current block becomes the previous one.
        std::copy(cur, cur + per_, hist);
        std::fill(cur, cur + per_, T(0));
        pos = 0;
        ++j;
      }
    }
  }

  fft_conv_stream_options options_;
  std::size_t H_ = 0, Lk_ = 0, B_ = 0, Bs_ = 0, n_ = 0, M_ = 0, P_ = 0, groups_ = 0, small_ = 0, per_ = 0;
  std::size_t position_ = 0;
  bool has_D_ = false;
  detail::four_step_rfft<T> fft_;
  detail::aligned_buffer<T> spectra_, state_, zero_spectrum_;
  std::vector<T, xsimd::aligned_allocator<T, 64>> D_, one_;
};

/**
 * One-shot causal convolution of a long input in blocks: y = fft_conv_stream(k, D).process(u),
 * in memory O(H (Lk + block)) besides u and y, for any L. Equals fft_conv with one kernel channel
 * (to O(eps log n)), without its bound Lk <= L and without its O(H (L + Lk)) workspace.
 *
 * \param u  (B, L, H).  \param k  (H, Lk).  \param D  (H) or a default-constructed view.
 * \param y  (B, L, H), must not overlap u.
 * \throws ssmkit::error as fft_conv_stream and its process().
 */
template <class T, class Arch = default_arch>
void fft_conv_blocked(const_view<T, 3> u, const_view<T, 2> k, const_view<T, 1> D, tensor_view<T, 3> y,
                      fft_conv_stream_options options = {}) {
  detail::check_data("fft_conv_blocked", "u", u);
  if (u.extent(0) == 0) return;
  fft_conv_stream<T, Arch> stream(k, D, u.extent(0), options);
  stream.process(u, y);
}

}  // namespace ssmkit
