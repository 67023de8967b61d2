// The README's API tour: every public entry point family, one snippet each. ctest builds and runs
// this file (example_api_tour), and tests/readme_tour checks that every C++ block of the README's
// "API tour" section appears here verbatim (leading spaces aside), so the README cannot drift from
// code that compiles and runs. Each snippet sits in its own function so that it reads alone.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <vector>

#include <ssmkit/ssmkit.hpp>

namespace {

using cfloat = std::complex<float>;

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("%-58s %s\n", what, ok ? "ok" : "FAILED");
  if (!ok) ++failures;
}

void tour_hippo_and_init() {
  // HiPPO and the S4D initialisations: setup-time code in double, Eigen types.
  const auto legs = ssmkit::hippo::transition("legs", 64);        // A (64, 64), B (64)
  const auto nplr = ssmkit::hippo::nplr("legs", 64);              // W, P, B, V: A = V (diag W - P P*) V*
  const auto init = ssmkit::s4d::diag("lin", 64, /*H=*/8);        // S4D-Lin: A, B (8, 32)
  const auto log_dt = ssmkit::s4d::init_log_dt(8, 1);             // log-uniform in [1e-3, 1e-1]
  const auto ptd = ssmkit::ptd::diag_init(ssmkit::hippo::measure::legs, 64);  // S4-PTD: backward stable
  const auto zoh = ssmkit::discretize_step(ssmkit::discretization::zoh, 0.01, init.A(0, 0));  // dA, dB of one mode
  expect(legs.A.rows() == 64 && nplr.W.size() == 32 && init.A.cols() == 32 && log_dt.rows() == 8 &&
             ptd.A.size() == 32 && std::abs(zoh.dA) < 1,
         "hippo, s4d::diag, init_log_dt, ptd::diag_init, discretize");
}

void tour_s4d_kernel() {
  const std::size_t H = 4, N2 = 32, L = 1024;
  const auto init = ssmkit::s4d::diag("lin", 2 * N2, H);
  std::vector<float> dt(H, 0.01f);
  std::vector<cfloat> A(H * N2), B(H * N2), C(H * N2, cfloat(0.5f, -0.25f));
  for (std::size_t i = 0; i < A.size(); ++i) {
    A[i] = cfloat(init.A(Eigen::Index(i / N2), Eigen::Index(i % N2)));
    B[i] = cfloat(init.B(Eigen::Index(i / N2), Eigen::Index(i % N2)));
  }
  // The S4D convolution kernel K (channels, H, L) = 2 Re sum_n C B dB dA^l, ZOH by default.
  std::vector<float> K(H * L);
  ssmkit::s4d_kernel<float>(ssmkit::make_view(dt, H, 1), ssmkit::make_view(A, H, N2), ssmkit::make_view(B, H, N2),
                            ssmkit::make_view(C, 1, H, N2), ssmkit::make_view(K, 1, H, L));

  // The same system as a recurrence: (dA, dB) once, then any number of tokens from a carried state.
  std::vector<cfloat> dA(H * N2), dB(H * N2), state(H * N2);
  ssmkit::s4d_step_setup<float>(ssmkit::make_view(dt, H, 1), ssmkit::make_view(A, H, N2),
                                ssmkit::make_view(B, H, N2), ssmkit::make_view(dA, H, N2), ssmkit::make_view(dB, H, N2));
  std::vector<float> impulse(H * L, 0.0f), y(H * L);
  for (std::size_t h = 0; h < H; ++h) impulse[h * L] = 1.0f;  // u (batch 1, H, L)
  ssmkit::s4d_recurrence<float>(ssmkit::make_view(dA, H, N2), ssmkit::make_view(dB, H, N2),
                                ssmkit::make_view(C, 1, H, N2), ssmkit::make_view(impulse, 1, H, L),
                                ssmkit::make_view(state, 1, H, N2), ssmkit::make_view(y, 1, 1, H, L));
  double worst = 0;
  for (std::size_t i = 0; i < K.size(); ++i) worst = std::max(worst, double(std::abs(K[i] - y[i])));
  expect(worst < 1e-4, "s4d_kernel == s4d_recurrence's impulse response");
}

