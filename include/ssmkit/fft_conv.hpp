#pragma once
/// \file fft_conv.hpp
/// Long convolutions by FFT, as the S4 family's FFTConv does them (reference:
/// state-spaces/s4, src/models/sequence/kernels/fftconv.py, FFTConv.forward), with the kernel's
/// spectrum computed once and cached in a plan.
///
/// Shapes: B batch, L length, H channels (the model width), C kernel channels (S4's `channels`),
/// Lk the kernel length (1 <= Lk <= L).
///
///   causal:         y[b, t, c*H + h] = sum_{s=0}^{min(t, Lk-1)} k[c, h, s] u[b, t-s, h]  + D[c, h] u[b, t, h]
///   bidirectional:  the same plus sum_{m=1}^{Lk} k[C + c, h, m-1] u[b, t+m, h]  (t + m < L)
///
/// The anticausal part starts at lag +1 and uses k[C + c, h, 0] there: the reference's deliberate
/// off-by-one. The output's channel index is c*H + h, the reference's channel-major flattening.
///
/// Layouts: u is (B, L, H) and y is (B, L, C*H) as views with any strides, so the reference's
/// (B, H, L) layout is `make_view(p, B, H, L).transposed(1, 2)`.
///
/// Algorithm: FFT size n = the smallest even 2^a 3^b 5^c >= L + Lk - 1 (causal) or >= L + Lk
/// (bidirectional), so the circular convolution is exactly the linear one. Channels are processed
/// in groups of the SIMD width, one channel per lane (detail/fft_kernels.hpp): per (batch, group)
/// one real FFT of u (a complex FFT of n/2 plus the fix-up), and per kernel channel one pointwise
/// product fused with the inverse fix-up and one inverse FFT. The kernel spectrum, pre-scaled by
/// 1/n, lives in the plan. (batch, group) pairs are split over parallel_for.
///
/// Short kernels run directly instead (fft_conv_options::method; by default the cheaper path by
/// the measured cost model detail::fft_conv_prefers_direct, about Lk <= 50..65 for L = 1024..16384):
/// Lk (2 Lk bidirectional) fmas per output, channels in SIMD lanes, 4 outputs at a time.
/// For inputs longer than one FFT, or arriving in chunks, see fft_conv_stream.hpp.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/batch.hpp>
#include <ssmkit/detail/fft_four_step.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/fft.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// How fft_conv_plan computes the convolution.
enum class fft_conv_method {
  /// The cheaper of the two by the measured cost model (detail::fft_conv_prefers_direct).
  automatic,
  /// Always by FFT.
  fft,
  /// Always directly, Lk (or 2 Lk) multiply-adds per output: exact order of summation, cost O(L Lk).
  direct,
};

/// Options of fft_conv_plan and fft_conv.
struct fft_conv_options {
  /// Bidirectional (S4's `bidirectional=True`): k holds 2*C kernels, the causal ones first.
  bool bidirectional = false;
  /// FFT or direct convolution; `automatic` picks by the cost model.
  fft_conv_method method = fft_conv_method::automatic;
};

namespace detail {

/// Storage that starts on a 64-byte boundary (also after a copy): a lane group of AVX-512 floats
/// is exactly one cache line, and a misaligned base would split every load in two.
template <class T>
class aligned_buffer {
 public:
  /// Grows to at least n elements (zero-filled when it grows) and returns the storage.
  T* reserve(std::size_t n) {
    if (n > storage_.size()) storage_.assign(n, T(0));
    return storage_.data();
  }
  T* data() noexcept { return storage_.data(); }
  const T* data() const noexcept { return storage_.data(); }
  std::size_t size() const noexcept { return storage_.size(); }

