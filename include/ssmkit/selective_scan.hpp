#pragma once
/// \file selective_scan.hpp
/// Mamba's selective scan (the S6 layer's recurrence) and its single-token decode step, with the
/// semantics of state-spaces/mamba's `selective_scan_ref` and `selective_state_update_ref`
/// (docs/selective_scan.md; ../shared/docs/reference-semantics.md sections 6 and 7).
///
/// Shapes: B batch, D (or dim) channels, L tokens, N state size, G groups, H heads, P head dim.
/// Every argument is a view with any strides: mamba's channel-major (batch, D, L) is the plain
/// row-major view, and the token-major (batch, L, D) of inference engines is passed as
/// `make_view(p, batch, L, D).transposed(1, 2)`. Both get a fast path; other layouts run the same
/// maths through strided copies.
///
/// Optional arguments travel in small option structs, where an empty (default-constructed) view
/// means "absent". A is real (D, N), or complex (D, N) through the std::complex overload (mamba's
/// complex variant, with its real-interleaved variable B and C). Packed variable-length batches
/// pass cumulative sequence offsets (`cu_seqlens`) in the options.

#include <array>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/selective_scan_impl.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// B or C of selective_scan in one of its three layouts, chosen by the view's rank:
///   - rank 2, **fixed** (D, N): the same matrix at every token;
///   - rank 3, **variable** (batch, N, L): one vector per token, shared by all channels;
///   - rank 4, **grouped** (batch, G, N, L): channel d uses group d / (D / G), contiguous blocks.
/// Constructed implicitly from a view of T or const T, so `selective_scan(u, delta, A, B, C, ...)`
/// takes any of the three directly.
template <class T>
class bc_view {
 public:
  bc_view() = default;

  template <class U, class = std::enable_if_t<std::is_same_v<std::remove_const_t<U>, T>>>
  bc_view(tensor_view<U, 2> fixed) noexcept : rank_(2), fixed_(fixed) {}  // NOLINT(google-explicit-constructor)

  template <class U, class = std::enable_if_t<std::is_same_v<std::remove_const_t<U>, T>>>
  bc_view(tensor_view<U, 3> variable) noexcept : rank_(3), variable_(variable) {}  // NOLINT(google-explicit-constructor)

  template <class U, class = std::enable_if_t<std::is_same_v<std::remove_const_t<U>, T>>>
  bc_view(tensor_view<U, 4> grouped) noexcept : rank_(4), grouped_(grouped) {}  // NOLINT(google-explicit-constructor)

  /// 2 (fixed), 3 (variable) or 4 (grouped); 0 for a default-constructed bc_view.
  std::size_t rank() const noexcept { return rank_; }
  const tensor_view<const T, 2>& fixed() const noexcept { return fixed_; }
  const tensor_view<const T, 3>& variable() const noexcept { return variable_; }
  const tensor_view<const T, 4>& grouped() const noexcept { return grouped_; }

 private:
  std::size_t rank_ = 0;
  tensor_view<const T, 2> fixed_;
  tensor_view<const T, 3> variable_;
  tensor_view<const T, 4> grouped_;
};

/// The optional arguments of selective_scan. An empty view means "not given".
template <class T>
struct selective_scan_options {
  const_view<T, 1> D;              ///< (D): skip connection, out += D[d] * u
  const_view<T, 3> z;              ///< (batch, D, L): gate, out *= silu(z)
  const_view<T, 1> delta_bias;     ///< (D): added to delta before the softplus
  bool delta_softplus = false;     ///< Δ = softplus(delta + delta_bias), threshold 20 as torch
  const_view<T, 3> initial_state;  ///< (batch, D, N): h_{-1} (zero when absent); beyond the reference
  tensor_view<T, 3> last_state;    ///< output (batch, D, N): h_{L-1}; may be exactly initial_state
  parallel_options parallel;       ///< threads over batch x channel blocks
  /// (S + 1) cumulative offsets along L of S packed sequences: 0 = cu[0] <= cu[1] <= ... <= cu[S] = L
  /// (empty sequences allowed). The state restarts at every offset, from that sequence's row of
  /// initial_state or zero, and each sequence's final state goes to its own row of last_state: with
  /// offsets both are (batch * S, D, N), row b * S + s. The same offsets apply to every batch row.
  const_view<std::int64_t, 1> cu_seqlens;
  /// The "fast exp" for the decay factors exp(Δ A), off by default: 2^(Δ · A log2 e) with a
  /// degree-5 polynomial (detail::fast_exp2). Pointwise relative error 1.6e-7 + 0.7 u |Δ A log2 e|
  /// (exact 0, inf and NaN where exp has them); inside the scan its error stays within the bound
  /// of docs/selective_scan.md (tested: at most 3e-7 of max |out| against a double reference). It
  /// takes effect for float on AVX-512 backends; elsewhere the accurate exp runs.
  bool fast_exp = false;
};

