// selective_scan and selective_state_update: against a plainly written double reference, SIMD ==
// scalar, chunked prefill == one pass, decode == scan, token-major == channel-major, bad input,
// NaN and extreme Δ. Complex A against a std::complex<double> reference; packed sequences
// (cu_seqlens) == separate runs of each sequence, and their validation.
//
// Tolerances (docs/selective_scan.md derives them): errors are measured normwise, max|got - ref|
// over max|ref|, with the reference run in double on the same (already rounded) inputs. One token
// multiplies the state by exp(ΔA), computed with a relative error of at most ~2u (u the unit
// roundoff: 2^-24 float, 2^-53 double), and adds Δ·u·B with ~2u; a perturbation of the state
// decays with the same factors, so after t tokens the state's relative error is at most ~4u·t, and
// y sums N states (N·u more). Hence tol = 8·u·(L + N), twice that bound.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include <ssmkit/selective_scan.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

using ssm_test::error_of;

namespace {

std::atomic<long> allocation_count{0};

}  // namespace

// A counting global allocator: the decode step must not allocate. noinline keeps GCC 12 from
// pairing the inlined malloc/free with new/delete (a -Wmismatched-new-delete false positive).
#if defined(__GNUC__)
#define SSMKIT_TEST_NOINLINE __attribute__((noinline))
#else
#define SSMKIT_TEST_NOINLINE
#endif
SSMKIT_TEST_NOINLINE void* operator new(std::size_t n) {
  allocation_count.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// Every non-aligned form is replaced, so that allocation and release always pair malloc with free
// (AddressSanitizer checks the pairing).
SSMKIT_TEST_NOINLINE void* operator new[](std::size_t n) { return operator new(n); }
SSMKIT_TEST_NOINLINE void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  allocation_count.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
SSMKIT_TEST_NOINLINE void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept {
  return operator new(n, tag);
}
SSMKIT_TEST_NOINLINE void operator delete(void* p) noexcept { std::free(p); }
SSMKIT_TEST_NOINLINE void operator delete(void* p, std::size_t) noexcept { std::free(p); }
SSMKIT_TEST_NOINLINE void operator delete[](void* p) noexcept { std::free(p); }
SSMKIT_TEST_NOINLINE void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
SSMKIT_TEST_NOINLINE void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
SSMKIT_TEST_NOINLINE void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

enum class bc_mode { fixed, variable, grouped };

template <class T>
double unit_roundoff() {
  return std::numeric_limits<T>::epsilon() / 2;
}

template <class T>
double scan_tolerance(std::size_t length, std::size_t nstate) {
  return 8 * unit_roundoff<T>() * double(length + nstate);
}

/// One scan problem with its data in T (the reference reads the same values in double).
template <class T>
struct scan_data {
  std::size_t batch = 1, dim = 1, length = 1, nstate = 1;
  bc_mode b_mode = bc_mode::variable, c_mode = bc_mode::variable;
  std::size_t b_groups = 1, c_groups = 1;
  bool has_D = true, has_z = true, has_bias = true, softplus = true, has_h0 = true;
  std::vector<T> u, delta, A, B, C, D, z, bias, h0;

  std::vector<std::size_t> bc_shape(bc_mode m, std::size_t groups) const {
    if (m == bc_mode::fixed) return {dim, nstate};
    if (m == bc_mode::variable) return {batch, nstate, length};
    return {batch, groups, nstate, length};
  }
  static std::size_t count(const std::vector<std::size_t>& s) {
    std::size_t n = 1;
    for (auto e : s) n *= e;
    return n;
  }

  void fill(std::uint32_t seed) {
    const std::size_t bdl = batch * dim * length;
    u = ssm_test::uniform<T>(bdl, -1, 1, seed);
    delta = ssm_test::uniform<T>(bdl, softplus ? -3.0 : 0.001, softplus ? 1.0 : 0.3, seed + 1);
    // S4D-real-like A: -(n + 1), with a little per-channel spread.
    A.resize(dim * nstate);
    const auto spread = ssm_test::uniform<T>(dim * nstate, 0.5, 1.5, seed + 2);
    for (std::size_t i = 0; i < A.size(); ++i) A[i] = static_cast<T>(-double(i % nstate + 1) * double(spread[i]));
    B = ssm_test::uniform<T>(count(bc_shape(b_mode, b_groups)), -1, 1, seed + 3);
    C = ssm_test::uniform<T>(count(bc_shape(c_mode, c_groups)), -1, 1, seed + 4);
    D = has_D ? ssm_test::uniform<T>(dim, -1, 1, seed + 5) : std::vector<T>{};
    z = has_z ? ssm_test::uniform<T>(bdl, -2, 2, seed + 6) : std::vector<T>{};
    bias = has_bias ? ssm_test::uniform<T>(dim, -1, 0.5, seed + 7) : std::vector<T>{};
    h0 = has_h0 ? ssm_test::uniform<T>(batch * dim * nstate, -1, 1, seed + 8) : std::vector<T>{};
  }

  // B or C value for (b, d, n, t) in any mode.
  double bc_at(const std::vector<T>& x, bc_mode m, std::size_t groups, std::size_t b, std::size_t d, std::size_t n,
               std::size_t t) const {
    if (m == bc_mode::fixed) return double(x[d * nstate + n]);
    if (m == bc_mode::variable) return double(x[(b * nstate + n) * length + t]);
    const std::size_t g = d / (dim / groups);
    return double(x[((b * groups + g) * nstate + n) * length + t]);
  }
};

double softplus_ref(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

/// The plain double-precision reference, written from reference-semantics.md section 6.
template <class T>
void reference_scan(const scan_data<T>& s, std::vector<double>& out, std::vector<double>& last) {
  out.assign(s.batch * s.dim * s.length, 0);
  last.assign(s.batch * s.dim * s.nstate, 0);
  std::vector<double> h(s.nstate);
  for (std::size_t b = 0; b < s.batch; ++b) {
    for (std::size_t d = 0; d < s.dim; ++d) {
      for (std::size_t n = 0; n < s.nstate; ++n) h[n] = s.has_h0 ? double(s.h0[(b * s.dim + d) * s.nstate + n]) : 0.0;
      for (std::size_t t = 0; t < s.length; ++t) {
        const std::size_t i = (b * s.dim + d) * s.length + t;
        double dt = double(s.delta[i]) + (s.has_bias ? double(s.bias[d]) : 0.0);
        if (s.softplus) dt = softplus_ref(dt);
        const double ut = double(s.u[i]);
        double y = 0;
        for (std::size_t n = 0; n < s.nstate; ++n) {
          const double a = double(s.A[d * s.nstate + n]);
          h[n] = std::exp(dt * a) * h[n] + dt * ut * s.bc_at(s.B, s.b_mode, s.b_groups, b, d, n, t);
          y += h[n] * s.bc_at(s.C, s.c_mode, s.c_groups, b, d, n, t);
        }
        if (s.has_D) y += double(s.D[d]) * ut;
        if (s.has_z) {
          const double zt = double(s.z[i]);
          y *= zt / (1 + std::exp(-zt));
        }
        out[i] = y;
      }
      for (std::size_t n = 0; n < s.nstate; ++n) last[(b * s.dim + d) * s.nstate + n] = h[n];
    }
  }
}

template <class T>
ssmkit::bc_view<T> bc_of(const std::vector<T>& x, const std::vector<std::size_t>& shape) {
  if (shape.size() == 2) return ssmkit::make_view(x.data(), shape[0], shape[1]);
  if (shape.size() == 3) return ssmkit::make_view(x.data(), shape[0], shape[1], shape[2]);
  return ssmkit::make_view(x.data(), shape[0], shape[1], shape[2], shape[3]);
}

/// Runs ssmkit::selective_scan on s with backend Arch (channel-major, row-major views).
template <class T, class Arch>
void run_scan(const scan_data<T>& s, std::vector<T>& out, std::vector<T>& last, int threads = 1,
              bool fast_exp = false) {
  out.assign(s.batch * s.dim * s.length, T(0));
  last.assign(s.batch * s.dim * s.nstate, T(0));
  ssmkit::selective_scan_options<T> o;
  if (s.has_D) o.D = ssmkit::make_view(s.D.data(), s.dim);
  if (s.has_z) o.z = ssmkit::make_view(s.z.data(), s.batch, s.dim, s.length);
  if (s.has_bias) o.delta_bias = ssmkit::make_view(s.bias.data(), s.dim);
  if (s.has_h0) o.initial_state = ssmkit::make_view(s.h0.data(), s.batch, s.dim, s.nstate);
  o.delta_softplus = s.softplus;
  o.last_state = ssmkit::make_view(last.data(), s.batch, s.dim, s.nstate);
  o.parallel.num_threads = threads;
  o.fast_exp = fast_exp;
  ssmkit::selective_scan<T, Arch>(ssmkit::make_view(s.u.data(), s.batch, s.dim, s.length),
                                  ssmkit::make_view(s.delta.data(), s.batch, s.dim, s.length),
                                  ssmkit::make_view(s.A.data(), s.dim, s.nstate),
                                  bc_of(s.B, s.bc_shape(s.b_mode, s.b_groups)),
                                  bc_of(s.C, s.bc_shape(s.c_mode, s.c_groups)),
                                  ssmkit::make_view(out.data(), s.batch, s.dim, s.length), o);
}

struct config {
  std::size_t batch, dim, length, nstate;
  bc_mode b_mode;
  std::size_t b_groups;
  bc_mode c_mode;
  std::size_t c_groups;
};

/// Sizes include 1, primes, the SIMD width +- 1 and a large odd size; all three B/C layouts.
template <class T>
std::vector<config> configs() {
  const std::size_t w = ssmkit::detail::width_v<T, ssmkit::default_arch>;
  const std::size_t wg = std::max<std::size_t>(w, 4);  // divisible by the groups below, also when scalar
  return {
      {1, 1, 1, 1, bc_mode::variable, 1, bc_mode::variable, 1},
      {2, 7, 13, 5, bc_mode::fixed, 1, bc_mode::variable, 1},
      {1, w - 1, 67, 16, bc_mode::variable, 1, bc_mode::fixed, 1},
      {2, wg, 64, 16, bc_mode::grouped, 2, bc_mode::grouped, 2},
      {1, w + 1, 130, 17, bc_mode::variable, 1, bc_mode::variable, 1},
      {1, 37, 29, 4, bc_mode::grouped, 37, bc_mode::fixed, 1},
      {3, 2 * wg, 70, 8, bc_mode::grouped, 2, bc_mode::grouped, 4},
      {1, 3 * wg, 21, 12, bc_mode::grouped, 3, bc_mode::variable, 1},
      {1, 255, 129, 16, bc_mode::variable, 1, bc_mode::variable, 1},
  };
}

}  // namespace

TEMPLATE_TEST_CASE("selective_scan matches a double reference on both backends", "[selective_scan]", float,
                   double) {
  using T = TestType;
  for (const auto& c : configs<T>()) {
    for (const bool options : {true, false}) {
      scan_data<T> s;
      s.batch = c.batch;
      s.dim = c.dim;
      s.length = c.length;
      s.nstate = c.nstate;
      s.b_mode = c.b_mode;
      s.b_groups = c.b_groups;
      s.c_mode = c.c_mode;
      s.c_groups = c.c_groups;
      s.has_D = s.has_z = s.has_bias = s.softplus = s.has_h0 = options;
      s.fill(std::uint32_t(c.dim * 131 + c.length));
      std::vector<double> ref_out, ref_last;
      reference_scan(s, ref_out, ref_last);
      std::vector<T> simd_out, simd_last, scalar_out, scalar_last;
      run_scan<T, ssmkit::default_arch>(s, simd_out, simd_last);
      run_scan<T, ssmkit::scalar>(s, scalar_out, scalar_last);
      const double tol = scan_tolerance<T>(c.length, c.nstate);
      INFO("batch " << c.batch << " dim " << c.dim << " L " << c.length << " N " << c.nstate << " options "
                    << options << " tol " << tol);
      CHECK(ssm_test::max_rel_error(simd_out, ref_out) <= tol);
      CHECK(ssm_test::max_rel_error(simd_last, ref_last) <= tol);
      CHECK(ssm_test::max_rel_error(scalar_out, ref_out) <= tol);
      CHECK(ssm_test::max_rel_error(scalar_last, ref_last) <= tol);
      // SIMD == scalar: the same operations in the same order, except exp (xsimd vs libm).
      CHECK(ssm_test::max_rel_error(simd_out, scalar_out) <= tol);
      CHECK(ssm_test::max_rel_error(simd_last, scalar_last) <= tol);
    }
  }
}

TEST_CASE("selective_scan gives the same result on 2 threads", "[selective_scan]") {
  scan_data<float> s;
  s.batch = 2;
  s.dim = 67;
  s.length = 300;
  s.nstate = 16;
  s.fill(7);
  std::vector<float> out1, last1, out2, last2;
  run_scan<float, ssmkit::default_arch>(s, out1, last1, 1);
  run_scan<float, ssmkit::default_arch>(s, out2, last2, 2);
  CHECK(out1 == out2);
  CHECK(last1 == last2);
}

TEMPLATE_TEST_CASE("float32 error stays within the bound at L = 16384", "[selective_scan]", float) {
  using T = TestType;
  scan_data<T> s;
  s.batch = 1;
  s.dim = 17;
  s.length = 16384;
  s.nstate = 16;
  // Small Δ: dA close to 1, a long memory, the hard case for accumulated rounding.
  s.fill(99);
  for (auto& d : s.delta) d = static_cast<T>(-6 + 3 * (double(d) + 3) / 4);  // softplus(-6..-3) ≈ 0.0025..0.05
  std::vector<double> ref_out, ref_last;
  reference_scan(s, ref_out, ref_last);
  std::vector<T> out, last;
  run_scan<T, ssmkit::default_arch>(s, out, last);
  const double err = ssm_test::max_rel_error(out, ref_out);
  INFO("normwise error " << err << ", bound " << scan_tolerance<T>(s.length, s.nstate));
  CHECK(err <= scan_tolerance<T>(s.length, s.nstate));
  CHECK(ssm_test::max_rel_error(last, ref_last) <= scan_tolerance<T>(s.length, s.nstate));
}

TEST_CASE("the fast exp option stays within 3e-7 of max |out| against a double reference", "[selective_scan]") {
  // Mamba-1 sizes and initialisation (N = 16, A = -(n + 1), Δ = softplus(delta + bias) between
  // about 1e-3 and 0.3), long sequences: the accumulated error of the decay factors is what the
  // bound is about (docs/selective_scan.md).
  for (const std::size_t length : {std::size_t{2048}, std::size_t{16384}}) {
    scan_data<float> s;
    s.batch = 1;
    s.dim = 2 * ssmkit::detail::width_v<float, ssmkit::default_arch> + 3;
    s.length = length;
    s.nstate = 16;
    s.has_h0 = false;
    s.fill(std::uint32_t(length));
    for (auto& d : s.delta) d = -7 + 6 * (d + 3) / 4;  // delta + bias in about [-8, 0.5]
    std::vector<double> ref_out, ref_last;
    reference_scan(s, ref_out, ref_last);
    std::vector<float> out, last, fast_out, fast_last;
    run_scan<float, ssmkit::default_arch>(s, out, last);
    run_scan<float, ssmkit::default_arch>(s, fast_out, fast_last, 1, true);
    const double accurate = ssm_test::max_rel_error(out, ref_out), fast = ssm_test::max_rel_error(fast_out, ref_out);
    INFO("L " << length << ": error of max |out|, accurate exp " << accurate << ", fast exp " << fast
                << ", fast vs accurate " << ssm_test::max_rel_error(fast_out, std::vector<double>(out.begin(), out.end())));
    CHECK(fast <= 3e-7);  // the bound is on the output
    // The final state under the scan's general bound (on AVX2 the accurate exp's state error alone
    // is 3.1e-7 at L 16384).
    CHECK(ssm_test::max_rel_error(fast_last, ref_last) <= scan_tolerance<float>(length, s.nstate));
    // The option is off by default and changes nothing where fast_exp2 has no implementation.
    if (!ssmkit::detail::has_fast_exp2_v<float, ssmkit::default_arch>) CHECK(fast_out == out);
  }
}

TEMPLATE_TEST_CASE("chunked prefill: [0, k) then [k, L) from its last state equals one pass", "[selective_scan]",
                   float, double) {
  using T = TestType;
  scan_data<T> s;
  s.batch = 2;
  s.dim = ssmkit::detail::width_v<T, ssmkit::default_arch> + 3;
  s.length = 150;
  s.nstate = 16;
  s.has_h0 = false;
  s.fill(11);
  std::vector<T> full_out, full_last;
  run_scan<T, ssmkit::default_arch>(s, full_out, full_last);
  const std::size_t B = s.batch, D = s.dim, L = s.length, N = s.nstate;
  // A view of tokens [t0, t0 + n) of a (batch, rows, L) buffer.
  const auto part = [L](const std::vector<T>& v, std::size_t rows, std::size_t t0, std::size_t n) {
    return ssmkit::tensor_view<const T, 3>(v.data() + t0, {v.size() / (rows * L), rows, n},
                                           {std::ptrdiff_t(rows * L), std::ptrdiff_t(L), 1});
  };
  for (const std::size_t k : {std::size_t{1}, std::size_t{63}, std::size_t{64}, std::size_t{65}, std::size_t{149}}) {
    for (const bool in_place : {false, true}) {
      std::vector<T> out(B * D * L, T(0)), state(B * D * N, T(0)), state2(B * D * N, T(0));
      auto outv = ssmkit::make_view(out.data(), B, D, L);
      const auto out_part = [&](std::size_t t0, std::size_t n) {
        return ssmkit::tensor_view<T, 3>(out.data() + t0, {B, D, n}, outv.strides());
      };
      ssmkit::selective_scan_options<T> o;
      o.D = ssmkit::make_view(s.D.data(), D);
      o.z = part(s.z, D, 0, k);
      o.delta_bias = ssmkit::make_view(s.bias.data(), D);
      o.delta_softplus = true;
      o.last_state = ssmkit::make_view(state.data(), B, D, N);
      ssmkit::selective_scan(part(s.u, D, 0, k), part(s.delta, D, 0, k), ssmkit::make_view(s.A.data(), D, N),
                             part(s.B, N, 0, k), part(s.C, N, 0, k), out_part(0, k), o);
      o.z = part(s.z, D, k, L - k);
      o.initial_state = ssmkit::make_view(state.data(), B, D, N);
      o.last_state = ssmkit::make_view(in_place ? state.data() : state2.data(), B, D, N);
      ssmkit::selective_scan(part(s.u, D, k, L - k), part(s.delta, D, k, L - k), ssmkit::make_view(s.A.data(), D, N),
                             part(s.B, N, k, L - k), part(s.C, N, k, L - k), out_part(k, L - k), o);
      INFO("split at " << k << (in_place ? " (state in place)" : ""));
      // Every token runs the same operations in the same order: bitwise equal.
      CHECK(out == full_out);
      CHECK((in_place ? state : state2) == full_last);
    }
  }
}

TEMPLATE_TEST_CASE("token-major and strided layouts equal channel-major", "[selective_scan]", float, double) {
  using T = TestType;
  scan_data<T> s;
  s.batch = 2;
  s.dim = 2 * ssmkit::detail::width_v<T, ssmkit::default_arch> + 3;
  s.length = 77;
  s.nstate = 16;
  s.fill(5);
  std::vector<T> ref_out, ref_last;
  run_scan<T, ssmkit::default_arch>(s, ref_out, ref_last);
  const std::size_t B = s.batch, D = s.dim, L = s.length, N = s.nstate;
  // (batch, D, L) -> token-major (batch, L, D) copies.
  const auto to_tokens = [&](const std::vector<T>& v, std::size_t rows) {
    std::vector<T> t(v.size());
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t l = 0; l < L; ++l) t[(b * L + l) * rows + r] = v[(b * rows + r) * L + l];
    return t;
  };
  const auto u = to_tokens(s.u, D), delta = to_tokens(s.delta, D), z = to_tokens(s.z, D);
  const auto Bt = to_tokens(s.B, N), Ct = to_tokens(s.C, N);
  std::vector<T> out(B * L * D), last(B * D * N);
  const auto tok = [&](const std::vector<T>& v, std::size_t rows) {
    return ssmkit::make_view(v.data(), B, L, rows).transposed(1, 2);
  };
  ssmkit::selective_scan_options<T> o;
  o.D = ssmkit::make_view(s.D.data(), D);
  o.z = tok(z, D);
  o.delta_bias = ssmkit::make_view(s.bias.data(), D);
  o.delta_softplus = true;
  o.initial_state = ssmkit::make_view(s.h0.data(), B, D, N);
  o.last_state = ssmkit::make_view(last.data(), B, D, N);
  ssmkit::selective_scan(tok(u, D), tok(delta, D), ssmkit::make_view(s.A.data(), D, N), tok(Bt, N), tok(Ct, N),
                         ssmkit::make_view(out.data(), B, L, D).transposed(1, 2), o);
  CHECK(to_tokens(ref_out, D) == out);
  CHECK(last == ref_last);

  // A generic strided layout: every other element of a twice-as-long buffer, with A transposed.
  std::vector<T> u2(2 * s.u.size()), out2(2 * ref_out.size()), At(D * N);
  for (std::size_t i = 0; i < s.u.size(); ++i) u2[2 * i] = s.u[i];
  for (std::size_t d = 0; d < D; ++d)
    for (std::size_t n = 0; n < N; ++n) At[n * D + d] = s.A[d * N + n];
  const ssmkit::tensor_view<const T, 3> u_strided(u2.data(), {B, D, L},
                                                  {std::ptrdiff_t(2 * D * L), std::ptrdiff_t(2 * L), 2});
  const ssmkit::tensor_view<T, 3> out_strided(out2.data(), {B, D, L},
                                              {std::ptrdiff_t(2 * D * L), std::ptrdiff_t(2 * L), 2});
  std::vector<T> last2(B * D * N);
  o.z = ssmkit::make_view(s.z.data(), B, D, L);
  o.last_state = ssmkit::make_view(last2.data(), B, D, N);
  ssmkit::selective_scan(u_strided, ssmkit::make_view(s.delta.data(), B, D, L),
                         ssmkit::make_view(At.data(), N, D).transposed(0, 1), ssmkit::make_view(s.B.data(), B, N, L),
                         ssmkit::make_view(s.C.data(), B, N, L), out_strided, o);
  bool same = true;
  for (std::size_t i = 0; i < ref_out.size(); ++i) same = same && out2[2 * i] == ref_out[i];
  CHECK(same);
  CHECK(last2 == ref_last);
}

