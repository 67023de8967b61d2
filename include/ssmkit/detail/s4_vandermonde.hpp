#pragma once
/// \file detail/s4_vandermonde.hpp
/// The Vandermonde product behind the S4D kernel: out_l = Re sum_n W_n z_n^(l - s_n), z_n = exp(log z_n),
/// for l = 0..L-1 (the reference's log_vandermonde, state-spaces/s4 src/models/functional/vandermonde.py).
///
/// Why this shape. The powers are factored as z^l = z^(R k) z^(V b) z^j, with V the SIMD width
/// (lags per register), R = V * blocks the chunk length, l = R k + V b + j:
///   - the anchors a_n = W_n z_n^(R k - s_n) are carried in double by repeated multiplication with
///     z^R and re-anchored with an exact exp every `reanchor` chunks, so they never carry more
///     than ~64 double roundings (the "log z as input": z rounded to T would carry l eps);
///   - per chunk, Q_n = a_n (z^0 .. z^(V-1)) is formed once in T (two registers per mode);
///   - per block b, Re(z^(V b) Q_n) is two FMAs per mode with the table value z^(V b) broadcast.
/// Every term therefore carries a bounded number of T roundings (about 5), independent of l and of
/// L: there is no repeated multiplication in T. The tables are built in double by repeated
/// multiplication (at most `blocks` + V steps, error ~ 50 eps_double).
/// Modes are processed in register groups of 8 (16 registers for Q), then 4, 2, 1 for the rest.

#include <algorithm>
#include <array>
#include <complex>
#include <cstddef>
#include <vector>

#include <ssmkit/detail/batch.hpp>

namespace ssmkit::detail {

/// Blocks of V lags per chunk, and chunks between exact re-anchorings of the double anchors.
inline constexpr std::size_t vandermonde_blocks = 32;
inline constexpr std::size_t vandermonde_reanchor = 64;

/// a b without the C99 Annex G inf/NaN recovery of std::complex's operator* (a library call,
/// __muldc3, that dominates the setup otherwise). Finite inputs give the same result.
inline std::complex<double> cmul(std::complex<double> a, std::complex<double> b) noexcept {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}

/// The per-mode tables of one set of modes (shared by every channel that uses them).
template <class T, class Arch>
struct vandermonde_plan {
  static constexpr std::size_t V = width_v<T, Arch>;
  static constexpr std::size_t NB = vandermonde_blocks;
  static constexpr std::size_t R = V * NB;

  std::size_t modes = 0;
  std::vector<T> pre, pim;                   ///< [n * V + j]: z_n^j
  std::vector<T> tre, tim;                   ///< [n * NB + b]: z_n^(V b)
  std::vector<std::complex<double>> log_z;   ///< [n]
  std::vector<double> shift;                 ///< [n]
  std::vector<std::complex<double>> z_chunk; ///< [n]: z_n^R

