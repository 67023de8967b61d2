// Const layers and plans are shared between threads: several threads hammer one object at once
// and every result must equal the serial one, bit for bit. Run under ThreadSanitizer by CI's
// tsan preset, which also reports any data race the hammering provokes.
#include <algorithm>
#include <atomic>
#include <complex>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include <ssmkit/activation.hpp>
#include <ssmkit/conv1d.hpp>
#include <ssmkit/fft.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/fft_conv_stream.hpp>
#include <ssmkit/long_conv.hpp>
#include <ssmkit/mamba.hpp>
#include <ssmkit/mamba2.hpp>
#include <ssmkit/s4_dplr.hpp>
#include <ssmkit/s4d_layer.hpp>
#include <ssmkit/safetensors.hpp>
#include <ssmkit/selective_scan.hpp>
#include <ssmkit/ssd.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

// Runs `work(thread, round)` on `threads` threads for `rounds` rounds each, all at once: the
// threads wait at a start gate, so that their rounds overlap in time instead of running one thread
// after another. The gate orders only what precedes it; the rounds themselves stay unordered, so
// ThreadSanitizer still sees every conflicting access between them.
void hammer(int threads, int rounds, const std::function<void(int, int)>& work) {
  std::atomic<int> waiting{threads};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      waiting.fetch_sub(1);
      while (waiting.load() > 0) std::this_thread::yield();
      for (int r = 0; r < rounds; ++r) work(t, r);
    });
  }
  for (auto& th : pool) th.join();
}

constexpr int threads = 4;

}  // namespace

TEST_CASE("one mamba mixer serves several threads with their own workspaces and states", "[threads]") {
  ssmkit::mamba_config c;
  c.d_model = 16;
  const auto mixer = ssmkit::mamba_mixer<float>::random(c, {0.001, 0.1, 1e-4, 1.0, 3});
  const std::size_t L = 24;
  const auto x = ssm_test::uniform<float>(L * c.d_model, -1, 1, 4);
  std::vector<float> serial(x.size());
  ssmkit::mamba_workspace<float> ws;
  mixer.forward(ssmkit::make_view(x, 1, L, c.d_model), ssmkit::make_view(serial, 1, L, c.d_model), ws, nullptr, {1});
  std::vector<std::vector<float>> results(threads, std::vector<float>(x.size()));
  std::vector<std::vector<float>> steps(threads, std::vector<float>(c.d_model));
  hammer(threads, 5, [&](int t, int) {
    ssmkit::mamba_workspace<float> own;
    auto& out = results[std::size_t(t)];
    mixer.forward(ssmkit::make_view(x, 1, L, c.d_model), ssmkit::make_view(out, 1, L, c.d_model), own, nullptr, {1});
    auto state = mixer.make_state(1);
    mixer.step(ssmkit::make_view(x.data(), 1, c.d_model), ssmkit::make_view(steps[std::size_t(t)], 1, c.d_model), state,
               {1});
  });
  for (const auto& r : results) CHECK(r == serial);
  for (const auto& s : steps) CHECK(s == steps[0]);
}

TEST_CASE("elementwise kernels and conv1d on shared inputs from several threads", "[threads]") {
  const std::size_t L = 40, D = 33, W = 4;
  const auto x = ssm_test::uniform<float>(L * D, -3, 3, 5);
  const auto w = ssm_test::uniform<float>(D * W, -1, 1, 6);
  std::vector<float> serial(x.size());
  const ssmkit::tensor_view<const float, 1> no_bias{};
  ssmkit::causal_conv1d<float>(ssmkit::make_view(x, 1, L, D), ssmkit::make_view(w, D, W), no_bias,
                               ssmkit::make_view(serial, 1, L, D));
  std::vector<std::vector<float>> results(threads, std::vector<float>(x.size()));
  hammer(threads, 20, [&](int t, int) {
    auto& out = results[std::size_t(t)];
    ssmkit::causal_conv1d<float>(ssmkit::make_view(x, 1, L, D), ssmkit::make_view(w, D, W), no_bias,
                                 ssmkit::make_view(out, 1, L, D));
    ssmkit::silu(ssmkit::make_view(out, L * D), ssmkit::make_view(out, L * D));
  });
  ssmkit::silu(ssmkit::make_view(serial, L * D), ssmkit::make_view(serial, L * D));
  for (const auto& r : results) CHECK(r == serial);
}