namespace {

/// The decode step in double, from reference-semantics.md section 7 (heads layout).
void reference_state_update(std::vector<double>& state, const std::vector<double>& x, const std::vector<double>& dt,
                            const std::vector<double>& A, const std::vector<double>& B, const std::vector<double>& C,
                            const std::vector<double>& D, const std::vector<double>& z,
                            const std::vector<double>& bias, bool softplus, std::size_t batch, std::size_t H,
                            std::size_t P, std::size_t N, std::size_t G, std::vector<double>& out) {
  out.assign(batch * H * P, 0);
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t p = 0; p < P; ++p) {
        const std::size_t i = (b * H + h) * P + p, g = h / (H / G);
        double d = dt[i] + (bias.empty() ? 0.0 : bias[h * P + p]);
        if (softplus) d = softplus_ref(d);
        double y = 0;
        for (std::size_t n = 0; n < N; ++n) {
          double& s = state[i * N + n];
          s = s * std::exp(d * A[(h * P + p) * N + n]) + d * B[(b * G + g) * N + n] * x[i];
          y += s * C[(b * G + g) * N + n];
        }
        if (!D.empty()) y += x[i] * D[h * P + p];
        if (!z.empty()) y *= z[i] / (1 + std::exp(-z[i]));
        out[i] = y;
      }
}

