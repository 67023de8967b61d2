// libFuzzer target: the S4 DPLR kernel and its recurrence (s4_dplr.hpp), and S4-PTD (s4_ptd.hpp).
// The bytes choose one of
//   - a DPLR system (H, N2, rank 0-3, channels 0-2, L 0-128, sometimes one wrong shape) in float or
//     double: s4_dplr_kernel with C or C~ (from s4_dplr_c_tilde), by squaring or iteration, and
//     s4_dplr_recurrence in its dense and linear forms stepping over a short input;
//   - perturb_then_diagonalize of a fuzzed N x N matrix (N 0-10) with a fuzzed relative_norm,
//     and ptd::diag_init for any measure and N.
// Properties: a wrong shape, L = 0, no channel, or dt <= 0, NaN or inf throws ssmkit::error and
// leaves the outputs untouched. With tame values the system is stable (Re Lambda < 0 and -P P^*
// negative semidefinite, so the Hermitian part of A is negative definite and the bilinear dA is a
// contraction), and then:
//   - the kernel agrees with a plain double Krylov reference K[c,h,l] = C^^T dA^l dB, built here
//     from the conjugate-expanded dense A (independently of discretize.hpp), to 2e-5 of max|K| in
//     float (the result is the double result rounded once, plus the Krylov reference's own
//     O(L N eps_double)) and 1e-9 in double;
//   - iteration and squaring, and C with C~ = s4_dplr_c_tilde(C) (double), give the same kernel;
//   - forward from a zero state is the causal convolution of u with the reference kernel (to
//     1e-4 of the output scale in float, 1e-9 in double: the state error grows like t eps_T), and
//     step token by token reproduces forward bit for bit, in both forms;
//   - PTD: total_backward_error <= perturbation + backward_error (the triangle inequality) and
//     perturbation = relative_norm.
// With wild values every call returns or throws (ASan, UBSan).
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <Eigen/Core>
#include <Eigen/LU>

#include <ssmkit/s4_dplr.hpp>
#include <ssmkit/s4_ptd.hpp>

#include "fuzz_input.hpp"

