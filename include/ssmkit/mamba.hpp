#pragma once
/// \file mamba.hpp
/// The Mamba-1 mixer (mamba_ssm.modules.mamba_simple.Mamba), its residual block with RMSNorm, and a
/// small language-model stack (MambaLMHeadModel), with a parallel forward and a one-token step.
///
/// One mixer, for token-major x (B, L, d_model), with d_inner = expand · d_model:
///
///     [x | z]  = x W_in^T                               in_proj, no bias: (B, L, 2 d_inner)
///     x        = silu(causal_conv1d(x, conv_w) + conv_b)  depthwise, width d_conv
///     [dt|B|C] = x W_x^T                                x_proj, no bias: dt_rank + 2N columns
///     delta    = dt W_dt^T                              dt_proj weight; its bias is delta_bias
///     y        = selective_scan(x, delta, A = -exp(A_log), B, C, D, z, delta_bias, softplus)
///     out      = y W_out^T                              out_proj, no bias
///
/// A block is `residual += mixer(rmsnorm(residual))` (mamba's Block with the residual in the
/// activations' dtype), and the model is embedding, blocks, a final RMSNorm and a head tied to the
/// embedding. Weight shapes and names follow the PyTorch modules, so a checkpoint's safetensors
/// file loads by name (`backbone.layers.0.mixer.in_proj.weight`, ...).
///
/// Projections are Eigen GEMMs over row blocks split by parallel_for; the conv1d and the scan run
/// on their token-major fast paths. `forward` reuses a caller-owned workspace (no allocation once it
/// has grown to the largest shape); `step` makes no heap allocation (its scratch lives in the state).

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/backend.hpp>
#include <ssmkit/conv1d.hpp>
#include <ssmkit/detail/layers.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/safetensors.hpp>
#include <ssmkit/selective_scan.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// The sizes of a Mamba mixer, with the reference's defaults.
struct mamba_config {
  std::size_t d_model = 0;
  std::size_t d_state = 16;
  std::size_t d_conv = 4;
  std::size_t expand = 2;
  std::size_t dt_rank = 0;  ///< 0: ceil(d_model / 16), the reference's "auto"
  /// The selective scan's fast exp in forward and step (selective_scan_options::fast_exp); off
  /// by default. Not part of the reference's configuration.
  bool fast_exp = false;
  std::size_t d_inner() const noexcept { return expand * d_model; }
  std::size_t resolved_dt_rank() const noexcept { return dt_rank != 0 ? dt_rank : (d_model + 15) / 16; }
};

/// Random initialisation as in the reference module.
struct mamba_init {
  double dt_min = 0.001, dt_max = 0.1, dt_init_floor = 1e-4, dt_scale = 1.0;
  std::uint32_t seed = 0;
};

/// The parameters of one mixer, shaped as the PyTorch module's (row-major).
template <class T>
struct mamba_weights {
  row_matrix<T> in_proj;          ///< (2 d_inner, d_model)
  row_matrix<T> conv1d_weight;    ///< (d_inner, d_conv): PyTorch's (d_inner, 1, d_conv) without the 1
  column_vector<T> conv1d_bias;   ///< (d_inner)
  row_matrix<T> x_proj;           ///< (dt_rank + 2 d_state, d_inner)
  row_matrix<T> dt_proj_weight;   ///< (d_inner, dt_rank)
  column_vector<T> dt_proj_bias;  ///< (d_inner)
  row_matrix<T> A_log;            ///< (d_inner, d_state)
  column_vector<T> D;             ///< (d_inner)
  row_matrix<T> out_proj;         ///< (d_model, d_inner)
};

/// Scratch of mamba_mixer::forward, grown on demand and reused across calls.
template <class T>
struct mamba_workspace {
  std::vector<T> xz, conv, dbl, delta, y;
};