template <class T>
std::vector<double> widen(const std::vector<T>& v) {
  return {v.begin(), v.end()};
}

}  // namespace

TEMPLATE_TEST_CASE("selective_state_update with heads and groups matches a double reference", "[decode]", float,
                   double) {
  using T = TestType;
  const std::size_t w = ssmkit::detail::width_v<T, ssmkit::default_arch>;
  struct shape {
    std::size_t batch, H, P, N, G;
  };
  for (const auto& c : {shape{1, 1, 1, 1, 1}, shape{2, 4, 3, 5, 2}, shape{2, 6, w + 1, w, 3},
                        shape{1, 3, 7, 2 * w + 3, 1}, shape{1, 2, 64, 128, 1}}) {
    const std::size_t n_state = c.batch * c.H * c.P * c.N, n_x = c.batch * c.H * c.P;
    auto state = ssm_test::uniform<T>(n_state, -1, 1, 1);
    const auto x = ssm_test::uniform<T>(n_x, -1, 1, 2), dt = ssm_test::uniform<T>(n_x, -3, 1, 3);
    const auto z = ssm_test::uniform<T>(n_x, -2, 2, 4);
    const auto A = ssm_test::uniform<T>(c.H * c.P * c.N, -4, -0.1, 5);
    const auto B = ssm_test::uniform<T>(c.batch * c.G * c.N, -1, 1, 6);
    const auto C = ssm_test::uniform<T>(c.batch * c.G * c.N, -1, 1, 7);
    const auto D = ssm_test::uniform<T>(c.H * c.P, -1, 1, 8), bias = ssm_test::uniform<T>(c.H * c.P, -1, 0.5, 9);
    auto ref_state = widen(state);
    std::vector<double> ref_out;
    reference_state_update(ref_state, widen(x), widen(dt), widen(A), widen(B), widen(C), widen(D), widen(z),
                           widen(bias), true, c.batch, c.H, c.P, c.N, c.G, ref_out);
    for (const bool use_scalar : {false, true}) {
      auto s = state;
      std::vector<T> out(n_x);
      ssmkit::selective_state_update_options<T, 4> o;
      o.D = ssmkit::make_view(D.data(), c.H, c.P);
      o.z = ssmkit::make_view(z.data(), c.batch, c.H, c.P);
      o.dt_bias = ssmkit::make_view(bias.data(), c.H, c.P);
      o.dt_softplus = true;
      const auto sv = ssmkit::make_view(s.data(), c.batch, c.H, c.P, c.N);
      const auto xv = ssmkit::make_view(x.data(), c.batch, c.H, c.P);
      const auto dv = ssmkit::make_view(dt.data(), c.batch, c.H, c.P);
      const auto av = ssmkit::make_view(A.data(), c.H, c.P, c.N);
      const auto bv = ssmkit::make_view(B.data(), c.batch, c.G, c.N);
      const auto cv = ssmkit::make_view(C.data(), c.batch, c.G, c.N);
      const auto ov = ssmkit::make_view(out.data(), c.batch, c.H, c.P);
      if (use_scalar) {
        ssmkit::selective_state_update<T, ssmkit::scalar>(sv, xv, dv, av, bv, cv, ov, o);
      } else {
        ssmkit::selective_state_update(sv, xv, dv, av, bv, cv, ov, o);
      }
      const double tol = 8 * unit_roundoff<T>() * double(c.N + 4);
      INFO("batch " << c.batch << " H " << c.H << " P " << c.P << " N " << c.N << " G " << c.G << " scalar "
                    << use_scalar);
      CHECK(ssm_test::max_rel_error(out, ref_out) <= tol);
      CHECK(ssm_test::max_rel_error(s, ref_state) <= tol);
    }
  }
}

TEMPLATE_TEST_CASE("L decode steps equal the scan, and the step does not allocate", "[decode]", float, double) {
  for (const bool fast_exp : {false, true}) {  // the fast exp in both, or in neither
  using T = TestType;
  scan_data<T> s;
  s.batch = 2;
  s.dim = ssmkit::detail::width_v<T, ssmkit::default_arch> + 5;
  s.length = 40;
  s.nstate = 16;
  s.fill(21);
  std::vector<T> scan_out, scan_last;
  run_scan<T, ssmkit::default_arch>(s, scan_out, scan_last, 1, fast_exp);
  const std::size_t B = s.batch, D = s.dim, L = s.length, N = s.nstate;
  auto state = s.h0;
  std::vector<T> out(B * D * L), step(B * D);
  const auto token = [&](const std::vector<T>& v, std::size_t rows, std::size_t t) {
    return ssmkit::tensor_view<const T, 2>(v.data() + t, {B, rows}, {std::ptrdiff_t(rows * L), std::ptrdiff_t(L)});
  };
  ssmkit::selective_state_update_options<T, 3> o;
  o.D = ssmkit::make_view(s.D.data(), D);
  o.dt_bias = ssmkit::make_view(s.bias.data(), D);
  o.dt_softplus = true;
  o.parallel.num_threads = 1;
  o.fast_exp = fast_exp;
  long allocations = 0;
  for (std::size_t t = 0; t < L; ++t) {
    o.z = token(s.z, D, t);
    const auto x = token(s.u, D, t), dt = token(s.delta, D, t), b = token(s.B, N, t), c = token(s.C, N, t);
    const auto sv = ssmkit::make_view(state.data(), B, D, N);
    const auto av = ssmkit::make_view(s.A.data(), D, N);
    const auto ov = ssmkit::make_view(step.data(), B, D);
    const long before = allocation_count.load();
    ssmkit::selective_state_update(sv, x, dt, av, b, c, ov, o);
    allocations += allocation_count.load() - before;
    for (std::size_t i = 0; i < B * D; ++i) out[i * L + t] = step[i];
  }
  INFO("fast exp " << fast_exp);
  CHECK(allocations == 0);
  const double tol = scan_tolerance<T>(L, N);
  CHECK(ssm_test::max_rel_error(out, scan_out) <= tol);
  CHECK(ssm_test::max_rel_error(state, scan_last) <= tol);
  }
}