void tour_s4d_layer() {
  // An S4D layer: kernel, FFT plan and step parameters built once; conv mode and step mode agree.
  const std::size_t batch = 1, L = 512, H = 8, N = 64, channels = 1;
  const auto layer = ssmkit::s4d_layer<float>::random(H, N, channels, L, {ssmkit::s4d::diag_init::lin});
  std::vector<float> u(batch * L * H, 0.5f), y(batch * L * H), y_step(batch * L * H);
  layer.forward(ssmkit::make_view(u, batch, L, H), ssmkit::make_view(y, batch, L, H));
  auto state = layer.make_state(batch);
  for (std::size_t t = 0; t < L; ++t) {
    layer.step(ssmkit::make_view(u.data() + t * H, batch, H), ssmkit::make_view(y_step.data() + t * H, batch, H), state);
  }
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, double(std::abs(y[i] - y_step[i])));
  expect(worst < 1e-3, "s4d_layer forward == step");
}

void tour_s4_dplr() {
  const std::size_t H = 2, N2 = 16, L = 256;
  const auto nplr = ssmkit::hippo::nplr("legs", 2 * N2);
  std::vector<float> dt(H, 0.05f);
  std::vector<cfloat> Lambda(H * N2), P(H * N2), B(H * N2), C(H * N2, cfloat(0.1f, 0.05f));
  for (std::size_t i = 0; i < Lambda.size(); ++i) {
    Lambda[i] = cfloat(nplr.W(Eigen::Index(i % N2)));
    P[i] = cfloat(nplr.P(0, Eigen::Index(i % N2)));
    B[i] = cfloat(nplr.B(Eigen::Index(i % N2)));
  }
  // The S4 (DPLR) kernel by Cauchy + Woodbury at the roots of unity, and its O(N r) recurrence.
  std::vector<float> K(H * L);
  ssmkit::s4_dplr_kernel<float>(ssmkit::make_view(dt, H, 1), ssmkit::make_view(Lambda, H, N2),
                                ssmkit::make_view(P, 1, H, N2), ssmkit::make_view(B, H, N2),
                                ssmkit::make_view(C, 1, H, N2), ssmkit::make_view(K, 1, H, L));
  const ssmkit::s4_dplr_recurrence<float> recurrence(
      ssmkit::make_view(dt, H, 1), ssmkit::make_view(Lambda, H, N2), ssmkit::make_view(P, 1, H, N2),
      ssmkit::make_view(B, H, N2), ssmkit::make_view(C, 1, H, N2), {ssmkit::dplr_step_form::linear});
  auto state = recurrence.make_state(/*batch=*/1);
  std::vector<float> u(H), y(H), impulse_response(H * L);
  for (std::size_t t = 0; t < L; ++t) {
    std::fill(u.begin(), u.end(), t == 0 ? 1.0f : 0.0f);  // an impulse: the step's outputs are the kernel
    recurrence.step(ssmkit::make_view(u, 1, H), state, ssmkit::make_view(y, 1, 1, H));
    for (std::size_t h = 0; h < H; ++h) impulse_response[h * L + t] = y[h];
  }
  double worst = 0;
  for (std::size_t i = 0; i < K.size(); ++i) worst = std::max(worst, double(std::abs(K[i] - impulse_response[i])));
  expect(worst < 1e-4, "s4_dplr_kernel == s4_dplr_recurrence's impulse response");
}

void tour_fft() {
  // Plans are immutable and shareable; sizes are 2^a 3^b 5^c (next_fast_len finds one).
  const std::size_t n = ssmkit::next_fast_len(1000);  // 1000 itself: 2^3 5^3
  const ssmkit::rfft_plan<float> real_fft(n);
  std::vector<float> x(n, 1.0f), back(n);
  std::vector<cfloat> X(real_fft.spectrum_size());  // n / 2 + 1 bins
  real_fft.forward(ssmkit::make_view(x, n), ssmkit::make_view(X, X.size()));
  real_fft.backward(ssmkit::make_view(X, X.size()), ssmkit::make_view(back, n));  // unnormalised: n x
  const ssmkit::fft_plan<float> complex_fft(64);
  std::vector<cfloat> z(64, cfloat(1, 0)), Z(64);
  complex_fft.forward(ssmkit::make_view(z, 64), ssmkit::make_view(Z, 64));
  expect(std::abs(X[0].real() - float(n)) < 1e-3f * float(n) && std::abs(back[3] - float(n)) < 1e-3f * float(n) &&
             std::abs(Z[0].real() - 64.0f) < 1e-4f,
         "fft_plan, rfft_plan");
}

