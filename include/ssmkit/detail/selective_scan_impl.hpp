#pragma once
/// \file detail/selective_scan_impl.hpp
/// The kernel bodies behind selective_scan.hpp. Validation happens in the public functions; the
/// code here assumes consistent shapes and disjoint outputs.
///
/// Scan design (docs/selective_scan.md has the measurements):
///  - SIMD across channels: one register holds W = width_v<T, Arch> neighbouring channels of one
///    batch row, so the recurrence h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t is W independent lanes
///    and y_t = Σ_n h_t,n C_t,n needs no horizontal sum.
///  - The states of a tile of up to 16 state indices stay in registers through the token loop
///    (the tile size is a template argument, unrolled at the source level by index_sequence).
///  - softplus(Δ + bias) and Δ·u are computed for a chunk of `chunk_tokens` tokens into small
///    L1 buffers before the scan of that chunk, which takes the log1p(exp) latency off the
///    recurrence (the design the selective-scan issue describes).
///  - Gathers into and scatters out of those buffers are the only layout-dependent code: a
///    contiguous vector copy per token when the channel stride is 1 (token-major), an in-register
///    W x W transposition when the token stride is 1 (mamba's channel-major), a strided copy
///    otherwise. They prefetch two chunks ahead.
///  - A piece (one batch row, up to 16 blocks) runs chunk by chunk over all its blocks, so that
///    token rows and the B/C of a chunk are reused while in cache; pieces go to parallel_for.
///  - Complex A runs the same pipeline in split form: real and imaginary parts in separate rows
///    of W lanes (scan_tile_complex, tiles of up to 8 complex states).
///  - Packed sequences (cu_seqlens): a piece runs its sequences one after the other, restarting
///    the blocks' states at each offset; chunks never straddle an offset.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include <ssmkit/detail/batch.hpp>
#include <ssmkit/detail/math.hpp>
#include <ssmkit/detail/transpose.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit::detail {

/// Tokens per chunk: 64 tokens x W lanes x 4 buffers stays within 16 KiB for float and double.
inline constexpr std::size_t chunk_tokens = 64;
/// The largest state tile kept in registers (16 states + their accumulators fit the 32 zmm).
inline constexpr std::size_t max_state_tile = 16;

/// Calls f(integral_constant<std::size_t, I>) for I = 0..N-1, unrolled at compile time, so
/// that an array of N registers is indexed by constants only and can live in registers.
template <class F, std::size_t... I>
inline void static_for_impl(F&& f, std::index_sequence<I...>) {
  (f(std::integral_constant<std::size_t, I>{}), ...);
}
template <std::size_t N, class F>
inline void static_for(F&& f) {
  static_for_impl(std::forward<F>(f), std::make_index_sequence<N>{});
}

/// B or C of a scan, normalised: a (batch, G, N, L) view for the variable and grouped forms
/// (G = 1 for variable), or the (dim, N) matrix for the fixed form.
template <class T>
struct bc_operand {
  bool fixed = false;
  tensor_view<const T, 2> matrix;    // fixed: (dim, N)
  tensor_view<const T, 4> sequence;  // variable/grouped: (batch, G, N, L)

  std::size_t groups() const noexcept { return fixed ? 0 : sequence.extent(1); }
};

/// Channels per group of a B/C operand (dim for fixed and variable, dim / G for grouped).
template <class T>
std::size_t group_size(const bc_operand<T>& x, std::size_t dim) noexcept {
  return x.fixed ? dim : dim / x.sequence.extent(1);
}

/// Whether fast_exp2 has its own implementation for (T, Arch): float on AVX-512. Elsewhere the
/// scan's fast_exp option changes nothing.
template <class T, class Arch>
inline constexpr bool has_fast_exp2_v =
#if XSIMD_WITH_AVX512DQ
    !is_scalar_v<Arch> && std::is_base_of_v<xsimd::avx512dq, Arch> && std::is_same_v<T, float>;
#else
    false;
#endif

