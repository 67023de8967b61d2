#pragma once
/// \file s4d_layer.hpp
/// An S4D layer: the reference's S4 block with a diagonal kernel (state-spaces/s4,
/// src/models/sequence/kernels/fftconv.py FFTConv and src/models/sequence/modules/s4block.py;
/// ../shared/docs/reference-semantics.md sections 2-5), with two modes that compute the same thing.
/// Shapes: B batch, L length, H width (channels of u), N2 = N/2 complex modes, C kernel channels.
///
///   convolution: v[b, t, c*H + h] = sum_{s<=t} K[c, h, s] u[b, t - s, h] + D[c, h] u[b, t, h]
///                with K = s4d_kernel(dt, A, B, C) of length L, through a cached fft_conv_plan;
///                bidirectional: plus sum_{m=1}^{L} K[C + c, h, m-1] u[b, t + m, h] (fft_conv.hpp);
///   recurrent:   x_t[b, h, n] = dA[h, n] x_{t-1}[b, h, n] + dB[h, n] u_t[b, h]
///                v_t[b, c*H + h] = 2 Re sum_n C[c, h, n] x_t[b, h, n] + D[c, h] u_t[b, h]
///                with (dA, dB) = s4d_step_setup(dt, A, B), one token per step() call;
///   then         a = activation(v) (none, or the exact erf GELU, torch's default), and either
///                y = a (width C*H), or with the output GLU (s4block's output_linear + GLU)
///                z = W a + bias (W (2H, C*H), bias (2H)), y[j] = z[j] sigmoid(z[H + j]) (width H).
///
/// From a zero state, step() over tokens t = 0..L-1 reproduces forward() token by token (up to
/// rounding; tests/test_s4d_layer.cpp states the tolerance). A bidirectional layer has no recurrent
/// form (its anticausal kernels need future inputs): its step() throws.
///
/// Caching: the kernel K, its FFT plan (the kernel spectrum) and (dA, dB) are built at construction
/// and rebuilt by set_parameters only when dt, A, B or C change (kernel_builds() counts the builds);
/// a new D or output linear is taken without a rebuild. forward and step are const and thread-safe
/// with one workspace / state per thread; set_parameters and set_output_linear must not run
/// concurrently with them.
///
/// Parameterisation: the layer takes raw (dt, A, B, C, D), or the tensors the reference module
/// stores (s4d_layer_params): log_dt, inv_A_real = log(max(-Re A, 1e-4)) and
/// A_imag = max(-Im A, 1e-4) (SSMKernelDiag's exp / none transforms and their floors), B, C, D.
/// The floors are applied only on the way into the stored form, as the reference does.

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/backend.hpp>
#include <ssmkit/discretize.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/s4d.hpp>
#include <ssmkit/s4d_init.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// The activation after the convolution (FFTConv's `activation`).
enum class s4d_activation {
  none,  ///< identity (the src FFTConv default)
  gelu,  ///< exact GELU x (1 + erf(x / sqrt 2)) / 2 (torch.nn.GELU's default, approximate='none')
};

/// Options of s4d_layer.
struct s4d_layer_options {
  discretization method = discretization::zoh;  ///< zoh or bilinear (dss is rejected: no step mode)
  bool exact_kernel = false;                    ///< s4d_kernel_options::exact
  parallel_options parallel{};                  ///< for the kernel generation (construction, set_parameters)
  /// Bidirectional (FFTConv's `bidirectional`): C has 2*channels rows, the causal kernels' first;
  /// convolution mode only.
  bool bidirectional = false;
  s4d_activation activation = s4d_activation::none;  ///< after the convolution and the D skip
  /// s4block's output_linear: Linear(C*H -> 2H) then GLU over the last dimension (y has width H).
  bool output_glu = false;
  /// Seeds the output linear's initial weight and bias, both U(-1/sqrt(C*H), 1/sqrt(C*H)) like
  /// torch.nn.Linear's (not torch's numbers); set_output_linear replaces them.
  std::uint64_t output_seed = 0;
  fft_conv_method conv_method = fft_conv_method::automatic;  ///< fft_conv_options::method
};

/// Options of s4d_layer::random.
struct s4d_layer_init {
  s4d::diag_init init = s4d::diag_init::lin;  ///< S4D-Lin by default; legs for S4D-LegS
  double dt_min = 1e-3;
  double dt_max = 1e-1;
  std::uint64_t seed = 0;  ///< seeds A/B (when random), dt, C and D
};

/**
 * The parameters of an S4D layer as the reference module stores them (SSMKernelDiag with the exp
 * transform for dt and Re A, the none transform for Im A; FFTConv's D):
 *
 *   log_dt      (H, 1) tied or (H, N2)    dt = exp(log_dt)
 *   inv_A_real  (H, N2)                   Re A = -exp(inv_A_real); stored as log(max(-Re A, 1e-4))
 *   A_imag      (H, N2)                   Im A = -A_imag;          stored as max(-Im A, 1e-4)
 *   B           (H, N2) complex
 *   C           (kernels, H, N2) complex  kernels = channels, or 2*channels when bidirectional
 *   D           (channels, H), or empty (d_rows = 0) for no skip
 *
 * Floors (the only place they apply is store_A / from_raw, as in the reference's register step):
 * -Re A below 1e-4 becomes 1e-4 (Re A = -1e-6 is stored as log 1e-4 and comes back as -1e-4), and
 * -Im A below 1e-4 becomes 1e-4: S4D-Lin's n = 0 mode and every S4D-Real mode (Im A = 0) come back
 * with Im A = -1e-4, and a positive Im A (the minimal s4d.py sign convention) comes back as -1e-4
 * too, so conjugate such A (and B, C) first. dt has no floor under the exp transform.
 * Storage is row-major; the conversions run in double and round once to T.
 */
