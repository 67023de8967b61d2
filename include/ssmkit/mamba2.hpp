#pragma once
/// \file mamba2.hpp
/// The Mamba-2 mixer (mamba_ssm.modules.mamba2.Mamba2, without the optional MLP branch), with a
/// parallel forward and a one-token step.
///
/// For token-major u (B, L, d_model), d_inner = expand · d_model = H · P, conv_dim = d_inner + 2 G N:
///
///     [z | xBC | dt] = u W_inᵀ                     in_proj, no bias: d_inner + conv_dim + H columns
///     xBC            = silu(causal_conv1d(xBC) + conv_b)
///     [x | B | C]    = xBC                         x (B, L, H, P); B, C (B, L, G, N)
///     y              = ssd_scan(x, dt, A = -exp(A_log), B, C, D, dt_bias, softplus, dt_limit)
///     y              = RMSNormGated(y, z)          y·silu(z), then RMSNorm over groups of d_inner / G
///     out            = y W_outᵀ                    out_proj, no bias
///
/// Weight names and shapes follow the PyTorch module, so a checkpoint's tensors
/// (`in_proj.weight`, `conv1d.weight`, `conv1d.bias`, `dt_bias`, `A_log`, `D`, `norm.weight`,
/// `out_proj.weight`) load by name. `forward` reuses a caller-owned workspace; `step` makes no heap
/// allocation (its scratch lives in the state).

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <ssmkit/backend.hpp>
#include <ssmkit/conv1d.hpp>
#include <ssmkit/detail/layers.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/safetensors.hpp>
#include <ssmkit/ssd.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// The sizes of a Mamba-2 mixer, with the reference's defaults.
struct mamba2_config {
  std::size_t d_model = 0;
  std::size_t d_state = 128;
  std::size_t d_conv = 4;
  std::size_t expand = 2;
  std::size_t headdim = 64;
  std::size_t ngroups = 1;
  double dt_min_limit = 0.0;  ///< dt_limit: dt is clamped to [dt_min_limit, dt_max_limit] after softplus
  double dt_max_limit = std::numeric_limits<double>::infinity();
  std::size_t d_inner() const noexcept { return expand * d_model; }
  std::size_t nheads() const noexcept { return headdim ? d_inner() / headdim : 0; }
  std::size_t conv_dim() const noexcept { return d_inner() + 2 * ngroups * d_state; }
  std::size_t d_in_proj() const noexcept { return d_inner() + conv_dim() + nheads(); }
};

/// Random initialisation as in the reference module.
struct mamba2_init {
  double dt_min = 0.001, dt_max = 0.1, dt_init_floor = 1e-4, A_min = 1, A_max = 16;
  std::uint32_t seed = 0;
};

/// The parameters of one Mamba-2 mixer, shaped as the PyTorch module's (row-major).
template <class T>
struct mamba2_weights {
  row_matrix<T> in_proj;         ///< (d_in_proj, d_model)
  row_matrix<T> conv1d_weight;   ///< (conv_dim, d_conv): PyTorch's (conv_dim, 1, d_conv) without the 1
  column_vector<T> conv1d_bias;  ///< (conv_dim)
  column_vector<T> dt_bias;      ///< (H)
  column_vector<T> A_log;        ///< (H)
  column_vector<T> D;            ///< (H)
  column_vector<T> norm;         ///< (d_inner): RMSNormGated weight
  row_matrix<T> out_proj;        ///< (d_model, d_inner)
};

/// Scratch of mamba2_mixer::forward, grown on demand and reused.
template <class T>
struct mamba2_workspace {
  std::vector<T> zxbcdt, xbc, y;
  ssd_workspace<T> ssd;
};

/// The recurrent state of one Mamba-2 mixer for `batch` sequences, plus the scratch of `step`.
template <class T>
struct mamba2_state {
  std::size_t batch = 0;
  // Every buffer starts on a cache line (aligned_vector): the decode step reads and writes all of
  // the state, and rows split over two lines cost it 1.15x.
  aligned_vector<T> conv;  ///< (B, d_conv - 1, conv_dim), channels contiguous
  aligned_vector<T> ssm;   ///< (B, H, P, N)
  aligned_vector<T> zxbcdt, xbc, y;
};

