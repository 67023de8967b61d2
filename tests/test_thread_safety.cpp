// Const layers and plans are shared between threads: several threads hammer one object at once
// and every result must equal the serial one, bit for bit. Run under ThreadSanitizer by CI's tsan
// preset, which also reports any data race the hammering provokes.
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include <ssmkit/activation.hpp>
#include <ssmkit/conv1d.hpp>
#include <ssmkit/mamba.hpp>
#include <ssmkit/safetensors.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

// Runs `work(thread, round)` on `threads` threads for `rounds` rounds each, all at once.
void hammer(int threads, int rounds, const std::function<void(int, int)>& work) {
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
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
    mixer.step(ssmkit::make_view(x.data(), 1, c.d_model), ssmkit::make_view(steps[std::size_t(t)], 1, c.d_model), state, {1});
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
  ssmkit::causal_conv1d<float>(ssmkit::make_view(x, 1, L, D), ssmkit::make_view(w, D, W), no_bias, ssmkit::make_view(serial, 1, L, D));
  std::vector<std::vector<float>> results(threads, std::vector<float>(x.size()));
  hammer(threads, 20, [&](int t, int) {
    auto& out = results[std::size_t(t)];
    ssmkit::causal_conv1d<float>(ssmkit::make_view(x, 1, L, D), ssmkit::make_view(w, D, W), no_bias, ssmkit::make_view(out, 1, L, D));
    ssmkit::silu(ssmkit::make_view(out, L * D), ssmkit::make_view(out, L * D));
  });
  ssmkit::silu(ssmkit::make_view(serial, L * D), ssmkit::make_view(serial, L * D));
  for (const auto& r : results) CHECK(r == serial);
}

TEST_CASE("one parsed safetensors file is read from several threads", "[threads]") {
  const auto values = ssm_test::uniform<float>(64, -1, 1, 7);
  const auto file = ssmkit::safetensors::file::parse(ssmkit::safetensors::serialize<float>({{"w", {8, 8}, values}}), "t");
  std::vector<std::vector<double>> results(threads);
  hammer(threads, 20, [&](int t, int) { results[std::size_t(t)] = file.read<double>("w"); });
  for (const auto& r : results) CHECK(r == std::vector<double>(values.begin(), values.end()));
}