template <class T>
struct s4d_layer_params {
  static_assert(std::is_floating_point_v<T>, "s4d_layer_params: T must be float or double");
  /// The floor of -Re A and of -Im A in the stored form.
  static constexpr double A_floor = 1e-4;

  std::size_t H = 0, N2 = 0;
  std::size_t dt_columns = 1;  ///< 1 (tied) or N2
  std::size_t kernels = 0;     ///< rows of C
  std::size_t d_rows = 0;      ///< rows of D (channels), 0 for no skip
  std::vector<T> log_dt, inv_A_real, A_imag;
  std::vector<std::complex<T>> B, C;
  std::vector<T> D;

  /// Raw A -> (inv_A_real, A_imag) with the floors: (log(max(-Re A, 1e-4)), max(-Im A, 1e-4)).
  static std::pair<T, T> store_A(std::complex<T> A) noexcept {
    const double re = std::max(-static_cast<double>(A.real()), A_floor);
    const double im = std::max(-static_cast<double>(A.imag()), A_floor);
    return {static_cast<T>(std::log(re)), static_cast<T>(im)};
  }
  /// (inv_A_real, A_imag) -> raw A = -exp(inv_A_real) - i A_imag.
  static std::complex<T> load_A(T inv_A_real, T A_imag) noexcept {
    return {static_cast<T>(-std::exp(static_cast<double>(inv_A_real))), -A_imag};
  }

  /**
   * The stored form of raw parameters: log_dt = log dt, (inv_A_real, A_imag) = store_A(A)
   * (floors applied), B, C, D copied. Shapes: dt (H, 1) or (H, N2), A and B (H, N2),
   * C (kernels >= 1, H, N2), D (channels, H) or a default-constructed view.
   * \throws ssmkit::error ("s4d_layer_params::from_raw: ...") on mismatched shapes, null views,
   *         or dt <= 0 or not finite.
   */
  static s4d_layer_params from_raw(const_view<T, 2> dt, const_view<std::complex<T>, 2> A,
                                   const_view<std::complex<T>, 2> B, const_view<std::complex<T>, 3> C,
                                   const_view<T, 2> D = {}) {
    constexpr const char* fn = "s4d_layer_params::from_raw";
    detail::check_s4d_params<T>(fn, dt, A, B);
    s4d_layer_params p;
    p.set_shapes(fn, A.extent(0), A.extent(1), dt.extent(1), C, D);
    for (std::size_t h = 0; h < p.H; ++h) {
      for (std::size_t j = 0; j < p.dt_columns; ++j) p.log_dt[h * p.dt_columns + j] = static_cast<T>(std::log(static_cast<double>(dt(h, j))));
      for (std::size_t n = 0; n < p.N2; ++n) {
        const auto s = store_A(A(h, n));
        p.inv_A_real[h * p.N2 + n] = s.first;
        p.A_imag[h * p.N2 + n] = s.second;
        p.B[h * p.N2 + n] = B(h, n);
      }
    }
    p.copy_C_D(C, D);
    return p;
  }

