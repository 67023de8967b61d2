#pragma once
/// \file ssd.hpp
/// Mamba-2's structured state space duality (SSD) layer: a selective scan whose decay is one
/// scalar per head and token, with a large state and B, C shared by groups of heads
/// (Dao & Gu 2024, "Transformers are SSMs"). Reference semantics: mamba's
/// `ssd_chunk_scan_combined_ref` / `mamba_chunk_scan_combined` (ssd_combined.py),
/// `ssd_minimal_discrete` (ssd_minimal.py) and `selective_state_update_ref` (decode).
///
/// Shapes (token-major, as Mamba-2 stores them): B batch, L length, H heads, P head dim,
/// G groups (H % G == 0, head h reads group h / (H / G)), N state size.
///
///   ssd_scan           the layer: raw dt, A per head, D, z gate, dt bias/softplus/limit, any L
///   ssd_scan_discrete  ssd_minimal_discrete: inputs already discretised (X = x·dt, A = A_h·dt)
///   ssd_step           one decode token, state updated in place, no allocation
///
/// Two algorithms compute a scan (`ssd_algorithm`): the recurrent scan (token by token, SIMD
/// across P × N, threads over batch × heads) and the chunked SSD (within chunks of Q tokens the
/// quadratic "attention" form (C Bᵀ ∘ exp(segsum)) X with Eigen GEMMs, between chunks state
/// passing). They agree to rounding; docs/ssd.md gives the measured costs and the error bounds.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <type_traits>

#include <ssmkit/backend.hpp>
#include <ssmkit/detail/ssd_kernels.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit {

/// The optional arguments of `ssd_scan` (mamba_chunk_scan_combined's keyword arguments).
template <class T>
struct ssd_options {
  const_view<T, 2> D;                         ///< (H, P), or (H, 1) for one value per head; empty: no skip
  const_view<T, 4> z;                         ///< (B, L, H, P) gate, out · silu(z); empty: no gate
  const_view<T, 1> dt_bias;                   ///< (H), added to dt; empty: none
  bool dt_softplus = false;                   ///< dt ← softplus(dt + dt_bias)
  T dt_min = -std::numeric_limits<T>::infinity();  ///< dt_limit: dt ← clamp(dt, dt_min, dt_max) after softplus
  T dt_max = std::numeric_limits<T>::infinity();
  const_view<T, 4> initial_states;            ///< (B, H, P, N); empty: zero
  tensor_view<T, 4> final_states;             ///< (B, H, P, N) output; may be initial_states itself; empty: not returned
  /// (B, L) packed variable-length sequences: a token whose seq_idx differs from the previous
  /// token's starts a new sequence from a zero state. initial_states applies to each row's first
  /// sequence, final_states is the state after each row's last token. Empty: one sequence per row.
  tensor_view<const std::int32_t, 2> seq_idx;
  ssd_algorithm algorithm = ssd_algorithm::automatic;
  std::size_t chunk_size = 0;                 ///< chunked path's Q; 0: 64. Any L, not only multiples of Q
  ssd_workspace<T>* workspace = nullptr;      ///< reused scratch; null: allocate per call
};

/// The optional arguments of `ssd_scan_discrete`.
template <class T>
struct ssd_discrete_options {
  const_view<T, 4> initial_states;  ///< (B, H, P, N); empty: zero (mamba's (B, 1, H, P, N) without the 1)
  tensor_view<T, 4> final_states;   ///< (B, H, P, N) output; may be initial_states itself; empty: not returned
  ssd_algorithm algorithm = ssd_algorithm::automatic;
  std::size_t chunk_size = 0;       ///< 0: 64
  ssd_workspace<T>* workspace = nullptr;
};

/// The optional arguments of `ssd_step`.
template <class T>
struct ssd_step_options {
  const_view<T, 2> D;        ///< (H, P) or (H, 1); empty: none
  const_view<T, 3> z;        ///< (B, H, P); empty: none
  const_view<T, 1> dt_bias;  ///< (H); empty: none
  bool dt_softplus = false;
  T dt_min = -std::numeric_limits<T>::infinity();
  T dt_max = std::numeric_limits<T>::infinity();
};

