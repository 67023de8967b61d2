// test_runtime_dispatch: one program that holds the kernels for three x86-64 ISA levels
// (x86-64-v2 SSE4.2, v3 AVX2 + FMA, v4 AVX-512; kernels_<isa>.cpp) and picks one at run time with
// xsimd::dispatch, as examples/runtime_dispatch does (docs/dispatch.md). This unit is the baseline
// (compiled with -march=x86-64-v2 and linked first) and holds the ssmkit::scalar reference.
//
// For every kernel it runs the scalar backend, then the dispatched call (the best ISA the CPU has),
// then each of the three ISA instantiations the CPU supports, and compares each result with the
// scalar one: normwise, max|got - scalar| / max|scalar| over all outputs (NaN counts as infinite;
// outputs are poisoned with NaN before every call, so an unwritten element fails). One line per
// (kernel, ISA); ISAs the CPU lacks are reported as skipped. Exit status: 0 when every row passes,
// 1 otherwise, 77 (skip) when the CPU lacks even SSE4.2.
//
// Tolerances, with u = 2^-24 (float's unit roundoff). The backends run the same kernel body with
// batches of width 1 or 4/8/16 and differ only in the exp/log1p of each lane (xsimd's or ssmkit's
// against libm's, within 2 ulp) and in where FMAs contract (docs/dispatch.md); the bounds are the
// ones the unit tests use for SIMD against scalar:
//   silu, causal_conv1d (W = 4)   8 u                    (tests/test_conv1d.cpp)
//   fft_conv                      64 eps = 128 u         (tests/test_fft_conv.cpp)
//   selective_scan                8 u (L + N)            (tests/test_selective_scan.cpp, scan_tolerance)
//   selective_state_update        8 u (N + 4)            (tests/test_selective_scan.cpp)
//   ssd_scan                      8 u (N + Q + 2 L + 8)  (tests/test_ssd.cpp: 4 u (...) per result, doubled)
//   s4d_kernel                    8 (5 + N2) u           (s4d.hpp: (5 + N2) eps per result, doubled)
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "kernels.hpp"
#include "kernels_impl.hpp"

namespace {

using namespace dispatch_test;

constexpr double u = std::numeric_limits<float>::epsilon() / 2;

/// Deterministic uniform numbers in [lo, hi) (a 32-bit LCG; the values only need to be generic).
class uniform_source {
 public:
  explicit uniform_source(std::uint32_t seed) : state_(seed) {}
  std::vector<float> operator()(std::size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto& x : v) {
      state_ = state_ * 1664525u + 1013904223u;
      x = lo + (hi - lo) * float(state_ >> 8) * 0x1p-24f;
    }
    return v;
  }

 private:
  std::uint32_t state_;
};

/// max|got - want| / max|want| over all elements; infinite on a NaN or a size mismatch.
double normwise_difference(const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& want) {
  double num = 0, den = 0;
  if (got.size() != want.size()) return INFINITY;
  for (std::size_t o = 0; o < got.size(); ++o) {
    if (got[o].size() != want[o].size()) return INFINITY;
    for (std::size_t i = 0; i < got[o].size(); ++i) {
      const double d = std::abs(double(got[o][i]) - double(want[o][i]));
      num = std::isnan(d) ? INFINITY : std::max(num, d);
      den = std::max(den, std::abs(double(want[o][i])));
    }
  }
  return num / std::max(den, 1e-300);
}

int failures = 0;
int rows = 0;

template <class Arch>
const char* isa_name() {
  return ssmkit::backend_name<Arch>();
}

/// The ISA that xsimd::dispatch picks for dispatch_archs on this CPU.
const char* dispatched_name() {
  const unsigned best = xsimd::available_architectures().best;
  return best >= xsimd::avx512bw::version()            ? isa_name<xsimd::avx512bw>()
         : best >= xsimd::fma3<xsimd::avx2>::version() ? isa_name<xsimd::fma3<xsimd::avx2>>()
                                                       : isa_name<xsimd::sse4_2>();
}

/// One kernel's problem: its arguments, the output buffers they point into, and how to restore
/// the inputs a call overwrites (the state of selective_state_update).
template <class Op, class Args>
struct kernel_case {
  const char* name;
  double tolerance;
  Args args;
  std::vector<std::vector<float>*> outputs;
  std::vector<std::pair<std::vector<float>*, std::vector<float>>> restore{};

  void reset() {
    for (auto* o : outputs) std::fill(o->begin(), o->end(), std::numeric_limits<float>::quiet_NaN());
    for (auto& [buffer, initial] : restore) *buffer = initial;
  }
  std::vector<std::vector<float>> results() const {
    std::vector<std::vector<float>> r;
    for (const auto* o : outputs) r.push_back(*o);
    return r;
  }