  /**
   * The stored tensors as given (no floors applied: they are the module's state already).
   * Shapes as in the struct comment; H and N2 from inv_A_real.
   * \throws ssmkit::error ("s4d_layer_params::from_stored: ...") on mismatched shapes, null views,
   *         or a log_dt that is not finite.
   */
  static s4d_layer_params from_stored(const_view<T, 2> log_dt, const_view<T, 2> inv_A_real, const_view<T, 2> A_imag,
                                      const_view<std::complex<T>, 2> B, const_view<std::complex<T>, 3> C,
                                      const_view<T, 2> D = {}) {
    constexpr const char* fn = "s4d_layer_params::from_stored";
    const std::size_t H = inv_A_real.extent(0), N2 = inv_A_real.extent(1);
    detail::require(H >= 1 && N2 >= 1, fn, "inv_A_real must have shape (H, N2) with H, N2 >= 1, got ",
                    detail::format_shape(inv_A_real.extents()));
    if (!(log_dt.extent(0) == H && (log_dt.extent(1) == 1 || log_dt.extent(1) == N2))) {
      detail::throw_error(fn, "log_dt has shape ", detail::format_shape(log_dt.extents()), ", expected (", H, ", 1) or (",
                          H, ", ", N2, ")");
    }
    detail::check_shape(fn, "A_imag", A_imag, {H, N2});
    detail::check_shape(fn, "B", B, {H, N2});
    detail::check_data(fn, "log_dt", log_dt);
    detail::check_data(fn, "inv_A_real", inv_A_real);
    detail::check_data(fn, "A_imag", A_imag);
    detail::check_data(fn, "B", B);
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t j = 0; j < log_dt.extent(1); ++j)
        detail::require(std::isfinite(log_dt(h, j)), fn, "log_dt must be finite, got ", log_dt(h, j), " at (", h, ", ", j, ")");
    s4d_layer_params p;
    p.set_shapes(fn, H, N2, log_dt.extent(1), C, D);
    for (std::size_t h = 0; h < H; ++h) {
      for (std::size_t j = 0; j < p.dt_columns; ++j) p.log_dt[h * p.dt_columns + j] = log_dt(h, j);
      for (std::size_t n = 0; n < N2; ++n) {
        p.inv_A_real[h * N2 + n] = inv_A_real(h, n);
        p.A_imag[h * N2 + n] = A_imag(h, n);
        p.B[h * N2 + n] = B(h, n);
      }
    }
    p.copy_C_D(C, D);
    return p;
  }

  /// dt = exp(log_dt), (H, dt_columns) row-major.
  std::vector<T> dt() const {
    std::vector<T> out(log_dt.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(std::exp(static_cast<double>(log_dt[i])));
    return out;
  }
  /// A = load_A(inv_A_real, A_imag), (H, N2) row-major.
  std::vector<std::complex<T>> A() const {
    std::vector<std::complex<T>> out(inv_A_real.size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = load_A(inv_A_real[i], A_imag[i]);
    return out;
  }

  tensor_view<const T, 2> log_dt_view() const noexcept { return {log_dt.data(), {H, dt_columns}}; }
  tensor_view<const T, 2> inv_A_real_view() const noexcept { return {inv_A_real.data(), {H, N2}}; }
  tensor_view<const T, 2> A_imag_view() const noexcept { return {A_imag.data(), {H, N2}}; }
  tensor_view<const std::complex<T>, 2> B_view() const noexcept { return {B.data(), {H, N2}}; }
  tensor_view<const std::complex<T>, 3> C_view() const noexcept { return {C.data(), {kernels, H, N2}}; }
  /// (d_rows, H); a default-constructed view when there is no skip.
  tensor_view<const T, 2> D_view() const noexcept {
    return d_rows == 0 ? tensor_view<const T, 2>{} : tensor_view<const T, 2>(D.data(), {d_rows, H});
  }

 private:
  void set_shapes(const char* fn, std::size_t H_, std::size_t N2_, std::size_t dt_cols, const_view<std::complex<T>, 3> C_,
                  const_view<T, 2> D_) {
    const std::size_t k = C_.extent(0);
    detail::require(k >= 1, fn, "C must have at least one channel, got shape ", detail::format_shape(C_.extents()));
    detail::check_shape(fn, "C", C_, {k, H_, N2_});
    detail::check_data(fn, "C", C_);
    const bool has_D = D_.data() != nullptr || !D_.empty();
    if (has_D) {
      detail::require(D_.extent(0) >= 1, fn, "D has shape ", detail::format_shape(D_.extents()), ", expected (>= 1, ", H_, ")");
      detail::check_shape(fn, "D", D_, {D_.extent(0), H_});
      detail::check_data(fn, "D", D_);
    }
    H = H_;
    N2 = N2_;
    dt_columns = dt_cols;
    kernels = k;
    d_rows = has_D ? D_.extent(0) : 0;
    log_dt.assign(H * dt_columns, T(0));
    inv_A_real.assign(H * N2, T(0));
    A_imag.assign(H * N2, T(0));
    B.assign(H * N2, std::complex<T>(0));
    C.assign(kernels * H * N2, std::complex<T>(0));
    D.assign(d_rows * H, T(0));
  }
  void copy_C_D(const_view<std::complex<T>, 3> C_, const_view<T, 2> D_) {
    for (std::size_t c = 0; c < kernels; ++c)
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t n = 0; n < N2; ++n) C[(c * H + h) * N2 + n] = C_(c, h, n);
    for (std::size_t c = 0; c < d_rows; ++c)
      for (std::size_t h = 0; h < H; ++h) D[c * H + h] = D_(c, h);
  }
};

template <class T, class Arch = default_arch>
class s4d_layer;

/// The recurrent state of an s4d_layer for a batch: (batch, H, N2) complex, plus the scratch row of
/// the output GLU, allocated once by s4d_layer::make_state.
template <class T>
class s4d_layer_state {
 public:
  s4d_layer_state() = default;
  s4d_layer_state(std::size_t batch, std::size_t H, std::size_t N2, std::size_t scratch = 0)
      : x_(batch * H * N2), scratch_(scratch), batch_(batch), H_(H), N2_(N2) {}

  /// Back to the zero state (the start of a sequence).
  void reset() noexcept {
    for (auto& v : x_) v = std::complex<T>(0);
  }
  std::size_t batch() const noexcept { return batch_; }
  /// The state x (batch, H, N2); write it to start from an initial state other than zero.
  tensor_view<std::complex<T>, 3> view() noexcept { return {x_.data(), {batch_, H_, N2_}}; }
  tensor_view<const std::complex<T>, 3> view() const noexcept { return {x_.data(), {batch_, H_, N2_}}; }

 private:
  template <class, class>
  friend class s4d_layer;
  // Grows (allocating) only when the state was not made by the layer that steps it.
  T* scratch(std::size_t n) {
    if (scratch_.size() < n) scratch_.resize(n);
    return scratch_.data();
  }

  std::vector<std::complex<T>> x_;
  std::vector<T> scratch_;
  std::size_t batch_ = 0, H_ = 0, N2_ = 0;
};

/// Reusable scratch of s4d_layer::forward: the convolution's workspace, plus the pre-GLU
/// activations (B, L, C*H) and the linear's output (B, L, 2H) when the output GLU is on.
template <class T>
struct s4d_layer_workspace {
  fft_conv_workspace<T> conv;
  std::vector<T> hidden;
};

