#pragma once
/// \file detail/s4_cauchy.hpp
/// Internals of the S4 (DPLR) kernel of s4_dplr.hpp: the bilinear frequency nodes, the Cauchy
/// sums with the Woodbury correction, and an inverse real DFT of any length (ssmkit's own FFT
/// plans; Bluestein's chirp-z for lengths with a prime factor above 5).
///
/// Reference: state-spaces/s4 `SSMKernelDPLR.forward` (src/models/sequence/kernels/ssm.py) and
/// `cauchy_naive` (src/models/functional/cauchy.py); ../shared/docs/reference-semantics.md section 4.
/// Everything here is double precision: the node-dependent factors are ill-conditioned near the
/// Nyquist node (1 + omega ~ 1e-16) and must be formed consistently in one precision.

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <optional>
#include <vector>

#include <ssmkit/fft.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit::detail {

using dplr_complex = std::complex<double>;

/// x / y without the Annex G inf/NaN recovery of std::complex's operator/ (a library call).
inline dplr_complex dplr_divide(dplr_complex x, dplr_complex y) noexcept {
  return x * std::conj(y) / std::norm(y);
}

/// The frequency nodes of the bilinear DPLR kernel of length L, k = 0..floor(L/2):
///   omega_k = exp(-2 pi i k / L),  z_k = 2 (1 - omega_k)/(1 + omega_k),  factor_k = 2/(1 + omega_k).
/// The generating function of the discrete kernel at x = omega is
///   sum_l K_l omega^l = C~^T (I - omega dA)^-1 dB = factor(omega) C~^T (z - dt A)^-1 dt B,
/// because bilinear dA = (I - dt A/2)^-1 (I + dt A/2) gives I - omega dA = (1 + omega)/2 (I - dt A/2)^-1 (z - dt A).
///
/// omega is formed from cos and sin of the double angle and is never rounded to -1: at the Nyquist
/// node (even L) 1 + omega = -i sin(pi_double) ~ -1.2e-16 i, z ~ 3.3e16 i, and z/factor stays exactly
/// 1 - omega to rounding, so factor * r(z) tends to the finite limit sum_l K_l (-1)^l
/// (reference-semantics.md section 4). Special-casing omega = -1 would give 0 * inf = NaN.
struct dplr_nodes {
  std::vector<dplr_complex> z, factor;

  explicit dplr_nodes(std::size_t L) : z(L / 2 + 1), factor(L / 2 + 1) {
    const double two_pi = 6.283185307179586476925286766559;
    for (std::size_t k = 0; k < z.size(); ++k) {
      const double angle = -two_pi * static_cast<double>(k) / static_cast<double>(L);
      const dplr_complex omega(std::cos(angle), std::sin(angle));
      z[k] = 2.0 * dplr_divide(1.0 - omega, 1.0 + omega);
      factor[k] = dplr_divide(2.0, 1.0 + omega);
    }
  }
};

/// A plan for x_j = (1/L) sum_{k<L} X_k exp(+2 pi i jk/L), j < L, for a Hermitian spectrum given by its
/// bins X_0..X_{L/2} (the imaginary parts of X_0 and, for even L, X_{L/2} are ignored, like
/// torch.fft.irfft). A 5-smooth L runs rfft_plan<double>; any other L runs Bluestein's algorithm:
/// with the chirp c_k = exp(i pi k^2 / L) and jk = (j^2 + k^2 - (j - k)^2)/2,
///   x_j = (1/L) c_j sum_k (X_k c_k) conj(c_{j-k}),
/// a linear convolution evaluated as a cyclic one of size M = next_fast_len(2L - 1) >= 2L - 1.
/// Immutable after construction; apply() takes its scratch from the caller's workspace.
class inverse_real_dft {
 public:
  struct workspace {
    std::vector<double> scratch, real_out;
    std::vector<dplr_complex> a;
  };