/// The recurrent state of one mixer for `batch` sequences, plus the scratch of `step`.
template <class T>
struct mamba_state {
  std::size_t batch = 0;
  // Every buffer starts on a cache line (aligned_vector), as in mamba2_state.
  aligned_vector<T> conv;                  ///< (B, d_conv - 1, d_inner): the conv's last inputs, channels contiguous
  aligned_vector<T> ssm;                   ///< (B, d_inner, d_state)
  aligned_vector<T> xz, x, dbl, delta, y;  ///< step scratch
};

/// One Mamba-1 mixer. Immutable after construction: forward and step are const and may run on
/// several threads at once with separate workspaces and states.
template <class T, class Arch = default_arch>
class mamba_mixer {
 public:
  /// Takes the weights; throws ssmkit::error naming any weight whose shape disagrees with `config`.
  mamba_mixer(const mamba_config& config, mamba_weights<T> weights) : config_(config), w_(std::move(weights)) {
    detail::require(config.d_model > 0 && config.d_state > 0 && config.expand > 0, "mamba_mixer",
                    "d_model, d_state and expand must be positive, got ", config.d_model, ", ", config.d_state, ", ",
                    config.expand);
    detail::require(config.d_conv >= 1 && config.d_conv <= conv1d_max_width, "mamba_mixer", "d_conv must be 1 to ",
                    conv1d_max_width, ", got ", config.d_conv);
    const std::size_t di = config.d_inner(), n = config.d_state, r = config.resolved_dt_rank();
    detail::check_weight("mamba_mixer", "in_proj", w_.in_proj, 2 * di, config.d_model);
    detail::check_weight("mamba_mixer", "conv1d_weight", w_.conv1d_weight, di, config.d_conv);
    detail::check_weight("mamba_mixer", "conv1d_bias", w_.conv1d_bias, di, 1);
    detail::check_weight("mamba_mixer", "x_proj", w_.x_proj, r + 2 * n, di);
    detail::check_weight("mamba_mixer", "dt_proj_weight", w_.dt_proj_weight, di, r);
    detail::check_weight("mamba_mixer", "dt_proj_bias", w_.dt_proj_bias, di, 1);
    detail::check_weight("mamba_mixer", "A_log", w_.A_log, di, n);
    detail::check_weight("mamba_mixer", "D", w_.D, di, 1);
    detail::check_weight("mamba_mixer", "out_proj", w_.out_proj, config.d_model, di);
    A_ = -w_.A_log.array().exp().matrix();
  }

  /// A mixer initialised like the reference module: S4D-Real A (A_log[d, n] = log(n + 1)),
  /// dt_proj's bias the inverse softplus of a log-uniform dt in [dt_min, dt_max], D = 1, and
  /// PyTorch's default uniform(±1/sqrt(fan_in)) for the linear and conv layers. Reproducible from
  /// init.seed.
  static mamba_mixer random(const mamba_config& config, const mamba_init& init = {}) {
    std::mt19937 gen(init.seed);
    const std::size_t di = config.d_inner(), n = config.d_state, r = config.resolved_dt_rank();
    const auto uniform = [&](Eigen::Index rows, Eigen::Index cols, double bound) {
      std::uniform_real_distribution<double> dist(-bound, bound);
      row_matrix<T> m(rows, cols);
      for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(dist(gen));
      return m;
    };
    const auto I = [](std::size_t v) { return static_cast<Eigen::Index>(v); };
    mamba_weights<T> w;
    w.in_proj = uniform(I(2 * di), I(config.d_model), 1 / std::sqrt(double(config.d_model)));
    w.conv1d_weight = uniform(I(di), I(config.d_conv), 1 / std::sqrt(double(config.d_conv)));
    w.conv1d_bias = uniform(I(di), 1, 1 / std::sqrt(double(config.d_conv)));
    w.x_proj = uniform(I(r + 2 * n), I(di), 1 / std::sqrt(double(di)));
    w.dt_proj_weight = uniform(I(di), I(r), std::pow(double(r), -0.5) * init.dt_scale);
    w.dt_proj_bias.resize(I(di));
    std::uniform_real_distribution<double> unit(0, 1);
    for (std::size_t d = 0; d < di; ++d) {
      double dt = std::exp(unit(gen) * (std::log(init.dt_max) - std::log(init.dt_min)) + std::log(init.dt_min));
      dt = std::max(dt, init.dt_init_floor);
      w.dt_proj_bias(I(d)) = static_cast<T>(dt + std::log(-std::expm1(-dt)));  // softplus^-1(dt)
    }
    w.A_log.resize(I(di), I(n));
    for (std::size_t d = 0; d < di; ++d)
      for (std::size_t j = 0; j < n; ++j) w.A_log(I(d), I(j)) = static_cast<T>(std::log(double(j + 1)));
    w.D = column_vector<T>::Ones(I(di));
    w.out_proj = uniform(I(config.d_model), I(di), 1 / std::sqrt(double(di)));
    return mamba_mixer(config, std::move(w));
  }