namespace detail {

template <class T>
void ssd_check_dt_limit(std::string_view fn, T dt_min, T dt_max) {
  require(!(dt_min > dt_max) && !std::isnan(dt_min) && !std::isnan(dt_max), fn, "dt_limit (", dt_min, ", ",
          dt_max, ") is not an interval");
}

template <class T>
void ssd_check_d(std::string_view fn, const tensor_view<const T, 2>& D, std::size_t heads, std::size_t p) {
  if (D.empty() && D.data() == nullptr) return;
  if (D.extent(0) != heads || (D.extent(1) != p && D.extent(1) != 1)) {
    throw_error(fn, "D has shape ", format_shape(D.extents()), ", expected ",
                format_shape(std::array<std::size_t, 2>{heads, p}), " or ",
                format_shape(std::array<std::size_t, 2>{heads, 1}));
  }
  check_data(fn, "D", D);
}

/// Validates everything but dt's meaning; the problem's views are set, out included.
template <class T>
void ssd_validate(std::string_view fn, ssd_problem<T>& pr, std::string_view x_name, std::string_view out_name) {
  const auto& xe = pr.x.extents();
  pr.batch = xe[0];
  pr.length = xe[1];
  pr.heads = xe[2];
  pr.head_dim = xe[3];
  check_data(fn, x_name, pr.x);
  check_shape(fn, "dt", pr.dt, {pr.batch, pr.length, pr.heads});
  check_data(fn, "dt", pr.dt);
  if (!pr.discrete) {
    check_shape(fn, "A", pr.A, {pr.heads});
    check_data(fn, "A", pr.A);
  }
  pr.groups = pr.B.extent(2);
  pr.state = pr.B.extent(3);
  require(pr.B.extent(0) == pr.batch && pr.B.extent(1) == pr.length, fn, "B has shape ",
          format_shape(pr.B.extents()), ", expected (", pr.batch, ", ", pr.length, ", G, N)");
  require(pr.groups >= 1 && pr.heads % pr.groups == 0, fn, "B has ", pr.groups,
          " groups, which do not divide the ", pr.heads, " heads");
  check_data(fn, "B", pr.B);
  check_shape(fn, "C", pr.C, pr.B.extents());
  check_data(fn, "C", pr.C);
  ssd_check_d(fn, pr.D, pr.heads, pr.head_dim);
  if (!pr.z.empty() || pr.z.data() != nullptr) {
    check_shape(fn, "z", pr.z, xe);
    check_data(fn, "z", pr.z);
  }
  if (!pr.dt_bias.empty() || pr.dt_bias.data() != nullptr) {
    check_shape(fn, "dt_bias", pr.dt_bias, {pr.heads});
    check_data(fn, "dt_bias", pr.dt_bias);
  }
  if (!pr.seq_idx.empty() || pr.seq_idx.data() != nullptr) {
    check_shape(fn, "seq_idx", pr.seq_idx, {pr.batch, pr.length});
    check_data(fn, "seq_idx", pr.seq_idx);
  }
  const std::array<std::size_t, 4> state_shape{pr.batch, pr.heads, pr.head_dim, pr.state};
  if (!pr.initial_states.empty() || pr.initial_states.data() != nullptr) {
    check_shape(fn, "initial_states", pr.initial_states, state_shape);
    check_data(fn, "initial_states", pr.initial_states);
  }
  check_shape(fn, out_name, pr.out, xe);
  check_data(fn, out_name, pr.out);
  const bool has_final = !pr.final_states.empty() || pr.final_states.data() != nullptr;
  if (has_final) {
    check_shape(fn, "final_states", pr.final_states, state_shape);
    check_data(fn, "final_states", pr.final_states);
  }
  ssd_check_dt_limit(fn, pr.dt_min, pr.dt_max);

  // The outputs must not alias any input (final_states may be exactly initial_states: each head
  // reads its initial state before it writes its final one).
  auto no_overlap = [&](std::string_view oname, const auto& o) {
    check_no_overlap(fn, oname, o, x_name, pr.x);
    check_no_overlap(fn, oname, o, "dt", pr.dt);
    check_no_overlap(fn, oname, o, "A", pr.A);
    check_no_overlap(fn, oname, o, "B", pr.B);
    check_no_overlap(fn, oname, o, "C", pr.C);
    check_no_overlap(fn, oname, o, "D", pr.D);
    check_no_overlap(fn, oname, o, "z", pr.z);
    check_no_overlap(fn, oname, o, "dt_bias", pr.dt_bias);
    check_no_overlap(fn, oname, o, "seq_idx", pr.seq_idx);
  };
  no_overlap(out_name, pr.out);
  if (has_final) {
    no_overlap("final_states", pr.final_states);
    check_no_overlap(fn, "final_states", pr.final_states, out_name, pr.out);
    const bool in_place = pr.final_states.data() == pr.initial_states.data() &&
                          pr.final_states.strides() == pr.initial_states.strides();
    if (!in_place) check_no_overlap(fn, "final_states", pr.final_states, "initial_states", pr.initial_states);
  }
  check_no_overlap(fn, out_name, pr.out, "initial_states", pr.initial_states);
}

}  // namespace detail