#if XSIMD_WITH_AVX512DQ
/// fast_exp2 (below) on K AVX-512 float registers in place, each step issued for all K before the
/// next, as detail::exp_lockstep does for the accurate exp.
template <std::size_t... J>
SSMKIT_ALWAYS_INLINE void fast_exp2_lockstep(__m512* x, std::index_sequence<J...>) noexcept {
  __m512 k[sizeof...(J)], f[sizeof...(J)], q[sizeof...(J)];
  const auto horner = [&](float c) { ((q[J] = _mm512_fmadd_ps(q[J], f[J], _mm512_set1_ps(c))), ...); };
  ((x[J] = _mm512_min_ps(_mm512_set1_ps(200.0f), _mm512_max_ps(_mm512_set1_ps(-200.0f), x[J]))), ...);
  ((k[J] = _mm512_roundscale_ps(x[J], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), ...);
  ((f[J] = _mm512_sub_ps(x[J], k[J])), ...);
  ((q[J] = _mm512_set1_ps(0x1.5bba22p-10f)), ...);
  horner(0x1.3cea92p-7f);
  horner(0x1.c6b754p-5f);
  horner(0x1.ebf9bcp-3f);
  horner(0x1.62e42ap-1f);
  ((x[J] = _mm512_scalef_ps(_mm512_fmadd_ps(f[J], q[J], _mm512_set1_ps(1.0f)), k[J])), ...);
}

template <std::size_t K>
SSMKIT_ALWAYS_INLINE void fast_exp2_lockstep(__m512 (&x)[K]) noexcept {
  fast_exp2_lockstep(x, std::make_index_sequence<K>());
}
#endif

/// 2^t, the "fast exp" of the scan (selective_scan_options::fast_exp): the scan passes
/// t = Δ (a log2 e), with a log2 e rounded once per channel and state. Round-to-nearest
/// reduction t = k + f, |f| <= 1/2 (k by vrndscaleps, f = t - k exact), then 2^f = 1 + f q(f)
/// with q of degree 4 (Lawson-weighted minimax of the relative error on [-1/2, 1/2]: 9.2e-8,
/// 1.6e-7 evaluated in float), and vscalefps for 2^k. Ten instructions against detail::exp's
/// thirteen plus the Δ a product; 1.6x its throughput. The clamp to ±200 keeps ±inf from making
/// inf - inf (2^±200 is already 0 or inf in float); max/min return their second operand when one
/// is NaN, so NaN passes through. (vreduceps would give f without the clamp, but it is slower.)
///
/// The error, relative: 1.6e-7 from the polynomial, plus 0.7 u |t| from rounding t (and
/// a log2 e), which only matters where 2^t is tiny. In the scan, p(f) = 1 + f q(f) makes the
/// error of dA = 2^t near t = 0⁻ proportional to |t| = (1 - dA)/ln2, so the error a state
/// accumulates over its memory of ~1/(1 - dA) tokens stays bounded; a floor reduction with a
/// polynomial on [0, 1) has an error that does not vanish at t = 0⁻ and grows with the memory.
template <class T, class Arch>
inline batch_t<T, Arch> fast_exp2(const batch_t<T, Arch>& x) noexcept {
#if XSIMD_WITH_AVX512DQ
  if constexpr (has_fast_exp2_v<T, Arch>) {
    __m512 v[1] = {x};
    fast_exp2_lockstep(v);
    return v[0];
  }
#endif
  return detail::exp(x * batch_t<T, Arch>(T(0.693147180559945309417)));
}

/// One state tile of the scan over `tokens` tokens of a chunk: for each token, NT states of W
/// lanes advance by one step and their contributions to y are summed (added to `y` when
/// `accumulate`, so several tiles build the sum over all N). `a`, `h` and, for fixed B/C, `b`/`c`
/// hold NT rows of W lanes; for variable B/C `b`/`c` hold `tokens` rows of max_state_tile values.
template <std::size_t NT, bool BFixed, bool CFixed, bool Fast, class T, class Arch>
inline void scan_tile(std::size_t tokens, const T* dt, const T* du, T* y, bool accumulate, const T* a, T* h,
                      const T* b, const T* c) noexcept {
  using V = batch_t<T, Arch>;
  constexpr std::size_t W = width_v<T, Arch>;
  std::array<V, NT> state;
  static_for<NT>([&](auto k) { state[k] = detail::load<Arch>(h + k * W); });
  for (std::size_t t = 0; t < tokens; ++t) {
    const V dtv = detail::load<Arch>(dt + t * W);
    const V duv = detail::load<Arch>(du + t * W);
    // Two partial sums halve the dependent fma chain of y.
    V y0(T(0)), y1(T(0));
    static_for<NT>([&](auto k) {
      const V x = dtv * detail::load<Arch>(a + k * W);  // Δ a, or Δ a log2 e when Fast
      const V decay = Fast ? fast_exp2<T, Arch>(x) : detail::exp(x);
      const V bk = BFixed ? detail::load<Arch>(b + k * W) : V(b[t * max_state_tile + k]);
      state[k] = detail::fma(decay, state[k], duv * bk);
      const V ck = CFixed ? detail::load<Arch>(c + k * W) : V(c[t * max_state_tile + k]);
      if constexpr (k % 2 == 0) {
        y0 = detail::fma(state[k], ck, y0);
      } else {
        y1 = detail::fma(state[k], ck, y1);
      }
    });
    V sum = y0 + y1;
    if (accumulate) sum = detail::load<Arch>(y + t * W) + sum;
    detail::store(y + t * W, sum);
  }
  static_for<NT>([&](auto k) { detail::store(h + k * W, state[k]); });
}

template <std::size_t NT, bool Fast, class T, class Arch>
inline void scan_tile_dispatch(bool b_fixed, bool c_fixed, std::size_t tokens, const T* dt, const T* du, T* y,
                               bool accumulate, const T* a, T* h, const T* b, const T* c) noexcept {
  if (b_fixed) {
    if (c_fixed) scan_tile<NT, true, true, Fast, T, Arch>(tokens, dt, du, y, accumulate, a, h, b, c);
    else scan_tile<NT, true, false, Fast, T, Arch>(tokens, dt, du, y, accumulate, a, h, b, c);
  } else {
    if (c_fixed) scan_tile<NT, false, true, Fast, T, Arch>(tokens, dt, du, y, accumulate, a, h, b, c);
    else scan_tile<NT, false, false, Fast, T, Arch>(tokens, dt, du, y, accumulate, a, h, b, c);
  }
}

/// scan_tile_dispatch with the exp chosen at run time (fast only where has_fast_exp2_v).
template <std::size_t NT, class T, class Arch>
inline void scan_tile_run(bool fast, bool b_fixed, bool c_fixed, std::size_t tokens, const T* dt, const T* du, T* y,
                          bool accumulate, const T* a, T* h, const T* b, const T* c) noexcept {
  if (has_fast_exp2_v<T, Arch> && fast) {
    scan_tile_dispatch<NT, has_fast_exp2_v<T, Arch>, T, Arch>(b_fixed, c_fixed, tokens, dt, du, y, accumulate, a, h, b, c);
  } else {
    scan_tile_dispatch<NT, false, T, Arch>(b_fixed, c_fixed, tokens, dt, du, y, accumulate, a, h, b, c);
  }
}

/// sin and cos of every lane (xsimd's on SIMD backends, libm's on the scalar one).
template <class T>
inline void scan_sincos(const scalar_batch<T>& x, scalar_batch<T>& s, scalar_batch<T>& c) noexcept {
  s = scalar_batch<T>(std::sin(x.value));
  c = scalar_batch<T>(std::cos(x.value));
}
template <class T, class A>
inline void scan_sincos(const xsimd::batch<T, A>& x, xsimd::batch<T, A>& s, xsimd::batch<T, A>& c) noexcept {
  const auto sc = xsimd::sincos(x);
  s = sc.first;
  c = sc.second;
}

/// The complex-A form of scan_tile, in split (SoA) form: real and imaginary parts of A, h, B and
/// C are separate rows of W lanes (`ar`/`ai`, `hr`/`hi`, ...). Per token and state:
///     dA = exp(Δ a_r) (cos(Δ a_i) + i sin(Δ a_i)),  h = dA h + Δu B,  y += 2 Re(h C)
/// (C not conjugated, as mamba's selective_scan_ref).
template <std::size_t NT, bool BFixed, bool CFixed, class T, class Arch>
inline void scan_tile_complex(std::size_t tokens, const T* dt, const T* du, T* y, bool accumulate, const T* ar,
                              const T* ai, T* hr, T* hi, const T* br, const T* bi, const T* cr,
                              const T* ci) noexcept {
  using V = batch_t<T, Arch>;
  constexpr std::size_t W = width_v<T, Arch>;
  std::array<V, NT> sr, si;
  static_for<NT>([&](auto k) {
    sr[k] = detail::load<Arch>(hr + k * W);
    si[k] = detail::load<Arch>(hi + k * W);
  });
  for (std::size_t t = 0; t < tokens; ++t) {
    const V dtv = detail::load<Arch>(dt + t * W);
    const V duv = detail::load<Arch>(du + t * W);
    V y0(T(0)), y1(T(0));
    static_for<NT>([&](auto k) {
      const V mag = detail::exp(dtv * detail::load<Arch>(ar + k * W));
      V sn, cs;
      detail::scan_sincos(dtv * detail::load<Arch>(ai + k * W), sn, cs);
      const V dr = mag * cs, di = mag * sn;
      const V bre = BFixed ? detail::load<Arch>(br + k * W) : V(br[t * max_state_tile + k]);
      const V bim = BFixed ? detail::load<Arch>(bi + k * W) : V(bi[t * max_state_tile + k]);
      const V nr = detail::fma(dr, sr[k], detail::fma(-di, si[k], duv * bre));
      const V ni = detail::fma(dr, si[k], detail::fma(di, sr[k], duv * bim));
      sr[k] = nr;
      si[k] = ni;
      const V cre = CFixed ? detail::load<Arch>(cr + k * W) : V(cr[t * max_state_tile + k]);
      const V cim = CFixed ? detail::load<Arch>(ci + k * W) : V(ci[t * max_state_tile + k]);
      y0 = detail::fma(nr, cre, y0);
      y1 = detail::fma(-ni, cim, y1);
    });
    V sum = (y0 + y1) * V(T(2));
    if (accumulate) sum = detail::load<Arch>(y + t * W) + sum;
    detail::store(y + t * W, sum);
  }
  static_for<NT>([&](auto k) {
    detail::store(hr + k * W, sr[k]);
    detail::store(hi + k * W, si[k]);
  });
}

template <std::size_t NT, class T, class Arch>
inline void scan_tile_complex_dispatch(bool b_fixed, bool c_fixed, std::size_t tokens, const T* dt, const T* du, T* y,
                                       bool acc, const T* ar, const T* ai, T* hr, T* hi, const T* br, const T* bi,
                                       const T* cr, const T* ci) noexcept {
  if (b_fixed) {
    if (c_fixed) scan_tile_complex<NT, true, true, T, Arch>(tokens, dt, du, y, acc, ar, ai, hr, hi, br, bi, cr, ci);
    else scan_tile_complex<NT, true, false, T, Arch>(tokens, dt, du, y, acc, ar, ai, hr, hi, br, bi, cr, ci);
  } else {
    if (c_fixed) scan_tile_complex<NT, false, true, T, Arch>(tokens, dt, du, y, acc, ar, ai, hr, hi, br, bi, cr, ci);
    else scan_tile_complex<NT, false, false, T, Arch>(tokens, dt, du, y, acc, ar, ai, hr, hi, br, bi, cr, ci);
  }
}

/// The register tile for the states [n0, N): 8 while 8 remain, then 4 and 1. Eight states, the
/// twelve constants of decay_exp and the y, Δ and Δu rows fit AVX-512's 32 registers; a tile of
/// 16 made GCC spill 12 of its states to the stack, and the scan ran 1.3x slower.
inline std::size_t next_tile(std::size_t remaining) noexcept {
  return remaining >= 8 ? 8 : remaining >= 4 ? 4 : 1;
}

/// Everything one scan call needs, after validation.
template <class T>
struct scan_problem {
  tensor_view<const T, 3> u, delta;
  tensor_view<const T, 2> A;
  bc_operand<T> B, C;
  tensor_view<const T, 1> D, delta_bias;
  tensor_view<const T, 3> z, h0;
  tensor_view<T, 3> out, last_state;
  bool softplus = false;
  bool fast_exp = false;  // real A only: the tiles use fast_exp2 on A log2 e (block_init scales A)
  std::size_t batch = 0, dim = 0, length = 0, nstate = 0;
  // Complex A: the imaginary parts, split from the real parts above (A, B, C, h0, last_state).
  bool is_complex = false;
  tensor_view<const T, 2> A_im;
  bc_operand<T> B_im, C_im;
  tensor_view<const T, 3> h0_im;
  tensor_view<T, 3> last_im;
  // Packed sequences: offsets along L, validated (empty: one sequence per batch row). The states
  // h0 and last_state are then (batch * sequences, D, N), row b * sequences + s.
  tensor_view<const std::int64_t, 1> cu_seqlens;

  std::size_t sequences() const noexcept { return cu_seqlens.empty() ? 1 : cu_seqlens.extent(0) - 1; }
  std::size_t seq_begin(std::size_t s) const noexcept {
    return cu_seqlens.empty() ? 0 : static_cast<std::size_t>(cu_seqlens(s));
  }
  std::size_t seq_end(std::size_t s) const noexcept {
    return cu_seqlens.empty() ? length : static_cast<std::size_t>(cu_seqlens(s + 1));
  }
};

/// dst[t * W + c] = src(row, d0 + c, t0 + t) for t < tokens, c < count (a transposing gather).
template <class T, class Arch>
inline void gather_chunk(const tensor_view<const T, 3>& src, std::size_t row, std::size_t d0, std::size_t count,
                         std::size_t t0, std::size_t tokens, T* dst, std::size_t ahead) noexcept {
  constexpr std::size_t W = width_v<T, Arch>;
  const std::ptrdiff_t sd = src.stride(1), sl = src.stride(2);
  const T* base = src.data() + static_cast<std::ptrdiff_t>(row) * src.stride(0) +
                  static_cast<std::ptrdiff_t>(d0) * sd + static_cast<std::ptrdiff_t>(t0) * sl;
  std::size_t t = 0;
  if (sd == 1 && count == W) {
    const auto pf = static_cast<std::ptrdiff_t>(ahead) * sl;
    for (; t < tokens; ++t) {
      const T* p = base + static_cast<std::ptrdiff_t>(t) * sl;
      prefetch(p + pf, false);
      detail::store(dst + t * W, detail::load<Arch>(p));
    }
  } else if (sl == 1 && count == W) {
    for (; t + W <= tokens; t += W) transpose_block<T, Arch>(base + t, sd, dst + t * W, W, static_cast<std::ptrdiff_t>(ahead));
  }
  for (std::size_t c = 0; c < count && t < tokens; ++c) {
    const T* p = base + static_cast<std::ptrdiff_t>(c) * sd;
    for (std::size_t i = t; i < tokens; ++i) dst[i * W + c] = p[static_cast<std::ptrdiff_t>(i) * sl];
  }
}

/// Whether the row sums below have their AVX-512 float transpose-and-add tree for (T, Arch).
template <class T, class Arch>
inline constexpr bool has_row_sum_tree_v =
#if XSIMD_WITH_AVX512F
    !is_scalar_v<Arch> && std::is_base_of_v<xsimd::avx512f, Arch> && std::is_same_v<T, float>;
#else
    false;
#endif

#if XSIMD_WITH_AVX512F
/// The first stage of the row-sum tree for rows x * c and y * c, with the multiply by c fused:
/// per 128-bit lane [x0 c0 + x2 c2, y0 c0 + y2 c2, x1 c1 + x3 c3, y1 c1 + y3 c3], from
/// unpacklo(x c, y c) = unpacklo(x, y) unpacklo(c, c) (and the same for unpackhi).
inline __m512 row_pair_sums(__m512 x, __m512 y, __m512 c_lo, __m512 c_hi) noexcept {
  return _mm512_fmadd_ps(_mm512_unpacklo_ps(x, y), c_lo, _mm512_mul_ps(_mm512_unpackhi_ps(x, y), c_hi));
}

/// The rest of the tree over the 8 results of row_pair_sums for rows 0..15: lane c of the result is
/// the sum of row c's lanes.
inline __m512 row_sums_from_pairs(const __m512* a) noexcept {
  // b[i], 128-bit lane j: the partial sums over lane group j of rows 4i .. 4i + 3.
  __m512 b[4], c[2];
  for (int i = 0; i < 4; ++i) {
    const __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
    b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  // Sum the four lane groups: pairs of 128-bit lanes, twice.
  for (int i = 0; i < 2; ++i) {
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd));
  }
  return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xdd));
}
#endif

