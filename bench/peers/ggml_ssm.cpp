// The ggml peer of the Mamba scans (bench_selective_scan.cpp and bench_ssd.cpp), built into
// ssmkit-bench only when SSMKIT_BENCH_GGML is on and find_package(ggml CONFIG) succeeds. ggml (the
// CPU engine of llama.cpp, ggml-org/ggml) is MIT-licensed, but like FFTW it is a peer only: it is
// never a dependency of the headers, and it is built next to the project, never inside it.
//
// What is timed: one graph of a single GGML_OP_SSM_SCAN node (ggml_ssm_scan), the op llama.cpp
// runs for both Mamba-1 (A of shape {N, D}: a decay per state) and Mamba-2 (A of shape {1, H}:
// one decay per head), computed by ggml_graph_compute on the CPU backend. The context, the graph,
// the plan and a persistent ggml threadpool are built once, outside the timing loop, as llama.cpp
// keeps them between tokens; the loop times ggml_graph_compute alone. The 2-thread rows need both
// cores to themselves: ggml's workers meet at spinning barriers, so with one core taken by another
// process a 2-thread decode step takes a scheduler slice (about 8 ms here) instead of about 15 us,
// and the scans take twice their time (real time about twice CPU time marks such a run).
//
// What the op does, and so what the rows compare (ggml/src/ggml-cpu/ops.cpp,
// ggml_compute_forward_ssm_scan_f32): per token, Δ = softplus(dt) (applied inside the op),
// h ← exp(Δ A) h + Δ x B, y = C·h. It does not add dt_bias, and does not apply the D skip or the
// z gate: llama.cpp runs those as separate ops around it. The ssmkit rows it is paired with do all
// three (delta_bias/dt_bias, D, silu(z)), so a ggml row is a lower bound on ggml's cost of the same
// step, i.e. favourable to ggml. ggml is fed dt + dt_bias precomputed, so that the values it
// takes the softplus of are exactly those ssmkit's rows use.
//
// Layouts are ggml's own (ne[0] fastest): x {P, H, L, 1}, dt {H, L, 1}, B and C {N, G, L, 1},
// states {N, P, H, 1}. Mamba-2's is mamba_ssm's token-major (1, L, H, P), the layout of ssmkit's
// ssd rows. Mamba-1 runs as H = D heads of P = 1, i.e. token-major (1, L, D); its ssmkit rows use
// mamba's channel-major (1, D, L) (the "ssmkit token-major" row has ggml's layout). The inputs are
// the ssmkit benchmarks' own (same seeds and ranges), transposed where the layouts differ.
//
// Before timing, each case checks once that ggml computes what ssmkit does: a small case (Mamba-1
// D 32, N 16, L 64; Mamba-2 H 2 × P 8, N 16, L 64), from a nonzero initial state, against
// ssmkit::selective_scan and ssmkit::ssd_scan with softplus and dt_bias but no D or z. The largest
// difference of y and of the final state, relative to max |y| and max |state|, is the counter
// check_rel_err; above 1e-4 the case is skipped with an error.
#include <ggml-cpu.h>
#include <ggml.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <ssmkit/selective_scan.hpp>
#include <ssmkit/ssd.hpp>

#include "../common.hpp"