namespace detail {

/// Exact GELU, as torch.nn.GELU(approximate='none'): x Phi(x) = x (1 + erf(x / sqrt 2)) / 2.
template <class T>
T gelu_exact(T x) noexcept {
  return x * T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
}

/// sigmoid for the GLU gate, without overflow for large |x|.
template <class T>
T glu_sigmoid(T x) noexcept {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

/// Bitwise equality of two buffers: "unchanged" for the cache (NaN == NaN, -0 != +0).
template <class V>
bool same_bits(const std::vector<V>& a, const std::vector<V>& b) noexcept {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0);
}

}  // namespace detail

/**
 * An S4D layer of H channels, N2 = N/2 complex modes and C kernel channels (convolution output
 * width C*H; the layer's output width is H with the output GLU), for sequences of length L in
 * convolution mode (any length in recurrent mode).
 */
template <class T, class Arch>
class s4d_layer {
  static_assert(std::is_floating_point_v<T>, "s4d_layer: T must be float or double");

  // The layer's parameters in raw form, validated: dt (H, dt_columns), A, B (H, N2),
  // C (kernels, H, N2), D (channels, H), zeros when has_D is false.
  struct raw_params {
    std::size_t H = 0, N2 = 0, dt_columns = 1, kernels = 0, channels = 0;
    std::vector<T> dt;
    std::vector<std::complex<T>> A, B, C;
    std::vector<T> D;
    bool has_D = false;
    tensor_view<const T, 2> dt_view() const noexcept { return {dt.data(), {H, dt_columns}}; }
    tensor_view<const std::complex<T>, 2> A_view() const noexcept { return {A.data(), {H, N2}}; }
    tensor_view<const std::complex<T>, 2> B_view() const noexcept { return {B.data(), {H, N2}}; }
    tensor_view<const std::complex<T>, 3> C_view() const noexcept { return {C.data(), {kernels, H, N2}}; }
  };

  // What the parameters dt, A, B, C determine: the kernel, its plan (the spectrum) and the step's
  // (dA, dB). Rebuilt as a whole, then swapped in.
  struct spectrum_cache {
    std::vector<T> kernel;  // (kernels, H, L)
    fft_conv_plan<T, Arch> plan;
    std::vector<std::complex<T>> dA, dB;  // (H, N2)
  };

 public:
  /**
   * \param dt (H, 1) or (H, N2) step sizes, > 0;  \param A, B (H, N2);
   * \param C (channels, H, N2), or (2*channels, H, N2) when options.bidirectional (causal first);
   * \param D (channels, H) skip, or a default-constructed view for none;  \param L conv length >= 1.
   * A is used as given (no floors; see s4d_layer_params for the reference's stored form).
   * \throws ssmkit::error ("s4d_layer: ...") on mismatched shapes, an odd number of C rows when
   *         bidirectional, dt <= 0 or not finite, L = 0, null views, or method dss.
   */
  s4d_layer(const_view<T, 2> dt, const_view<std::complex<T>, 2> A, const_view<std::complex<T>, 2> B,
            const_view<std::complex<T>, 3> C, const_view<T, 2> D, std::size_t L,
            const s4d_layer_options& options = {})
      : s4d_layer(copy_params("s4d_layer", dt, A, B, C, D, L, options, nullptr), L, options) {}

  /**
   * A layer from the reference module's stored parameters (s4d_layer_params): dt = exp(log_dt),
   * A = -exp(inv_A_real) - i A_imag, B, C, D. C has 2*channels rows when options.bidirectional.
   * \throws ssmkit::error ("s4d_layer: ...") as the constructor above, and when a vector of
   *         `params` does not hold the number of elements its shape fields give.
   */
  s4d_layer(const s4d_layer_params<T>& params, std::size_t L, const s4d_layer_options& options = {})
      : s4d_layer(params_to_raw("s4d_layer", params, L, options, nullptr), L, options) {}

  /**
   * A layer from an S4D initialisation: (A, B) = s4d::diag(init.init, N, H) (B constant, or legs
   * for LegS), dt log-uniform in [dt_min, dt_max] (tied), C complex normal with variance 1/2 per
   * part (2*channels rows when bidirectional), D standard normal, all from init.seed; the output
   * linear from options.output_seed. N even >= 2 (>= 4 for legs).
   */
  static s4d_layer random(std::size_t H, std::size_t N, std::size_t channels, std::size_t L,
                          const s4d_layer_init& init = {}, const s4d_layer_options& options = {}) {
    detail::require(channels >= 1, "s4d_layer::random", "channels must be >= 1, got ", channels);
    const auto Hi = static_cast<Eigen::Index>(H), Ni = static_cast<Eigen::Index>(N);
    s4d::diag_init_options diag_options;
    diag_options.seed = init.seed;
    const s4d::diag_params p = s4d::diag(init.init, Ni, Hi, diag_options);
    s4d::dt_init_options dt_options;
    dt_options.dt_min = init.dt_min;
    dt_options.dt_max = init.dt_max;
    dt_options.seed = init.seed + 1;
    const Eigen::MatrixXd log_dt = s4d::init_log_dt(Hi, Ni / 2, dt_options);
    const std::size_t N2 = N / 2, kernels = options.bidirectional ? 2 * channels : channels;
    std::vector<T> dt(H), D(channels * H);
    std::vector<std::complex<T>> A(H * N2), B(H * N2), C(kernels * H * N2);
    for (std::size_t h = 0; h < H; ++h) {
      dt[h] = static_cast<T>(std::exp(log_dt(static_cast<Eigen::Index>(h), 0)));
      for (std::size_t n = 0; n < N2; ++n) {
        A[h * N2 + n] = std::complex<T>(p.A(static_cast<Eigen::Index>(h), static_cast<Eigen::Index>(n)));
        B[h * N2 + n] = std::complex<T>(p.B(static_cast<Eigen::Index>(h), static_cast<Eigen::Index>(n)));
      }
    }
    std::mt19937_64 gen(init.seed + 2);
    const double half = std::sqrt(0.5);
    for (auto& c : C) {
      const double re = s4d::detail::standard_normal(gen), im = s4d::detail::standard_normal(gen);
      c = std::complex<T>(static_cast<T>(half * re), static_cast<T>(half * im));
    }
    for (auto& d : D) d = static_cast<T>(s4d::detail::standard_normal(gen));
    return s4d_layer(make_view(std::as_const(dt), H, std::size_t{1}), make_view(std::as_const(A), H, N2),
                     make_view(std::as_const(B), H, N2), make_view(std::as_const(C), kernels, H, N2),
                     make_view(std::as_const(D), channels, H), L, options);
  }