  void report(const char* isa, const std::vector<std::vector<float>>& reference) {
    const double difference = normwise_difference(results(), reference);
    const bool ok = difference <= tolerance;
    std::printf("%-24s %-22s difference to scalar %.2e  (tolerance %.2e)  %s\n", name, isa, difference, tolerance,
                ok ? "ok" : "FAILED");
    failures += !ok;
    ++rows;
  }

  template <class Arch>
  void run_isa(const std::vector<std::vector<float>>& reference) {
    if (!ssmkit::backend_available<Arch>()) {
      std::printf("%-24s %-22s skipped: the CPU lacks it\n", name, isa_name<Arch>());
      return;
    }
    reset();
    Op{}(Arch{}, args);
    report(isa_name<Arch>(), reference);
  }

  void run() {
    reset();
    Op{}(ssmkit::scalar{}, args);
    const auto reference = results();
    // A reference that is zero or not finite would make every comparison meaningless.
    double scale = 0;
    for (const auto& r : reference)
      for (const float v : r) scale = std::isfinite(v) ? std::max(scale, double(std::abs(v))) : INFINITY;
    if (!(scale > 0 && std::isfinite(scale))) {
      std::printf("%-24s scalar reference is zero or not finite: FAILED\n", name);
      ++failures;
      return;
    }
    reset();
    xsimd::dispatch<dispatch_archs>(Op{})(args);
    report((std::string("dispatched: ") + dispatched_name()).c_str(), reference);
    run_isa<xsimd::sse4_2>(reference);
    run_isa<xsimd::fma3<xsimd::avx2>>(reference);
    run_isa<xsimd::avx512bw>(reference);
  }
};

template <class Op, class Args>
kernel_case<Op, Args> make_case(const char* name, double tolerance, const Args& args,
                                std::vector<std::vector<float>*> outputs) {
  return {name, tolerance, args, std::move(outputs), {}};
}

void check_silu() {
  uniform_source rnd(1);
  const std::size_t n = 1003;  // odd: every ISA runs its scalar tail
  const auto x = rnd(n, -10.0f, 10.0f);
  std::vector<float> y(n);
  make_case<silu_op>("silu", 8 * u, silu_args{x.data(), y.data(), n}, {&y}).run();
}

void check_conv1d() {
  uniform_source rnd(2);
  const std::size_t batch = 2, length = 67, channels = 37;
  const auto x = rnd(batch * length * channels, -1, 1);
  const auto weight = rnd(channels * conv1d_args::width, -0.5f, 0.5f);
  const auto bias = rnd(channels, -0.5f, 0.5f);
  std::vector<float> y(x.size());
  make_case<conv1d_op>("causal_conv1d W=4 silu", 8 * u,
                       conv1d_args{x.data(), weight.data(), bias.data(), y.data(), batch, length, channels}, {&y})
      .run();
}

void check_fft_conv() {
  uniform_source rnd(3);
  const std::size_t batch = 2, length = 300, channels = 19, kernel_length = 200;
  const auto u_in = rnd(batch * length * channels, -1, 1);
  const auto k = rnd(channels * kernel_length, -0.1f, 0.1f);
  const auto D = rnd(channels, -1, 1);
  std::vector<float> y(u_in.size());
  make_case<fft_conv_op>(
      "fft_conv causal", 128 * u,
      fft_conv_args{u_in.data(), k.data(), D.data(), y.data(), batch, length, channels, kernel_length}, {&y})
      .run();
}

void check_selective_scan() {
  uniform_source rnd(4);
  const std::size_t batch = 2, dim = 19, length = 70, nstate = 16;
  const auto u_in = rnd(batch * dim * length, -1, 1);
  const auto delta = rnd(batch * dim * length, -3, 0.5f);  // softplus(delta + bias) in about (0.03, 1.5)
  const auto A = rnd(dim * nstate, -4, -0.1f);
  const auto B = rnd(batch * nstate * length, -1, 1);
  const auto C = rnd(batch * nstate * length, -1, 1);
  const auto D = rnd(dim, -1, 1);
  const auto z = rnd(batch * dim * length, -2, 2);
  const auto delta_bias = rnd(dim, -0.5f, 0.5f);
  std::vector<float> out(u_in.size()), last_state(batch * dim * nstate);
  make_case<scan_op>("selective_scan", 8 * u * double(length + nstate),
                     scan_args{u_in.data(), delta.data(), A.data(), B.data(), C.data(), D.data(), z.data(),
                               delta_bias.data(), out.data(), last_state.data(), batch, dim, length, nstate},
                     {&out, &last_state})
      .run();
}

