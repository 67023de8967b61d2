#pragma once
/// \file detail/batch.hpp
/// One vocabulary for kernel bodies on every backend. Always call these qualified
/// (`detail::exp(x)`, `detail::store(p, x)`): unqualified calls also find xsimd's functions by
/// argument-dependent lookup, and `xsimd::store` is an *aligned* store. A kernel is written once against
/// `batch_t<T, Arch>` and the free functions below; with `Arch = ssmkit::scalar` the batch is a
/// width-1 wrapper around T and the same body becomes the scalar backend. This keeps the two
/// backends one code path, so they can only differ by rounding (fma, exp), never by logic.

#include <cmath>
#include <cstddef>
#include <utility>

#include <ssmkit/backend.hpp>

namespace ssmkit::detail {

/// A width-1 "batch" of T: the scalar backend's register.
template <class T>
struct scalar_batch {
  using value_type = T;
  static constexpr std::size_t size = 1;

  T value{};

  scalar_batch() = default;
  constexpr scalar_batch(T v) noexcept : value(v) {}  // NOLINT(google-explicit-constructor): broadcast, like xsimd

  static scalar_batch load_unaligned(const T* p) noexcept { return {*p}; }
  static scalar_batch load_aligned(const T* p) noexcept { return {*p}; }
  void store_unaligned(T* p) const noexcept { *p = value; }
  void store_aligned(T* p) const noexcept { *p = value; }