TEST_CASE("a decode step splits one long channel row over 2 threads: serial result, double reference", "[decode]") {
  // Mamba-1 without heads: one (batch, head) row of D channels, cut into pieces of 256 float
  // channels (16 blocks of 16) that parallel_for shares out once there are enough of them. D = 1603:
  // 7 pieces, the last one 67 channels with a partial block of 3. A channel run twice or skipped
  // would leave the double reference; a race would leave the serial result.
  const std::size_t D = 1603, N = 16;
  const auto x = ssm_test::uniform<float>(D, -1, 1, 41), dt = ssm_test::uniform<float>(D, -3, 1, 42);
  const auto z = ssm_test::uniform<float>(D, -2, 2, 43), bias = ssm_test::uniform<float>(D, -1, 0, 44);
  const auto A = ssm_test::uniform<float>(D * N, -4, -0.5, 45), Dv = ssm_test::uniform<float>(D, -1, 1, 46);
  const auto h0 = ssm_test::uniform<float>(D * N, -1, 1, 49);
  std::vector<float> states[2] = {h0, h0}, outs[2] = {std::vector<float>(D), std::vector<float>(D)};
  auto ref_state = widen(h0);
  std::vector<double> ref_out;
  for (std::uint32_t step = 0; step < 3; ++step) {  // the state carries from step to step
    const auto B = ssm_test::uniform<float>(N, -1, 1, 47 + 10 * step), C = ssm_test::uniform<float>(N, -1, 1, 48 + 10 * step);
    reference_state_update(ref_state, widen(x), widen(dt), widen(A), widen(B), widen(C), widen(Dv), widen(z),
                           widen(bias), true, 1, 1, D, N, 1, ref_out);
    for (const int threads : {1, 2}) {
      ssmkit::selective_state_update_options<float, 3> o;
      o.D = ssmkit::make_view(Dv.data(), D);
      o.z = ssmkit::make_view(z.data(), 1, D);
      o.dt_bias = ssmkit::make_view(bias.data(), D);
      o.dt_softplus = true;
      o.parallel.num_threads = threads;
      ssmkit::selective_state_update(ssmkit::make_view(states[threads - 1].data(), 1, D, N), ssmkit::make_view(x.data(), 1, D),
                                     ssmkit::make_view(dt.data(), 1, D), ssmkit::make_view(A.data(), D, N),
                                     ssmkit::make_view(B.data(), 1, N), ssmkit::make_view(C.data(), 1, N),
                                     ssmkit::make_view(outs[threads - 1].data(), 1, D), o);
    }
  }
  CHECK(outs[0] == outs[1]);
  CHECK(states[0] == states[1]);
  const double tol = 3 * 8 * unit_roundoff<float>() * double(N + 4);  // three steps of the bound above
  CHECK(ssm_test::max_rel_error(outs[1], ref_out) <= tol);
  CHECK(ssm_test::max_rel_error(states[1], ref_state) <= tol);
}

TEST_CASE("NaN in, NaN out, and only where it reaches", "[selective_scan]") {
  scan_data<float> s;
  s.batch = 1;
  s.dim = 20;
  s.length = 30;
  s.nstate = 16;
  s.fill(3);
  const std::size_t d_nan = 3, t_nan = 10;
  s.delta[d_nan * s.length + t_nan] = std::numeric_limits<float>::quiet_NaN();
  for (const bool use_scalar : {false, true}) {
    std::vector<float> out, last;
    if (use_scalar) run_scan<float, ssmkit::scalar>(s, out, last);
    else run_scan<float, ssmkit::default_arch>(s, out, last);
    for (std::size_t d = 0; d < s.dim; ++d) {
      for (std::size_t t = 0; t < s.length; ++t) {
        const bool expect_nan = d == d_nan && t >= t_nan;
        CHECK(std::isnan(out[d * s.length + t]) == expect_nan);
      }
      CHECK(std::isnan(last[d * s.nstate]) == (d == d_nan));
    }
  }
}

TEMPLATE_TEST_CASE("extreme delta: softplus of 20 to 40 with A = -100 decays to exact zeros, no NaN",
                   "[selective_scan]", float, double) {
  using T = TestType;
  scan_data<T> s;
  s.batch = 1;
  s.dim = ssmkit::detail::width_v<T, ssmkit::default_arch> + 1;
  s.length = 9;
  s.nstate = 16;
  s.has_bias = false;
  s.has_z = false;
  s.has_D = false;
  s.fill(8);
  s.delta = ssm_test::uniform<T>(s.delta.size(), 20, 40, 1);
  std::fill(s.A.begin(), s.A.end(), T(-100));
  for (const bool use_scalar : {false, true}) {
    std::vector<T> out, last;
    if (use_scalar) run_scan<T, ssmkit::scalar>(s, out, last);
    else run_scan<T, ssmkit::default_arch>(s, out, last);
    const std::size_t L = s.length, N = s.nstate;
    bool finite = true, exact = true;
    for (auto v : out) finite = finite && std::isfinite(v);
    // exp(Δ A) is exactly 0: the last state is Δ u B of the last token alone.
    for (std::size_t d = 0; d < s.dim; ++d) {
      const T dt = s.delta[d * L + L - 1];  // > 20: softplus is the identity
      const T du = dt * s.u[d * L + L - 1];
      for (std::size_t n = 0; n < N; ++n) exact = exact && last[d * N + n] == du * s.B[n * L + L - 1];
    }
    CHECK(finite);
    CHECK(exact);
  }
}

TEST_CASE("edge sizes: L = 0 copies the initial state, N = 0 leaves only D u", "[selective_scan]") {
  std::vector<float> h0{1, 2, 3, 4}, last(4, -1), none;
  std::vector<float> A{-1, -2, -1, -2}, Bf{1, 1, 1, 1};
  ssmkit::selective_scan_options<float> o;
  o.initial_state = ssmkit::make_view(h0, 1, 2, 2);
  o.last_state = ssmkit::make_view(last, 1, 2, 2);
  ssmkit::selective_scan(ssmkit::make_view(none.data(), 1, 2, 0), ssmkit::make_view(none.data(), 1, 2, 0),
                         ssmkit::make_view(A, 2, 2), ssmkit::make_view(Bf, 2, 2), ssmkit::make_view(Bf, 2, 2),
                         ssmkit::make_view(none.data(), 1, 2, 0), o);
  CHECK(last == h0);

  std::vector<float> u{1, 2, 3}, delta{0.1f, 0.2f, 0.3f}, D{2}, out(3);
  ssmkit::selective_scan_options<float> o2;
  o2.D = ssmkit::make_view(D, 1);
  ssmkit::selective_scan(ssmkit::make_view(u, 1, 1, 3), ssmkit::make_view(delta, 1, 1, 3),
                         ssmkit::make_view(none.data(), 1, 0), ssmkit::make_view(none.data(), 1, 0),
                         ssmkit::make_view(none.data(), 1, 0), ssmkit::make_view(out, 1, 1, 3), o2);
  CHECK(out == std::vector<float>{2, 4, 6});
}