 private:
  std::vector<T, xsimd::aligned_allocator<T, 64>> storage_;
};

/// The cost model that fft_conv_method::automatic uses, per (batch, lane group) and call, in
/// nanoseconds of this machine kind (AVX-512, float32, one thread; measured and fitted in
/// docs/fft_conv.md, "Direct or FFT"):
///   FFT:    fft_ns_per_nlogn * n log2(n) * (1 + C)   (one forward, C inverse transforms)
///   direct: direct_ns_per_tap * L * taps * C,        taps = Lk (causal) or 2 Lk (bidirectional).
/// The gather of u and the scatter of y cost both paths the same and cancel. Only the ratio of the
/// constants matters; double precision halves the lanes of both paths alike. The crossover is
/// taps ~ 4.4 n log2(n) / L: about 50 at L = 1024, 56 at 4096, 65 at 16384 (measured: 64, 64, 48).
inline constexpr double fft_ns_per_nlogn = 1.1;
inline constexpr double direct_ns_per_tap = 0.5;

/// True when the direct convolution is predicted to be faster than the FFT of size n.
inline bool fft_conv_prefers_direct(std::size_t L, std::size_t Lk, std::size_t C, bool bidirectional,
                                    std::size_t n) noexcept {
  const double taps = static_cast<double>(bidirectional ? 2 * Lk : Lk);
  const double nn = static_cast<double>(n), channels = static_cast<double>(C);
  const double fft = fft_ns_per_nlogn * nn * std::log2(nn) * (1 + channels);
  const double direct = direct_ns_per_tap * static_cast<double>(L) * taps * channels;
  return direct < fft;
}

}  // namespace detail

/// Reusable scratch for fft_conv_plan::forward: it grows to the size one call needs and is then
/// reused, so that repeated calls touch no fresh memory. One workspace per concurrent caller.
template <class T>
class fft_conv_workspace {
 public:
  T* reserve(std::size_t n) { return buffer_.reserve(n); }
  std::size_t size() const noexcept { return buffer_.size(); }

 private:
  detail::aligned_buffer<T> buffer_;
};

/**
 * A convolution plan: the spectra of a fixed set of kernels for a fixed input length L, cached,
 * so that each forward call costs one real FFT of the input per (batch, channel) and one inverse
 * FFT per output channel.
 *
 * \tparam T     float or double.
 * \tparam Arch  the backend; channels are processed width_v<T, Arch> at a time, one per lane.
 *
 * Immutable after construction: forward is const and may run from several threads at once, each
 * with its own workspace.
 *
 * Numerics: the result differs from the exact linear convolution by O(eps log2 n) relative to
 * S = max_t (sum_s |k_s u_{t-s}| + |D u_t|) (the FFT's normwise error, Higham 24.1); the skip D u
 * goes through the FFT too (see run_task). tests/test_fft_conv.cpp checks every output against
 * 2 eps log2(n) S; measured for random data in float32 at L = Lk = 65536: max|dy| / S = 2.3e-9.
 */
template <class T, class Arch = default_arch>
class fft_conv_plan {
  static_assert(std::is_floating_point_v<T>, "fft_conv_plan: T must be float or double");

 public:
  /// The number of channels per lane group.
  static constexpr std::size_t lanes = detail::width_v<T, Arch>;

  /**
   * Builds the plan from kernels k (C', H, Lk), with C' = C, or 2*C when bidirectional (the causal
   * kernels first, as the reference's kernel module returns them), for inputs of length L.
   * \throws ssmkit::error when L == 0, Lk == 0, Lk > L, H == 0, C' == 0, C' is odd when
   *         bidirectional, or k is a null view. A NaN in k[c, h] makes output channel (c, h) NaN.
   */
  fft_conv_plan(const_view<T, 3> k, std::size_t L, fft_conv_options options = {})
      : fft_conv_plan("fft_conv_plan", k, L, options) {}

  /// The same for a single kernel channel: k (H, Lk), or (2, H, Lk) through the rank-3 form.
  fft_conv_plan(const_view<T, 2> k, std::size_t L, fft_conv_options options = {})
      : fft_conv_plan("fft_conv_plan", add_leading_dim(k), L, options) {}