void tour_fft_conv() {
  // Causal convolution of u (B, L, H) with k (H, Lk) plus a D skip; the plan caches k's spectrum.
  const std::size_t batch = 2, L = 4096, H = 16, Lk = 4096;
  std::vector<float> u(batch * L * H, 1.0f), k(H * Lk, 1e-3f), D(H, 1.0f), y(batch * L * H);
  const ssmkit::fft_conv_plan<float> plan(ssmkit::make_view(k, H, Lk), L);  // FFT or direct: cost model
  ssmkit::fft_conv_workspace<float> workspace;  // grows once, then reused: no allocation per call
  plan.forward(ssmkit::make_view(u, batch, L, H), ssmkit::make_view(y, batch, L, H),
               ssmkit::make_view(D, 1, H), workspace);
  // One-shot, without a plan (mamba's / the reference's (B, H, L) layout is .transposed(1, 2)):
  ssmkit::fft_conv(ssmkit::make_view(u.data(), batch, H, L).transposed(1, 2), ssmkit::make_view(k, H, Lk),
                   ssmkit::make_view(D, H), ssmkit::make_view(y.data(), batch, H, L).transposed(1, 2));
  // Unbounded streams: overlap-save in memory fixed at construction, any chunking.
  ssmkit::fft_conv_stream<float> stream(ssmkit::make_view(k, H, Lk), ssmkit::make_view(D, H), /*batch=*/1);
  std::vector<float> chunk(100 * H, 1.0f), out(100 * H);
  for (int i = 0; i < 50; ++i) stream.process(ssmkit::make_view(chunk, 1, 100, H), ssmkit::make_view(out, 1, 100, H));
  expect(std::abs(y[L - 1] - (1.0f + 1e-3f * float(L))) < 1e-3f && stream.position() == 5000 &&
             std::abs(out[99 * H] - (1.0f + 1e-3f * float(Lk))) < 1e-3f,
         "fft_conv_plan, fft_conv, fft_conv_stream");
}

void tour_long_conv() {
  // A long-conv layer: a learned kernel (C, H, Lk), regularised once (smoothing, then squash).
  const std::size_t L = 1024, H = 8;
  std::vector<float> kernel(H * L, 0.01f), D(H, 1.0f), u(L * H, 1.0f), y(L * H);
  const ssmkit::long_conv_layer<float> layer(ssmkit::make_view(kernel, 1, H, L), ssmkit::make_view(D, 1, H), L,
                                             {/*squash_lambda=*/0.001, /*smooth_window=*/3});
  ssmkit::fft_conv_workspace<float> workspace;
  layer.forward(ssmkit::make_view(u, 1, L, H), ssmkit::make_view(y, 1, L, H), workspace);
  expect(std::abs(layer.kernel()(0, 0, 5) - 0.009f) < 1e-6f, "long_conv_layer (squash, smooth)");
}

void tour_conv1d() {
  // Mamba's short causal conv1d over token-major x (B, L, D), width 4, bias, SiLU, with its state.
  const std::size_t batch = 1, L = 64, D = 32, W = 4;
  std::vector<float> x(batch * L * D, 0.1f), weight(D * W, 0.25f), bias(D, 0.0f), y(x.size());
  std::vector<float> conv_state(batch * D * (W - 1));  // (B, D, W-1): the last W-1 inputs
  ssmkit::conv1d_options<float> options;
  options.silu = true;
  options.final_state = ssmkit::make_view(conv_state, batch, D, W - 1);
  ssmkit::causal_conv1d(ssmkit::make_view(x, batch, L, D), ssmkit::make_view(weight, D, W),
                        ssmkit::make_view(bias, D), ssmkit::make_view(y, batch, L, D), options);
  // Decoding: one token at a time, the state rolling in place, no allocation.
  std::vector<float> x_t(batch * D, 0.1f), y_t(batch * D);
  ssmkit::causal_conv1d_update(ssmkit::make_view(x_t, batch, D), ssmkit::make_view(conv_state, batch, D, W - 1),
                               ssmkit::make_view(weight, D, W), ssmkit::make_view(bias, D),
                               ssmkit::make_view(y_t, batch, D), /*silu=*/true);
  expect(std::abs(y_t[0] - y[(L - 1) * D]) < 1e-6f, "causal_conv1d, causal_conv1d_update");
}

