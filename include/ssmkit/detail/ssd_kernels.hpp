#pragma once
/// \file detail/ssd_kernels.hpp
/// The two algorithms behind `ssd_scan` and the decode step behind `ssd_step` (Mamba-2, Dao & Gu
/// 2024, "Transformers are SSMs", sections 6-7; reference semantics in mamba's ssd_minimal.py and
/// ssd_combined.py). Every algorithm sees a head through two per-token scalars: the log decay
/// a_t (dt_t * A_h, or the given discrete A_t) and the input scale s_t (dt_t, or 1), so that
/// `ssd_scan` and `ssd_scan_discrete` share one code path:
///   S_t = exp(a_t) S_{t-1} + s_t x_t ⊗ B_t,   y_t = S_t C_t (+ D x_t, then · silu(z_t)).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/detail/batch.hpp>
#include <ssmkit/detail/math.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// Which algorithm `ssd_scan` runs.
enum class ssd_algorithm {
  automatic,  ///< the faster one by the cost model in detail/ssd_kernels.hpp (`ssd_choose`)
  recurrent,  ///< token by token, the state held in cache, SIMD across the head dim
  chunked,    ///< the SSD chunked form: GEMMs within chunks, state passing between them
};

/// Reusable scratch for `ssd_scan` and `ssd_scan_discrete`. A call grows it as needed and keeps
/// it, so repeated calls with one workspace do not allocate. Not thread-safe: one workspace per
/// concurrent call.
template <class T>
class ssd_workspace {
 public:
  /// The bytes currently held.
  std::size_t bytes() const noexcept { return slots.capacity() * sizeof(T); }

  // Internal: one slot of per-worker scratch (states and chunk buffers) per thread, each starting
  // on a 64-byte boundary. The chunked path's small Eigen products start their vectorised sums at
  // the first aligned element, so a slot whose alignment changed from call to call (a plain
  // vector is only 16-byte aligned) changed the summation order: results then differed by an ulp
  // between calls, workspaces and threads. With fixed alignment they are bit-reproducible.
  std::vector<T, xsimd::aligned_allocator<T, 64>> slots;
};

}  // namespace ssmkit

namespace ssmkit::detail {

/// A worker's slot of `values` elements, rounded up to whole 64-byte lines so that every slot of
/// ssd_workspace::slots starts on a line (see there).
template <class T>
constexpr std::size_t ssd_slot_size(std::size_t values) noexcept {
  constexpr std::size_t line = 64 / sizeof(T);
  return (values + line - 1) / line * line;
}

/// Everything one SSD call needs, validated by the public entry point.
template <class T>
struct ssd_problem {
  std::size_t batch = 0, length = 0, heads = 0, head_dim = 0, groups = 0, state = 0;
  tensor_view<const T, 4> x;             // (batch, L, h, p)
  tensor_view<const T, 3> dt;            // (batch, L, h): raw dt, or the discrete log decay
  tensor_view<const T, 1> A;             // (h); empty for the discrete form
  tensor_view<const T, 4> B, C;          // (batch, L, g, n)
  tensor_view<const T, 2> D;             // (h, p), (h, 1) or empty
  tensor_view<const T, 4> z;             // (batch, L, h, p) or empty
  tensor_view<const T, 1> dt_bias;       // (h) or empty
  tensor_view<const T, 4> initial_states;  // (batch, h, p, n) or empty
  tensor_view<const std::int32_t, 2> seq_idx;  // (batch, L) or empty
  tensor_view<T, 4> out;                 // (batch, L, h, p)
  tensor_view<T, 4> final_states;        // (batch, h, p, n) or empty
  bool discrete = false;
  bool dt_softplus = false;
  T dt_min = -std::numeric_limits<T>::infinity();
  T dt_max = std::numeric_limits<T>::infinity();

  std::size_t heads_per_group() const noexcept { return heads / groups; }
};

/// The address of element (i...) of a view, without forming a reference (the view may be an
/// empty one with a null pointer, where `&view(i...)` would bind a reference to null).
template <class T, std::size_t Rank, class... Indices>
inline T* ssd_ptr(const tensor_view<T, Rank>& view, Indices... indices) noexcept {
  const std::array<std::ptrdiff_t, Rank> idx{static_cast<std::ptrdiff_t>(indices)...};
  std::ptrdiff_t offset = 0;
  for (std::size_t d = 0; d < Rank; ++d) offset += idx[d] * view.stride(d);
  return view.data() + offset;
}

/// dt after bias, softplus and the clamp of mamba's dt_limit. The clamp is written with
/// comparisons so that NaN passes through (std::clamp and min/max instructions would drop it).
template <class T>
inline T ssd_process_dt(T dt, T bias, bool softplus_dt, T dt_min, T dt_max) noexcept {
  T v = dt + bias;
  if (softplus_dt) v = detail::softplus(v);
  if (v < dt_min) v = dt_min;
  if (v > dt_max) v = dt_max;
  return v;
}

/// The per-token log decay a and input scale s of head h at (b, t). Returns true when token t
/// starts a new packed sequence (seq_idx changes): its log decay is then -inf, so that every
/// decay reaching back across the boundary is exp(-inf) = 0 (the chunked path's masks need
/// nothing else), and the recurrent path zeroes the state.
template <class T>
inline bool ssd_token_scalars(const ssd_problem<T>& pr, std::size_t b, std::size_t t, std::size_t h, T& a,
                              T& s) noexcept {
  const T raw = pr.dt(b, t, h);
  if (pr.discrete) {
    a = raw;
    s = T(1);
  } else {
    const T bias = pr.dt_bias.empty() ? T(0) : pr.dt_bias(h);
    const T v = ssd_process_dt(raw, bias, pr.dt_softplus, pr.dt_min, pr.dt_max);
    a = v * pr.A(h);
    s = v;
  }
  if (!pr.seq_idx.empty() && t > 0 && pr.seq_idx(b, t) != pr.seq_idx(b, t - 1)) {
    a = -std::numeric_limits<T>::infinity();
    return true;
  }
  return false;
}

/// Copies n strided elements into a contiguous buffer.
template <class T>
inline void ssd_gather(T* dst, const T* src, std::ptrdiff_t stride, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) dst[i] = src[static_cast<std::ptrdiff_t>(i) * stride];
}