  /// As above with another function's name in the messages (used by fft_conv); `function` must
  /// outlive the plan (a string literal).
  fft_conv_plan(const char* function, const_view<T, 3> k, std::size_t L, fft_conv_options options)
      : function_(function), options_(options) {
    detail::require(L >= 1, function, "L must be >= 1, got 0");
    detail::check_data(function, "k", k);
    const auto e = k.extents();
    if (e[2] < 1 || e[2] > L || e[0] < 1 || e[1] < 1 || (options.bidirectional && e[0] % 2 != 0)) {
      std::string expected = "(";
      expected += options.bidirectional ? (e[0] % 2 == 0 && e[0] > 0 ? std::to_string(e[0]) : "2*C") : (e[0] > 0 ? std::to_string(e[0]) : ">= 1");
      expected += ", " + (e[1] > 0 ? std::to_string(e[1]) : std::string(">= 1"));
      expected += ", " + std::string(e[2] == 0 ? ">= 1" : "<= " + std::to_string(L)) + ")";
      detail::throw_error(function, "k has shape ", detail::format_shape(e), ", expected ", expected);
    }
    L_ = L;
    C_ = options.bidirectional ? e[0] / 2 : e[0];
    H_ = e[1];
    Lk_ = e[2];
    groups_ = (H_ + lanes - 1) / lanes;
    const std::size_t need = options.bidirectional ? L + Lk_ : L + Lk_ - 1;
    n_ = 2 * next_fast_len((need + 1) / 2);
    M_ = n_ / 2;
    direct_ = options.method == fft_conv_method::direct ||
              (options.method == fft_conv_method::automatic &&
               detail::fft_conv_prefers_direct(L, Lk_, C_, options.bidirectional, n_));
    if (direct_) {
      // The kernels, per lane group and tap, one channel per lane: taps_[((c' G + g) Lk + s) lanes + l].
      const std::size_t kernels = options.bidirectional ? 2 * C_ : C_;
      taps_.reserve(kernels * groups_ * Lk_ * lanes);
      for (std::size_t c = 0; c < kernels; ++c)
        for (std::size_t h = 0; h < H_; ++h)
          for (std::size_t s = 0; s < Lk_; ++s) taps_.data()[((c * groups_ + h / lanes) * Lk_ + s) * lanes + h % lanes] = k(c, h, s);
      return;
    }
    fft_ = detail::four_step_rfft<T>(n_, split_above);

    // The kernel spectra, packed and in the transform's order, scaled by 1/n.
    const std::size_t per = M_ * lanes;
    spectrum_.reserve(2 * C_ * groups_ * per);
    std::vector<T> padded(n_ * lanes);
    std::vector<T> small(4 * fft_.small_size() * lanes);
    T* sr = small.data();
    T* si = sr + fft_.small_size() * lanes;
    T* wr = si + fft_.small_size() * lanes;
    T* wi = wr + fft_.small_size() * lanes;
    const T scale = T(1) / static_cast<T>(n_);
    for (std::size_t c = 0; c < C_; ++c) {
      for (std::size_t g = 0; g < groups_; ++g) {
        std::fill(padded.begin(), padded.end(), T(0));
        for (std::size_t l = 0; l < lanes && g * lanes + l < H_; ++l) {
          const std::size_t h = g * lanes + l;
          for (std::size_t s = 0; s < Lk_; ++s) padded[s * lanes + l] += k(c, h, s);
          if (options.bidirectional) {
            for (std::size_t m = 1; m <= Lk_; ++m) padded[(n_ - m) * lanes + l] += k(C_ + c, h, m - 1);
          }
        }
        T* dst_r = spectrum_re(c, g);
        T* dst_i = spectrum_im(c, g);
        for (std::size_t j = 0; j < M_; ++j) {
          std::copy(&padded[2 * j * lanes], &padded[2 * j * lanes] + lanes, dst_r + j * lanes);
          std::copy(&padded[(2 * j + 1) * lanes], &padded[(2 * j + 1) * lanes] + lanes, dst_i + j * lanes);
        }
        fft_.template forward<Arch>(dst_r, dst_i, sr, si, wr, wi, lanes);
        for (std::size_t i = 0; i < per; ++i) dst_r[i] *= scale, dst_i[i] *= scale;
      }
    }
  }

  std::size_t length() const noexcept { return L_; }
  std::size_t width() const noexcept { return H_; }
  std::size_t channels() const noexcept { return C_; }
  std::size_t kernel_length() const noexcept { return Lk_; }
  std::size_t fft_size() const noexcept { return n_; }
  bool bidirectional() const noexcept { return options_.bidirectional; }
  /// True when forward computes the convolution directly (options.method, or the cost model).
  bool uses_direct() const noexcept { return direct_; }

