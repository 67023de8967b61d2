// The Mamba-1 mixer and model: against a plain double reference of the module, forward == step,
// prompt + generation == one pass, safetensors loading, no allocation in step, errors.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <vector>

#include <ssmkit/mamba.hpp>

#include "allocation_counter.hpp"
#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

using ssmkit::mamba_config;

// mamba_simple.Mamba.forward for one sequence, written as the paper states it, in double.
// x: (L, d_model) row-major; returns (L, d_model).
template <class W>
std::vector<double> reference_mixer(const W& w, const mamba_config& c, const std::vector<double>& x, std::size_t L) {
  const std::size_t dm = c.d_model, di = c.d_inner(), n = c.d_state, r = c.resolved_dt_rank(), k = c.d_conv;
  auto at = [](const auto& m, std::size_t i, std::size_t j) { return double(m(Eigen::Index(i), Eigen::Index(j))); };
  auto at1 = [](const auto& v, std::size_t i) { return double(v(Eigen::Index(i))); };
  std::vector<double> xs(L * di), z(L * di), u(L * di), out(L * dm, 0.0);
  for (std::size_t t = 0; t < L; ++t)
    for (std::size_t d = 0; d < 2 * di; ++d) {
      double acc = 0;
      for (std::size_t j = 0; j < dm; ++j) acc += at(w.in_proj, d, j) * x[t * dm + j];
      (d < di ? xs[t * di + d] : z[t * di + d - di]) = acc;
    }
  for (std::size_t t = 0; t < L; ++t)
    for (std::size_t d = 0; d < di; ++d) {
      double acc = at1(w.conv1d_bias, d);
      for (std::size_t q = 0; q < k; ++q) {
        const long s = long(t) - long(k - 1) + long(q);
        if (s >= 0) acc += at(w.conv1d_weight, d, q) * xs[std::size_t(s) * di + d];
      }
      u[t * di + d] = acc / (1 + std::exp(-acc));
    }
  std::vector<double> h(di * n, 0.0);
  for (std::size_t t = 0; t < L; ++t) {
    std::vector<double> dbl(r + 2 * n, 0.0);
    for (std::size_t o = 0; o < r + 2 * n; ++o)
      for (std::size_t d = 0; d < di; ++d) dbl[o] += at(w.x_proj, o, d) * u[t * di + d];
    std::vector<double> y(di);
    for (std::size_t d = 0; d < di; ++d) {
      double delta = at1(w.dt_proj_bias, d);
      for (std::size_t q = 0; q < r; ++q) delta += at(w.dt_proj_weight, d, q) * dbl[q];
      delta = delta > 20 ? delta : std::log1p(std::exp(delta));
      double acc = 0;
      for (std::size_t j = 0; j < n; ++j) {
        const double A = -std::exp(at(w.A_log, d, j));
        h[d * n + j] = std::exp(delta * A) * h[d * n + j] + delta * dbl[r + j] * u[t * di + d];
        acc += h[d * n + j] * dbl[r + n + j];
      }
      const double zz = z[t * di + d];
      y[d] = (acc + at1(w.D, d) * u[t * di + d]) * zz / (1 + std::exp(-zz));
    }
    for (std::size_t o = 0; o < dm; ++o)
      for (std::size_t d = 0; d < di; ++d) out[t * dm + o] += at(w.out_proj, o, d) * y[d];
  }
  return out;
}

mamba_config small_config() {
  mamba_config c;
  c.d_model = 24;  // d_inner 48, dt_rank 2
  c.d_state = 8;
  return c;
}

}  // namespace

TEMPLATE_TEST_CASE("the mixer matches a double reference of the module", "[mamba]", float, double) {
  using T = TestType;
  const auto c = small_config();
  const std::size_t B = 2, L = 37;
  const auto mixer = ssmkit::mamba_mixer<T>::random(c, {0.001, 0.1, 1e-4, 1.0, 5});
  const auto x = ssm_test::uniform<T>(B * L * c.d_model, -1, 1, 6);
  std::vector<T> out(x.size());
  ssmkit::mamba_workspace<T> ws;
  mixer.forward(ssmkit::make_view(x, B, L, c.d_model), ssmkit::make_view(out, B, L, c.d_model), ws);
  for (std::size_t b = 0; b < B; ++b) {
    const std::vector<double> xb(x.begin() + long(b * L * c.d_model), x.begin() + long((b + 1) * L * c.d_model));
    const auto want = reference_mixer(mixer.weights(), c, xb, L);
    const std::vector<T> got(out.begin() + long(b * L * c.d_model), out.begin() + long((b + 1) * L * c.d_model));
    // Error: dot products of length up to d_inner and a scan of L steps, each a few ulp per term:
    // 2 (d_inner + L) u, normwise, with a factor 4 of margin.
    const double u = std::numeric_limits<T>::epsilon() / 2;
    CHECK(ssm_test::max_rel_error(got, want) <= 8 * double(c.d_inner() + L) * u);
  }
}