/// dst(row, d0 + c, t0 + t) = src[t * W + c] (the inverse of gather_chunk).
template <class T, class Arch>
inline void scatter_chunk(const T* src, std::size_t row, std::size_t d0, std::size_t count, std::size_t t0,
                          std::size_t tokens, const tensor_view<T, 3>& dst, std::size_t ahead) noexcept {
  constexpr std::size_t W = width_v<T, Arch>;
  const std::ptrdiff_t sd = dst.stride(1), sl = dst.stride(2);
  T* base = dst.data() + static_cast<std::ptrdiff_t>(row) * dst.stride(0) + static_cast<std::ptrdiff_t>(d0) * sd +
            static_cast<std::ptrdiff_t>(t0) * sl;
  std::size_t t = 0;
  if (sd == 1 && count == W) {
    const auto pf = static_cast<std::ptrdiff_t>(ahead) * sl;
    for (; t < tokens; ++t) {
      T* p = base + static_cast<std::ptrdiff_t>(t) * sl;
      prefetch(p + pf, true);
      detail::store(p, detail::load<Arch>(src + t * W));
    }
  } else if (sl == 1 && count == W) {
    for (; t + W <= tokens; t += W) transpose_block<T, Arch>(src + t * W, W, base + t, sd, 0, static_cast<std::ptrdiff_t>(ahead));
  }
  for (std::size_t c = 0; c < count && t < tokens; ++c) {
    T* p = base + static_cast<std::ptrdiff_t>(c) * sd;
    for (std::size_t i = t; i < tokens; ++i) p[static_cast<std::ptrdiff_t>(i) * sl] = src[i * W + c];
  }
}