/// A contiguous view of n strided elements: `src` itself when the stride is 1, else a copy in `buffer`.
template <class T>
inline const T* ssd_contiguous(T* buffer, const T* src, std::ptrdiff_t stride, std::size_t n) noexcept {
  if (stride == 1) return src;
  ssd_gather(buffer, src, stride, n);
  return buffer;
}

/// Prefetches the cache lines of n contiguous elements (a row of a later token). Token-major
/// inputs put one head's consecutive rows H·P elements apart, often more than a page, where the
/// hardware prefetchers stop: without this, every row is a cache (and TLB) miss.
template <class T>
inline void ssd_prefetch(const T* row, std::ptrdiff_t stride, std::size_t n) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  if (stride != 1) return;
  const char* first = reinterpret_cast<const char*>(row);
  const char* last = reinterpret_cast<const char*>(row + n);
  // Into L2 (locality 1): a tile's rows would evict the head's state from L1.
  for (const char* line = first; line < last; line += 64) __builtin_prefetch(line, 0, 1);
#else
  (void)row, (void)stride, (void)n;
#endif
}

/// The kernels hold a head's state as (n, p), p contiguous (row k at src + k ld); the API's is
/// (p, n). ssd_copy_state copies between the two, dst(i, k) = src(i, k) for i < p, k < n with any
/// strides, in blocks of 16 columns i, so that each line of the (n, p) side is touched once per
/// block instead of once per column (a column-by-column copy through view::operator() was 4% of a
/// chunked scan at p 64, n 128).
template <class T>
void ssd_copy_state(T* dst, std::ptrdiff_t dst_i, std::ptrdiff_t dst_k, const T* src, std::ptrdiff_t src_i,
                    std::ptrdiff_t src_k, std::size_t p, std::size_t n) noexcept {
  for (std::size_t i0 = 0; i0 < p; i0 += 16)
    for (std::size_t k = 0; k < n; ++k)
      for (std::size_t i = i0; i < std::min(p, i0 + 16); ++i) {
        const auto ii = static_cast<std::ptrdiff_t>(i), kk = static_cast<std::ptrdiff_t>(k);
        dst[ii * dst_i + kk * dst_k] = src[ii * src_i + kk * src_k];
      }
}

/// The (p, n) state of head h of batch b in a (batch, h, p, n) view.
template <class T>
T* ssd_head_state(const tensor_view<T, 4>& state, std::size_t b, std::size_t h) noexcept {
  return state.data() + static_cast<std::ptrdiff_t>(b) * state.stride(0) + static_cast<std::ptrdiff_t>(h) * state.stride(1);
}

/// state(b, h, i, k) = src[k ld + i].
template <class T>
void ssd_store_state(const tensor_view<T, 4>& state, std::size_t b, std::size_t h, const T* src, std::size_t ld) noexcept {
  ssd_copy_state(ssd_head_state(state, b, h), state.stride(2), state.stride(3), src, 1, static_cast<std::ptrdiff_t>(ld),
                 state.extent(2), state.extent(3));
}

/// dst[k ld + i] = state(b, h, i, k), or 0 when `state` is empty (no initial state).
template <class T>
void ssd_load_state(T* dst, std::size_t ld, const tensor_view<const T, 4>& state, std::size_t b, std::size_t h,
                    std::size_t p, std::size_t n) noexcept {
  if (state.empty()) {
    for (std::size_t k = 0; k < n; ++k) std::fill(dst + k * ld, dst + k * ld + p, T(0));
    return;
  }
  ssd_copy_state(dst, 1, static_cast<std::ptrdiff_t>(ld), ssd_head_state(state, b, h), state.stride(2),
                 state.stride(3), p, n);
}

/// dst = factor · src over n contiguous elements (dst may be src).
template <class T, class Arch>
inline void ssd_scale(T* dst, const T* src, T factor, std::size_t n) noexcept {
  using V = batch_t<T, Arch>;
  constexpr std::size_t width = width_v<T, Arch>;
  const V f(factor);
  std::size_t i = 0;
  for (; i + width <= n; i += width) detail::store(dst + i, detail::load<Arch>(src + i) * f);
  for (; i < n; ++i) dst[i] = factor * src[i];
}

/// The largest finite |v| over n contiguous elements (NaN and ±inf are left out: they run
/// through either form of the recurrence alike, and must not change how other channels round).
template <class T, class Arch>
inline T ssd_max_finite_abs(const T* v, std::size_t n) noexcept {
  using V = batch_t<T, Arch>;
  constexpr std::size_t width = width_v<T, Arch>;
  constexpr T finite = std::numeric_limits<T>::max();
  V largest(T(0));
  std::size_t i = 0;
  for (; i + width <= n; i += width) {
    const V magnitude = detail::abs(detail::load<Arch>(v + i));
    const V candidate = detail::select(magnitude <= V(finite), magnitude, V(T(0)));  // false for NaN
    largest = detail::select(candidate > largest, candidate, largest);
  }
  alignas(64) T lanes[width];
  detail::store(lanes, largest);
  T result = T(0);
  for (std::size_t l = 0; l < width; ++l) result = std::max(result, lanes[l]);
  for (; i < n; ++i) {
    const T magnitude = std::abs(v[i]);
    if (magnitude <= finite && magnitude > result) result = magnitude;
  }
  return result;
}

/// out = (y + D ∘ x) ∘ silu(z) over one row of p values (y, x, d, z contiguous; d, z may be null).
template <class T, class Arch>
inline void ssd_epilogue(std::size_t p, const T* y, const T* x, const T* d, const T* z, T* out,
                         std::ptrdiff_t out_stride) noexcept {
  auto row = [&](auto v, std::size_t i) {
    using V = decltype(v);
    V r = V::load_unaligned(y + i);
    if (d != nullptr) r = detail::fma(V::load_unaligned(d + i), V::load_unaligned(x + i), r);
    if (z != nullptr) r = r * detail::silu(V::load_unaligned(z + i));
    return r;
  };
  using V = batch_t<T, Arch>;
  constexpr std::size_t width = width_v<T, Arch>;
  std::size_t i = 0;
  if (out_stride == 1) {
    for (; i + width <= p; i += width) detail::store(out + i, row(V(), i));
  }
  for (; i < p; ++i) out[static_cast<std::ptrdiff_t>(i) * out_stride] = row(scalar_batch<T>(), i).value;
}

