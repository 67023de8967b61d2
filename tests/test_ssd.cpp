// Mamba-2 SSD: ssd_scan (recurrent and chunked), ssd_scan_discrete and ssd_step against a plainly
// written double-precision recurrence, the golden cases, and each other.
//
// Tolerances (element-wise, derived): every output is a sum of products of inputs and decays
// exp(Σ a) <= 1. Let abs_t be the same recurrence run on |x|, |B|, |C|, |D|, |silu(z)| (the sum
// of the absolute values of the terms, computed in double). A sum of m rounded terms is within
// γ_m ≈ m·u of the exact one times that absolute sum (Higham, Accuracy and Stability, 3.1); the
// terms of one output are N-term dot products (recurrent, decode) or Q + N-term GEMM sums
// (chunked), and a decay product over k tokens carries k rounded exp and multiplies, k <= L.
// So |got - exact| <= c · u · (N + Q + 2 L) · abs_t, with c = 4 covering the input rounding
// (dt·x, dt·A, softplus) and the gate. Comparing two computed results doubles it.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include <ssmkit/golden_case.hpp>
#include <ssmkit/ssd.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

using ssm_test::error_of;
using ssmkit::make_view;
using ssmkit::ssd_algorithm;

namespace {

// ---- allocation counting, to check that ssd_step allocates nothing (skipped under sanitizers,
// which own operator new)
#if defined(__SANITIZE_ADDRESS__)
#define SSD_TEST_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SSD_TEST_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef SSD_TEST_COUNT_ALLOCATIONS
#define SSD_TEST_COUNT_ALLOCATIONS 1
#endif
long allocation_count = 0;

double silu(double v) { return v / (1 + std::exp(-v)); }
double softplus(double v) { return v > 20 ? v : std::log1p(std::exp(v)); }

/// One SSD problem in double, with optional parts; `run` converts to T and calls the library.
struct problem {
  std::size_t batch = 1, L = 1, h = 1, p = 1, g = 1, n = 1;
  std::vector<double> x, dt, A, B, C, D, z, bias, init;
  bool d_per_head = false, softplus_dt = false, discrete = false;
  double dt_min = -INFINITY, dt_max = INFINITY;

  problem(std::size_t batch_, std::size_t L_, std::size_t h_, std::size_t p_, std::size_t g_, std::size_t n_,
          unsigned seed, bool with_options = true)
      : batch(batch_), L(L_), h(h_), p(p_), g(g_), n(n_) {
    x = ssm_test::uniform<double>(batch * L * h * p, -1, 1, seed);
    dt = ssm_test::uniform<double>(batch * L * h, -3, 0, seed + 1);
    A = ssm_test::uniform<double>(h, -4, -0.5, seed + 2);
    B = ssm_test::uniform<double>(batch * L * g * n, -1, 1, seed + 3);
    C = ssm_test::uniform<double>(batch * L * g * n, -1, 1, seed + 4);
    if (with_options) {
      D = ssm_test::uniform<double>(h * p, -1, 1, seed + 5);
      z = ssm_test::uniform<double>(batch * L * h * p, -2, 2, seed + 6);
      bias = ssm_test::uniform<double>(h, -0.5, 0.5, seed + 7);
      init = ssm_test::uniform<double>(batch * h * p * n, -1, 1, seed + 8);
      softplus_dt = true;
    } else {
      // Without softplus, dt must be a positive step already.
      for (auto& v : dt) v = std::exp(v);
    }
  }

  std::size_t xi(std::size_t b, std::size_t t, std::size_t hh, std::size_t i) const {
    return ((b * L + t) * h + hh) * p + i;
  }
  std::size_t bi(std::size_t b, std::size_t t, std::size_t gg, std::size_t k) const {
    return ((b * L + t) * g + gg) * n + k;
  }
  double d_of(std::size_t hh, std::size_t i) const {
    if (D.empty()) return 0;
    return d_per_head ? D[hh] : D[hh * p + i];
  }
  double step_dt(std::size_t b, std::size_t t, std::size_t hh) const {
    double v = dt[(b * L + t) * h + hh] + (bias.empty() ? 0.0 : bias[hh]);
    if (softplus_dt) v = softplus(v);
    return std::min(std::max(v, dt_min), dt_max);
  }

  /// The plainly written recurrence. With `absolute`, every term is replaced by its absolute
  /// value: the running-error scale of the tolerance. Returns out, then the final state appended.
  std::vector<double> reference(bool absolute = false) const {
    auto f = [&](double v) { return absolute ? std::abs(v) : v; };
    std::vector<double> out(batch * L * h * p), state(batch * h * p * n);
    for (std::size_t b = 0; b < batch; ++b) {
      for (std::size_t hh = 0; hh < h; ++hh) {
        const std::size_t gg = hh / (h / g);
        std::vector<double> S(p * n, 0.0);
        if (!init.empty())
          for (std::size_t e = 0; e < p * n; ++e) S[e] = f(init[(b * h + hh) * p * n + e]);
        for (std::size_t t = 0; t < L; ++t) {
          double decay, scale;
          if (discrete) {
            decay = std::exp(dt[(b * L + t) * h + hh]);
            scale = 1;
          } else {
            const double v = step_dt(b, t, hh);
            decay = std::exp(v * A[hh]);
            scale = v;
          }
          for (std::size_t i = 0; i < p; ++i) {
            double y = 0;
            for (std::size_t k = 0; k < n; ++k) {
              double& s = S[i * n + k];
              s = decay * s + f(scale * x[xi(b, t, hh, i)] * B[bi(b, t, gg, k)]);
              y += f(s * C[bi(b, t, gg, k)]);
            }
            y += f(d_of(hh, i) * x[xi(b, t, hh, i)]);
            if (!z.empty()) y = absolute ? y * std::abs(silu(z[xi(b, t, hh, i)])) : y * silu(z[xi(b, t, hh, i)]);
            out[xi(b, t, hh, i)] = y;
          }
        }
        for (std::size_t e = 0; e < p * n; ++e) state[(b * h + hh) * p * n + e] = S[e];
      }
    }
    out.insert(out.end(), state.begin(), state.end());
    return out;
  }

