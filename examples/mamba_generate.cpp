// A Mamba generation loop: a 2-layer model with random weights (or a checkpoint, see below) runs a
// prompt through forward, then generates 32 tokens greedily with step. At the end, one forward
// over prompt + generation scores the same tokens, and the two modes must agree.
//
// With a real checkpoint converted to safetensors (tensor names as in mamba_ssm's
// MambaLMHeadModel), load it instead of the random model:
//   auto model = ssmkit::mamba_model<float>::load(ssmkit::safetensors::file::load(path), config, n_layers);
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <ssmkit/mamba.hpp>

int main() {
  ssmkit::mamba_config config;
  config.d_model = 64;  // d_inner 128, d_state 16, d_conv 4, dt_rank 4
  const std::size_t vocab = 256, layers = 2, new_tokens = 32;
  const auto model = ssmkit::mamba_model<float>::random(config, vocab, layers, {0.001, 0.1, 1e-4, 1.0, 2024});

  std::vector<std::int32_t> tokens = {72, 101, 108, 108, 111, 44, 32, 83, 83, 77};  // "Hello, SSM"
  const std::size_t prompt = tokens.size();
  auto state = model.make_state(1);
  ssmkit::mamba_model_workspace<float> workspace;
  std::vector<float> logits(prompt * vocab);
  model.forward(ssmkit::make_view(tokens, 1, prompt), ssmkit::make_view(logits, 1, prompt, vocab), workspace, &state);

  // Greedy decoding: the most likely next token, fed back through step.
  std::vector<float> generated_logits;
  std::vector<float> next(logits.end() - static_cast<long>(vocab), logits.end());
  for (std::size_t i = 0; i < new_tokens; ++i) {
    const auto best = static_cast<std::int32_t>(std::max_element(next.begin(), next.end()) - next.begin());
    tokens.push_back(best);
    generated_logits.insert(generated_logits.end(), next.begin(), next.end());
    model.step(ssmkit::make_view(&tokens.back(), 1), ssmkit::make_view(next, 1, vocab), state);
  }
  std::printf("generated:");
  for (std::size_t i = prompt; i < tokens.size(); ++i) std::printf(" %d", tokens[i]);
  std::printf("\n");

  // One forward over everything must predict the same logits at every generated position.
  const std::size_t total = tokens.size();
  std::vector<float> all(total * vocab);
  model.forward(ssmkit::make_view(tokens, 1, total), ssmkit::make_view(all, 1, total, vocab), workspace);
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < new_tokens; ++i)
    for (std::size_t v = 0; v < vocab; ++v) {
      const float a = all[(prompt - 1 + i) * vocab + v], b = generated_logits[i * vocab + v];
      worst = std::max(worst, double(std::abs(a - b)));
      scale = std::max(scale, double(std::abs(a)));
    }
  const bool ok = worst <= 1e-4 * std::max(scale, 1.0);
  std::printf("forward vs step over %zu generated tokens: max |difference| %.2e (logit scale %.2e) %s\n", new_tokens,
              worst, scale, ok ? "agree" : "DISAGREE");
  return ok ? 0 : 1;
}
