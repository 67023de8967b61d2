// Mamba selective scan and decode step, float32, batch 1, N = 16, with softplus, delta_bias, D and z
// (the Mamba-1 configuration). items/s = state updates/s (dim * N * L per call). The SIMD backend
// runs next to the scalar one; exp_bound measures, in this binary, the vector exp throughput that
// bounds the scan (one exp per state update; ../shared/perf gives 8.1 G exp/s per core).
//
// Peers: ggml's Mamba-1 ssm_scan and its decode run in the same binary when it is configured with
// SSMKIT_BENCH_GGML (peers/ggml_ssm.cpp; ggml's op leaves out dt_bias, D and z, so its rows are a
// lower bound on its cost). On the reference machine (../shared/perf): ggml 0.28 G updates/s (dim
// 1536, L 2048, 180.7 ms), decode 88.8 us; PyTorch selective_scan_ref 909 ms.
#include <complex>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ssmkit/selective_scan.hpp>

#include "common.hpp"

namespace {

constexpr std::size_t nstate = 16;

/// What a scan benchmark runs: mamba's channel-major layout, the token-major one of inference
/// engines, or channel-major with the fast exp option.
enum class variant { channel_major, token_major, fast_exp };

struct scan_inputs {
  std::size_t dim, length;
  bool token_major;
  bool fast_exp = false;
  std::vector<float> u, delta, z, A, B, C, D, bias, out, last;

  scan_inputs(std::size_t d, std::size_t l, bool tokens) : dim(d), length(l), token_major(tokens) {
    u = ssm_bench::uniform<float>(dim * length, -1, 1, 1);
    delta = ssm_bench::uniform<float>(dim * length, -4, 0, 2);
    z = ssm_bench::uniform<float>(dim * length, -2, 2, 3);
    A.resize(dim * nstate);
    for (std::size_t i = 0; i < A.size(); ++i) A[i] = -float(i % nstate + 1);  // S4D-real init
    B = ssm_bench::uniform<float>(nstate * length, -1, 1, 4);
    C = ssm_bench::uniform<float>(nstate * length, -1, 1, 5);
    D = std::vector<float>(dim, 1.0f);
    bias = ssm_bench::uniform<float>(dim, -4, -2, 6);
    out.assign(dim * length, 0.0f);
    last.assign(dim * nstate, 0.0f);
  }

  // (1, dim, L) channel-major, or a (1, L, dim) buffer seen as (1, dim, L).
  template <class V>
  auto seq(V& v, std::size_t rows) const {
    return token_major ? ssmkit::make_view(v.data(), 1, length, rows).transposed(1, 2)
                       : ssmkit::make_view(v.data(), 1, rows, length);
  }

