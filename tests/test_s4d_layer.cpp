// S4D layer: convolution mode against recurrent (step) mode, against a plain double convolution
// with the layer's kernel, the error messages, and no heap allocation per step.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

#include <ssmkit/s4d_layer.hpp>

#include "allocation_counter.hpp"
#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

template <class T>
struct run_result {
  std::vector<T> conv, step;  // (B, L, C*H) each
};

// Runs the layer on u (B, L, H) in both modes.
template <class T>
run_result<T> run_both(const ssmkit::s4d_layer<T>& layer, const std::vector<T>& u, std::size_t B) {
  const std::size_t L = layer.length(), H = layer.width(), CH = layer.channels() * H;
  run_result<T> r{std::vector<T>(B * L * CH), std::vector<T>(B * L * CH)};
  ssmkit::fft_conv_workspace<T> ws;
  layer.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(r.conv, B, L, CH), ws);
  auto state = layer.make_state(B);
  // Token t of the (B, L, H) buffer is the strided (B, H) view at offset t*H.
  for (std::size_t t = 0; t < L; ++t) {
    const ssmkit::tensor_view<const T, 2> ut(u.data() + t * H, {B, H}, {static_cast<std::ptrdiff_t>(L * H), 1});
    const ssmkit::tensor_view<T, 2> yt(r.step.data() + t * CH, {B, CH}, {static_cast<std::ptrdiff_t>(L * CH), 1});
    layer.step(ut, yt, state);
  }
  return r;
}

// M[c, h] = max|u| (2 sum_n |C dB| / (1 - |dA|) + |D|): a bound on |y| with no cancellation, the
// scale of both modes' rounding errors.
template <class T>
std::vector<double> output_scale(const ssmkit::s4d_layer<T>& layer, double max_u) {
  const std::size_t H = layer.width(), N2 = layer.modes(), C = layer.channels();
  std::vector<double> M(C * H);
  for (std::size_t c = 0; c < C; ++c)
    for (std::size_t h = 0; h < H; ++h) {
      double s = 0;
      for (std::size_t n = 0; n < N2; ++n) {
        const std::complex<double> cdb = std::complex<double>(layer.C()(c, h, n)) * std::complex<double>(layer.dB()(h, n));
        s += 2 * std::abs(cdb) / (1 - std::abs(std::complex<double>(layer.dA()(h, n))));
      }
      M[c * H + h] = max_u * (s + std::abs(static_cast<double>(layer.D()(c, h))));
    }
  return M;
}

// The worst |a - b| / M over all outputs.
template <class TA, class TB>
double worst_scaled(const std::vector<TA>& a, const std::vector<TB>& b, const std::vector<double>& M, std::size_t CH) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])) / M[i % CH]);
  }
  return worst;
}

// Tolerance of |conv - step| / M, derived: the kernel carries (N2 + 5) eps (s4d.hpp), the FFT
// about 4 log2(n) eps with n <= 2L, and the recurrence about 3 eps per step on the state (one
// complex multiply-add, plus dA's own rounding compounding as t eps), summed over at most L steps.
template <class T>
double conv_step_tolerance(std::size_t L, std::size_t N2) {
  const double eps = std::numeric_limits<T>::epsilon();
  return eps * (3.0 * static_cast<double>(L) + static_cast<double>(N2) + 5.0 + 4.0 * std::log2(2.0 * static_cast<double>(L)));
}

template <class T>
void check_conv_equals_step(ssmkit::s4d::diag_init init, ssmkit::discretization method, std::uint64_t seed) {
  const std::size_t B = 2, L = 300, H = 5, N = 16, C = 2;
  ssmkit::s4d_layer_init li;
  li.init = init;
  li.seed = seed;
  ssmkit::s4d_layer_options lo;
  lo.method = method;
  const auto layer = ssmkit::s4d_layer<T>::random(H, N, C, L, li, lo);
  const auto u = ssm_test::uniform<T>(B * L * H, -1, 1, static_cast<std::uint32_t>(seed + 10));
  const auto r = run_both(layer, u, B);
  const double worst = worst_scaled(r.conv, r.step, output_scale(layer, 1.0), C * H);
  const double tol = conv_step_tolerance<T>(L, N / 2);
  INFO("worst |conv - step| / M = " << worst << ", tolerance " << tol);
  CHECK(worst <= tol);
  // The worst case above assumes every rounding adds up; measured (L = 300, N2 = 8) it is about
  // 0.5 eps in double and 0.4 eps in float. A tighter guard of 16 eps catches a systematic drift
  // that the worst-case bound would let through; an off-by-one between the modes shows at ~1.
  CHECK(worst <= 16 * std::numeric_limits<T>::epsilon());
}

}  // namespace