/// The D row of head h as p contiguous values (a per-head D is broadcast); false when there is no D.
template <class T>
inline bool ssd_d_row(const tensor_view<const T, 2>& D, std::size_t h, std::size_t p, T* dst) noexcept {
  if (D.empty()) return false;
  for (std::size_t i = 0; i < p; ++i) dst[i] = D.extent(1) == 1 ? D(h, 0) : D(h, i);
  return true;
}

// ------------------------------------------------------------------------------------------------
// Recurrent scan

/// Tokens per pass of the recurrent scan over a head's state (ssd_recurrent_tile).
constexpr std::size_t ssd_pass_tokens = 4;

/// The per-worker row buffers of the recurrent scan, in elements: dx, y, x, B and C rows for each
/// token of a pass, and the z and D rows.
inline std::size_t ssd_recurrent_scratch(std::size_t p, std::size_t n) noexcept {
  return ssd_pass_tokens * (3 * p + 2 * n) + 2 * p;
}

/// One block of K registers (K * V::size columns of the state, held as (n, p) so that p is
/// contiguous) over Tokens consecutive tokens u:
///   R[k, :] = d R[k, :] + B_{u,k} dx_u,   y_u = Σ_k C_{u,k} R[k, :],
/// with the decay d applied only when `Decay` (then Tokens is 1); without it the caller has
/// folded the decays into dx and y (ssd_recurrent_tile). Keeping p innermost avoids a horizontal
/// reduction per row and token; the (n, p) state of one head (32 KiB at p = 64, n = 128) stays in
/// L1 for a tile of tokens.
template <std::size_t K, std::size_t Tokens, bool Decay, class V, class T>
inline void ssd_recurrent_block(T* state, std::size_t p, std::size_t n, std::size_t i0, const T* const* dx,
                                T decay, const T* const* b, const T* const* c, T* const* y) noexcept {
  static_assert(!Decay || Tokens == 1, "the decay multiply is for one token at a time");
  constexpr std::size_t w = V::size;
  V in[Tokens][K], acc[Tokens][K];
  // Fully unrolled so that the accumulators live in registers (GCC keeps a rolled loop's
  // arrays on the stack, and the accumulator chains then go through store forwarding).
#pragma GCC unroll 4
  for (std::size_t u = 0; u < Tokens; ++u) {
#pragma GCC unroll 4
    for (std::size_t j = 0; j < K; ++j) {
      in[u][j] = V::load_unaligned(dx[u] + i0 + j * w);
      acc[u][j] = V(T(0));
    }
  }
  const V dv(decay);
  T* s = state + i0;
  for (std::size_t k = 0; k < n; ++k, s += p) {
    V sv[K];
#pragma GCC unroll 4
    for (std::size_t j = 0; j < K; ++j) sv[j] = V::load_unaligned(s + j * w);
#pragma GCC unroll 4
    for (std::size_t u = 0; u < Tokens; ++u) {
      const V bk(b[u][k]), ck(c[u][k]);
#pragma GCC unroll 4
      for (std::size_t j = 0; j < K; ++j) {
        sv[j] = Decay ? detail::fma(bk, in[u][j], sv[j] * dv) : detail::fma(bk, in[u][j], sv[j]);
        acc[u][j] = detail::fma(ck, sv[j], acc[u][j]);
      }
    }
#pragma GCC unroll 4
    for (std::size_t j = 0; j < K; ++j) detail::store(s + j * w, sv[j]);
  }
#pragma GCC unroll 4
  for (std::size_t u = 0; u < Tokens; ++u)
#pragma GCC unroll 4
    for (std::size_t j = 0; j < K; ++j) detail::store(y[u] + i0 + j * w, acc[u][j]);
}

/// Tokens consecutive tokens of the recurrent scan for all p columns of a head's (n, p) state.
template <std::size_t Tokens, bool Decay, class T, class Arch>
inline void ssd_recurrent_pass(T* state, std::size_t p, std::size_t n, const T* const* dx, T decay,
                               const T* const* b, const T* const* c, T* const* y) noexcept {
  using V = batch_t<T, Arch>;
  constexpr std::size_t width = width_v<T, Arch>;
  // Registers: 2 Tokens K accumulators and inputs; K = 4 for one token, 2 for up to four.
  constexpr std::size_t K = Tokens == 1 ? 4 : 2;
  std::size_t i = 0;
  for (; i + K * width <= p; i += K * width)
    ssd_recurrent_block<K, Tokens, Decay, V>(state, p, n, i, dx, decay, b, c, y);
  for (; i + width <= p; i += width) ssd_recurrent_block<1, Tokens, Decay, V>(state, p, n, i, dx, decay, b, c, y);
  for (; i < p; ++i) ssd_recurrent_block<1, Tokens, Decay, scalar_batch<T>>(state, p, n, i, dx, decay, b, c, y);
}

