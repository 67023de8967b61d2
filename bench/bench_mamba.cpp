// The Mamba-1 mixer, d_model 768 (d_inner 1536, d_state 16, d_conv 4, dt_rank 48): forward in
// tokens/s for a prompt of L tokens, and step (decode) in time per token. The forward is a mix of
// GEMMs (in_proj, x_proj, dt_proj, out_proj: about 6.3 d_model·d_inner flops per token with the
// small ones) and the exp-bound scan (d_inner·d_state exps per token); the limit column uses FMA.
#include <string>
#include <vector>

#include <ssmkit/mamba.hpp>
#include <ssmkit/mamba2.hpp>

#include "common.hpp"

namespace {

ssmkit::mamba_config mixer_config() {
  ssmkit::mamba_config c;
  c.d_model = 768;
  return c;
}

double flops_per_token(const ssmkit::mamba_config& c) {
  const double dm = double(c.d_model), di = double(c.d_inner()), r = double(c.resolved_dt_rank()), n = double(c.d_state);
  return 2 * (2 * di * dm + (r + 2 * n) * di + di * r + dm * di);
}

void mamba_mixer_forward(benchmark::State& state) {
  const auto c = mixer_config();
  const auto L = static_cast<std::size_t>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const auto mixer = ssmkit::mamba_mixer<float>::random(c);
  auto x = ssm_bench::uniform<float>(L * c.d_model, -1, 1);
  std::vector<float> out(x.size());
  ssmkit::mamba_workspace<float> ws;
  for (auto _ : state) {
    mixer.forward(ssmkit::make_view(x, 1, L, c.d_model), ssmkit::make_view(out, 1, L, c.d_model), ws, nullptr, {threads});
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(L), 2.0 * double(x.size()) * sizeof(float));
  ssm_bench::describe(state, "mamba mixer forward d_model=768 L=" + std::to_string(L), "ssmkit", "fma",
                      flops_per_token(c) * double(L), threads);
}

// The other implementation of the same forward: the prompt token by token through step (what an
// engine without a parallel prefill does), from a fresh state each iteration.
void mamba_mixer_forward_by_steps(benchmark::State& state) {
  const auto c = mixer_config();
  const auto L = static_cast<std::size_t>(state.range(0));
  const auto mixer = ssmkit::mamba_mixer<float>::random(c);
  auto x = ssm_bench::uniform<float>(L * c.d_model, -1, 1);
  std::vector<float> out(x.size());
  for (auto _ : state) {
    auto s = mixer.make_state(1);
    for (std::size_t t = 0; t < L; ++t) {
      mixer.step(ssmkit::make_view(x.data() + t * c.d_model, 1, c.d_model),
                 ssmkit::make_view(out.data() + t * c.d_model, 1, c.d_model), s, {1});
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(L), 2.0 * double(x.size()) * sizeof(float));
  ssm_bench::describe(state, "mamba mixer forward d_model=768 L=" + std::to_string(L), "ssmkit-step", "fma",
                      flops_per_token(c) * double(L));
}

void mamba_mixer_step(benchmark::State& state) {
  const auto c = mixer_config();
  const auto mixer = ssmkit::mamba_mixer<float>::random(c);
  auto x = ssm_bench::uniform<float>(c.d_model, -1, 1);
  std::vector<float> out(c.d_model);
  auto s = mixer.make_state(1);
  for (auto _ : state) {
    mixer.step(ssmkit::make_view(x, 1, c.d_model), ssmkit::make_view(out, 1, c.d_model), s, {1});
    benchmark::DoNotOptimize(out.data());
  }
  ssm_bench::set_throughput(state, 1.0, 0.0);
  ssm_bench::describe(state, "mamba mixer step d_model=768", "ssmkit", "none", 0);
}

}  // namespace

BENCHMARK(mamba_mixer_forward)->ArgNames({"L", "threads"})->Args({128, 1})->Args({2048, 1})->Args({2048, 2})->UseRealTime();
BENCHMARK(mamba_mixer_forward_by_steps)->ArgNames({"L"})->Arg(128)->UseRealTime();
BENCHMARK(mamba_mixer_step);

namespace {

// Mamba-2 at the size of the ggml peer figures: d_model 768, d_inner 1536 = 24 heads x 64,
// d_state 128, one group. ggml's Mamba-2 ssm_scan alone took 35.5-52 ms at L = 2048 and its decode
// 22.7 us per token (../shared/perf/README.md).
ssmkit::mamba2_config mamba2_config() {
  ssmkit::mamba2_config c;
  c.d_model = 768;
  return c;
}

void mamba_mixer2_forward(benchmark::State& state) {
  const auto c = mamba2_config();
  const auto L = static_cast<std::size_t>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const auto mixer = ssmkit::mamba2_mixer<float>::random(c);
  auto u = ssm_bench::uniform<float>(L * c.d_model, -1, 1);
  std::vector<float> out(u.size());
  ssmkit::mamba2_workspace<float> ws;
  for (auto _ : state) {
    mixer.forward(ssmkit::make_view(u, 1, L, c.d_model), ssmkit::make_view(out, 1, L, c.d_model), ws, nullptr, {threads});
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double gemm_flops = 2.0 * double(c.d_model) * double(c.d_in_proj() + c.d_inner());
  const double scan_flops = 6.0 * double(c.d_inner() * c.d_state);  // about 3 FMA per state element per token
  ssm_bench::set_throughput(state, double(L), 2.0 * double(u.size()) * sizeof(float));
  ssm_bench::describe(state, "mamba2 mixer forward d_model=768 L=" + std::to_string(L), "ssmkit", "fma",
                      (gemm_flops + scan_flops) * double(L), threads);
}

// The same forward token by token through step, as for Mamba-1.
void mamba_mixer2_forward_by_steps(benchmark::State& state) {
  const auto c = mamba2_config();
  const auto L = static_cast<std::size_t>(state.range(0));
  const auto mixer = ssmkit::mamba2_mixer<float>::random(c);
  auto u = ssm_bench::uniform<float>(L * c.d_model, -1, 1);
  std::vector<float> out(u.size());
  for (auto _ : state) {
    auto s = mixer.make_state(1);
    for (std::size_t t = 0; t < L; ++t) {
      mixer.step(ssmkit::make_view(u.data() + t * c.d_model, 1, c.d_model),
                 ssmkit::make_view(out.data() + t * c.d_model, 1, c.d_model), s, {1});
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double gemm_flops = 2.0 * double(c.d_model) * double(c.d_in_proj() + c.d_inner());
  const double scan_flops = 6.0 * double(c.d_inner() * c.d_state);
  ssm_bench::set_throughput(state, double(L), 2.0 * double(u.size()) * sizeof(float));
  ssm_bench::describe(state, "mamba2 mixer forward d_model=768 L=" + std::to_string(L), "ssmkit-step", "fma",
                      (gemm_flops + scan_flops) * double(L));
}

void mamba_mixer2_step(benchmark::State& state) {
  const auto c = mamba2_config();
  const auto mixer = ssmkit::mamba2_mixer<float>::random(c);
  auto u = ssm_bench::uniform<float>(c.d_model, -1, 1);
  std::vector<float> out(c.d_model);
  auto s = mixer.make_state(1);
  for (auto _ : state) {
    mixer.step(ssmkit::make_view(u, 1, c.d_model), ssmkit::make_view(out, 1, c.d_model), s, {1});
    benchmark::DoNotOptimize(out.data());
  }
  ssm_bench::set_throughput(state, 1.0, 0.0);
  ssm_bench::describe(state, "mamba2 mixer step d_model=768", "ssmkit", "none", 0);
}

}  // namespace

BENCHMARK(mamba_mixer2_forward)->ArgNames({"L", "threads"})->Args({128, 1})->Args({2048, 1})->Args({2048, 2})->UseRealTime();
BENCHMARK(mamba_mixer2_forward_by_steps)->ArgNames({"L"})->Arg(128)->UseRealTime();
BENCHMARK(mamba_mixer2_step);