namespace {

/// One ggml_ssm_scan graph over fresh tensors, its plan and threadpool. D = H · P channels.
class ggml_scan {
 public:
  /// `decay_per_state`: Mamba-1's A {N, H}; otherwise Mamba-2's A {1, H}.
  ggml_scan(std::size_t n_state, std::size_t head_dim, std::size_t heads, std::size_t groups, std::size_t length,
            bool decay_per_state, int threads)
      : p_(head_dim), h_(heads), l_(length) {
    // s, x, dt, A, B, C, then the result (y and the final states).
    const std::size_t floats = n_state * head_dim * heads + head_dim * heads * length + heads * length +
                               (decay_per_state ? n_state : 1) * heads + 2 * n_state * groups * length +
                               head_dim * heads * length + n_state * head_dim * heads;
    const auto N = static_cast<std::int64_t>(n_state), P = static_cast<std::int64_t>(head_dim),
               H = static_cast<std::int64_t>(heads), G = static_cast<std::int64_t>(groups),
               L = static_cast<std::int64_t>(length);
    ggml_init_params params{};
    params.mem_size = floats * sizeof(float) + 16 * ggml_tensor_overhead() + ggml_graph_overhead() + (1 << 16);
    params.mem_buffer = nullptr;
    params.no_alloc = false;
    ctx_ = ggml_init(params);
    if (ctx_ == nullptr) throw std::runtime_error("ggml_init failed");
    s_ = ggml_new_tensor_4d(ctx_, GGML_TYPE_F32, N, P, H, 1);
    x_ = ggml_new_tensor_4d(ctx_, GGML_TYPE_F32, P, H, L, 1);
    dt_ = ggml_new_tensor_3d(ctx_, GGML_TYPE_F32, H, L, 1);
    A_ = ggml_new_tensor_2d(ctx_, GGML_TYPE_F32, decay_per_state ? N : 1, H);
    B_ = ggml_new_tensor_4d(ctx_, GGML_TYPE_F32, N, G, L, 1);
    C_ = ggml_new_tensor_4d(ctx_, GGML_TYPE_F32, N, G, L, 1);
    ids_ = ggml_new_tensor_1d(ctx_, GGML_TYPE_I32, 1);
    static_cast<std::int32_t*>(ids_->data)[0] = 0;
    // The result is y {P, H, L, 1} followed by the final states {N, P, H, 1} (K = 1: no snapshots).
    out_ = ggml_ssm_scan(ctx_, s_, x_, dt_, A_, B_, C_, ids_, 1);
    graph_ = ggml_new_graph(ctx_);
    ggml_build_forward_expand(graph_, out_);
    ggml_threadpool_params pool_params = ggml_threadpool_params_default(threads);
    pool_ = ggml_threadpool_new(&pool_params);
    plan_ = ggml_graph_plan(graph_, threads, pool_);
    work_.resize(plan_.work_size);
    plan_.work_data = work_.empty() ? nullptr : work_.data();
  }
  ~ggml_scan() {
    ggml_threadpool_free(pool_);
    ggml_free(ctx_);
  }
  ggml_scan(const ggml_scan&) = delete;
  ggml_scan& operator=(const ggml_scan&) = delete;

  float* state() { return static_cast<float*>(s_->data); }
  float* x() { return static_cast<float*>(x_->data); }
  float* dt() { return static_cast<float*>(dt_->data); }
  float* A() { return static_cast<float*>(A_->data); }
  float* B() { return static_cast<float*>(B_->data); }
  float* C() { return static_cast<float*>(C_->data); }
  const float* y() const { return static_cast<const float*>(out_->data); }
  const float* final_state() const { return y() + p_ * h_ * l_; }

  /// The timed call. The op reads the initial state from s and writes y and the final state into
  /// its own result, so every call computes the same thing.
  void compute() {
    if (ggml_graph_compute(graph_, &plan_) != GGML_STATUS_SUCCESS) throw std::runtime_error("ggml_graph_compute failed");
  }