  /// Runs ssd_scan (or ssd_scan_discrete) in precision T; returns out, then the final state.
  template <class T, class Arch = ssmkit::default_arch>
  std::vector<double> run(ssd_algorithm algorithm, std::size_t chunk = 0, int threads = 1) const {
    auto cv = [](const std::vector<double>& v) { return std::vector<T>(v.begin(), v.end()); };
    const auto xt = cv(x), dtt = cv(dt), At = cv(A), Bt = cv(B), Ct = cv(C), Dt = cv(D), zt = cv(z), bt = cv(bias),
               it = cv(init);
    std::vector<T> out(batch * L * h * p, T(-999)), fin(batch * h * p * n, T(-999));
    const auto xv = make_view(xt, batch, L, h, p);
    const auto Bv = make_view(Bt, batch, L, g, n);
    const auto Cv = make_view(Ct, batch, L, g, n);
    if (discrete) {
      ssmkit::ssd_discrete_options<T> o;
      if (!init.empty()) o.initial_states = make_view(it, batch, h, p, n);
      o.final_states = make_view(fin, batch, h, p, n);
      o.algorithm = algorithm;
      o.chunk_size = chunk;
      ssmkit::ssd_scan_discrete<T, Arch>(xv, make_view(dtt, batch, L, h), Bv, Cv, make_view(out, batch, L, h, p), o,
                                         {threads});
    } else {
      ssmkit::ssd_options<T> o;
      if (!D.empty()) o.D = d_per_head ? make_view(Dt, h, 1) : make_view(Dt, h, p);
      if (!z.empty()) o.z = make_view(zt, batch, L, h, p);
      if (!bias.empty()) o.dt_bias = make_view(bt, h);
      if (!init.empty()) o.initial_states = make_view(it, batch, h, p, n);
      o.final_states = make_view(fin, batch, h, p, n);
      o.dt_softplus = softplus_dt;
      o.dt_min = static_cast<T>(dt_min);
      o.dt_max = static_cast<T>(dt_max);
      o.algorithm = algorithm;
      o.chunk_size = chunk;
      ssmkit::ssd_scan<T, Arch>(xv, make_view(dtt, batch, L, h), make_view(At, h), Bv, Cv,
                                make_view(out, batch, L, h, p), o, {threads});
    }
    std::vector<double> r(out.begin(), out.end());
    r.insert(r.end(), fin.begin(), fin.end());
    return r;
  }

  /// The element-wise tolerance for precision T, for a computation with chunk size q.
  template <class T>
  std::vector<double> tolerance(std::size_t q) const {
    const double u = std::numeric_limits<T>::epsilon() / 2;
    const double growth = 4 * u * double(n + q + 2 * L + 8);
    auto scale = reference(true);
    double floor = 0;
    for (const double v : scale) floor = std::max(floor, v);
    for (auto& v : scale) v = growth * (v + 1e-3 * floor);  // tiny normwise floor for exact zeros
    return scale;
  }
};

/// Element-wise |a - b| <= tol (twice tol for two computed results); reports the worst ratio.
bool within(const std::vector<double>& got, const std::vector<double>& want, const std::vector<double>& tol,
            double factor = 1) {
  REQUIRE(got.size() == want.size());
  REQUIRE(tol.size() == want.size());
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = std::abs(got[i] - want[i]);
    const double ratio = std::isnan(d) ? INFINITY : d / (factor * tol[i]);
    if (ratio > worst) {
      worst = ratio;
      at = i;
    }
  }
  INFO("worst error/tolerance " << worst << " at " << at << ": got " << got[at] << ", want " << want[at]);
  CHECK(worst <= 1);
  return worst <= 1;
}

}  // namespace

#if SSD_TEST_COUNT_ALLOCATIONS
// The replacements allocate with malloc and release with free, which GCC's
// -Wmismatched-new-delete cannot see through once it inlines them.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  ++allocation_count;
  if (void* ptr = std::malloc(size == 0 ? 1 : size)) return ptr;
  throw std::bad_alloc();
}
void operator delete(void* ptr) noexcept { std::free(ptr); }
void operator delete(void* ptr, std::size_t) noexcept { std::free(ptr); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

TEST_CASE("ssd_scan matches the double reference on both algorithms", "[ssd]") {
  struct shape {
    std::size_t batch, L, h, p, g, n;
  };
  const shape shapes[] = {{1, 1, 1, 1, 1, 1},  {2, 13, 4, 3, 2, 5},  {1, 37, 2, 16, 1, 16},
                          {1, 29, 3, 17, 3, 7}, {1, 70, 2, 15, 1, 33}, {2, 9, 6, 5, 3, 4}};
  unsigned seed = 10;
  for (const auto& s : shapes) {
    for (const bool with_options : {true, false}) {
      problem pr(s.batch, s.L, s.h, s.p, s.g, s.n, seed += 20, with_options);
      const auto want = pr.reference();
      for (const std::size_t chunk : {std::size_t{1}, std::size_t{4}, std::size_t{16}, std::size_t{64}}) {
        INFO("L " << s.L << " h " << s.h << " p " << s.p << " g " << s.g << " n " << s.n << " chunk " << chunk
                  << " options " << with_options);
        within(pr.run<double>(ssd_algorithm::chunked, chunk), want, pr.tolerance<double>(chunk));
        within(pr.run<float>(ssd_algorithm::chunked, chunk), want, pr.tolerance<float>(chunk));
      }
      within(pr.run<double>(ssd_algorithm::recurrent), want, pr.tolerance<double>(0));
      within(pr.run<float>(ssd_algorithm::recurrent), want, pr.tolerance<float>(0));
      within(pr.run<float>(ssd_algorithm::automatic), want, pr.tolerance<float>(64));
    }
  }
}

TEST_CASE("ssd_scan: chunked == recurrent for any chunk size and L", "[ssd]") {
  // L prime, 1, a multiple and a non-multiple of every chunk size.
  for (const std::size_t L : {std::size_t{1}, std::size_t{2}, std::size_t{61}, std::size_t{64}, std::size_t{97},
                              std::size_t{300}}) {
    problem pr(1, L, 3, 16, 1, 16, 100 + unsigned(L));
    const auto recurrent = pr.run<float>(ssd_algorithm::recurrent);
    for (const std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{16}, std::size_t{64},
                                    std::size_t{256}}) {
      INFO("L " << L << " chunk " << chunk);
      within(pr.run<float>(ssd_algorithm::chunked, chunk), recurrent, pr.tolerance<float>(chunk), 2);
    }
  }
}