  explicit inverse_real_dft(std::size_t L) : L_(L) {
    if (is_fast_len(L)) {
      real_.emplace(L);
      return;
    }
    const std::size_t M = next_fast_len(2 * L - 1);
    complex_.emplace(M);
    chirp_.resize(L);
    const double pi = 3.141592653589793238462643383279502884;
    for (std::size_t k = 0; k < L; ++k) {
      // k^2 mod 2L keeps the angle in [0, 2 pi): exp(i pi k^2/L) has period 2L in k^2.
      const std::size_t k2 = static_cast<std::size_t>((static_cast<unsigned long long>(k) * k) % (2 * L));
      const double angle = pi * static_cast<double>(k2) / static_cast<double>(L);
      chirp_[k] = dplr_complex(std::cos(angle), std::sin(angle));
    }
    std::vector<dplr_complex> b(M, dplr_complex(0));
    for (std::size_t m = 0; m < L; ++m) {
      b[m] = std::conj(chirp_[m]);
      if (m > 0) b[M - m] = std::conj(chirp_[m]);
    }
    chirp_spectrum_.resize(M);
    complex_->forward(make_view(static_cast<const dplr_complex*>(b.data()), M), make_view(chirp_spectrum_.data(), M));
  }

  std::size_t size() const noexcept { return L_; }

  /// Sizes the workspace for this plan (allocates; call once per thread).
  void prepare(workspace& w) const {
    if (real_) {
      w.scratch.resize(real_->scratch_size());
      w.real_out.resize(L_);
    } else {
      w.scratch.resize(complex_->scratch_size());
      w.a.resize(complex_->size());
    }
  }

  /// x (L values, stride `x_stride`) from the spectrum X (L/2 + 1 bins). No allocation once prepared.
  template <class T>
  void apply(const dplr_complex* X, T* x, std::ptrdiff_t x_stride, workspace& w) const {
    const std::size_t L = L_;
    const double scale = 1.0 / static_cast<double>(L);
    if (real_) {
      // rfft_plan's backward is unnormalised: it returns L x.
      real_->backward(make_view(X, L / 2 + 1), make_view(w.real_out.data(), L),
                      make_view(w.scratch.data(), w.scratch.size()));
      for (std::size_t j = 0; j < L; ++j)
        x[static_cast<std::ptrdiff_t>(j) * x_stride] = static_cast<T>(w.real_out[j] * scale);
      return;
    }
    const std::size_t M = complex_->size();
    for (std::size_t k = 0; k < M; ++k) w.a[k] = 0;
    for (std::size_t k = 0; k < L; ++k) {
      // The Hermitian extension X_k = conj(X_{L-k}) for k > L/2; imaginary parts dropped where irfft drops them.
      dplr_complex Xk = k <= L / 2 ? X[k] : std::conj(X[L - k]);
      if (k == 0 || 2 * k == L) Xk = dplr_complex(Xk.real(), 0.0);
      w.a[k] = Xk * chirp_[k];
    }
    const auto av = make_view(w.a.data(), M);
    complex_->forward(av, av, make_view(w.scratch.data(), w.scratch.size()));
    for (std::size_t k = 0; k < M; ++k) w.a[k] *= chirp_spectrum_[k];
    complex_->backward(av, av, make_view(w.scratch.data(), w.scratch.size()));
    const double conv_scale = scale / static_cast<double>(M);  // the unnormalised backward FFT gives M y
    for (std::size_t j = 0; j < L; ++j) {
      x[static_cast<std::ptrdiff_t>(j) * x_stride] = static_cast<T>((chirp_[j] * w.a[j]).real() * conv_scale);
    }
  }

 private:
  std::size_t L_;
  std::optional<rfft_plan<double>> real_;
  std::optional<fft_plan<double>> complex_;
  std::vector<dplr_complex> chirp_, chirp_spectrum_;
};