 private:
  std::size_t p_, h_, l_;
  ggml_context* ctx_ = nullptr;
  ggml_tensor *s_ = nullptr, *x_ = nullptr, *dt_ = nullptr, *A_ = nullptr, *B_ = nullptr, *C_ = nullptr,
              *ids_ = nullptr, *out_ = nullptr;
  ggml_cgraph* graph_ = nullptr;
  ggml_threadpool* pool_ = nullptr;
  ggml_cplan plan_{};
  std::vector<std::uint8_t> work_;
};

/// max |a - b| / max |b| over n values (0 when b is all zero and a equals it).
double relative_error(const float* a, const float* b, std::size_t n) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

constexpr double check_tolerance = 1e-4;

/// Mamba-1: ggml's ssm_scan against ssmkit::selective_scan (softplus and delta_bias, no D or z),
/// D 32, N 16, L 64, from a random initial state. Computed once.
double mamba1_check_error() {
  static const double error = [] {
    const std::size_t D = 32, N = 16, L = 64;
    const auto u = ssm_bench::uniform<float>(D * L, -1, 1, 11), delta = ssm_bench::uniform<float>(D * L, -4, 0, 12);
    const auto B = ssm_bench::uniform<float>(N * L, -1, 1, 13), C = ssm_bench::uniform<float>(N * L, -1, 1, 14);
    const auto bias = ssm_bench::uniform<float>(D, -4, -2, 15), h0 = ssm_bench::uniform<float>(D * N, -1, 1, 16);
    std::vector<float> A(D * N), out(D * L), last(D * N);
    for (std::size_t i = 0; i < A.size(); ++i) A[i] = -float(i % N + 1);
    ssmkit::selective_scan_options<float> o;
    o.delta_bias = ssmkit::make_view(bias, D);
    o.delta_softplus = true;
    o.initial_state = ssmkit::make_view(h0, 1, D, N);
    o.last_state = ssmkit::make_view(last, 1, D, N);
    ssmkit::selective_scan<float, ssmkit::default_arch>(
        ssmkit::make_view(u, 1, D, L), ssmkit::make_view(delta, 1, D, L), ssmkit::make_view(A, D, N),
        ssmkit::make_view(B, 1, N, L), ssmkit::make_view(C, 1, N, L), ssmkit::make_view(out, 1, D, L), o);

    ggml_scan g(N, 1, D, 1, L, true, 1);
    for (std::size_t d = 0; d < D; ++d)
      for (std::size_t t = 0; t < L; ++t) {
        g.x()[t * D + d] = u[d * L + t];
        g.dt()[t * D + d] = delta[d * L + t] + bias[d];
      }
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t t = 0; t < L; ++t) g.B()[t * N + n] = B[n * L + t], g.C()[t * N + n] = C[n * L + t];
    std::copy(A.begin(), A.end(), g.A());
    std::copy(h0.begin(), h0.end(), g.state());
    g.compute();
    std::vector<float> y(D * L);  // ggml's (L, D) back to (D, L)
    for (std::size_t d = 0; d < D; ++d)
      for (std::size_t t = 0; t < L; ++t) y[d * L + t] = g.y()[t * D + d];
    return std::max(relative_error(y.data(), out.data(), D * L), relative_error(g.final_state(), last.data(), D * N));
  }();
  return error;
}

/// Mamba-2: ggml's ssm_scan against ssmkit::ssd_scan (softplus and dt_bias, no D or z), H 2 × P 8,
/// N 16, G 1, L 64, from a random initial state. Computed once.
double mamba2_check_error() {
  static const double error = [] {
    const std::size_t H = 2, P = 8, N = 16, L = 64;
    const auto x = ssm_bench::uniform<float>(L * H * P, -1, 1, 21), dt = ssm_bench::uniform<float>(L * H, -4, -1, 22);
    const auto A = ssm_bench::uniform<float>(H, -8, -1, 23);
    const auto B = ssm_bench::uniform<float>(L * N, -1, 1, 24), C = ssm_bench::uniform<float>(L * N, -1, 1, 25);
    const auto bias = ssm_bench::uniform<float>(H, -1, 1, 26), h0 = ssm_bench::uniform<float>(H * P * N, -1, 1, 27);
    std::vector<float> out(L * H * P), last(H * P * N);
    ssmkit::ssd_options<float> o;
    o.dt_bias = ssmkit::make_view(bias, H);
    o.dt_softplus = true;
    o.initial_states = ssmkit::make_view(h0, 1, H, P, N);
    o.final_states = ssmkit::make_view(last, 1, H, P, N);
    ssmkit::ssd_scan<float, ssmkit::default_arch>(ssmkit::make_view(x, 1, L, H, P), ssmkit::make_view(dt, 1, L, H),
                                                  ssmkit::make_view(A, H), ssmkit::make_view(B, 1, L, 1, N),
                                                  ssmkit::make_view(C, 1, L, 1, N), ssmkit::make_view(out, 1, L, H, P),
                                                  o, {1});

    ggml_scan g(N, P, H, 1, L, false, 1);  // the same memory layouts: copy as they are
    std::copy(x.begin(), x.end(), g.x());
    for (std::size_t t = 0; t < L; ++t)
      for (std::size_t h = 0; h < H; ++h) g.dt()[t * H + h] = dt[t * H + h] + bias[h];
    std::copy(A.begin(), A.end(), g.A());
    std::copy(B.begin(), B.end(), g.B());
    std::copy(C.begin(), C.end(), g.C());
    std::copy(h0.begin(), h0.end(), g.state());
    g.compute();
    return std::max(relative_error(g.y(), out.data(), L * H * P), relative_error(g.final_state(), last.data(), H * P * N));
  }();
  return error;
}