TEST_CASE("forward over a prompt then step over new tokens equals one forward", "[mamba]") {
  const auto c = small_config();
  const std::size_t B = 2, L = 30, prompt = 11;
  const auto mixer = ssmkit::mamba_mixer<double>::random(c, {0.001, 0.1, 1e-4, 1.0, 7});
  const auto x = ssm_test::uniform<double>(B * L * c.d_model, -1, 1, 8);
  std::vector<double> whole(x.size()), parts(x.size());
  ssmkit::mamba_workspace<double> ws;
  mixer.forward(ssmkit::make_view(x, B, L, c.d_model), ssmkit::make_view(whole, B, L, c.d_model), ws);
  auto state = mixer.make_state(B);
  const auto xv = ssmkit::make_view(x, B, L, c.d_model);
  const auto pv = ssmkit::make_view(parts, B, L, c.d_model);
  mixer.forward(ssmkit::tensor_view<const double, 3>(x.data(), {B, prompt, c.d_model}, xv.strides()),
                ssmkit::tensor_view<double, 3>(parts.data(), {B, prompt, c.d_model}, pv.strides()), ws, &state);
  std::size_t allocations = 0;
  for (std::size_t t = prompt; t < L; ++t) {
    ssm_test::allocation_scope scope;
    mixer.step(ssmkit::tensor_view<const double, 2>(&xv(0, t, 0), {B, c.d_model}, {xv.stride(0), 1}),
               ssmkit::tensor_view<double, 2>(&pv(0, t, 0), {B, c.d_model}, {pv.stride(0), 1}), state, {1});
    allocations += scope.allocations();
  }
  CHECK(allocations == 0);
  CHECK(ssm_test::max_rel_error(parts, whole) <= 1e-12);
}

TEST_CASE("with the fast exp, step still follows forward, and both stay close to the accurate exp", "[mamba]") {
  auto c = small_config();
  const std::size_t B = 1, L = 24, prompt = 9;
  const auto x = ssm_test::uniform<float>(B * L * c.d_model, -1, 1, 8);
  const auto xv = ssmkit::make_view(x, B, L, c.d_model);
  std::vector<float> accurate(x.size()), whole(x.size()), parts(x.size());
  ssmkit::mamba_workspace<float> ws;
  ssmkit::mamba_mixer<float>::random(c, {0.001, 0.1, 1e-4, 1.0, 7})
      .forward(xv, ssmkit::make_view(accurate, B, L, c.d_model), ws);
  c.fast_exp = true;
  const auto mixer = ssmkit::mamba_mixer<float>::random(c, {0.001, 0.1, 1e-4, 1.0, 7});
  mixer.forward(xv, ssmkit::make_view(whole, B, L, c.d_model), ws);
  auto state = mixer.make_state(B);
  const auto pv = ssmkit::make_view(parts, B, L, c.d_model);
  mixer.forward(ssmkit::tensor_view<const float, 3>(x.data(), {B, prompt, c.d_model}, xv.strides()),
                ssmkit::tensor_view<float, 3>(parts.data(), {B, prompt, c.d_model}, pv.strides()), ws, &state);
  for (std::size_t t = prompt; t < L; ++t) {
    mixer.step(ssmkit::tensor_view<const float, 2>(&xv(0, t, 0), {B, c.d_model}, {xv.stride(0), 1}),
               ssmkit::tensor_view<float, 2>(&pv(0, t, 0), {B, c.d_model}, {pv.stride(0), 1}), state, {1});
  }
  // Float rounding through the projections: 1e-5 normwise (the scan's own f32 bound is 8 u (L + N)).
  CHECK(ssm_test::max_rel_error(parts, whole) <= 1e-5);
  CHECK(ssm_test::max_rel_error(whole, accurate) <= 1e-5);
}

TEST_CASE("a model generates with step exactly as forward scores the same tokens", "[mamba]") {
  const auto c = small_config();
  const std::size_t vocab = 50, layers = 2, L = 20, prompt = 8;
  const auto model = ssmkit::mamba_model<double>::random(c, vocab, layers, {0.001, 0.1, 1e-4, 1.0, 9});
  std::vector<std::int32_t> tokens(L);
  for (std::size_t t = 0; t < L; ++t) tokens[t] = std::int32_t((t * 7 + 3) % vocab);
  std::vector<double> logits(L * vocab), stepped(L * vocab);
  ssmkit::mamba_model_workspace<double> ws;
  model.forward(ssmkit::make_view(tokens, 1, L), ssmkit::make_view(logits, 1, L, vocab), ws);
  auto state = model.make_state(1);
  model.forward(ssmkit::make_view(tokens.data(), 1, prompt), ssmkit::make_view(stepped.data(), 1, prompt, vocab), ws, &state);
  for (std::size_t t = prompt; t < L; ++t) {
    model.step(ssmkit::make_view(tokens.data() + t, 1), ssmkit::make_view(stepped.data() + t * vocab, 1, vocab), state);
  }
  CHECK(ssm_test::max_rel_error(stepped, logits) <= 1e-12);
}