TEST_CASE("s4d_layer: conv mode equals step mode token by token (double)", "[s4d_layer]") {
  check_conv_equals_step<double>(ssmkit::s4d::diag_init::lin, ssmkit::discretization::zoh, 1);
  check_conv_equals_step<double>(ssmkit::s4d::diag_init::legs, ssmkit::discretization::zoh, 2);
  check_conv_equals_step<double>(ssmkit::s4d::diag_init::lin, ssmkit::discretization::bilinear, 3);
}

TEST_CASE("s4d_layer: conv mode equals step mode token by token (float)", "[s4d_layer]") {
  check_conv_equals_step<float>(ssmkit::s4d::diag_init::lin, ssmkit::discretization::zoh, 4);
  check_conv_equals_step<float>(ssmkit::s4d::diag_init::legs, ssmkit::discretization::zoh, 5);
  check_conv_equals_step<float>(ssmkit::s4d::diag_init::inv, ssmkit::discretization::bilinear, 6);
}

TEST_CASE("s4d_layer: conv mode equals a plain double convolution with its kernel", "[s4d_layer]") {
  const std::size_t B = 2, L = 129, H = 3, N2 = 4, C = 2;
  // Hand-made parameters: untied dt, one mode with a large dt.
  const auto dt = ssm_test::uniform<double>(H * N2, 0.01, 0.5, 21);
  const auto re = ssm_test::uniform<double>(H * N2, 0.1, 1.0, 22);
  const auto im = ssm_test::uniform<double>(H * N2, -3.0, 3.0, 23);
  const auto cr = ssm_test::uniform<double>(C * H * N2 * 2, -1, 1, 24);
  const auto D = ssm_test::uniform<double>(C * H, -1, 1, 25);
  std::vector<std::complex<double>> A(H * N2), Bm(H * N2), Cm(C * H * N2);
  for (std::size_t i = 0; i < H * N2; ++i) {
    A[i] = {-re[i], im[i]};
    Bm[i] = {1.0, 0.5 * im[i]};
  }
  for (std::size_t i = 0; i < C * H * N2; ++i) Cm[i] = {cr[2 * i], cr[2 * i + 1]};
  const ssmkit::s4d_layer<double> layer(ssmkit::make_view(dt, H, N2), ssmkit::make_view(A, H, N2),
                                        ssmkit::make_view(Bm, H, N2), ssmkit::make_view(Cm, C, H, N2),
                                        ssmkit::make_view(D, C, H), L);
  // The kernel by its definition: K[c,h,l] = 2 Re sum_n C (e^{dt A} - 1)/A B e^{l dt A}.
  double kernel_err = 0, kernel_scale = 0;
  for (std::size_t c = 0; c < C; ++c)
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t l = 0; l < L; ++l) {
        std::complex<double> s = 0;
        for (std::size_t n = 0; n < N2; ++n) {
          const std::complex<double> dtA = dt[h * N2 + n] * A[h * N2 + n];
          s += Cm[(c * H + h) * N2 + n] * (std::exp(dtA) - 1.0) / A[h * N2 + n] * Bm[h * N2 + n] *
               std::exp(static_cast<double>(l) * dtA);
        }
        kernel_err = std::max(kernel_err, std::abs(2 * s.real() - layer.kernel()(c, h, l)));
        kernel_scale = std::max(kernel_scale, std::abs(2 * s.real()));
      }
  CHECK(kernel_err <= 1e-13 * kernel_scale);
  const auto u = ssm_test::uniform<double>(B * L * H, -1, 1, 26);
  const auto r = run_both(layer, u, B);
  double worst = 0, worst_step = 0, scale = 0;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t h = 0; h < H; ++h) {
          double acc = D[c * H + h] * u[(b * L + t) * H + h];
          for (std::size_t s = 0; s <= t; ++s) acc += layer.kernel()(c, h, s) * u[(b * L + t - s) * H + h];
          const std::size_t i = (b * L + t) * C * H + c * H + h;
          worst = std::max(worst, std::abs(acc - r.conv[i]));
          worst_step = std::max(worst_step, std::abs(acc - r.step[i]));
          scale = std::max(scale, std::abs(acc));
        }
  CHECK(worst <= 1e-13 * scale);       // the FFT's O(eps log n) error
  CHECK(worst_step <= 1e-12 * scale);  // the recurrence: O(L eps) at most, L = 129

  // No skip: a default-constructed D gives y = K * u alone.
  const ssmkit::s4d_layer<double> no_skip(ssmkit::make_view(dt, H, N2), ssmkit::make_view(A, H, N2),
                                          ssmkit::make_view(Bm, H, N2), ssmkit::make_view(Cm, C, H, N2), {}, L);
  const auto r0 = run_both(no_skip, u, B);
  double diff = 0;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t h = 0; h < H; ++h) {
          const std::size_t i = (b * L + t) * C * H + c * H + h;
          const double want = r.conv[i] - D[c * H + h] * u[(b * L + t) * H + h];
          diff = std::max({diff, std::abs(r0.conv[i] - want), std::abs(r0.step[i] - want)});
        }
  CHECK(diff <= 1e-12 * scale);
}