TEST_CASE("bad input throws ssmkit::error with the standard message and writes nothing", "[selective_scan]") {
  const std::size_t B = 2, D = 6, L = 8, N = 4;
  std::vector<float> u(B * D * L, 1), delta(B * D * L, 0.1f), A(D * N, -1), Bv(B * N * L, 1), Cv(B * N * L, 1);
  std::vector<float> Bg(B * 4 * N * L, 1), out(B * D * L, 7), last(B * D * N, 7), wrong(B * D * (L - 1));
  const auto uv = ssmkit::make_view(u, B, D, L);
  const auto dv = ssmkit::make_view(delta, B, D, L);
  const auto av = ssmkit::make_view(A, D, N);
  const auto bv = ssmkit::make_view(Bv, B, N, L);
  const auto cv = ssmkit::make_view(Cv, B, N, L);
  const auto ov = ssmkit::make_view(out, B, D, L);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, ssmkit::make_view(wrong, B, D, L - 1), av, bv, cv, ov); }) ==
        "selective_scan: delta has shape (2, 6, 7), expected (2, 6, 8)");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, ssmkit::make_view(A.data(), D - 1, N), bv, cv, ov); }) ==
        "selective_scan: A has shape (5, 4), expected (6, 4)");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, ssmkit::make_view(Bv.data(), B, N, L - 1), cv, ov); }) ==
        "selective_scan: B has shape (2, 4, 7), expected (2, 4, 8)");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, ssmkit::make_view(A.data(), D, N - 1), ov); }) ==
        "selective_scan: C has shape (6, 3), expected (6, 4)");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, ssmkit::make_view(Bg.data(), B, 4, N, L), cv, ov); }) ==
        "selective_scan: B has 4 groups, which do not divide D = 6");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ssmkit::make_view(out.data(), B, D, L - 1)); }) ==
        "selective_scan: out has shape (2, 6, 7), expected (2, 6, 8)");
  ssmkit::selective_scan_options<float> o;
  o.last_state = ssmkit::make_view(last.data(), B, D, N + 1);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: last_state has shape (2, 6, 5), expected (2, 6, 4)");
  o = {};
  o.initial_state = ssmkit::make_view(last.data(), B, D - 1, N);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: initial_state has shape (2, 5, 4), expected (2, 6, 4)");
  o = {};
  o.D = ssmkit::make_view(A.data(), D + 1);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: D has shape (7), expected (6)");
  o = {};
  o.delta_bias = ssmkit::tensor_view<const float, 1>(nullptr, {D});
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: delta_bias is a null view of shape (6)");
  o = {};
  o.z = ssmkit::make_view(u, B, D, L);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ssmkit::make_view(u, B, D, L), o); }) ==
        "selective_scan: out overlaps u in memory");
  o = {};
  o.last_state = ssmkit::make_view(Bv.data(), B, D, N);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: last_state overlaps B in memory");
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 7; }));
  CHECK(std::all_of(last.begin(), last.end(), [](float v) { return v == 7; }));

  // The decode step, both layouts.
  std::vector<float> state(B * D * N, 5), x(B * D, 1), dt(B * D, 0.1f), bb(B * N, 1), o1(B * D, 9);
  const auto sv = ssmkit::make_view(state, B, D, N);
  const auto xv = ssmkit::make_view(x, B, D);
  const auto ov1 = ssmkit::make_view(o1, B, D);
  CHECK(error_of([&] {
          ssmkit::selective_state_update(sv, xv, ssmkit::make_view(dt.data(), B, D - 1), av, ssmkit::make_view(bb, B, N),
                                         ssmkit::make_view(bb, B, N), ov1);
        }) == "selective_state_update: dt has shape (2, 5), expected (2, 6)");
  CHECK(error_of([&] {
          ssmkit::selective_state_update(sv, xv, ssmkit::make_view(dt, B, D), av, ssmkit::make_view(bb.data(), B, N - 1),
                                         ssmkit::make_view(bb, B, N), ov1);
        }) == "selective_state_update: B has shape (2, 3), expected (2, 4)");
  CHECK(error_of([&] {
          ssmkit::selective_state_update(sv, xv, ssmkit::make_view(dt, B, D), av, ssmkit::make_view(bb, B, N),
                                         ssmkit::make_view(bb, B, N), ssmkit::make_view(x, B, D));
        }) == "selective_state_update: out overlaps x in memory");
  const std::size_t H = 3, P = 2;
  const auto sv4 = ssmkit::make_view(state.data(), B, H, P, N);
  const auto xv4 = ssmkit::make_view(x.data(), B, H, P);
  const auto av4 = ssmkit::make_view(A.data(), H, P, N);
  std::vector<float> bg(B * 2 * N, 1);
  CHECK(error_of([&] {
          ssmkit::selective_state_update(sv4, xv4, ssmkit::make_view(dt.data(), B, H, P), av4,
                                         ssmkit::make_view(bg.data(), B, 2, N), ssmkit::make_view(bg.data(), B, 2, N),
                                         ssmkit::make_view(o1.data(), B, H, P));
        }) == "selective_state_update: B has 2 groups, which do not divide H = 3");
  CHECK(error_of([&] {
          ssmkit::selective_state_update(sv4, xv4, ssmkit::make_view(dt.data(), B, H, P), ssmkit::make_view(A.data(), H, P, N - 1),
                                         ssmkit::make_view(bb.data(), B, 1, N), ssmkit::make_view(bb.data(), B, 1, N),
                                         ssmkit::make_view(o1.data(), B, H, P));
        }) == "selective_state_update: A has shape (3, 2, 3), expected (3, 2, 4)");
  CHECK(std::all_of(state.begin(), state.end(), [](float v) { return v == 5; }));
  CHECK(std::all_of(o1.begin(), o1.end(), [](float v) { return v == 9; }));
}

TEST_CASE("detail::exp is within 2 ulp of exp, with exact 0, inf and NaN at the ends", "[selective_scan]") {
  using arch = ssmkit::default_arch;
  constexpr std::size_t w = ssmkit::detail::width_v<float, arch>;
  std::vector<float> x, y(w);
  // Up to 88: xsimd's float exp (detail::exp below AVX-512) saturates to inf above 88.376.
  for (double v = -103; v < 88.0; v += 0.0037) x.push_back(float(v));
  for (float v = -1e-3f; v < 1e-3f; v += 1.7e-6f) x.push_back(v);  // around 0, where dA lives
  while (x.size() % w != 0) x.push_back(0);
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); i += w) {
    ssmkit::detail::store(y.data(), ssmkit::detail::exp(ssmkit::detail::load<arch>(x.data() + i)));
    for (std::size_t j = 0; j < w; ++j) {
      const double ref = std::exp(double(x[i + j]));
      if (ref < double(std::numeric_limits<float>::min())) continue;  // subnormal results: absolute error
      worst = std::max(worst, std::abs(double(y[j]) - ref) / ref);
    }
  }
  INFO("max relative error " << worst);
  CHECK(worst <= 2 * unit_roundoff<float>() * 2);  // 2 ulp = 4 u
  const float specials[] = {-std::numeric_limits<float>::infinity(), -1000.0f, -104.0f,
                            std::numeric_limits<float>::infinity(), 89.0f, 0.0f};
  const float expected[] = {0.0f, 0.0f, 0.0f, std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::infinity(), 1.0f};
  for (std::size_t s = 0; s < 6; ++s) {
    std::vector<float> v(w, specials[s]);
    ssmkit::detail::store(y.data(), ssmkit::detail::exp(ssmkit::detail::load<arch>(v.data())));
    CHECK(y[0] == expected[s]);
  }
  std::vector<float> nan(w, std::numeric_limits<float>::quiet_NaN());
  ssmkit::detail::store(y.data(), ssmkit::detail::exp(ssmkit::detail::load<arch>(nan.data())));
  CHECK(std::isnan(y[0]));
}

TEST_CASE("detail::exp in double is within 2 ulp of exp, with exact 0, inf and NaN at the ends", "[selective_scan]") {
  using arch = ssmkit::default_arch;
  constexpr std::size_t w = ssmkit::detail::width_v<double, arch>;
  std::vector<double> x, y(w);
  // Up to 709: xsimd's double exp (detail::exp below AVX-512) saturates to inf above 709.43.
  for (double v = -708; v < 709.0; v += 0.0131) x.push_back(v);
  for (double v = -1e-3; v < 1e-3; v += 1.3e-6) x.push_back(v);  // around 0, where dA lives
  while (x.size() % w != 0) x.push_back(0);
  long double worst = 0;
  for (std::size_t i = 0; i < x.size(); i += w) {
    ssmkit::detail::store(y.data(), ssmkit::detail::exp(ssmkit::detail::load<arch>(x.data() + i)));
    for (std::size_t j = 0; j < w; ++j) {
      const long double ref = std::exp(static_cast<long double>(x[i + j]));
      worst = std::max(worst, std::abs(static_cast<long double>(y[j]) - ref) / ref);
    }
  }
  INFO("max relative error " << double(worst));
  CHECK(worst <= 2 * unit_roundoff<double>() * 2);  // 2 ulp = 4 u
  // Gradual underflow on AVX-512 (scalef): exp(-740) is subnormal (about 4.2e-322), within one
  // subnormal step. xsimd's exp on the narrower backends flushes it to 0; std::exp keeps it.
  if constexpr (std::is_base_of_v<xsimd::avx512f, arch> || std::is_same_v<arch, ssmkit::scalar>) {
    std::vector<double> deep(w, -740.0);
    ssmkit::detail::store(y.data(), ssmkit::detail::exp(ssmkit::detail::load<arch>(deep.data())));
    CHECK(std::abs(y[0] - double(std::exp(-740.0L))) <= std::numeric_limits<double>::denorm_min());
  }
  const double inf = std::numeric_limits<double>::infinity();
  const double specials[] = {-inf, -1e300, -746.0, inf, 1e300, 710.0, 0.0};
  const double expected[] = {0.0, 0.0, 0.0, inf, inf, inf, 1.0};
  for (std::size_t s = 0; s < 7; ++s) {
    std::vector<double> v(w, specials[s]);
    ssmkit::detail::store(y.data(), ssmkit::detail::exp(ssmkit::detail::load<arch>(v.data())));
    CHECK(y[0] == expected[s]);
  }
  std::vector<double> nan(w, std::numeric_limits<double>::quiet_NaN());
  ssmkit::detail::store(y.data(), ssmkit::detail::exp(ssmkit::detail::load<arch>(nan.data())));
  CHECK(std::isnan(y[0]));
}

TEST_CASE("fast_exp2 is within 1.7e-7 + 0.7 u |t| of 2^t, with exact 0, inf and NaN at the ends", "[selective_scan]") {
  using arch = ssmkit::default_arch;
  constexpr std::size_t w = ssmkit::detail::width_v<float, arch>;
  std::vector<float> t, y(w);
  for (double v = -140; v < 120; v += 0.00531) t.push_back(float(v));
  for (float v = -1e-3f; v < 1e-3f; v += 1.3e-6f) t.push_back(v);  // around 0, where dA lives
  while (t.size() % w != 0) t.push_back(0);
  double worst = 0;  // the error beyond the bound's |t| part, relative
  for (std::size_t i = 0; i < t.size(); i += w) {
    ssmkit::detail::store(y.data(), ssmkit::detail::fast_exp2<float, arch>(ssmkit::detail::load<arch>(t.data() + i)));
    for (std::size_t j = 0; j < w; ++j) {
      const double ref = std::exp2(double(t[i + j]));
      if (ref < double(std::numeric_limits<float>::min())) continue;  // subnormal results: absolute error
      const double rel = std::abs(double(y[j]) - ref) / ref;
      worst = std::max(worst, rel - 0.7 * unit_roundoff<float>() * std::abs(double(t[i + j])));
    }
  }
  INFO("max relative error beyond 0.7 u |t|: " << worst);
  // On backends without fast_exp2 the fallback exp(t ln2) meets the same bound.
  CHECK(worst <= 1.7e-7);
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {-inf, -1000.0f, -151.0f, inf, 129.0f, 0.0f};
  const float expected[] = {0.0f, 0.0f, 0.0f, inf, inf, 1.0f};
  for (std::size_t s = 0; s < 6; ++s) {
    std::vector<float> v(w, specials[s]);
    ssmkit::detail::store(y.data(), ssmkit::detail::fast_exp2<float, arch>(ssmkit::detail::load<arch>(v.data())));
    CHECK(y[0] == expected[s]);
  }
  std::vector<float> nan(w, std::numeric_limits<float>::quiet_NaN());
  ssmkit::detail::store(y.data(), ssmkit::detail::fast_exp2<float, arch>(ssmkit::detail::load<arch>(nan.data())));
  CHECK(std::isnan(y[0]));
}