void check_state_update() {
  uniform_source rnd(5);
  const std::size_t batch = 2, heads = 4, head_dim = 9, nstate = 16, groups = 2;
  const auto initial_state = rnd(batch * heads * head_dim * nstate, -1, 1);
  const auto x = rnd(batch * heads * head_dim, -1, 1);
  const auto dt = rnd(batch * heads * head_dim, -3, 0.5f);
  const auto A = rnd(heads * head_dim * nstate, -4, -0.1f);
  const auto B = rnd(batch * groups * nstate, -1, 1);
  const auto C = rnd(batch * groups * nstate, -1, 1);
  const auto D = rnd(heads * head_dim, -1, 1);
  const auto z = rnd(batch * heads * head_dim, -2, 2);
  const auto dt_bias = rnd(heads * head_dim, -0.5f, 0.5f);
  std::vector<float> state(initial_state), out(x.size());
  auto c = make_case<state_update_op>(
      "selective_state_update", 8 * u * double(nstate + 4),
      state_update_args{state.data(), x.data(), dt.data(), A.data(), B.data(), C.data(), D.data(), z.data(),
                        dt_bias.data(), out.data(), batch, heads, head_dim, nstate, groups},
      {&out, &state});
  c.restore.emplace_back(&state, initial_state);  // the state is updated in place: restore it before each call
  c.run();
}

void check_ssd(bool chunked) {
  uniform_source rnd(6);
  const std::size_t batch = 2, length = 45, heads = 4, head_dim = 13, groups = 2, nstate = 19, chunk = 16;
  const auto x = rnd(batch * length * heads * head_dim, -1, 1);
  const auto dt = rnd(batch * length * heads, -3, 0.5f);
  const auto A = rnd(heads, -2, -0.2f);
  const auto B = rnd(batch * length * groups * nstate, -1, 1);
  const auto C = rnd(batch * length * groups * nstate, -1, 1);
  const auto D = rnd(heads * head_dim, -1, 1);
  const auto z = rnd(x.size(), -2, 2);
  const auto dt_bias = rnd(heads, -0.5f, 0.5f);
  std::vector<float> out(x.size()), final_states(batch * heads * head_dim * nstate);
  // The recurrent path has no chunks (Q = 0 in the bound).
  const double q = chunked ? double(chunk) : 0.0;
  make_case<ssd_op>(
      chunked ? "ssd_scan chunked Q=16" : "ssd_scan recurrent", 8 * u * (double(nstate) + q + 2 * double(length) + 8),
      ssd_args{x.data(), dt.data(), A.data(), B.data(), C.data(), D.data(), z.data(), dt_bias.data(), out.data(),
               final_states.data(), batch, length, heads, head_dim, groups, nstate, chunk, chunked},
      {&out, &final_states})
      .run();
}

void check_s4d() {
  uniform_source rnd(7);
  const std::size_t channels = 2, H = 5, N2 = 16, L = 300;
  const auto log_dt = rnd(H, std::log(0.001f), std::log(0.1f));
  std::vector<float> dt(H);
  for (std::size_t h = 0; h < H; ++h) dt[h] = std::exp(log_dt[h]);
  // S4D-Lin: A = -1/2 + i pi n; B = 1; C random complex.
  const float pi = 3.14159265358979f;
  std::vector<std::complex<float>> A(H * N2), B(H * N2, {1.0f, 0.0f}), C(channels * H * N2);
  for (std::size_t h = 0; h < H; ++h)
    for (std::size_t n = 0; n < N2; ++n) A[h * N2 + n] = {-0.5f, pi * float(n)};
  const auto c_parts = rnd(2 * C.size(), -1, 1);
  for (std::size_t i = 0; i < C.size(); ++i) C[i] = {c_parts[2 * i], c_parts[2 * i + 1]};
  std::vector<float> K(channels * H * L);
  make_case<s4d_op>("s4d_kernel zoh", 8 * double(5 + N2) * u,
                    s4d_args{dt.data(), A.data(), B.data(), C.data(), K.data(), channels, H, N2, L}, {&K})
      .run();
}

}  // namespace

int main() {
  if (!ssmkit::backend_available<xsimd::sse4_2>()) {
    std::printf("the CPU lacks SSE4.2, the baseline of this program: skipped\n");
    return 77;
  }
  std::printf("xsimd::dispatch picks %s on this CPU\n", dispatched_name());
  check_silu();
  check_conv1d();
  check_fft_conv();
  check_selective_scan();
  check_state_update();
  check_ssd(false);
  check_ssd(true);
  check_s4d();
  std::printf("%d rows, %d failed\n", rows, failures);
  return failures == 0 ? 0 : 1;
}