/// Tokens [t0, t1) of the recurrent scan of head h of batch b; `state` is the head's (n, p) state.
///
/// The state is kept as S_t = P_t R_t, P_t the product of the decays since the last
/// renormalisation, so that a token costs two FMAs per element instead of a multiply and two FMAs:
///   R_t = R_{t-1} + B_t (s_t x_t / P_t),   y_t = P_t (C_t · R_t),
/// and up to ssd_pass_tokens tokens share one pass over the state (one load and store of each
/// element for all of them). Without the multiply the loop is bound by the state's loads and
/// stores, and with it by the vector operations: one token per pass with the multiply took 446
/// ns per head and token (p 64, n 128), four tokens per pass without it 181 ns.
/// P_t stays in [2^-30, 2^30] and every finite s x / P_t below 2^100: a token that would leave the
/// range (a large decay, a NaN decay, an input that would overflow) runs alone with the explicit multiply by
/// P_{t-1} e^{a_t}, which renormalises (R = S, P = 1), as does the end of the tile. A new
/// sequence (seq_idx) starts a pass. In exact arithmetic the result is the recurrence's; in
/// floating point it differs by the rounding of P and of the scaled inputs (a few ulp).
template <class T, class Arch>
void ssd_recurrent_tile(const ssd_problem<T>& pr, std::size_t b, std::size_t h, std::size_t t0, std::size_t t1,
                        T* state, T* scratch) noexcept {
  constexpr std::size_t G = ssd_pass_tokens;
  const std::size_t p = pr.head_dim, n = pr.state, g = h / pr.heads_per_group();
  T* dx[G];
  T* y[G];
  T* xrow[G];
  T* brow[G];
  T* crow[G];
  for (std::size_t u = 0; u < G; ++u) {
    T* base = scratch + u * (3 * p + 2 * n);
    dx[u] = base;
    y[u] = base + p;
    xrow[u] = base + 2 * p;
    brow[u] = base + 3 * p;
    crow[u] = base + 3 * p + n;
  }
  T* zrow = scratch + G * (3 * p + 2 * n);
  T* drow = zrow + p;
  const bool has_d = ssd_d_row(pr.D, h, p, drow);
  const bool has_z = !pr.z.empty();
  const T low = T(1) / T(1 << 30), high = T(1 << 30), input_limit = std::ldexp(T(1), 100);

  T scale = T(1);  // P: the true state is scale · state
  const T* xt[G];
  const T* bt[G];
  const T* ct[G];
  T py[G];  // P_u of each token of the pass
  for (std::size_t t = t0; t < t1;) {
    // Gather the pass: up to G tokens, a new sequence only at its first token.
    std::size_t tokens = 0;
    T first_decay = T(1);
    bool alone = false;
    for (std::size_t u = 0; u < G && t + u < t1; ++u) {
      T a, s;
      if (ssd_token_scalars(pr, b, t + u, h, a, s)) {
        if (u > 0) break;
        std::fill(state, state + n * p, T(0));  // a new sequence
        scale = T(1);
      }
      const T decay = std::exp(a);
      const T next = (u == 0 ? scale : py[u - 1]) * decay;
      xt[u] = ssd_contiguous(xrow[u], ssd_ptr(pr.x, b, t + u, h, 0), pr.x.stride(3), p);
      ssd_scale<T, Arch>(dx[u], xt[u], s, p);
      const T largest = ssd_max_finite_abs<T, Arch>(dx[u], p);
      const bool in_range = next >= low && next <= high && largest <= input_limit * next;
      if (!in_range) {
        if (u > 0) break;  // this token starts the next pass, alone
        first_decay = next;  // P_{t-1} e^{a_t}: renormalise through the explicit multiply
        alone = true;
        tokens = 1;
        break;
      }
      py[u] = next;
      ssd_scale<T, Arch>(dx[u], dx[u], T(1) / next, p);
      tokens = u + 1;
    }
    for (std::size_t u = 0; u < tokens; ++u) {
      bt[u] = ssd_contiguous(brow[u], ssd_ptr(pr.B, b, t + u, g, 0), pr.B.stride(3), n);
      ct[u] = ssd_contiguous(crow[u], ssd_ptr(pr.C, b, t + u, g, 0), pr.C.stride(3), n);
    }
    if (alone) {
      ssd_recurrent_pass<1, true, T, Arch>(state, p, n, dx, first_decay, bt, ct, y);
      scale = T(1);
      py[0] = T(1);
    } else {
      switch (tokens) {
        case 4: ssd_recurrent_pass<4, false, T, Arch>(state, p, n, dx, T(1), bt, ct, y); break;
        case 3: ssd_recurrent_pass<3, false, T, Arch>(state, p, n, dx, T(1), bt, ct, y); break;
        case 2: ssd_recurrent_pass<2, false, T, Arch>(state, p, n, dx, T(1), bt, ct, y); break;
        default: ssd_recurrent_pass<1, false, T, Arch>(state, p, n, dx, T(1), bt, ct, y); break;
      }
      scale = py[tokens - 1];
    }
    for (std::size_t u = 0; u < tokens; ++u) {
      if (py[u] != T(1)) ssd_scale<T, Arch>(y[u], y[u], py[u], p);
      const T* zt = has_z ? ssd_contiguous(zrow, ssd_ptr(pr.z, b, t + u, h, 0), pr.z.stride(3), p) : nullptr;
      ssd_epilogue<T, Arch>(p, y[u], xt[u], has_d ? drow : nullptr, zt, ssd_ptr(pr.out, b, t + u, h, 0),
                            pr.out.stride(3));
    }
    t += tokens;
  }
  // Renormalise at the end of the tile: the caller's state is the true one.
  if (scale != T(1))
    for (std::size_t k = 0; k < n; ++k) ssd_scale<T, Arch>(state + k * p, state + k * p, scale, p);
}

/// Prefetches the x, z and out rows of head h for tokens [t0, t1).
template <class T>
void ssd_prefetch_rows(const ssd_problem<T>& pr, std::size_t b, std::size_t h, std::size_t t0,
                       std::size_t t1) noexcept {
  for (std::size_t t = t0; t < t1; ++t) {
    ssd_prefetch(ssd_ptr(pr.x, b, t, h, 0), pr.x.stride(3), pr.head_dim);
    if (!pr.z.empty()) ssd_prefetch(ssd_ptr(pr.z, b, t, h, 0), pr.z.stride(3), pr.head_dim);
    ssd_prefetch(ssd_ptr(pr.out, b, t, h, 0), pr.out.stride(3), pr.head_dim);
  }
}

// ------------------------------------------------------------------------------------------------
// Chunked scan

template <class T>
using ssd_const_map = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                 Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T>
using ssd_map = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Unaligned,
                           Eigen::OuterStride<>>;

template <class T>
ssd_const_map<T> ssd_cmap(const T* data, std::size_t rows, std::size_t cols, std::size_t ld) {
  return {data, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
          Eigen::OuterStride<>(static_cast<Eigen::Index>(ld))};
}

/// A GEMM operand: its data, its leading dimension and whether it is stored row-major.
template <class T>
struct ssd_operand {
  const T* data;
  std::size_t ld;
  bool row_major;
};

/// ssd_gemm for fixed storage orders.
template <int LhsOrder, int RhsOrder, class T>
void ssd_gemm_kernel(T* dst, std::size_t rows, std::size_t cols, std::size_t depth, std::size_t ld,
                     const ssd_operand<T>& lhs, const ssd_operand<T>& rhs) {
  using Index = Eigen::Index;
  using product = Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false,
                                                                 Eigen::RowMajor, 1>;
  Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic, Eigen::Dynamic, Eigen::Dynamic> blocking(
      static_cast<Index>(rows), static_cast<Index>(cols), static_cast<Index>(depth), 1, true);
  product::run(static_cast<Index>(rows), static_cast<Index>(cols), static_cast<Index>(depth), lhs.data,
               static_cast<Index>(lhs.ld), rhs.data, static_cast<Index>(rhs.ld), dst, 1, static_cast<Index>(ld), T(1),
               blocking, nullptr);
}