/// B or C of the complex-A selective_scan, in mamba's layouts, chosen by the view's rank:
///   - rank 2, **fixed** (D, N) of std::complex<T>;
///   - rank 3, **variable** (batch, N, 2L) of *real* T: token t's value is (re, im) at positions
///     (2t, 2t + 1) of the last axis;
///   - rank 4, **grouped** (batch, G, N, 2L) of real T, interleaved the same way.
/// Any strides (the (re, im) pair of token t is at 2t and 2t + 1 in units of the last stride).
template <class T>
class complex_bc_view {
 public:
  complex_bc_view() = default;

  template <class U, class = std::enable_if_t<std::is_same_v<std::remove_const_t<U>, std::complex<T>>>>
  complex_bc_view(tensor_view<U, 2> fixed) noexcept : rank_(2), fixed_(fixed) {}  // NOLINT(google-explicit-constructor)

  template <class U, class = std::enable_if_t<std::is_same_v<std::remove_const_t<U>, T>>>
  complex_bc_view(tensor_view<U, 3> variable) noexcept  // NOLINT(google-explicit-constructor)
      : rank_(3), variable_(variable) {}

  template <class U, class = std::enable_if_t<std::is_same_v<std::remove_const_t<U>, T>>>
  complex_bc_view(tensor_view<U, 4> grouped) noexcept  // NOLINT(google-explicit-constructor)
      : rank_(4), grouped_(grouped) {}

  /// 2 (fixed), 3 (variable) or 4 (grouped); 0 for a default-constructed complex_bc_view.
  std::size_t rank() const noexcept { return rank_; }
  const tensor_view<const std::complex<T>, 2>& fixed() const noexcept { return fixed_; }
  const tensor_view<const T, 3>& variable() const noexcept { return variable_; }
  const tensor_view<const T, 4>& grouped() const noexcept { return grouped_; }

 private:
  std::size_t rank_ = 0;
  tensor_view<const std::complex<T>, 2> fixed_;
  tensor_view<const T, 3> variable_;
  tensor_view<const T, 4> grouped_;
};

/// The optional arguments of the complex-A selective_scan: as selective_scan_options, with the
/// states complex. An empty view means "not given".
template <class T>
struct selective_scan_complex_options {
  const_view<T, 1> D;                            ///< (D): skip connection, out += D[d] * u
  const_view<T, 3> z;                            ///< (batch, D, L): gate, out *= silu(z)
  const_view<T, 1> delta_bias;                   ///< (D): added to delta before the softplus
  bool delta_softplus = false;                   ///< Δ = softplus(delta + delta_bias), threshold 20
  const_view<std::complex<T>, 3> initial_state;  ///< (batch, D, N) complex h_{-1}; beyond the reference
  tensor_view<std::complex<T>, 3> last_state;    ///< output (batch, D, N) complex h_{L-1}; may be initial_state
  const_view<std::int64_t, 1> cu_seqlens;        ///< packed sequences, as selective_scan_options
  parallel_options parallel;                     ///< threads over batch x channel blocks
};

/// The optional arguments of selective_state_update, for a state of rank StateRank (3 without
/// heads, 4 with heads). An empty view means "not given".
template <class T, std::size_t StateRank>
struct selective_state_update_options {
  static_assert(StateRank == 3 || StateRank == 4, "selective_state_update: the state has rank 3 or 4");
  const_view<T, StateRank - 2> D;        ///< (D) or (H, P): out += D * x
  const_view<T, StateRank - 1> z;        ///< like x: out *= silu(z)
  const_view<T, StateRank - 2> dt_bias;  ///< like D: added to dt before the softplus
  bool dt_softplus = false;              ///< dt = softplus(dt + dt_bias), threshold 20
  /// The scan's fast exp (selective_scan_options::fast_exp) for exp(dt A): a model that scans with
  /// it decodes with it. Float on AVX-512 only; elsewhere the accurate exp runs.
  bool fast_exp = false;
  parallel_options parallel;             ///< threads over (batch, head) rows
};