  /// The workspace one forward call needs with `threads` threads, in elements of T.
  std::size_t workspace_size(int threads = 1) const noexcept {
    return static_cast<std::size_t>(std::max(threads, 1)) * per_thread();
  }

  /**
   * y = conv(u, k) (+ D u): see the file comment for the formula.
   *
   * \param u  (B, L, H), any strides.
   * \param y  (B, L, C*H), any strides; must not overlap u or D.
   * \param D  (C, H) skip weights, any strides; a default-constructed view means no skip.
   * \param workspace  reused scratch (grown on first use).
   * \throws ssmkit::error on a shape mismatch, a null view or an overlap.
   */
  void forward(const_view<T, 3> u, tensor_view<T, 3> y, const_view<T, 2> D, fft_conv_workspace<T>& workspace,
               const parallel_options& options = {}) const {
    const char* fn = function_;
    detail::check_shape(fn, "u", u, {u.extent(0), L_, H_});
    const std::size_t B = u.extent(0);
    detail::check_shape(fn, "y", y, {B, L_, C_ * H_});
    const bool has_D = D.data() != nullptr || !D.empty();
    if (has_D) detail::check_shape(fn, "D", D, {C_, H_});
    detail::check_data(fn, "u", u);
    detail::check_data(fn, "y", y);
    detail::check_no_overlap(fn, "y", y, "u", u);
    if (has_D) detail::check_no_overlap(fn, "y", y, "D", D);
    if (B == 0) return;

    const std::size_t tasks = B * groups_;
    const int threads = static_cast<int>(
        std::min<std::size_t>(tasks, static_cast<std::size_t>(std::max(1, resolved_threads(options.num_threads)))));
    T* base = workspace.reserve(workspace_size(threads));
    parallel_options thread_options = options;
    thread_options.num_threads = threads;
    thread_options.min_block = 1;
    parallel_for(0, threads, [&](int t) {
      T* scratch = base + static_cast<std::size_t>(t) * per_thread();
      const std::size_t lo = tasks * static_cast<std::size_t>(t) / static_cast<std::size_t>(threads);
      const std::size_t hi = tasks * static_cast<std::size_t>(t + 1) / static_cast<std::size_t>(threads);
      for (std::size_t task = lo; task < hi; ++task) {
        if (direct_) {
          run_direct(task / groups_, task % groups_, u, y, D, has_D, scratch);
        } else {
          run_task(task / groups_, task % groups_, u, y, D, has_D, scratch);
        }
      }
    }, thread_options);
  }

  /// The same with a workspace allocated for this call.
  void forward(const_view<T, 3> u, tensor_view<T, 3> y, const_view<T, 2> D = {},
               const parallel_options& options = {}) const {
    fft_conv_workspace<T> workspace;
    forward(u, y, D, workspace, options);
  }

 private:
  static tensor_view<const T, 3> add_leading_dim(const_view<T, 2> k) {
    return {k.data(), {1, k.extent(0), k.extent(1)}, {0, k.stride(0), k.stride(1)}};
  }

  std::size_t per_thread() const noexcept {
    if (direct_) return (L_ + 2 * Lk_ + direct_block) * lanes;
    return ((C_ > 1 ? 4 : 2) * M_ + 4 * fft_.small_size()) * lanes;
  }

  /// Outputs computed together by the direct path: each tap's kernel batch is loaded once for
  /// them, and their fma chains are independent (an fma's latency is 4 cycles).
  static constexpr std::size_t direct_block = 4;