// ---- Complex A -------------------------------------------------------------------------------
//
// The reference is a plain std::complex<double> loop over the same (rounded) inputs. Tolerance:
// the real scan's 8·u·(L + N); the rotation exp(iΔ a_i) adds a few ulp per token like exp(Δ a_r)
// does, which the factor 2 of that bound already covers.

namespace {

/// A complex-A scan problem: A (D, N) and the states complex; fixed B/C complex (D, N) stored
/// interleaved in a vector of T; variable/grouped B/C real (batch, [G,] N, 2L) interleaved per token.
template <class T>
struct complex_data {
  std::size_t batch = 1, dim = 1, length = 1, nstate = 1;
  bc_mode b_mode = bc_mode::variable, c_mode = bc_mode::variable;
  std::size_t b_groups = 1, c_groups = 1;
  bool has_D = true, has_z = true, has_bias = true, softplus = true, has_h0 = true;
  std::vector<T> u, delta, A, B, C, D, z, bias, h0;  // A and h0 interleaved (re, im)
  std::vector<std::int64_t> cu;                       // packed sequences (empty: none)

  std::size_t sequences() const { return cu.empty() ? 1 : cu.size() - 1; }
  std::size_t bc_count(bc_mode m, std::size_t groups) const {
    if (m == bc_mode::fixed) return 2 * dim * nstate;
    return batch * (m == bc_mode::grouped ? groups : 1) * nstate * 2 * length;
  }

  void fill(std::uint32_t seed) {
    const std::size_t bdl = batch * dim * length;
    u = ssm_test::uniform<T>(bdl, -1, 1, seed);
    delta = ssm_test::uniform<T>(bdl, softplus ? -3.0 : 0.001, softplus ? 1.0 : 0.3, seed + 1);
    // S4D-Lin-like A: -1/2 + i π n, with a little spread.
    A.resize(2 * dim * nstate);
    const auto spread = ssm_test::uniform<T>(2 * dim * nstate, 0.5, 1.5, seed + 2);
    for (std::size_t i = 0; i < dim * nstate; ++i) {
      A[2 * i] = static_cast<T>(-0.5 * double(spread[2 * i]));
      A[2 * i + 1] = static_cast<T>(3.14159 * double(i % nstate) * double(spread[2 * i + 1]));
    }
    B = ssm_test::uniform<T>(bc_count(b_mode, b_groups), -1, 1, seed + 3);
    C = ssm_test::uniform<T>(bc_count(c_mode, c_groups), -1, 1, seed + 4);
    D = has_D ? ssm_test::uniform<T>(dim, -1, 1, seed + 5) : std::vector<T>{};
    z = has_z ? ssm_test::uniform<T>(bdl, -2, 2, seed + 6) : std::vector<T>{};
    bias = has_bias ? ssm_test::uniform<T>(dim, -1, 0.5, seed + 7) : std::vector<T>{};
    h0 = has_h0 ? ssm_test::uniform<T>(2 * batch * sequences() * dim * nstate, -1, 1, seed + 8) : std::vector<T>{};
  }

  std::complex<double> bc_at(const std::vector<T>& x, bc_mode m, std::size_t groups, std::size_t b, std::size_t d,
                             std::size_t n, std::size_t t) const {
    std::size_t i = 0;
    if (m == bc_mode::fixed) return {double(x[2 * (d * nstate + n)]), double(x[2 * (d * nstate + n) + 1])};
    if (m == bc_mode::variable) i = (b * nstate + n) * 2 * length + 2 * t;
    if (m == bc_mode::grouped) i = ((b * groups + d / (dim / groups)) * nstate + n) * 2 * length + 2 * t;
    return {double(x[i]), double(x[i + 1])};
  }

  ssmkit::complex_bc_view<T> bc_view_of(const std::vector<T>& x, bc_mode m, std::size_t groups) const {
    if (m == bc_mode::fixed) return ssmkit::make_view(reinterpret_cast<const std::complex<T>*>(x.data()), dim, nstate);
    if (m == bc_mode::variable) return ssmkit::make_view(x.data(), batch, nstate, 2 * length);
    return ssmkit::make_view(x.data(), batch, groups, nstate, 2 * length);
  }
};

/// The std::complex<double> reference (reference-semantics.md section 6, complex A), with packed
/// sequences restarting from their own h0 rows; last is interleaved (re, im).
template <class T>
void reference_complex(const complex_data<T>& s, std::vector<double>& out, std::vector<double>& last) {
  using cd = std::complex<double>;
  const std::size_t S = s.sequences();
  out.assign(s.batch * s.dim * s.length, 0);
  last.assign(2 * s.batch * S * s.dim * s.nstate, 0);
  std::vector<cd> h(s.nstate);
  for (std::size_t b = 0; b < s.batch; ++b) {
    for (std::size_t q = 0; q < S; ++q) {
      const std::size_t begin = s.cu.empty() ? 0 : std::size_t(s.cu[q]);
      const std::size_t end = s.cu.empty() ? s.length : std::size_t(s.cu[q + 1]);
      const std::size_t row = b * S + q;
      for (std::size_t d = 0; d < s.dim; ++d) {
        for (std::size_t n = 0; n < s.nstate; ++n) {
          const std::size_t k = 2 * ((row * s.dim + d) * s.nstate + n);
          h[n] = s.has_h0 ? cd(double(s.h0[k]), double(s.h0[k + 1])) : cd(0);
        }
        for (std::size_t t = begin; t < end; ++t) {
          const std::size_t i = (b * s.dim + d) * s.length + t;
          double dt = double(s.delta[i]) + (s.has_bias ? double(s.bias[d]) : 0.0);
          if (s.softplus) dt = softplus_ref(dt);
          const double ut = double(s.u[i]);
          cd y = 0;
          for (std::size_t n = 0; n < s.nstate; ++n) {
            const cd a(double(s.A[2 * (d * s.nstate + n)]), double(s.A[2 * (d * s.nstate + n) + 1]));
            h[n] = std::exp(dt * a) * h[n] + dt * ut * s.bc_at(s.B, s.b_mode, s.b_groups, b, d, n, t);
            y += h[n] * s.bc_at(s.C, s.c_mode, s.c_groups, b, d, n, t);
          }
          double yr = 2 * y.real();
          if (s.has_D) yr += double(s.D[d]) * ut;
          if (s.has_z) {
            const double zt = double(s.z[i]);
            yr *= zt / (1 + std::exp(-zt));
          }
          out[i] = yr;
        }
        for (std::size_t n = 0; n < s.nstate; ++n) {
          const std::size_t k = 2 * ((row * s.dim + d) * s.nstate + n);
          last[k] = h[n].real();
          last[k + 1] = h[n].imag();
        }
      }
    }
  }
}

/// Runs the complex-A ssmkit::selective_scan on s; last is interleaved (re, im).
template <class T, class Arch>
void run_complex(const complex_data<T>& s, std::vector<T>& out, std::vector<T>& last, int threads = 1) {
  using ct = std::complex<T>;
  const std::size_t rows = s.batch * s.sequences();
  out.assign(s.batch * s.dim * s.length, T(0));
  last.assign(2 * rows * s.dim * s.nstate, T(0));
  ssmkit::selective_scan_complex_options<T> o;
  if (s.has_D) o.D = ssmkit::make_view(s.D.data(), s.dim);
  if (s.has_z) o.z = ssmkit::make_view(s.z.data(), s.batch, s.dim, s.length);
  if (s.has_bias) o.delta_bias = ssmkit::make_view(s.bias.data(), s.dim);
  if (s.has_h0) o.initial_state = ssmkit::make_view(reinterpret_cast<const ct*>(s.h0.data()), rows, s.dim, s.nstate);
  if (!s.cu.empty()) o.cu_seqlens = ssmkit::make_view(s.cu.data(), s.cu.size());
  o.delta_softplus = s.softplus;
  o.last_state = ssmkit::make_view(reinterpret_cast<ct*>(last.data()), rows, s.dim, s.nstate);
  o.parallel.num_threads = threads;
  ssmkit::selective_scan<T, Arch>(ssmkit::make_view(s.u.data(), s.batch, s.dim, s.length),
                                  ssmkit::make_view(s.delta.data(), s.batch, s.dim, s.length),
                                  ssmkit::make_view(reinterpret_cast<const ct*>(s.A.data()), s.dim, s.nstate),
                                  s.bc_view_of(s.B, s.b_mode, s.b_groups), s.bc_view_of(s.C, s.c_mode, s.c_groups),
                                  ssmkit::make_view(out.data(), s.batch, s.dim, s.length), o);
}

template <class T>
complex_data<T> complex_of(const config& c) {
  complex_data<T> s;
  s.batch = c.batch;
  s.dim = c.dim;
  s.length = c.length;
  s.nstate = c.nstate;
  s.b_mode = c.b_mode;
  s.b_groups = c.b_groups;
  s.c_mode = c.c_mode;
  s.c_groups = c.c_groups;
  return s;
}

}  // namespace