namespace detail {

template <class T>
using bc_param = typename std::enable_if<true, bc_view<T>>::type;
template <class T>
using complex_bc_param = typename std::enable_if<true, complex_bc_view<T>>::type;

/// A view is given when it has data or a non-zero size (check_data rejects a null non-empty one).
template <class V>
bool given(const V& view) noexcept {
  return view.data() != nullptr || view.size() != 0;
}

template <class T, std::size_t R>
void check_optional_shape(std::string_view function, std::string_view argument, const tensor_view<T, R>& view,
                          const std::array<std::size_t, R>& expected) {
  check_data(function, argument, view);
  if (given(view)) check_shape(function, argument, view, expected);
}

/// Validates B or C against (batch, D, N, L) and returns the normalised operand.
template <class T>
bc_operand<T> check_bc(std::string_view function, std::string_view argument, const bc_view<T>& x,
                       std::size_t batch, std::size_t dim, std::size_t nstate, std::size_t length) {
  bc_operand<T> op;
  switch (x.rank()) {
    case 2:
      check_data(function, argument, x.fixed());
      check_shape(function, argument, x.fixed(), {dim, nstate});
      op.fixed = true;
      op.matrix = x.fixed();
      break;
    case 3: {
      const auto& v = x.variable();
      check_data(function, argument, v);
      check_shape(function, argument, v, {batch, nstate, length});
      op.sequence = tensor_view<const T, 4>(v.data(), {batch, 1, nstate, length},
                                            {v.stride(0), 0, v.stride(1), v.stride(2)});
      break;
    }
    case 4: {
      const auto& v = x.grouped();
      const std::size_t groups = v.extent(1);
      check_data(function, argument, v);
      check_shape(function, argument, v, {batch, groups, nstate, length});
      require(groups > 0 && dim % groups == 0, function, argument, " has ", groups,
              " groups, which do not divide D = ", dim);
      op.sequence = v;
      break;
    }
    default:
      throw_error(function, argument, " is not given (expected a view of rank 2, 3 or 4)");
  }
  return op;
}

/// The real and imaginary parts of a std::complex<T> view, as two views of T ([complex.numbers]
/// guarantees the (re, im) array layout). A null view gives two null views.
template <class C, std::size_t R>
auto split_complex(const tensor_view<C, R>& v) noexcept {
  using T = std::conditional_t<std::is_const_v<C>, const typename std::remove_const_t<C>::value_type,
                               typename C::value_type>;
  std::array<std::ptrdiff_t, R> s{};
  for (std::size_t i = 0; i < R; ++i) s[i] = 2 * v.stride(i);
  T* re = reinterpret_cast<T*>(v.data());
  T* im = re == nullptr ? nullptr : re + 1;
  return std::pair{tensor_view<T, R>(re, v.extents(), s), tensor_view<T, R>(im, v.extents(), s)};
}

/// Validates complex-A B or C against (batch, D, N, L) and returns its normalised real and
/// imaginary operands.
template <class T>
std::pair<bc_operand<T>, bc_operand<T>> check_complex_bc(std::string_view function, std::string_view argument,
                                                         const complex_bc_view<T>& x, std::size_t batch,
                                                         std::size_t dim, std::size_t nstate, std::size_t length) {
  bc_operand<T> re, im;
  // The (re, im) pairs along the last axis of a real view: two views of L tokens, stride doubled.
  const auto pairs = [](const tensor_view<const T, 4>& v) {
    const std::ptrdiff_t sl = v.stride(3);
    const std::array<std::size_t, 4> e{v.extent(0), v.extent(1), v.extent(2), v.extent(3) / 2};
    const std::array<std::ptrdiff_t, 4> s{v.stride(0), v.stride(1), v.stride(2), 2 * sl};
    const T* p = v.data();
    return std::pair{tensor_view<const T, 4>(p, e, s), tensor_view<const T, 4>(p == nullptr ? p : p + sl, e, s)};
  };
  switch (x.rank()) {
    case 2: {
      check_data(function, argument, x.fixed());
      check_shape(function, argument, x.fixed(), {dim, nstate});
      const auto [r, i] = split_complex(x.fixed());
      re.fixed = im.fixed = true;
      re.matrix = r;
      im.matrix = i;
      break;
    }
    case 3: {
      const auto& v = x.variable();
      check_data(function, argument, v);
      check_shape(function, argument, v, {batch, nstate, 2 * length});
      std::tie(re.sequence, im.sequence) = pairs(tensor_view<const T, 4>(
          v.data(), {batch, 1, nstate, 2 * length}, {v.stride(0), 0, v.stride(1), v.stride(2)}));
      break;
    }
    case 4: {
      const auto& v = x.grouped();
      const std::size_t groups = v.extent(1);
      check_data(function, argument, v);
      check_shape(function, argument, v, {batch, groups, nstate, 2 * length});
      require(groups > 0 && dim % groups == 0, function, argument, " has ", groups,
              " groups, which do not divide D = ", dim);
      std::tie(re.sequence, im.sequence) = pairs(v);
      break;
    }
    default:
      throw_error(function, argument, " is not given (expected a view of rank 2, 3 or 4)");
  }
  return {re, im};
}

template <class T, class V>
void check_bc_overlap(std::string_view function, std::string_view output, const V& out, std::string_view argument,
                      const complex_bc_view<T>& x) {
  if (x.rank() == 2) check_no_overlap(function, output, out, argument, x.fixed());
  if (x.rank() == 3) check_no_overlap(function, output, out, argument, x.variable());
  if (x.rank() == 4) check_no_overlap(function, output, out, argument, x.grouped());
}

/// Validates packed-sequence offsets against L and returns the number of sequences (1 when not
/// given): at least two entries, the first 0, non-decreasing, none beyond L, the last L.
inline std::size_t check_cu_seqlens(std::string_view fn, const tensor_view<const std::int64_t, 1>& cu,
                                    std::size_t length) {
  check_data(fn, "cu_seqlens", cu);
  if (!given(cu)) return 1;
  const std::size_t n = cu.extent(0);
  require(n >= 2, fn, "cu_seqlens has ", n, " entries, expected at least 2 (0 and L)");
  require(cu(0) == 0, fn, "cu_seqlens starts at ", cu(0), ", expected 0");
  const auto L = static_cast<std::int64_t>(length);
  for (std::size_t i = 1; i < n; ++i) {
    require(cu(i) >= cu(i - 1), fn, "cu_seqlens is not monotonic: cu_seqlens[", i, "] = ", cu(i), " < cu_seqlens[",
            i - 1, "] = ", cu(i - 1));
    require(cu(i) <= L, fn, "cu_seqlens[", i, "] = ", cu(i), " overruns L = ", length);
  }
  require(cu(n - 1) == L, fn, "cu_seqlens ends at ", cu(n - 1), ", expected L = ", length);
  return n - 1;
}

/// The shape checks shared by the real and complex scans: out, D, z, delta_bias, the offsets,
/// then initial_state and last_state (batch * S, D, N). Returns S, the number of packed sequences.
template <class T, class O>
std::size_t check_scan_shapes(std::string_view fn, const tensor_view<const T, 3>& u, std::size_t nstate,
                              const tensor_view<T, 3>& out, const O& options) {
  const std::size_t batch = u.extent(0), dim = u.extent(1), length = u.extent(2);
  check_data(fn, "out", out);
  check_shape(fn, "out", out, {batch, dim, length});
  check_optional_shape(fn, "D", options.D, {dim});
  check_optional_shape(fn, "z", options.z, {batch, dim, length});
  check_optional_shape(fn, "delta_bias", options.delta_bias, {dim});
  const std::size_t sequences = check_cu_seqlens(fn, options.cu_seqlens, length);
  check_optional_shape(fn, "initial_state", options.initial_state, {batch * sequences, dim, nstate});
  check_optional_shape(fn, "last_state", options.last_state, {batch * sequences, dim, nstate});
  return sequences;
}

/// The overlap checks shared by the real and complex scans: out and last_state against u, delta
/// and the options (A, B, C and the states are the callers').
template <class T, class O>
void check_scan_overlaps(std::string_view fn, const tensor_view<const T, 3>& u, const tensor_view<const T, 3>& delta,
                         const tensor_view<T, 3>& out, const O& options) {
  check_no_overlap(fn, "out", out, "u", u);
  check_no_overlap(fn, "out", out, "delta", delta);
  check_no_overlap(fn, "out", out, "D", options.D);
  check_no_overlap(fn, "out", out, "z", options.z);
  check_no_overlap(fn, "out", out, "delta_bias", options.delta_bias);
  check_no_overlap(fn, "out", out, "cu_seqlens", options.cu_seqlens);
  const auto& last = options.last_state;
  check_no_overlap(fn, "last_state", last, "u", u);
  check_no_overlap(fn, "last_state", last, "delta", delta);
  check_no_overlap(fn, "last_state", last, "D", options.D);
  check_no_overlap(fn, "last_state", last, "z", options.z);
  check_no_overlap(fn, "last_state", last, "delta_bias", options.delta_bias);
  check_no_overlap(fn, "last_state", last, "cu_seqlens", options.cu_seqlens);
}

template <class T, class V>
void check_bc_overlap(std::string_view function, std::string_view output, const V& out, std::string_view argument,
                      const bc_view<T>& x) {
  if (x.rank() == 2) check_no_overlap(function, output, out, argument, x.fixed());
  if (x.rank() == 3) check_no_overlap(function, output, out, argument, x.variable());
  if (x.rank() == 4) check_no_overlap(function, output, out, argument, x.grouped());
}

/// Everything the real and complex scans check alike, after B and C themselves: the shapes of
/// out, the options and the states, and every overlap of out or last_state with an input.
/// last_state may be exactly initial_state (in place, the same elements and strides): each block
/// reads its h0 entries before it writes the same entries of last_state, and no block touches
/// another's.
template <class T, class AView, class BC, class O>
void check_scan_arguments(std::string_view fn, const tensor_view<const T, 3>& u, const tensor_view<const T, 3>& delta,
                          const AView& A, const BC& B, const BC& C, const tensor_view<T, 3>& out, const O& options) {
  check_scan_shapes(fn, u, A.extent(1), out, options);
  check_scan_overlaps(fn, u, delta, out, options);
  const auto& last = options.last_state;
  const auto& h0 = options.initial_state;
  check_no_overlap(fn, "out", out, "A", A);
  check_bc_overlap(fn, "out", out, "B", B);
  check_bc_overlap(fn, "out", out, "C", C);
  check_no_overlap(fn, "out", out, "initial_state", h0);
  check_no_overlap(fn, "out", out, "last_state", last);
  check_no_overlap(fn, "last_state", last, "A", A);
  check_bc_overlap(fn, "last_state", last, "B", B);
  check_bc_overlap(fn, "last_state", last, "C", C);
  const bool in_place = last.data() == h0.data() && last.strides() == h0.strides();
  if (!in_place) check_no_overlap(fn, "last_state", last, "initial_state", h0);
}

/// The fields of scan_problem that the real and complex scans set alike.
template <class T, class O>
void set_scan_problem(scan_problem<T>& p, const tensor_view<const T, 3>& u, const tensor_view<const T, 3>& delta,
                      std::size_t nstate, const tensor_view<T, 3>& out, const O& options) {
  p.u = u;
  p.delta = delta;
  p.D = options.D;
  p.delta_bias = options.delta_bias;
  p.z = options.z;
  p.out = out;
  p.softplus = options.delta_softplus;
  p.batch = u.extent(0);
  p.dim = u.extent(1);
  p.length = u.extent(2);
  p.nstate = nstate;
  p.cu_seqlens = options.cu_seqlens;
}

/// The view with a dimension of extent 1 (stride 0) inserted before dimension `at`.
template <class T, std::size_t R>
tensor_view<T, R + 1> insert_unit(const tensor_view<T, R>& v, std::size_t at) noexcept {
  std::array<std::size_t, R + 1> e{};
  std::array<std::ptrdiff_t, R + 1> s{};
  for (std::size_t i = 0, j = 0; i < R + 1; ++i) {
    if (i == at) {
      e[i] = 1;
      s[i] = 0;
    } else {
      e[i] = v.extent(j);
      s[i] = v.stride(j);
      ++j;
    }
  }
  return {v.data(), e, s};
}

/// Checks of selective_state_update shared by both layouts: data, then that the state and out
/// are disjoint from each other and from every input.
template <class T, std::size_t SR>
void check_state_update_overlaps(std::string_view fn, const tensor_view<T, SR>& state,
                                 const tensor_view<const T, SR - 1>& x, const tensor_view<const T, SR - 1>& dt,
                                 const tensor_view<const T, SR - 1>& A, const tensor_view<const T, SR - 1>& B,
                                 const tensor_view<const T, SR - 1>& C, const tensor_view<T, SR - 1>& out,
                                 const selective_state_update_options<T, SR>& o) {
  check_no_overlap(fn, "out", out, "state", state);
  check_no_overlap(fn, "state", state, "x", x);
  check_no_overlap(fn, "state", state, "dt", dt);
  check_no_overlap(fn, "state", state, "A", A);
  check_no_overlap(fn, "state", state, "B", B);
  check_no_overlap(fn, "state", state, "C", C);
  check_no_overlap(fn, "state", state, "D", o.D);
  check_no_overlap(fn, "state", state, "z", o.z);
  check_no_overlap(fn, "state", state, "dt_bias", o.dt_bias);
  check_no_overlap(fn, "out", out, "x", x);
  check_no_overlap(fn, "out", out, "dt", dt);
  check_no_overlap(fn, "out", out, "A", A);
  check_no_overlap(fn, "out", out, "B", B);
  check_no_overlap(fn, "out", out, "C", C);
  check_no_overlap(fn, "out", out, "D", o.D);
  check_no_overlap(fn, "out", out, "z", o.z);
  check_no_overlap(fn, "out", out, "dt_bias", o.dt_bias);
}

}  // namespace detail