void tour_selective_scan() {
  // Mamba's selective scan, channel-major (batch, D, L) as mamba_ssm; variable B, C (batch, N, L).
  const std::size_t batch = 1, D = 64, N = 16, L = 256;
  std::vector<float> u(batch * D * L, 0.5f), delta(u.size(), -1.0f), z(u.size(), 1.0f), out(u.size());
  std::vector<float> A(D * N, -1.0f), B(batch * N * L, 0.3f), C(batch * N * L, 0.2f), Dskip(D, 1.0f);
  std::vector<float> dt_bias(D, 0.0f), last_state(batch * D * N);
  ssmkit::selective_scan_options<float> options;
  options.D = ssmkit::make_view(Dskip, D);
  options.z = ssmkit::make_view(z, batch, D, L);
  options.delta_bias = ssmkit::make_view(dt_bias, D);
  options.delta_softplus = true;
  options.last_state = ssmkit::make_view(last_state, batch, D, N);  // h_{L-1}; options.initial_state: h_{-1}
  ssmkit::selective_scan(ssmkit::make_view(u, batch, D, L), ssmkit::make_view(delta, batch, D, L),
                         ssmkit::make_view(A, D, N), ssmkit::make_view(B, batch, N, L),
                         ssmkit::make_view(C, batch, N, L), ssmkit::make_view(out, batch, D, L), options);

  // The decode step (mamba's selective_state_update): one token, the state updated in place.
  std::vector<float> x_t(batch * D, 0.5f), dt_t(batch * D, -1.0f), B_t(batch * N, 0.3f), C_t(batch * N, 0.2f);
  std::vector<float> A_step(D * N, -1.0f), y_t(batch * D), state(batch * D * N);
  ssmkit::selective_state_update_options<float, 3> step_options;
  step_options.dt_softplus = true;
  ssmkit::selective_state_update(ssmkit::make_view(state, batch, D, N), ssmkit::make_view(x_t, batch, D),
                                 ssmkit::make_view(dt_t, batch, D), ssmkit::make_view(A_step, D, N),
                                 ssmkit::make_view(B_t, batch, N), ssmkit::make_view(C_t, batch, N),
                                 ssmkit::make_view(y_t, batch, D), step_options);
  expect(std::isfinite(out.back()) && std::abs(y_t[0] - 0.5f * 16 * 0.3f * 0.2f * std::log1p(std::exp(-1.0f))) < 1e-5f,
         "selective_scan, selective_state_update");
}

void tour_ssd() {
  // Mamba-2's SSD scan, token-major: x (B, L, H, P), dt (B, L, H), A (H), B and C (B, L, G, N).
  const std::size_t batch = 1, L = 200, H = 4, P = 16, G = 1, N = 32;
  std::vector<float> x(batch * L * H * P, 0.1f), dt(batch * L * H, 0.05f), A(H, -1.0f);
  std::vector<float> Bm(batch * L * G * N, 0.2f), Cm(Bm.size(), 0.3f), y(x.size()), y_chunked(x.size());
  std::vector<float> state(batch * H * P * N);
  ssmkit::ssd_options<float> options;
  options.final_states = ssmkit::make_view(state, batch, H, P, N);
  options.algorithm = ssmkit::ssd_algorithm::recurrent;  // or chunked; automatic: the cost model decides
  auto run = [&](std::vector<float>& out) {
    ssmkit::ssd_scan(ssmkit::make_view(x, batch, L, H, P), ssmkit::make_view(dt, batch, L, H),
                     ssmkit::make_view(A, H), ssmkit::make_view(Bm, batch, L, G, N),
                     ssmkit::make_view(Cm, batch, L, G, N), ssmkit::make_view(out, batch, L, H, P), options);
  };
  run(y);
  options.algorithm = ssmkit::ssd_algorithm::chunked;  // any L, not only multiples of the chunk
  run(y_chunked);
  // One decode token continues from the final state.
  std::vector<float> x_t(batch * H * P, 0.1f), dt_t(batch * H, 0.05f), B_t(batch * G * N, 0.2f), C_t(B_t.size(), 0.3f);
  std::vector<float> y_t(batch * H * P);
  ssmkit::ssd_step(ssmkit::make_view(state, batch, H, P, N), ssmkit::make_view(x_t, batch, H, P),
                   ssmkit::make_view(dt_t, batch, H), ssmkit::make_view(A, H), ssmkit::make_view(B_t, batch, G, N),
                   ssmkit::make_view(C_t, batch, G, N), ssmkit::make_view(y_t, batch, H, P));
  expect(std::abs(y.back() - y_chunked.back()) < 1e-5f && y_t[0] > y.back(), "ssd_scan (recurrent, chunked), ssd_step");
}