/**
 * The Mamba-2 SSD scan (mamba_chunk_scan_combined, ssd_chunk_scan_combined_ref), for every
 * batch b, head h (group g = h / (H/G)) and token t:
 *
 *     dt_t = clamp(softplus?(dt[b,t,h] + dt_bias[h]), dt_min, dt_max)
 *     S_t  = exp(dt_t A[h]) S_{t-1} + dt_t x[b,t,h,:] ⊗ B[b,t,g,:]          (P × N, S_{-1} = initial state or 0)
 *     out[b,t,h,:] = (S_t C[b,t,g,:] + D[h] ∘ x[b,t,h,:]) ∘ silu(z[b,t,h,:])
 *
 * and final_states[b,h] = S_{L-1}. With seq_idx, a token whose seq_idx differs from the previous
 * one restarts from S = 0 (packed variable-length sequences; states never cross a boundary).
 *
 * \param x    (B, L, H, P) inputs.
 * \param dt   (B, L, H) raw time steps (bias, softplus and limit are applied inside).
 * \param A    (H) per-head decay rates (negative for a stable scan).
 * \param B,C  (B, L, G, N) input and output projections shared by the H/G heads of a group.
 * \param out  (B, L, H, P) output; must not overlap any input.
 * \param options   D, z, dt_bias, dt_softplus, dt limit, initial/final states, algorithm, chunk size.
 * \param parallel  threads: (batch, head) pairs are split into contiguous blocks, one per thread.
 * \pre Views may have any strides; the last dimension contiguous is the fast case. L may be any
 *      length, independent of the chunk size.
 * \throws ssmkit::error on a shape mismatch, G not dividing H, a null view, an output overlapping
 *      an input, or dt_min > dt_max; nothing is written then.
 *
 * Numerics: both algorithms sum the same terms in different orders. Every term of y_t is a
 * product of inputs and decays exp(Σ a) <= 1 (A <= 0, dt >= 0), so each output is within about
 * (N + Q + 2 L) u of the sum of the absolute values of its terms (N-term dot products; Q + N-term
 * GEMM sums on the chunked path; k rounded decays for a term k tokens old, and old terms decay away,
 * so in practice the error does not grow with L). The chunked path's decays come from sums of at
 * most Q log decays taken in the reference's order (the "stable segsum"), never from differences
 * of long cumulative sums. The recurrent path is bit-for-bit independent of the thread count.
 * NaN or inf in an input at token t reaches every output of that channel or head at or after t
 * and the final state; on the chunked path it may also reach earlier outputs of the same chunk
 * (0 · NaN in the masked product), as in the reference. Performance: docs/ssd.md.
 */
template <class T, class Arch = default_arch>
void ssd_scan(const_view<T, 4> x, const_view<T, 3> dt, const_view<T, 1> A, const_view<T, 4> B,
              const_view<T, 4> C, tensor_view<T, 4> out, const ssd_options<T>& options = {},
              const parallel_options& parallel = {}) {
  static_assert(std::is_floating_point_v<T>, "ssd_scan: T must be float or double");
  constexpr std::string_view fn = "ssd_scan";
  detail::ssd_problem<T> pr;
  pr.x = x;
  pr.dt = dt;
  pr.A = A;
  pr.B = B;
  pr.C = C;
  pr.D = options.D;
  pr.z = options.z;
  pr.dt_bias = options.dt_bias;
  pr.initial_states = options.initial_states;
  pr.seq_idx = options.seq_idx;
  pr.out = out;
  pr.final_states = options.final_states;
  pr.dt_softplus = options.dt_softplus;
  pr.dt_min = options.dt_min;
  pr.dt_max = options.dt_max;
  detail::ssd_validate(fn, pr, "x", "out");
  ssd_workspace<T> local;
  detail::ssd_run<T, Arch>(pr, options.algorithm, options.chunk_size,
                           options.workspace != nullptr ? *options.workspace : local, parallel);
}