  /// Loads the mixer's tensors `<prefix>in_proj.weight`, `<prefix>conv1d.weight`, ... from a
  /// safetensors file (prefix for example "backbone.layers.0.mixer."). conv1d.weight may be
  /// (d_inner, 1, d_conv) as PyTorch saves it, or (d_inner, d_conv).
  static mamba_mixer load(const safetensors::file& file, const std::string& prefix, const mamba_config& config) {
    mamba_weights<T> w;
    const std::size_t di = config.d_inner(), n = config.d_state, r = config.resolved_dt_rank();
    const auto matrix = [&](const std::string& name, std::size_t rows, std::size_t cols) {
      row_matrix<T> m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
      file.read(prefix + name, tensor_view<T, 2>(m.data(), {rows, cols}));
      return m;
    };
    const auto vector = [&](const std::string& name, std::size_t size) {
      column_vector<T> v(static_cast<Eigen::Index>(size));
      file.read(prefix + name, tensor_view<T, 1>(v.data(), {size}));
      return v;
    };
    w.in_proj = matrix("in_proj.weight", 2 * di, config.d_model);
    w.conv1d_weight.resize(static_cast<Eigen::Index>(di), static_cast<Eigen::Index>(config.d_conv));
    if (file.info(prefix + "conv1d.weight").shape.size() == 3) {
      file.read(prefix + "conv1d.weight", tensor_view<T, 3>(w.conv1d_weight.data(), {di, 1, config.d_conv}));
    } else {
      w.conv1d_weight = matrix("conv1d.weight", di, config.d_conv);
    }
    w.conv1d_bias = vector("conv1d.bias", di);
    w.x_proj = matrix("x_proj.weight", r + 2 * n, di);
    w.dt_proj_weight = matrix("dt_proj.weight", di, r);
    w.dt_proj_bias = vector("dt_proj.bias", di);
    w.A_log = matrix("A_log", di, n);
    w.D = vector("D", di);
    w.out_proj = matrix("out_proj.weight", config.d_model, di);
    return mamba_mixer(config, std::move(w));
  }

  const mamba_config& config() const noexcept { return config_; }
  const mamba_weights<T>& weights() const noexcept { return w_; }

  /// A zero state for `batch` sequences, with the step scratch allocated.
  mamba_state<T> make_state(std::size_t batch) const {
    const std::size_t di = config_.d_inner();
    mamba_state<T> s;
    s.batch = batch;
    s.conv.assign(batch * (config_.d_conv - 1) * di, T(0));
    s.ssm.assign(batch * di * config_.d_state, T(0));
    s.xz.resize(batch * 2 * di);
    s.x.resize(batch * di);
    s.dbl.resize(batch * (config_.resolved_dt_rank() + 2 * config_.d_state));
    s.delta.resize(batch * di);
    s.y.resize(batch * di);
    return s;
  }