TEST_CASE("ssd_scan: Mamba-2 head shapes, L = 4096 not a multiple of the chunk", "[ssd][slow]") {
  problem pr(1, 4096 + 37, 2, 64, 1, 32, 7);
  const auto recurrent = pr.run<float>(ssd_algorithm::recurrent);
  for (const std::size_t chunk : {std::size_t{16}, std::size_t{64}, std::size_t{256}}) {
    INFO("chunk " << chunk);
    within(pr.run<float>(ssd_algorithm::chunked, chunk), recurrent, pr.tolerance<float>(chunk), 2);
  }
}

TEST_CASE("ssd_scan: the scalar backend agrees with the SIMD backend", "[ssd]") {
  problem pr(2, 45, 4, 35, 2, 19, 5);
  for (const auto algorithm : {ssd_algorithm::recurrent, ssd_algorithm::chunked}) {
    const auto simd = pr.run<float>(algorithm, 16);
    const auto scalar = pr.run<float, ssmkit::scalar>(algorithm, 16);
    // Same code path; only exp (xsimd vs libm, a few ulp) and the FMA contraction differ.
    within(scalar, simd, pr.tolerance<float>(16), 2);
  }
}

TEST_CASE("ssd_scan: threads do not change the result", "[ssd]") {
  problem pr(2, 50, 5, 20, 1, 12, 9);
  // Recurrent: each head is computed by one thread in a fixed order, bit for bit.
  CHECK(pr.run<float>(ssd_algorithm::recurrent, 0, 1) == pr.run<float>(ssd_algorithm::recurrent, 0, 2));
  // Chunked: a thread's heads of one group share GEMMs, whose blocking (and so rounding) depends
  // on how many heads it has: equal within the tolerance.
  within(pr.run<float>(ssd_algorithm::chunked, 16, 2), pr.run<float>(ssd_algorithm::chunked, 16, 1),
         pr.tolerance<float>(16), 2);
}

TEST_CASE("ssd_scan: dt_limit clamps after softplus; D per head", "[ssd]") {
  problem pr(1, 40, 3, 8, 1, 6, 21);
  pr.dt_min = 0.2;
  pr.dt_max = 0.5;
  pr.d_per_head = true;
  pr.D.resize(pr.h);
  const auto want = pr.reference();
  within(pr.run<double>(ssd_algorithm::recurrent), want, pr.tolerance<double>(0));
  within(pr.run<double>(ssd_algorithm::chunked, 8), want, pr.tolerance<double>(8));
}

TEST_CASE("ssd_scan_discrete matches the reference (ssd_minimal_discrete form)", "[ssd]") {
  problem pr(2, 33, 3, 4, 3, 5, 31, false);
  pr.discrete = true;
  for (auto& a : pr.dt) a = -a;  // log decays <= 0
  pr.init = ssm_test::uniform<double>(pr.batch * pr.h * pr.p * pr.n, -1, 1, 5);
  const auto want = pr.reference();
  for (const std::size_t chunk : {std::size_t{4}, std::size_t{8}, std::size_t{10}})
    within(pr.run<double>(ssd_algorithm::chunked, chunk), want, pr.tolerance<double>(chunk));
  within(pr.run<float>(ssd_algorithm::recurrent), want, pr.tolerance<float>(0));
}