/**
 * mamba's ssd_minimal_discrete: the SSD scan on already discretised inputs, for every batch b,
 * head h (group g = h / (H/G)) and token t:
 *
 *     S_t = exp(A[b,t,h]) S_{t-1} + X[b,t,h,:] ⊗ B[b,t,g,:],   Y[b,t,h,:] = S_t C[b,t,g,:]
 *
 * with S_{-1} the initial state (or 0), final_states = S_{L-1}. ssd_minimal_discrete has B and C
 * per head: pass G = H. This is a separate entry point because the discrete form does not map
 * onto `ssd_scan` exactly: there, one dt scales both the decay and the input, and recovering
 * dt = A/A_h and x = X/dt would divide (inexact, and undefined at dt = 0).
 *
 * \param X  (B, L, H, P) discretised inputs (x·dt).  \param A (B, L, H) log decays (A_h·dt).
 * \param B,C (B, L, G, N).  \param Y (B, L, H, P) output; must not overlap any input.
 * \pre any L (the reference requires L % block_len == 0; chunk_size need not divide L here).
 * \throws ssmkit::error like `ssd_scan` (with "X", "A" and "Y" as the argument names).
 * Numerics: as `ssd_scan`.
 */
template <class T, class Arch = default_arch>
void ssd_scan_discrete(const_view<T, 4> X, const_view<T, 3> A, const_view<T, 4> B, const_view<T, 4> C,
                       tensor_view<T, 4> Y, const ssd_discrete_options<T>& options = {},
                       const parallel_options& parallel = {}) {
  static_assert(std::is_floating_point_v<T>, "ssd_scan_discrete: T must be float or double");
  constexpr std::string_view fn = "ssd_scan_discrete";
  // A (B, L, H) plays the role of dt in the shared validation; rename it in messages.
  if (A.extents() != std::array<std::size_t, 3>{X.extent(0), X.extent(1), X.extent(2)}) {
    detail::throw_error(fn, "A has shape ", detail::format_shape(A.extents()), ", expected ",
                        detail::format_shape(std::array<std::size_t, 3>{X.extent(0), X.extent(1), X.extent(2)}));
  }
  detail::check_data(fn, "A", A);
  detail::ssd_problem<T> pr;
  pr.discrete = true;
  pr.x = X;
  pr.dt = A;
  pr.B = B;
  pr.C = C;
  pr.initial_states = options.initial_states;
  pr.out = Y;
  pr.final_states = options.final_states;
  detail::ssd_validate(fn, pr, "X", "Y");
  ssd_workspace<T> local;
  detail::ssd_run<T, Arch>(pr, options.algorithm, options.chunk_size,
                           options.workspace != nullptr ? *options.workspace : local, parallel);
}

/**
 * One decode token of the SSD layer (selective_state_update_ref with Mamba-2's per-head A, dt,
 * dt_bias), updating `state` in place:
 *
 *     dt = clamp(softplus?(dt[b,h] + dt_bias[h]), dt_min, dt_max)
 *     state[b,h] = exp(dt A[h]) state[b,h] + dt x[b,h,:] ⊗ B[b,g,:]
 *     out[b,h,:] = (state[b,h] C[b,g,:] + D[h] ∘ x[b,h,:]) ∘ silu(z[b,h,:])
 *
 * Calling it for t = 0..L-1 equals `ssd_scan` over the sequence (same maths, summed in another
 * order: they agree to rounding, see docs/ssd.md).
 *
 * \param state (B, H, P, N), updated in place; N contiguous is the fast case.
 * \param x (B, H, P).  \param dt (B, H) raw.  \param A (H).  \param B,C (B, G, N).
 * \param out (B, H, P); must not overlap the state or any input.
 * \throws ssmkit::error on bad shapes, null views, overlap or dt_min > dt_max; nothing is written then.
 * Allocates nothing (except the message of a thrown error). Numerics: N-term dot products, error ~ N u Σ|terms|.
 */