  friend scalar_batch operator+(scalar_batch a, scalar_batch b) noexcept { return {a.value + b.value}; }
  friend scalar_batch operator-(scalar_batch a, scalar_batch b) noexcept { return {a.value - b.value}; }
  friend scalar_batch operator*(scalar_batch a, scalar_batch b) noexcept { return {a.value * b.value}; }
  friend scalar_batch operator/(scalar_batch a, scalar_batch b) noexcept { return {a.value / b.value}; }
  friend scalar_batch operator-(scalar_batch a) noexcept { return {-a.value}; }
  friend bool operator<(scalar_batch a, scalar_batch b) noexcept { return a.value < b.value; }
  friend bool operator>(scalar_batch a, scalar_batch b) noexcept { return a.value > b.value; }
  friend bool operator<=(scalar_batch a, scalar_batch b) noexcept { return a.value <= b.value; }
  friend bool operator>=(scalar_batch a, scalar_batch b) noexcept { return a.value >= b.value; }
  scalar_batch& operator+=(scalar_batch b) noexcept { value += b.value; return *this; }
  scalar_batch& operator-=(scalar_batch b) noexcept { value -= b.value; return *this; }
  scalar_batch& operator*=(scalar_batch b) noexcept { value *= b.value; return *this; }
  scalar_batch& operator/=(scalar_batch b) noexcept { value /= b.value; return *this; }
};

template <class T, class Arch>
struct batch_traits {
  using type = xsimd::batch<T, Arch>;
};
template <class T>
struct batch_traits<T, scalar> {
  using type = scalar_batch<T>;
};

/// The register type of backend Arch for element type T.
template <class T, class Arch>
using batch_t = typename batch_traits<T, Arch>::type;

/// How many T one register of backend Arch holds (1 for scalar).
template <class T, class Arch>
inline constexpr std::size_t width_v = batch_t<T, Arch>::size;

// ---- scalar_batch operations, named like their xsimd counterparts

template <class T>
inline T reduce_add(scalar_batch<T> x) noexcept { return x.value; }
template <class T>
inline scalar_batch<T> fma(scalar_batch<T> x, scalar_batch<T> y, scalar_batch<T> z) noexcept {
  return {std::fma(x.value, y.value, z.value)};
}
template <class T>
inline scalar_batch<T> exp(scalar_batch<T> x) noexcept { return {std::exp(x.value)}; }
template <class T>
inline scalar_batch<T> log1p(scalar_batch<T> x) noexcept { return {std::log1p(x.value)}; }
template <class T>
inline scalar_batch<T> sqrt(scalar_batch<T> x) noexcept { return {std::sqrt(x.value)}; }
template <class T>
inline scalar_batch<T> abs(scalar_batch<T> x) noexcept { return {std::abs(x.value)}; }
/// Like xsimd's (and the x86 instructions), max and min do not propagate NaN reliably: kernels that
/// must propagate NaN use select on a comparison instead.
template <class T>
inline scalar_batch<T> max(scalar_batch<T> a, scalar_batch<T> b) noexcept { return {a.value < b.value ? b.value : a.value}; }
template <class T>
inline scalar_batch<T> min(scalar_batch<T> a, scalar_batch<T> b) noexcept { return {b.value < a.value ? b.value : a.value}; }
template <class T>
inline scalar_batch<T> select(bool condition, scalar_batch<T> a, scalar_batch<T> b) noexcept {
  return condition ? a : b;
}

// ---- xsimd batch operations (reduce_add and fma are in simd.hpp, with the version shims)

#if XSIMD_WITH_AVX512F
/// detail::exp on K AVX-512 float registers in place (the scheme is described at exp, below), each
/// step issued for all K before the next. One exp is a chain of 13 dependent instructions, ~50
/// cycles, and a kernel that needs a few per row waits on the chains when they are issued one
/// after the other: GCC does not schedule before register allocation on x86, so the source order
/// is the issue order. In lockstep the decode step's state rows ran 1.05x faster (K = 4; 2 and 8
/// gained less). The arithmetic of each lane is exactly that of exp.
template <std::size_t... J>
SSMKIT_ALWAYS_INLINE void exp_lockstep(__m512* x, std::index_sequence<J...>) noexcept {
  // Fold expressions rather than loops over J: at -O2 GCC left such loops rolled, with the
  // registers in memory (the decode step ran 1.9x slower).
  __m512 k[sizeof...(J)], r[sizeof...(J)], p[sizeof...(J)];
  const auto horner = [&](float c) { ((p[J] = _mm512_fmadd_ps(p[J], r[J], _mm512_set1_ps(c))), ...); };
  // Clamp so that ±inf cannot make inf - inf in the reduction; max/min return their second
  // operand when one is NaN, so NaN passes through. exp(±150) is already 0 or inf in float.
  ((x[J] = _mm512_min_ps(_mm512_set1_ps(150.0f), _mm512_max_ps(_mm512_set1_ps(-150.0f), x[J]))), ...);
  ((k[J] = _mm512_roundscale_ps(_mm512_mul_ps(x[J], _mm512_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
   ...);
  ((r[J] = _mm512_fnmadd_ps(k[J], _mm512_set1_ps(0.693359375f), x[J])), ...);  // ln2 to 9 bits
  ((r[J] = _mm512_fnmadd_ps(k[J], _mm512_set1_ps(-2.12194440e-4f), r[J])), ...);  // ln2 - 0.693359375
  // p(r) = 1 + r (1 + r q(r)), q of degree 4: minimax of the relative error on |r| <= ln2 / 2.
  ((p[J] = _mm512_set1_ps(0x1.6bd908p-10f)), ...);  // 1.38796913e-3
  horner(0x1.1239b0p-7f);                             // 8.36869329e-3
  horner(0x1.555682p-5f);                             // 4.16672267e-2
  horner(0x1.555492p-3f);                             // 1.66665211e-1
  horner(0x1.fffffep-2f);                             // 4.99999970e-1
  horner(1.0f);
  horner(1.0f);
  ((x[J] = _mm512_scalef_ps(p[J], k[J])), ...);
}

template <std::size_t K>
SSMKIT_ALWAYS_INLINE void exp_lockstep(__m512 (&x)[K]) noexcept {
  exp_lockstep(x, std::make_index_sequence<K>());
}
#endif

/// exp of every lane. On AVX-512 float it is ssmkit's own: round-to-nearest reduction
/// x = k ln2 + r (|r| <= ln2 / 2, ln2 split in two so that k ln2 is exact), a degree-6 polynomial
/// p(r) = 1 + r (1 + r q(r)) with q the minimax of the relative error (3.7e-9 on the interval,
/// below u / 10; it replaced the degree-7 Taylor polynomial, one fma more for the same accuracy),
/// and vscalefps for p 2^k, which also gives the exact 0 and inf of underflow and overflow (and the
/// gradual underflow to subnormals) without the compares and blends of xsimd's exp: 13 instructions
/// instead of 21, and the scans spend much of their time here. The error is within 0.92 ulp over
/// every float in [-104, 89] with a normal result (measured; tested at 2 ulp), and rounding to
/// nearest keeps it unbiased around x = 0⁻, where a scan's decay factors live. Double on AVX-512
/// takes the same scheme with a degree-13 polynomial. Elsewhere it is xsimd's exp.
template <class T, class A>
inline xsimd::batch<T, A> exp(const xsimd::batch<T, A>& x) noexcept {
#if XSIMD_WITH_AVX512F
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, float>) {
    __m512 v[1] = {x};
    exp_lockstep(v);
    return v[0];
  }
  if constexpr (std::is_base_of_v<xsimd::avx512f, A> && std::is_same_v<T, double>) {
    // The same scheme in double, which also keeps NaN and huge arguments away from xsimd 8.1's
    // AVX-512 double exp: without AVX512DQ it converts to int64 one lane at a time with a C++ cast,
    // undefined behaviour for NaN and out-of-range values (UBSan found it through softplus).
    // ln2 = 0.693147180369123816490 (33 bits, so k ln2_hi is exact for |k| < 2^20) + 1.9082e-10;
    // degree 13: truncation 0.347^14 / 14! = 4e-18 relative, below u / 10. exp(±1000) is 0 or inf.
    const __m512d v = _mm512_min_pd(_mm512_set1_pd(1000.0), _mm512_max_pd(_mm512_set1_pd(-1000.0), x));
    const __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(v, _mm512_set1_pd(1.4426950408889634074)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.93147180369123816490e-01), v);
    r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.90821492927058770002e-10), r);
    constexpr double inverse_factorials[] = {1.0 / 6227020800, 1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800,
                                             1.0 / 362880,     1.0 / 40320,     1.0 / 5040,     1.0 / 720,
                                             1.0 / 120,        1.0 / 24,        1.0 / 6,        0.5,
                                             1.0,              1.0};
    __m512d p = _mm512_set1_pd(inverse_factorials[0]);
    for (std::size_t i = 1; i < sizeof(inverse_factorials) / sizeof(double); ++i) {
      p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(inverse_factorials[i]));
    }
    return _mm512_scalef_pd(p, k);
  }