TEST_CASE("one parsed safetensors file is read from several threads", "[threads]") {
  const auto values = ssm_test::uniform<float>(64, -1, 1, 7);
  const auto file =
      ssmkit::safetensors::file::parse(ssmkit::safetensors::serialize<float>({{"w", {8, 8}, values}}), "t");
  std::vector<std::vector<double>> results(threads);
  hammer(threads, 20, [&](int t, int) { results[std::size_t(t)] = file.read<double>("w"); });
  for (const auto& r : results) CHECK(r == std::vector<double>(values.begin(), values.end()));
}

TEST_CASE("one s4d layer serves several threads: forward with own workspaces, step with own states", "[threads]") {
  const std::size_t H = 6, N = 8, channels = 2, L = 37, B = 2;
  ssmkit::s4d_layer_options options;
  options.output_glu = true;  // also shares the output linear's weights
  options.activation = ssmkit::s4d_activation::gelu;
  const auto layer = ssmkit::s4d_layer<float>::random(H, N, channels, L, {}, options);
  const auto u = ssm_test::uniform<float>(B * L * H, -1, 1, 8);
  const std::size_t width = layer.output_width();
  std::vector<float> serial(B * L * width), serial_step(B * width);
  ssmkit::s4d_layer_workspace<float> ws;
  layer.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(serial, B, L, width), ws, {1});
  // Three steps over the first three tokens of each row (u is token-major, so a token is strided).
  const auto run_steps = [&](std::vector<float>& y) {
    auto state = layer.make_state(B);
    for (std::size_t t = 0; t < 3; ++t) {
      const ssmkit::tensor_view<const float, 2> u_t(u.data() + t * H, {B, H}, {static_cast<std::ptrdiff_t>(L * H), 1});
      layer.step(u_t, ssmkit::make_view(y, B, width), state);
    }
  };
  run_steps(serial_step);
  std::vector<std::vector<float>> results(threads, std::vector<float>(serial.size()));
  std::vector<std::vector<float>> steps(threads, std::vector<float>(serial_step.size()));
  hammer(threads, 10, [&](int t, int) {
    ssmkit::s4d_layer_workspace<float> own;
    auto& out = results[std::size_t(t)];
    layer.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(out, B, L, width), own, {1});
    run_steps(steps[std::size_t(t)]);
  });
  for (const auto& r : results) CHECK(r == serial);
  for (const auto& s : steps) CHECK(s == serial_step);
}

TEST_CASE("one fft_conv_plan with its cached kernel spectrum serves several threads", "[threads]") {
  // Both the FFT path and the direct path (short kernel) of the plan.
  for (const std::size_t Lk : {std::size_t{50}, std::size_t{3}}) {
    const std::size_t B = 2, L = 50, H = 5, C = 2;
    const auto k = ssm_test::uniform<double>(C * H * Lk, -1, 1, 9);
    const auto D = ssm_test::uniform<double>(C * H, -1, 1, 10);
    const auto u = ssm_test::uniform<double>(B * L * H, -1, 1, 11);
    const ssmkit::fft_conv_plan<double> plan(ssmkit::make_view(k, C, H, Lk), L);
    std::vector<double> serial(B * L * C * H);
    plan.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(serial, B, L, C * H), ssmkit::make_view(D, C, H),
                 {1});
    std::vector<std::vector<double>> results(threads, std::vector<double>(serial.size()));
    hammer(threads, 10, [&](int t, int) {
      ssmkit::fft_conv_workspace<double> own;
      auto& out = results[std::size_t(t)];
      plan.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(out, B, L, C * H), ssmkit::make_view(D, C, H), own,
                   {1});
    });
    for (const auto& r : results) CHECK(r == serial);
  }
}