TEST_CASE("a model saved with the reference's tensor names loads and computes the same", "[mamba][safetensors]") {
  const auto c = small_config();
  const std::size_t vocab = 30;
  const auto model = ssmkit::mamba_model<float>::random(c, vocab, 2, {0.001, 0.1, 1e-4, 1.0, 11});
  namespace st = ssmkit::safetensors;
  std::vector<st::named_tensor<float>> tensors;
  const auto add = [&](const std::string& name, std::vector<std::size_t> shape, const auto& m) {
    tensors.push_back({name, std::move(shape), std::vector<float>(m.data(), m.data() + m.size())});
  };
  ssmkit::row_matrix<float> embedding(Eigen::Index(vocab), Eigen::Index(c.d_model));
  std::vector<std::int32_t> ids(vocab);
  for (std::size_t v = 0; v < vocab; ++v) ids[v] = std::int32_t(v);
  const ssmkit::column_vector<float> ones = ssmkit::column_vector<float>::Ones(Eigen::Index(c.d_model));
  add("backbone.norm_f.weight", {c.d_model}, ones);
  for (std::size_t i = 0; i < 2; ++i) {
    const auto& l = model.layers()[i];
    const auto& w = l.mixer.weights();
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::size_t di = c.d_inner(), n = c.d_state, r = c.resolved_dt_rank();
    add(p + "norm.weight", {c.d_model}, l.norm);
    add(p + "mixer.in_proj.weight", {2 * di, c.d_model}, w.in_proj);
    add(p + "mixer.conv1d.weight", {di, 1, c.d_conv}, w.conv1d_weight);  // PyTorch's 3-d layout
    add(p + "mixer.conv1d.bias", {di}, w.conv1d_bias);
    add(p + "mixer.x_proj.weight", {r + 2 * n, di}, w.x_proj);
    add(p + "mixer.dt_proj.weight", {di, r}, w.dt_proj_weight);
    add(p + "mixer.dt_proj.bias", {di}, w.dt_proj_bias);
    add(p + "mixer.A_log", {di, n}, w.A_log);
    add(p + "mixer.D", {di}, w.D);
    add(p + "mixer.out_proj.weight", {c.d_model, di}, w.out_proj);
  }
  // The embedding, regenerated from the seed as mamba_model::random draws it.
  std::mt19937 gen(11);
  std::normal_distribution<double> normal(0, 0.02);
  for (Eigen::Index i = 0; i < embedding.size(); ++i) embedding.data()[i] = float(normal(gen));
  add("backbone.embedding.weight", {vocab, c.d_model}, embedding);
  const auto path = std::filesystem::temp_directory_path() / "ssmkit_test_mamba.safetensors";
  st::save(path, tensors, {{"format", "pt"}});
  const auto loaded = ssmkit::mamba_model<float>::load(st::file::load(path), c, 2);
  std::filesystem::remove(path);
  std::vector<float> a(vocab * vocab), b(vocab * vocab);
  ssmkit::mamba_model_workspace<float> ws;
  model.forward(ssmkit::make_view(ids, 1, vocab), ssmkit::make_view(a, 1, vocab, vocab), ws);
  loaded.forward(ssmkit::make_view(ids, 1, vocab), ssmkit::make_view(b, 1, vocab, vocab), ws);
  CHECK(a == b);
}

TEST_CASE("the mixer and model validate their inputs", "[mamba][errors]") {
  using ssm_test::error_of;
  const auto c = small_config();
  auto w = ssmkit::mamba_mixer<float>::random(c).weights();
  w.x_proj.resize(3, 3);
  CHECK(error_of([&] { ssmkit::mamba_mixer<float>(c, w); }) == "mamba_mixer: x_proj has shape (3, 3), expected (18, 48)");
  const auto mixer = ssmkit::mamba_mixer<float>::random(c);
  std::vector<float> x(2 * 5 * c.d_model), out(2 * 5 * c.d_model, 7.0f);
  ssmkit::mamba_workspace<float> ws;
  CHECK(error_of([&] { mixer.forward(ssmkit::make_view(x.data(), 2, 5, 20), ssmkit::make_view(out.data(), 2, 5, 20), ws); }) ==
        "mamba_mixer::forward: x has shape (2, 5, 20), expected (2, 5, 24)");
  auto state = mixer.make_state(3);
  CHECK(error_of([&] {
          mixer.forward(ssmkit::make_view(x, 2, 5, c.d_model), ssmkit::make_view(out, 2, 5, c.d_model), ws, &state);
        }) == "mamba_mixer::forward: state is for batch 3, expected 2");
  CHECK(out == std::vector<float>(out.size(), 7.0f));
  const auto model = ssmkit::mamba_model<float>::random(c, 10, 1);
  std::vector<std::int32_t> tokens{1, 10};
  std::vector<float> logits(20);
  ssmkit::mamba_model_workspace<float> mws;
  CHECK(error_of([&] { model.forward(ssmkit::make_view(tokens, 1, 2), ssmkit::make_view(logits, 1, 2, 10), mws); }) ==
        "mamba_model::forward: token 10 at (0, 1) is outside [0, 10)");
}