TEST_CASE("ssd_scan: initial and final states chain", "[ssd]") {
  problem full(2, 50, 3, 9, 1, 7, 41);
  const auto want = full.run<double>(ssd_algorithm::recurrent);
  for (const auto algorithm : {ssd_algorithm::recurrent, ssd_algorithm::chunked}) {
    // First 23 tokens from full.init, then 27 from the returned state (passed in place).
    const std::size_t L1 = 23, L2 = 27, row = full.h * full.p;
    problem a = full, b = full;
    a.L = L1;
    b.L = L2;
    auto slice = [&](const std::vector<double>& v, std::size_t per_token, std::size_t from, std::size_t count) {
      std::vector<double> r;
      for (std::size_t bb = 0; bb < full.batch; ++bb)
        r.insert(r.end(), v.begin() + long((bb * full.L + from) * per_token),
                 v.begin() + long((bb * full.L + from + count) * per_token));
      return r;
    };
    a.x = slice(full.x, row, 0, L1);
    a.z = slice(full.z, row, 0, L1);
    a.dt = slice(full.dt, full.h, 0, L1);
    a.B = slice(full.B, full.g * full.n, 0, L1);
    a.C = slice(full.C, full.g * full.n, 0, L1);
    b.x = slice(full.x, row, L1, L2);
    b.z = slice(full.z, row, L1, L2);
    b.dt = slice(full.dt, full.h, L1, L2);
    b.B = slice(full.B, full.g * full.n, L1, L2);
    b.C = slice(full.C, full.g * full.n, L1, L2);
    const auto ra = a.run<double>(algorithm, 8);
    const std::size_t out1 = full.batch * L1 * row;
    b.init.assign(ra.begin() + long(out1), ra.end());
    const auto rb = b.run<double>(algorithm, 8);
    // Reassemble (batch-major) and compare with the single scan.
    std::vector<double> got;
    for (std::size_t bb = 0; bb < full.batch; ++bb) {
      got.insert(got.end(), ra.begin() + long(bb * L1 * row), ra.begin() + long((bb + 1) * L1 * row));
      got.insert(got.end(), rb.begin() + long(bb * L2 * row), rb.begin() + long((bb + 1) * L2 * row));
    }
    got.insert(got.end(), rb.begin() + long(full.batch * L2 * row), rb.end());
    within(got, want, full.tolerance<double>(8), 2);
  }

  // final_states may be initial_states itself (in place).
  problem pr(1, 20, 2, 5, 1, 4, 43);
  const auto want2 = pr.reference();
  std::vector<float> x(pr.x.begin(), pr.x.end()), dt(pr.dt.begin(), pr.dt.end()), A(pr.A.begin(), pr.A.end()),
      B(pr.B.begin(), pr.B.end()), C(pr.C.begin(), pr.C.end()), state(pr.init.begin(), pr.init.end()),
      out(x.size());
  ssmkit::ssd_options<float> o;
  std::vector<float> D(pr.D.begin(), pr.D.end()), z(pr.z.begin(), pr.z.end()), bias(pr.bias.begin(), pr.bias.end());
  o.D = make_view(D, pr.h, pr.p);
  o.z = make_view(z, 1, pr.L, pr.h, pr.p);
  o.dt_bias = make_view(bias, pr.h);
  o.dt_softplus = true;
  o.initial_states = make_view(state, 1, pr.h, pr.p, pr.n);
  o.final_states = make_view(state, 1, pr.h, pr.p, pr.n);
  for (const auto algorithm : {ssd_algorithm::recurrent, ssd_algorithm::chunked}) {
    std::copy(pr.init.begin(), pr.init.end(), state.begin());
    o.algorithm = algorithm;
    o.chunk_size = 6;
    ssmkit::ssd_scan<float>(make_view(x, 1, pr.L, pr.h, pr.p), make_view(dt, 1, pr.L, pr.h), make_view(A, pr.h),
                            make_view(B, 1, pr.L, 1, pr.n), make_view(C, 1, pr.L, 1, pr.n),
                            make_view(out, 1, pr.L, pr.h, pr.p), o);
    std::vector<double> got(out.begin(), out.end());
    got.insert(got.end(), state.begin(), state.end());
    within(got, want2, pr.tolerance<float>(6));
  }
}

TEST_CASE("ssd_scan: packed sequences (seq_idx) equal separate scans", "[ssd]") {
  // Row 0 packs sequences of 11, 1 and 29 tokens, row 1 is one sequence of 41; the boundaries fall
  // inside chunks of 8 and 16. Each sequence must equal its own scan from a zero state (the first
  // from initial_states), and the final state is the last sequence's.
  problem full(2, 41, 3, 5, 1, 6, 91);
  const std::vector<std::size_t> bounds{0, 11, 12, 41};
  std::vector<std::int32_t> seq(full.batch * full.L, 0);
  for (std::size_t k = 0; k + 1 < bounds.size(); ++k)
    for (std::size_t t = bounds[k]; t < bounds[k + 1]; ++t) seq[t] = std::int32_t(k) + 7;
  // The expected result: row 1 as is; row 0 sequence by sequence, states reset between them.
  problem ref = full;
  std::vector<double> want = full.reference();
  const std::size_t row = full.h * full.p, fin = full.batch * full.L * row;
  {
    std::vector<double> S(full.init.begin(), full.init.begin() + long(full.h * full.p * full.n));
    for (std::size_t k = 0; k + 1 < bounds.size(); ++k) {
      problem part = full;
      part.batch = 1;
      part.L = bounds[k + 1] - bounds[k];
      auto cut = [&](const std::vector<double>& v, std::size_t per) {
        return std::vector<double>(v.begin() + long(bounds[k] * per), v.begin() + long(bounds[k + 1] * per));
      };
      part.x = cut(full.x, row);
      part.z = cut(full.z, row);
      part.dt = cut(full.dt, full.h);
      part.B = cut(full.B, full.g * full.n);
      part.C = cut(full.C, full.g * full.n);
      part.init = k == 0 ? S : std::vector<double>(S.size(), 0.0);
      const auto r = part.reference();
      std::copy(r.begin(), r.begin() + long(part.L * row), want.begin() + long(bounds[k] * row));
      std::copy(r.begin() + long(part.L * row), r.end(), want.begin() + long(fin));
    }
  }
  std::vector<float> x(full.x.begin(), full.x.end()), dt(full.dt.begin(), full.dt.end()),
      A(full.A.begin(), full.A.end()), B(full.B.begin(), full.B.end()), C(full.C.begin(), full.C.end()),
      D(full.D.begin(), full.D.end()), z(full.z.begin(), full.z.end()), bias(full.bias.begin(), full.bias.end()),
      init(full.init.begin(), full.init.end()), out(x.size()), fs(init.size());
  ssmkit::ssd_options<float> o;
  o.D = make_view(D, full.h, full.p);
  o.z = make_view(z, full.batch, full.L, full.h, full.p);
  o.dt_bias = make_view(bias, full.h);
  o.dt_softplus = true;
  o.initial_states = make_view(init, full.batch, full.h, full.p, full.n);
  o.final_states = make_view(fs, full.batch, full.h, full.p, full.n);
  o.seq_idx = make_view(seq, full.batch, full.L);
  for (const auto algorithm : {ssd_algorithm::recurrent, ssd_algorithm::chunked}) {
    for (const std::size_t chunk : {std::size_t{8}, std::size_t{16}}) {
      o.algorithm = algorithm;
      o.chunk_size = chunk;
      ssmkit::ssd_scan<float>(make_view(x, full.batch, full.L, full.h, full.p), make_view(dt, full.batch, full.L, full.h),
                              make_view(A, full.h), make_view(B, full.batch, full.L, 1, full.n),
                              make_view(C, full.batch, full.L, 1, full.n), make_view(out, full.batch, full.L, full.h, full.p),
                              o);
      std::vector<double> got(out.begin(), out.end());
      got.insert(got.end(), fs.begin(), fs.end());
      INFO("chunk " << chunk);
      within(got, want, full.tolerance<float>(chunk));
    }
  }
  ssmkit::ssd_options<float> bad;
  bad.seq_idx = make_view(seq.data(), full.batch, 40);
  CHECK(error_of([&] {
          ssmkit::ssd_scan<float>(make_view(x, full.batch, full.L, full.h, full.p), make_view(dt, full.batch, full.L, full.h),
                                  make_view(A, full.h), make_view(B, full.batch, full.L, 1, full.n),
                                  make_view(C, full.batch, full.L, 1, full.n),
                                  make_view(out, full.batch, full.L, full.h, full.p), bad);
        }) == "ssd_scan: seq_idx has shape (2, 40), expected (2, 41)");
}