namespace {

template <class T>
struct dplr_system {
  std::size_t H = 0, N2 = 0, rank = 0, channels = 0;
  std::vector<T> dt;                                  // (H, 1)
  std::vector<std::complex<T>> Lambda, P, B, C;       // (H, N2), (rank, H, N2), (H, N2), (channels, H, N2)
  ssmkit::const_view<T, 2> dt_view() const { return ssmkit::make_view(dt.data(), H, 1); }
  ssmkit::const_view<std::complex<T>, 2> Lambda_view() const { return ssmkit::make_view(Lambda.data(), H, N2); }
  ssmkit::const_view<std::complex<T>, 3> P_view() const { return ssmkit::make_view(P.data(), rank, H, N2); }
  ssmkit::const_view<std::complex<T>, 2> B_view() const { return ssmkit::make_view(B.data(), H, N2); }
  ssmkit::const_view<std::complex<T>, 3> C_view() const { return ssmkit::make_view(C.data(), channels, H, N2); }
};

/// K[c, h, l] = C^^T dA^l dB for l < L, in double: A = diag(Lambda, conj Lambda) - sum_r p^_r p^_r^*,
/// p^_r = (P_r, conj P_r), dA = (I - dt/2 A)^-1 (I + dt/2 A), dB = dt (I - dt/2 A)^-1 (B, conj B).
template <class T>
std::vector<double> krylov_kernel(const dplr_system<T>& s, std::size_t L) {
  using cd = std::complex<double>;
  const auto N2 = static_cast<Eigen::Index>(s.N2), N = 2 * N2;
  std::vector<double> K(s.channels * s.H * L);
  for (std::size_t h = 0; h < s.H; ++h) {
    Eigen::MatrixXcd A = Eigen::MatrixXcd::Zero(N, N);
    Eigen::VectorXcd b(N);
    for (Eigen::Index n = 0; n < N2; ++n) {
      const cd lambda(s.Lambda[h * s.N2 + std::size_t(n)]);
      A(n, n) = lambda;
      A(N2 + n, N2 + n) = std::conj(lambda);
      b(n) = cd(s.B[h * s.N2 + std::size_t(n)]);
      b(N2 + n) = std::conj(b(n));
    }
    for (std::size_t r = 0; r < s.rank; ++r) {
      Eigen::VectorXcd p(N);
      for (Eigen::Index n = 0; n < N2; ++n) {
        p(n) = cd(s.P[(r * s.H + h) * s.N2 + std::size_t(n)]);
        p(N2 + n) = std::conj(p(n));
      }
      A -= p * p.adjoint();
    }
    const double dt = double(s.dt[h]);
    const Eigen::MatrixXcd I = Eigen::MatrixXcd::Identity(N, N);
    const Eigen::PartialPivLU<Eigen::MatrixXcd> lu(I - dt / 2 * A);
    const Eigen::MatrixXcd dA = lu.solve(I + dt / 2 * A);
    Eigen::VectorXcd x = lu.solve(dt * b);
    for (std::size_t l = 0; l < L; ++l) {
      for (std::size_t c = 0; c < s.channels; ++c) {
        cd sum = 0;
        for (Eigen::Index n = 0; n < N2; ++n) {
          const cd cn(s.C[(c * s.H + h) * s.N2 + std::size_t(n)]);
          sum += cn * x(n) + std::conj(cn) * x(N2 + n);
        }
        K[(c * s.H + h) * L + l] = sum.real();
      }
      x = dA * x;
    }
  }
  return K;
}

template <class T>
std::vector<T> rounded(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <class T>
void fuzz_dplr(ssm_fuzz::fuzz_input& in) {
  using ct = std::complex<T>;
  const T sentinel = T(-12345.5);
  const bool is_float = std::is_same_v<T, float>;
  dplr_system<T> s;
  s.H = in.size_in(1, 3), s.N2 = in.size_in(1, 6), s.rank = in.size_in(0, 3), s.channels = in.size_in(0, 2);
  const std::size_t L = in.size_in(0, 128);
  const std::size_t wrong = in.byte() % 10;  // 1: P's H one too many, 2: B one mode short, 3: K one channel too many
  ssmkit::s4_dplr_kernel_options o;
  o.power = in.flag() ? ssmkit::dplr_power_method::iteration : ssmkit::dplr_power_method::squaring;
  s.dt = in.values<T>(s.H, 1e-3, 0.1);
  s.Lambda.resize(s.H * s.N2);
  for (auto& v : s.Lambda) v = ct(in.value<T>(-1, -0.01), in.value<T>(-20, 20));
  s.P.resize(s.rank * s.H * s.N2);
  for (auto& v : s.P) v = ct(in.value<T>(-0.5, 0.5), in.value<T>(-0.5, 0.5));
  s.B.resize(s.H * s.N2 + 1);
  for (auto& v : s.B) v = ct(in.value<T>(-1, 1), in.value<T>(-1, 1));
  s.C.resize(s.channels * s.H * s.N2);
  for (auto& v : s.C) v = ct(in.value<T>(-1, 1), in.value<T>(-1, 1));
  bool bad_dt = false;
  for (const T v : s.dt) bad_dt = bad_dt || !(v > 0 && std::isfinite(v));
  const bool must_throw = wrong == 1 || wrong == 2 || wrong == 3 || bad_dt || s.channels == 0 || L == 0;
  std::vector<ct> P_wrong(s.rank * (s.H + 1) * s.N2);
  const auto P_arg = wrong == 1 ? ssmkit::const_view<ct, 3>(ssmkit::make_view(P_wrong.data(), s.rank, s.H + 1, s.N2))
                                : s.P_view();
  const auto B_arg = wrong == 2 ? ssmkit::const_view<ct, 2>(ssmkit::make_view(s.B.data(), s.H, s.N2 - 1)) : s.B_view();
  const std::size_t K_channels = wrong == 3 ? s.channels + 1 : s.channels;
  std::vector<T> K(K_channels * s.H * L, sentinel);
  const auto kernel_with = [&](const std::vector<ct>& C, const ssmkit::s4_dplr_kernel_options& options,
                               std::vector<T>& out) {
    ssmkit::s4_dplr_kernel<T>(s.dt_view(), s.Lambda_view(), P_arg, B_arg, ssmkit::make_view(C.data(), s.channels, s.H, s.N2),
                              ssmkit::make_view(out.data(), K_channels, s.H, L), options);
  };
  const bool ok = ssm_fuzz::run_checked<T>([&] { kernel_with(s.C, o, K); }, {&K}, sentinel);
  if (must_throw == ok) std::abort();  // an invalid input accepted, or a valid one rejected
  // The recurrence validates the same parameters (L and K aside).
  const bool recurrence_must_throw = wrong == 1 || wrong == 2 || bad_dt || s.channels == 0;
  try {
    const ssmkit::s4_dplr_recurrence<T> check(s.dt_view(), s.Lambda_view(), P_arg, B_arg, s.C_view());
    if (recurrence_must_throw) std::abort();
  } catch (const ssmkit::error&) {
    if (!recurrence_must_throw) std::abort();
  }
  if (!ok) return;
  if (!in.tame()) {
    // Wild but accepted (huge finite dt or values): C~, the other power method and both
    // recurrence forms must still run.
    std::vector<ct> C_tilde(s.C.size());
    ssmkit::s4_dplr_c_tilde<T>(s.dt_view(), s.Lambda_view(), s.P_view(), s.B_view(), s.C_view(), L,
                               ssmkit::make_view(C_tilde.data(), s.channels, s.H, s.N2), o.power);
    for (const auto form : {ssmkit::dplr_step_form::dense, ssmkit::dplr_step_form::linear}) {
      ssmkit::s4_dplr_step_options so;
      so.form = form;
      const ssmkit::s4_dplr_recurrence<T> rec(s.dt_view(), s.Lambda_view(), s.P_view(), s.B_view(), s.C_view(), so);
      auto state = rec.make_state(1);
      const auto u = in.values<T>(s.H * 4, -1, 1);
      std::vector<T> y(s.channels * s.H * 4);
      rec.forward(ssmkit::make_view(u.data(), 1, s.H, 4), state, ssmkit::make_view(y.data(), 1, s.channels, s.H, 4));
    }
    return;
  }
  const auto want = krylov_kernel(s, L);
  const double kernel_tolerance = is_float ? 2e-5 : 1e-9;
  ssm_fuzz::require_agreement(K, rounded<T>(want), kernel_tolerance);
  // The other power method.
  auto other = o;
  other.power = o.power == ssmkit::dplr_power_method::squaring ? ssmkit::dplr_power_method::iteration
                                                               : ssmkit::dplr_power_method::squaring;
  std::vector<T> K_other(K.size(), sentinel);
  kernel_with(s.C, other, K_other);
  ssm_fuzz::require_agreement(K_other, K, kernel_tolerance);
  // C~ then the kernel with c_input tilde: in double the same kernel (in float the rounding of C~
  // is amplified by ||(I - dA^L)^-1||, which is large for slow modes: no bound to check).
  std::vector<ct> C_tilde(s.C.size(), ct(sentinel));
  ssmkit::s4_dplr_c_tilde<T>(s.dt_view(), s.Lambda_view(), s.P_view(), s.B_view(), s.C_view(), L,
                             ssmkit::make_view(C_tilde.data(), s.channels, s.H, s.N2), o.power);
  auto tilde = o;
  tilde.c_input = ssmkit::dplr_c_input::tilde;
  std::vector<T> K_tilde(K.size(), sentinel);
  kernel_with(C_tilde, tilde, K_tilde);
  if (!is_float) ssm_fuzz::require_agreement(K_tilde, K, 1e-8);
  // The recurrence: forward over u from a zero state is u * K; step reproduces forward exactly.
  const std::size_t batch = in.size_in(1, 2), steps = std::min<std::size_t>(L, 24);
  const auto u = in.values<T>(batch * s.H * steps, -1, 1);
  std::vector<double> conv(batch * s.channels * s.H * steps, 0.0);
  double scale = 0;
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t c = 0; c < s.channels; ++c)
      for (std::size_t h = 0; h < s.H; ++h)
        for (std::size_t t = 0; t < steps; ++t) {
          double sum = 0, abs = 0;
          for (std::size_t j = 0; j <= t; ++j) {
            const double term = want[(c * s.H + h) * L + j] * double(u[(b * s.H + h) * steps + t - j]);
            sum += term, abs += std::abs(term);
          }
          conv[((b * s.channels + c) * s.H + h) * steps + t] = sum;
          scale = std::max(scale, abs);
        }
  for (const auto form : {ssmkit::dplr_step_form::dense, ssmkit::dplr_step_form::linear}) {
    ssmkit::s4_dplr_step_options so;
    so.form = form;
    const ssmkit::s4_dplr_recurrence<T> rec(s.dt_view(), s.Lambda_view(), s.P_view(), s.B_view(), s.C_view(), so);
    auto state = rec.make_state(batch);
    std::vector<T> y(conv.size(), sentinel);
    rec.forward(ssmkit::make_view(u.data(), batch, s.H, steps), state,
                ssmkit::make_view(y.data(), batch, s.channels, s.H, steps));
    double worst = 0;
    for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(double(y[i]) - conv[i]));
    if (worst > (is_float ? 1e-4 : 1e-9) * std::max(scale, 1e-30)) {
      std::fprintf(stderr, "recurrence vs convolution: %g > tolerance of scale %g\n", worst, scale);
      std::abort();
    }
    auto stepped_state = rec.make_state(batch);
    std::vector<T> ut(batch * s.H), yt(batch * s.channels * s.H), y_steps(y.size(), sentinel);
    for (std::size_t t = 0; t < steps; ++t) {
      for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t h = 0; h < s.H; ++h) ut[b * s.H + h] = u[(b * s.H + h) * steps + t];
      rec.step(ssmkit::make_view(ut.data(), batch, s.H), stepped_state, ssmkit::make_view(yt.data(), batch, s.channels, s.H));
      for (std::size_t i = 0; i < yt.size(); ++i) y_steps[i * steps + t] = yt[i];
    }
    ssm_fuzz::require_agreement(y_steps, y, 0);
    // A state made for another batch is rejected.
    auto wrong_state = rec.make_state(batch + 1);
    std::vector<T> y_wrong(yt.size(), sentinel);
    if (ssm_fuzz::run_checked<T>(
            [&] {
              rec.step(ssmkit::make_view(ut.data(), batch, s.H), wrong_state,
                       ssmkit::make_view(y_wrong.data(), batch, s.channels, s.H));
            },
            {&y_wrong}, sentinel)) {
      std::abort();
    }
  }
}