/**
 * The selective scan of Mamba (S6), exactly mamba's `selective_scan_ref` for real A, plus an
 * optional initial state:
 *
 *     Δ_t   = delta_t + delta_bias[d],  then softplus(Δ_t) when delta_softplus
 *     h_t   = exp(Δ_t A[d, :]) ⊙ h_{t-1} + Δ_t u_t B_t          (ZOH on A, Euler on B)
 *     y_t   = Σ_n h_t,n C_t,n
 *     out_t = (y_t + D[d] u_t) · silu(z_t)                        (D before the gate)
 *
 * for every batch row b and channel d independently, with h_{-1} = initial_state (or 0), and
 * last_state = h_{L-1}.
 *
 * \param u, delta  (batch, D, L), any strides.
 * \param A         (D, N), real.
 * \param B, C      each (D, N) fixed, (batch, N, L) variable or (batch, G, N, L) grouped, G | D
 *                  (see bc_view).
 * \param out       (batch, D, L) output, any strides; must not overlap any input or last_state.
 * \param options   D, z, delta_bias, delta_softplus, initial_state, last_state, threads, and
 *                  cu_seqlens for packed sequences (the state restarts at each offset; the states
 *                  are then (batch * S, D, N)). The output equals running each sequence alone,
 *                  bitwise.
 *
 * Fast paths: channel-major (stride 1 along L) and token-major (stride 1 along D) u, delta, z and
 * out; other layouts pay strided copies into the chunk buffers. SIMD runs across channels.
 * \pre T is float or double; Arch is `scalar` or an xsimd architecture the CPU supports.
 * \throws ssmkit::error on any shape mismatch (the message names the argument, its shape and the
 *   expected one), G not dividing D, a null view with a non-zero size, an output overlapping an
 *   input (last_state may be exactly initial_state, for chunked prefill in place), or cu_seqlens
 *   with fewer than 2 entries, not starting at 0, decreasing, overrunning L or not ending at L.
 *   Nothing is written before all checks pass.
 *
 * Numerics: each token multiplies the state by exp(Δ A) with a relative error of a few ulp, so the
 * error of h_t (and of out) relative to max|out| grows at most linearly, like (L + N) · u, and in
 * practice like min(L, 1/(1 - exp(Δ A))) · u (the state forgets old errors). The SIMD and scalar
 * backends differ only by the exp implementation (on AVX-512 float ssmkit's own, within 1.3 ulp;
 * otherwise xsimd's; libm's on the scalar backend), docs/selective_scan.md. Threads (options.parallel)
 * do not change the result, and neither does cutting L into pieces chained through the states.
 * An exp that underflows (Δ A below about -104 in float) gives an exact 0 decay, never NaN; NaN
 * inputs propagate to the outputs they reach.
 */
