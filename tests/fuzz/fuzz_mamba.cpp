// libFuzzer target: the Mamba blocks (mamba.hpp, mamba2.hpp). The bytes choose a precision (float
// or double) and one of
//   - a Mamba-1 mixer from a fuzzed config (d_model, d_state, d_conv, expand and dt_rank, zero and
//     too large included) and a fuzzed init, run on (B, L, d_model) inputs;
//   - a Mamba-2 mixer likewise (headdim and ngroups that do or do not divide, dt limits);
//   - the residual stack mamba_model (vocab, layers, token ids inside and outside [0, vocab));
//   - loading: a mixer's or a model's tensors serialised to a safetensors buffer, then mutated
//     (a tensor dropped, renamed or reshaped, conv1d.weight saved 3-D as PyTorch does, or bytes
//     of the buffer overwritten by fuzz bytes), loaded through mamba_mixer::load,
//     mamba2_mixer::load or mamba_model::load; and the raw fuzz bytes loaded as a file.
// Properties:
//   - construction throws ssmkit::error exactly for an invalid config (an empty dt_limit: forward
//     throws); a wrong shape (x or out, a state for another batch, a token outside the vocabulary)
//     throws and leaves the output untouched;
//   - with tame inputs: step token by token equals forward, forward over a prefix with a state
//     then over the rest equals one forward, and the scalar backend agrees with the default one,
//     all to 1e-4 normwise in float and 1e-10 in double (dot products of length <= 2 d_inner and
//     a scan of L <= 12 steps, each a few ulp per term: test_mamba.cpp measures and checks 1e-5
//     for its fixed configs, and a fuzzed config can be worse conditioned by a small factor);
//   - a buffer that is merely re-laid-out (none dropped or reshaped) loads to the same weights,
//     bit for bit, so the loaded block computes exactly the same output; a dropped, renamed or
//     reshaped tensor throws ssmkit::error; overwritten bytes load or throw, never crash;
//   - with wild inputs (NaN, inf, huge; float only, see LLVMFuzzerTestOneInput) every call returns
//     or throws (ASan, UBSan).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ssmkit/mamba.hpp>
#include <ssmkit/mamba2.hpp>
#include <ssmkit/safetensors.hpp>

#include "fuzz_input.hpp"

