#pragma once
/// \file detail/fft_kernels.hpp
/// The butterflies of ssmkit's FFT: Stockham autosort passes of radix 2, 3, 4 and 5, and the
/// real-FFT fix-up steps, on split-complex "lane" arrays.
///
/// Lane layout: element j of lane l of a batch of `lanes` transforms is at re[j*lanes + l] and
/// im[j*lanes + l]. A pass of the Stockham recursion (Van Loan, "Computational Frameworks for the
/// FFT", 1.7; the "stride s" formulation) reads, for every j < m and radix digit r < p, the s
/// consecutive elements x[q + s*(j + r*m)], q < s, and writes y[q + s*(p*j + k)]. Those s
/// elements are s*lanes consecutive T's (the `span`), so the innermost loop is a contiguous run
/// that is vectorised whatever the lane count: across transforms when lanes == SIMD width, within
/// one transform when lanes == 1 and s is large. No shuffles are needed on either path.
///
/// The inverse transform is the forward one with re and im exchanged on input and output
/// (swap(re, im) of x is i*conj(x), and conj(DFT(conj x)) is the unnormalised inverse DFT).

#include <cstddef>

#include <ssmkit/detail/batch.hpp>

namespace ssmkit::detail {

/// One Stockham pass of radix P over m groups of `span` contiguous T's. tw holds, for each j < m,
/// the P-1 twiddles w^(j*k), k = 1..P-1, w = exp(-2 pi i / (P*m)).
template <std::size_t P>
struct fft_radix;

template <class V>
inline void fft_twiddle(V& re, V& im, V wr, V wi) noexcept {
  const V r = re * wr - im * wi;
  im = re * wi + im * wr;
  re = r;
}

template <>
struct fft_radix<2> {
  template <class V, class T>
  static void butterfly(const T* xr, const T* xi, T* yr, T* yi, std::size_t xs, std::size_t ys, const V* w) noexcept {
    const V a0r = V::load_unaligned(xr), a0i = V::load_unaligned(xi);
    const V a1r = V::load_unaligned(xr + xs), a1i = V::load_unaligned(xi + xs);
    V b1r = a0r - a1r, b1i = a0i - a1i;
    if (w) fft_twiddle(b1r, b1i, w[0], w[1]);
    (a0r + a1r).store_unaligned(yr);
    (a0i + a1i).store_unaligned(yi);
    b1r.store_unaligned(yr + ys);
    b1i.store_unaligned(yi + ys);
  }
};

template <>
struct fft_radix<4> {
  template <class V, class T>
  static void butterfly(const T* xr, const T* xi, T* yr, T* yi, std::size_t xs, std::size_t ys, const V* w) noexcept {
    const V a0r = V::load_unaligned(xr), a0i = V::load_unaligned(xi);
    const V a1r = V::load_unaligned(xr + xs), a1i = V::load_unaligned(xi + xs);
    const V a2r = V::load_unaligned(xr + 2 * xs), a2i = V::load_unaligned(xi + 2 * xs);
    const V a3r = V::load_unaligned(xr + 3 * xs), a3i = V::load_unaligned(xi + 3 * xs);
    // Forward DFT of 4 points, omega = -i.
    const V s02r = a0r + a2r, s02i = a0i + a2i, d02r = a0r - a2r, d02i = a0i - a2i;
    const V s13r = a1r + a3r, s13i = a1i + a3i, d13r = a1r - a3r, d13i = a1i - a3i;
    V b0r = s02r + s13r, b0i = s02i + s13i;
    V b2r = s02r - s13r, b2i = s02i - s13i;
    // b1 = d02 - i*d13, b3 = d02 + i*d13; -i*(x + iy) = y - ix.
    V b1r = d02r + d13i, b1i = d02i - d13r;
    V b3r = d02r - d13i, b3i = d02i + d13r;
    if (w) {
      fft_twiddle(b1r, b1i, w[0], w[1]);
      fft_twiddle(b2r, b2i, w[2], w[3]);
      fft_twiddle(b3r, b3i, w[4], w[5]);
    }
    b0r.store_unaligned(yr);
    b0i.store_unaligned(yi);
    b1r.store_unaligned(yr + ys);
    b1i.store_unaligned(yi + ys);
    b2r.store_unaligned(yr + 2 * ys);
    b2i.store_unaligned(yi + 2 * ys);
    b3r.store_unaligned(yr + 3 * ys);
    b3i.store_unaligned(yi + 3 * ys);
  }
};

template <>
struct fft_radix<3> {
  template <class V, class T>
  static void butterfly(const T* xr, const T* xi, T* yr, T* yi, std::size_t xs, std::size_t ys, const V* w) noexcept {
    const V half(T(0.5));
    const V s3(T(0.866025403784438646763723170752936183L));  // sin(2 pi / 3)
    const V a0r = V::load_unaligned(xr), a0i = V::load_unaligned(xi);
    const V a1r = V::load_unaligned(xr + xs), a1i = V::load_unaligned(xi + xs);
    const V a2r = V::load_unaligned(xr + 2 * xs), a2i = V::load_unaligned(xi + 2 * xs);
    const V tr = a1r + a2r, ti = a1i + a2i, dr = a1r - a2r, di = a1i - a2i;
    const V b0r = a0r + tr, b0i = a0i + ti;
    const V mr = a0r - half * tr, mi = a0i - half * ti;
    // s = -i * sin(2pi/3) * d
    const V sr = s3 * di, si = -(s3 * dr);
    V b1r = mr + sr, b1i = mi + si, b2r = mr - sr, b2i = mi - si;
    if (w) {
      fft_twiddle(b1r, b1i, w[0], w[1]);
      fft_twiddle(b2r, b2i, w[2], w[3]);
    }
    b0r.store_unaligned(yr);
    b0i.store_unaligned(yi);
    b1r.store_unaligned(yr + ys);
    b1i.store_unaligned(yi + ys);
    b2r.store_unaligned(yr + 2 * ys);
    b2i.store_unaligned(yi + 2 * ys);
  }
};

template <>
struct fft_radix<5> {
  template <class V, class T>
  static void butterfly(const T* xr, const T* xi, T* yr, T* yi, std::size_t xs, std::size_t ys, const V* w) noexcept {
    const V c1(T(0.309016994374947424102293417182819059L));   // cos(2 pi / 5)
    const V c2(T(-0.809016994374947424102293417182819059L));  // cos(4 pi / 5)
    const V s1(T(0.951056516295153572116439333379382143L));   // sin(2 pi / 5)
    const V s2(T(0.587785252292473129168705954639072769L));   // sin(4 pi / 5)
    const V a0r = V::load_unaligned(xr), a0i = V::load_unaligned(xi);
    const V a1r = V::load_unaligned(xr + xs), a1i = V::load_unaligned(xi + xs);
    const V a2r = V::load_unaligned(xr + 2 * xs), a2i = V::load_unaligned(xi + 2 * xs);
    const V a3r = V::load_unaligned(xr + 3 * xs), a3i = V::load_unaligned(xi + 3 * xs);
    const V a4r = V::load_unaligned(xr + 4 * xs), a4i = V::load_unaligned(xi + 4 * xs);
    const V t1r = a1r + a4r, t1i = a1i + a4i, t3r = a1r - a4r, t3i = a1i - a4i;
    const V t2r = a2r + a3r, t2i = a2i + a3i, t4r = a2r - a3r, t4i = a2i - a3i;
    const V b0r = a0r + t1r + t2r, b0i = a0i + t1i + t2i;
    const V m1r = a0r + c1 * t1r + c2 * t2r, m1i = a0i + c1 * t1i + c2 * t2i;
    const V m2r = a0r + c2 * t1r + c1 * t2r, m2i = a0i + c2 * t1i + c1 * t2i;
    const V n1r = s1 * t3r + s2 * t4r, n1i = s1 * t3i + s2 * t4i;
    const V n2r = s2 * t3r - s1 * t4r, n2i = s2 * t3i - s1 * t4i;
    // b1 = m1 - i n1, b4 = m1 + i n1, b2 = m2 - i n2, b3 = m2 + i n2.
    V b1r = m1r + n1i, b1i = m1i - n1r, b4r = m1r - n1i, b4i = m1i + n1r;
    V b2r = m2r + n2i, b2i = m2i - n2r, b3r = m2r - n2i, b3i = m2i + n2r;
    if (w) {
      fft_twiddle(b1r, b1i, w[0], w[1]);
      fft_twiddle(b2r, b2i, w[2], w[3]);
      fft_twiddle(b3r, b3i, w[4], w[5]);
      fft_twiddle(b4r, b4i, w[6], w[7]);
    }
    b0r.store_unaligned(yr);
    b0i.store_unaligned(yi);
    b1r.store_unaligned(yr + ys);
    b1i.store_unaligned(yi + ys);
    b2r.store_unaligned(yr + 2 * ys);
    b2i.store_unaligned(yi + 2 * ys);
    b3r.store_unaligned(yr + 3 * ys);
    b3i.store_unaligned(yi + 3 * ys);
    b4r.store_unaligned(yr + 4 * ys);
    b4i.store_unaligned(yi + 4 * ys);
  }
};

/// One Stockham pass of radix P: x (m*P groups of `span` T's) -> y. twr/twi: (P-1) twiddles per j.
/// The contiguous run of `span` T's is done in batches of the backend's width, then one T at a time.
template <std::size_t P, class T, class Arch>
void fft_stockham_pass(std::size_t m, std::size_t span, const T* xr, const T* xi, T* yr, T* yi, const T* twr,
                       const T* twi) noexcept {
  using V = batch_t<T, Arch>;
  using S = scalar_batch<T>;
  constexpr std::size_t width = width_v<T, Arch>;
  const std::size_t xs = m * span;  // distance between the radix digits of one butterfly's input
  for (std::size_t j = 0; j < m; ++j) {
    const T* xjr = xr + j * span;
    const T* xji = xi + j * span;
    T* yjr = yr + P * j * span;
    T* yji = yi + P * j * span;
    V w[2 * (P - 1)];
    S ws[2 * (P - 1)];
    const bool twiddled = j != 0;  // w^0 = 1: the first group needs no multiply
    for (std::size_t k = 0; k + 1 < P; ++k) {
      w[2 * k] = V(twr[j * (P - 1) + k]);
      w[2 * k + 1] = V(twi[j * (P - 1) + k]);
      ws[2 * k] = S(twr[j * (P - 1) + k]);
      ws[2 * k + 1] = S(twi[j * (P - 1) + k]);
    }
    std::size_t t = 0;
    if constexpr (width > 1) {
      for (; t + width <= span; t += width) {
        fft_radix<P>::template butterfly<V>(xjr + t, xji + t, yjr + t, yji + t, xs, span, twiddled ? w : nullptr);
      }
    }
    for (; t < span; ++t) {
      fft_radix<P>::template butterfly<S>(xjr + t, xji + t, yjr + t, yji + t, xs, span, twiddled ? ws : nullptr);
    }
  }
}

/// Forward real-FFT fix-up, in place on the lane arrays of a complex FFT of size M = N/2 of the
/// packed pairs z_j = x_2j + i x_2j+1 (Z = FFT_M(z)):
///   X_k = E_k + w^k O_k,  E_k = (Z_k + conj Z_{M-k})/2,  O_k = (Z_k - conj Z_{M-k})/(2i),
///   X_{M-k} = conj(E_k - w^k O_k),  w = exp(-2 pi i / N).
/// The two real bins are packed into slot 0: re = X_0, im = X_M. wr/wi hold w^k for k <= M/2.
template <class T, class Arch>
void rfft_forward_fixup(std::size_t M, std::size_t lanes, T* re, T* im, const T* wr, const T* wi) noexcept {
  using V = batch_t<T, Arch>;
  using S = scalar_batch<T>;
  constexpr std::size_t width = width_v<T, Arch>;
  auto body = [&](auto tag, std::size_t k, std::size_t l) {
    using B = decltype(tag);
    const B half(T(0.5));
    T* pr = re + k * lanes + l;
    T* pi = im + k * lanes + l;
    if (k == 0) {
      const B a = B::load_unaligned(pr), b = B::load_unaligned(pi);
      (a + b).store_unaligned(pr);
      (a - b).store_unaligned(pi);
      return;
    }
    T* qr = re + (M - k) * lanes + l;
    T* qi = im + (M - k) * lanes + l;
    const B ar = B::load_unaligned(pr), ai = B::load_unaligned(pi);
    const B br = B::load_unaligned(qr), bi = B::load_unaligned(qi);
    const B er = half * (ar + br), ei = half * (ai - bi);
    B or_ = half * (ai + bi), oi = half * (br - ar);
    fft_twiddle(or_, oi, B(wr[k]), B(wi[k]));
    (er - or_).store_unaligned(qr);
    (oi - ei).store_unaligned(qi);
    (er + or_).store_unaligned(pr);
    (ei + oi).store_unaligned(pi);
  };
  for (std::size_t k = 0; k <= M / 2; ++k) {
    std::size_t l = 0;
    if constexpr (width > 1) {
      for (; l + width <= lanes; l += width) body(V{}, k, l);
    }
    for (; l < lanes; ++l) body(S{}, k, l);
  }
}

/// Inverse real-FFT fix-up (the exact inverse of rfft_forward_fixup up to a factor 2), in place:
/// from a packed half spectrum X it forms Z_k = E_k + i D_k with E_k = X_k + conj X_{M-k} and
/// D_k = (X_k - conj X_{M-k}) conj(w^k), so that the unnormalised inverse FFT of size M of Z gives
/// N * (x_2j + i x_2j+1): the unnormalised inverse real DFT.
template <class T, class Arch>
void rfft_inverse_fixup(std::size_t M, std::size_t lanes, T* re, T* im, const T* wr, const T* wi) noexcept {
  using V = batch_t<T, Arch>;
  using S = scalar_batch<T>;
  constexpr std::size_t width = width_v<T, Arch>;
  auto body = [&](auto tag, std::size_t k, std::size_t l) {
    using B = decltype(tag);
    T* pr = re + k * lanes + l;
    T* pi = im + k * lanes + l;
    if (k == 0) {
      const B a = B::load_unaligned(pr), b = B::load_unaligned(pi);
      (a + b).store_unaligned(pr);
      (a - b).store_unaligned(pi);
      return;
    }
    T* qr = re + (M - k) * lanes + l;
    T* qi = im + (M - k) * lanes + l;
    const B ar = B::load_unaligned(pr), ai = B::load_unaligned(pi);
    const B br = B::load_unaligned(qr), bi = B::load_unaligned(qi);
    const B er = ar + br, ei = ai - bi;
    B dr = ar - br, di = ai + bi;
    fft_twiddle(dr, di, B(wr[k]), -B(wi[k]));
    (er - di).store_unaligned(pr);
    (ei + dr).store_unaligned(pi);
    (er + di).store_unaligned(qr);
    (dr - ei).store_unaligned(qi);
  };
  for (std::size_t k = 0; k <= M / 2; ++k) {
    std::size_t l = 0;
    if constexpr (width > 1) {
      for (; l + width <= lanes; l += width) body(V{}, k, l);
    }
    for (; l < lanes; ++l) body(S{}, k, l);
  }
}

}  // namespace ssmkit::detail