template <class T, class Arch = default_arch>
void selective_scan(const_view<T, 3> u, const_view<T, 3> delta, const_view<T, 2> A, detail::bc_param<T> B,
                    detail::bc_param<T> C, tensor_view<T, 3> out, const selective_scan_options<T>& options = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "selective_scan: T is float or double");
  constexpr std::string_view fn = "selective_scan";
  detail::check_data(fn, "u", u);
  const std::size_t batch = u.extent(0), dim = u.extent(1), length = u.extent(2);
  detail::check_data(fn, "delta", delta);
  detail::check_shape(fn, "delta", delta, {batch, dim, length});
  detail::check_data(fn, "A", A);
  const std::size_t nstate = A.extent(1);
  detail::check_shape(fn, "A", A, {dim, nstate});
  detail::scan_problem<T> p;
  p.B = detail::check_bc(fn, "B", B, batch, dim, nstate, length);
  p.C = detail::check_bc(fn, "C", C, batch, dim, nstate, length);
  detail::check_scan_arguments(fn, u, delta, A, B, C, out, options);

  detail::set_scan_problem(p, u, delta, nstate, out, options);
  p.A = A;
  p.h0 = options.initial_state;
  p.last_state = options.last_state;
  p.fast_exp = options.fast_exp && detail::has_fast_exp2_v<T, Arch>;  // block_init then scales A by log2 e
  detail::selective_scan_run<T, Arch>(p, options.parallel);
}