TEST_CASE("one complex and one real FFT plan serve several threads with their own scratch", "[threads]") {
  const std::size_t n = 60;  // 2^2 3 5: every radix
  using cf = std::complex<float>;
  const auto re = ssm_test::uniform<float>(2 * n, -1, 1, 12);
  std::vector<cf> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = {re[2 * i], re[2 * i + 1]};
  const ssmkit::fft_plan<float> plan(n);
  const ssmkit::rfft_plan<float> rplan(n);
  std::vector<cf> serial(n), serial_r(rplan.spectrum_size());
  std::vector<float> serial_back(n);
  plan.forward(ssmkit::make_view(x, n), ssmkit::make_view(serial, n));
  rplan.forward(ssmkit::make_view(re.data(), n), ssmkit::make_view(serial_r, serial_r.size()));
  rplan.backward(ssmkit::make_view(serial_r.data(), serial_r.size()), ssmkit::make_view(serial_back, n));
  std::vector<std::vector<cf>> results(threads, std::vector<cf>(n)),
      rresults(threads, std::vector<cf>(serial_r.size()));
  std::vector<std::vector<float>> backs(threads, std::vector<float>(n));
  hammer(threads, 20, [&](int t, int) {
    const auto i = std::size_t(t);
    std::vector<float> scratch(std::max(plan.scratch_size(), rplan.scratch_size()));
    const auto s = ssmkit::make_view(scratch, scratch.size());
    plan.forward(ssmkit::make_view(x, n), ssmkit::make_view(results[i], n), s);
    rplan.forward(ssmkit::make_view(re.data(), n), ssmkit::make_view(rresults[i], rresults[i].size()), s);
    rplan.backward(ssmkit::make_view(rresults[i].data(), rresults[i].size()), ssmkit::make_view(backs[i], n), s);
  });
  for (const auto& r : results) CHECK(r == serial);
  for (const auto& r : rresults) CHECK(r == serial_r);
  for (const auto& r : backs) CHECK(r == serial_back);
}

TEST_CASE("independent fft_conv_streams run at once on several threads", "[threads]") {
  // fft_conv_stream is stateful (process() is not const), so there is no shared object: each
  // thread owns a stream over the same kernel, which checks that streams share no hidden state.
  const std::size_t H = 3, Lk = 20, L = 45;
  const auto k = ssm_test::uniform<float>(H * Lk, -1, 1, 13);
  const auto D = ssm_test::uniform<float>(H, -1, 1, 14);
  const auto u = ssm_test::uniform<float>(L * H, -1, 1, 15);
  ssmkit::fft_conv_stream_options options;
  options.block = 8;
  options.parallel.num_threads = 1;
  const auto run = [&](std::vector<float>& y) {
    ssmkit::fft_conv_stream<float> stream(ssmkit::make_view(k, H, Lk), ssmkit::make_view(D, H), 1, options);
    for (std::size_t t0 = 0; t0 < L; t0 += 15) {  // three chunks of 15 tokens
      stream.process(ssmkit::make_view(u.data() + t0 * H, 1, 15, H), ssmkit::make_view(y.data() + t0 * H, 1, 15, H));
    }
  };
  std::vector<float> serial(L * H);
  run(serial);
  std::vector<std::vector<float>> results(threads, std::vector<float>(serial.size()));
  hammer(threads, 10, [&](int t, int) { run(results[std::size_t(t)]); });
  for (const auto& r : results) CHECK(r == serial);
}