void fuzz_ptd(ssm_fuzz::fuzz_input& in) {
  const auto N = static_cast<Eigen::Index>(in.size_in(0, 10));
  const auto cols = in.byte() % 8 == 1 ? N + 1 : N;  // not square: an error
  ssmkit::ptd::perturb_options o;
  o.relative_norm = in.value<double>(0, 0.1);
  o.seed = in.byte();
  Eigen::MatrixXd A(N, cols);
  for (Eigen::Index i = 0; i < A.size(); ++i) A.data()[i] = in.value<double>(-3, 3);
  try {
    const auto d = ssmkit::ptd::perturb_then_diagonalize(A, o);
    if (cols != N || N == 0 || !(o.relative_norm >= 0) || !std::isfinite(o.relative_norm)) std::abort();
    if (d.Lambda.size() != N || d.V.rows() != N || d.V.cols() != N) std::abort();
    if (in.tame() && A.norm() > 0) {
      if (std::abs(d.perturbation - o.relative_norm) > 1e-10 * std::max(o.relative_norm, 1e-300) + 1e-15) std::abort();
      if (d.total_backward_error > (d.perturbation + d.backward_error) * (1 + 1e-9) + 1e-14) std::abort();
    }
  } catch (const ssmkit::error&) {
  }
  const auto m = static_cast<ssmkit::hippo::measure>(in.byte() % 11);
  const auto M = static_cast<Eigen::Index>(in.size_in(0, 16));
  ssmkit::ptd::diag_init_options di;
  di.perturb.relative_norm = in.value<double>(0, 0.01);
  di.positive_imaginary = in.flag();
  try {
    const auto p = ssmkit::ptd::diag_init(m, M, di);
    if (M < 2 || M % 2 != 0) std::abort();  // odd or too small N accepted
    if (p.A.size() != M / 2 || p.B.size() != M / 2) std::abort();
  } catch (const ssmkit::error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ssm_fuzz::fuzz_input in(data, size);
  const std::uint8_t head = in.byte();
  in.set_tame((head & 4) == 0);
  switch (head % 3) {
    case 0: fuzz_dplr<float>(in); break;
    case 1: fuzz_dplr<double>(in); break;
    default: fuzz_ptd(in); break;
  }
  return 0;
}