  /// The direct path for one (batch, lane group): u gathered into lanes with Lk zeros before t = 0
  /// and Lk + direct_block after t = L - 1, so that no tap needs a bounds test; then per kernel
  /// channel and block of outputs, one fma per tap and output, in the order s = 0..Lk-1 (then the
  /// anticausal taps m = 1..Lk), starting from D u.
  void run_direct(std::size_t b, std::size_t g, const_view<T, 3> u, tensor_view<T, 3> y, const_view<T, 2> D,
                  bool has_D, T* scratch) const {
    using V = detail::batch_t<T, Arch>;
    const std::size_t h0 = g * lanes, active = std::min(lanes, H_ - h0);
    const std::size_t total = L_ + 2 * Lk_ + direct_block;
    T* ul = scratch;  // ul[(Lk + t) * lanes + l] = u[b, t, h0 + l]
    std::fill(ul, ul + Lk_ * lanes, T(0));
    std::fill(ul + (Lk_ + L_) * lanes, ul + total * lanes, T(0));
    const T* ub = u.data() + static_cast<std::ptrdiff_t>(b) * u.stride(0) + static_cast<std::ptrdiff_t>(h0) * u.stride(2);
    const std::ptrdiff_t ut = u.stride(1), uh = u.stride(2);
    for (std::size_t t = 0; t < L_; ++t) {
      T* dst = ul + (Lk_ + t) * lanes;
      const T* src = ub + static_cast<std::ptrdiff_t>(t) * ut;
      if (uh == 1 && active == lanes) {
        detail::store(dst, detail::load<Arch>(src));
      } else {
        for (std::size_t l = 0; l < lanes; ++l) dst[l] = l < active ? src[static_cast<std::ptrdiff_t>(l) * uh] : T(0);
      }
    }
    const std::ptrdiff_t yt = y.stride(1), yh = y.stride(2);
    for (std::size_t c = 0; c < C_; ++c) {
      alignas(64) T dl[lanes] = {};
      for (std::size_t l = 0; l < active && has_D; ++l) dl[l] = D(c, h0 + l);
      const V dv = detail::load<Arch>(dl);
      const T* kc = taps_.data() + (c * groups_ + g) * Lk_ * lanes;
      const T* ka = taps_.data() + ((C_ + c) * groups_ + g) * Lk_ * lanes;
      T* yb = y.data() + static_cast<std::ptrdiff_t>(b) * y.stride(0) + static_cast<std::ptrdiff_t>(c * H_ + h0) * yh;
      for (std::size_t t = 0; t < L_; t += direct_block) {
        const T* now = ul + (Lk_ + t) * lanes;  // input at time t
        V acc[direct_block];
        for (std::size_t j = 0; j < direct_block; ++j) acc[j] = dv * detail::load<Arch>(now + j * lanes);
        for (std::size_t s = 0; s < Lk_; ++s) {
          const V kv = detail::load<Arch>(kc + s * lanes);
          const T* back = now - static_cast<std::ptrdiff_t>(s * lanes);
          for (std::size_t j = 0; j < direct_block; ++j) acc[j] = detail::fma(kv, detail::load<Arch>(back + j * lanes), acc[j]);
        }
        if (options_.bidirectional) {
          for (std::size_t m = 1; m <= Lk_; ++m) {
            const V kv = detail::load<Arch>(ka + (m - 1) * lanes);
            const T* ahead = now + m * lanes;
            for (std::size_t j = 0; j < direct_block; ++j) acc[j] = detail::fma(kv, detail::load<Arch>(ahead + j * lanes), acc[j]);
          }
        }
        for (std::size_t j = 0; j < direct_block && t + j < L_; ++j) {
          T* dst = yb + static_cast<std::ptrdiff_t>(t + j) * yt;
          if (yh == 1 && active == lanes) {
            detail::store(dst, acc[j]);
          } else {
            alignas(64) T out[lanes];
            detail::store(out, acc[j]);
            for (std::size_t l = 0; l < active; ++l) dst[static_cast<std::ptrdiff_t>(l) * yh] = out[l];
          }
        }
      }
    }
  }
  T* spectrum_re(std::size_t c, std::size_t g) const noexcept {
    return const_cast<T*>(spectrum_.data()) + 2 * (c * groups_ + g) * M_ * lanes;
  }
  T* spectrum_im(std::size_t c, std::size_t g) const noexcept { return spectrum_re(c, g) + M_ * lanes; }