/// dst (rows × cols, row-major, leading dimension ld) = or += lhs · rhs, one Eigen GEMM.
///
/// Eigen's product expressions start their own OpenMP team for large products unless they already
/// run inside one (Eigen/src/Core/products/Parallelizer.h), which would bypass parallel_for and its
/// thread count. So the product goes straight to the kernel that those expressions call,
/// internal::general_matrix_matrix_product::run with no parallel info: the same packing and
/// blocking, on the calling thread. (Its signature is the same in Eigen 3.4 and Eigen 5.) Column
/// panels of at most 32 columns through 32-row maps, which Eigen never threads, did the same at
/// 65 GFLOP/s against 80 for one product at Q 64, N 128, H·P 1536 here: each panel packed the
/// small operand again and ran a narrow kernel.
template <class T>
void ssd_gemm(T* dst, std::size_t rows, std::size_t cols, std::size_t depth, std::size_t ld, const ssd_operand<T>& lhs,
              const ssd_operand<T>& rhs, bool accumulate) {
  if (rows == 0 || cols == 0) return;
  if (!accumulate)
    for (std::size_t i = 0; i < rows; ++i) std::fill(dst + i * ld, dst + i * ld + cols, T(0));
  if (depth == 0) return;
  if (lhs.row_major) {
    if (rhs.row_major) ssd_gemm_kernel<Eigen::RowMajor, Eigen::RowMajor>(dst, rows, cols, depth, ld, lhs, rhs);
    else ssd_gemm_kernel<Eigen::RowMajor, Eigen::ColMajor>(dst, rows, cols, depth, ld, lhs, rhs);
  } else {
    if (rhs.row_major) ssd_gemm_kernel<Eigen::ColMajor, Eigen::RowMajor>(dst, rows, cols, depth, ld, lhs, rhs);
    else ssd_gemm_kernel<Eigen::ColMajor, Eigen::ColMajor>(dst, rows, cols, depth, ld, lhs, rhs);
  }
}

/// The chunked scan's per-worker scratch for runs of up to `heads` heads of one group, in elements.
struct ssd_chunk_layout {
  std::size_t chunk, p, n, heads, pad;
  std::size_t width() const noexcept { return heads * p; }  // columns of the run's token-major blocks
  std::size_t states() const noexcept { return n * width(); }
  // Sᵀ (n × Hp), X (Q × Hp), Y (Q × Hp), B, C (Q × n), G, M (Q × Q), r (Q + 1 + pad),
  // ecum, w (H × Q), xrow, zrow, drow (p each).
  std::size_t scratch() const noexcept {
    return states() + 2 * chunk * width() + 2 * chunk * n + 2 * chunk * chunk + (chunk + 1 + pad) +
           2 * heads * chunk + 3 * p;
  }
};