  /**
   * out = mixer(x) for token-major x (B, L, d_model); out is (B, L, d_model) and must not overlap x.
   * With `state`, the sequence continues from it (conv inputs and SSM state) and it receives the
   * final state, so forward over a prompt followed by step over new tokens equals forward over all.
   * \throws ssmkit::error on shape mismatches; nothing is written then.
   */
  void forward(const_view<T, 3> x, tensor_view<T, 3> out, mamba_workspace<T>& ws, mamba_state<T>* state = nullptr,
               const parallel_options& parallel = {}) const {
    constexpr const char* fn = "mamba_mixer::forward";
    detail::check_data(fn, "x", x);
    detail::check_data(fn, "out", out);
    const std::size_t batch = x.extent(0), length = x.extent(1), dm = config_.d_model;
    const std::size_t di = config_.d_inner(), n = config_.d_state, r = config_.resolved_dt_rank(), k = config_.d_conv;
    detail::check_shape(fn, "x", x, {batch, length, dm});
    detail::check_shape(fn, "out", out, {batch, length, dm});
    detail::check_no_overlap(fn, "out", out, "x", x);
    detail::require(x.stride(2) == 1 && out.stride(2) == 1, fn,
                    "x and out need contiguous channels (stride 1 along d_model), got strides ", x.stride(2), " and ",
                    out.stride(2));
    if (state) {
      detail::require(state->batch == batch, fn, "state is for batch ", state->batch, ", expected ", batch);
    }
    const std::size_t rows = batch * length, width = r + 2 * n;
    if (rows == 0) return;  // no token: nothing to compute, a state is unchanged (and x(b, 0, 0) does not exist)
    ws.xz.resize(rows * 2 * di);
    ws.conv.resize(rows * di);
    ws.dbl.resize(rows * width);
    ws.delta.resize(rows * di);
    ws.y.resize(rows * di);
    // in_proj, row by row of (batch, token): x may be strided across batch and tokens.
    for (std::size_t b = 0; b < batch; ++b) {
      detail::linear_rows(&x(b, 0, 0), static_cast<std::size_t>(x.stride(1)), w_.in_proj,
                          ws.xz.data() + b * length * 2 * di, 2 * di, length, parallel);
    }
    const std::array<std::ptrdiff_t, 3> xz_strides{static_cast<std::ptrdiff_t>(length * 2 * di),
                                                   static_cast<std::ptrdiff_t>(2 * di), 1};
    const tensor_view<const T, 3> x_part(ws.xz.data(), {batch, length, di}, xz_strides);
    const tensor_view<const T, 3> z_part(ws.xz.data() + di, {batch, length, di}, xz_strides);
    conv1d_options<T> conv;
    conv.silu = true;
    conv.parallel = parallel;
    if (state) {
      const tensor_view<T, 3> conv_state = make_view(state->conv.data(), batch, k - 1, di).transposed(1, 2);
      conv.initial_state = conv_state;
      conv.final_state = conv_state;
    }
    causal_conv1d<T, Arch>(x_part, tensor_view<const T, 2>(w_.conv1d_weight.data(), {di, k}),
                           tensor_view<const T, 1>(w_.conv1d_bias.data(), {di}),
                           make_view(ws.conv.data(), batch, length, di), conv);
    detail::linear_rows(ws.conv.data(), di, w_.x_proj, ws.dbl.data(), width, rows, parallel);
    detail::linear_rows(ws.dbl.data(), width, w_.dt_proj_weight, ws.delta.data(), di, rows, parallel);
    scan(ws.conv.data(), ws.delta.data(), ws.dbl.data(), width, z_part, ws.y.data(), batch, length, state, parallel);
    for (std::size_t b = 0; b < batch; ++b) {
      detail::linear_rows(ws.y.data() + b * length * di, di, w_.out_proj, &out(b, 0, 0),
                          static_cast<std::size_t>(out.stride(1)), length, parallel);
    }
  }