template <class T, class Arch = default_arch>
void ssd_step(tensor_view<T, 4> state, const_view<T, 3> x, const_view<T, 2> dt, const_view<T, 1> A,
              const_view<T, 3> B, const_view<T, 3> C, tensor_view<T, 3> out,
              const ssd_step_options<T>& options = {}, const parallel_options& parallel = {}) {
  static_assert(std::is_floating_point_v<T>, "ssd_step: T must be float or double");
  constexpr std::string_view fn = "ssd_step";
  const std::size_t batch = state.extent(0), heads = state.extent(1), p = state.extent(2), n = state.extent(3);
  detail::check_data(fn, "state", state);
  detail::check_shape(fn, "x", x, {batch, heads, p});
  detail::check_data(fn, "x", x);
  detail::check_shape(fn, "dt", dt, {batch, heads});
  detail::check_data(fn, "dt", dt);
  detail::check_shape(fn, "A", A, {heads});
  detail::check_data(fn, "A", A);
  const std::size_t groups = B.extent(1);
  detail::require(B.extent(0) == batch && B.extent(2) == n, fn, "B has shape ", detail::format_shape(B.extents()),
                  ", expected (", batch, ", G, ", n, ")");
  detail::require(groups >= 1 && heads % groups == 0, fn, "B has ", groups, " groups, which do not divide the ",
                  heads, " heads");
  detail::check_data(fn, "B", B);
  detail::check_shape(fn, "C", C, B.extents());
  detail::check_data(fn, "C", C);
  detail::ssd_check_d(fn, options.D, heads, p);
  if (!options.z.empty() || options.z.data() != nullptr) {
    detail::check_shape(fn, "z", options.z, {batch, heads, p});
    detail::check_data(fn, "z", options.z);
  }
  if (!options.dt_bias.empty() || options.dt_bias.data() != nullptr) {
    detail::check_shape(fn, "dt_bias", options.dt_bias, {heads});
    detail::check_data(fn, "dt_bias", options.dt_bias);
  }
  detail::check_shape(fn, "out", out, {batch, heads, p});
  detail::check_data(fn, "out", out);
  detail::ssd_check_dt_limit(fn, options.dt_min, options.dt_max);
  auto no_overlap = [&](std::string_view oname, const auto& o) {
    detail::check_no_overlap(fn, oname, o, "x", x);
    detail::check_no_overlap(fn, oname, o, "dt", dt);
    detail::check_no_overlap(fn, oname, o, "A", A);
    detail::check_no_overlap(fn, oname, o, "B", B);
    detail::check_no_overlap(fn, oname, o, "C", C);
    detail::check_no_overlap(fn, oname, o, "D", options.D);
    detail::check_no_overlap(fn, oname, o, "z", options.z);
    detail::check_no_overlap(fn, oname, o, "dt_bias", options.dt_bias);
  };
  no_overlap("state", state);
  no_overlap("out", out);
  detail::check_no_overlap(fn, "out", out, "state", state);

  const std::size_t tasks = batch * heads;
  if (tasks == 0 || p == 0) return;
  const std::size_t heads_per_group = heads / groups;
  parallel_options step_options = parallel;
  // A token of d_inner 1536 at N = 128 takes about 15 µs on one thread: three FMA-port operations
  // per state element (decay multiply, input FMA, output FMA) while its 768 KiB state is read and
  // written through L2; on two threads each core keeps half the state in its own L2. A fork/join
  // costs about a microsecond: split when each thread gets at least 32 Ki state updates (~3 µs).
  step_options.min_block = std::max<std::ptrdiff_t>(
      parallel.min_block, static_cast<std::ptrdiff_t>((std::size_t{1} << 15) / std::max<std::size_t>(1, p * n) + 1));
  parallel_for(std::size_t{0}, tasks, [&](std::size_t task) {
    const std::size_t b = task / heads, h = task % heads;
    const T bias = options.dt_bias.empty() ? T(0) : options.dt_bias(h);
    const T v = detail::ssd_process_dt(dt(b, h), bias, options.dt_softplus, options.dt_min, options.dt_max);
    detail::ssd_step_head<T, Arch>(state, x, B, C, options.D, options.z, out, b, h, h / heads_per_group, v * A(h), v);
  }, step_options);
}

}  // namespace ssmkit
