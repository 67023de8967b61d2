// Regressions found by the fuzz targets (tests/fuzz/), each reduced to the smallest input that
// showed the defect. They matter most in the sanitizer builds, where the defect was reported.
//
//   - fuzz_mamba: mamba_mixer::forward, mamba2_mixer::forward and mamba_model::forward over an
//     empty sequence (L = 0) took &x(b, 0, 0) of a view whose data pointer is null (the view of an
//     empty std::vector): a reference bound to null, undefined behaviour (UBSan,
//     "reference binding to null pointer", view.hpp). Fixed by returning before the first
//     projection when there is no token; the state, if any, is then unchanged.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <ssmkit/mamba.hpp>
#include <ssmkit/mamba2.hpp>

#include "catch_compat.hpp"

TEST_CASE("mamba_mixer::forward over no token leaves a state unchanged", "[fuzz][mamba]") {
  ssmkit::mamba_config c;
  c.d_model = 4, c.d_state = 3;
  const auto mixer = ssmkit::mamba_mixer<float>::random(c);
  const std::size_t B = 2;
  std::vector<float> x, out;  // (B, 0, d_model): data() is null
  ssmkit::mamba_workspace<float> ws;
  auto state = mixer.make_state(B);
  for (auto& v : state.ssm) v = 0.5f;
  for (auto& v : state.conv) v = -0.25f;
  const auto ssm_before = state.ssm, conv_before = state.conv;
  mixer.forward(ssmkit::make_view(x.data(), B, 0, c.d_model), ssmkit::make_view(out.data(), B, 0, c.d_model), ws, &state);
  mixer.forward(ssmkit::make_view(x.data(), B, 0, c.d_model), ssmkit::make_view(out.data(), B, 0, c.d_model), ws);
  CHECK(state.ssm == ssm_before);
  CHECK(state.conv == conv_before);
}

TEST_CASE("mamba2_mixer::forward over no token leaves a state unchanged", "[fuzz][mamba2]") {
  ssmkit::mamba2_config c;
  c.d_model = 4, c.d_state = 4, c.headdim = 2;
  const auto mixer = ssmkit::mamba2_mixer<float>::random(c);
  const std::size_t B = 1;
  std::vector<float> u, out;
  ssmkit::mamba2_workspace<float> ws;
  auto state = mixer.make_state(B);
  for (auto& v : state.ssm) v = 0.5f;
  const auto ssm_before = state.ssm;
  mixer.forward(ssmkit::make_view(u.data(), B, 0, c.d_model), ssmkit::make_view(out.data(), B, 0, c.d_model), ws, &state);
  CHECK(state.ssm == ssm_before);
}

TEST_CASE("mamba_model::forward over no token returns no logits", "[fuzz][mamba]") {
  ssmkit::mamba_config c;
  c.d_model = 4, c.d_state = 2;
  const auto model = ssmkit::mamba_model<float>::random(c, 5, 1);
  std::vector<std::int32_t> tokens;
  std::vector<float> logits;
  ssmkit::mamba_model_workspace<float> ws;
  auto state = model.make_state(1);
  model.forward(ssmkit::make_view(tokens.data(), 1, 0), ssmkit::make_view(logits.data(), 1, 0, 5), ws, &state);
  CHECK(logits.empty());
  // The state is still the zero state: a step from it equals a step from a fresh one.
  auto fresh = model.make_state(1);
  const std::int32_t token = 3;
  std::vector<float> a(5), b(5);
  model.step(ssmkit::make_view(&token, 1), ssmkit::make_view(a.data(), 1, 5), state);
  model.step(ssmkit::make_view(&token, 1), ssmkit::make_view(b.data(), 1, 5), fresh);
  CHECK(a == b);
}