/// False (and the case skipped) when the check failed.
bool checked(benchmark::State& state, double error) {
  state.counters["check_rel_err"] = error;
  if (error <= check_tolerance) return true;
  state.SkipWithError(("ggml differs from ssmkit: relative error " + std::to_string(error)).c_str());
  return false;
}

/// One untimed call first: it touches the result's fresh pages (ssmkit's benchmarks touch their
/// outputs in setup too; page faults cost about 1.5 us per 4 KiB here) and starts the threadpool.
void time_compute(benchmark::State& state, ggml_scan& g) {
  g.compute();
  for (auto _ : state) {
    g.compute();
    benchmark::DoNotOptimize(g.y());
    benchmark::ClobberMemory();
  }
}

constexpr std::size_t mamba1_state = 16;

/// Mamba-1 scan: bench_selective_scan.cpp's scan_inputs (dim, L, N 16, zero initial state),
/// as ggml's token-major {1, D, L, 1} with dt + delta_bias.
void ggml_ssm_scan_mamba1(benchmark::State& state) {
  if (!checked(state, mamba1_check_error())) return;
  const auto dim = static_cast<std::size_t>(state.range(0)), length = static_cast<std::size_t>(state.range(1));
  const auto threads = static_cast<int>(state.range(2));
  const std::size_t N = mamba1_state;
  const auto u = ssm_bench::uniform<float>(dim * length, -1, 1, 1);
  const auto delta = ssm_bench::uniform<float>(dim * length, -4, 0, 2);
  const auto B = ssm_bench::uniform<float>(N * length, -1, 1, 4);
  const auto C = ssm_bench::uniform<float>(N * length, -1, 1, 5);
  const auto bias = ssm_bench::uniform<float>(dim, -4, -2, 6);
  ggml_scan g(N, 1, dim, 1, length, true, threads);
  for (std::size_t d = 0; d < dim; ++d)
    for (std::size_t t = 0; t < length; ++t) {
      g.x()[t * dim + d] = u[d * length + t];
      g.dt()[t * dim + d] = delta[d * length + t] + bias[d];
    }
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t t = 0; t < length; ++t) g.B()[t * N + n] = B[n * length + t], g.C()[t * N + n] = C[n * length + t];
  for (std::size_t i = 0; i < dim * N; ++i) g.A()[i] = -float(i % N + 1);  // S4D-real init
  std::fill(g.state(), g.state() + dim * N, 0.0f);
  time_compute(state, g);
  ssm_bench::set_throughput(state, double(dim * N * length), 4.0 * double(4 * dim * length + 2 * N * length));
  ssm_bench::describe(state, "selective_scan D=" + std::to_string(dim) + " N=16 L=" + std::to_string(length), "ggml",
                      "exp", double(dim * N * length), threads);
}

/// Mamba-1 decode: bench_selective_scan.cpp's selective_scan_decode inputs, one token (L = 1).
void ggml_ssm_scan_mamba1_decode(benchmark::State& state) {
  if (!checked(state, mamba1_check_error())) return;
  const auto dim = static_cast<std::size_t>(state.range(0));
  const std::size_t N = mamba1_state;
  const auto h = ssm_bench::uniform<float>(dim * N, -1, 1, 1);
  const auto x = ssm_bench::uniform<float>(dim, -1, 1, 2), dt = ssm_bench::uniform<float>(dim, -4, 0, 3);
  const auto bias = ssm_bench::uniform<float>(dim, -4, -2, 5);
  const auto B = ssm_bench::uniform<float>(N, -1, 1, 6), C = ssm_bench::uniform<float>(N, -1, 1, 7);
  ggml_scan g(N, 1, dim, 1, 1, true, 1);
  std::copy(h.begin(), h.end(), g.state());
  std::copy(x.begin(), x.end(), g.x());
  for (std::size_t d = 0; d < dim; ++d) g.dt()[d] = dt[d] + bias[d];
  for (std::size_t i = 0; i < dim * N; ++i) g.A()[i] = -float(i % N + 1);
  std::copy(B.begin(), B.end(), g.B());
  std::copy(C.begin(), C.end(), g.C());
  time_compute(state, g);
  ssm_bench::set_throughput(state, double(dim * N), 4.0 * double(2 * dim * N + 6 * dim));
  ssm_bench::describe(state, "selective_state_update D=" + std::to_string(dim) + " N=16", "ggml", "exp",
                      double(dim * N));
}