/// The chunked scan of heads [h0, h1) of batch b, all in group g (mamba's ssd_minimal_discrete
/// and chunk_scan_ref, with the chunk loop carrying the state instead of materialising every
/// chunk state). The heads of a group share B and C, so the two products with the state run
/// once for the whole run of heads, as GEMMs with H·P columns:
///   Y  (Q × HP)  = C (Q × N) · Sᵀ (N × HP), rows then scaled by each head's exp(cumsum a)
///   Sᵀ (N × HP) = exp(Σ a) Sᵀ + Bᵀ (N × Q) · (decay-to-end ∘ X) (Q × HP)
/// and only the intra-chunk product (C Bᵀ ∘ exp(segsum)) X is per head (Q × Q × P).
template <class T, class Arch>
void ssd_chunked_run(const ssd_problem<T>& pr, const ssd_chunk_layout& lay, std::size_t b, std::size_t g,
                     std::size_t h0, std::size_t h1, T* scratch) {
  using V = batch_t<T, Arch>;
  constexpr std::size_t width = width_v<T, Arch>;
  const std::size_t Q = lay.chunk, p = lay.p, n = lay.n, H = h1 - h0, W = H * p;
  T* st = scratch;  // Sᵀ: row k holds state[:, k] of every head of the run
  T* xd = st + lay.states();
  T* y = xd + Q * W;
  T* bc = y + Q * W;
  T* cc = bc + Q * n;
  T* gm = cc + Q * n;
  T* m = gm + Q * Q;
  T* r = m + Q * Q;
  T* ecum = r + Q + 1 + lay.pad;
  T* w = ecum + lay.heads * Q;
  T* xrow = w + lay.heads * Q;
  T* zrow = xrow + p;
  T* drow = zrow + p;
  const bool has_z = !pr.z.empty();

  for (std::size_t hh = 0; hh < H; ++hh) ssd_load_state(st + hh * p, W, pr.initial_states, b, h0 + hh, p, n);
  bool zero_state = pr.initial_states.empty();

  for (std::size_t t0 = 0; t0 < pr.length; t0 += Q) {
    const std::size_t q = std::min(Q, pr.length - t0);
    for (std::size_t i = 0; i < q; ++i) {
      ssd_gather(bc + i * n, ssd_ptr(pr.B, b, t0 + i, g, 0), pr.B.stride(3), n);
      ssd_gather(cc + i * n, ssd_ptr(pr.C, b, t0 + i, g, 0), pr.C.stride(3), n);
    }
    if (t0 + Q < pr.length) {
      for (std::size_t t = t0 + Q; t < std::min(pr.length, t0 + 2 * Q); ++t)
        for (std::size_t h = h0; h < h1; ++h) {
          ssd_prefetch(ssd_ptr(pr.x, b, t, h, 0), pr.x.stride(3), p);
          if (has_z) ssd_prefetch(ssd_ptr(pr.z, b, t, h, 0), pr.z.stride(3), p);
        }
    }
    const ssd_operand<T> c_rows{cc, n, true}, b_transposed{bc, n, false};  // C (q × N), Bᵀ (N × q)
    ssd_gemm(gm, q, q, n, Q, c_rows, b_transposed, false);  // G = C Bᵀ, shared by the run's heads
    // Inter-chunk: Y = C S_prevᵀ for every head at once (scaled per head below).
    if (zero_state) {
      std::fill(y, y + q * W, T(0));
    } else {
      ssd_gemm(y, q, W, n, W, c_rows, ssd_operand<T>{st, W, true}, false);
    }

    for (std::size_t hh = 0; hh < H; ++hh) {
      const std::size_t h = h0 + hh;
      T* eh = ecum + hh * Q;
      T* wh = w + hh * Q;
      // r[j] = Σ_{k=j..i} a_k after token i: the masked cumulative sums of the "stable" segsum
      // (ssd_minimal.py), accumulated in the reference's order instead of differencing a
      // cumsum, whose cancellation would cost |cumsum| · u absolute error in every decay.
      std::fill(r, r + Q + 1 + lay.pad, T(0));
      for (std::size_t i = 0; i < q; ++i) {
        T a, s;
        ssd_token_scalars(pr, b, t0 + i, h, a, s);
        T* xi = xd + i * W + hh * p;
        ssd_scale<T, Arch>(xi, ssd_contiguous(xi, ssd_ptr(pr.x, b, t0 + i, h, 0), pr.x.stride(3), p), s, p);
        const V av(a);
        const std::size_t cols = i + 1;  // the columns j <= i of row i
        std::size_t j = 0;
        for (; j + width <= cols; j += width) detail::store(r + j, detail::load<Arch>(r + j) + av);
        for (; j < cols; ++j) r[j] += a;
        eh[i] = std::exp(r[0]);
        // M[i, j] = G[i, j] · exp(Σ_{k=j+1..i} a_k) for j <= i (the triangular product below
        // reads only this lower triangle).
        T* mi = m + i * Q;
        const T* gi = gm + i * Q;
        j = 0;
        for (; j + width <= cols; j += width)
          detail::store(mi + j, detail::load<Arch>(gi + j) * detail::exp(detail::load<Arch>(r + j + 1)));
        for (; j < cols; ++j) mi[j] = gi[j] * std::exp(r[j + 1]);
        // Y[i] = exp(Σ_{k<=i} a_k) C_i S_prevᵀ: the state's contribution decayed to token i.
        T* yi = y + i * W + hh * p;
        if (!zero_state) ssd_scale<T, Arch>(yi, yi, eh[i], p);
      }
      for (std::size_t j = 0; j < q; ++j) wh[j] = std::exp(r[j + 1]);  // decay from token j to the chunk end
      // Intra-chunk: Y_h += (C Bᵀ ∘ exp(segsum)) X_h, a lower-triangular product (half the
      // flops of a GEMM; Eigen never threads triangular products itself).
      ssd_map<T> yh(y + hh * p, static_cast<Eigen::Index>(q), static_cast<Eigen::Index>(p),
                    Eigen::OuterStride<>(static_cast<Eigen::Index>(W)));
      yh.noalias() += ssd_cmap(m, q, q, Q).template triangularView<Eigen::Lower>() * ssd_cmap(xd + hh * p, q, p, W);
      // X_j ← exp(Σ_{k>j} a_k) X_j for the state update.
      for (std::size_t j = 0; j < q; ++j) ssd_scale<T, Arch>(xd + j * W + hh * p, xd + j * W + hh * p, wh[j], p);
    }

    for (std::size_t i = 0; i < q; ++i) {
      const std::size_t t = t0 + i;
      for (std::size_t hh = 0; hh < H; ++hh) {
        const std::size_t h = h0 + hh;
        const bool has_d = ssd_d_row(pr.D, h, p, drow);
        const T* xt = ssd_contiguous(xrow, ssd_ptr(pr.x, b, t, h, 0), pr.x.stride(3), p);
        const T* zt = has_z ? ssd_contiguous(zrow, ssd_ptr(pr.z, b, t, h, 0), pr.z.stride(3), p) : nullptr;
        ssd_epilogue<T, Arch>(p, y + i * W + hh * p, xt, has_d ? drow : nullptr, zt, ssd_ptr(pr.out, b, t, h, 0),
                              pr.out.stride(3));
      }
    }
    // State passing: Sᵀ = exp(Σ a) Sᵀ + Bᵀ (decay-to-end ∘ X), every head at once. The chunk's
    // total decay of head hh, exp(Σ a), is its last ecum. Row by row over all heads: one
    // sequential pass (head by head, the rows W apart made this pass 11% of the scan).
    for (std::size_t k = 0; k < n; ++k)
      for (std::size_t hh = 0; hh < H; ++hh)
        ssd_scale<T, Arch>(st + k * W + hh * p, st + k * W + hh * p, ecum[hh * Q + q - 1], p);
    ssd_gemm(st, n, W, q, W, b_transposed, ssd_operand<T>{xd, W, true}, true);
    zero_state = false;
  }

  if (!pr.final_states.empty())
    for (std::size_t hh = 0; hh < H; ++hh) ssd_store_state(pr.final_states, b, h0 + hh, st + hh * p, W);
}

// ------------------------------------------------------------------------------------------------
// Driver

/// The default chunk size: the GEMM shapes (Q × Q × p and Q × n × p) reach Eigen's blocked kernel
/// speed at 64, and the per-token segsum work (Q/2 exp) stays small.
constexpr std::size_t ssd_default_chunk = 64;

/// The cost model of `ssd_algorithm::automatic`: microseconds per (token, head), fitted to
/// single-thread float32 timings of both paths on the project's machine kind (AVX-512 Zen 5;
/// docs/ssd.md has the table), for P 32-256, N 16-512:
///   recurrent  0.235 + 6.3e-5 · P·N          (the P × N state update: a multiply and two FMAs
///                                             per element, bound by the state's loads/stores)
///   chunked    0.275 + 3.1e-5 · (2 P N + Q P + Q N / heads per thread and group)
///                                            (two state GEMMs, the intra-chunk GEMM and C Bᵀ)
/// Eigen's GEMMs reach about the recurrent loop's rate per multiply-add here, and the chunked
/// form does 2 + Q/N of them per update against the recurrent 3 operations, so the two stay
/// within 30% of each other and the recurrent scan wins at every measured Mamba-2 shape.
inline ssd_algorithm ssd_choose(std::size_t length, std::size_t heads_per_run, std::size_t p, std::size_t n,
                                std::size_t chunk) noexcept {
  if (length < 2 * chunk || p == 0 || n == 0) return ssd_algorithm::recurrent;
  const double pn = double(p) * double(n), q = double(chunk);
  const double recurrent = 0.235 + 6.3e-5 * pn;
  const double chunked =
      0.275 + 3.1e-5 * (2 * pn + q * double(p) + q * double(n) / double(std::max<std::size_t>(1, heads_per_run)));
  return chunked < recurrent ? ssd_algorithm::chunked : ssd_algorithm::recurrent;
}