/// One Mamba-2 mixer. Immutable after construction; forward and step are const.
template <class T, class Arch = default_arch>
class mamba2_mixer {
 public:
  mamba2_mixer(const mamba2_config& config, mamba2_weights<T> weights) : config_(config), w_(std::move(weights)) {
    detail::require(config.d_model > 0 && config.d_state > 0 && config.headdim > 0 && config.ngroups > 0,
                    "mamba2_mixer", "d_model, d_state, headdim and ngroups must be positive, got ", config.d_model, ", ",
                    config.d_state, ", ", config.headdim, ", ", config.ngroups);
    detail::require(config.d_inner() % config.headdim == 0, "mamba2_mixer", "d_inner = ", config.d_inner(),
                    " is not a multiple of headdim = ", config.headdim);
    detail::require(config.nheads() % config.ngroups == 0, "mamba2_mixer", "ngroups = ", config.ngroups,
                    " does not divide nheads = ", config.nheads());
    detail::require(config.d_conv >= 1 && config.d_conv <= conv1d_max_width, "mamba2_mixer", "d_conv must be 1 to ",
                    conv1d_max_width, ", got ", config.d_conv);
    const std::size_t h = config.nheads();
    detail::check_weight("mamba2_mixer", "in_proj", w_.in_proj, config.d_in_proj(), config.d_model);
    detail::check_weight("mamba2_mixer", "conv1d_weight", w_.conv1d_weight, config.conv_dim(), config.d_conv);
    detail::check_weight("mamba2_mixer", "conv1d_bias", w_.conv1d_bias, config.conv_dim(), 1);
    detail::check_weight("mamba2_mixer", "dt_bias", w_.dt_bias, h, 1);
    detail::check_weight("mamba2_mixer", "A_log", w_.A_log, h, 1);
    detail::check_weight("mamba2_mixer", "D", w_.D, h, 1);
    detail::check_weight("mamba2_mixer", "norm", w_.norm, config.d_inner(), 1);
    detail::check_weight("mamba2_mixer", "out_proj", w_.out_proj, config.d_model, config.d_inner());
    A_ = -w_.A_log.array().exp().matrix();
  }

  /// A mixer initialised like the reference: A uniform in [A_min, A_max] (A_log = log A), dt_bias
  /// the inverse softplus of a log-uniform dt in [dt_min, dt_max], D = 1, norm = 1, and PyTorch's
  /// default uniform(±1/sqrt(fan_in)) for the linear and conv layers. Reproducible from init.seed.
  static mamba2_mixer random(const mamba2_config& config, const mamba2_init& init = {}) {
    std::mt19937 gen(init.seed);
    const auto I = [](std::size_t v) { return static_cast<Eigen::Index>(v); };
    const auto uniform = [&](std::size_t rows, std::size_t cols, double lo, double hi) {
      std::uniform_real_distribution<double> dist(lo, hi);
      row_matrix<T> m(I(rows), I(cols));
      for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(dist(gen));
      return m;
    };
    const std::size_t h = config.nheads();
    mamba2_weights<T> w;
    const double in_bound = 1 / std::sqrt(double(config.d_model)), conv_bound = 1 / std::sqrt(double(config.d_conv));
    w.in_proj = uniform(config.d_in_proj(), config.d_model, -in_bound, in_bound);
    w.conv1d_weight = uniform(config.conv_dim(), config.d_conv, -conv_bound, conv_bound);
    w.conv1d_bias = uniform(config.conv_dim(), 1, -conv_bound, conv_bound);
    std::uniform_real_distribution<double> unit(0, 1);
    w.dt_bias.resize(I(h));
    w.A_log.resize(I(h));
    for (std::size_t i = 0; i < h; ++i) {
      double dt = std::exp(unit(gen) * (std::log(init.dt_max) - std::log(init.dt_min)) + std::log(init.dt_min));
      dt = std::max(dt, init.dt_init_floor);
      w.dt_bias(I(i)) = static_cast<T>(dt + std::log(-std::expm1(-dt)));  // softplus^-1(dt)
      w.A_log(I(i)) = static_cast<T>(std::log(init.A_min + unit(gen) * (init.A_max - init.A_min)));
    }
    w.D = column_vector<T>::Ones(I(h));
    w.norm = column_vector<T>::Ones(I(config.d_inner()));
    const double out_bound = 1 / std::sqrt(double(config.d_inner()));
    w.out_proj = uniform(config.d_model, config.d_inner(), -out_bound, out_bound);
    return mamba2_mixer(config, std::move(w));
  }