#endif
  return xsimd::exp(x);
}
template <class T, class A>
inline xsimd::batch<T, A> log1p(const xsimd::batch<T, A>& x) noexcept { return xsimd::log1p(x); }
template <class T, class A>
inline xsimd::batch<T, A> sqrt(const xsimd::batch<T, A>& x) noexcept { return xsimd::sqrt(x); }
template <class T, class A>
inline xsimd::batch<T, A> abs(const xsimd::batch<T, A>& x) noexcept { return xsimd::abs(x); }
template <class T, class A>
inline xsimd::batch<T, A> max(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) noexcept { return xsimd::max(a, b); }
template <class T, class A>
inline xsimd::batch<T, A> min(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) noexcept { return xsimd::min(a, b); }
template <class T, class A>
inline xsimd::batch<T, A> select(const xsimd::batch_bool<T, A>& condition, const xsimd::batch<T, A>& a,
                                 const xsimd::batch<T, A>& b) noexcept {
  return xsimd::select(condition, a, b);
}

/// Loads `width_v<T, Arch>` elements from p (no alignment required).
template <class Arch, class T>
inline batch_t<T, Arch> load(const T* p) noexcept { return batch_t<T, Arch>::load_unaligned(p); }

/// Stores a batch to p (no alignment required).
template <class B, class T>
inline void store(T* p, const B& x) noexcept { x.store_unaligned(p); }

}  // namespace ssmkit::detail