TEST_CASE("s4d_layer: the float layer against a double convolution of the same parameters", "[s4d_layer]") {
  const std::size_t B = 1, L = 1024, H = 4, N = 32, C = 1;
  ssmkit::s4d_layer_init li;
  li.seed = 7;
  const auto lf = ssmkit::s4d_layer<float>::random(H, N, C, L, li);
  const auto ld = ssmkit::s4d_layer<double>::random(H, N, C, L, li);
  const auto u = ssm_test::uniform<double>(B * L * H, -1, 1, 8);
  std::vector<float> uf(u.begin(), u.end());
  std::vector<double> ud(uf.begin(), uf.end());
  const auto rf = run_both(lf, uf, B);
  const auto rd = run_both(ld, ud, B);
  // The float parameters are the double ones rounded once; the float result differs from the
  // double one by (parameter rounding + conv rounding) ~ a few hundred eps_f of M at L = 1024.
  const auto M = output_scale(ld, 1.0);
  const double tol = conv_step_tolerance<float>(L, N / 2);
  CHECK(worst_scaled(rf.conv, rd.conv, M, C * H) <= tol);
  CHECK(worst_scaled(rf.step, rd.conv, M, C * H) <= tol);
}

TEST_CASE("s4d_layer: bad inputs give exact messages", "[s4d_layer]") {
  const std::size_t H = 3, N2 = 4, C = 2, L = 16;
  std::vector<double> dt(H, 0.1), D(C * H, 1.0);
  std::vector<std::complex<double>> A(H * N2, {-0.5, 1.0}), Bm(H * N2, 1.0), Cm(C * H * N2, 1.0);
  auto dtv = ssmkit::make_view(std::as_const(dt), H, std::size_t{1});
  auto Av = ssmkit::make_view(std::as_const(A), H, N2);
  auto Bv = ssmkit::make_view(std::as_const(Bm), H, N2);
  auto Cv = ssmkit::make_view(std::as_const(Cm), C, H, N2);
  auto Dv = ssmkit::make_view(std::as_const(D), C, H);
  using layer_t = ssmkit::s4d_layer<double>;
  CHECK(ssm_test::error_of([&] { layer_t(dtv, Av, ssmkit::make_view(std::as_const(Bm), N2, H), Cv, Dv, L); }) ==
        "s4d_layer: B has shape (4, 3), expected (3, 4)");
  CHECK(ssm_test::error_of([&] { layer_t(dtv, Av, Bv, ssmkit::make_view(std::as_const(Cm), H, C, N2), Dv, L); }) ==
        "s4d_layer: C has shape (3, 2, 4), expected (3, 3, 4)");
  CHECK(ssm_test::error_of([&] { layer_t(dtv, Av, Bv, Cv, ssmkit::make_view(std::as_const(D), H, C), L); }) ==
        "s4d_layer: D has shape (3, 2), expected (2, 3)");
  CHECK(ssm_test::error_of([&] { layer_t(dtv, Av, Bv, Cv, Dv, 0); }) == "s4d_layer: L must be >= 1, got 0");
  std::vector<double> bad_dt{0.1, -1.0, 0.1};
  CHECK(ssm_test::error_of([&] {
          layer_t(ssmkit::make_view(std::as_const(bad_dt), H, std::size_t{1}), Av, Bv, Cv, Dv, L);
        }) == "s4d_layer: dt must be positive and finite, got -1 at (1, 0)");
  ssmkit::s4d_layer_options dss;
  dss.method = ssmkit::discretization::dss;
  CHECK(ssm_test::error_of([&] { layer_t(dtv, Av, Bv, Cv, Dv, L, dss); }) ==
        "s4d_layer: the dss discretization has no recurrent form (use zoh or bilinear)");

  const layer_t layer(dtv, Av, Bv, Cv, Dv, L);
  auto state = layer.make_state(2);
  std::vector<double> ut(2 * H), yt(2 * C * H), u(2 * L * H), y(2 * L * C * H);
  CHECK(ssm_test::error_of([&] { layer.step(ssmkit::make_view(std::as_const(ut), H, 2), ssmkit::make_view(yt, 2, C * H), state); }) ==
        "s4d_layer::step: u_t has shape (3, 2), expected (2, 3)");
  CHECK(ssm_test::error_of([&] { layer.step(ssmkit::make_view(std::as_const(ut), 2, H), ssmkit::make_view(yt, 2 * C, H), state); }) ==
        "s4d_layer::step: y_t has shape (4, 3), expected (2, 6)");
  auto other = ssmkit::s4d_layer<double>::random(H, 2 * N2 + 2, C, L).make_state(2);
  CHECK(ssm_test::error_of([&] { layer.step(ssmkit::make_view(std::as_const(ut), 2, H), ssmkit::make_view(yt, 2, C * H), other); }) ==
        "s4d_layer::step: state has shape (2, 3, 5), expected (2, 3, 4)");
  ssmkit::fft_conv_workspace<double> ws;
  CHECK(ssm_test::error_of([&] {
          layer.forward(ssmkit::make_view(std::as_const(u), 2, H, L), ssmkit::make_view(y, 2, L, C * H), ws);
        }) == "s4d_layer: u has shape (2, 3, 16), expected (2, 16, 3)");
}