void tour_mamba_blocks() {
  // A Mamba-1 mixer and a Mamba-2 mixer with random weights (Mamba's initialisation), forward and step.
  ssmkit::mamba_config config;
  config.d_model = 32;  // d_inner 64, d_state 16, d_conv 4
  const auto mixer = ssmkit::mamba_mixer<float>::random(config, {});
  const std::size_t L = 16;
  std::vector<float> x(L * config.d_model, 0.1f), out(x.size()), out_t(config.d_model);
  ssmkit::mamba_workspace<float> workspace;
  auto state = mixer.make_state(/*batch=*/1);
  mixer.forward(ssmkit::make_view(x, 1, L, config.d_model), ssmkit::make_view(out, 1, L, config.d_model), workspace,
                &state);  // leaves the conv and SSM states after the prompt
  mixer.step(ssmkit::make_view(x.data(), 1, config.d_model), ssmkit::make_view(out_t, 1, config.d_model), state);

  ssmkit::mamba2_config config2;
  config2.d_model = 64;  // d_inner 128 = 2 heads of 64, d_state 128
  const auto mixer2 = ssmkit::mamba2_mixer<float>::random(config2, {});
  std::vector<float> x2(L * config2.d_model, 0.1f), out2(x2.size());
  ssmkit::mamba2_workspace<float> workspace2;
  mixer2.forward(ssmkit::make_view(x2, 1, L, config2.d_model), ssmkit::make_view(out2, 1, L, config2.d_model),
                 workspace2);
  expect(std::isfinite(out_t[0]) && std::isfinite(out2.back()), "mamba_mixer, mamba2_mixer");
}

void tour_safetensors() {
  // Checkpoints: safetensors files, written and read by name (real Mamba checkpoints load the same way).
  const auto path = std::filesystem::temp_directory_path() / "ssmkit_api_tour.safetensors";
  std::vector<float> A_log = {0.0f, 0.69314718f, 1.0986123f};
  ssmkit::safetensors::save<float>(path, {{"mixer.A_log", {3}, A_log}});
  const auto file = ssmkit::safetensors::file::load(path);
  std::vector<double> back(3);
  file.read("mixer.A_log", ssmkit::make_view(back, 3));  // F32, F64, F16 or BF16 into float or double
  std::filesystem::remove(path);
  expect(file.contains("mixer.A_log") && back[2] == double(A_log[2]), "safetensors::save, safetensors::file");
}

void tour_golden_case() {
  // The reference's golden outputs, read through the validating reader (tests/golden/cases/README.md).
  const auto c = ssmkit::golden::load_case(std::filesystem::path(SSMKIT_TOUR_GOLDEN_DIR) / "selective_scan_full");
  expect(c.kernel == "selective_scan" && !c.inputs.empty(), "golden::load_case");
}

void tour_parallel_and_errors() {
  // All threading goes through parallel_for (OpenMP when enabled, serial otherwise).
  std::vector<int> squares(100);
  ssmkit::parallel_for(0, 100, [&](int i) { squares[std::size_t(i)] = i * i; }, {/*num_threads=*/2});
  // Elementwise activations over views of any rank (PyTorch's definitions).
  std::vector<float> v(100, 30.0f), w(100);
  ssmkit::softplus(ssmkit::make_view(v, 10, 10), ssmkit::make_view(w, 10, 10));  // threshold 20: w = v
  ssmkit::sigmoid(ssmkit::make_view(w, 100), ssmkit::make_view(v, 100));
  // Bad input: ssmkit::error (a std::invalid_argument) naming function, argument and both shapes.
  std::vector<float> u(2 * 64 * 128), delta(2 * 64 * 100), A(64 * 16), B(64 * 16), C(64 * 16), out(u.size());
  try {
    ssmkit::selective_scan(ssmkit::make_view(u, 2, 64, 128), ssmkit::make_view(delta, 2, 64, 100),
                           ssmkit::make_view(A, 64, 16), ssmkit::make_view(B, 64, 16), ssmkit::make_view(C, 64, 16),
                           ssmkit::make_view(out, 2, 64, 128));
  } catch (const ssmkit::error& e) {
    std::printf("%s\n", e.what());  // selective_scan: delta has shape (2, 64, 100), expected (2, 64, 128)
  }
  expect(squares[99] == 9801 && v[0] == 1.0f, "parallel_for, softplus, sigmoid, ssmkit::error");
}

}  // namespace

int main() {
  tour_hippo_and_init();
  tour_s4d_kernel();
  tour_s4d_layer();
  tour_s4_dplr();
  tour_fft();
  tour_fft_conv();
  tour_long_conv();
  tour_conv1d();
  tour_selective_scan();
  tour_ssd();
  tour_mamba_blocks();
  tour_safetensors();
  tour_golden_case();
  tour_parallel_and_errors();
  std::printf("%s\n", failures == 0 ? "api tour: all ok" : "api tour: FAILURES");
  return failures == 0 ? 0 : 1;
}