namespace ssmkit::detail {

/// The pointwise product of two packed half spectra (see rfft_forward_fixup for the packing)
/// fused with the inverse fix-up: out = inverse_fixup(X * K). One pass over the data instead of
/// two; out may be X exactly. Used by fft_conv with K the cached kernel spectrum.
template <class T, class Arch>
void rfft_multiply_inverse_fixup(std::size_t M, std::size_t lanes, const T* xr, const T* xi, const T* kr,
                                 const T* ki, T* out_r, T* out_i, const T* wr, const T* wi) noexcept {
  using V = batch_t<T, Arch>;
  using S = scalar_batch<T>;
  constexpr std::size_t width = width_v<T, Arch>;
  auto body = [&](auto tag, std::size_t k, std::size_t l) {
    using B = decltype(tag);
    const std::size_t p = k * lanes + l;
    if (k == 0) {
      // Slot 0 holds the real bins (X_0, X_{N/2}): a real product each.
      const B a = B::load_unaligned(xr + p) * B::load_unaligned(kr + p);
      const B b = B::load_unaligned(xi + p) * B::load_unaligned(ki + p);
      (a + b).store_unaligned(out_r + p);
      (a - b).store_unaligned(out_i + p);
      return;
    }
    const std::size_t q = (M - k) * lanes + l;
    B ar = B::load_unaligned(xr + p), ai = B::load_unaligned(xi + p);
    B br = B::load_unaligned(xr + q), bi = B::load_unaligned(xi + q);
    fft_twiddle(ar, ai, B::load_unaligned(kr + p), B::load_unaligned(ki + p));
    fft_twiddle(br, bi, B::load_unaligned(kr + q), B::load_unaligned(ki + q));
    const B er = ar + br, ei = ai - bi;
    B dr = ar - br, di = ai + bi;
    fft_twiddle(dr, di, B(wr[k]), -B(wi[k]));
    (er - di).store_unaligned(out_r + p);
    (ei + dr).store_unaligned(out_i + p);
    (er + di).store_unaligned(out_r + q);
    (dr - ei).store_unaligned(out_i + q);
  };
  for (std::size_t k = 0; k <= M / 2; ++k) {
    std::size_t l = 0;
    if constexpr (width > 1) {
      for (; l + width <= lanes; l += width) body(V{}, k, l);
    }
    for (; l < lanes; ++l) body(S{}, k, l);
  }
}

}  // namespace ssmkit::detail