/// Solves the small complex system M y = b in place (M is n x n row-major, overwritten by its LU
/// factors; b by y) by Gaussian elimination with partial pivoting: the general-rank Woodbury core.
inline void small_complex_solve(dplr_complex* M, dplr_complex* b, std::size_t n) noexcept {
  for (std::size_t col = 0; col < n; ++col) {
    std::size_t pivot = col;
    for (std::size_t row = col + 1; row < n; ++row) {
      if (std::norm(M[row * n + col]) > std::norm(M[pivot * n + col])) pivot = row;
    }
    if (pivot != col) {
      for (std::size_t j = 0; j < n; ++j) std::swap(M[col * n + j], M[pivot * n + j]);
      std::swap(b[col], b[pivot]);
    }
    const dplr_complex inv = dplr_divide(1.0, M[col * n + col]);
    for (std::size_t row = col + 1; row < n; ++row) {
      const dplr_complex f = M[row * n + col] * inv;
      for (std::size_t j = col; j < n; ++j) M[row * n + j] -= f * M[col * n + j];
      b[row] -= f * b[col];
    }
  }
  for (std::size_t row = n; row-- > 0;) {
    dplr_complex s = b[row];
    for (std::size_t j = row + 1; j < n; ++j) s -= M[row * n + j] * b[j];
    b[row] = dplr_divide(s, M[row * n + row]);
  }
}

/// The Cauchy + Woodbury evaluation of one SSM (one h) at all nodes.
///
/// Inputs (half representation, N2 modes): w = dt Lambda; the "left" rows a_i = (C~_0 .. C~_{ch-1},
/// Q_0 .. Q_{r-1}) with Q = conj P, and the "right" rows b_j = (B, P_0 .. P_{r-1}), all multiplied into
/// v_ij = dt a_i b_j (the reference's `v = B * C * dt`). The Cauchy sums over the conjugate-expanded
/// modes are (reference `cauchy_naive` with conjugate symmetry)
///   r_ij(z) = sum_n v_ij,n / (z - w_n) + conj(v_ij,n) / (z - conj w_n),
/// and the Woodbury identity for (z - dt A)^-1 with dt A = diag(w, conj w) - dt p^ p^*, p^ = (P, conj P):
///   k^_c(z) = r_CcB - r_CcP (I + r_QP)^-1 r_QB
/// (rank 1: r_CB - r_CP r_QB / (1 + r_QP); rank 2: Cramer's rule; rank r: LU with partial pivoting,
/// solved once per node and shared by the channels). Then k^ <- factor(z) k^ (the 2/(1 + omega) of
/// the bilinear transform).
///
/// spectrum: (channels, nodes) row-major output. Workspace vectors are resized (allocation happens
/// on the first call per thread only).
struct dplr_cauchy_workspace {
  std::vector<dplr_complex> v, r, woodbury_matrix, woodbury_rhs;
  // Split (re, im) arrays of one node block, each a single allocation with fixed offsets (so that the
  // vectoriser sees few base pointers): z = (re, im), reciprocals = (g re, g im, h re, h im),
  // sums = per pair (re, im).
  std::vector<double> z, reciprocals, sums;
};

/// Nodes per block of the Cauchy loop: the accumulators, (channels + r)(1 + r) pairs x 2 x 256
/// doubles, stay in L1 for small ranks.
inline constexpr std::size_t dplr_node_block = 256;