TEST_CASE("selective scan and state update on shared const inputs with per-thread outputs", "[threads]") {
  const std::size_t B = 2, D = 9, N = 4, L = 33;
  const auto u = ssm_test::uniform<float>(B * D * L, -1, 1, 16);
  const auto delta = ssm_test::uniform<float>(B * D * L, 0.01, 0.2, 17);
  const auto A = ssm_test::uniform<float>(D * N, -2, -0.1, 18);
  const auto Bv = ssm_test::uniform<float>(B * N * L, -1, 1, 19);
  const auto Cv = ssm_test::uniform<float>(B * N * L, -1, 1, 20);
  const auto Dskip = ssm_test::uniform<float>(D, -1, 1, 21);
  const auto z = ssm_test::uniform<float>(B * D * L, -1, 1, 22);
  const auto h0 = ssm_test::uniform<float>(B * D * N, -1, 1, 23);
  // One decode step on the state h0 with the first token of each row (x, dt, B_0, C_0 as copies).
  std::vector<float> x0(B * D), dt0(B * D), B0(B * N), C0(B * N);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t d = 0; d < D; ++d) x0[b * D + d] = u[(b * D + d) * L], dt0[b * D + d] = delta[(b * D + d) * L];
    for (std::size_t n = 0; n < N; ++n) B0[b * N + n] = Bv[(b * N + n) * L], C0[b * N + n] = Cv[(b * N + n) * L];
  }
  const auto run = [&](std::vector<float>& out, std::vector<float>& last, std::vector<float>& state,
                       std::vector<float>& step_out) {
    ssmkit::selective_scan_options<float> o;
    o.D = ssmkit::make_view(Dskip, D);
    o.z = ssmkit::make_view(z, B, D, L);
    o.delta_softplus = true;
    o.initial_state = ssmkit::make_view(h0, B, D, N);
    o.last_state = ssmkit::make_view(last, B, D, N);
    o.parallel.num_threads = 1;
    ssmkit::selective_scan<float>(ssmkit::make_view(u, B, D, L), ssmkit::make_view(delta, B, D, L),
                                  ssmkit::make_view(A, D, N), ssmkit::make_view(Bv, B, N, L),
                                  ssmkit::make_view(Cv, B, N, L), ssmkit::make_view(out, B, D, L), o);
    state = h0;
    ssmkit::selective_state_update_options<float, 3> so;
    so.D = ssmkit::make_view(Dskip, D);
    so.dt_softplus = true;
    so.parallel.num_threads = 1;
    ssmkit::selective_state_update<float>(ssmkit::make_view(state, B, D, N), ssmkit::make_view(x0, B, D),
                                          ssmkit::make_view(dt0, B, D), ssmkit::make_view(A, D, N),
                                          ssmkit::make_view(B0, B, N), ssmkit::make_view(C0, B, N),
                                          ssmkit::make_view(step_out, B, D), so);
  };
  struct outputs {
    std::vector<float> out, last, state, step;
  };
  const auto fresh = [&] {
    return outputs{std::vector<float>(B * D * L), std::vector<float>(B * D * N), std::vector<float>(B * D * N),
                   std::vector<float>(B * D)};
  };
  outputs serial = fresh();
  run(serial.out, serial.last, serial.state, serial.step);
  std::vector<outputs> results(threads, fresh());
  hammer(threads, 10, [&](int t, int) {
    auto& r = results[std::size_t(t)];
    run(r.out, r.last, r.state, r.step);
  });
  for (const auto& r : results) {
    CHECK(r.out == serial.out);
    CHECK(r.last == serial.last);
    CHECK(r.state == serial.state);
    CHECK(r.step == serial.step);
  }
}