  std::size_t width() const noexcept { return H_; }                   ///< H
  std::size_t modes() const noexcept { return N2_; }                  ///< N2 = N/2
  std::size_t channels() const noexcept { return channels_; }         ///< C
  std::size_t kernel_channels() const noexcept { return kernels_; }   ///< C, or 2C when bidirectional
  std::size_t length() const noexcept { return L_; }                  ///< L of the conv mode
  /// The width of y: H with the output GLU, C*H without.
  std::size_t output_width() const noexcept { return options_.output_glu ? H_ : channels_ * H_; }
  const s4d_layer_options& options() const noexcept { return options_; }
  /// How many times the kernel, its spectrum and (dA, dB) were built: 1 after construction, +1
  /// per set_parameters call that changed dt, A, B or C.
  std::size_t kernel_builds() const noexcept { return kernel_builds_; }

  /// The kernel K (kernels, H, L) of the conv mode (causal kernels first when bidirectional).
  tensor_view<const T, 3> kernel() const noexcept { return {cache_.kernel.data(), {kernels_, H_, L_}}; }
  /// The raw parameters: dt (H, 1 or N2), A and B (H, N2).
  tensor_view<const T, 2> dt() const noexcept { return p_.dt_view(); }
  tensor_view<const std::complex<T>, 2> A() const noexcept { return p_.A_view(); }
  tensor_view<const std::complex<T>, 2> B() const noexcept { return p_.B_view(); }
  /// The step parameters dA, dB (H, N2), output matrix C (kernels, H, N2) and skip D (C, H; zeros if none).
  tensor_view<const std::complex<T>, 2> dA() const noexcept { return {cache_.dA.data(), {H_, N2_}}; }
  tensor_view<const std::complex<T>, 2> dB() const noexcept { return {cache_.dB.data(), {H_, N2_}}; }
  tensor_view<const std::complex<T>, 3> C() const noexcept { return p_.C_view(); }
  tensor_view<const T, 2> D() const noexcept { return {p_.D.data(), {channels_, H_}}; }
  const fft_conv_plan<T, Arch>& plan() const noexcept { return cache_.plan; }
  /// The output linear's weight (2H, C*H) and bias (2H); empty views without the output GLU.
  tensor_view<const T, 2> output_weight() const noexcept { return {W_.data(), {W_.empty() ? 0 : 2 * H_, W_.empty() ? 0 : channels_ * H_}}; }
  tensor_view<const T, 1> output_bias() const noexcept { return {bias_.data(), {bias_.size()}}; }

  /// The parameters in the reference module's stored form (the floors applied to A: see
  /// s4d_layer_params).
  s4d_layer_params<T> parameters() const {
    return s4d_layer_params<T>::from_raw(p_.dt_view(), p_.A_view(), p_.B_view(), p_.C_view(),
                                         p_.has_D ? D() : tensor_view<const T, 2>{});
  }

  /**
   * Replaces the parameters (raw form, shapes as the constructor's with this layer's H, N2 and
   * kernel channels; dt may switch between tied and untied; D may be a default-constructed view for
   * no skip). The kernel, its spectrum and (dA, dB) are rebuilt only when dt, A, B or C differ
   * bitwise from the current ones; D alone is taken without a rebuild.
   * \returns true when it rebuilt.
   * \throws ssmkit::error ("s4d_layer::set_parameters: ...") on mismatched shapes, null views, or
   *         dt <= 0 or not finite; the layer is then unchanged. Not thread-safe against forward/step.
   */
  bool set_parameters(const_view<T, 2> dt, const_view<std::complex<T>, 2> A, const_view<std::complex<T>, 2> B,
                      const_view<std::complex<T>, 3> C, const_view<T, 2> D = {}) {
    return apply(copy_params("s4d_layer::set_parameters", dt, A, B, C, D, L_, options_, this));
  }

  /// The same from the stored form (converted as the s4d_layer_params constructor does, then
  /// compared in raw form: passing the same params again does not rebuild).
  bool set_parameters(const s4d_layer_params<T>& params) {
    return apply(params_to_raw("s4d_layer::set_parameters", params, L_, options_, this));
  }

  /**
   * Replaces the output linear: weight (2H, C*H), bias (2H). Does not touch the kernel.
   * \throws ssmkit::error ("s4d_layer::set_output_linear: ...") when the layer has no output GLU,
   *         on mismatched shapes or null views. Not thread-safe against forward/step.
   */
  void set_output_linear(const_view<T, 2> weight, const_view<T, 1> bias) {
    constexpr const char* fn = "s4d_layer::set_output_linear";
    detail::require(options_.output_glu, fn, "the layer has no output linear (s4d_layer_options::output_glu is off)");
    const std::size_t CH = channels_ * H_;
    detail::check_shape(fn, "weight", weight, {2 * H_, CH});
    detail::check_shape(fn, "bias", bias, {2 * H_});
    detail::check_data(fn, "weight", weight);
    detail::check_data(fn, "bias", bias);
    for (std::size_t j = 0; j < 2 * H_; ++j) {
      for (std::size_t k = 0; k < CH; ++k) W_[j * CH + k] = weight(j, k);
      bias_[j] = bias(j);
    }
  }