namespace {

namespace st = ssmkit::safetensors;

template <class T>
double block_tolerance() {
  return std::is_same_v<T, float> ? 1e-4 : 1e-10;
}

/// forward, step token by token, and forward in two parts with a state, for a mixer type M
/// (mamba_mixer or mamba2_mixer) whose forward and step take the same arguments.
template <class T, class M, class Workspace, class MS, class Scalar>
void check_mixer(ssm_fuzz::fuzz_input& in, const M& mixer, const Scalar& scalar_mixer, std::size_t dm) {
  const T sentinel = T(-12345.5);
  const std::size_t B = in.size_in(1, 2), L = in.size_in(0, 12);
  const std::size_t wrong = in.byte() % 8;  // 1: x one channel too many, 2: out one token too long, 3: state for B + 1
  const auto x = in.values<T>(B * L * (dm + 1), -2, 2);
  std::vector<T> out(B * (L + 1) * dm, sentinel);
  Workspace ws;
  MS wrong_state = mixer.make_state(B + 1);
  const bool ok = ssm_fuzz::run_checked<T>(
      [&] {
        mixer.forward(ssmkit::make_view(x.data(), B, L, wrong == 1 ? dm + 1 : dm),
                      ssmkit::make_view(out.data(), B, wrong == 2 ? L + 1 : L, dm), ws,
                      wrong == 3 ? &wrong_state : nullptr);
      },
      {&out}, sentinel);
  if (ok != (wrong < 1 || wrong > 3)) std::abort();  // a wrong shape accepted, or a right one rejected
  if (!ok) return;
  out.resize(B * L * dm);
  // Step over the tokens from a zero state.
  MS state = mixer.make_state(B);
  std::vector<T> stepped(out.size(), sentinel), out_t(B * dm);
  for (std::size_t t = 0; t < L; ++t) {
    mixer.step(ssmkit::tensor_view<const T, 2>(x.data() + t * dm, {B, dm}, {std::ptrdiff_t(L * dm), 1}),
               ssmkit::make_view(out_t.data(), B, dm), state);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t j = 0; j < dm; ++j) stepped[(b * L + t) * dm + j] = out_t[b * dm + j];
  }
  // A step with a state for another batch is rejected.
  std::vector<T> out_wrong(B * dm, sentinel);
  if (ssm_fuzz::run_checked<T>(
          [&] {
            mixer.step(ssmkit::make_view(x.data(), B, dm), ssmkit::make_view(out_wrong.data(), B, dm), wrong_state);
          },
          {&out_wrong}, sentinel)) {
    std::abort();
  }
  // Two parts: forward over [0, cut) with a state, then over [cut, L).
  const std::size_t cut = L == 0 ? 0 : in.size_in(0, L);
  MS part_state = mixer.make_state(B);
  std::vector<T> parts(out.size(), sentinel);
  const auto sub = [&](const T* p, std::size_t t0, std::size_t len) {
    return ssmkit::tensor_view<const T, 3>(p + t0 * dm, {B, len, dm}, {std::ptrdiff_t(L * dm), std::ptrdiff_t(dm), 1});
  };
  const auto sub_out = [&](std::size_t t0, std::size_t len) {
    return ssmkit::tensor_view<T, 3>(parts.data() + t0 * dm, {B, len, dm}, {std::ptrdiff_t(L * dm), std::ptrdiff_t(dm), 1});
  };
  mixer.forward(sub(x.data(), 0, cut), sub_out(0, cut), ws, &part_state);
  mixer.forward(sub(x.data(), cut, L - cut), sub_out(cut, L - cut), ws, &part_state);
  std::vector<T> scalar_out(out.size(), sentinel);
  Workspace scalar_ws;
  scalar_mixer.forward(ssmkit::make_view(x.data(), B, L, dm), ssmkit::make_view(scalar_out.data(), B, L, dm), scalar_ws);
  if (!in.tame()) return;
  const double tolerance = block_tolerance<T>();
  ssm_fuzz::require_agreement(stepped, out, tolerance);
  ssm_fuzz::require_agreement(parts, out, tolerance);
  ssm_fuzz::require_agreement(scalar_out, out, tolerance);
}

template <class T>
void fuzz_mamba1(ssm_fuzz::fuzz_input& in) {
  ssmkit::mamba_config c;
  c.d_model = in.size_in(0, 8), c.d_state = in.size_in(0, 6), c.d_conv = in.size_in(0, 9);
  c.expand = in.size_in(0, 3), c.dt_rank = in.size_in(0, 4), c.fast_exp = in.byte() % 4 == 0;
  ssmkit::mamba_init init;
  init.seed = in.byte();
  init.dt_min = in.value<double>(1e-4, 0.01);
  init.dt_max = in.value<double>(0.01, 0.2);
  const bool valid = c.d_model > 0 && c.d_state > 0 && c.expand > 0 && c.d_conv >= 1 && c.d_conv <= 8;
  std::optional<ssmkit::mamba_mixer<T>> mixer;
  try {
    mixer.emplace(ssmkit::mamba_mixer<T>::random(c, init));
  } catch (const ssmkit::error&) {
    if (valid) std::abort();
    return;
  }
  if (!valid) std::abort();
  const auto scalar_mixer = ssmkit::mamba_mixer<T, ssmkit::scalar>::random(c, init);
  check_mixer<T, ssmkit::mamba_mixer<T>, ssmkit::mamba_workspace<T>, ssmkit::mamba_state<T>>(in, *mixer, scalar_mixer,
                                                                                            c.d_model);
}