  /// One (batch, lane group): the input's spectrum once, then per kernel channel the fused product
  /// (with the skip) and inverse fix-up, the inverse transform, and the scatter into y.
  void run_task(std::size_t b, std::size_t g, const_view<T, 3> u, tensor_view<T, 3> y, const_view<T, 2> D,
                bool has_D, T* scratch) const {
    const std::size_t per = M_ * lanes;
    const std::size_t small = fft_.small_size() * lanes;
    T* ar = scratch;
    T* ai = ar + per;
    T* pr = C_ > 1 ? ai + per : ar;
    T* pi = C_ > 1 ? pr + per : ai;
    T* sr = (C_ > 1 ? pi : ai) + per;
    T* si = sr + small;
    T* wr = si + small;
    T* wi = wr + small;
    const std::size_t h0 = g * lanes;
    const std::size_t active = std::min(lanes, H_ - h0);
    const T* ub = u.data() + static_cast<std::ptrdiff_t>(b) * u.stride(0) + static_cast<std::ptrdiff_t>(h0) * u.stride(2);
    const std::ptrdiff_t ut = u.stride(1), uh = u.stride(2);
    const bool u_dense = uh == 1 && active == lanes;

    // Gather, sequentially in time: slot j holds (u[2j], u[2j+1]) of every lane, zero past L
    // and in unused lanes.
    const std::size_t filled = (L_ + 1) / 2;
    if (u_dense) {
      for (std::size_t t = 0; t < L_; ++t) {
        // Rows of a (B, L, H) input are H elements apart: the hardware prefetcher does not follow
        // that stride across pages, so ask for the row `prefetch_rows` ahead.
        prefetch(ub + static_cast<std::ptrdiff_t>(std::min(t + prefetch_rows, L_ - 1)) * ut);
        T* slot = (t % 2 == 0 ? ar : ai) + (t / 2) * lanes;
        detail::store(slot, detail::load<Arch>(ub + static_cast<std::ptrdiff_t>(t) * ut));
      }
    } else {
      if (active < lanes) {
        std::fill(ar, ar + filled * lanes, T(0));
        std::fill(ai, ai + filled * lanes, T(0));
      }
      for (std::size_t l = 0; l < active; ++l) {
        const T* ul = ub + static_cast<std::ptrdiff_t>(l) * uh;
        for (std::size_t t = 0; t < L_; ++t) {
          T* slot = (t % 2 == 0 ? ar : ai) + (t / 2) * lanes;
          slot[l] = ul[static_cast<std::ptrdiff_t>(t) * ut];
        }
      }
    }
    if (L_ % 2) std::fill(ai + (L_ / 2) * lanes, ai + filled * lanes, T(0));
    std::fill(ar + filled * lanes, ar + per, T(0));
    std::fill(ai + filled * lanes, ai + per, T(0));
    fft_.template forward<Arch>(ar, ai, sr, si, wr, wi, lanes);

    for (std::size_t c = 0; c < C_; ++c) {
      // The skip D u is folded into the product: D is the spectrum of D times a unit impulse, and
      // the kernel spectrum is scaled by 1/n, so D/n is added to it. That saves reading u again.
      alignas(64) T dl[lanes] = {};
      for (std::size_t l = 0; l < active && has_D; ++l) dl[l] = D(c, h0 + l) / static_cast<T>(n_);
      // With one kernel channel the product overwrites the input's spectrum; otherwise that is
      // kept for the next channel.
      fft_.template multiply_inverse_fixup<Arch>(ar, ai, spectrum_re(c, g), spectrum_im(c, g), dl, pr, pi, lanes);
      fft_.template inverse<Arch>(pr, pi, sr, si, wr, wi, lanes);

      // Scatter, sequentially in time: y[b, t, c*H + h0 + l].
      T* yb = y.data() + static_cast<std::ptrdiff_t>(b) * y.stride(0) +
              static_cast<std::ptrdiff_t>(c * H_ + h0) * y.stride(2);
      const std::ptrdiff_t yt = y.stride(1), yh = y.stride(2);
      if (yh == 1 && active == lanes) {
        for (std::size_t t = 0; t < L_; ++t) {
          const auto tt = static_cast<std::ptrdiff_t>(t);
          prefetch(yb + static_cast<std::ptrdiff_t>(std::min(t + prefetch_rows, L_ - 1)) * yt);
          const T* slot = (t % 2 == 0 ? pr : pi) + (t / 2) * lanes;
          detail::store(yb + tt * yt, detail::load<Arch>(slot));
        }
      } else {
        for (std::size_t l = 0; l < active; ++l) {
          const auto ll = static_cast<std::ptrdiff_t>(l);
          T* yl = yb + ll * yh;
          for (std::size_t t = 0; t < L_; ++t) {
            const T* slot = (t % 2 == 0 ? pr : pi) + (t / 2) * lanes;
            yl[static_cast<std::ptrdiff_t>(t) * yt] = slot[l];
          }
        }
      }
    }
  }