  /**
   * Convolution mode: y (B, L, output_width()) from u (B, L, H), any strides:
   * v = K * u + D u (causal, or bidirectional), then the activation, then the output GLU if on.
   * \throws ssmkit::error ("s4d_layer: ...") on a shape mismatch, a null view, or y overlapping u.
   * Numerics: the convolution's O(eps log2 n) error relative to sum |K u| + |D u| (fft_conv.hpp),
   * then a few eps per element for GELU, and the linear's sum over C*H terms (O(C H eps) relative
   * to sum |W a|).
   */
  void forward(const_view<T, 3> u, tensor_view<T, 3> y, s4d_layer_workspace<T>& workspace,
               const parallel_options& parallel = {}) const {
    check_forward(u, y);
    if (!options_.output_glu) {
      run_conv(u, y, workspace.conv, parallel);
      return;
    }
    const std::size_t need = u.extent(0) * L_ * (channels_ * H_ + 2 * H_);
    if (workspace.hidden.size() < need) workspace.hidden.resize(need);
    run_glu(u, y, workspace.conv, workspace.hidden.data(), parallel);
  }

  /// The same with only the convolution's workspace: with the output GLU on, the intermediate
  /// (B, L, C*H + 2H) is allocated per call (prefer s4d_layer_workspace there).
  void forward(const_view<T, 3> u, tensor_view<T, 3> y, fft_conv_workspace<T>& workspace,
               const parallel_options& parallel = {}) const {
    check_forward(u, y);
    if (!options_.output_glu) {
      run_conv(u, y, workspace, parallel);
      return;
    }
    std::vector<T> hidden(u.extent(0) * L_ * (channels_ * H_ + 2 * H_));
    run_glu(u, y, workspace, hidden.data(), parallel);
  }

  /// The same with a workspace allocated for this call.
  void forward(const_view<T, 3> u, tensor_view<T, 3> y, const parallel_options& parallel = {}) const {
    s4d_layer_workspace<T> workspace;
    forward(u, y, workspace, parallel);
  }

  /// A zero state for `batch` sequences (the only allocation of the recurrent mode).
  s4d_layer_state<T> make_state(std::size_t batch) const {
    return s4d_layer_state<T>(batch, H_, N2_, options_.output_glu ? channels_ * H_ : 0);
  }