  /**
   * One token: out_t = mixer(x_t) for x_t (B, d_model), continuing `state` (updated in place).
   * Equals forward over the tokens one at a time. No heap allocation.
   * \throws ssmkit::error on shape mismatches; nothing is written then.
   */
  void step(const_view<T, 2> x, tensor_view<T, 2> out, mamba_state<T>& state,
            const parallel_options& parallel = {}) const {
    constexpr const char* fn = "mamba_mixer::step";
    const std::size_t batch = state.batch, dm = config_.d_model, di = config_.d_inner(), n = config_.d_state;
    const std::size_t r = config_.resolved_dt_rank(), k = config_.d_conv, width = r + 2 * n;
    detail::check_data(fn, "x", x);
    detail::check_data(fn, "out", out);
    detail::check_shape(fn, "x", x, {batch, dm});
    detail::check_shape(fn, "out", out, {batch, dm});
    detail::check_no_overlap(fn, "out", out, "x", x);
    detail::require(x.stride(1) == 1 && out.stride(1) == 1, fn,
                    "x and out need contiguous channels (stride 1 along d_model), got strides ", x.stride(1), " and ",
                    out.stride(1));
    detail::linear_rows(x.data(), static_cast<std::size_t>(x.stride(0)), w_.in_proj, state.xz.data(), 2 * di, batch,
                        parallel);
    causal_conv1d_update<T, Arch>(
        tensor_view<const T, 2>(state.xz.data(), {batch, di}, {static_cast<std::ptrdiff_t>(2 * di), 1}),
        make_view(state.conv.data(), batch, k - 1, di).transposed(1, 2),
        tensor_view<const T, 2>(w_.conv1d_weight.data(), {di, k}), tensor_view<const T, 1>(w_.conv1d_bias.data(), {di}),
        make_view(state.x.data(), batch, di), true);
    detail::linear_rows(state.x.data(), di, w_.x_proj, state.dbl.data(), width, batch, parallel);
    detail::linear_rows(state.dbl.data(), width, w_.dt_proj_weight, state.delta.data(), di, batch, parallel);
    const auto ld = static_cast<std::ptrdiff_t>(width);
    selective_state_update_options<T, 3> options;
    options.D = tensor_view<const T, 1>(w_.D.data(), {di});
    options.z = tensor_view<const T, 2>(state.xz.data() + di, {batch, di}, {static_cast<std::ptrdiff_t>(2 * di), 1});
    options.dt_bias = tensor_view<const T, 1>(w_.dt_proj_bias.data(), {di});
    options.dt_softplus = true;
    options.fast_exp = config_.fast_exp;
    options.parallel = parallel;
    selective_state_update<T, Arch>(make_view(state.ssm.data(), batch, di, n), make_view(state.x.data(), batch, di),
                                    make_view(state.delta.data(), batch, di),
                                    tensor_view<const T, 2>(A_.data(), {di, n}),
                                    tensor_view<const T, 2>(state.dbl.data() + r, {batch, n}, {ld, 1}),
                                    tensor_view<const T, 2>(state.dbl.data() + r + n, {batch, n}, {ld, 1}),
                                    make_view(state.y.data(), batch, di), options);
    detail::linear_rows(state.y.data(), di, w_.out_proj, out.data(), static_cast<std::size_t>(out.stride(0)), batch,
                        parallel);
  }