  template <class Arch>
  void run(int threads, const std::vector<std::int64_t>* cu = nullptr) {
    ssmkit::selective_scan_options<float> o;
    o.D = ssmkit::make_view(D.data(), dim);
    o.z = seq(std::as_const(z), dim);
    o.delta_bias = ssmkit::make_view(bias.data(), dim);
    o.delta_softplus = true;
    o.last_state = ssmkit::make_view(last.data(), 1, dim, nstate);
    o.parallel.num_threads = threads;
    o.fast_exp = fast_exp;
    if (cu != nullptr) {  // packed sequences: one final state per sequence
      last.resize((cu->size() - 1) * dim * nstate);
      o.last_state = ssmkit::make_view(last.data(), cu->size() - 1, dim, nstate);
      o.cu_seqlens = ssmkit::make_view(cu->data(), cu->size());
    }
    ssmkit::selective_scan<float, Arch>(seq(std::as_const(u), dim), seq(std::as_const(delta), dim),
                                        ssmkit::make_view(A.data(), dim, nstate), seq(std::as_const(B), nstate),
                                        seq(std::as_const(C), nstate), seq(out, dim), o);
  }
};

template <class Arch, variant Variant>
void selective_scan(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  const auto length = static_cast<std::size_t>(state.range(1));
  const auto threads = static_cast<int>(state.range(2));
  scan_inputs in(dim, length, Variant == variant::token_major);
  in.fast_exp = Variant == variant::fast_exp;
  for (auto _ : state) {
    in.run<Arch>(threads);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  // Reads u, delta, z (dim L), B, C (N L); writes out (dim L).
  ssm_bench::set_throughput(state, double(dim * nstate * length),
                            4.0 * double(4 * dim * length + 2 * nstate * length));
  // One exp per state update bounds the scan.
  ssm_bench::describe(state, "selective_scan D=" + std::to_string(dim) + " N=16 L=" + std::to_string(length),
                      std::string(ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit") +
                          (Variant == variant::token_major ? " token-major"
                           : Variant == variant::fast_exp  ? " fast exp"
                                                           : ""),
                      "exp", double(dim * nstate * length), threads);
}

/// Packed sequences: L tokens as `sequences` equal sequences (cu_seqlens), channel-major.
void selective_scan_varlen(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  const auto length = static_cast<std::size_t>(state.range(1));
  const auto sequences = static_cast<std::size_t>(state.range(2));
  scan_inputs in(dim, length, false);
  std::vector<std::int64_t> cu(sequences + 1);
  for (std::size_t s = 0; s <= sequences; ++s) cu[s] = static_cast<std::int64_t>(s * length / sequences);
  for (auto _ : state) {
    in.run<ssmkit::default_arch>(1, &cu);
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(dim * nstate * length), 4.0 * double(4 * dim * length + 2 * nstate * length));
  ssm_bench::describe(state,
                      "selective_scan varlen D=" + std::to_string(dim) + " N=16 L=" + std::to_string(length) + " in " +
                          std::to_string(sequences) + " sequences",
                      "ssmkit", "exp", double(dim * nstate * length));
}

/// Complex A (S4D-Lin-like), variable B and C interleaved (1, N, 2L), channel-major, 1 thread:
/// one exp and one sincos per state update.
template <class Arch>
void selective_scan_complex(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  const auto length = static_cast<std::size_t>(state.range(1));
  const auto u = ssm_bench::uniform<float>(dim * length, -1, 1, 1);
  const auto delta = ssm_bench::uniform<float>(dim * length, -4, 0, 2);
  const auto z = ssm_bench::uniform<float>(dim * length, -2, 2, 3);
  const auto B = ssm_bench::uniform<float>(nstate * 2 * length, -1, 1, 4);
  const auto C = ssm_bench::uniform<float>(nstate * 2 * length, -1, 1, 5);
  const auto bias = ssm_bench::uniform<float>(dim, -4, -2, 6);
  std::vector<std::complex<float>> A(dim * nstate), last(dim * nstate);
  for (std::size_t i = 0; i < A.size(); ++i) A[i] = {-0.5f, 3.14159265f * float(i % nstate)};  // S4D-Lin
  std::vector<float> D(dim, 1.0f), out(dim * length);
  ssmkit::selective_scan_complex_options<float> o;
  o.D = ssmkit::make_view(D.data(), dim);
  o.z = ssmkit::make_view(z.data(), 1, dim, length);
  o.delta_bias = ssmkit::make_view(bias.data(), dim);
  o.delta_softplus = true;
  o.last_state = ssmkit::make_view(last.data(), 1, dim, nstate);
  o.parallel.num_threads = 1;
  for (auto _ : state) {
    ssmkit::selective_scan<float, Arch>(ssmkit::make_view(u.data(), 1, dim, length),
                                        ssmkit::make_view(delta.data(), 1, dim, length),
                                        ssmkit::make_view(A.data(), dim, nstate), ssmkit::make_view(B.data(), 1, nstate, 2 * length),
                                        ssmkit::make_view(C.data(), 1, nstate, 2 * length),
                                        ssmkit::make_view(out.data(), 1, dim, length), o);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(dim * nstate * length), 4.0 * double(4 * dim * length + 4 * nstate * length));
  ssm_bench::describe(state, "selective_scan complex A D=" + std::to_string(dim) + " N=16 L=" + std::to_string(length),
                      ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit", "exp", double(dim * nstate * length));
}

template <class Arch>
void selective_scan_decode(benchmark::State& state) {
  const auto dim = static_cast<std::size_t>(state.range(0));
  const auto threads = static_cast<int>(state.range(1));
  const bool fast_exp = state.range(2) != 0;
  auto h = ssm_bench::aligned_uniform<float>(dim * nstate, -1, 1, 1);  // updated in place (common.hpp)
  const auto x = ssm_bench::uniform<float>(dim, -1, 1, 2), dt = ssm_bench::uniform<float>(dim, -4, 0, 3);
  const auto z = ssm_bench::uniform<float>(dim, -2, 2, 4), bias = ssm_bench::uniform<float>(dim, -4, -2, 5);
  const auto B = ssm_bench::uniform<float>(nstate, -1, 1, 6), C = ssm_bench::uniform<float>(nstate, -1, 1, 7);
  std::vector<float> A(dim * nstate), D(dim, 1.0f), out(dim);
  for (std::size_t i = 0; i < A.size(); ++i) A[i] = -float(i % nstate + 1);
  ssmkit::selective_state_update_options<float, 3> o;
  o.D = ssmkit::make_view(D.data(), dim);
  o.z = ssmkit::make_view(z.data(), 1, dim);
  o.dt_bias = ssmkit::make_view(bias.data(), dim);
  o.dt_softplus = true;
  o.parallel.num_threads = threads;
  o.fast_exp = fast_exp;
  for (auto _ : state) {
    ssmkit::selective_state_update<float, Arch>(
        ssmkit::make_view(h.data(), 1, dim, nstate), ssmkit::make_view(x.data(), 1, dim),
        ssmkit::make_view(dt.data(), 1, dim), ssmkit::make_view(A.data(), dim, nstate),
        ssmkit::make_view(B.data(), 1, nstate), ssmkit::make_view(C.data(), 1, nstate),
        ssmkit::make_view(out.data(), 1, dim), o);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(dim * nstate), 4.0 * double(2 * dim * nstate + 6 * dim));
  ssm_bench::describe(state, "selective_state_update D=" + std::to_string(dim) + " N=16",
                      std::string(ssmkit::is_scalar_v<Arch> ? "ssmkit-scalar" : "ssmkit") + (fast_exp ? " fast exp" : ""),
                      "exp", double(dim * nstate), threads);
}

/// The exp throughputs that bound the scan, over an L1-resident buffer, n exps per iteration:
/// xsimd's exp, ssmkit's detail::exp (its own on AVX-512 float; detail/batch.hpp) and the fast
/// exp option's fast_exp2 (detail/selective_scan_impl.hpp).
enum class exp_kind { xsimd, ssmkit, fast };

template <exp_kind Kind>
void selective_scan_exp(benchmark::State& state) {
  using arch = ssmkit::default_arch;
  using batch = ssmkit::detail::batch_t<float, arch>;
  constexpr std::size_t w = ssmkit::detail::width_v<float, arch>;
  const auto n = static_cast<std::size_t>(state.range(0));
  auto x = ssm_bench::uniform<float>(n, -4, 0);
  std::vector<float> y(n);
  const auto exp = [](const batch& v) {
    if constexpr (Kind == exp_kind::fast) {
      return ssmkit::detail::fast_exp2<float, arch>(v);
    } else if constexpr (Kind == exp_kind::ssmkit || ssmkit::is_scalar_v<arch>) {
      return ssmkit::detail::exp(v);
    } else {
      return xsimd::exp(v);
    }
  };
  for (auto _ : state) {
    for (std::size_t i = 0; i + w <= n; i += w) ssmkit::detail::store(y.data() + i, exp(ssmkit::detail::load<arch>(x.data() + i)));
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(n), 8.0 * double(n));
  ssm_bench::describe(state, "exp n=" + std::to_string(n),
                      Kind == exp_kind::xsimd ? "xsimd exp" : Kind == exp_kind::ssmkit ? "ssmkit exp" : "fast exp2",
                      "exp", double(n));
}

/// The scan's register tiles alone (detail::scan_tile_run: 16 states as two tiles of 8, one chunk
/// of 64 tokens, 16 channels) on L1-resident buffers, with no gather, softplus, gate or scatter
/// around them: the ceiling of the whole scan on this machine. range(0): 1 for the fast exp.
void selective_scan_tile(benchmark::State& state) {
  using arch = ssmkit::default_arch;
  constexpr std::size_t w = ssmkit::detail::width_v<float, arch>, tokens = ssmkit::detail::chunk_tokens;
  constexpr std::size_t tile = 8;
  const bool fast = state.range(0) != 0;
  const auto dt = ssm_bench::uniform<float>(tokens * w, 0.001, 0.1, 1), du = ssm_bench::uniform<float>(tokens * w, -0.1, 0.1, 2);
  const auto b = ssm_bench::uniform<float>(tokens * ssmkit::detail::max_state_tile, -1, 1, 3);
  const auto c = ssm_bench::uniform<float>(tokens * ssmkit::detail::max_state_tile, -1, 1, 4);
  std::vector<float> a(nstate * w), h(nstate * w, 0.0f), y(tokens * w);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = -float(i / w + 1) * (fast ? 1.44269504f : 1.0f);
  for (auto _ : state) {
    for (std::size_t n0 = 0; n0 < nstate; n0 += tile)
      ssmkit::detail::scan_tile_run<tile, float, arch>(fast, false, false, tokens, dt.data(), du.data(), y.data(), n0 > 0,
                                                       a.data() + n0 * w, h.data() + n0 * w, b.data() + n0, c.data() + n0);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double updates = double(tokens * w * nstate);
  ssm_bench::set_throughput(state, updates, 0);
  ssm_bench::describe(state, "selective_scan register tiles, L1-resident, N=16", fast ? "ssmkit fast exp" : "ssmkit", "exp",
                      updates);
}

}  // namespace

BENCHMARK_TEMPLATE(selective_scan_exp, exp_kind::xsimd)->ArgName("n")->Arg(4096);
BENCHMARK_TEMPLATE(selective_scan_exp, exp_kind::ssmkit)->ArgName("n")->Arg(4096);
BENCHMARK_TEMPLATE(selective_scan_exp, exp_kind::fast)->ArgName("n")->Arg(4096);
BENCHMARK(selective_scan_tile)->ArgName("fast")->Arg(0)->Arg(1);

BENCHMARK_TEMPLATE(selective_scan, ssmkit::default_arch, variant::channel_major)
    ->ArgNames({"dim", "L", "threads"})
    ->ArgsProduct({{1536, 4096}, {1, 128, 2048}, {1, 2}})
    ->UseRealTime();
BENCHMARK_TEMPLATE(selective_scan, ssmkit::default_arch, variant::token_major)
    ->ArgNames({"dim", "L", "threads"})
    ->Args({1536, 2048, 1})
    ->UseRealTime();
BENCHMARK_TEMPLATE(selective_scan, ssmkit::default_arch, variant::fast_exp)
    ->ArgNames({"dim", "L", "threads"})
    ->ArgsProduct({{1536, 4096}, {2048}, {1, 2}})
    ->UseRealTime();
BENCHMARK_TEMPLATE(selective_scan, ssmkit::scalar, variant::channel_major)
    ->ArgNames({"dim", "L", "threads"})
    ->Args({1536, 128, 1})
    ->Args({1536, 2048, 1})
    ->UseRealTime();

BENCHMARK(selective_scan_varlen)->ArgNames({"dim", "L", "seqs"})->Args({1536, 2048, 8})->UseRealTime();
BENCHMARK_TEMPLATE(selective_scan_complex, ssmkit::default_arch)->ArgNames({"dim", "L"})->Args({1536, 2048})->UseRealTime();
BENCHMARK_TEMPLATE(selective_scan_complex, ssmkit::scalar)->ArgNames({"dim", "L"})->Args({1536, 128})->UseRealTime();

BENCHMARK_TEMPLATE(selective_scan_decode, ssmkit::default_arch)->ArgNames({"dim", "threads", "fast"})
    ->ArgsProduct({{1536, 4096}, {1, 2}, {0, 1}})->UseRealTime();
BENCHMARK_TEMPLATE(selective_scan_decode, ssmkit::scalar)->ArgNames({"dim", "threads", "fast"})->Args({1536, 1, 0});