/**
 * The selective scan with complex A, exactly mamba's `selective_scan_ref` for complex A (plus an
 * optional complex initial state and packed sequences, as the real overload):
 *
 *     h_t   = exp(Δ_t A[d, :]) ⊙ h_{t-1} + Δ_t u_t B_t        (complex A, B, C and h)
 *     y_t   = 2 Re Σ_n h_t,n C_t,n                               (C not conjugated)
 *     out_t = (y_t + D[d] u_t) · silu(z_t)
 *
 * with Δ as in the real overload; u, delta, D, z, delta_bias and out stay real.
 *
 * \param A      (D, N) of std::complex<T>.
 * \param B, C   each (D, N) complex fixed, or real (batch, N, 2L) variable or (batch, G, N, 2L)
 *               grouped with the (re, im) of token t at positions (2t, 2t + 1) (complex_bc_view).
 * \param options initial_state / last_state are complex (batch, D, N) ((batch * S, D, N) with
 *               cu_seqlens); the rest as selective_scan_options.
 *
 * Internally split (SoA): real and imaginary parts in separate registers, SIMD across channels,
 * tiles of up to 8 complex states in registers; exp(Δ a_r) is the real scan's decay_exp and
 * cos/sin(Δ a_i) xsimd's (libm's on the scalar backend).
 * \throws ssmkit::error as the real overload (B/C shapes name 2L for the interleaved axis).
 * Nothing is written before all checks pass.
 *
 * Numerics: as the real overload; the rotation adds a few ulp per token (|exp(iθ)| = 1 up to
 * rounding), so the error bound (L + N) · u keeps its form.
 */