 private:
  void scan(const T* u, const T* delta, const T* dbl, std::size_t width, const tensor_view<const T, 3>& z, T* y,
            std::size_t batch, std::size_t length, mamba_state<T>* state, const parallel_options& parallel) const {
    const std::size_t di = config_.d_inner(), n = config_.d_state, r = config_.resolved_dt_rank();
    const auto L = static_cast<std::ptrdiff_t>(length), D = static_cast<std::ptrdiff_t>(di),
               W = static_cast<std::ptrdiff_t>(width);
    // Token-major buffers seen as mamba's (batch, D, L); B and C as variable (batch, N, L).
    const tensor_view<const T, 3> u_view(u, {batch, di, length}, {L * D, 1, D});
    const tensor_view<const T, 3> delta_view(delta, {batch, di, length}, {L * D, 1, D});
    const tensor_view<const T, 3> B(dbl + r, {batch, n, length}, {L * W, 1, W});
    const tensor_view<const T, 3> C(dbl + r + n, {batch, n, length}, {L * W, 1, W});
    selective_scan_options<T> options;
    options.D = tensor_view<const T, 1>(w_.D.data(), {di});
    options.z = z.transposed(1, 2);
    options.delta_bias = tensor_view<const T, 1>(w_.dt_proj_bias.data(), {di});
    options.delta_softplus = true;
    options.fast_exp = config_.fast_exp;
    options.parallel = parallel;
    if (state) {
      options.initial_state = make_view(state->ssm.data(), batch, di, n);
      options.last_state = make_view(state->ssm.data(), batch, di, n);
    }
    selective_scan<T, Arch>(u_view, delta_view, tensor_view<const T, 2>(A_.data(), {di, n}), B, C,
                            tensor_view<T, 3>(y, {batch, di, length}, {L * D, 1, D}), options);
  }

  mamba_config config_;
  mamba_weights<T> w_;
  row_matrix<T> A_;  ///< -exp(A_log)
};

/// Scratch of mamba_model::forward, reused across calls.
template <class T>
struct mamba_model_workspace {
  std::vector<T> hidden, normed, mixed;
  mamba_workspace<T> mixer;
};

/// The recurrent state of a whole model for `batch` sequences, plus the scratch of `step`.
template <class T>
struct mamba_model_state {
  std::size_t batch = 0;
  std::vector<mamba_state<T>> layers;
  std::vector<T> hidden, normed, mixed;
};

/**
 * A Mamba language model (mamba_ssm's MambaLMHeadModel): embedding, `layers` residual blocks
 * `h += mixer(rmsnorm(h))`, a final RMSNorm and a head tied to the embedding.
 * RMSNorm(x) = x / sqrt(mean(x²) + 1e-5) · weight. Immutable after construction.
 */
template <class T, class Arch = default_arch>
class mamba_model {
 public:
  struct layer {
    column_vector<T> norm;  ///< (d_model) RMSNorm weight
    mamba_mixer<T, Arch> mixer;
  };

  /// Takes the parameters; throws ssmkit::error on inconsistent shapes.
  mamba_model(row_matrix<T> embedding, std::vector<layer> layers, column_vector<T> norm_f)
      : embedding_(std::move(embedding)), layers_(std::move(layers)), norm_f_(std::move(norm_f)) {
    detail::require(!layers_.empty(), "mamba_model", "needs at least one layer, got 0");
    const std::size_t dm = layers_.front().mixer.config().d_model;
    detail::require(static_cast<std::size_t>(embedding_.cols()) == dm && embedding_.rows() > 0, "mamba_model",
                    "embedding has shape (", embedding_.rows(), ", ", embedding_.cols(), "), expected (vocab, ", dm,
                    ")");
    for (const auto& l : layers_) {
      detail::require(l.mixer.config().d_model == dm && static_cast<std::size_t>(l.norm.size()) == dm, "mamba_model",
                      "every layer needs d_model = ", dm, ", got a layer with d_model = ", l.mixer.config().d_model,
                      " and a norm of size ", l.norm.size());
    }
    detail::require(static_cast<std::size_t>(norm_f_.size()) == dm, "mamba_model", "norm_f has size ", norm_f_.size(),
                    ", expected ", dm);
  }