TEST_CASE("ssd scan and step on shared const inputs with per-thread outputs and workspaces", "[threads]") {
  const std::size_t B = 1, L = 40, H = 4, P = 3, G = 2, N = 5;
  const auto x = ssm_test::uniform<double>(B * L * H * P, -1, 1, 24);
  const auto dt = ssm_test::uniform<double>(B * L * H, -2, 1, 25);
  const auto A = ssm_test::uniform<double>(H, -2, -0.5, 26);
  const auto Bm = ssm_test::uniform<double>(B * L * G * N, -1, 1, 27);
  const auto Cm = ssm_test::uniform<double>(B * L * G * N, -1, 1, 28);
  const auto Dskip = ssm_test::uniform<double>(H * P, -1, 1, 29);
  const auto run = [&](ssmkit::ssd_algorithm algorithm, std::vector<double>& out, std::vector<double>& final_states,
                       std::vector<double>& step_out) {
    ssmkit::ssd_workspace<double> ws;
    ssmkit::ssd_options<double> o;
    o.D = ssmkit::make_view(Dskip, H, P);
    o.dt_softplus = true;
    o.final_states = ssmkit::make_view(final_states, B, H, P, N);
    o.algorithm = algorithm;
    o.chunk_size = 16;
    o.workspace = &ws;
    ssmkit::ssd_scan<double>(ssmkit::make_view(x, B, L, H, P), ssmkit::make_view(dt, B, L, H), ssmkit::make_view(A, H),
                             ssmkit::make_view(Bm, B, L, G, N), ssmkit::make_view(Cm, B, L, G, N),
                             ssmkit::make_view(out, B, L, H, P), o, {1});
    // One step continuing from the final state, with the first token's inputs.
    ssmkit::ssd_step_options<double> so;
    so.D = o.D;
    so.dt_softplus = true;
    ssmkit::ssd_step<double>(ssmkit::make_view(final_states, B, H, P, N), ssmkit::make_view(x.data(), B, H, P),
                             ssmkit::make_view(dt.data(), B, H), ssmkit::make_view(A, H),
                             ssmkit::make_view(Bm.data(), B, G, N), ssmkit::make_view(Cm.data(), B, G, N),
                             ssmkit::make_view(step_out, B, H, P), so, {1});
  };
  for (const auto algorithm : {ssmkit::ssd_algorithm::chunked, ssmkit::ssd_algorithm::recurrent}) {
    std::vector<double> serial(x.size()), serial_final(B * H * P * N), serial_step(B * H * P);
    run(algorithm, serial, serial_final, serial_step);
    std::vector<std::vector<double>> outs(threads, std::vector<double>(serial.size()));
    std::vector<std::vector<double>> finals(threads, std::vector<double>(serial_final.size()));
    std::vector<std::vector<double>> steps(threads, std::vector<double>(serial_step.size()));
    hammer(threads, 5, [&](int t, int) {
      const auto i = std::size_t(t);
      run(algorithm, outs[i], finals[i], steps[i]);
    });
    // Both paths bit for bit: ssd_workspace's slots start on 64-byte lines, so the chunked path's
    // small Eigen products sum in the same order at every call (they used to differ by an ulp
    // with the workspace's address; this test found it).
    for (const auto& r : outs) CHECK(r == serial);
    for (const auto& r : finals) CHECK(r == serial_final);
    for (const auto& r : steps) CHECK(r == serial_step);
  }
}

TEST_CASE("one mamba2 mixer serves several threads with their own workspaces and states", "[threads]") {
  ssmkit::mamba2_config c;
  c.d_model = 16;  // d_inner 32 = 4 heads of 8
  c.d_state = 6;
  c.headdim = 8;
  c.ngroups = 2;
  const auto mixer = ssmkit::mamba2_mixer<float>::random(c, {0.001, 0.1, 1e-4, 1, 16, 3});
  const std::size_t L = 20;
  const auto x = ssm_test::uniform<float>(L * c.d_model, -1, 1, 30);
  const auto run = [&](std::vector<float>& out, std::vector<float>& step) {
    ssmkit::mamba2_workspace<float> ws;
    auto state = mixer.make_state(1);
    mixer.forward(ssmkit::make_view(x, 1, L, c.d_model), ssmkit::make_view(out, 1, L, c.d_model), ws, &state, {1});
    mixer.step(ssmkit::make_view(x.data(), 1, c.d_model), ssmkit::make_view(step, 1, c.d_model), state, {1});
  };
  std::vector<float> serial(x.size()), serial_step(c.d_model);
  run(serial, serial_step);
  std::vector<std::vector<float>> results(threads, std::vector<float>(x.size()));
  std::vector<std::vector<float>> steps(threads, std::vector<float>(c.d_model));
  hammer(threads, 5, [&](int t, int) { run(results[std::size_t(t)], steps[std::size_t(t)]); });
  for (const auto& r : results) CHECK(r == serial);
  for (const auto& s : steps) CHECK(s == serial_step);
}

