// Golden handlers for the S4 kernels: s4d_kernel, s4d_minimal_kernel, s4_dplr_kernel.
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/discretize.hpp>
#include <ssmkit/s4_dplr.hpp>
#include <ssmkit/s4d.hpp>

#include "golden_runner.hpp"

namespace ssmkit_golden {
namespace {

// A complex golden array (interleaved doubles) as std::complex<T>.
template <class T>
std::vector<std::complex<T>> complex_values(const ssmkit::golden::array& a) {
  std::vector<std::complex<T>> v(a.values.size() / 2);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = {static_cast<T>(a.values[2 * i]), static_cast<T>(a.values[2 * i + 1])};
  return v;
}

template <class T>
std::vector<double> widened(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

template <class T>
std::vector<double> widened(const std::vector<std::complex<T>>& v) {
  std::vector<double> out;
  out.reserve(2 * v.size());
  for (const auto& z : v) {
    out.push_back(static_cast<double>(z.real()));
    out.push_back(static_cast<double>(z.imag()));
  }
  return out;
}

template <class T>
result s4d_kernel_in(const ssmkit::golden::golden_case& c) {
  const auto& a_dt = c.input("dt");
  const auto& a_C = c.input("C");
  const std::size_t H = a_dt.shape.at(0), dt_cols = a_dt.shape.at(1);
  const std::size_t channels = a_C.shape.at(0), N2 = a_C.shape.at(2);
  const auto L = static_cast<std::size_t>(c.param_number("L", 0));
  const auto dt = values_as<T>(a_dt);
  const auto A = complex_values<T>(c.input("A"));
  const auto B = complex_values<T>(c.input("B"));
  const auto C = complex_values<T>(a_C);
  ssmkit::s4d_kernel_options options;
  options.method = ssmkit::parse_discretization(c.param_string("disc", "zoh"));

  std::vector<T> K(channels * H * L);
  ssmkit::s4d_kernel<T>(ssmkit::make_view(dt, H, dt_cols), ssmkit::make_view(A, H, N2), ssmkit::make_view(B, H, N2),
                        ssmkit::make_view(C, channels, H, N2), ssmkit::make_view(K, channels, H, L), options);
  result r;
  r.outputs.push_back({"K", widened(K)});
  // The Vandermonde product rounds each term about 5 times and sums N2 of them, independent of L.
  r.f32_growth = static_cast<double>(N2);
  if (c.has_input("u")) {
    const auto& a_u = c.input("u");
    const std::size_t batch = a_u.shape.at(0);
    const auto u = values_as<T>(a_u);
    std::vector<std::complex<T>> dA(H * N2), dB(H * N2), state(batch * H * N2);
    std::vector<T> y(batch * channels * H * L);
    ssmkit::s4d_step_setup<T>(ssmkit::make_view(dt, H, dt_cols), ssmkit::make_view(A, H, N2),
                              ssmkit::make_view(B, H, N2), ssmkit::make_view(dA, H, N2), ssmkit::make_view(dB, H, N2),
                              options.method);
    ssmkit::s4d_recurrence<T>(ssmkit::make_view(dA, H, N2), ssmkit::make_view(dB, H, N2),
                              ssmkit::make_view(C, channels, H, N2), ssmkit::make_view(u, batch, H, L),
                              ssmkit::make_view(state, batch, H, N2), ssmkit::make_view(y, batch, channels, H, L));
    r.outputs.push_back({"y_step", widened(y)});
    r.outputs.push_back({"state_step", widened(state)});
    // The recurrence accumulates one rounding per step and mode.
    r.f32_growth = static_cast<double>(L + N2);
  }
  return r;
}

template <class T>
result s4d_minimal_kernel_in(const ssmkit::golden::golden_case& c) {
  const auto& a_re = c.input("log_A_real");
  const std::size_t H = a_re.shape.at(0), N2 = a_re.shape.at(1);
  const auto L = static_cast<std::size_t>(c.param_number("L", 0));
  const auto& log_dt = c.input("log_dt").values;
  const auto& log_a = a_re.values;
  const auto& a_im = c.input("A_imag").values;
  // The module's parameter transforms (setup time, in double): dt = exp(log_dt),
  // A = -exp(log_A_real) + i A_imag (positive imaginary part, unlike SSMKernelDiag), B = 1.
  std::vector<T> dt(H);
  std::vector<std::complex<T>> A(H * N2), B(H * N2, std::complex<T>(1));
  for (std::size_t h = 0; h < H; ++h) dt[h] = static_cast<T>(std::exp(log_dt[h]));
  for (std::size_t i = 0; i < H * N2; ++i) A[i] = {static_cast<T>(-std::exp(log_a[i])), static_cast<T>(a_im[i])};
  const auto C = complex_values<T>(c.input("C"));
  std::vector<T> K(H * L);
  ssmkit::s4d_kernel<T>(ssmkit::make_view(dt, H, 1), ssmkit::make_view(A, H, N2), ssmkit::make_view(B, H, N2),
                        ssmkit::make_view(C, 1, H, N2), ssmkit::make_view(K, 1, H, L));
  result r;
  r.outputs.push_back({"K", widened(K)});
  r.f32_growth = static_cast<double>(N2);
  return r;
}

}  // namespace

result run_s4d_kernel(const ssmkit::golden::golden_case& c, precision p) {
  return p == precision::f64 ? s4d_kernel_in<double>(c) : s4d_kernel_in<float>(c);
}

result run_s4d_minimal_kernel(const ssmkit::golden::golden_case& c, precision p) {
  return p == precision::f64 ? s4d_minimal_kernel_in<double>(c) : s4d_minimal_kernel_in<float>(c);
}

namespace {

// K from the fast Cauchy + Woodbury kernel (s4_dplr_kernel, in T, with C~ formed from the original C);
// C_tilde from s4_dplr_c_tilde; K_krylov, dA and dB from the dense reference path
// (discretize_dplr_bilinear, dense_kernel), which is setup-time code in double: in the f32 run it
// sees the inputs rounded to float, so that all five outputs describe the same (rounded) system.
template <class T>
result s4_dplr_kernel_in(const ssmkit::golden::golden_case& c) {
  const auto& a_P = c.input("P");
  const auto& a_C = c.input("C");
  const std::size_t rank = a_P.shape.at(0), H = a_P.shape.at(1), N2 = a_P.shape.at(2), channels = a_C.shape.at(0);
  const auto L = static_cast<std::size_t>(c.param_number("L", 0));
  const auto dt = values_as<T>(c.input("dt"));
  const auto A = complex_values<T>(c.input("A"));
  const auto P = complex_values<T>(a_P);
  const auto B = complex_values<T>(c.input("B"));
  const auto C = complex_values<T>(a_C);
  const auto dt_v = ssmkit::make_view(dt, H, 1);
  const auto A_v = ssmkit::make_view(A, H, N2);
  const auto P_v = ssmkit::make_view(P, rank, H, N2);
  const auto B_v = ssmkit::make_view(B, H, N2);
  const auto C_v = ssmkit::make_view(C, channels, H, N2);

  std::vector<T> K(channels * H * L);
  ssmkit::s4_dplr_kernel<T>(dt_v, A_v, P_v, B_v, C_v, ssmkit::make_view(K, channels, H, L));
  std::vector<std::complex<T>> C_tilde(channels * H * N2);
  ssmkit::s4_dplr_c_tilde<T>(dt_v, A_v, P_v, B_v, C_v, L, ssmkit::make_view(C_tilde, channels, H, N2));

  const std::size_t N = 2 * N2;
  std::vector<double> K_krylov(channels * H * L), dA_out, dB_out;
  for (std::size_t h = 0; h < H; ++h) {
    Eigen::VectorXcd lambda(N2), b(N2);
    Eigen::MatrixXcd pm(rank, N2);
    for (std::size_t n = 0; n < N2; ++n) {
      lambda(n) = std::complex<double>(A[h * N2 + n]);
      b(n) = std::complex<double>(B[h * N2 + n]);
      for (std::size_t r = 0; r < rank; ++r) pm(r, n) = std::complex<double>(P[(r * H + h) * N2 + n]);
    }
    const auto sys = ssmkit::discretize_dplr_bilinear(static_cast<double>(dt[h]), lambda, pm, b);
    for (std::size_t i = 0; i < N; ++i) {
      for (std::size_t j = 0; j < N; ++j) {
        dA_out.push_back(sys.dA(i, j).real());
        dA_out.push_back(sys.dA(i, j).imag());
      }
      dB_out.push_back(sys.dB(i).real());
      dB_out.push_back(sys.dB(i).imag());
    }
    for (std::size_t ch = 0; ch < channels; ++ch) {
      Eigen::VectorXcd cf(N);
      for (std::size_t n = 0; n < N2; ++n) {
        cf(n) = std::complex<double>(C[(ch * H + h) * N2 + n]);
        cf(N2 + n) = std::conj(cf(n));
      }
      const Eigen::VectorXd k = ssmkit::dense_kernel(sys, cf, L);
      for (std::size_t l = 0; l < L; ++l) K_krylov[(ch * H + h) * L + l] = k(l);
    }
  }
  result r;
  r.outputs.push_back({"K", widened(K)});
  r.outputs.push_back({"K_krylov", K_krylov});
  r.outputs.push_back({"C_tilde", widened(C_tilde)});
  r.outputs.push_back({"dA", dA_out});
  r.outputs.push_back({"dB", dB_out});
  // In f32 the kernel is computed in double from float-rounded inputs and rounded once; what the
  // tolerance has to cover is the inputs' rounding propagated through the system: a Cauchy sum over
  // N = 2 N2 conjugate-expanded modes with (1 + rank)^2 products each, and the Krylov powers, whose
  // sensitivity to a relative perturbation of dt A grows with the lag (about l |dt A| eps at lag l,
  // bounded here by the sum over N modes). g = N (1 + rank) covers both with margin.
  r.f32_growth = static_cast<double>(N * (1 + rank));
  return r;
}

}  // namespace

result run_s4_dplr_kernel(const ssmkit::golden::golden_case& c, precision p) {
  return p == precision::f64 ? s4_dplr_kernel_in<double>(c) : s4_dplr_kernel_in<float>(c);
}

}  // namespace ssmkit_golden