template <class T>
void fuzz_mamba2(ssm_fuzz::fuzz_input& in) {
  ssmkit::mamba2_config c;
  c.d_model = in.size_in(0, 8), c.d_state = in.size_in(0, 8), c.d_conv = in.size_in(0, 9);
  c.expand = in.size_in(1, 2), c.headdim = in.size_in(0, 8), c.ngroups = in.size_in(0, 3);
  if (in.flag()) c.dt_min_limit = in.value<double>(0, 0.01);
  if (in.flag()) c.dt_max_limit = in.value<double>(0.05, 1);
  ssmkit::mamba2_init init;
  init.seed = in.byte();
  init.A_max = in.value<double>(1, 16);
  const bool valid = c.d_model > 0 && c.d_state > 0 && c.headdim > 0 && c.ngroups > 0 && c.d_conv >= 1 &&
                     c.d_conv <= 8 && c.d_inner() % c.headdim == 0 && c.nheads() % c.ngroups == 0;
  std::optional<ssmkit::mamba2_mixer<T>> mixer;
  try {
    mixer.emplace(ssmkit::mamba2_mixer<T>::random(c, init));
  } catch (const ssmkit::error&) {
    if (valid) std::abort();
    return;
  }
  if (!valid) std::abort();
  // The dt_limit is checked by forward and step (ssd's "is not an interval"), not by construction.
  const T dt_min = static_cast<T>(c.dt_min_limit), dt_max = static_cast<T>(c.dt_max_limit);
  if (dt_min > dt_max || std::isnan(dt_min) || std::isnan(dt_max)) {
    std::vector<T> u(c.d_model), out(c.d_model);
    ssmkit::mamba2_workspace<T> ws;
    try {
      mixer->forward(ssmkit::make_view(u.data(), 1, 1, c.d_model), ssmkit::make_view(out.data(), 1, 1, c.d_model), ws);
    } catch (const ssmkit::error&) {
      return;
    }
    std::abort();  // an empty dt_limit accepted
  }
  const auto scalar_mixer = ssmkit::mamba2_mixer<T, ssmkit::scalar>::random(c, init);
  check_mixer<T, ssmkit::mamba2_mixer<T>, ssmkit::mamba2_workspace<T>, ssmkit::mamba2_state<T>>(in, *mixer, scalar_mixer,
                                                                                               c.d_model);
}

ssmkit::mamba_config small_mamba_config(ssm_fuzz::fuzz_input& in) {
  ssmkit::mamba_config c;
  c.d_model = in.size_in(1, 6), c.d_state = in.size_in(1, 4), c.d_conv = in.size_in(1, 4), c.expand = in.size_in(1, 2);
  return c;
}

template <class T>
void fuzz_model(ssm_fuzz::fuzz_input& in) {
  const T sentinel = T(-12345.5);
  const auto c = small_mamba_config(in);
  const std::size_t vocab = in.size_in(0, 10), layers = in.size_in(0, 2);
  ssmkit::mamba_init init;
  init.seed = in.byte();
  std::optional<ssmkit::mamba_model<T>> model;
  try {
    model.emplace(ssmkit::mamba_model<T>::random(c, vocab, layers, init));
  } catch (const ssmkit::error&) {
    if (vocab > 0 && layers > 0) std::abort();
    return;
  }
  if (vocab == 0 || layers == 0) std::abort();
  const std::size_t B = in.size_in(1, 2), L = in.size_in(0, 8);
  std::vector<std::int32_t> tokens(B * L);
  bool bad_token = false;
  for (auto& id : tokens) {
    const std::uint8_t v = in.byte();
    id = v == 255 ? -1 : static_cast<std::int32_t>(v % (vocab + (in.tame() ? 0 : 1)));
    bad_token = bad_token || id < 0 || std::size_t(id) >= vocab;
  }
  std::vector<T> logits(B * L * vocab, sentinel);
  ssmkit::mamba_model_workspace<T> ws;
  const bool ok = ssm_fuzz::run_checked<T>(
      [&] {
        model->forward(ssmkit::make_view(tokens.data(), B, L), ssmkit::make_view(logits.data(), B, L, vocab), ws);
      },
      {&logits}, sentinel);
  if (ok == bad_token) std::abort();  // a bad token accepted, or good ones rejected
  if (!ok) return;
  auto state = model->make_state(B);
  std::vector<T> stepped(logits.size(), sentinel), logits_t(B * vocab);
  std::vector<std::int32_t> tokens_t(B);
  for (std::size_t t = 0; t < L; ++t) {
    for (std::size_t b = 0; b < B; ++b) tokens_t[b] = tokens[b * L + t];
    model->step(ssmkit::make_view(tokens_t.data(), B), ssmkit::make_view(logits_t.data(), B, vocab), state);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t v = 0; v < vocab; ++v) stepped[(b * L + t) * vocab + v] = logits_t[b * vocab + v];
  }
  ssm_fuzz::require_agreement(stepped, logits, block_tolerance<T>());
  const auto scalar_model = ssmkit::mamba_model<T, ssmkit::scalar>::random(c, vocab, layers, init);
  std::vector<T> scalar_logits(logits.size(), sentinel);
  scalar_model.forward(ssmkit::make_view(tokens.data(), B, L), ssmkit::make_view(scalar_logits.data(), B, L, vocab), ws);
  ssm_fuzz::require_agreement(scalar_logits, logits, block_tolerance<T>());
}