TEST_CASE("s4d_layer: step allocates nothing", "[s4d_layer]") {
  const std::size_t B = 3, H = 8, N = 64, C = 2, L = 32;
  const auto layer = ssmkit::s4d_layer<float>::random(H, N, C, L);
  auto state = layer.make_state(B);
  const auto u = ssm_test::uniform<float>(B * H, -1, 1, 9);
  std::vector<float> y(B * C * H);
  ssm_test::allocation_scope scope;
  for (int t = 0; t < 10; ++t) layer.step(ssmkit::make_view(u, B, H), ssmkit::make_view(y, B, C * H), state);
  CHECK(scope.allocations() == 0);
}

TEST_CASE("s4d_layer: const forward and step from several threads", "[s4d_layer]") {
  const std::size_t B = 2, L = 200, H = 4, N = 8, C = 2;
  const auto layer = ssmkit::s4d_layer<double>::random(H, N, C, L);
  const auto u = ssm_test::uniform<double>(B * L * H, -1, 1, 11);
  const auto want = run_both(layer, u, B);
  std::vector<run_result<double>> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) threads.emplace_back([&] { g = run_both(layer, u, B); });  // own workspace and state each
  for (auto& t : threads) t.join();
  for (const auto& g : got) {
    CHECK(g.conv == want.conv);
    CHECK(g.step == want.step);
  }
}