/// dst[t * max_state_tile + k] = seq(n0 + k, t0 + t) for k < nt, t < tokens: the B or C values of
/// a state tile for a chunk, token-major so that the tile broadcasts them with constant offsets.
template <class T, class Arch>
inline void copy_tile(const tensor_view<const T, 2>& seq, std::size_t n0, std::size_t nt, std::size_t t0,
                      std::size_t tokens, T* dst) noexcept {
  constexpr std::size_t W = width_v<T, Arch>;
  const std::ptrdiff_t sn = seq.stride(0), sl = seq.stride(1);
  const T* base = seq.data() + static_cast<std::ptrdiff_t>(n0) * sn + static_cast<std::ptrdiff_t>(t0) * sl;
  std::size_t t = 0;
  if (sn == 1) {  // token-major B/C: each token's nt values are contiguous
    for (; t < tokens; ++t) std::copy_n(base + static_cast<std::ptrdiff_t>(t) * sl, nt, dst + t * max_state_tile);
  } else if (sl == 1 && W > 1 && nt % W == 0) {
    for (; t + W <= tokens; t += W)
      for (std::size_t k = 0; k < nt; k += W)
        transpose_block<T, Arch>(base + static_cast<std::ptrdiff_t>(k) * sn + static_cast<std::ptrdiff_t>(t), sn,
                                 dst + t * max_state_tile + k, max_state_tile);
  }
  for (std::size_t k = 0; k < nt; ++k) {
    const T* row = base + static_cast<std::ptrdiff_t>(k) * sn;
    for (std::size_t i = t; i < tokens; ++i) dst[i * max_state_tile + k] = row[static_cast<std::ptrdiff_t>(i) * sl];
  }
}

/// Where block `index` of a batch row lies: channels [d0, d0 + count), count <= W. Blocks never
/// straddle a group boundary of B or C: channels are cut into segments of gcd(group sizes)
/// channels, and each segment into blocks of W.
struct block_layout {
  std::size_t segment = 1, blocks_per_segment = 1;

  std::size_t d0(std::size_t index, std::size_t width) const noexcept {
    return (index / blocks_per_segment) * segment + (index % blocks_per_segment) * width;
  }
  std::size_t count(std::size_t index, std::size_t width) const noexcept {
    const std::size_t end = (index / blocks_per_segment + 1) * segment;
    return std::min(width, end - d0(index, width));
  }
};

/// The values of one block of channels that persist across chunks, in `work` (per_block_values):
/// A, h, fixed B, fixed C (N rows of W lanes each), then the lanes of delta_bias and D; for
/// complex A then the imaginary parts of A, h, fixed B and fixed C (N rows of W lanes each).
template <class T, class Arch>
constexpr std::size_t per_block_values(std::size_t nstate, bool is_complex) noexcept {
  return ((is_complex ? 8 : 4) * nstate + 2) * width_v<T, Arch>;
}

/// Where the imaginary rows of a complex block start in its work values.
template <class T, class Arch>
constexpr std::size_t imag_offset(std::size_t nstate) noexcept {
  return (4 * nstate + 2) * width_v<T, Arch>;
}

/// Loads a block's persistent values; the state starts from row `srow` of h0 (or zero).
template <class T, class Arch>
void block_init(const scan_problem<T>& p, std::size_t srow, std::size_t d0, std::size_t count, T* work) {
  constexpr std::size_t W = width_v<T, Arch>;
  const std::size_t N = p.nstate;
  std::fill(work, work + per_block_values<T, Arch>(N, p.is_complex), T(0));
  T* a = work;
  T* h = work + N * W;
  T* bf = work + 2 * N * W;
  T* cf = work + 3 * N * W;
  T* lanes = work + 4 * N * W;
  T* im = work + imag_offset<T, Arch>(N);
  for (std::size_t c = 0; c < count; ++c) {
    for (std::size_t n = 0; n < N; ++n) {
      // log2 e rounded to T: the scan then computes exactly 2^(Δ ã) with ã within 1 ulp of a log2 e.
      a[n * W + c] = p.fast_exp ? p.A(d0 + c, n) * T(1.44269504088896340736) : p.A(d0 + c, n);
      if (!p.h0.empty()) h[n * W + c] = p.h0(srow, d0 + c, n);
      if (p.B.fixed) bf[n * W + c] = p.B.matrix(d0 + c, n);
      if (p.C.fixed) cf[n * W + c] = p.C.matrix(d0 + c, n);
      if (p.is_complex) {
        im[n * W + c] = p.A_im(d0 + c, n);
        if (!p.h0_im.empty()) im[(N + n) * W + c] = p.h0_im(srow, d0 + c, n);
        if (p.B_im.fixed) im[(2 * N + n) * W + c] = p.B_im.matrix(d0 + c, n);
        if (p.C_im.fixed) im[(3 * N + n) * W + c] = p.C_im.matrix(d0 + c, n);
      }
    }
    if (!p.delta_bias.empty()) lanes[c] = p.delta_bias(d0 + c);
    if (!p.D.empty()) lanes[W + c] = p.D(d0 + c);
  }
}