template <class T, class Arch = default_arch>
void selective_scan(const_view<T, 3> u, const_view<T, 3> delta, const_view<std::complex<T>, 2> A,
                    detail::complex_bc_param<T> B, detail::complex_bc_param<T> C, tensor_view<T, 3> out,
                    const selective_scan_complex_options<T>& options = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "selective_scan: T is float or double");
  constexpr std::string_view fn = "selective_scan";
  detail::check_data(fn, "u", u);
  const std::size_t batch = u.extent(0), dim = u.extent(1), length = u.extent(2);
  detail::check_data(fn, "delta", delta);
  detail::check_shape(fn, "delta", delta, {batch, dim, length});
  detail::check_data(fn, "A", A);
  const std::size_t nstate = A.extent(1);
  detail::check_shape(fn, "A", A, {dim, nstate});
  detail::scan_problem<T> p;
  std::tie(p.B, p.B_im) = detail::check_complex_bc(fn, "B", B, batch, dim, nstate, length);
  std::tie(p.C, p.C_im) = detail::check_complex_bc(fn, "C", C, batch, dim, nstate, length);
  detail::check_scan_arguments(fn, u, delta, A, B, C, out, options);

  detail::set_scan_problem(p, u, delta, nstate, out, options);
  p.is_complex = true;
  std::tie(p.A, p.A_im) = detail::split_complex(A);
  std::tie(p.h0, p.h0_im) = detail::split_complex(options.initial_state);
  std::tie(p.last_state, p.last_im) = detail::split_complex(options.last_state);
  detail::selective_scan_run<T, Arch>(p, options.parallel);
}

/**
 * One decode step of Mamba with heads, exactly mamba's `selective_state_update_ref`; the state is
 * updated in place:
 *
 *     dt    = dt + dt_bias[h, p],  then softplus(dt) when dt_softplus
 *     state = exp(dt A[h, p, :]) ⊙ state + dt x B[b, g(h), :]      (g(h) = h / (H / G))
 *     out   = (Σ_n state_n C[b, g(h), n] + D[h, p] x) · silu(z)     (the updated state)
 *
 * \param state  (batch, H, P, N), updated in place; any strides.
 * \param x, dt  (batch, H, P).
 * \param A      (H, P, N). Mamba-2's per-head scalar A is a view with strides (s, 0, 0).
 * \param B, C   (batch, G, N), G | H (G may differ between B and C).
 * \param out    (batch, H, P) output.
 * \param options D (H, P), z (batch, H, P), dt_bias (H, P), dt_softplus, threads.
 *
 * No heap allocation. L steps from a state h0 equal selective_scan over those L tokens with
 * initial_state h0, up to rounding (the decode sums over n in another order).
 * \throws ssmkit::error on a shape mismatch, G not dividing H, a null view with a non-zero size,
 *   or state/out overlapping each other or an input. Nothing is written before all checks pass.
 *
 * Numerics: one step; out has a relative error of a few ulp times N (the sum over n), normwise.
 */