TEMPLATE_TEST_CASE("complex A matches a std::complex<double> reference on both backends", "[selective_scan][complex]",
                   float, double) {
  using T = TestType;
  for (const auto& c : configs<T>()) {
    for (const bool options : {true, false}) {
      auto s = complex_of<T>(c);
      s.has_D = s.has_z = s.has_bias = s.softplus = s.has_h0 = options;
      s.fill(std::uint32_t(c.dim * 17 + c.length));
      std::vector<double> ref_out, ref_last;
      reference_complex(s, ref_out, ref_last);
      std::vector<T> simd_out, simd_last, scalar_out, scalar_last;
      run_complex<T, ssmkit::default_arch>(s, simd_out, simd_last);
      run_complex<T, ssmkit::scalar>(s, scalar_out, scalar_last);
      const double tol = scan_tolerance<T>(c.length, c.nstate);
      INFO("batch " << c.batch << " dim " << c.dim << " L " << c.length << " N " << c.nstate << " options "
                    << options << " tol " << tol << " errors " << ssm_test::max_rel_error(simd_out, ref_out) << " "
                    << ssm_test::max_rel_error(simd_last, ref_last) << " "
                    << ssm_test::max_rel_error(scalar_out, ref_out));
      CHECK(ssm_test::max_rel_error(simd_out, ref_out) <= tol);
      CHECK(ssm_test::max_rel_error(simd_last, ref_last) <= tol);
      CHECK(ssm_test::max_rel_error(scalar_out, ref_out) <= tol);
      CHECK(ssm_test::max_rel_error(scalar_last, ref_last) <= tol);
      // SIMD == scalar up to the exp and sin/cos implementations.
      CHECK(ssm_test::max_rel_error(simd_out, scalar_out) <= tol);
      CHECK(ssm_test::max_rel_error(simd_last, scalar_last) <= tol);
    }
  }
}

TEST_CASE("complex A: zero imaginary parts equal the real scan", "[selective_scan][complex]") {
  // A real-valued complex problem (a_i = 0, B and C imaginary parts 0) is the real scan with C
  // doubled (y = 2 Re h C): a check independent of the complex reference.
  complex_data<double> s;
  s.batch = 2;
  s.dim = 11;
  s.length = 70;
  s.nstate = 5;
  s.fill(5);
  for (std::size_t i = 1; i < s.A.size(); i += 2) s.A[i] = 0;
  for (std::size_t i = 1; i < s.B.size(); i += 2) s.B[i] = 0;
  for (std::size_t i = 1; i < s.C.size(); i += 2) s.C[i] = 0;
  for (std::size_t i = 1; i < s.h0.size(); i += 2) s.h0[i] = 0;
  scan_data<double> r;
  r.batch = s.batch;
  r.dim = s.dim;
  r.length = s.length;
  r.nstate = s.nstate;
  r.fill(5);
  r.u = s.u;
  r.delta = s.delta;
  r.D = s.D;
  r.z = s.z;
  r.bias = s.bias;
  for (std::size_t i = 0; i < r.A.size(); ++i) r.A[i] = s.A[2 * i];
  for (std::size_t i = 0; i < r.B.size(); ++i) r.B[i] = s.B[2 * i];
  for (std::size_t i = 0; i < r.C.size(); ++i) r.C[i] = 2 * s.C[2 * i];
  for (std::size_t i = 0; i < r.h0.size(); ++i) r.h0[i] = s.h0[2 * i];
  std::vector<double> out_c, last_c, out_r, last_r;
  run_complex<double, ssmkit::default_arch>(s, out_c, last_c);
  run_scan<double, ssmkit::default_arch>(r, out_r, last_r);
  std::vector<double> last_c_re(last_r.size());
  for (std::size_t i = 0; i < last_c_re.size(); ++i) last_c_re[i] = last_c[2 * i];
  CHECK(ssm_test::max_rel_error(out_c, out_r) <= 1e-14);
  CHECK(ssm_test::max_rel_error(last_c_re, last_r) <= 1e-14);
}

TEST_CASE("complex A: chunked prefill through the complex state, strided B/C, 2 threads", "[selective_scan][complex]") {
  complex_data<float> s;
  s.batch = 2;
  s.dim = 37;
  s.length = 150;
  s.nstate = 12;
  s.has_h0 = false;
  s.fill(21);
  std::vector<float> full_out, full_last, out2, last2;
  run_complex<float, ssmkit::default_arch>(s, full_out, full_last);
  run_complex<float, ssmkit::default_arch>(s, out2, last2, 2);
  CHECK(out2 == full_out);
  CHECK(last2 == full_last);
  // Split at k: the same tokens through the variable B/C views of [0, k) and [k, L).
  const std::size_t B = s.batch, D = s.dim, L = s.length, N = s.nstate, k = 67;
  std::vector<float> out(B * D * L, 0);
  std::vector<std::complex<float>> state(B * D * N), state2(B * D * N);
  const auto part3 = [L](const std::vector<float>& v, std::size_t rows, std::size_t t0, std::size_t n) {
    return ssmkit::tensor_view<const float, 3>(v.data() + t0, {v.size() / (rows * L), rows, n},
                                               {std::ptrdiff_t(rows * L), std::ptrdiff_t(L), 1});
  };
  const auto bc_part = [L, N](const std::vector<float>& v, std::size_t t0, std::size_t n) {
    return ssmkit::tensor_view<const float, 3>(v.data() + 2 * t0, {v.size() / (N * 2 * L), N, 2 * n},
                                               {std::ptrdiff_t(N * 2 * L), std::ptrdiff_t(2 * L), 1});
  };
  const auto out_part = [&](std::size_t t0, std::size_t n) {
    return ssmkit::tensor_view<float, 3>(out.data() + t0, {B, D, n},
                                         {std::ptrdiff_t(D * L), std::ptrdiff_t(L), 1});
  };
  const auto Av = ssmkit::make_view(reinterpret_cast<const std::complex<float>*>(s.A.data()), D, N);
  ssmkit::selective_scan_complex_options<float> o;
  o.D = ssmkit::make_view(s.D.data(), D);
  o.delta_bias = ssmkit::make_view(s.bias.data(), D);
  o.delta_softplus = true;
  o.z = part3(s.z, D, 0, k);
  o.last_state = ssmkit::make_view(state.data(), B, D, N);
  ssmkit::selective_scan(part3(s.u, D, 0, k), part3(s.delta, D, 0, k), Av, bc_part(s.B, 0, k), bc_part(s.C, 0, k),
                         out_part(0, k), o);
  o.z = part3(s.z, D, k, L - k);
  o.initial_state = ssmkit::make_view(state.data(), B, D, N);
  o.last_state = ssmkit::make_view(state2.data(), B, D, N);
  ssmkit::selective_scan(part3(s.u, D, k, L - k), part3(s.delta, D, k, L - k), Av, bc_part(s.B, k, L - k),
                         bc_part(s.C, k, L - k), out_part(k, L - k), o);
  CHECK(out == full_out);
  std::vector<float> flat(2 * state2.size());
  for (std::size_t i = 0; i < state2.size(); ++i) {
    flat[2 * i] = state2[i].real();
    flat[2 * i + 1] = state2[i].imag();
  }
  CHECK(flat == full_last);
}

TEST_CASE("complex A: extreme delta decays to exact zeros, no NaN", "[selective_scan][complex]") {
  complex_data<float> s;
  s.batch = 1;
  s.dim = 19;
  s.length = 9;
  s.nstate = 4;
  s.fill(3);
  for (auto& d : s.delta) d = 40;
  for (std::size_t i = 0; i < s.A.size(); i += 2) s.A[i] = -100;
  std::vector<float> out, last;
  run_complex<float, ssmkit::default_arch>(s, out, last);
  CHECK(std::none_of(out.begin(), out.end(), [](float v) { return std::isnan(v); }));
  CHECK(std::none_of(last.begin(), last.end(), [](float v) { return std::isnan(v); }));
  std::vector<double> ref_out, ref_last;
  reference_complex(s, ref_out, ref_last);
  CHECK(ssm_test::max_rel_error(out, ref_out) <= scan_tolerance<float>(s.length, s.nstate));
}

TEST_CASE("complex A: bad input throws with the standard message and writes nothing", "[selective_scan][complex]") {
  using cf = std::complex<float>;
  const std::size_t B = 2, D = 6, L = 8, N = 4;
  std::vector<float> u(B * D * L, 1), delta(B * D * L, 0.1f), Bv(B * N * 2 * L, 1), Cv(B * N * 2 * L, 1);
  std::vector<float> Bg(B * 4 * N * 2 * L, 1), out(B * D * L, 7);
  std::vector<cf> A(D * N, cf(-1, 1)), Bf(D * N, cf(1, 0)), last(B * D * N, cf(7, 7));
  const auto uv = ssmkit::make_view(u, B, D, L);
  const auto dv = ssmkit::make_view(delta, B, D, L);
  const auto av = ssmkit::make_view(A.data(), D, N);
  const auto bv = ssmkit::make_view(Bv, B, N, 2 * L);
  const auto cv = ssmkit::make_view(Cv, B, N, 2 * L);
  const auto ov = ssmkit::make_view(out, B, D, L);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, ssmkit::make_view(A.data(), D - 1, N), bv, cv, ov); }) ==
        "selective_scan: A has shape (5, 4), expected (6, 4)");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, ssmkit::make_view(Bv.data(), B, N, L), cv, ov); }) ==
        "selective_scan: B has shape (2, 4, 8), expected (2, 4, 16)");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, ssmkit::make_view(Bf.data(), D - 1, N), ov); }) ==
        "selective_scan: C has shape (5, 4), expected (6, 4)");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, ssmkit::make_view(Bg.data(), B, 4, N, 2 * L), cv, ov); }) ==
        "selective_scan: B has 4 groups, which do not divide D = 6");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, ssmkit::complex_bc_view<float>(), cv, ov); }) ==
        "selective_scan: B is not given (expected a view of rank 2, 3 or 4)");
  ssmkit::selective_scan_complex_options<float> o;
  o.last_state = ssmkit::make_view(last.data(), B, D, N + 1);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: last_state has shape (2, 6, 5), expected (2, 6, 4)");
  o = {};
  o.initial_state = ssmkit::make_view(last.data(), B, D - 1, N);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: initial_state has shape (2, 5, 4), expected (2, 6, 4)");
  o = {};
  o.last_state = ssmkit::tensor_view<cf, 3>(reinterpret_cast<cf*>(Bv.data()), {B, D, N});
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: last_state overlaps B in memory");
  o = {};
  o.last_state = ssmkit::make_view(A.data(), 1, D, N);
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ov, o); }) ==
        "selective_scan: last_state has shape (1, 6, 4), expected (2, 6, 4)");
  CHECK(error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, cv, ssmkit::make_view(u, B, D, L)); }) ==
        "selective_scan: out overlaps u in memory");
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 7; }));
  CHECK(std::all_of(last.begin(), last.end(), [](cf v) { return v == cf(7, 7); }));
}