inline void dplr_cauchy_woodbury(const dplr_nodes& nodes, const std::vector<dplr_complex>& w,
                                 const std::vector<dplr_complex>& left, const std::vector<dplr_complex>& right,
                                 std::size_t channels, std::size_t rank, double dt, dplr_complex* spectrum,
                                 dplr_cauchy_workspace& ws) {
  const std::size_t N2 = w.size();
  const std::size_t rows_a = channels + rank, rows_b = 1 + rank, pairs = rows_a * rows_b;
  ws.v.resize(pairs * N2);
  for (std::size_t i = 0; i < rows_a; ++i) {
    for (std::size_t j = 0; j < rows_b; ++j) {
      for (std::size_t n = 0; n < N2; ++n) ws.v[(i * rows_b + j) * N2 + n] = dt * left[i * N2 + n] * right[j * N2 + n];
    }
  }
  constexpr std::size_t block = dplr_node_block;
  ws.r.resize(pairs);
  ws.woodbury_matrix.resize(rank * rank);
  ws.woodbury_rhs.resize(rank);
  ws.z.resize(2 * block);
  ws.reciprocals.resize(4 * block);
  ws.sums.resize(2 * pairs * block);
  const std::size_t K = nodes.z.size();
  for (std::size_t k0 = 0; k0 < K; k0 += block) {
    const std::size_t nk = std::min(block, K - k0);
    double* z = ws.z.data();
    for (std::size_t k = 0; k < nk; ++k) z[k] = nodes.z[k0 + k].real(), z[block + k] = nodes.z[k0 + k].imag();
    std::fill(ws.sums.begin(), ws.sums.end(), 0.0);
    // Split real arithmetic with the nodes innermost, so that the compiler vectorises over nodes:
    // g = 1/(z - w), h = 1/(z - conj w), and r += v g + conj(v) h for every pair.
    double* gh = ws.reciprocals.data();
    for (std::size_t n = 0; n < N2; ++n) {
      const double wr = w[n].real(), wi = w[n].imag();
      for (std::size_t k = 0; k < nk; ++k) {
        const double dr = z[k] - wr, dg = z[block + k] - wi, dh = z[block + k] + wi;
        const double inv_g = 1.0 / (dr * dr + dg * dg), inv_h = 1.0 / (dr * dr + dh * dh);
        gh[k] = dr * inv_g;
        gh[block + k] = -dg * inv_g;
        gh[2 * block + k] = dr * inv_h;
        gh[3 * block + k] = -dh * inv_h;
      }
      for (std::size_t ij = 0; ij < pairs; ++ij) {
        const double vr = ws.v[ij * N2 + n].real(), vi = ws.v[ij * N2 + n].imag();
        double* acc = ws.sums.data() + 2 * ij * block;
        for (std::size_t k = 0; k < nk; ++k) {
          const double g_re = gh[k], g_im = gh[block + k], h_re = gh[2 * block + k], h_im = gh[3 * block + k];
          acc[k] += vr * (g_re + h_re) + vi * (h_im - g_im);
          acc[block + k] += vr * (g_im + h_im) + vi * (g_re - h_re);
        }
      }
    }
    for (std::size_t k = 0; k < nk; ++k) {
      for (std::size_t ij = 0; ij < pairs; ++ij)
        ws.r[ij] = dplr_complex(ws.sums[2 * ij * block + k], ws.sums[(2 * ij + 1) * block + k]);
      // r(i, j): i < channels are C~ rows, i >= channels Q rows; j = 0 is B, j >= 1 are P rows.
      const auto r = [&](std::size_t i, std::size_t j) { return ws.r[i * rows_b + j]; };
      dplr_complex* y = ws.woodbury_rhs.data();  // y = (I + r_QP)^-1 r_QB
      if (rank == 1) {
        y[0] = dplr_divide(r(channels, 0), 1.0 + r(channels, 1));
      } else if (rank == 2) {
        const dplr_complex m00 = 1.0 + r(channels, 1), m01 = r(channels, 2);
        const dplr_complex m10 = r(channels + 1, 1), m11 = 1.0 + r(channels + 1, 2);
        const dplr_complex b0 = r(channels, 0), b1 = r(channels + 1, 0);
        const dplr_complex det = m00 * m11 - m01 * m10;
        y[0] = dplr_divide(m11 * b0 - m01 * b1, det);
        y[1] = dplr_divide(m00 * b1 - m10 * b0, det);
      } else if (rank > 2) {
        for (std::size_t q = 0; q < rank; ++q) {
          for (std::size_t t = 0; t < rank; ++t) {
            ws.woodbury_matrix[q * rank + t] = (q == t ? 1.0 : 0.0) + r(channels + q, 1 + t);
          }
          y[q] = r(channels + q, 0);
        }
        small_complex_solve(ws.woodbury_matrix.data(), y, rank);
      }
      for (std::size_t c = 0; c < channels; ++c) {
        dplr_complex kf = r(c, 0);
        for (std::size_t t = 0; t < rank; ++t) kf -= r(c, 1 + t) * y[t];
        spectrum[c * K + k0 + k] = nodes.factor[k0 + k] * kf;
      }
    }
  }
}

}  // namespace ssmkit::detail