  /// A model with random weights (see mamba_mixer::random), embedding N(0, 0.02) as the reference.
  static mamba_model random(const mamba_config& config, std::size_t vocab, std::size_t n_layers, mamba_init init = {}) {
    std::mt19937 gen(init.seed);
    std::normal_distribution<double> normal(0, 0.02);
    row_matrix<T> embedding(static_cast<Eigen::Index>(vocab), static_cast<Eigen::Index>(config.d_model));
    for (Eigen::Index i = 0; i < embedding.size(); ++i) embedding.data()[i] = static_cast<T>(normal(gen));
    std::vector<layer> layers;
    for (std::size_t i = 0; i < n_layers; ++i) {
      init.seed = init.seed * 2654435761u + 1;
      layers.push_back({column_vector<T>::Ones(static_cast<Eigen::Index>(config.d_model)),
                        mamba_mixer<T, Arch>::random(config, init)});
    }
    return mamba_model(std::move(embedding), std::move(layers),
                       column_vector<T>::Ones(static_cast<Eigen::Index>(config.d_model)));
  }

  /// Loads `backbone.embedding.weight`, `backbone.layers.<i>.norm.weight`,
  /// `backbone.layers.<i>.mixer.*` and `backbone.norm_f.weight` (the reference's names).
  static mamba_model load(const safetensors::file& file, const mamba_config& config, std::size_t n_layers) {
    const auto& e = file.info("backbone.embedding.weight");
    detail::require(e.shape.size() == 2, "mamba_model::load", "backbone.embedding.weight has rank ", e.shape.size(),
                    ", expected 2");
    row_matrix<T> embedding(static_cast<Eigen::Index>(e.shape[0]), static_cast<Eigen::Index>(config.d_model));
    file.read("backbone.embedding.weight", tensor_view<T, 2>(embedding.data(), {e.shape[0], config.d_model}));
    const auto vector = [&](const std::string& name) {
      column_vector<T> v(static_cast<Eigen::Index>(config.d_model));
      file.read(name, tensor_view<T, 1>(v.data(), {config.d_model}));
      return v;
    };
    std::vector<layer> layers;
    for (std::size_t i = 0; i < n_layers; ++i) {
      const std::string prefix = "backbone.layers." + std::to_string(i) + ".";
      layers.push_back({vector(prefix + "norm.weight"), mamba_mixer<T, Arch>::load(file, prefix + "mixer.", config)});
    }
    return mamba_model(std::move(embedding), std::move(layers), vector("backbone.norm_f.weight"));
  }

  std::size_t vocab() const noexcept { return static_cast<std::size_t>(embedding_.rows()); }
  std::size_t d_model() const noexcept { return static_cast<std::size_t>(embedding_.cols()); }
  const std::vector<layer>& layers() const noexcept { return layers_; }

  mamba_model_state<T> make_state(std::size_t batch) const {
    mamba_model_state<T> s;
    s.batch = batch;
    for (const auto& l : layers_) s.layers.push_back(l.mixer.make_state(batch));
    s.hidden.resize(batch * d_model());
    s.normed.resize(batch * d_model());
    s.mixed.resize(batch * d_model());
    return s;
  }

