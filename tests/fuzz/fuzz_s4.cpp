// libFuzzer target: the S4 family's setup and kernels. The bytes choose one of
//   - HiPPO: transition, rank_correction and nplr for any measure, N and rank (and glagt's alpha,
//     beta), with the measures' own restrictions (N < 4, odd N, legt with rank < 2) as errors;
//   - the S4D initialisations (every init and B_init, the scaling options) and init_log_dt;
//   - the S4D kernel: s4d_kernel on both backends and its exact path, with zoh, bilinear or dss,
//     tied or untied dt, a bandlimit, and sometimes one wrong shape.
// Properties: either a clean ssmkit::error (then the kernel's output is untouched) or a result; for
// tame inputs the results are finite and the kernel's backends agree with the exact path.
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <ssmkit/hippo.hpp>
#include <ssmkit/s4d.hpp>
#include <ssmkit/s4d_init.hpp>

#include "fuzz_input.hpp"

namespace {

using T = float;
using ct = std::complex<T>;
constexpr T sentinel = T(-12345.5);

bool finite(const Eigen::MatrixXcd& m) { return m.allFinite(); }

void fuzz_hippo(ssm_fuzz::fuzz_input& in) {
  const auto m = static_cast<ssmkit::hippo::measure>(in.byte() % 11);
  const auto N = static_cast<Eigen::Index>(in.size_in(0, 40));
  ssmkit::hippo::measure_args args;
  if (in.flag()) args.alpha = in.value<double>(0, 2);
  if (in.flag()) args.beta = in.value<double>(0.1, 2);
  const auto rank = static_cast<Eigen::Index>(in.size_in(0, 3));
  try {
    const auto t = ssmkit::hippo::transition(m, N, args);
    if (in.tame() && (!t.A.allFinite() || !t.B.allFinite())) std::abort();
    const auto P = ssmkit::hippo::rank_correction(m, N, rank);
    if (!P.allFinite()) std::abort();
    if (N <= 24) {
      ssmkit::hippo::nplr_options o;
      o.rank = rank;
      if (in.flag()) o.B_clip.reset();
      const auto r = ssmkit::hippo::nplr(m, N, o);
      if (!finite(r.W.eval()) || !finite(r.B.eval())) std::abort();
    }
  } catch (const ssmkit::error&) {
  }
}

void fuzz_init(ssm_fuzz::fuzz_input& in) {
  const auto init = static_cast<ssmkit::s4d::diag_init>(in.byte() % 7);
  const auto N = static_cast<Eigen::Index>(in.size_in(0, 40));
  const auto H = static_cast<Eigen::Index>(in.size_in(0, 4));
  ssmkit::s4d::diag_init_options o;
  o.real_random = in.flag();
  o.imag_random = in.flag();
  o.real_scale = in.value<double>(0, 2);
  o.imag_scale = in.value<double>(0, 2);
  o.B = static_cast<ssmkit::s4d::b_init>(in.byte() % 6);
  o.B_scale = in.value<double>(-2, 2);
  o.normalize = in.flag();
  o.seed = in.byte();
  try {
    const auto p = ssmkit::s4d::diag(init, N, H, o);
    // normalize divides B by |A|, and A = 0 is allowed (real_scale 0, or real with real_random),
    // as in the reference: B may then be inf.
    if (in.tame() && (!finite(p.A) || (!o.normalize && !finite(p.B)))) std::abort();
  } catch (const ssmkit::error&) {
  }
  ssmkit::s4d::dt_init_options d;
  d.dt_min = in.value<double>(1e-4, 0.1);
  d.dt_max = in.value<double>(1e-3, 1);
  d.tied = in.flag();
  try {
    const auto log_dt = ssmkit::s4d::init_log_dt(H, N / 2, d);
    for (Eigen::Index i = 0; i < log_dt.size(); ++i) {
      const double dt = std::exp(log_dt.data()[i]);
      if (!(dt >= d.dt_min * (1 - 1e-12) && dt <= d.dt_max * (1 + 1e-12))) std::abort();
    }
  } catch (const ssmkit::error&) {
  }
}

template <class Arch>
void kernel(const std::vector<T>& dt, std::size_t dt_cols, const std::vector<ct>& A, const std::vector<ct>& B,
            const std::vector<ct>& C, std::size_t H, std::size_t N2, std::size_t channels, std::vector<T>& K,
            std::size_t L, const ssmkit::s4d_kernel_options& o) {
  ssmkit::s4d_kernel<T, Arch>(ssmkit::make_view(dt.data(), H, dt_cols), ssmkit::make_view(A.data(), H, N2),
                              ssmkit::make_view(B.data(), H, N2), ssmkit::make_view(C.data(), channels, H, N2),
                              ssmkit::make_view(K.data(), channels, H, L), o);
}

void fuzz_kernel(ssm_fuzz::fuzz_input& in) {
  const std::size_t H = in.size_in(1, 5), N2 = in.size_in(1, 20), channels = in.size_in(1, 2), L = in.size_in(0, 300);
  ssmkit::s4d_kernel_options o;
  o.method = static_cast<ssmkit::discretization>(in.byte() % 3);
  if (in.byte() % 4 == 0) o.bandlimit = in.value<double>(0, 1);
  const bool tied = in.flag();
  const std::size_t wrong = in.byte() % 8;  // 1: B with one mode too many
  const std::size_t dt_cols = tied ? 1 : N2;
  const auto dt = in.values<T>(H * dt_cols, 1e-3, 0.1);
  std::vector<ct> A(H * N2), B(H * N2 + 1), C(channels * H * N2);
  for (auto& a : A) a = ct(in.value<T>(-2, -0.01), in.value<T>(-50, 50));
  for (auto& b : B) b = ct(in.value<T>(-1, 1), in.value<T>(-1, 1));
  for (auto& c : C) c = ct(in.value<T>(-1, 1), in.value<T>(-1, 1));
  std::vector<T> K(channels * H * L, sentinel);
  const bool ok = ssm_fuzz::run_checked<T>(
      [&] {
        ssmkit::s4d_kernel<T>(ssmkit::make_view(dt.data(), H, dt_cols), ssmkit::make_view(A.data(), H, N2),
                              ssmkit::make_view(B.data(), H, wrong == 1 ? N2 + 1 : N2),
                              ssmkit::make_view(C.data(), channels, H, N2), ssmkit::make_view(K.data(), channels, H, L), o);
      },
      {&K}, sentinel);
  if (wrong == 1 && ok) std::abort();  // a wrong shape was accepted
  if (!ok || !in.tame()) return;
  std::vector<T> K_scalar(K.size(), sentinel), K_exact(K.size(), sentinel);
  kernel<ssmkit::scalar>(dt, dt_cols, A, B, C, H, N2, channels, K_scalar, L, o);
  ssmkit::s4d_kernel_options exact = o;
  exact.exact = true;
  kernel<ssmkit::default_arch>(dt, dt_cols, A, B, C, H, N2, channels, K_exact, L, exact);
  // Tolerance: (5 + N2) eps of the sum of |terms| (s4d.hpp); |C B dB| <= 4 dt-ish per mode here,
  // so 1e-4 of max |K| is generous for float and still catches a wrong lag, mode or channel.
  ssm_fuzz::require_agreement(K, K_exact, 1e-4);
  ssm_fuzz::require_agreement(K_scalar, K_exact, 1e-4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ssm_fuzz::fuzz_input in(data, size);
  const std::uint8_t head = in.byte();
  in.set_tame((head & 4) == 0);
  switch (head % 4) {
    case 0: fuzz_hippo(in); break;
    case 1: fuzz_init(in); break;
    default: fuzz_kernel(in); break;
  }
  return 0;
}