/// Appends tensor `name` with `shape` and row-major values from `data`.
template <class T>
void add(std::vector<st::named_tensor<T>>& list, const std::string& name, std::vector<std::size_t> shape, const T* data) {
  std::size_t count = 1;
  for (const auto e : shape) count *= e;
  list.push_back({name, std::move(shape), std::vector<T>(data, data + count)});
}

template <class T>
void add_mixer(std::vector<st::named_tensor<T>>& list, const std::string& p, const ssmkit::mamba_weights<T>& w,
               const ssmkit::mamba_config& c) {
  const std::size_t di = c.d_inner(), n = c.d_state, r = c.resolved_dt_rank();
  add(list, p + "in_proj.weight", {2 * di, c.d_model}, w.in_proj.data());
  add(list, p + "conv1d.weight", {di, c.d_conv}, w.conv1d_weight.data());
  add(list, p + "conv1d.bias", {di}, w.conv1d_bias.data());
  add(list, p + "x_proj.weight", {r + 2 * n, di}, w.x_proj.data());
  add(list, p + "dt_proj.weight", {di, r}, w.dt_proj_weight.data());
  add(list, p + "dt_proj.bias", {di}, w.dt_proj_bias.data());
  add(list, p + "A_log", {di, n}, w.A_log.data());
  add(list, p + "D", {di}, w.D.data());
  add(list, p + "out_proj.weight", {c.d_model, di}, w.out_proj.data());
}

template <class T>
void add_mixer2(std::vector<st::named_tensor<T>>& list, const std::string& p, const ssmkit::mamba2_weights<T>& w,
                const ssmkit::mamba2_config& c) {
  const std::size_t h = c.nheads();
  add(list, p + "in_proj.weight", {c.d_in_proj(), c.d_model}, w.in_proj.data());
  add(list, p + "conv1d.weight", {c.conv_dim(), c.d_conv}, w.conv1d_weight.data());
  add(list, p + "conv1d.bias", {c.conv_dim()}, w.conv1d_bias.data());
  add(list, p + "dt_bias", {h}, w.dt_bias.data());
  add(list, p + "A_log", {h}, w.A_log.data());
  add(list, p + "D", {h}, w.D.data());
  add(list, p + "norm.weight", {c.d_inner()}, w.norm.data());
  add(list, p + "out_proj.weight", {c.d_model, c.d_inner()}, w.out_proj.data());
}

/// Mutates `list` and serialises it: 0 none, 1 conv1d weights saved 3-D (d, 1, k), 2 one tensor
/// dropped, 3 one renamed, 4 one with its last dimension one longer, 5 bytes overwritten by fuzz
/// bytes. Returns the bytes; `must_load` says whether every tensor is still there as the loader
/// expects it (0, 1), `must_throw` whether one is missing or misshapen (2, 3, 4).
template <class T>
std::string mutate_and_serialize(ssm_fuzz::fuzz_input& in, std::vector<st::named_tensor<T>> list, bool& must_load,
                                 bool& must_throw) {
  const std::size_t mutation = in.byte() % 6, victim = in.size_in(0, list.size() - 1);
  must_load = mutation <= 1;
  must_throw = mutation >= 2 && mutation <= 4;
  if (mutation == 1) {
    for (auto& t : list) {
      if (t.name.size() >= 13 && t.name.compare(t.name.size() - 13, 13, "conv1d.weight") == 0) {
        t.shape = {t.shape[0], 1, t.shape[1]};
      }
    }
  } else if (mutation == 2) {
    list.erase(list.begin() + std::ptrdiff_t(victim));
  } else if (mutation == 3) {
    list[victim].name += "_";
  } else if (mutation == 4) {
    auto& t = list[victim];
    t.shape.back() += 1;
    std::size_t count = 1;
    for (const auto e : t.shape) count *= e;
    t.values.resize(count, T(1));
  }
  std::string bytes = st::serialize(list);
  if (mutation == 5) {
    for (std::size_t i = in.size_in(1, 4); i > 0; --i) bytes[in.size_in(0, bytes.size() - 1)] = char(in.byte());
  }
  return bytes;
}