  /**
   * Recurrent mode, one token: u_t (batch, H) -> y_t (batch, output_width()), advancing `state`
   * (whose batch sets batch). Allocates nothing with a state from make_state.
   * \throws ssmkit::error ("s4d_layer::step: ...") for a bidirectional layer (no recurrent form),
   *         on a shape mismatch, null view, or y_t overlapping u_t.
   */
  void step(const_view<T, 2> u_t, tensor_view<T, 2> y_t, s4d_layer_state<T>& state) const {
    constexpr const char* fn = "s4d_layer::step";
    detail::require(!options_.bidirectional, fn,
                    "a bidirectional layer has no recurrent form (its anticausal kernels need future inputs)");
    const std::size_t batch = state.batch();
    const tensor_view<std::complex<T>, 3> x = state.view();
    detail::check_shape(fn, "state", x, {batch, H_, N2_});
    detail::check_shape(fn, "u_t", u_t, {batch, H_});
    detail::check_shape(fn, "y_t", y_t, {batch, output_width()});
    detail::check_data(fn, "u_t", u_t);
    detail::check_data(fn, "y_t", y_t);
    detail::check_no_overlap(fn, "y_t", y_t, "u_t", u_t);
    const std::size_t CH = channels_ * H_;
    const bool glu = options_.output_glu, gelu = options_.activation == s4d_activation::gelu;
    T* hidden = glu ? state.scratch(CH) : nullptr;
    // Real arithmetic on the interleaved (re, im) pairs: std::complex's operator* goes through the
    // C99 Annex G NaN/inf recovery (__mulsc3) unless built with -ffast-math. The state is owned by
    // s4d_layer_state and dense, so each (b, h) row is 2 N2 consecutive T.
    const std::size_t N2 = N2_;
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t h = 0; h < H_; ++h) {
        const T u = u_t(b, h);
        const T* dA = reinterpret_cast<const T*>(cache_.dA.data() + h * N2);
        const T* dB = reinterpret_cast<const T*>(cache_.dB.data() + h * N2);
        T* xs = reinterpret_cast<T*>(&x(b, h, 0));
        for (std::size_t n = 0; n < N2; ++n) {
          const T xr = xs[2 * n], xi = xs[2 * n + 1];
          const T ar = dA[2 * n], ai = dA[2 * n + 1];
          xs[2 * n] = ar * xr - ai * xi + dB[2 * n] * u;
          xs[2 * n + 1] = ar * xi + ai * xr + dB[2 * n + 1] * u;
        }
        for (std::size_t c = 0; c < channels_; ++c) {
          const T* Cc = reinterpret_cast<const T*>(p_.C.data() + (c * H_ + h) * N2);
          T sum = 0;
          for (std::size_t n = 0; n < N2; ++n) sum += Cc[2 * n] * xs[2 * n] - Cc[2 * n + 1] * xs[2 * n + 1];
          T v = T(2) * sum + p_.D[c * H_ + h] * u;
          if (gelu) v = detail::gelu_exact(v);
          if (glu) {
            hidden[c * H_ + h] = v;
          } else {
            y_t(b, c * H_ + h) = v;
          }
        }
      }
      if (glu) {
        for (std::size_t j = 0; j < H_; ++j) {
          const T* wa = W_.data() + j * CH;
          const T* wg = W_.data() + (H_ + j) * CH;
          T a = 0, g = 0;
          for (std::size_t k = 0; k < CH; ++k) a += wa[k] * hidden[k], g += wg[k] * hidden[k];
          y_t(b, j) = (a + bias_[j]) * detail::glu_sigmoid(g + bias_[H_ + j]);
        }
      }
    }
  }

 private:
  s4d_layer(raw_params&& params, std::size_t L, const s4d_layer_options& options)
      : H_(params.H),
        N2_(params.N2),
        channels_(params.channels),
        kernels_(params.kernels),
        L_(L),
        options_(options),
        p_(std::move(params)),
        cache_(build_cache(p_, L, options)) {
    if (options.output_glu) {
      // torch.nn.Linear's init bounds: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
      const std::size_t CH = channels_ * H_;
      W_.resize(2 * H_ * CH);
      bias_.resize(2 * H_);
      std::mt19937_64 gen(options.output_seed);
      const double bound = 1.0 / std::sqrt(static_cast<double>(CH));
      for (auto& w : W_) w = static_cast<T>(bound * (2 * s4d::detail::uniform01(gen) - 1));
      for (auto& b : bias_) b = static_cast<T>(bound * (2 * s4d::detail::uniform01(gen) - 1));
    }
  }

  // Validates raw parameters and copies them. With `self`, the shapes must be self's (H, N2,
  // kernels); otherwise they set the layer's, and L and the method are checked too.
  static raw_params copy_params(const char* fn, const_view<T, 2> dt, const_view<std::complex<T>, 2> A,
                                const_view<std::complex<T>, 2> B, const_view<std::complex<T>, 3> C,
                                const_view<T, 2> D, std::size_t L, const s4d_layer_options& options,
                                const s4d_layer* self) {
    if (self) detail::check_shape(fn, "A", A, {self->H_, self->N2_});
    detail::check_s4d_params<T>(fn, dt, A, B);
    const std::size_t H = A.extent(0), N2 = A.extent(1), kernels = C.extent(0);
    if (self) {
      detail::check_shape(fn, "C", C, {self->kernels_, H, N2});
    } else {
      detail::require(kernels >= 1, fn, "C must have at least one channel, got shape ", detail::format_shape(C.extents()));
      if (options.bidirectional && kernels % 2 != 0) {
        detail::throw_error(fn, "C has shape ", detail::format_shape(C.extents()), ", expected (2*channels, ", H, ", ", N2,
                            ") (bidirectional: the causal kernels' rows, then the anticausal ones)");
      }
      detail::check_shape(fn, "C", C, {kernels, H, N2});
    }
    detail::check_data(fn, "C", C);
    const std::size_t channels = options.bidirectional ? kernels / 2 : kernels;
    const bool has_D = D.data() != nullptr || !D.empty();
    if (has_D) {
      detail::check_shape(fn, "D", D, {channels, H});
      detail::check_data(fn, "D", D);
    }
    if (!self) {
      detail::require(L >= 1, fn, "L must be >= 1, got 0");
      detail::require(options.method != discretization::dss, fn,
                      "the dss discretization has no recurrent form (use zoh or bilinear)");
    }
    raw_params r;
    r.H = H;
    r.N2 = N2;
    r.dt_columns = dt.extent(1);
    r.kernels = kernels;
    r.channels = channels;
    r.has_D = has_D;
    r.dt.resize(H * r.dt_columns);
    r.A.resize(H * N2);
    r.B.resize(H * N2);
    r.C.resize(kernels * H * N2);
    r.D.assign(channels * H, T(0));
    for (std::size_t h = 0; h < H; ++h) {
      for (std::size_t j = 0; j < r.dt_columns; ++j) r.dt[h * r.dt_columns + j] = dt(h, j);
      for (std::size_t n = 0; n < N2; ++n) r.A[h * N2 + n] = A(h, n), r.B[h * N2 + n] = B(h, n);
    }
    for (std::size_t c = 0; c < kernels; ++c)
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t n = 0; n < N2; ++n) r.C[(c * H + h) * N2 + n] = C(c, h, n);
    if (has_D) {
      for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t h = 0; h < H; ++h) r.D[c * H + h] = D(c, h);
    }
    return r;
  }

  // The stored form -> raw (dt = exp(log_dt), A = load_A), then copy_params' checks.
  static raw_params params_to_raw(const char* fn, const s4d_layer_params<T>& p, std::size_t L,
                                  const s4d_layer_options& options, const s4d_layer* self) {
    const auto check_size = [&](const char* name, std::size_t size, std::size_t expected, const char* formula) {
      detail::require(size == expected, fn, "params.", name, " has ", size, " elements, expected ", expected, " (",
                      formula, ")");
    };
    check_size("log_dt", p.log_dt.size(), p.H * p.dt_columns, "H * dt_columns");
    check_size("inv_A_real", p.inv_A_real.size(), p.H * p.N2, "H * N2");
    check_size("A_imag", p.A_imag.size(), p.H * p.N2, "H * N2");
    check_size("B", p.B.size(), p.H * p.N2, "H * N2");
    check_size("C", p.C.size(), p.kernels * p.H * p.N2, "kernels * H * N2");
    check_size("D", p.D.size(), p.d_rows * p.H, "d_rows * H");
    const std::vector<T> dt = p.dt();
    const std::vector<std::complex<T>> A = p.A();
    return copy_params(fn, tensor_view<const T, 2>(dt.data(), {p.H, p.dt_columns}),
                       tensor_view<const std::complex<T>, 2>(A.data(), {p.H, p.N2}), p.B_view(), p.C_view(),
                       p.D_view(), L, options, self);
  }

  static spectrum_cache build_cache(const raw_params& r, std::size_t L, const s4d_layer_options& options) {
    std::vector<T> kernel(r.kernels * r.H * L);
    s4d_kernel_options kernel_options;
    kernel_options.method = options.method;
    kernel_options.exact = options.exact_kernel;
    kernel_options.parallel = options.parallel;
    const tensor_view<T, 3> K(kernel.data(), {r.kernels, r.H, L});
    s4d_kernel<T, Arch>(r.dt_view(), r.A_view(), r.B_view(), r.C_view(), K, kernel_options);
    fft_conv_options conv_options;
    conv_options.bidirectional = options.bidirectional;
    conv_options.method = options.conv_method;
    fft_conv_plan<T, Arch> plan("s4d_layer", tensor_view<const T, 3>(K), L, conv_options);
    std::vector<std::complex<T>> dA(r.H * r.N2), dB(r.H * r.N2);
    s4d_step_setup<T>(r.dt_view(), r.A_view(), r.B_view(), make_view(dA, r.H, r.N2), make_view(dB, r.H, r.N2),
                      options.method);
    return spectrum_cache{std::move(kernel), std::move(plan), std::move(dA), std::move(dB)};
  }

  // Takes validated parameters; rebuilds the cache first (so that a throw leaves the layer as it
  // was) when the kernel's inputs changed.
  bool apply(raw_params&& r) {
    const bool changed = r.dt_columns != p_.dt_columns || !detail::same_bits(r.dt, p_.dt) ||
                         !detail::same_bits(r.A, p_.A) || !detail::same_bits(r.B, p_.B) || !detail::same_bits(r.C, p_.C);
    if (changed) {
      spectrum_cache fresh = build_cache(r, L_, options_);
      cache_ = std::move(fresh);
      ++kernel_builds_;
    }
    p_ = std::move(r);
    return changed;
  }

  void check_forward(const_view<T, 3> u, tensor_view<T, 3> y) const {
    constexpr const char* fn = "s4d_layer";
    detail::check_shape(fn, "u", u, {u.extent(0), L_, H_});
    detail::check_shape(fn, "y", y, {u.extent(0), L_, output_width()});
    detail::check_data(fn, "u", u);
    detail::check_data(fn, "y", y);
    detail::check_no_overlap(fn, "y", y, "u", u);
  }

  tensor_view<const T, 2> skip() const noexcept {
    return p_.has_D ? tensor_view<const T, 2>(p_.D.data(), {channels_, H_}) : tensor_view<const T, 2>{};
  }

  // v = K * u + D u into y (B, L, C*H), then the activation in place.
  void run_conv(const_view<T, 3> u, tensor_view<T, 3> y, fft_conv_workspace<T>& workspace,
                const parallel_options& parallel) const {
    cache_.plan.forward(u, y, skip(), workspace, parallel);
    if (options_.activation == s4d_activation::gelu) {
      for (std::size_t b = 0; b < y.extent(0); ++b)
        for (std::size_t t = 0; t < y.extent(1); ++t)
          for (std::size_t j = 0; j < y.extent(2); ++j) y(b, t, j) = detail::gelu_exact(y(b, t, j));
    }
  }

  // The convolution and activation into hidden (B L, C*H), z = hidden W^T (B L, 2H) after it, then
  // y = (z_a + bias_a) sigmoid(z_g + bias_g).
  void run_glu(const_view<T, 3> u, tensor_view<T, 3> y, fft_conv_workspace<T>& workspace, T* hidden,
               const parallel_options& parallel) const {
    const std::size_t B = u.extent(0), rows = B * L_, CH = channels_ * H_;
    run_conv(u, tensor_view<T, 3>(hidden, {B, L_, CH}), workspace, parallel);
    T* z = hidden + rows * CH;
    using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::Map<const matrix> a(hidden, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(CH));
    const Eigen::Map<const matrix> w(W_.data(), static_cast<Eigen::Index>(2 * H_), static_cast<Eigen::Index>(CH));
    Eigen::Map<matrix> zm(z, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(2 * H_));
    zm.noalias() = a * w.transpose();
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < L_; ++t) {
        const T* zr = z + (b * L_ + t) * 2 * H_;
        for (std::size_t j = 0; j < H_; ++j)
          y(b, t, j) = (zr[j] + bias_[j]) * detail::glu_sigmoid(zr[H_ + j] + bias_[H_ + j]);
      }
  }

  std::size_t H_, N2_, channels_, kernels_, L_;
  s4d_layer_options options_;
  raw_params p_;
  spectrum_cache cache_;  // declared after p_: built from it in the constructor
  std::size_t kernel_builds_ = 1;
  std::vector<T> W_, bias_;  // output linear (2H, C*H), (2H); empty without the output GLU
};

}  // namespace ssmkit