  /**
   * logits (B, L, vocab) of tokens (B, L). With `state`, continues it and leaves the final state
   * there, so that step can generate from the end of a prompt.
   * \throws ssmkit::error on shape mismatches or a token outside [0, vocab).
   */
  void forward(const_view<std::int32_t, 2> tokens, tensor_view<T, 3> logits, mamba_model_workspace<T>& ws,
               mamba_model_state<T>* state = nullptr, const parallel_options& parallel = {}) const {
    constexpr const char* fn = "mamba_model::forward";
    const std::size_t batch = tokens.extent(0), length = tokens.extent(1), dm = d_model();
    detail::check_data(fn, "tokens", tokens);
    detail::check_data(fn, "logits", logits);
    detail::check_shape(fn, "logits", logits, {batch, length, vocab()});
    detail::require(logits.stride(2) == 1, fn, "logits need a contiguous vocabulary dimension (stride 1), got stride ",
                    logits.stride(2));
    if (state) detail::require(state->batch == batch, fn, "state is for batch ", state->batch, ", expected ", batch);
    check_tokens(fn, tokens);
    const std::size_t rows = batch * length;
    if (rows == 0) return;  // no token: a state is unchanged (and logits(b, 0, 0) does not exist)
    ws.hidden.resize(rows * dm);
    ws.normed.resize(rows * dm);
    ws.mixed.resize(rows * dm);
    for (std::size_t b = 0; b < batch; ++b)
      for (std::size_t t = 0; t < length; ++t) embed(tokens(b, t), ws.hidden.data() + (b * length + t) * dm);
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      rms_norm(ws.hidden.data(), layers_[i].norm.data(), ws.normed.data(), rows, parallel);
      layers_[i].mixer.forward(make_view(ws.normed.data(), batch, length, dm),
                               make_view(ws.mixed.data(), batch, length, dm), ws.mixer,
                               state ? &state->layers[i] : nullptr, parallel);
      for (std::size_t j = 0; j < rows * dm; ++j) ws.hidden[j] += ws.mixed[j];
    }
    rms_norm(ws.hidden.data(), norm_f_.data(), ws.normed.data(), rows, parallel);
    for (std::size_t b = 0; b < batch; ++b) {
      detail::linear_rows(ws.normed.data() + b * length * dm, dm, embedding_, &logits(b, 0, 0),
                          static_cast<std::size_t>(logits.stride(1)), length, parallel);
    }
  }

  /// logits (B, vocab) of the next token after `tokens` (B), continuing `state`. No heap allocation.
  void step(const_view<std::int32_t, 1> tokens, tensor_view<T, 2> logits, mamba_model_state<T>& state,
            const parallel_options& parallel = {}) const {
    constexpr const char* fn = "mamba_model::step";
    const std::size_t batch = state.batch, dm = d_model();
    detail::check_data(fn, "tokens", tokens);
    detail::check_shape(fn, "tokens", tokens, {batch});
    detail::check_data(fn, "logits", logits);
    detail::check_shape(fn, "logits", logits, {batch, vocab()});
    detail::require(logits.stride(1) == 1, fn, "logits need a contiguous vocabulary dimension (stride 1), got stride ",
                    logits.stride(1));
    check_tokens(fn, tensor_view<const std::int32_t, 2>(tokens.data(), {batch, 1}, {tokens.stride(0), 1}));
    for (std::size_t b = 0; b < batch; ++b) embed(tokens(b), state.hidden.data() + b * dm);
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      rms_norm(state.hidden.data(), layers_[i].norm.data(), state.normed.data(), batch, parallel);
      layers_[i].mixer.step(make_view(state.normed.data(), batch, dm), make_view(state.mixed.data(), batch, dm),
                            state.layers[i], parallel);
      for (std::size_t j = 0; j < batch * dm; ++j) state.hidden[j] += state.mixed[j];
    }
    rms_norm(state.hidden.data(), norm_f_.data(), state.normed.data(), batch, parallel);
    detail::linear_rows(state.normed.data(), dm, embedding_, logits.data(), static_cast<std::size_t>(logits.stride(0)),
                        batch, parallel);
  }

 private:
  void check_tokens(const char* fn, const tensor_view<const std::int32_t, 2>& tokens) const {
    for (std::size_t b = 0; b < tokens.extent(0); ++b)
      for (std::size_t t = 0; t < tokens.extent(1); ++t) {
        const std::int32_t id = tokens(b, t);
        detail::require(id >= 0 && static_cast<std::size_t>(id) < vocab(), fn, "token ", id, " at (", b, ", ", t,
                        ") is outside [0, ", vocab(), ")");
      }
  }
  void embed(std::int32_t id, T* out) const {
    for (std::size_t j = 0; j < d_model(); ++j) out[j] = embedding_(id, static_cast<Eigen::Index>(j));
  }
  void rms_norm(const T* x, const T* weight, T* y, std::size_t rows, const parallel_options& parallel) const {
    detail::rms_norm_rows<T>(x, nullptr, weight, y, rows, d_model(), d_model(), parallel);
  }

  row_matrix<T> embedding_;  ///< (vocab, d_model), also the head
  std::vector<layer> layers_;
  column_vector<T> norm_f_;
};

}  // namespace ssmkit