TEST_CASE("one s4 dplr recurrence serves several threads with their own states; the kernel runs at once", "[threads]") {
  using cf = std::complex<float>;
  const std::size_t H = 3, N2 = 4, rank = 1, channels = 2, L = 24, B = 2;
  const auto r = ssm_test::uniform<float>(H + 2 * (H * N2 * (2 + rank + channels)), -1, 1, 31);
  std::size_t k = 0;
  std::vector<float> dt(H);
  std::vector<cf> Lambda(H * N2), P(rank * H * N2), Bm(H * N2), C(channels * H * N2);
  for (auto& v : dt) v = 0.01f * (2 + r[k++]);
  for (std::size_t i = 0; i < Lambda.size(); ++i, k += 2)
    Lambda[i] = {-0.5f + 0.25f * r[k], -3.14159f * static_cast<float>(i % N2) * (1 + 0.2f * r[k + 1])};
  for (auto& v : P) v = {0.5f * r[k], 0.5f * r[k + 1]}, k += 2;
  for (auto& v : Bm) v = {r[k], r[k + 1]}, k += 2;
  for (auto& v : C) v = {r[k], r[k + 1]}, k += 2;
  const auto dt_v = ssmkit::make_view(dt, H, 1);
  const auto Lambda_v = ssmkit::make_view(Lambda, H, N2);
  const auto P_v = ssmkit::make_view(P, rank, H, N2);
  const auto B_v = ssmkit::make_view(Bm, H, N2);
  const auto C_v = ssmkit::make_view(C, channels, H, N2);
  const ssmkit::s4_dplr_recurrence<float> dense(dt_v, Lambda_v, P_v, B_v, C_v, {ssmkit::dplr_step_form::dense});
  const ssmkit::s4_dplr_recurrence<float> linear(dt_v, Lambda_v, P_v, B_v, C_v, {ssmkit::dplr_step_form::linear});
  const auto u = ssm_test::uniform<float>(B * H * L, -1, 1, 32);
  const auto run = [&](std::vector<float>& K, std::vector<float>& y_dense, std::vector<float>& y_linear) {
    ssmkit::s4_dplr_kernel_options ko;
    ko.parallel.num_threads = 1;
    ssmkit::s4_dplr_kernel<float>(dt_v, Lambda_v, P_v, B_v, C_v, ssmkit::make_view(K, channels, H, L), ko);
    auto sd = dense.make_state(B);
    dense.forward(ssmkit::make_view(u, B, H, L), sd, ssmkit::make_view(y_dense, B, channels, H, L));
    auto sl = linear.make_state(B);
    linear.forward(ssmkit::make_view(u, B, H, L), sl, ssmkit::make_view(y_linear, B, channels, H, L));
  };
  std::vector<float> sK(channels * H * L), sD(B * channels * H * L), sL(sD.size());
  run(sK, sD, sL);
  std::vector<std::vector<float>> Ks(threads, sK), Ds(threads, sD), Ls(threads, sL);
  hammer(threads, 5, [&](int t, int) {
    const auto i = std::size_t(t);
    run(Ks[i], Ds[i], Ls[i]);
  });
  for (std::size_t i = 0; i < std::size_t(threads); ++i) {
    CHECK(Ks[i] == sK);
    CHECK(Ds[i] == sD);
    CHECK(Ls[i] == sL);
  }
}

TEST_CASE("one long_conv layer serves several threads with their own workspaces", "[threads]") {
  const std::size_t B = 2, L = 32, H = 4, C = 2;
  const auto k = ssm_test::uniform<float>(C * H * L, -1, 1, 33);
  const auto D = ssm_test::uniform<float>(C * H, -1, 1, 34);
  const auto u = ssm_test::uniform<float>(B * L * H, -1, 1, 35);
  ssmkit::long_conv_regularizer reg;
  reg.squash_lambda = 0.01;
  reg.smooth_window = 3;
  const ssmkit::long_conv_layer<float> layer(ssmkit::make_view(k, C, H, L), ssmkit::make_view(D, C, H), L, reg);
  std::vector<float> serial(B * L * C * H);
  ssmkit::fft_conv_workspace<float> ws;
  layer.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(serial, B, L, C * H), ws, {1});
  std::vector<std::vector<float>> results(threads, std::vector<float>(serial.size()));
  hammer(threads, 10, [&](int t, int) {
    ssmkit::fft_conv_workspace<float> own;
    auto& out = results[std::size_t(t)];
    layer.forward(ssmkit::make_view(u, B, L, H), ssmkit::make_view(out, B, L, C * H), own, {1});
  });
  for (const auto& r : results) CHECK(r == serial);
}