/// Writes a block's state to row `srow` of last_state.
template <class T, class Arch>
void block_finish(const scan_problem<T>& p, std::size_t srow, std::size_t d0, std::size_t count, const T* work) {
  constexpr std::size_t W = width_v<T, Arch>;
  if (p.last_state.empty()) return;
  const std::size_t N = p.nstate;
  const T* h = work + N * W;
  const T* hi = work + imag_offset<T, Arch>(N) + N * W;
  for (std::size_t c = 0; c < count; ++c) {
    for (std::size_t n = 0; n < N; ++n) {
      p.last_state(srow, d0 + c, n) = h[n * W + c];
      if (p.is_complex) p.last_im(srow, d0 + c, n) = hi[n * W + c];
    }
  }
}

/// The chunk buffers, shared by the blocks of a piece one after the other (about 24 KiB used by a
/// real scan: L1; bvi/cvi, the imaginary B/C tiles, are touched only by complex A).
/// bv/cv hold the B/C values of one state tile for a chunk; `b_key`/`c_key` say which (group,
/// first state, first token) they hold, so that blocks of the same group copy them once.
template <class T, class Arch>
struct chunk_buffers {
  static constexpr std::size_t W = width_v<T, Arch>;
  alignas(64) T dt[chunk_tokens * W] = {};
  alignas(64) T du[chunk_tokens * W] = {};
  alignas(64) T ub[chunk_tokens * W] = {};
  alignas(64) T yb[chunk_tokens * W] = {};
  alignas(64) T bv[chunk_tokens * max_state_tile] = {};
  alignas(64) T cv[chunk_tokens * max_state_tile] = {};
  alignas(64) T bvi[chunk_tokens * max_state_tile] = {};  // imaginary parts (complex A)
  alignas(64) T cvi[chunk_tokens * max_state_tile] = {};
  std::array<std::size_t, 3> b_key{~std::size_t{0}, 0, 0}, c_key{~std::size_t{0}, 0, 0};
};

/// The state tiles of a complex block over one chunk (dt and du ready in `buf`): tiles of up to 8
/// states, whose real and imaginary parts (16 registers) stay in registers.
template <class T, class Arch>
void block_chunk_complex(const scan_problem<T>& p, std::size_t row, std::size_t gb, std::size_t gc, T* work,
                         std::size_t t0, std::size_t tokens, chunk_buffers<T, Arch>& buf) {
  constexpr std::size_t W = width_v<T, Arch>;
  const std::size_t N = p.nstate;
  T* im = work + imag_offset<T, Arch>(N);
  for (std::size_t n0 = 0; n0 < N;) {
    const std::size_t rem = N - n0;
    const std::size_t nt = rem >= 8 ? 8 : rem >= 4 ? 4 : 1;
    if (!p.B.fixed && buf.b_key != std::array<std::size_t, 3>{gb, n0, t0}) {
      copy_tile<T, Arch>(p.B.sequence[row][gb], n0, nt, t0, tokens, buf.bv);
      copy_tile<T, Arch>(p.B_im.sequence[row][gb], n0, nt, t0, tokens, buf.bvi);
      buf.b_key = {gb, n0, t0};
    }
    if (!p.C.fixed && buf.c_key != std::array<std::size_t, 3>{gc, n0, t0}) {
      copy_tile<T, Arch>(p.C.sequence[row][gc], n0, nt, t0, tokens, buf.cv);
      copy_tile<T, Arch>(p.C_im.sequence[row][gc], n0, nt, t0, tokens, buf.cvi);
      buf.c_key = {gc, n0, t0};
    }
    const T* br = p.B.fixed ? work + (2 * N + n0) * W : buf.bv;
    const T* bi = p.B.fixed ? im + (2 * N + n0) * W : buf.bvi;
    const T* cr = p.C.fixed ? work + (3 * N + n0) * W : buf.cv;
    const T* ci = p.C.fixed ? im + (3 * N + n0) * W : buf.cvi;
    const T* ar = work + n0 * W;
    const T* ai = im + n0 * W;
    T* hr = work + (N + n0) * W;
    T* hi = im + (N + n0) * W;
    const bool acc = n0 > 0;
    switch (nt) {
      case 8:
        scan_tile_complex_dispatch<8, T, Arch>(p.B.fixed, p.C.fixed, tokens, buf.dt, buf.du, buf.yb, acc, ar, ai, hr,
                                               hi, br, bi, cr, ci);
        break;
      case 4:
        scan_tile_complex_dispatch<4, T, Arch>(p.B.fixed, p.C.fixed, tokens, buf.dt, buf.du, buf.yb, acc, ar, ai, hr,
                                               hi, br, bi, cr, ci);
        break;
      default:
        scan_tile_complex_dispatch<1, T, Arch>(p.B.fixed, p.C.fixed, tokens, buf.dt, buf.du, buf.yb, acc, ar, ai, hr,
                                               hi, br, bi, cr, ci);
        break;
    }
    n0 += nt;
  }
}