TEST_CASE("ssd_scan: strided views", "[ssd]") {
  problem pr(2, 19, 3, 6, 1, 5, 51);
  const auto want = pr.reference();
  // x and out stored as (batch, L, p, h), seen as (batch, L, h, p); B as (batch, L, n, g).
  std::vector<double> xs(pr.x.size()), Bs(pr.B.size()), out(pr.x.size()), fin(pr.init.size());
  for (std::size_t b = 0; b < pr.batch; ++b)
    for (std::size_t t = 0; t < pr.L; ++t) {
      for (std::size_t hh = 0; hh < pr.h; ++hh)
        for (std::size_t i = 0; i < pr.p; ++i)
          xs[((b * pr.L + t) * pr.p + i) * pr.h + hh] = pr.x[pr.xi(b, t, hh, i)];
      for (std::size_t k = 0; k < pr.n; ++k) Bs[(b * pr.L + t) * pr.n + k] = pr.B[pr.bi(b, t, 0, k)];
    }
  const auto xv = make_view(xs, pr.batch, pr.L, pr.p, pr.h).transposed(2, 3);
  auto ov = make_view(out, pr.batch, pr.L, pr.p, pr.h).transposed(2, 3);
  const auto Bv = make_view(Bs, pr.batch, pr.L, pr.n, 1).transposed(2, 3);
  for (const auto algorithm : {ssd_algorithm::recurrent, ssd_algorithm::chunked}) {
    ssmkit::ssd_options<double> o;
    o.D = make_view(pr.D, pr.h, pr.p);
    o.z = make_view(pr.z, pr.batch, pr.L, pr.h, pr.p);
    o.dt_bias = make_view(pr.bias, pr.h);
    o.dt_softplus = true;
    o.initial_states = make_view(pr.init, pr.batch, pr.h, pr.p, pr.n);
    o.final_states = make_view(fin, pr.batch, pr.h, pr.p, pr.n);
    o.algorithm = algorithm;
    o.chunk_size = 8;
    ssmkit::ssd_scan<double>(xv, make_view(pr.dt, pr.batch, pr.L, pr.h), make_view(pr.A, pr.h), Bv,
                             make_view(pr.C, pr.batch, pr.L, 1, pr.n), ov, o);
    std::vector<double> got(out.size());
    for (std::size_t b = 0; b < pr.batch; ++b)
      for (std::size_t t = 0; t < pr.L; ++t)
        for (std::size_t hh = 0; hh < pr.h; ++hh)
          for (std::size_t i = 0; i < pr.p; ++i) got[pr.xi(b, t, hh, i)] = ov(b, t, hh, i);
    got.insert(got.end(), fin.begin(), fin.end());
    within(got, want, pr.tolerance<double>(8));
  }
}

TEST_CASE("ssd_step equals the scan, token by token, without allocating", "[ssd]") {
  for (const std::size_t p : {std::size_t{1}, std::size_t{17}, std::size_t{64}, std::size_t{70}}) {
    problem pr(2, 25, 4, p, 2, 33, 61 + unsigned(p));
    const auto want = pr.reference();
    using T = float;
    const std::size_t batch = pr.batch, h = pr.h, n = pr.n, g = pr.g;
    std::vector<T> state(pr.init.begin(), pr.init.end()), A(pr.A.begin(), pr.A.end()), D(pr.D.begin(), pr.D.end()),
        bias(pr.bias.begin(), pr.bias.end());
    std::vector<T> x(batch * h * p), dt(batch * h), B(batch * g * n), C(batch * g * n), z(batch * h * p),
        out(batch * h * p);
    std::vector<double> got(pr.x.size());
    ssmkit::ssd_step_options<T> o;
    o.D = make_view(D, h, p);
    o.z = make_view(z, batch, h, p);
    o.dt_bias = make_view(bias, h);
    o.dt_softplus = true;
    long allocations = 0;
    for (std::size_t t = 0; t < pr.L; ++t) {
      for (std::size_t b = 0; b < batch; ++b) {
        for (std::size_t hh = 0; hh < h; ++hh) {
          dt[b * h + hh] = T(pr.dt[(b * pr.L + t) * h + hh]);
          for (std::size_t i = 0; i < p; ++i) {
            x[(b * h + hh) * p + i] = T(pr.x[pr.xi(b, t, hh, i)]);
            z[(b * h + hh) * p + i] = T(pr.z[pr.xi(b, t, hh, i)]);
          }
        }
        for (std::size_t gg = 0; gg < g; ++gg)
          for (std::size_t k = 0; k < n; ++k) {
            B[(b * g + gg) * n + k] = T(pr.B[pr.bi(b, t, gg, k)]);
            C[(b * g + gg) * n + k] = T(pr.C[pr.bi(b, t, gg, k)]);
          }
      }
      const auto sv = make_view(state, batch, h, p, n);
      const auto xv = make_view(x, batch, h, p);
      const auto dtv = make_view(dt, batch, h);
      const auto Av = make_view(A, h);
      const auto Bv = make_view(B, batch, g, n);
      const auto Cv = make_view(C, batch, g, n);
      const auto ov = make_view(out, batch, h, p);
      const long before = allocation_count;
      ssmkit::ssd_step<T>(sv, xv, dtv, Av, Bv, Cv, ov, o, {1});
      allocations += allocation_count - before;
      for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t hh = 0; hh < h; ++hh)
          for (std::size_t i = 0; i < p; ++i) got[pr.xi(b, t, hh, i)] = out[(b * h + hh) * p + i];
    }
    got.insert(got.end(), state.begin(), state.end());
    INFO("p " << p);
    within(got, want, pr.tolerance<float>(0));
    within(got, pr.run<float>(ssd_algorithm::recurrent), pr.tolerance<float>(0), 2);
#if SSD_TEST_COUNT_ALLOCATIONS
    CHECK(allocations == 0);
#else
    (void)allocations;  // not counted under sanitizers (their allocator takes operator new's place)
#endif
  }
}