/// Mamba-2: bench_ssd.cpp's ssd_data (H = d_inner / 64 heads of P 64, N 128, G 1), dt + dt_bias;
/// L 1 is the decode step, from bench_ssd.cpp's random state (seed 9), else a zero initial state.
void ggml_ssm_scan_mamba2_impl(benchmark::State& state, std::size_t d_inner, std::size_t length, int threads) {
  if (!checked(state, mamba2_check_error())) return;
  const std::size_t P = 64, N = 128, H = d_inner / P;
  const auto x = ssm_bench::uniform<float>(length * H * P, -1, 1, 1);
  const auto dt = ssm_bench::uniform<float>(length * H, -4, -1, 2);
  const auto A = ssm_bench::uniform<float>(H, -8, -1, 3);
  const auto B = ssm_bench::uniform<float>(length * N, -1, 1, 4);
  const auto C = ssm_bench::uniform<float>(length * N, -1, 1, 5);
  const auto bias = ssm_bench::uniform<float>(H, -1, 1, 8);
  ggml_scan g(N, P, H, 1, length, false, threads);
  std::copy(x.begin(), x.end(), g.x());
  for (std::size_t t = 0; t < length; ++t)
    for (std::size_t h = 0; h < H; ++h) g.dt()[t * H + h] = dt[t * H + h] + bias[h];
  std::copy(A.begin(), A.end(), g.A());
  std::copy(B.begin(), B.end(), g.B());
  std::copy(C.begin(), C.end(), g.C());
  if (length == 1) {
    const auto h0 = ssm_bench::uniform<float>(H * P * N, -1, 1, 9);
    std::copy(h0.begin(), h0.end(), g.state());
  } else {
    std::fill(g.state(), g.state() + H * P * N, 0.0f);
  }
  time_compute(state, g);
  const double updates = double(H * P * N * length);
  ssm_bench::set_throughput(state, updates, 0);
  ssm_bench::describe(state,
                      length == 1 ? "ssd_step d_inner=" + std::to_string(d_inner) + " N=128"
                                  : "ssd_scan d_inner=" + std::to_string(d_inner) + " N=128 L=" + std::to_string(length),
                      "ggml", "fma", 5 * updates, threads);
}

void ggml_ssm_scan_mamba2(benchmark::State& state) {
  ggml_ssm_scan_mamba2_impl(state, static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)),
                            static_cast<int>(state.range(2)));
}

void ggml_ssm_scan_mamba2_decode(benchmark::State& state) {
  ggml_ssm_scan_mamba2_impl(state, static_cast<std::size_t>(state.range(0)), 1, static_cast<int>(state.range(1)));
}

}  // namespace

// The "ggml_" prefix keeps these out of the bench_<family>_smoke filters (^selective_scan, ^ssd, ...).
BENCHMARK(ggml_ssm_scan_mamba1)->ArgNames({"dim", "L", "threads"})->ArgsProduct({{1536}, {2048}, {1, 2}})->UseRealTime();
BENCHMARK(ggml_ssm_scan_mamba1_decode)->ArgName("dim")->Arg(1536)->UseRealTime();
BENCHMARK(ggml_ssm_scan_mamba2)
    ->ArgNames({"d_inner", "L", "threads"})
    ->ArgsProduct({{1536}, {2048}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(ggml_ssm_scan_mamba2_decode)->ArgNames({"d_inner", "threads"})->ArgsProduct({{1536}, {1, 2}})->UseRealTime();