  static void prefetch(const T* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
  }
  static constexpr std::size_t prefetch_rows = 16;  // 8 to 64 measured the same

  /// The largest half size n/2 transformed as one Stockham FFT: 2048 complex points of 16 floats
  /// (or 8 doubles), two buffers of re and im, are 512 KiB and stay in the 1 MiB L2. Above it, the
  /// four-step split keeps each sub-FFT in L1.
  static constexpr std::size_t split_above = 2048;

  const char* function_ = "fft_conv_plan";
  fft_conv_options options_;
  std::size_t L_ = 0, C_ = 0, H_ = 0, Lk_ = 0, groups_ = 0, n_ = 0, M_ = 0;
  bool direct_ = false;
  detail::four_step_rfft<T> fft_;
  detail::aligned_buffer<T> spectrum_;
  detail::aligned_buffer<T> taps_;
};

/**
 * One-shot convolution: builds an fft_conv_plan from k (C', H, Lk) for u's length and runs it.
 * Prefer the plan when the kernel is reused: this recomputes the kernel spectrum on every call.
 *
 * \param u  (B, L, H), any strides.   \param k  (C', H, Lk), C' = C (2*C when bidirectional).
 * \param D  (C, H) or a default-constructed view (no skip).   \param y  (B, L, C*H), any strides.
 * \throws ssmkit::error on bad shapes (Lk > L, Lk == 0, ...), null views or overlaps.
 */
template <class T, class Arch = default_arch>
void fft_conv(const_view<T, 3> u, const_view<T, 3> k, const_view<T, 2> D, tensor_view<T, 3> y,
              fft_conv_options options = {}, const parallel_options& parallel = {}) {
  detail::check_data("fft_conv", "u", u);
  const fft_conv_plan<T, Arch> plan("fft_conv", k, u.extent(1), options);
  plan.forward(u, y, D, parallel);
}

/// One-shot causal convolution with one kernel channel: u (B, L, H), k (H, Lk), D (H) or a
/// default-constructed view, y (B, L, H).
template <class T, class Arch = default_arch>
void fft_conv(const_view<T, 3> u, const_view<T, 2> k, const_view<T, 1> D, tensor_view<T, 3> y,
              const parallel_options& parallel = {}) {
  detail::check_data("fft_conv", "u", u);
  detail::check_data("fft_conv", "k", k);
  const auto L = u.extent(1);
  if (k.extent(1) < 1 || k.extent(1) > L) {
    detail::throw_error("fft_conv", "k has shape ", detail::format_shape(k.extents()), ", expected (", k.extent(0),
                        k.extent(1) < 1 ? ", >= 1)" : ", <= " + std::to_string(L) + ")");
  }
  const tensor_view<const T, 3> k3(k.data(), {1, k.extent(0), k.extent(1)}, {0, k.stride(0), k.stride(1)});
  const bool has_D = D.data() != nullptr || !D.empty();
  if (has_D) detail::check_shape("fft_conv", "D", D, {k.extent(0)});
  const fft_conv_plan<T, Arch> plan("fft_conv", k3, L, {});
  if (has_D) {
    plan.forward(u, y, tensor_view<const T, 2>(D.data(), {1, D.extent(0)}, {0, D.stride(0)}), parallel);
  } else {
    plan.forward(u, y, tensor_view<const T, 2>{}, parallel);
  }
}

}  // namespace ssmkit