TEST_CASE("ssd_step: the same bits wherever the state, B and C start, and with strided B and C", "[ssd]") {
  // The step copies B and C into aligned buffers when n <= 512 (so a strided B takes the vector
  // path too) and reads the state rows wherever they start: none of it may change a bit of the
  // result. n = 33 has a scalar tail; n = 520 is past the copy, where strided B and C take the
  // plain loop (checked against the contiguous run within its rounding).
  using T = float;
  for (const std::size_t n : {std::size_t{16}, std::size_t{33}, std::size_t{128}, std::size_t{520}}) {
    const std::size_t h = 3, p = 9;
    const auto init = ssm_test::uniform<T>(h * p * n, -1, 1, 7), x = ssm_test::uniform<T>(h * p, -1, 1, 8);
    const auto dt = ssm_test::uniform<T>(h, -3, 0, 9), A = ssm_test::uniform<T>(h, -4, -1, 10);
    const auto Bs = ssm_test::uniform<T>(n, -1, 1, 11), Cs = ssm_test::uniform<T>(n, -1, 1, 12);
    ssmkit::ssd_step_options<T> o;
    o.dt_softplus = true;
    // One step with the state `state_offset` floats and B, C `bc_offset` floats past a 64-byte line.
    const auto run = [&](std::size_t state_offset, std::size_t bc_offset, std::size_t bc_stride) {
      ssmkit::aligned_vector<T> state(init.size() + 16), bc(2 * (n * bc_stride + 16));
      std::copy(init.begin(), init.end(), state.begin() + std::ptrdiff_t(state_offset));
      T* b = bc.data() + bc_offset;
      T* c = b + n * bc_stride;
      for (std::size_t k = 0; k < n; ++k) {
        b[k * bc_stride] = Bs[k];
        c[k * bc_stride] = Cs[k];
      }
      const std::array<std::ptrdiff_t, 3> bc_strides{std::ptrdiff_t(n * bc_stride), std::ptrdiff_t(n * bc_stride),
                                                     std::ptrdiff_t(bc_stride)};
      std::vector<T> out(h * p);
      ssmkit::ssd_step<T>(make_view(state.data() + state_offset, 1, h, p, n), make_view(x, 1, h, p),
                          make_view(dt, 1, h), make_view(A, h),
                          ssmkit::tensor_view<const T, 3>(b, {1, 1, n}, bc_strides),
                          ssmkit::tensor_view<const T, 3>(c, {1, 1, n}, bc_strides), make_view(out, 1, h, p), o, {1});
      out.insert(out.end(), state.begin() + std::ptrdiff_t(state_offset),
                 state.begin() + std::ptrdiff_t(state_offset + init.size()));
      return out;
    };
    const auto base = run(0, 0, 1);
    for (const std::size_t state_offset : {1, 4, 7, 12})
      for (const std::size_t bc_offset : {0, 3, 8})
        for (const std::size_t bc_stride : {1, 2}) {
          INFO("n " << n << ", state offset " << state_offset << ", B/C offset " << bc_offset << ", stride "
                    << bc_stride);
          const auto got = run(state_offset, bc_offset, bc_stride);
          if (n <= 512 || bc_stride == 1) {
            CHECK(got == base);
          } else {
            // The plain loop rounds like the vector one only where the vector FMA is fused (not on
            // x86-64-v2): each state element s' = e^a s + dt x B_k is within u (|e^a s| + |dt x B_k|)
            // of the vector path's, and each y_i = Σ_k s'_ik C_k, summed in another order, within
            // n u Σ_k |s'_ik C_k| plus those differences times |C_k|.
            for (std::size_t i = 0; i < h * p; ++i) {
              const std::size_t hh = i / p;
              const double dtv = std::log1p(std::exp(double(dt[hh]))), decay = std::exp(dtv * A[hh]);
              double y_bound = 0;
              for (std::size_t k = 0; k < n; ++k) {
                const std::size_t e = h * p + i * n + k;
                const double terms = std::abs(decay * init[i * n + k]) + std::abs(dtv * x[i] * Bs[k]);
                CHECK(std::abs(double(got[e]) - base[e]) <= 0x1p-23 * terms);
                y_bound += (double(n) * std::abs(double(base[e])) + 2 * terms) * 0x1p-24 * std::abs(double(Cs[k]));
              }
              CHECK(std::abs(double(got[i]) - base[i]) <= y_bound);
            }
          }
        }
  }
}