/// Tokens [t0, t0 + tokens) of one batch row and one block of `count` <= W channels [d0, d0 +
/// count), all of which use the same group of B and of C. Lanes past `count` compute on zeros
/// and are dropped.
template <class T, class Arch>
void block_chunk(const scan_problem<T>& p, std::size_t row, std::size_t d0, std::size_t count, T* work,
                 std::size_t t0, std::size_t tokens, chunk_buffers<T, Arch>& buf) {
  using V = batch_t<T, Arch>;
  constexpr std::size_t W = width_v<T, Arch>;
  constexpr std::size_t CT = chunk_tokens;
  const std::size_t N = p.nstate, L = p.length;
  T* a = work;
  T* h = work + N * W;
  T* bf = work + 2 * N * W;
  T* cf = work + 3 * N * W;
  const V bias = detail::load<Arch>(work + 4 * N * W);
  const V skip = detail::load<Arch>(work + 4 * N * W + W);
  T* dt = buf.dt;
  T* du = buf.du;
  T* ub = buf.ub;
  T* yb = buf.yb;
  // Prefetch distance: the same position two chunks ahead, when there is one.
  const std::size_t ahead = t0 + 2 * CT < L ? 2 * CT : 0;
  gather_chunk<T, Arch>(p.u, row, d0, count, t0, tokens, ub, ahead);
  gather_chunk<T, Arch>(p.delta, row, d0, count, t0, tokens, dt, ahead);
  for (std::size_t t = 0; t < tokens; ++t) {
    V d = detail::load<Arch>(dt + t * W) + bias;
    if (p.softplus) d = detail::softplus(d);
    detail::store(dt + t * W, d);
    detail::store(du + t * W, d * detail::load<Arch>(ub + t * W));
  }
  if (N == 0) std::fill(yb, yb + CT * W, T(0));
  const std::size_t gb = p.B.fixed ? 0 : d0 / group_size(p.B, p.dim);
  const std::size_t gc = p.C.fixed ? 0 : d0 / group_size(p.C, p.dim);
  if (p.is_complex) {
    block_chunk_complex<T, Arch>(p, row, gb, gc, work, t0, tokens, buf);
  }
  // Spans of up to max_state_tile states: their variable B/C values are copied once per chunk
  // and group (blocks of the same group reuse them), then scanned in register tiles.
  for (std::size_t s0 = 0; s0 < N && !p.is_complex; s0 += max_state_tile) {
    const std::size_t span = std::min(max_state_tile, N - s0);
    if (!p.B.fixed && buf.b_key != std::array<std::size_t, 3>{gb, s0, t0}) {
      copy_tile<T, Arch>(p.B.sequence[row][gb], s0, span, t0, tokens, buf.bv);
      buf.b_key = {gb, s0, t0};
    }
    if (!p.C.fixed && buf.c_key != std::array<std::size_t, 3>{gc, s0, t0}) {
      copy_tile<T, Arch>(p.C.sequence[row][gc], s0, span, t0, tokens, buf.cv);
      buf.c_key = {gc, s0, t0};
    }
    for (std::size_t n0 = s0; n0 < s0 + span;) {
      const std::size_t nt = next_tile(s0 + span - n0);
      const T* bp = p.B.fixed ? bf + n0 * W : buf.bv + (n0 - s0);
      const T* cp = p.C.fixed ? cf + n0 * W : buf.cv + (n0 - s0);
      const bool acc = n0 > 0;
      T* hp = h + n0 * W;
      const T* ap = a + n0 * W;
      switch (nt) {
        case 8: scan_tile_run<8, T, Arch>(p.fast_exp, p.B.fixed, p.C.fixed, tokens, dt, du, yb, acc, ap, hp, bp, cp); break;
        case 4: scan_tile_run<4, T, Arch>(p.fast_exp, p.B.fixed, p.C.fixed, tokens, dt, du, yb, acc, ap, hp, bp, cp); break;
        default: scan_tile_run<1, T, Arch>(p.fast_exp, p.B.fixed, p.C.fixed, tokens, dt, du, yb, acc, ap, hp, bp, cp); break;
      }
      n0 += nt;
    }
  }
  // out = (y + D u) * silu(z); the z chunk reuses the du buffer, which the tiles no longer need.
  if (!p.z.empty()) gather_chunk<T, Arch>(p.z, row, d0, count, t0, tokens, du, ahead);
  for (std::size_t t = 0; t < tokens; ++t) {
    V y = detail::load<Arch>(yb + t * W);
    if (!p.D.empty()) y = detail::fma(skip, detail::load<Arch>(ub + t * W), y);
    if (!p.z.empty()) y = y * detail::silu(detail::load<Arch>(du + t * W));
    detail::store(yb + t * W, y);
  }
  scatter_chunk<T, Arch>(yb, row, d0, count, t0, tokens, p.out, ahead);
}

/// Blocks per piece: a piece of one batch row runs chunk by chunk, each chunk over all its blocks,
/// so that a token-major token row (and the B/C of a chunk) is used by neighbouring blocks while
/// it is in cache and TLB, instead of once per block and L (16 blocks: 256 float channels).
inline constexpr std::size_t piece_blocks = 16;

/// Runs the scan over pieces (batch row x up to piece_blocks channel blocks) on parallel_for.
template <class T, class Arch>
void selective_scan_run(const scan_problem<T>& p, const parallel_options& options) {
  constexpr std::size_t W = width_v<T, Arch>;
  if (p.batch == 0 || p.dim == 0) return;
  block_layout layout;
  layout.segment = std::gcd(group_size(p.B, p.dim), group_size(p.C, p.dim));
  layout.blocks_per_segment = (layout.segment + W - 1) / W;
  const std::size_t blocks_per_row = (p.dim / layout.segment) * layout.blocks_per_segment;
  const std::size_t pieces_per_row = (blocks_per_row + piece_blocks - 1) / piece_blocks;
  parallel_options run_options = options;
  // Split only where each piece has at least ~64 Ki state updates (a parallel region costs µs).
  const std::size_t per_piece =
      std::max<std::size_t>(1, p.length * std::max<std::size_t>(p.nstate, 1) * W * std::min(piece_blocks, blocks_per_row));
  run_options.min_block = std::max<std::ptrdiff_t>(options.min_block,
                                                   static_cast<std::ptrdiff_t>((std::size_t{1} << 16) / per_piece + 1));
  const std::size_t block_values = per_block_values<T, Arch>(p.nstate, p.is_complex);
  const std::size_t sequences = p.sequences();
  parallel_for(std::size_t{0}, p.batch * pieces_per_row, [&](std::size_t piece) {
    const std::size_t row = piece / pieces_per_row;
    const std::size_t first = (piece % pieces_per_row) * piece_blocks;
    const std::size_t blocks = std::min(piece_blocks, blocks_per_row - first);
    std::vector<T> work(blocks * block_values);
    auto buf = std::make_unique<chunk_buffers<T, Arch>>();  // ~24 KiB (40 KiB complex), off the (OpenMP) stack
    // Packed sequences: each starts from its own state (h0 row or zero) and ends in its own
    // last_state row; chunks never straddle a boundary.
    for (std::size_t s = 0; s < sequences; ++s) {
      const std::size_t srow = row * sequences + s, begin = p.seq_begin(s), end = p.seq_end(s);
      for (std::size_t j = 0; j < blocks; ++j)
        block_init<T, Arch>(p, srow, layout.d0(first + j, W), layout.count(first + j, W), work.data() + j * block_values);
      for (std::size_t t0 = begin; t0 < end; t0 += chunk_tokens) {
        const std::size_t tokens = std::min(chunk_tokens, end - t0);
        for (std::size_t j = 0; j < blocks; ++j)
          block_chunk<T, Arch>(p, row, layout.d0(first + j, W), layout.count(first + j, W),
                               work.data() + j * block_values, t0, tokens, *buf);
      }
      for (std::size_t j = 0; j < blocks; ++j)
        block_finish<T, Arch>(p, srow, layout.d0(first + j, W), layout.count(first + j, W),
                              work.data() + j * block_values);
    }
  }, run_options);
}

/// Everything one decode step needs, after validation, in the heads layout.
template <class T>
struct state_update_problem {
  tensor_view<T, 4> state;                // (batch, H, P, N)
  tensor_view<const T, 3> x, dt, z;       // (batch, H, P)
  tensor_view<const T, 3> A;              // (H, P, N)
  tensor_view<const T, 3> B, C;           // (batch, G, N)
  tensor_view<const T, 2> D, dt_bias;     // (H, P)
  tensor_view<T, 3> out;                  // (batch, H, P)
  bool softplus = false;
  bool fast_exp = false;                  // exp(dt a) as fast_exp2(dt log2 e · a)
};