  /// Loads `<prefix>in_proj.weight`, ... (prefix e.g. "backbone.layers.0.mixer."). conv1d.weight
  /// may be (conv_dim, 1, d_conv) as PyTorch saves it, or (conv_dim, d_conv).
  static mamba2_mixer load(const safetensors::file& file, const std::string& prefix, const mamba2_config& config) {
    const auto matrix = [&](const std::string& name, std::size_t rows, std::size_t cols) {
      row_matrix<T> m(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
      if (file.info(prefix + name).shape.size() == 3) {
        file.read(prefix + name, tensor_view<T, 3>(m.data(), {rows, 1, cols}));
      } else {
        file.read(prefix + name, tensor_view<T, 2>(m.data(), {rows, cols}));
      }
      return m;
    };
    const auto vector = [&](const std::string& name, std::size_t size) {
      column_vector<T> v(static_cast<Eigen::Index>(size));
      file.read(prefix + name, tensor_view<T, 1>(v.data(), {size}));
      return v;
    };
    const std::size_t h = config.nheads();
    mamba2_weights<T> w;
    w.in_proj = matrix("in_proj.weight", config.d_in_proj(), config.d_model);
    w.conv1d_weight = matrix("conv1d.weight", config.conv_dim(), config.d_conv);
    w.conv1d_bias = vector("conv1d.bias", config.conv_dim());
    w.dt_bias = vector("dt_bias", h);
    w.A_log = vector("A_log", h);
    w.D = vector("D", h);
    w.norm = vector("norm.weight", config.d_inner());
    w.out_proj = matrix("out_proj.weight", config.d_model, config.d_inner());
    return mamba2_mixer(config, std::move(w));
  }

  const mamba2_config& config() const noexcept { return config_; }
  const mamba2_weights<T>& weights() const noexcept { return w_; }

  /// A zero state for `batch` sequences, with the step scratch allocated.
  mamba2_state<T> make_state(std::size_t batch) const {
    mamba2_state<T> s;
    s.batch = batch;
    s.conv.assign(batch * (config_.d_conv - 1) * config_.conv_dim(), T(0));
    s.ssm.assign(batch * config_.d_inner() * config_.d_state, T(0));
    s.zxbcdt.resize(batch * config_.d_in_proj());
    s.xbc.resize(batch * config_.conv_dim());
    s.y.resize(batch * config_.d_inner());
    return s;
  }

  /**
   * out = mixer(u) for token-major u (B, L, d_model); out (B, L, d_model) must not overlap u.
   * With `state`, continues it and leaves the final conv and SSM states there.
   * \throws ssmkit::error on shape mismatches; nothing is written then.
   */
  void forward(const_view<T, 3> u, tensor_view<T, 3> out, mamba2_workspace<T>& ws, mamba2_state<T>* state = nullptr,
               const parallel_options& parallel = {}) const {
    constexpr const char* fn = "mamba2_mixer::forward";
    const std::size_t batch = u.extent(0), length = u.extent(1), dm = config_.d_model;
    detail::check_data(fn, "u", u);
    detail::check_data(fn, "out", out);
    detail::check_shape(fn, "u", u, {batch, length, dm});
    detail::check_shape(fn, "out", out, {batch, length, dm});
    detail::check_no_overlap(fn, "out", out, "u", u);
    detail::require(u.stride(2) == 1 && out.stride(2) == 1, fn,
                    "u and out need contiguous channels (stride 1 along d_model), got strides ", u.stride(2), " and ",
                    out.stride(2));
    if (state) detail::require(state->batch == batch, fn, "state is for batch ", state->batch, ", expected ", batch);
    const std::size_t di = config_.d_inner(), cd = config_.conv_dim(), dp = config_.d_in_proj();
    const std::size_t h = config_.nheads(), p = config_.headdim, g = config_.ngroups, n = config_.d_state;
    const std::size_t rows = batch * length;
    if (rows == 0) return;  // no token: nothing to compute, a state is unchanged (and u(b, 0, 0) does not exist)
    ws.zxbcdt.resize(rows * dp);
    ws.xbc.resize(rows * cd);
    ws.y.resize(rows * di);
    for (std::size_t b = 0; b < batch; ++b) {
      detail::linear_rows(&u(b, 0, 0), static_cast<std::size_t>(u.stride(1)), w_.in_proj,
                          ws.zxbcdt.data() + b * length * dp, dp, length, parallel);
    }
    const auto L = static_cast<std::ptrdiff_t>(length);
    const auto DP = static_cast<std::ptrdiff_t>(dp), CD = static_cast<std::ptrdiff_t>(cd);
    conv1d_options<T> conv;
    conv.silu = true;
    conv.parallel = parallel;
    if (state) {
      const tensor_view<T, 3> conv_state =
          make_view(state->conv.data(), batch, config_.d_conv - 1, cd).transposed(1, 2);
      conv.initial_state = conv_state;
      conv.final_state = conv_state;
    }
    causal_conv1d<T, Arch>(tensor_view<const T, 3>(ws.zxbcdt.data() + di, {batch, length, cd}, {L * DP, DP, 1}),
                           tensor_view<const T, 2>(w_.conv1d_weight.data(), {cd, config_.d_conv}),
                           tensor_view<const T, 1>(w_.conv1d_bias.data(), {cd}),
                           make_view(ws.xbc.data(), batch, length, cd), conv);
    const auto P = static_cast<std::ptrdiff_t>(p), N = static_cast<std::ptrdiff_t>(n);
    const tensor_view<const T, 4> x(ws.xbc.data(), {batch, length, h, p}, {L * CD, CD, P, 1});
    const tensor_view<const T, 4> B(ws.xbc.data() + di, {batch, length, g, n}, {L * CD, CD, N, 1});
    const tensor_view<const T, 4> C(ws.xbc.data() + di + g * n, {batch, length, g, n}, {L * CD, CD, N, 1});
    const tensor_view<const T, 3> dt(ws.zxbcdt.data() + di + cd, {batch, length, h}, {L * DP, DP, 1});
    ssd_options<T> options;
    options.D = tensor_view<const T, 2>(w_.D.data(), {h, 1});
    options.dt_bias = tensor_view<const T, 1>(w_.dt_bias.data(), {h});
    options.dt_softplus = true;
    options.dt_min = static_cast<T>(config_.dt_min_limit);
    options.dt_max = static_cast<T>(config_.dt_max_limit);
    options.workspace = &ws.ssd;
    if (state) {
      options.initial_states = make_view(state->ssm.data(), batch, h, p, n);
      options.final_states = make_view(state->ssm.data(), batch, h, p, n);
    }
    ssd_scan<T, Arch>(x, dt, tensor_view<const T, 1>(A_.data(), {h}), B, C, make_view(ws.y.data(), batch, length, h, p),
                      options, parallel);
    detail::rms_norm_rows<T>(ws.y.data(), ws.zxbcdt.data(), w_.norm.data(), ws.y.data(), rows, di, di, parallel, di / g,
                             dp);
    for (std::size_t b = 0; b < batch; ++b) {
      detail::linear_rows(ws.y.data() + b * length * di, di, w_.out_proj, &out(b, 0, 0),
                          static_cast<std::size_t>(out.stride(1)), length, parallel);
    }
  }

  /**
   * One token: out_t = mixer(u_t) for u_t (B, d_model), continuing `state` in place. Equals
   * forward over the tokens one at a time. No heap allocation.
   * \throws ssmkit::error on shape mismatches; nothing is written then.
   */
  void step(const_view<T, 2> u, tensor_view<T, 2> out, mamba2_state<T>& state,
            const parallel_options& parallel = {}) const {
    constexpr const char* fn = "mamba2_mixer::step";
    const std::size_t batch = state.batch, dm = config_.d_model;
    detail::check_data(fn, "u", u);
    detail::check_data(fn, "out", out);
    detail::check_shape(fn, "u", u, {batch, dm});
    detail::check_shape(fn, "out", out, {batch, dm});
    detail::check_no_overlap(fn, "out", out, "u", u);
    detail::require(u.stride(1) == 1 && out.stride(1) == 1, fn,
                    "u and out need contiguous channels (stride 1 along d_model), got strides ", u.stride(1), " and ",
                    out.stride(1));
    const std::size_t di = config_.d_inner(), cd = config_.conv_dim(), dp = config_.d_in_proj();
    const std::size_t h = config_.nheads(), p = config_.headdim, g = config_.ngroups, n = config_.d_state;
    detail::linear_rows(u.data(), static_cast<std::size_t>(u.stride(0)), w_.in_proj, state.zxbcdt.data(), dp, batch,
                        parallel);
    const auto DP = static_cast<std::ptrdiff_t>(dp), CD = static_cast<std::ptrdiff_t>(cd);
    causal_conv1d_update<T, Arch>(tensor_view<const T, 2>(state.zxbcdt.data() + di, {batch, cd}, {DP, 1}),
                                  make_view(state.conv.data(), batch, config_.d_conv - 1, cd).transposed(1, 2),
                                  tensor_view<const T, 2>(w_.conv1d_weight.data(), {cd, config_.d_conv}),
                                  tensor_view<const T, 1>(w_.conv1d_bias.data(), {cd}),
                                  make_view(state.xbc.data(), batch, cd), true);
    const auto P = static_cast<std::ptrdiff_t>(p), N = static_cast<std::ptrdiff_t>(n);
    ssd_step_options<T> options;
    options.D = tensor_view<const T, 2>(w_.D.data(), {h, 1});
    options.dt_bias = tensor_view<const T, 1>(w_.dt_bias.data(), {h});
    options.dt_softplus = true;
    options.dt_min = static_cast<T>(config_.dt_min_limit);
    options.dt_max = static_cast<T>(config_.dt_max_limit);
    ssd_step<T, Arch>(make_view(state.ssm.data(), batch, h, p, n),
                      tensor_view<const T, 3>(state.xbc.data(), {batch, h, p}, {CD, P, 1}),
                      tensor_view<const T, 2>(state.zxbcdt.data() + di + cd, {batch, h}, {DP, 1}),
                      tensor_view<const T, 1>(A_.data(), {h}),
                      tensor_view<const T, 3>(state.xbc.data() + di, {batch, g, n}, {CD, N, 1}),
                      tensor_view<const T, 3>(state.xbc.data() + di + g * n, {batch, g, n}, {CD, N, 1}),
                      make_view(state.y.data(), batch, h, p), options, parallel);
    detail::rms_norm_rows<T>(state.y.data(), state.zxbcdt.data(), w_.norm.data(), state.y.data(), batch, di, di,
                             parallel, di / g, dp);
    detail::linear_rows(state.y.data(), di, w_.out_proj, out.data(), static_cast<std::size_t>(out.stride(0)), batch,
                        parallel);
  }

 private:
  mamba2_config config_;
  mamba2_weights<T> w_;
  column_vector<T> A_;  ///< -exp(A_log)
};

}  // namespace ssmkit
