// The Mamba-2 mixer: against a plain double reference of the module, prompt + step == forward,
// no allocation in step, safetensors loading, errors.
#include <cmath>
#include <filesystem>
#include <vector>

#include <ssmkit/mamba2.hpp>

#include "allocation_counter.hpp"
#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

ssmkit::mamba2_config small_config() {
  ssmkit::mamba2_config c;
  c.d_model = 16;  // d_inner 32 = 4 heads x 8
  c.d_state = 6;
  c.headdim = 8;
  c.ngroups = 2;
  return c;
}

// mamba2.Mamba2.forward for one sequence, as the module states it, in double. u: (L, d_model).
template <class W>
std::vector<double> reference_mixer(const W& w, const ssmkit::mamba2_config& c, const std::vector<double>& u, std::size_t L) {
  const std::size_t dm = c.d_model, di = c.d_inner(), cd = c.conv_dim(), dp = c.d_in_proj();
  const std::size_t H = c.nheads(), P = c.headdim, G = c.ngroups, N = c.d_state, K = c.d_conv;
  auto at = [](const auto& m, std::size_t i, std::size_t j) { return double(m(Eigen::Index(i), Eigen::Index(j))); };
  auto at1 = [](const auto& v, std::size_t i) { return double(v(Eigen::Index(i))); };
  std::vector<double> zx(L * dp, 0.0), xbc(L * cd), out(L * dm, 0.0);
  for (std::size_t t = 0; t < L; ++t)
    for (std::size_t o = 0; o < dp; ++o)
      for (std::size_t j = 0; j < dm; ++j) zx[t * dp + o] += at(w.in_proj, o, j) * u[t * dm + j];
  for (std::size_t t = 0; t < L; ++t)
    for (std::size_t d = 0; d < cd; ++d) {
      double acc = at1(w.conv1d_bias, d);
      for (std::size_t q = 0; q < K; ++q) {
        const long s = long(t) - long(K - 1) + long(q);
        if (s >= 0) acc += at(w.conv1d_weight, d, q) * zx[std::size_t(s) * dp + di + d];
      }
      xbc[t * cd + d] = acc / (1 + std::exp(-acc));
    }
  std::vector<double> S(H * P * N, 0.0);
  for (std::size_t t = 0; t < L; ++t) {
    std::vector<double> y(di);
    for (std::size_t h = 0; h < H; ++h) {
      const std::size_t g = h / (H / G);
      double dt = zx[t * dp + di + cd + h] + at1(w.dt_bias, h);
      dt = dt > 20 ? dt : std::log1p(std::exp(dt));
      const double decay = std::exp(-dt * std::exp(at1(w.A_log, h)));
      for (std::size_t p = 0; p < P; ++p) {
        const double x = xbc[t * cd + h * P + p];
        double acc = 0;
        for (std::size_t n = 0; n < N; ++n) {
          double& s = S[(h * P + p) * N + n];
          s = decay * s + dt * x * xbc[t * cd + di + g * N + n];
          acc += s * xbc[t * cd + di + G * N + g * N + n];
        }
        y[h * P + p] = acc + at1(w.D, h) * x;
      }
    }
    // RMSNormGated: y * silu(z), normalised per group of d_inner / G.
    const std::size_t group = di / G;
    for (std::size_t g0 = 0; g0 < di; g0 += group) {
      double sum = 0;
      for (std::size_t j = g0; j < g0 + group; ++j) {
        const double z = zx[t * dp + j];
        y[j] *= z / (1 + std::exp(-z));
        sum += y[j] * y[j];
      }
      const double scale = 1 / std::sqrt(sum / double(group) + 1e-5);
      for (std::size_t j = g0; j < g0 + group; ++j) y[j] *= scale * at1(w.norm, j);
    }
    for (std::size_t o = 0; o < dm; ++o)
      for (std::size_t j = 0; j < di; ++j) out[t * dm + o] += at(w.out_proj, o, j) * y[j];
  }
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("the Mamba-2 mixer matches a double reference of the module", "[mamba2]", float, double) {
  using T = TestType;
  const auto c = small_config();
  const std::size_t B = 2, L = 29;
  const auto mixer = ssmkit::mamba2_mixer<T>::random(c, {0.001, 0.1, 1e-4, 1, 16, 3});
  const auto u = ssm_test::uniform<T>(B * L * c.d_model, -1, 1, 4);
  std::vector<T> out(u.size());
  ssmkit::mamba2_workspace<T> ws;
  mixer.forward(ssmkit::make_view(u, B, L, c.d_model), ssmkit::make_view(out, B, L, c.d_model), ws);
  for (std::size_t b = 0; b < B; ++b) {
    const std::vector<double> ub(u.begin() + long(b * L * c.d_model), u.begin() + long((b + 1) * L * c.d_model));
    const auto want = reference_mixer(mixer.weights(), c, ub, L);
    const std::vector<T> got(out.begin() + long(b * L * c.d_model), out.begin() + long((b + 1) * L * c.d_model));
    // Dot products of up to d_in_proj terms and an L-step scan, a few ulp per term, and the
    // normalisation (which divides by a norm that may be small): 16 (d_in_proj + L) u normwise.
    const double eps = std::numeric_limits<T>::epsilon() / 2;
    CHECK(ssm_test::max_rel_error(got, want) <= 16 * double(c.d_in_proj() + L) * eps);
  }
}

TEST_CASE("Mamba-2: forward over a prompt then step equals one forward, with no allocation in step", "[mamba2]") {
  const auto c = small_config();
  const std::size_t B = 2, L = 26, prompt = 9;
  const auto mixer = ssmkit::mamba2_mixer<double>::random(c, {0.001, 0.1, 1e-4, 1, 16, 5});
  const auto u = ssm_test::uniform<double>(B * L * c.d_model, -1, 1, 6);
  std::vector<double> whole(u.size()), parts(u.size());
  ssmkit::mamba2_workspace<double> ws;
  mixer.forward(ssmkit::make_view(u, B, L, c.d_model), ssmkit::make_view(whole, B, L, c.d_model), ws);
  auto state = mixer.make_state(B);
  const auto uv = ssmkit::make_view(u, B, L, c.d_model);
  const auto pv = ssmkit::make_view(parts, B, L, c.d_model);
  mixer.forward(ssmkit::tensor_view<const double, 3>(u.data(), {B, prompt, c.d_model}, uv.strides()),
                ssmkit::tensor_view<double, 3>(parts.data(), {B, prompt, c.d_model}, pv.strides()), ws, &state);
  std::size_t allocations = 0;
  for (std::size_t t = prompt; t < L; ++t) {
    ssm_test::allocation_scope scope;
    mixer.step(ssmkit::tensor_view<const double, 2>(&uv(0, t, 0), {B, c.d_model}, {uv.stride(0), 1}),
               ssmkit::tensor_view<double, 2>(&pv(0, t, 0), {B, c.d_model}, {pv.stride(0), 1}), state, {1});
    allocations += scope.allocations();
  }
  CHECK(allocations == 0);
  CHECK(ssm_test::max_rel_error(parts, whole) <= 1e-12);
}

TEST_CASE("Mamba-2 weights saved with the module's names load and compute the same", "[mamba2][safetensors]") {
  const auto c = small_config();
  const auto mixer = ssmkit::mamba2_mixer<float>::random(c, {0.001, 0.1, 1e-4, 1, 16, 7});
  const auto& w = mixer.weights();
  namespace st = ssmkit::safetensors;
  std::vector<st::named_tensor<float>> t;
  const auto add = [&](const std::string& name, std::vector<std::size_t> shape, const auto& m) {
    t.push_back({"mixer." + name, std::move(shape), std::vector<float>(m.data(), m.data() + m.size())});
  };
  add("in_proj.weight", {c.d_in_proj(), c.d_model}, w.in_proj);
  add("conv1d.weight", {c.conv_dim(), 1, c.d_conv}, w.conv1d_weight);
  add("conv1d.bias", {c.conv_dim()}, w.conv1d_bias);
  add("dt_bias", {c.nheads()}, w.dt_bias);
  add("A_log", {c.nheads()}, w.A_log);
  add("D", {c.nheads()}, w.D);
  add("norm.weight", {c.d_inner()}, w.norm);
  add("out_proj.weight", {c.d_model, c.d_inner()}, w.out_proj);
  const auto loaded = ssmkit::mamba2_mixer<float>::load(st::file::parse(st::serialize(t), "m"), "mixer.", c);
  const auto u = ssm_test::uniform<float>(3 * c.d_model, -1, 1, 8);
  std::vector<float> a(u.size()), b(u.size());
  ssmkit::mamba2_workspace<float> ws;
  mixer.forward(ssmkit::make_view(u, 1, 3, c.d_model), ssmkit::make_view(a, 1, 3, c.d_model), ws);
  loaded.forward(ssmkit::make_view(u, 1, 3, c.d_model), ssmkit::make_view(b, 1, 3, c.d_model), ws);
  CHECK(a == b);
}

TEST_CASE("the Mamba-2 mixer validates its configuration and inputs", "[mamba2][errors]") {
  using ssm_test::error_of;
  auto c = small_config();
  c.ngroups = 3;
  CHECK(error_of([&] { (void)ssmkit::mamba2_mixer<float>::random(c); }) == "mamba2_mixer: ngroups = 3 does not divide nheads = 4");
  c = small_config();
  c.headdim = 5;
  CHECK(error_of([&] { (void)ssmkit::mamba2_mixer<float>::random(c); }) ==
        "mamba2_mixer: d_inner = 32 is not a multiple of headdim = 5");
  const auto mixer = ssmkit::mamba2_mixer<float>::random(small_config());
  std::vector<float> u(2 * 16), out(2 * 16, 7.0f);
  ssmkit::mamba2_workspace<float> ws;
  CHECK(error_of([&] { mixer.forward(ssmkit::make_view(u.data(), 1, 2, 15), ssmkit::make_view(out.data(), 1, 2, 15), ws); }) ==
        "mamba2_mixer::forward: u has shape (1, 2, 15), expected (1, 2, 16)");
  CHECK(out == std::vector<float>(out.size(), 7.0f));
}