/// One state row s_n <- exp(dt a_n) s_n + (dt x) b_n for n in [0, N), returning Σ_n s_n c_n.
/// SIMD along n when every row is contiguous in n; the tail (or the whole row) runs width 1.
/// With `fast`, dtp is dt log2 e and the decay is fast_exp2(dtp a) (SIMD part; the tail is exact).
template <class T, class Arch>
inline T state_row(std::size_t N, T dtp, T dxp, T* s, std::ptrdiff_t ss, const T* a, std::ptrdiff_t sa,
                   const T* b, std::ptrdiff_t sb, const T* c, std::ptrdiff_t sc, bool fast) noexcept {
  using V = batch_t<T, Arch>;
  using S = scalar_batch<T>;
  constexpr std::size_t W = width_v<T, Arch>;
  std::size_t n = 0;
  T y = 0;
  if (ss == 1 && sa == 1 && sb == 1 && sc == 1 && N >= W) {
    const V dtv(dtp), dxv(dxp);
    V acc(T(0));
    for (; n + W <= N; n += W) {
      const V x = dtv * detail::load<Arch>(a + n);
      const V next = detail::fma(fast ? fast_exp2<T, Arch>(x) : detail::exp(x), detail::load<Arch>(s + n),
                                 dxv * detail::load<Arch>(b + n));
      detail::store(s + n, next);
      acc = detail::fma(next, detail::load<Arch>(c + n), acc);
    }
    y = detail::reduce_add(acc);
  }
  for (; n < N; ++n) {
    const auto i = static_cast<std::ptrdiff_t>(n);
    const S x = S(fast ? dtp * T(0.693147180559945309417) : dtp) * S(a[i * sa]);
    const S next = detail::fma(detail::exp(x), S(s[i * ss]), S(dxp) * S(b[i * sb]));
    s[i * ss] = next.value;
    y = detail::fma(next, S(c[i * sc]), S(y)).value;
  }
  return y;
}

/// Blocks of W channels per group of the decode step's passes (state_update_head): 16 blocks,
/// 3 KiB of stack for the per-channel values.
inline constexpr std::size_t decode_group = 16;

/// Loads `count` <= W values with stride `stride` into a batch, zero-padding the other lanes.
template <class T, class Arch>
inline batch_t<T, Arch> load_lanes(const T* p, std::ptrdiff_t stride, std::size_t count) noexcept {
  constexpr std::size_t W = width_v<T, Arch>;
  if (stride == 1 && count == W) return detail::load<Arch>(p);
  alignas(64) T lanes[W] = {};
  for (std::size_t c = 0; c < count; ++c) lanes[c] = p[static_cast<std::ptrdiff_t>(c) * stride];
  return detail::load<Arch>(lanes);
}

/// The decode step of W channels whose state rows hold exactly W = N states (Mamba-1's N = 16 in
/// float on AVX-512): channel c's row s_c <- exp(dte_c a_c) s_c + dxb_c b is one register, and
/// lane c of the result is y_c = Σ_n s_c,n c_n. The channels are unrolled at compile time, with the
/// exp chosen at compile time, so that the exp constants stay in registers and the out-of-order
/// core overlaps the exp chains of neighbouring channels (a run-time loop with the choice inside
/// ran at half the speed). The W row sums are a transpose-and-add tree (45 instructions for 16 rows
/// against about 8 per row for one horizontal sum each) whose first stage takes each pair of
/// channels as soon as it is ready, with the multiply by c fused into it.
template <bool Fast, class T, class Arch>
inline batch_t<T, Arch> state_block(const T* dte, const T* dxb, T* rows, std::ptrdiff_t row_stride, const T* arows,
                                    std::ptrdiff_t a_stride, const batch_t<T, Arch>& bv,
                                    const batch_t<T, Arch>& cv) noexcept {
  using V = batch_t<T, Arch>;
  constexpr std::size_t W = width_v<T, Arch>;
  const auto exponent = [&](std::size_t c) {
    return V(dte[c]) * detail::load<Arch>(arows + static_cast<std::ptrdiff_t>(c) * a_stride);
  };
  const auto row_update = [&](std::size_t c, const V& decay) {
    T* row = rows + static_cast<std::ptrdiff_t>(c) * row_stride;
    const V next = detail::fma(decay, detail::load<Arch>(row), V(dxb[c]) * bv);
    detail::store(row, next);
    return next;
  };
#if XSIMD_WITH_AVX512F
  if constexpr (has_row_sum_tree_v<T, Arch>) {
    // Four rows at a time with their exps in lockstep (exp_lockstep: 1.05x).
    const __m512 c_lo = _mm512_unpacklo_ps(cv, cv), c_hi = _mm512_unpackhi_ps(cv, cv);
    __m512 pairs[W / 2];
    // A loop unrolled by pragma, not static_for: at -O2 GCC kept the static_for bodies out of line.
#pragma GCC unroll 4
    for (std::size_t q = 0; q < W / 4; ++q) {
      __m512 decay[4];
      static_for<4>([&](auto j) { decay[j] = exponent(4 * q + j); });
      if constexpr (!Fast) {
        exp_lockstep(decay);
      } else {
#if XSIMD_WITH_AVX512DQ
        if constexpr (has_fast_exp2_v<T, Arch>) {
          fast_exp2_lockstep(decay);
        } else
#endif
        {
          static_for<4>([&](auto j) { decay[j] = fast_exp2<T, Arch>(V(decay[j])); });
        }
      }
      __m512 next[4];
      static_for<4>([&](auto j) { next[j] = row_update(4 * q + j, decay[j]); });
      pairs[2 * q] = row_pair_sums(next[0], next[1], c_lo, c_hi);
      pairs[2 * q + 1] = row_pair_sums(next[2], next[3], c_lo, c_hi);
    }
    return row_sums_from_pairs(pairs);
  }
#endif
  alignas(64) T sums[W];
  static_for<W>([&](auto c) {
    const V decay = Fast ? fast_exp2<T, Arch>(exponent(c)) : detail::exp(exponent(c));
    sums[c] = detail::reduce_add(row_update(c, decay) * cv);
  });
  return detail::load<Arch>(sums);
}