template <class T, class Arch = default_arch>
void selective_state_update(tensor_view<T, 4> state, const_view<T, 3> x, const_view<T, 3> dt, const_view<T, 3> A,
                            const_view<T, 3> B, const_view<T, 3> C, tensor_view<T, 3> out,
                            const selective_state_update_options<T, 4>& options = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "selective_state_update: T is float or double");
  constexpr std::string_view fn = "selective_state_update";
  detail::check_data(fn, "state", state);
  const std::size_t batch = state.extent(0), H = state.extent(1), P = state.extent(2), N = state.extent(3);
  for (const auto& [name, v] : {std::pair{"x", x}, std::pair{"dt", dt}}) {
    detail::check_data(fn, name, v);
    detail::check_shape(fn, name, v, {batch, H, P});
  }
  detail::check_data(fn, "A", A);
  detail::check_shape(fn, "A", A, {H, P, N});
  for (const auto& [name, v] : {std::pair{"B", B}, std::pair{"C", C}}) {
    detail::check_data(fn, name, v);
    const std::size_t groups = v.extent(1);
    detail::check_shape(fn, name, v, {batch, groups, N});
    detail::require(groups > 0 && H % groups == 0, fn, name, " has ", groups, " groups, which do not divide H = ", H);
  }
  detail::check_data(fn, "out", out);
  detail::check_shape(fn, "out", out, {batch, H, P});
  detail::check_optional_shape(fn, "D", options.D, {H, P});
  detail::check_optional_shape(fn, "z", options.z, {batch, H, P});
  detail::check_optional_shape(fn, "dt_bias", options.dt_bias, {H, P});
  detail::check_state_update_overlaps(fn, state, x, dt, A, B, C, out, options);
  if (state.empty() && out.empty()) return;

  detail::state_update_problem<T> p;
  p.state = state;
  p.x = x;
  p.dt = dt;
  p.z = options.z;
  p.A = A;
  p.B = B;
  p.C = C;
  p.D = options.D;
  p.dt_bias = options.dt_bias;
  p.out = out;
  p.softplus = options.dt_softplus;
  p.fast_exp = options.fast_exp && detail::has_fast_exp2_v<T, Arch>;
  detail::selective_state_update_run<T, Arch>(p, options.parallel);
}

/**
 * One decode step of Mamba-1 (no heads), exactly mamba's `selective_state_update_ref` on the
 * (batch, D, N) layout; the state is updated in place:
 *
 *     dt    = dt + dt_bias[d],  then softplus(dt) when dt_softplus
 *     state = exp(dt A[d, :]) ⊙ state + dt x B[b, :]
 *     out   = (Σ_n state_n C[b, n] + D[d] x) · silu(z)
 *
 * \param state  (batch, D, N), updated in place; any strides.
 * \param x, dt  (batch, D).
 * \param A      (D, N).
 * \param B, C   (batch, N).
 * \param out    (batch, D) output.
 * \param options D (D), z (batch, D), dt_bias (D), dt_softplus, threads.
 *
 * No heap allocation. L steps equal selective_scan with variable B and C over those L tokens.
 * \throws ssmkit::error as the heads overload, with shapes in this layout.
 *
 * Numerics: one step; out has a relative error of a few ulp times N, normwise.
 */
template <class T, class Arch = default_arch>
void selective_state_update(tensor_view<T, 3> state, const_view<T, 2> x, const_view<T, 2> dt, const_view<T, 2> A,
                            const_view<T, 2> B, const_view<T, 2> C, tensor_view<T, 2> out,
                            const selective_state_update_options<T, 3>& options = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "selective_state_update: T is float or double");
  constexpr std::string_view fn = "selective_state_update";
  detail::check_data(fn, "state", state);
  const std::size_t batch = state.extent(0), dim = state.extent(1), N = state.extent(2);
  for (const auto& [name, v] : {std::pair{"x", x}, std::pair{"dt", dt}}) {
    detail::check_data(fn, name, v);
    detail::check_shape(fn, name, v, {batch, dim});
  }
  detail::check_data(fn, "A", A);
  detail::check_shape(fn, "A", A, {dim, N});
  for (const auto& [name, v] : {std::pair{"B", B}, std::pair{"C", C}}) {
    detail::check_data(fn, name, v);
    detail::check_shape(fn, name, v, {batch, N});
  }
  detail::check_data(fn, "out", out);
  detail::check_shape(fn, "out", out, {batch, dim});
  detail::check_optional_shape(fn, "D", options.D, {dim});
  detail::check_optional_shape(fn, "z", options.z, {batch, dim});
  detail::check_optional_shape(fn, "dt_bias", options.dt_bias, {dim});
  detail::check_state_update_overlaps(fn, state, x, dt, A, B, C, out, options);
  if (state.empty() && out.empty()) return;

  // The no-heads layout is the heads layout with H = 1, P = D and G = 1.
  detail::state_update_problem<T> p;
  p.state = detail::insert_unit(state, 1);
  p.x = detail::insert_unit(x, 1);
  p.dt = detail::insert_unit(dt, 1);
  p.z = detail::insert_unit(options.z, 1);
  p.A = detail::insert_unit(A, 0);
  p.B = detail::insert_unit(B, 1);
  p.C = detail::insert_unit(C, 1);
  p.D = detail::insert_unit(options.D, 0);
  p.dt_bias = detail::insert_unit(options.dt_bias, 0);
  p.out = detail::insert_unit(out, 1);
  p.softplus = options.dt_softplus;
  p.fast_exp = options.fast_exp && detail::has_fast_exp2_v<T, Arch>;
  detail::selective_state_update_run<T, Arch>(p, options.parallel);
}

}  // namespace ssmkit