// ---- Packed variable-length sequences (cu_seqlens) ---------------------------------------------

TEMPLATE_TEST_CASE("packed sequences equal separate runs of each sequence", "[selective_scan][varlen]", float,
                   double) {
  using T = TestType;
  const std::vector<std::int64_t> cu{0, 5, 5, 69, 70, 140};  // lengths 5, 0, 64, 1, 70
  const std::size_t S = cu.size() - 1;
  scan_data<T> s;
  s.batch = 2;
  s.dim = ssmkit::detail::width_v<T, ssmkit::default_arch> + 3;
  s.length = 140;
  s.nstate = 16;
  s.b_mode = bc_mode::grouped;
  s.b_groups = 1;
  s.fill(41);
  const std::size_t B = s.batch, D = s.dim, L = s.length, N = s.nstate;
  const auto h0 = ssm_test::uniform<T>(B * S * D * N, -1, 1, 43);
  const auto part = [L](const std::vector<T>& v, std::size_t rows, std::size_t t0, std::size_t n) {
    return ssmkit::tensor_view<const T, 3>(v.data() + t0, {v.size() / (rows * L), rows, n},
                                           {std::ptrdiff_t(rows * L), std::ptrdiff_t(L), 1});
  };
  const auto run = [&](auto arch, bool with_h0, int threads, std::vector<T>& out, std::vector<T>& last) {
    using Arch = decltype(arch);
    out.assign(B * D * L, T(-1));
    last.assign(B * S * D * N, T(-1));
    ssmkit::selective_scan_options<T> o;
    o.D = ssmkit::make_view(s.D.data(), D);
    o.z = ssmkit::make_view(s.z.data(), B, D, L);
    o.delta_bias = ssmkit::make_view(s.bias.data(), D);
    o.delta_softplus = true;
    if (with_h0) o.initial_state = ssmkit::make_view(h0.data(), B * S, D, N);
    o.last_state = ssmkit::make_view(last.data(), B * S, D, N);
    o.cu_seqlens = ssmkit::make_view(cu.data(), cu.size());
    o.parallel.num_threads = threads;
    ssmkit::selective_scan<T, Arch>(ssmkit::make_view(s.u.data(), B, D, L), ssmkit::make_view(s.delta.data(), B, D, L),
                                    ssmkit::make_view(s.A.data(), D, N), ssmkit::make_view(s.B.data(), B, 1, N, L),
                                    ssmkit::make_view(s.C.data(), B, N, L), ssmkit::make_view(out.data(), B, D, L), o);
  };
  // Sequence q alone: tokens [cu[q], cu[q+1]) with the state rows b * S + q (a strided view).
  const auto separate = [&](auto arch, bool with_h0, std::vector<T>& out, std::vector<T>& last) {
    using Arch = decltype(arch);
    out.assign(B * D * L, T(-1));
    last.assign(B * S * D * N, T(-1));
    const std::array<std::ptrdiff_t, 3> state_strides{std::ptrdiff_t(S * D * N), std::ptrdiff_t(N), 1};
    for (std::size_t q = 0; q < S; ++q) {
      const std::size_t t0 = std::size_t(cu[q]), n = std::size_t(cu[q + 1] - cu[q]);
      ssmkit::selective_scan_options<T> o;
      o.D = ssmkit::make_view(s.D.data(), D);
      o.z = part(s.z, D, t0, n);
      o.delta_bias = ssmkit::make_view(s.bias.data(), D);
      o.delta_softplus = true;
      if (with_h0) o.initial_state = ssmkit::tensor_view<const T, 3>(h0.data() + q * D * N, {B, D, N}, state_strides);
      o.last_state = ssmkit::tensor_view<T, 3>(last.data() + q * D * N, {B, D, N}, state_strides);
      ssmkit::selective_scan<T, Arch>(part(s.u, D, t0, n), part(s.delta, D, t0, n), ssmkit::make_view(s.A.data(), D, N),
                                      part(s.B, N, t0, n), part(s.C, N, t0, n),
                                      ssmkit::tensor_view<T, 3>(out.data() + t0, {B, D, n},
                                                                {std::ptrdiff_t(D * L), std::ptrdiff_t(L), 1}),
                                      o);
    }
  };
  for (const bool with_h0 : {false, true}) {
    INFO("initial states " << with_h0);
    std::vector<T> out1, last1, out2, last2, out3, last3;
    run(ssmkit::default_arch{}, with_h0, 1, out1, last1);
    separate(ssmkit::default_arch{}, with_h0, out2, last2);
    // The same operations on the same tokens: bitwise equal.
    CHECK(out1 == out2);
    CHECK(last1 == last2);
    run(ssmkit::default_arch{}, with_h0, 2, out3, last3);
    CHECK(out3 == out1);
    CHECK(last3 == last1);
    run(ssmkit::scalar{}, with_h0, 1, out1, last1);
    separate(ssmkit::scalar{}, with_h0, out2, last2);
    CHECK(out1 == out2);
    CHECK(last1 == last2);
  }
}

TEMPLATE_TEST_CASE("complex A with packed sequences matches the reference", "[selective_scan][varlen][complex]", float,
                   double) {
  using T = TestType;
  for (const bool fixed : {false, true}) {
    complex_data<T> s;
    s.batch = 2;
    s.dim = 2 * ssmkit::detail::width_v<T, ssmkit::default_arch> + 1;
    s.length = 100;
    s.nstate = 9;
    s.cu = {0, 33, 33, 97, 100};
    s.b_mode = fixed ? bc_mode::fixed : bc_mode::variable;
    s.c_mode = fixed ? bc_mode::grouped : bc_mode::fixed;
    s.c_groups = 1;
    s.fill(fixed ? 51 : 52);
    std::vector<double> ref_out, ref_last;
    reference_complex(s, ref_out, ref_last);
    std::vector<T> out, last, sout, slast;
    run_complex<T, ssmkit::default_arch>(s, out, last);
    run_complex<T, ssmkit::scalar>(s, sout, slast);
    const double tol = scan_tolerance<T>(s.length, s.nstate);
    CHECK(ssm_test::max_rel_error(out, ref_out) <= tol);
    CHECK(ssm_test::max_rel_error(last, ref_last) <= tol);
    CHECK(ssm_test::max_rel_error(sout, ref_out) <= tol);
    CHECK(ssm_test::max_rel_error(slast, ref_last) <= tol);
  }
}

TEST_CASE("bad cu_seqlens throw ssmkit::error and write nothing", "[selective_scan][varlen]") {
  const std::size_t B = 1, D = 5, L = 10, N = 3;
  std::vector<float> u(B * D * L, 1), delta(B * D * L, 0.1f), A(D * N, -1), Bv(B * N * L, 1), out(B * D * L, 7);
  std::vector<float> last(3 * D * N, 7);
  const auto uv = ssmkit::make_view(u, B, D, L);
  const auto dv = ssmkit::make_view(delta, B, D, L);
  const auto av = ssmkit::make_view(A, D, N);
  const auto bv = ssmkit::make_view(Bv, B, N, L);
  const auto ov = ssmkit::make_view(out, B, D, L);
  const auto message = [&](std::vector<std::int64_t> cu, std::size_t state_rows) {
    ssmkit::selective_scan_options<float> o;
    o.cu_seqlens = ssmkit::make_view(cu.data(), cu.size());
    o.last_state = ssmkit::make_view(last.data(), state_rows, D, N);
    return error_of([&] { ssmkit::selective_scan(uv, dv, av, bv, bv, ov, o); });
  };
  CHECK(message({0, 6, 4, 10}, 3) == "selective_scan: cu_seqlens is not monotonic: cu_seqlens[2] = 4 < cu_seqlens[1] = 6");
  CHECK(message({0, 4, 12}, 2) == "selective_scan: cu_seqlens[2] = 12 overruns L = 10");
  CHECK(message({0, 11, 10}, 2) == "selective_scan: cu_seqlens[1] = 11 overruns L = 10");
  CHECK(message({0, 4, 8}, 2) == "selective_scan: cu_seqlens ends at 8, expected L = 10");
  CHECK(message({1, 4, 10}, 2) == "selective_scan: cu_seqlens starts at 1, expected 0");
  CHECK(message({0}, 1) == "selective_scan: cu_seqlens has 1 entries, expected at least 2 (0 and L)");
  CHECK(message({0, -2, 10}, 2) ==
        "selective_scan: cu_seqlens is not monotonic: cu_seqlens[1] = -2 < cu_seqlens[0] = 0");
  CHECK(message({0, 4, 10}, 3) == "selective_scan: last_state has shape (3, 5, 3), expected (2, 5, 3)");
  // The complex overload validates the same way.
  std::vector<std::complex<float>> Ac(D * N, {-1, 1});
  std::vector<float> Bc(B * N * 2 * L, 1);
  const std::vector<std::int64_t> bad{0, 3, 2, 10};
  ssmkit::selective_scan_complex_options<float> oc;
  oc.cu_seqlens = ssmkit::make_view(bad.data(), bad.size());
  CHECK(error_of([&] {
          ssmkit::selective_scan(uv, dv, ssmkit::make_view(Ac.data(), D, N), ssmkit::make_view(Bc, B, N, 2 * L),
                                 ssmkit::make_view(Bc, B, N, 2 * L), ov, oc);
        }) == "selective_scan: cu_seqlens is not monotonic: cu_seqlens[2] = 2 < cu_seqlens[1] = 3");
  CHECK(std::all_of(out.begin(), out.end(), [](float v) { return v == 7; }));
  CHECK(std::all_of(last.begin(), last.end(), [](float v) { return v == 7; }));
}