/// Runs a loaded block and the original on the same input: both must give the same bits.
template <class T, class M, class Workspace>
void same_output(const M& loaded, const M& original, std::size_t dm) {
  const std::size_t B = 2, L = 5;
  std::vector<T> x(B * L * dm);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(std::sin(double(i) + 0.5));
  std::vector<T> a(x.size()), b(x.size());
  Workspace ws;
  loaded.forward(ssmkit::make_view(x.data(), B, L, dm), ssmkit::make_view(a.data(), B, L, dm), ws);
  original.forward(ssmkit::make_view(x.data(), B, L, dm), ssmkit::make_view(b.data(), B, L, dm), ws);
  ssm_fuzz::require_agreement(a, b, 0);
}

template <class T>
void fuzz_load(ssm_fuzz::fuzz_input& in) {
  const std::size_t kind = in.byte() % 4;
  bool must_load = false, must_throw = false;
  const std::string prefix = in.flag() ? "backbone.layers.0.mixer." : "";
  if (kind == 0) {
    const auto c = small_mamba_config(in);
    const auto original = ssmkit::mamba_mixer<T>::random(c, {0.001, 0.1, 1e-4, 1.0, in.byte()});
    std::vector<st::named_tensor<T>> list;
    add_mixer(list, prefix, original.weights(), c);
    const std::string bytes = mutate_and_serialize(in, list, must_load, must_throw);
    try {
      const auto loaded = ssmkit::mamba_mixer<T>::load(st::file::parse(bytes, "fuzz"), prefix, c);
      if (must_throw) std::abort();
      if (must_load) same_output<T, ssmkit::mamba_mixer<T>, ssmkit::mamba_workspace<T>>(loaded, original, c.d_model);
    } catch (const ssmkit::error&) {
      if (must_load) std::abort();
    }
  } else if (kind == 1) {
    ssmkit::mamba2_config c;
    c.d_model = in.size_in(1, 6), c.d_state = in.size_in(1, 4), c.headdim = in.size_in(1, 3), c.ngroups = 1;
    c.expand = c.headdim;  // d_inner = headdim * d_model: a multiple of headdim
    const auto original = ssmkit::mamba2_mixer<T>::random(c, {0.001, 0.1, 1e-4, 1, 16, in.byte()});
    std::vector<st::named_tensor<T>> list;
    add_mixer2(list, prefix, original.weights(), c);
    const std::string bytes = mutate_and_serialize(in, list, must_load, must_throw);
    try {
      const auto loaded = ssmkit::mamba2_mixer<T>::load(st::file::parse(bytes, "fuzz"), prefix, c);
      if (must_throw) std::abort();
      if (must_load) same_output<T, ssmkit::mamba2_mixer<T>, ssmkit::mamba2_workspace<T>>(loaded, original, c.d_model);
    } catch (const ssmkit::error&) {
      if (must_load) std::abort();
    }
  } else if (kind == 2) {
    // A model from parts: the constructor and load must agree.
    const auto c = small_mamba_config(in);
    const std::size_t vocab = in.size_in(1, 6), n_layers = in.size_in(1, 2);
    const auto I = [](std::size_t v) { return static_cast<Eigen::Index>(v); };
    ssmkit::row_matrix<T> embedding(I(vocab), I(c.d_model));
    for (Eigen::Index i = 0; i < embedding.size(); ++i) embedding.data()[i] = in.value<T>(-1, 1);
    ssmkit::column_vector<T> norm_f(I(c.d_model));
    for (Eigen::Index i = 0; i < norm_f.size(); ++i) norm_f.data()[i] = in.value<T>(0.5, 1.5);
    std::vector<st::named_tensor<T>> list;
    add(list, "backbone.embedding.weight", {vocab, c.d_model}, embedding.data());
    std::vector<typename ssmkit::mamba_model<T>::layer> layers;
    for (std::size_t i = 0; i < n_layers; ++i) {
      ssmkit::column_vector<T> norm(I(c.d_model));
      for (Eigen::Index j = 0; j < norm.size(); ++j) norm.data()[j] = in.value<T>(0.5, 1.5);
      auto mixer = ssmkit::mamba_mixer<T>::random(c, {0.001, 0.1, 1e-4, 1.0, std::uint32_t(i + 17 * in.byte())});
      const std::string p = "backbone.layers." + std::to_string(i) + ".";
      add(list, p + "norm.weight", {c.d_model}, norm.data());
      add_mixer(list, p + "mixer.", mixer.weights(), c);
      layers.push_back({std::move(norm), std::move(mixer)});
    }
    add(list, "backbone.norm_f.weight", {c.d_model}, norm_f.data());
    const ssmkit::mamba_model<T> original(embedding, std::move(layers), norm_f);
    const std::string bytes = mutate_and_serialize(in, list, must_load, must_throw);
    try {
      const auto loaded = ssmkit::mamba_model<T>::load(st::file::parse(bytes, "fuzz"), c, n_layers);
      if (must_throw) std::abort();
      if (must_load) {
        const std::size_t B = 1, L = 4;
        std::vector<std::int32_t> tokens(B * L);
        for (std::size_t t = 0; t < L; ++t) tokens[t] = std::int32_t(t % vocab);
        std::vector<T> a(B * L * vocab), b(a.size());
        ssmkit::mamba_model_workspace<T> ws;
        loaded.forward(ssmkit::make_view(tokens.data(), B, L), ssmkit::make_view(a.data(), B, L, vocab), ws);
        original.forward(ssmkit::make_view(tokens.data(), B, L), ssmkit::make_view(b.data(), B, L, vocab), ws);
        ssm_fuzz::require_agreement(a, b, 0);
      }
    } catch (const ssmkit::error&) {
      if (must_load) std::abort();
    }
  } else {
    // The rest of the input as a file, loaded as a small mixer of each kind.
    std::string bytes;
    for (std::size_t i = in.size_in(0, 2000); i > 0; --i) bytes += char(in.byte());
    ssmkit::mamba_config c;
    c.d_model = 2, c.d_state = 2, c.d_conv = 2, c.expand = 1;
    ssmkit::mamba2_config c2;
    c2.d_model = 2, c2.d_state = 2, c2.d_conv = 2, c2.expand = 1, c2.headdim = 1;
    try {
      const auto f = st::file::parse(bytes, "fuzz");
      try {
        (void)ssmkit::mamba_mixer<T>::load(f, "", c);
      } catch (const ssmkit::error&) {
      }
      (void)ssmkit::mamba2_mixer<T>::load(f, "", c2);
    } catch (const ssmkit::error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ssm_fuzz::fuzz_input in(data, size);
  const std::uint8_t head = in.byte();
  const bool single = (head & 8) == 0;
  // Wild values in both precisions. (Double once reached xsimd 8.1's AVX-512 exp, whose lane-by-lane
  // int64 cast of a NaN or huge argument is undefined behaviour; detail::exp is ssmkit's own there now.)
  in.set_tame((head & 4) == 0);
  switch (head % 4) {
    case 0: single ? fuzz_mamba1<float>(in) : fuzz_mamba1<double>(in); break;
    case 1: single ? fuzz_mamba2<float>(in) : fuzz_mamba2<double>(in); break;
    case 2: single ? fuzz_model<float>(in) : fuzz_model<double>(in); break;
    default: single ? fuzz_load<float>(in) : fuzz_load<double>(in); break;
  }
  return 0;
}