  /// logz[n] = log z_n, z[n] = exp(logz[n]) (the caller has it from the discretisation).
  void build(const std::complex<double>* logz, const std::complex<double>* zs, const double* shifts, std::size_t n_modes) {
    modes = n_modes;
    pre.resize(modes * V);
    pim.resize(modes * V);
    tre.resize(modes * NB);
    tim.resize(modes * NB);
    log_z.assign(logz, logz + modes);
    shift.assign(shifts, shifts + modes);
    z_chunk.resize(modes);
    // The powers by repeated multiplication in double (at most V + NB steps,
    // relative error below 1e-14: far under float rounding and the golden tolerances for double).
    // Modes are the inner loop so that the multiplication chains of different modes overlap.
    std::vector<std::complex<double>>& z = z_chunk;  // z, then z^V, then z^R
    std::vector<std::complex<double>> p(modes, 1.0);
    z.assign(zs, zs + modes);
    for (std::size_t j = 0; j < V; ++j) {
      for (std::size_t n = 0; n < modes; ++n) {
        pre[n * V + j] = static_cast<T>(p[n].real());
        pim[n * V + j] = static_cast<T>(p[n].imag());
        p[n] = cmul(p[n], z[n]);
      }
    }
    z.swap(p);  // z = z^V
    p.assign(modes, 1.0);
    for (std::size_t b = 0; b < NB; ++b) {
      for (std::size_t n = 0; n < modes; ++n) {
        tre[n * NB + b] = static_cast<T>(p[n].real());
        tim[n * NB + b] = static_cast<T>(p[n].imag());
        p[n] = cmul(p[n], z[n]);
      }
    }
    z.swap(p);  // z = z^(V NB) = z^R
  }
};

/// Full unrolling of a loop with a compile-time trip count (the accumulator arrays below must
/// live in registers; GCC at -O2 does not always unroll or inline nested generic lambdas).
#if defined(__clang__)
#define SSMKIT_S4_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define SSMKIT_S4_UNROLL _Pragma("GCC unroll 16")
#else
#define SSMKIT_S4_UNROLL
#endif

/// Adds the contribution of G modes starting at n0 to the chunk accumulator `buf` (nb blocks);
/// `first` overwrites buf instead (so the accumulator needs no zeroing pass).
template <std::size_t G, class T, class Arch>
inline void vandermonde_group(const vandermonde_plan<T, Arch>& plan, std::size_t n0,
                              const std::complex<double>* anchor, std::size_t nb, T* buf, bool first) {
  using batch = batch_t<T, Arch>;
  constexpr std::size_t V = vandermonde_plan<T, Arch>::V;
  constexpr std::size_t NB = vandermonde_plan<T, Arch>::NB;
  batch q_re[G], q_im_neg[G];
  SSMKIT_S4_UNROLL
  for (std::size_t g = 0; g < G; ++g) {
    const std::size_t n = n0 + g;
    const batch are(static_cast<T>(anchor[n].real()));
    const batch aim(static_cast<T>(anchor[n].imag()));
    const batch p_re = detail::load<Arch>(plan.pre.data() + n * V);
    const batch p_im = detail::load<Arch>(plan.pim.data() + n * V);
    q_re[g] = are * p_re - aim * p_im;
    q_im_neg[g] = -(are * p_im + aim * p_re);
  }
  const T* tre = plan.tre.data() + n0 * NB;
  const T* tim = plan.tim.data() + n0 * NB;
  // U blocks at a time, each with separate chains for the real and imaginary products: 2U
  // independent FMA chains hide the FMA latency (one chain of 2G FMAs per block would not).
  constexpr std::size_t U = 4;
  std::size_t b = 0;
  for (; b + U <= nb; b += U) {
    batch acc_re[U], acc_im[U];
    SSMKIT_S4_UNROLL
    for (std::size_t u = 0; u < U; ++u) {
      acc_re[u] = first ? batch(T(0)) : detail::load<Arch>(buf + (b + u) * V);
      acc_im[u] = batch(T(0));
    }
    SSMKIT_S4_UNROLL
    for (std::size_t g = 0; g < G; ++g) {
      SSMKIT_S4_UNROLL
      for (std::size_t u = 0; u < U; ++u) {
        acc_re[u] = detail::fma(batch(tre[g * NB + b + u]), q_re[g], acc_re[u]);
        acc_im[u] = detail::fma(batch(tim[g * NB + b + u]), q_im_neg[g], acc_im[u]);
      }
    }
    SSMKIT_S4_UNROLL
    for (std::size_t u = 0; u < U; ++u) detail::store(buf + (b + u) * V, acc_re[u] + acc_im[u]);
  }
  for (; b < nb; ++b) {
    batch acc = first ? batch(T(0)) : detail::load<Arch>(buf + b * V);
    SSMKIT_S4_UNROLL
    for (std::size_t g = 0; g < G; ++g) {
      acc = detail::fma(batch(tre[g * NB + b]), q_re[g], acc);
      acc = detail::fma(batch(tim[g * NB + b]), q_im_neg[g], acc);
    }
    detail::store(buf + b * V, acc);
  }
}

/**
 * out[l * stride] = Re sum_n W_n exp((l - shift_n) log z_n), l = 0..L-1.
 * `anchor` is scratch for plan.modes values.
 */
template <class T, class Arch>
void vandermonde_row(const vandermonde_plan<T, Arch>& plan, const std::complex<double>* W, std::size_t L, T* out,
                     std::ptrdiff_t stride, std::complex<double>* anchor) {
  using P = vandermonde_plan<T, Arch>;
  constexpr std::size_t V = P::V, R = P::R;
  const std::size_t modes = plan.modes;
  const auto exact_anchor = [&](std::size_t n, std::size_t l0) {
    const double power = static_cast<double>(l0) - plan.shift[n];
    return power == 0 ? W[n] : W[n] * std::exp(power * plan.log_z[n]);
  };
  for (std::size_t n = 0; n < modes; ++n) anchor[n] = exact_anchor(n, 0);
  alignas(64) std::array<T, R> buf;
  for (std::size_t l0 = 0, k = 0; l0 < L; l0 += R, ++k) {
    if (k > 0) {
      for (std::size_t n = 0; n < modes; ++n) {
        anchor[n] = k % vandermonde_reanchor == 0 ? exact_anchor(n, l0) : cmul(anchor[n], plan.z_chunk[n]);
      }
    }
    const std::size_t count = std::min(R, L - l0);
    const std::size_t nb = (count + V - 1) / V;
    // Full chunks of a contiguous row accumulate in place; the rest go through buf.
    T* o = out + static_cast<std::ptrdiff_t>(l0) * stride;
    T* acc = stride == 1 && count == R ? o : buf.data();
    std::size_t n = 0;
    for (; n + 8 <= modes; n += 8) vandermonde_group<8>(plan, n, anchor, nb, acc, n == 0);
    if (n + 4 <= modes) { vandermonde_group<4>(plan, n, anchor, nb, acc, n == 0); n += 4; }
    if (n + 2 <= modes) { vandermonde_group<2>(plan, n, anchor, nb, acc, n == 0); n += 2; }
    if (n + 1 <= modes) { vandermonde_group<1>(plan, n, anchor, nb, acc, n == 0); n += 1; }
    if (acc != o) {
      for (std::size_t i = 0; i < count; ++i) o[static_cast<std::ptrdiff_t>(i) * stride] = buf[i];
    }
  }
}

}  // namespace ssmkit::detail

#undef SSMKIT_S4_UNROLL