TEST_CASE("ssd_scan: golden cases through both algorithms", "[ssd][golden]") {
  const std::string root = SSMKIT_TEST_GOLDEN_DIR;
  for (const char* name : {"ssd_minimal_block4", "ssd_minimal_block8", "ssd_combined_ref"}) {
    const auto c = ssmkit::golden::load_case(root + "/" + name);
    INFO(name);
    for (const auto algorithm : {ssd_algorithm::recurrent, ssd_algorithm::chunked}) {
      std::vector<double> got, want;
      if (c.kernel == "ssd_minimal_discrete") {
        const auto& s = c.input("X").shape;
        const std::size_t b = s[0], L = s[1], h = s[2], p = s[3], n = c.input("B").shape[3];
        std::vector<double> Y(b * L * h * p), fin(b * h * p * n);
        ssmkit::ssd_discrete_options<double> o;
        o.initial_states = make_view(c.input("initial_states").values, b, h, p, n);
        o.final_states = make_view(fin, b, h, p, n);
        o.algorithm = algorithm;
        o.chunk_size = 5;  // not a divisor of L = 16
        ssmkit::ssd_scan_discrete<double>(make_view(c.input("X").values, b, L, h, p),
                                          make_view(c.input("A").values, b, L, h),
                                          make_view(c.input("B").values, b, L, h, n),
                                          make_view(c.input("C").values, b, L, h, n), make_view(Y, b, L, h, p), o);
        got = Y;
        got.insert(got.end(), fin.begin(), fin.end());
        want = c.output("Y").values;
        want.insert(want.end(), c.output("final_state").values.begin(), c.output("final_state").values.end());
      } else {
        const auto& s = c.input("x").shape;
        const std::size_t b = s[0], L = s[1], h = s[2], p = s[3], g = c.input("B").shape[2], n = c.input("B").shape[3];
        std::vector<double> out(b * L * h * p);
        ssmkit::ssd_options<double> o;
        o.D = make_view(c.input("D").values, h, c.input("D").values.size() / h);
        o.z = make_view(c.input("z").values, b, L, h, p);
        o.dt_bias = make_view(c.input("dt_bias").values, h);
        o.dt_softplus = c.param_bool("dt_softplus", false);
        o.algorithm = algorithm;
        o.chunk_size = 3;
        ssmkit::ssd_scan<double>(make_view(c.input("x").values, b, L, h, p), make_view(c.input("dt").values, b, L, h),
                                 make_view(c.input("A").values, h), make_view(c.input("B").values, b, L, g, n),
                                 make_view(c.input("C").values, b, L, g, n), make_view(out, b, L, h, p), o);
        got = out;
        want = c.output("out").values;
        // The selective-scan route of the same maths.
        for (std::size_t i = 0; i < got.size(); ++i)
          CHECK(std::abs(got[i] - c.output("out_via_selective_scan_ref").values[i]) <=
                c.atol + c.rtol * std::abs(c.output("out_via_selective_scan_ref").values[i]));
      }
      REQUIRE(got.size() == want.size());
      for (std::size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= c.atol + c.rtol * std::abs(want[i]));
    }
  }
}

TEST_CASE("ssd_scan: NaN propagates forward in time", "[ssd]") {
  // NaN in x[t0, head 1, channel 2] reaches that channel's outputs from t0 on and its state row;
  // NaN in dt[t1, head 0] reaches all of head 0 from t1 on. Other heads and channels stay finite.
  problem pr(1, 40, 3, 4, 1, 3, 71);
  const std::size_t t0 = 21, t1 = 30;
  pr.x[pr.xi(0, t0, 1, 2)] = NAN;
  pr.dt[t1 * pr.h + 0] = NAN;
  pr.dt_min = 0.01;  // NaN passes softplus and the dt limit
  pr.dt_max = 1;
  for (const auto algorithm : {ssd_algorithm::recurrent, ssd_algorithm::chunked}) {
    const auto r = pr.run<float>(algorithm, 8);
    const std::size_t fin = pr.x.size(), pn = pr.p * pr.n;
    for (std::size_t t = 0; t < pr.L; ++t) {
      for (std::size_t i = 0; i < pr.p; ++i) {
        if (t >= t0) CHECK(std::isnan(r[pr.xi(0, t, 1, 2)]));
        if (t >= t1) CHECK(std::isnan(r[pr.xi(0, t, 0, i)]));
        if (i != 2) CHECK(std::isfinite(r[pr.xi(0, t, 1, i)]));
        CHECK(std::isfinite(r[pr.xi(0, t, 2, i)]));
      }
      // Strictly causal on the recurrent path; the chunked path may also reach the earlier
      // outputs of the same chunk of 8 (0 · NaN in the masked GEMM), like the reference.
      const bool recurrent = algorithm == ssd_algorithm::recurrent;
      if (t < (recurrent ? t0 : t0 - t0 % 8)) CHECK(std::isfinite(r[pr.xi(0, t, 1, 2)]));
      if (t < (recurrent ? t1 : t1 - t1 % 8)) CHECK(std::isfinite(r[pr.xi(0, t, 0, 0)]));
    }
    for (std::size_t k = 0; k < pr.n; ++k) {
      CHECK(std::isnan(r[fin + pn + 2 * pr.n + k]));   // head 1, row 2
      CHECK(std::isfinite(r[fin + pn + 1 * pr.n + k]));  // head 1, row 1
      CHECK(std::isnan(r[fin + k]));                    // head 0
      CHECK(std::isfinite(r[fin + 2 * pn + k]));        // head 2
    }
  }
}

TEST_CASE("ssd_scan: empty extents", "[ssd]") {
  // L = 0: no output, the final state is the initial one.
  std::vector<float> none, init(2 * 3 * 4, 1.5f), fin(2 * 3 * 4, 0), A(2, -1);
  ssmkit::ssd_options<float> o;
  o.initial_states = make_view(init, 1, 2, 3, 4);
  o.final_states = make_view(fin, 1, 2, 3, 4);
  ssmkit::ssd_scan<float>(make_view(none.data(), 1, 0, 2, 3), make_view(none.data(), 1, 0, 2),
                          make_view(A, 2), make_view(none.data(), 1, 0, 1, 4), make_view(none.data(), 1, 0, 1, 4),
                          make_view(none.data(), 1, 0, 2, 3), o);
  CHECK(fin == init);
  // N = 0: out = D x only.
  problem pr(1, 5, 2, 3, 1, 0, 81);
  pr.init.clear();
  const auto want = pr.reference();
  within(pr.run<double>(ssd_algorithm::recurrent), want, pr.tolerance<double>(0));
  within(pr.run<double>(ssd_algorithm::chunked, 2), want, pr.tolerance<double>(2));
}