/// The decode step of one (batch, head) row over the P channels, in blocks of W channels so
/// that softplus, the D skip and the silu gate are vectorised across channels. Pointers are
/// formed from strides directly: view::operator() in this loop cost a quarter of the time.
///
/// The channels run in groups of decode_group blocks, in three passes: (1) dt (bias, softplus)
/// and dt x of every channel of the group, (2) the state rows, (3) the D skip and the gate. Block
/// by block, the state rows of a block waited for its softplus (a chain of ~40 dependent
/// instructions and a division) and the out-of-order window could not reach the next block's:
/// that latency, once per block, was a third of the step.
template <class T, class Arch>
void state_update_head(const state_update_problem<T>& p, std::size_t b, std::size_t hd, std::size_t c_begin,
                       std::size_t c_end) noexcept {
  using V = batch_t<T, Arch>;
  constexpr std::size_t W = width_v<T, Arch>;
  constexpr std::size_t group = decode_group * W;
  const std::size_t H = p.state.extent(1), P = p.state.extent(2), N = p.state.extent(3);
  if (P == 0) return;
  // (i, j, ...) of a view, from its first two strides.
  const auto at = [](auto& view, std::size_t i, std::size_t j) {
    return view.data() + static_cast<std::ptrdiff_t>(i) * view.stride(0) + static_cast<std::ptrdiff_t>(j) * view.stride(1);
  };
  const T* xr = at(p.x, b, hd);
  const T* dtr = at(p.dt, b, hd);
  const T* zr = p.z.empty() ? nullptr : at(p.z, b, hd);
  const T* dr = p.D.empty() ? nullptr : p.D.data() + static_cast<std::ptrdiff_t>(hd) * p.D.stride(0);
  const T* biasr = p.dt_bias.empty() ? nullptr : p.dt_bias.data() + static_cast<std::ptrdiff_t>(hd) * p.dt_bias.stride(0);
  T* outr = at(p.out, b, hd);
  const std::ptrdiff_t sx = p.x.stride(2), sdt = p.dt.stride(2), so = p.out.stride(2);
  const std::ptrdiff_t sz = p.z.empty() ? 0 : p.z.stride(2), sd = p.D.empty() ? 0 : p.D.stride(1);
  const std::ptrdiff_t sbias = p.dt_bias.empty() ? 0 : p.dt_bias.stride(1);
  // Rows over n: state (b, hd, c, :), A (hd, c, :), B/C (b, g, :). No pointer into an empty view.
  const std::size_t gb = hd / (H / p.B.extent(1)), gc = hd / (H / p.C.extent(1));
  T* sr = N == 0 ? nullptr : at(p.state, b, hd);
  const T* ar = N == 0 ? nullptr : p.A.data() + static_cast<std::ptrdiff_t>(hd) * p.A.stride(0);
  const T* bp = N == 0 ? nullptr : at(p.B, b, gb);
  const T* cp = N == 0 ? nullptr : at(p.C, b, gc);
  const std::ptrdiff_t ss_c = p.state.stride(2), ss_n = p.state.stride(3), sa_c = p.A.stride(1), sa_n = p.A.stride(2);
  const std::ptrdiff_t sb = p.B.stride(2), sc = p.C.stride(2);
  const bool one_register_rows = N == W && W > 1 && ss_n == 1 && sa_n == 1 && sb == 1 && sc == 1;
  const auto off = [](std::size_t p0, std::ptrdiff_t stride) { return static_cast<std::ptrdiff_t>(p0) * stride; };
  // dte: the exponent's dt, times log2 e for the fast exp (fast_exp2 takes base-2 exponents).
  alignas(64) T dte[group], dxb[group], yb[group];
  for (std::size_t g0 = c_begin; g0 < c_end; g0 += group) {
    const std::size_t g_end = std::min(c_end, g0 + group);
    for (std::size_t p0 = g0; p0 < g_end; p0 += W) {  // pass 1: dt and dt x
      const std::size_t count = std::min(W, P - p0);
      V dtv = load_lanes<T, Arch>(dtr + off(p0, sdt), sdt, count);
      if (biasr) dtv = dtv + load_lanes<T, Arch>(biasr + off(p0, sbias), sbias, count);
      if (p.softplus) dtv = detail::softplus(dtv);
      detail::store(dte + (p0 - g0), p.fast_exp ? dtv * V(T(1.44269504088896340736)) : dtv);
      detail::store(dxb + (p0 - g0), dtv * load_lanes<T, Arch>(xr + off(p0, sx), sx, count));
    }
    for (std::size_t p0 = g0; p0 < g_end; p0 += W) {  // pass 2: the state rows
      const std::size_t count = std::min(W, P - p0);
      const T* dtg = dte + (p0 - g0);
      const T* dxg = dxb + (p0 - g0);
      T* yg = yb + (p0 - g0);
      if (one_register_rows && count == W) {
        // Mamba-1's N = 16 in float on AVX-512: one register per channel (see state_block).
        const V bv = detail::load<Arch>(bp), cv = detail::load<Arch>(cp);
        T* rows = sr + off(p0, ss_c);
        const T* arows = ar + off(p0, sa_c);
        detail::store(yg, p.fast_exp ? state_block<true, T, Arch>(dtg, dxg, rows, ss_c, arows, sa_c, bv, cv)
                                     : state_block<false, T, Arch>(dtg, dxg, rows, ss_c, arows, sa_c, bv, cv));
      } else {
        for (std::size_t c = 0; c < count; ++c) {
          const std::size_t ch = p0 + c;
          yg[c] = N == 0 ? T(0)
                         : state_row<T, Arch>(N, dtg[c], dxg[c], sr + off(ch, ss_c), ss_n, ar + off(ch, sa_c), sa_n,
                                              bp, sb, cp, sc, p.fast_exp);
        }
      }
    }
    for (std::size_t p0 = g0; p0 < g_end; p0 += W) {  // pass 3: out = (y + D x) silu(z)
      const std::size_t count = std::min(W, P - p0);
      T* yg = yb + (p0 - g0);
      V y = count == W ? detail::load<Arch>(yg) : load_lanes<T, Arch>(yg, 1, count);
      if (dr) y = detail::fma(load_lanes<T, Arch>(dr + off(p0, sd), sd, count),
                              load_lanes<T, Arch>(xr + off(p0, sx), sx, count), y);
      if (zr) y = y * detail::silu(load_lanes<T, Arch>(zr + off(p0, sz), sz, count));
      if (so == 1 && count == W) {
        detail::store(outr + off(p0, so), y);
      } else {
        alignas(64) T lanes[W];
        detail::store(lanes, y);
        for (std::size_t c = 0; c < count; ++c) outr[off(p0 + c, so)] = lanes[c];
      }
    }
  }
}

template <class T, class Arch>
void selective_state_update_run(const state_update_problem<T>& p, const parallel_options& options) {
  const std::size_t batch = p.state.extent(0), H = p.state.extent(1), P = p.state.extent(2), N = p.state.extent(3);
  // Pieces of one (batch, head) row's channels, one decode_group each, so that a single row
  // (Mamba-1 without heads: H = 1, P = d_inner) can use several threads too.
  constexpr std::size_t piece = decode_group * width_v<T, Arch>;
  const std::size_t pieces_per_row = std::max<std::size_t>(1, (P + piece - 1) / piece);
  const std::size_t per_piece = std::max<std::size_t>(1, std::min(P, piece) * N);
  parallel_options run_options = options;
  // A decode step is microseconds: split only where each thread gets ~8 Ki state updates (a few
  // microseconds, against about one for the parallel region).
  run_options.min_block = std::max<std::ptrdiff_t>(options.min_block,
                                                   static_cast<std::ptrdiff_t>((std::size_t{1} << 13) / per_piece + 1));
  parallel_for(std::size_t{0}, batch * H * pieces_per_row, [&](std::size_t i) {
    const std::size_t row = i / pieces_per_row, first = (i % pieces_per_row) * piece;
    state_update_head<T, Arch>(p, row / H, row % H, first, std::min(P, first + piece));
  }, run_options);
}

}  // namespace ssmkit::detail