/// Runs a validated problem.
template <class T, class Arch>
void ssd_run(const ssd_problem<T>& pr, ssd_algorithm algorithm, std::size_t chunk_size, ssd_workspace<T>& ws,
             const parallel_options& options) {
  const std::size_t tasks = pr.batch * pr.heads;
  if (tasks == 0 || pr.head_dim == 0) return;
  if (pr.length == 0) {
    // No token: the final state is the initial one.
    if (!pr.final_states.empty()) {
      for (std::size_t b = 0; b < pr.batch; ++b)
        for (std::size_t h = 0; h < pr.heads; ++h)
          for (std::size_t i = 0; i < pr.head_dim; ++i)
            for (std::size_t k = 0; k < pr.state; ++k)
              pr.final_states(b, h, i, k) = pr.initial_states.empty() ? T(0) : pr.initial_states(b, h, i, k);
    }
    return;
  }
  const std::size_t chunk = chunk_size == 0 ? ssd_default_chunk : chunk_size;
  const auto threads = static_cast<std::size_t>(std::max(1, resolved_threads(options.num_threads)));
  const std::size_t workers = std::min(threads, tasks);
  const std::size_t p = pr.head_dim, n = pr.state, hpg = pr.heads_per_group();
  const std::size_t max_heads = (tasks + workers - 1) / workers;
  if (algorithm == ssd_algorithm::automatic)
    algorithm = ssd_choose(pr.length, std::min(hpg, max_heads), p, n, chunk);

  parallel_options worker_options = options;
  worker_options.min_block = 1;

  // Workers take contiguous blocks of (batch, head) tasks, cut further into runs of heads of one
  // batch and group: one scratch area each.
  auto for_runs = [&](std::size_t wk, auto&& run) {
    const std::size_t lo = tasks * wk / workers, hi = tasks * (wk + 1) / workers;
    for (std::size_t task = lo; task < hi;) {
      const std::size_t b = task / pr.heads, h0 = task % pr.heads;
      const std::size_t h1 = std::min({pr.heads, h0 + (hi - task), (h0 / hpg + 1) * hpg});
      run(b, h0, h1);
      task += h1 - h0;
    }
  };

  if (algorithm == ssd_algorithm::chunked) {
    ssd_chunk_layout lay{};
    lay.chunk = std::min(chunk, pr.length);
    lay.p = p;
    lay.n = n;
    lay.heads = std::min(hpg, max_heads);
    lay.pad = width_v<T, Arch>;
    const std::size_t slot = ssd_slot_size<T>(lay.scratch());
    if (ws.slots.size() < workers * slot) ws.slots.resize(workers * slot);
    T* slots = ws.slots.data();
    parallel_for(std::size_t{0}, workers, [&](std::size_t wk) {
      for_runs(wk, [&](std::size_t b, std::size_t h0, std::size_t h1) {
        ssd_chunked_run<T, Arch>(pr, lay, b, h0 / hpg, h0, h1, slots + wk * slot);
      });
    }, worker_options);
    return;
  }

  // The recurrent scan works in tiles of this many tokens: a worker runs a tile for each of its
  // heads in turn (each head's (n, p) state, 32 KiB at p = 64 and n = 128, moves between L2 and
  // L1 once per tile), so that the token-major rows of a tile, H·P elements apart, are touched by
  // every head while their pages and lines are fresh.
  constexpr std::size_t tile = 64;
  const std::size_t slot = ssd_slot_size<T>(max_heads * p * n + ssd_recurrent_scratch(p, n));
  if (ws.slots.size() < workers * slot) ws.slots.resize(workers * slot);
  T* slots = ws.slots.data();
  parallel_for(std::size_t{0}, workers, [&](std::size_t wk) {
    T* states = slots + wk * slot;
    T* work = states + max_heads * p * n;
    for_runs(wk, [&](std::size_t b, std::size_t h0, std::size_t h1) {
      for (std::size_t h = h0; h < h1; ++h) ssd_load_state(states + (h - h0) * p * n, p, pr.initial_states, b, h, p, n);
      for (std::size_t t0 = 0; t0 < pr.length; t0 += tile) {
        const std::size_t t1 = std::min(pr.length, t0 + tile);
        for (std::size_t h = h0; h < h1; ++h) {
          // Prefetch the next head's rows (or the first head's of the next tile) while this one runs.
          if (h + 1 < h1) {
            ssd_prefetch_rows(pr, b, h + 1, t0, t1);
          } else if (t1 < pr.length) {
            ssd_prefetch_rows(pr, b, h0, t1, std::min(pr.length, t1 + tile));
          }
          ssd_recurrent_tile<T, Arch>(pr, b, h, t0, t1, states + (h - h0) * p * n, work);
        }
      }
      if (!pr.final_states.empty())
        for (std::size_t h = h0; h < h1; ++h) ssd_store_state(pr.final_states, b, h, states + (h - h0) * p * n, p);
    });
  }, worker_options);
}

// ------------------------------------------------------------------------------------------------
// Decode

#if XSIMD_WITH_AVX512F
/// The lane sums of four registers, [Σ a0, Σ a1, Σ a2, Σ a3], with the four rows sharing each
/// shuffle and add: in-lane unpacks first (one cycle each), then two 128-bit lane swaps; 13
/// instructions against 6 per row for four horizontal sums, which had a fifth of perf's samples in
/// the decode step.
inline __m128 ssd_reduce_add4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) noexcept {
  // Per 128-bit lane: [a0 0+2, a1 0+2, a0 1+3, a1 1+3] (lanes 0..3 of the lane), and rows 2, 3.
  const __m512 s01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
  const __m512 s23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
  // Per 128-bit lane: [row 0, row 1, row 2, row 3], each the sum of that lane's four values.
  const __m512d d01 = _mm512_castps_pd(s01), d23 = _mm512_castps_pd(s23);
  const __m512 rows = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d01, d23)),
                                    _mm512_castpd_ps(_mm512_unpackhi_pd(d01, d23)));
  // The four 128-bit lanes summed: halves, then quarters.
  const __m512 halves = _mm512_add_ps(rows, _mm512_shuffle_f32x4(rows, rows, 0x4e));
  return _mm512_castps512_ps128(_mm512_add_ps(halves, _mm512_shuffle_f32x4(halves, halves, 0xb1)));
}
#endif