TEST_CASE("ssd_scan, ssd_scan_discrete and ssd_step reject bad input with exact messages", "[ssd]") {
  const std::size_t b = 2, L = 8, h = 4, p = 3, g = 2, n = 5;
  std::vector<float> x(b * L * h * p, 1), dt(b * L * h, 1), A(h, -1), B(b * L * g * n, 1), C(b * L * g * n, 1),
      out(b * L * h * p, 7), D(h * p, 1), st(b * h * p * n, 3), dt_bad(b * 7 * h);
  const std::vector<float> out_before = out, st_before = st;
  auto xv = make_view(x, b, L, h, p);
  auto dtv = make_view(dt, b, L, h);
  auto Av = make_view(A, h);
  auto Bv = make_view(B, b, L, g, n);
  auto Cv = make_view(C, b, L, g, n);
  auto ov = make_view(out, b, L, h, p);
  using ssmkit::ssd_scan;
  CHECK(error_of([&] { ssd_scan<float>(xv, make_view(dt_bad, b, 7, h), Av, Bv, Cv, ov); }) ==
        "ssd_scan: dt has shape (2, 7, 4), expected (2, 8, 4)");
  CHECK(error_of([&] { ssd_scan<float>(xv, dtv, make_view(A.data(), 3), Bv, Cv, ov); }) ==
        "ssd_scan: A has shape (3), expected (4)");
  CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, make_view(B.data(), b, L, 3, 1), Cv, ov); }) ==
        "ssd_scan: B has 3 groups, which do not divide the 4 heads");
  CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, make_view(B.data(), b, 4, g, n), Cv, ov); }) ==
        "ssd_scan: B has shape (2, 4, 2, 5), expected (2, 8, G, N)");
  CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, make_view(C.data(), b, L, g, 4), ov); }) ==
        "ssd_scan: C has shape (2, 8, 2, 4), expected (2, 8, 2, 5)");
  CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, make_view(out.data(), b, L, h, 2)); }) ==
        "ssd_scan: out has shape (2, 8, 4, 2), expected (2, 8, 4, 3)");
  CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, make_view(x, b, L, h, p)); }) ==
        "ssd_scan: out overlaps x in memory");
  CHECK(error_of([&] { ssd_scan<float>(make_view(static_cast<float*>(nullptr), b, L, h, p), dtv, Av, Bv, Cv, ov); }) ==
        "ssd_scan: x is a null view of shape (2, 8, 4, 3)");
  {
    ssmkit::ssd_options<float> o;
    o.D = make_view(D.data(), h, 2);
    CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, ov, o); }) ==
          "ssd_scan: D has shape (4, 2), expected (4, 3) or (4, 1)");
  }
  {
    ssmkit::ssd_options<float> o;
    o.z = make_view(x.data(), b, L, h, 2);
    CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, ov, o); }) ==
          "ssd_scan: z has shape (2, 8, 4, 2), expected (2, 8, 4, 3)");
  }
  {
    ssmkit::ssd_options<float> o;
    o.dt_bias = make_view(A.data(), 2);
    CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, ov, o); }) ==
          "ssd_scan: dt_bias has shape (2), expected (4)");
  }
  {
    ssmkit::ssd_options<float> o;
    o.initial_states = make_view(st.data(), b, h, p, 4);
    CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, ov, o); }) ==
          "ssd_scan: initial_states has shape (2, 4, 3, 4), expected (2, 4, 3, 5)");
  }
  {
    ssmkit::ssd_options<float> o;
    o.final_states = make_view(st, b, h, p, n);
    o.initial_states = make_view(st.data() + 1, b, h, p, n - 1);
    CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, ov, o); }) ==
          "ssd_scan: initial_states has shape (2, 4, 3, 4), expected (2, 4, 3, 5)");
    o.final_states = make_view(B.data(), b, h, p, n);
    o.initial_states = {};
    CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, ov, o); }) ==
          "ssd_scan: final_states overlaps B in memory");
  }
  {
    ssmkit::ssd_options<float> o;
    o.dt_min = 1;
    o.dt_max = 0.5f;
    CHECK(error_of([&] { ssd_scan<float>(xv, dtv, Av, Bv, Cv, ov, o); }) ==
          "ssd_scan: dt_limit (1, 0.5) is not an interval");
  }
  CHECK(out == out_before);
  CHECK(st == st_before);

  CHECK(error_of([&] {
          ssmkit::ssd_scan_discrete<float>(xv, make_view(dt_bad, b, 7, h), Bv, Cv, ov);
        }) == "ssd_scan_discrete: A has shape (2, 7, 4), expected (2, 8, 4)");
  CHECK(error_of([&] { ssmkit::ssd_scan_discrete<float>(xv, dtv, Bv, Cv, make_view(x, b, L, h, p)); }) ==
        "ssd_scan_discrete: Y overlaps X in memory");

  // ssd_step
  auto sv = make_view(st, b, h, p, n);
  auto x1 = make_view(x.data(), b, h, p);
  auto dt1 = make_view(dt.data(), b, h);
  auto B1 = make_view(B.data(), b, g, n);
  auto C1 = make_view(C.data(), b, g, n);
  auto o1 = make_view(out.data(), b, h, p);
  CHECK(error_of([&] { ssmkit::ssd_step<float>(sv, make_view(x.data(), b, h, 2), dt1, Av, B1, C1, o1); }) ==
        "ssd_step: x has shape (2, 4, 2), expected (2, 4, 3)");
  CHECK(error_of([&] { ssmkit::ssd_step<float>(sv, x1, dt1, Av, make_view(B.data(), b, g, 4), C1, o1); }) ==
        "ssd_step: B has shape (2, 2, 4), expected (2, G, 5)");
  CHECK(error_of([&] { ssmkit::ssd_step<float>(sv, x1, dt1, Av, B1, C1, make_view(st.data(), b, h, p)); }) ==
        "ssd_step: out overlaps state in memory");
  CHECK(error_of([&] { ssmkit::ssd_step<float>(make_view(x.data(), b, h, p, 1), make_view(x.data() + 10, b, h, p), dt1, Av,
                                                make_view(B.data(), b, g, 1), make_view(C.data(), b, g, 1), o1); }) ==
        "ssd_step: state overlaps x in memory");
  CHECK(out == out_before);
  CHECK(st == st_before);
}