/// Rows [i, i + R) of one decode token, vectorised over n (contiguous): R rows at once, so that
/// R accumulator chains hide the FMA latency and each B, C vector is loaded once for R rows.
template <std::size_t R, class T, class Arch>
inline void ssd_step_rows(T* const* rows, std::size_t n, const T* bt, const T* ct, const T* dx, T decay,
                          T* y) noexcept {
  using V = batch_t<T, Arch>;
  using one = scalar_batch<T>;
  constexpr std::size_t width = width_v<T, Arch>;
  const V dv(decay);
  V xv[R], acc[R];
#pragma GCC unroll 8
  for (std::size_t r = 0; r < R; ++r) {
    xv[r] = V(dx[r]);
    acc[r] = V(T(0));
  }
  std::size_t k = 0;
  for (; k + width <= n; k += width) {
    const V bk = detail::load<Arch>(bt + k), ck = detail::load<Arch>(ct + k);
#pragma GCC unroll 8
    for (std::size_t r = 0; r < R; ++r) {
      V sv = detail::load<Arch>(rows[r] + k);
      sv = detail::fma(bk, xv[r], sv * dv);
      detail::store(rows[r] + k, sv);
      acc[r] = detail::fma(sv, ck, acc[r]);
    }
  }
  T sums[R];
#if XSIMD_WITH_AVX512F
  if constexpr (R == 4 && std::is_same_v<T, float> && std::is_base_of_v<xsimd::avx512f, Arch>) {
    _mm_storeu_ps(sums, ssd_reduce_add4(acc[0], acc[1], acc[2], acc[3]));
  } else
#endif
  {
    for (std::size_t r = 0; r < R; ++r) sums[r] = detail::reduce_add(acc[r]);
  }
#pragma GCC unroll 8
  for (std::size_t r = 0; r < R; ++r) {
    T sum = sums[r];
    for (std::size_t kk = k; kk < n; ++kk) {
      T& sk = rows[r][kk];
      sk = detail::fma(one(bt[kk]), one(dx[r]), one(sk * decay)).value;
      sum = detail::fma(one(sk), one(ct[kk]), one(sum)).value;
    }
    y[r] = sum;
  }
}

/// The longest n for which the decode step copies B and C to aligned stack buffers.
constexpr std::size_t ssd_step_bc = 512;

/// One decode token for head h of batch b: state (p, n) in place, vectorised over n when n is
/// contiguous in the state (B and C are copied to contiguous buffers when n <= ssd_step_bc).
template <class T, class Arch>
void ssd_step_head(tensor_view<T, 4> state, const tensor_view<const T, 3>& x, const tensor_view<const T, 3>& B,
                   const tensor_view<const T, 3>& C, const tensor_view<const T, 2>& D,
                   const tensor_view<const T, 3>& z, tensor_view<T, 3> out, std::size_t b, std::size_t h,
                   std::size_t g, T a, T s) noexcept {
  using one = scalar_batch<T>;
  constexpr std::size_t block = 64;  // rows per stack buffer: the epilogue runs vectorised over p
  constexpr std::size_t group = 4;
  const std::size_t p = state.extent(2), n = state.extent(3);
  const T decay = std::exp(a);
  const T* bt = ssd_ptr(B, b, g, 0);
  const T* ct = ssd_ptr(C, b, g, 0);
  std::ptrdiff_t sb = B.stride(2), sc = C.stride(2);
  const std::ptrdiff_t ss = state.stride(3);
  // B and C on 64-byte lines: each of their vectors is loaded once per group of rows, and vectors
  // split over two lines (a caller's B is often only 16-byte aligned) made the row loop 1.3x slower.
  // Copied unless they already are (a Mamba-2 engine's B and C, slices of the in_proj output at
  // multiples of d_inner, usually are).
  const auto on_line = [](const T* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 64 == 0; };
  alignas(64) T bc[2 * ssd_step_bc];
  if (n <= ssd_step_bc && !(sb == 1 && sc == 1 && on_line(bt) && on_line(ct))) {
    ssd_gather(bc, bt, sb, n);
    ssd_gather(bc + ssd_step_bc, ct, sc, n);
    bt = bc;
    ct = bc + ssd_step_bc;
    sb = sc = 1;
  }
  const bool vector = ss == 1 && sb == 1 && sc == 1;
  T y[block], xr[block], dx[block], dr[block], zr[block];
  for (std::size_t i0 = 0; i0 < p; i0 += block) {
    const std::size_t rows = std::min(block, p - i0);
    ssd_gather(xr, ssd_ptr(x, b, h, i0), x.stride(2), rows);
    for (std::size_t i = 0; i < rows; ++i) dx[i] = s * xr[i];
    std::size_t i = 0;
    if (vector) {
      T* ptrs[group];
      for (; i + group <= rows; i += group) {
        for (std::size_t r = 0; r < group; ++r) ptrs[r] = ssd_ptr(state, b, h, i0 + i + r, 0);
        ssd_step_rows<group, T, Arch>(ptrs, n, bt, ct, dx + i, decay, y + i);
      }
      for (; i < rows; ++i) {
        ptrs[0] = ssd_ptr(state, b, h, i0 + i, 0);
        ssd_step_rows<1, T, Arch>(ptrs, n, bt, ct, dx + i, decay, y + i);
      }
    }
    for (; i < rows; ++i) {
      T* srow = ssd_ptr(state, b, h, i0 + i, 0);
      T sum = T(0);
      for (std::size_t k = 0; k < n; ++k) {
        const auto kk = static_cast<std::ptrdiff_t>(k);
        T& sk = srow[kk * ss];
        sk = detail::fma(one(bt[kk * sb]), one(dx[i]), one(sk * decay)).value;
        sum = detail::fma(one(sk), one(ct[kk * sc]), one(sum)).value;
      }
      y[i] = sum;
    }
    const bool has_d = !D.empty();
    if (has_d)
      for (std::size_t r = 0; r < rows; ++r) dr[r] = D.extent(1) == 1 ? D(h, 0) : D(h, i0 + r);
    if (!z.empty()) ssd_gather(zr, ssd_ptr(z, b, h, i0), z.stride(2), rows);
    ssd_epilogue<T, Arch>(rows, y, xr, has_d ? dr : nullptr, z.empty() ? nullptr : zr, ssd_ptr(out, b, h, i0),
                          out.stride(2));
  }
}

}  // namespace ssmkit::detail
