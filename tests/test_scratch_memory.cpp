// Peak scratch memory per kernel, against the formulas of docs/memory.md.
//
// A global operator new that records, while a measurement is on, every block it hands out (pointer
// and requested size, in a fixed table that itself allocates nothing) and the peak of the bytes
// that are live at once. A measurement's peak is therefore the largest total of the blocks that
// the call allocated and had not yet freed: exactly the heap scratch of the call, in requested
// bytes, independent of malloc's rounding. Blocks allocated before the call and freed during it
// are not counted (the scratch is what the call adds).
//
// What it cannot see: memory that does not come from operator new. Eigen's dynamic matrices
// (aligned_malloc) and xsimd's aligned_allocator (the FFT convolution's spectra and workspaces)
// call malloc directly. Those buffers are documented in docs/memory.md from the code; where a
// workspace object reports its size (fft_conv_workspace::size, ssd_workspace::bytes) the test
// checks that size against the formula instead.
//
// Every kernel runs with num_threads = 1, so that the per-thread terms of the formulas count once.
// Each check is an upper bound (the documented formula, in requested bytes) and, where the formula
// is exact, a lower bound (at least 3/4 of it), so that a formula that is far off fails.
#include <algorithm>
#include <atomic>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#include <ssmkit/conv1d.hpp>
#include <ssmkit/fft.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/fft_conv_stream.hpp>
#include <ssmkit/long_conv.hpp>
#include <ssmkit/mamba.hpp>
#include <ssmkit/mamba2.hpp>
#include <ssmkit/s4_dplr.hpp>
#include <ssmkit/s4d.hpp>
#include <ssmkit/s4d_layer.hpp>
#include <ssmkit/selective_scan.hpp>
#include <ssmkit/ssd.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

/// The live blocks of a measurement: open addressing on the pointer, tombstones on release.
struct block_table {
  static constexpr std::size_t capacity = std::size_t{1} << 18;
  struct entry {
    void* pointer;
    std::size_t size;
  };
  entry entries[capacity];
  std::size_t used = 0;  // slots ever filled (live + tombstones)

  static void* tombstone() noexcept { return reinterpret_cast<void*>(std::uintptr_t{1}); }
  static std::size_t slot(void* p) noexcept { return (reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ULL >> 46; }

  void clear() noexcept {
    for (auto& e : entries) e = {nullptr, 0};
    used = 0;
  }
  void insert(void* p, std::size_t size) noexcept {
    if (++used > capacity / 2) std::abort();  // a measurement made over 2^17 allocations: enlarge the table
    for (std::size_t i = slot(p);; i = (i + 1) % capacity) {
      if (entries[i].pointer == nullptr || entries[i].pointer == tombstone()) {
        entries[i] = {p, size};
        return;
      }
    }
  }
  /// The size of `p` if the measurement allocated it (and forgets it), else 0.
  std::size_t erase(void* p) noexcept {
    for (std::size_t i = slot(p); entries[i].pointer != nullptr; i = (i + 1) % capacity) {
      if (entries[i].pointer == p) {
        entries[i].pointer = tombstone();
        return entries[i].size;
      }
    }
    return 0;
  }
};

block_table table;
std::atomic_flag table_lock = ATOMIC_FLAG_INIT;
bool measuring = false;  // read and written under table_lock
std::size_t live_bytes = 0, peak_bytes = 0, allocations = 0;

void lock() noexcept {
  while (table_lock.test_and_set(std::memory_order_acquire)) {
  }
}
void unlock() noexcept { table_lock.clear(std::memory_order_release); }

void record_allocation(void* p, std::size_t size) noexcept {
  lock();
  if (measuring && p != nullptr) {
    table.insert(p, size);
    live_bytes += size;
    peak_bytes = std::max(peak_bytes, live_bytes);
    ++allocations;
  }
  unlock();
}

void record_release(void* p) noexcept {
  if (p == nullptr) return;
  lock();
  if (measuring) live_bytes -= table.erase(p);
  unlock();
}

}  // namespace

// The replacements. noinline keeps GCC 12 from pairing the inlined malloc/free with new/delete (a
// -Wmismatched-new-delete false positive). Every form is replaced, so that allocation and release
// always pair malloc (or aligned_alloc) with free.
#if defined(__GNUC__)
#define SSMKIT_TEST_NOINLINE __attribute__((noinline))
#else
#define SSMKIT_TEST_NOINLINE
#endif
SSMKIT_TEST_NOINLINE void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  record_allocation(p, n);
  return p;
}
SSMKIT_TEST_NOINLINE void* operator new[](std::size_t n) { return operator new(n); }
SSMKIT_TEST_NOINLINE void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  void* p = std::malloc(n == 0 ? 1 : n);
  record_allocation(p, n);
  return p;
}
SSMKIT_TEST_NOINLINE void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept {
  return operator new(n, tag);
}
SSMKIT_TEST_NOINLINE void* operator new(std::size_t n, std::align_val_t alignment) {
  const auto a = static_cast<std::size_t>(alignment);
  void* p = std::aligned_alloc(a, (std::max<std::size_t>(n, 1) + a - 1) / a * a);
  if (p == nullptr) throw std::bad_alloc();
  record_allocation(p, n);
  return p;
}
SSMKIT_TEST_NOINLINE void* operator new[](std::size_t n, std::align_val_t alignment) {
  return operator new(n, alignment);
}
SSMKIT_TEST_NOINLINE void operator delete(void* p) noexcept {
  record_release(p);
  std::free(p);
}
SSMKIT_TEST_NOINLINE void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
SSMKIT_TEST_NOINLINE void operator delete[](void* p) noexcept { operator delete(p); }
SSMKIT_TEST_NOINLINE void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }
SSMKIT_TEST_NOINLINE void operator delete(void* p, const std::nothrow_t&) noexcept { operator delete(p); }
SSMKIT_TEST_NOINLINE void operator delete[](void* p, const std::nothrow_t&) noexcept { operator delete(p); }
SSMKIT_TEST_NOINLINE void operator delete(void* p, std::align_val_t) noexcept { operator delete(p); }
SSMKIT_TEST_NOINLINE void operator delete[](void* p, std::align_val_t) noexcept { operator delete(p); }
SSMKIT_TEST_NOINLINE void operator delete(void* p, std::size_t, std::align_val_t) noexcept { operator delete(p); }
SSMKIT_TEST_NOINLINE void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { operator delete(p); }

namespace {

struct usage {
  std::size_t peak = 0;         ///< bytes
  std::size_t allocations = 0;  ///< blocks handed out during the call
};

/// The heap scratch of `call`: the peak of the bytes it allocated and had not yet freed.
template <class F>
usage measure(F&& call) {
  lock();
  table.clear();
  live_bytes = peak_bytes = allocations = 0;
  measuring = true;
  unlock();
  call();
  lock();
  measuring = false;
  const usage u{peak_bytes, allocations};
  unlock();
  if (std::getenv("SSMKIT_PRINT_MEMORY") != nullptr) {
    std::printf("  peak %zu bytes in %zu allocations\n", u.peak, u.allocations);
  }
  return u;
}

/// Within the documented formula, and at least 3/4 of it (the formula is exact up to the terms the
/// document lists as small).
#define CHECK_PEAK_EXACTISH(measured, formula)         \
  do {                                                  \
    const double peak_measured = double(measured);      \
    const double peak_formula = double(formula);        \
    INFO("measured " << peak_measured << " bytes, formula " << peak_formula); \
    CHECK(peak_measured <= peak_formula);               \
    CHECK(peak_measured >= 0.75 * peak_formula);        \
  } while (false)

constexpr ssmkit::parallel_options one_thread{1, 1};

using T = float;
constexpr std::size_t W = ssmkit::detail::width_v<T, ssmkit::default_arch>;

// ---- Formulas of docs/memory.md, in bytes. -------------------------------------------------

/// selective_scan, real A: per piece (one batch row, up to 16 channel blocks of W channels),
/// blocks · (4N + 2) · W values plus the chunk buffers (4 · 64 · W + 4 · 64 · 16 values and 64
/// bytes of tile keys).
std::size_t selective_scan_bytes(std::size_t D, std::size_t N, std::size_t groups) {
  const std::size_t blocks_per_row = groups * ((D / groups + W - 1) / W);
  const std::size_t blocks = std::min<std::size_t>(16, blocks_per_row);
  return (blocks * (4 * N + 2) * W + 4 * 64 * W + 4 * 64 * 16) * sizeof(T) + 64;
}

/// A worker's slot rounded up to whole 64-byte lines (every slot starts on a line).
std::size_t whole_lines(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

/// ssd_scan recurrent, one worker: the states of all its B·H heads plus the rows of a pass of 4
/// tokens (dx, y, x, B, C each) and the z and D rows: 4 (3P + 2N) + 2P values.
std::size_t ssd_recurrent_bytes(std::size_t B, std::size_t H, std::size_t P, std::size_t N) {
  return whole_lines((B * H * P * N + 4 * (3 * P + 2 * N) + 2 * P) * sizeof(T));
}

/// ssd_scan chunked, one worker: Q = min(chunk, L), h = min(H/G, B·H) heads of a group,
/// N h P + 2 Q h P + 2 Q N + 2 Q^2 + (Q + 1 + W) + 2 h Q + 3 P values.
std::size_t ssd_chunked_bytes(std::size_t B, std::size_t L, std::size_t H, std::size_t G, std::size_t P,
                              std::size_t N, std::size_t chunk) {
  const std::size_t Q = std::min(chunk, L), h = std::min(H / G, B * H);
  return whole_lines((N * h * P + 2 * Q * h * P + 2 * Q * N + 2 * Q * Q + (Q + 1 + W) + 2 * h * Q + 3 * P) * sizeof(T));
}

/// s4d_kernel, per thread: N2 · (144 + 2 (W + NB) sizeof(T)) bytes, NB = vandermonde_blocks.
std::size_t s4d_kernel_bytes(std::size_t N2) {
  return N2 * (144 + 2 * (W + ssmkit::detail::vandermonde_blocks) * sizeof(T));
}

}  // namespace

TEST_CASE("the measurement sees a vector's bytes and its peak", "[memory]") {
  const usage u = measure([] {
    std::vector<double> a(1000);
    { std::vector<char> b(5000); }
    std::vector<int> c(10);
    a[0] = c[0];
  });
  CHECK(u.peak == 8000 + 5000);
  CHECK(u.allocations == 3);
}

TEST_CASE("fft plans: scratch 4 n (complex) and 4 n/2 (real, even n) values per allocating call", "[memory][fft]") {
  for (const std::size_t n : {std::size_t{64}, std::size_t{1000}, std::size_t{3 * 1024}}) {
    INFO("n = " << n);
    const ssmkit::fft_plan<T> plan(n);
    std::vector<std::complex<T>> x(n, 1), y(n);
    const usage c = measure([&] { plan.forward(ssmkit::make_view(x.data(), n), ssmkit::make_view(y.data(), n)); });
    CHECK(c.peak == 4 * n * sizeof(T));
    std::vector<T> scratch(plan.scratch_size());
    const usage none = measure([&] {
      plan.forward(ssmkit::make_view(x.data(), n), ssmkit::make_view(y.data(), n), ssmkit::make_view(scratch.data(), scratch.size()));
    });
    CHECK(none.allocations == 0);
    const ssmkit::rfft_plan<T> rplan(n);
    std::vector<T> xr(n, 1);
    std::vector<std::complex<T>> X(n / 2 + 1);
    const usage r = measure([&] { rplan.forward(ssmkit::make_view(xr.data(), n), ssmkit::make_view(X.data(), n / 2 + 1)); });
    CHECK(r.peak == 4 * (n / 2) * sizeof(T));
    // The batched (rank-2) entry: one lane group's four arrays, 4 n W values.
    const std::size_t count = 3;
    std::vector<std::complex<T>> xb(count * n, 1), yb(count * n);
    const usage batched = measure([&] {
      plan.forward(ssmkit::make_view(xb.data(), count, n), ssmkit::make_view(yb.data(), count, n));
    });
    CHECK(batched.peak == 4 * n * W * sizeof(T));
    CHECK(plan.batch_scratch_size() == 4 * n * W);
    // Construction: the twiddles, at most n (p - 1)/p · (1 + 1/p + ...) <= n of each part, grown by
    // push_back: while the second part reallocates, <= 2n + n + 2n = 5n values; then, when n is a
    // multiple of S = 64 / sizeof(T) with n / S >= S, the single-signal split's twiddles (2n) and
    // its two sub-plans (<= 5 n / S + 5 S); plus the stage lists: <= 8n values + 2 KiB.
    const usage build = measure([&] { const ssmkit::fft_plan<T> p(n); (void)p; });
    CHECK(build.peak <= 8 * n * sizeof(T) + 2048);
    CHECK(build.peak >= n * sizeof(T));
  }
}

TEST_CASE("selective_scan: per piece, blocks (4N + 2) W values and the chunk buffers", "[memory][selective_scan]") {
  struct shape {
    std::size_t B, D, N, L;
  };
  for (const shape s : {shape{2, 40, 16, 100}, shape{1, 300, 4, 70}, shape{3, 5, 1, 9}}) {
    INFO("B " << s.B << " D " << s.D << " N " << s.N << " L " << s.L);
    const auto u = ssm_test::uniform<T>(s.B * s.D * s.L, -1, 1, 1);
    const auto delta = ssm_test::uniform<T>(s.B * s.D * s.L, 0.01, 0.1, 2);
    const auto A = ssm_test::uniform<T>(s.D * s.N, -2, -0.1, 3);
    const auto Bv = ssm_test::uniform<T>(s.B * s.N * s.L, -1, 1, 4);
    const auto Cv = ssm_test::uniform<T>(s.B * s.N * s.L, -1, 1, 5);
    std::vector<T> out(u.size());
    ssmkit::selective_scan_options<T> o;
    o.parallel = one_thread;
    const usage m = measure([&] {
      ssmkit::selective_scan<T>(ssmkit::make_view(u.data(), s.B, s.D, s.L), ssmkit::make_view(delta.data(), s.B, s.D, s.L),
                                ssmkit::make_view(A.data(), s.D, s.N), ssmkit::make_view(Bv.data(), s.B, s.N, s.L),
                                ssmkit::make_view(Cv.data(), s.B, s.N, s.L), ssmkit::make_view(out.data(), s.B, s.D, s.L), o);
    });
    CHECK_PEAK_EXACTISH(m.peak, selective_scan_bytes(s.D, s.N, 1));
  }
}

TEST_CASE("the decode steps allocate nothing: selective_state_update, ssd_step, conv1d update", "[memory]") {
  const std::size_t B = 2, D = 24, N = 8, W4 = 4, H = 3, P = 8, G = 1;
  std::vector<T> state(B * D * N), x(B * D, 0.5f), dt(B * D, 0.05f), A(D * N, -1), Bv(B * N, 0.5f), Cv(B * N, 0.5f), out(B * D);
  ssmkit::selective_state_update_options<T, 3> so;
  so.parallel = one_thread;
  CHECK(measure([&] {
          ssmkit::selective_state_update<T>(ssmkit::make_view(state.data(), B, D, N), ssmkit::make_view(x.data(), B, D),
                                            ssmkit::make_view(dt.data(), B, D), ssmkit::make_view(A.data(), D, N),
                                            ssmkit::make_view(Bv.data(), B, N), ssmkit::make_view(Cv.data(), B, N),
                                            ssmkit::make_view(out.data(), B, D), so);
        }).allocations == 0);
  std::vector<T> ssd_state(B * H * P * N), xs(B * H * P, 0.5f), dts(B * H, 0.05f), As(H, -1), Bs(B * G * N, 0.5f),
      Cs(B * G * N, 0.5f), ys(B * H * P);
  CHECK(measure([&] {
          ssmkit::ssd_step<T>(ssmkit::make_view(ssd_state.data(), B, H, P, N), ssmkit::make_view(xs.data(), B, H, P),
                              ssmkit::make_view(dts.data(), B, H), ssmkit::make_view(As.data(), H),
                              ssmkit::make_view(Bs.data(), B, G, N), ssmkit::make_view(Cs.data(), B, G, N),
                              ssmkit::make_view(ys.data(), B, H, P), {}, one_thread);
        }).allocations == 0);
  std::vector<T> conv_state(B * D * (W4 - 1)), weight(D * W4, 0.25f), bias(D, 0.1f);
  CHECK(measure([&] {
          ssmkit::causal_conv1d_update<T>(ssmkit::make_view(x.data(), B, D), ssmkit::make_view(conv_state.data(), B, D, W4 - 1),
                                          ssmkit::make_view(weight.data(), D, W4), ssmkit::make_view(bias.data(), D),
                                          ssmkit::make_view(out.data(), B, D), true);
        }).allocations == 0);
  // The sequence conv1d allocates nothing either.
  const std::size_t L = 50;
  const auto xl = ssm_test::uniform<T>(B * L * D, -1, 1, 6);
  std::vector<T> yl(xl.size());
  ssmkit::conv1d_options<T> co;
  co.parallel = one_thread;
  CHECK(measure([&] {
          ssmkit::causal_conv1d<T>(ssmkit::make_view(xl.data(), B, L, D), ssmkit::make_view(weight.data(), D, W4),
                                   ssmkit::make_view(bias.data(), D), ssmkit::make_view(yl.data(), B, L, D), co);
        }).allocations == 0);
}

TEST_CASE("ssd_scan: the workspace holds the recurrent or chunked slot; a reused one allocates nothing", "[memory][ssd]") {
  struct shape {
    std::size_t B, L, H, G, P, N;
  };
  for (const shape s : {shape{2, 100, 4, 1, 8, 16}, shape{1, 37, 6, 2, 4, 8}}) {
    INFO("B " << s.B << " L " << s.L << " H " << s.H << " G " << s.G << " P " << s.P << " N " << s.N);
    const auto x = ssm_test::uniform<T>(s.B * s.L * s.H * s.P, -1, 1, 7);
    const auto dt = ssm_test::uniform<T>(s.B * s.L * s.H, 0.01, 0.1, 8);
    const auto A = ssm_test::uniform<T>(s.H, -2, -0.5, 9);
    const auto Bv = ssm_test::uniform<T>(s.B * s.L * s.G * s.N, -1, 1, 10);
    const auto Cv = ssm_test::uniform<T>(s.B * s.L * s.G * s.N, -1, 1, 11);
    std::vector<T> y(x.size());
    for (const auto algorithm : {ssmkit::ssd_algorithm::recurrent, ssmkit::ssd_algorithm::chunked}) {
      const bool recurrent = algorithm == ssmkit::ssd_algorithm::recurrent;
      INFO((recurrent ? "recurrent" : "chunked"));
      const std::size_t formula =
          recurrent ? ssd_recurrent_bytes(s.B, s.H, s.P, s.N) : ssd_chunked_bytes(s.B, s.L, s.H, s.G, s.P, s.N, 64);
      ssmkit::ssd_options<T> o;
      o.algorithm = algorithm;
      const auto run = [&] {
        ssmkit::ssd_scan<T>(ssmkit::make_view(x.data(), s.B, s.L, s.H, s.P), ssmkit::make_view(dt.data(), s.B, s.L, s.H),
                            ssmkit::make_view(A.data(), s.H), ssmkit::make_view(Bv.data(), s.B, s.L, s.G, s.N),
                            ssmkit::make_view(Cv.data(), s.B, s.L, s.G, s.N), ssmkit::make_view(y.data(), s.B, s.L, s.H, s.P), o,
                            one_thread);
      };
      // The slots come from xsimd's 64-byte aligned allocator (aligned malloc, which this file's
      // operator new does not see): the workspace's own report is checked instead.
      ssmkit::ssd_workspace<T> ws;
      o.workspace = &ws;
      run();
      CHECK(ws.bytes() == formula);
      CHECK(measure(run).allocations == 0);
    }
  }
}

TEST_CASE("s4d_kernel: per thread N2 (144 + 2 (W + NB) sizeof T) bytes", "[memory][s4d]") {
  for (const std::size_t N2 : {std::size_t{8}, std::size_t{64}}) {
    const std::size_t H = 3, C = 2, L = 500;
    INFO("N2 " << N2);
    std::vector<T> dt(H, 0.01f), K(C * H * L);
    std::vector<std::complex<T>> A(H * N2, {-0.5f, 3}), Bv(H * N2, {1, 0}), Cv(C * H * N2, {0.5f, 0.5f});
    ssmkit::s4d_kernel_options o;
    o.parallel = one_thread;
    const usage m = measure([&] {
      ssmkit::s4d_kernel<T>(ssmkit::make_view(dt.data(), H, 1), ssmkit::make_view(A.data(), H, N2), ssmkit::make_view(Bv.data(), H, N2),
                            ssmkit::make_view(Cv.data(), C, H, N2), ssmkit::make_view(K.data(), C, H, L), o);
    });
    CHECK_PEAK_EXACTISH(m.peak, s4d_kernel_bytes(N2));
  }
}

TEST_CASE("s4d_layer: forward holds B L (C H + 2 H) values with the output GLU; step allocates nothing", "[memory][s4d_layer]") {
  const std::size_t H = 6, N = 16, C = 2, L = 200, B = 2;
  ssmkit::s4d_layer_options lo;
  lo.output_glu = true;
  const auto layer = ssmkit::s4d_layer<T>::random(H, N, C, L, {}, lo);
  const auto u = ssm_test::uniform<T>(B * L * H, -1, 1, 12);
  std::vector<T> y(B * L * H);
  ssmkit::s4d_layer_workspace<T> ws;
  const auto run = [&] { layer.forward(ssmkit::make_view(u.data(), B, L, H), ssmkit::make_view(y.data(), B, L, H), ws, one_thread); };
  CHECK_PEAK_EXACTISH(measure(run).peak, B * L * (C * H + 2 * H) * sizeof(T));
  // The convolution's workspace (xsimd's allocator: not seen by the measurement) has the plan's size.
  CHECK(ws.conv.size() == layer.plan().workspace_size(1));
  CHECK(measure(run).allocations == 0);
  auto state = layer.make_state(B);
  std::vector<T> y_t(B * H);
  CHECK(measure([&] { layer.step(ssmkit::make_view(u.data(), B, H), ssmkit::make_view(y_t.data(), B, H), state); }).allocations == 0);
}

namespace {

/// An FFT plan of size n in double: <= 8 n values while its tables grow (see the fft test) plus
/// its stage lists.
std::size_t fft_plan_bytes(std::size_t n) { return 8 * n * sizeof(double) + 2048; }

/// s4_dplr_kernel, one thread, channels C, rank r, L, N2 (docs/memory.md): the nodes, the inverse
/// DFT plan and its workspace, the per-thread vectors and the Cauchy workspace. Eigen's dense
/// setup matrices (malloc) are not included.
std::size_t s4_dplr_bytes(std::size_t C, std::size_t r, std::size_t L, std::size_t N2) {
  const std::size_t z = 16, d = 8, nodes = L / 2 + 1, pairs = (C + r) * (1 + r);
  std::size_t bytes = 2 * nodes * z;  // nodes z, factor
  if (ssmkit::is_fast_len(L)) {
    const std::size_t m = L % 2 == 0 ? L / 2 : L;
    bytes += fft_plan_bytes(m) + (4 * m + L) * d;  // the real plan; scratch, real_out
  } else {
    const std::size_t M = ssmkit::next_fast_len(2 * L - 1);
    bytes += fft_plan_bytes(M) + L * z + 2 * M * z + 4 * M * d;  // plan, chirp, its spectrum, b and its FFT scratch
    bytes += 4 * M * d + M * z;                                  // workspace: scratch, a
  }
  bytes += (N2 + (C + r) * N2 + (1 + r) * N2 + C * nodes) * z;          // w, left, right, spectrum
  bytes += (pairs * N2 + pairs + r * r + r) * z + (6 + 2 * pairs) * 256 * d;  // Cauchy workspace
  return bytes;
}

}  // namespace

TEST_CASE("s4_dplr_kernel: nodes, inverse DFT and Cauchy workspace", "[memory][s4_dplr]") {
  struct shape {
    std::size_t H, N2, r, C, L;
  };
  for (const shape s : {shape{2, 8, 1, 1, 256}, shape{1, 16, 2, 2, 97}, shape{3, 4, 0, 1, 1000}}) {
    INFO("H " << s.H << " N2 " << s.N2 << " r " << s.r << " C " << s.C << " L " << s.L);
    std::vector<T> dt(s.H, 0.01f), K(s.C * s.H * s.L);
    std::vector<std::complex<T>> Lambda(s.H * s.N2, {-0.5f, 2}), P(s.r * s.H * s.N2, {0.1f, 0}), Bv(s.H * s.N2, {1, 0}),
        Cv(s.C * s.H * s.N2, {0.5f, 0.5f});
    ssmkit::s4_dplr_kernel_options o;
    o.parallel = one_thread;
    const usage m = measure([&] {
      ssmkit::s4_dplr_kernel<T>(ssmkit::make_view(dt.data(), s.H, 1), ssmkit::make_view(Lambda.data(), s.H, s.N2),
                                ssmkit::make_view(P.data(), s.r, s.H, s.N2), ssmkit::make_view(Bv.data(), s.H, s.N2),
                                ssmkit::make_view(Cv.data(), s.C, s.H, s.N2), ssmkit::make_view(K.data(), s.C, s.H, s.L), o);
    });
    const double formula = double(s4_dplr_bytes(s.C, s.r, s.L, s.N2));
    INFO("measured " << m.peak << " formula " << formula);
    CHECK(double(m.peak) <= formula);
    CHECK(double(m.peak) >= 0.5 * formula);  // the plan term is a bound
  }
}

TEST_CASE("fft_conv: the plan's workspace per thread; forward with it allocates nothing", "[memory][fft_conv]") {
  constexpr std::size_t lanes = ssmkit::fft_conv_plan<T>::lanes;
  struct shape {
    std::size_t B, L, H, C, Lk;
  };
  for (const shape s : {shape{2, 300, 20, 1, 300}, shape{1, 1000, 8, 2, 700}, shape{2, 200, 9, 1, 3}}) {
    INFO("B " << s.B << " L " << s.L << " H " << s.H << " C " << s.C << " Lk " << s.Lk);
    const auto k = ssm_test::uniform<T>(s.C * s.H * s.Lk, -1, 1, 13);
    const auto u = ssm_test::uniform<T>(s.B * s.L * s.H, -1, 1, 14);
    std::vector<T> y(s.B * s.L * s.C * s.H);
    const ssmkit::fft_conv_plan<T> plan(ssmkit::make_view(k.data(), s.C, s.H, s.Lk), s.L);
    const std::size_t n = plan.fft_size(), M = n / 2;
    REQUIRE(M <= 2048);  // one Stockham FFT: the small buffers are M lanes each
    const std::size_t per_thread =
        plan.uses_direct() ? (s.L + 2 * s.Lk + 4) * lanes : ((s.C > 1 ? 4 : 2) * M + 4 * M) * lanes;
    CHECK(plan.workspace_size(1) == per_thread);
    ssmkit::fft_conv_workspace<T> ws;
    const auto run = [&] {
      plan.forward(ssmkit::make_view(u.data(), s.B, s.L, s.H), ssmkit::make_view(y.data(), s.B, s.L, s.C * s.H), {}, ws, one_thread);
    };
    CHECK(measure(run).allocations == 0);  // the workspace grows through xsimd's allocator (malloc)
    CHECK(ws.size() == per_thread);
    if (plan.uses_direct()) continue;
    // One shot: the plan's construction buffers, padded kernels (n lanes) and small buffers (4 M lanes),
    // plus the FFT's tables: the plan of size M (twiddles <= 2 M values, capacity <= 4 M after
    // push_back growth; the single-signal split's twiddles 2 M and sub-plans <= 5 M / S + 5 S) and
    // the fix-up pairs and roots (4 tables of M/2 + 1, capacity <= 4 M + 8 values, one reallocating:
    // + M/2), so <= 11 M values; the spectra and the workspace are xsimd allocations.
    const usage once = measure([&] {
      ssmkit::fft_conv<T>(ssmkit::make_view(u.data(), s.B, s.L, s.H), ssmkit::make_view(k.data(), s.C, s.H, s.Lk), {},
                          ssmkit::make_view(y.data(), s.B, s.L, s.C * s.H), {}, one_thread);
    });
    const double formula = double((n + 4 * M) * lanes * sizeof(T) + 11 * M * sizeof(T) + 2048);
    INFO("measured " << once.peak << " formula " << formula);
    CHECK(double(once.peak) <= formula);
    CHECK(double(once.peak) >= 0.75 * double((n + 4 * M) * lanes * sizeof(T)));
  }
}

TEST_CASE("fft_conv_stream and long_conv_layer: process and forward allocate nothing", "[memory][fft_conv_stream]") {
  const std::size_t B = 2, H = 5, Lk = 100, L = 256;
  const auto k = ssm_test::uniform<T>(H * Lk, -1, 1, 15);
  const auto u = ssm_test::uniform<T>(B * L * H, -1, 1, 16);
  std::vector<T> y(u.size());
  ssmkit::fft_conv_stream<T> stream(ssmkit::make_view(k.data(), H, Lk), {}, B);
  CHECK(measure([&] { stream.process(ssmkit::make_view(u.data(), B, L, H), ssmkit::make_view(y.data(), B, L, H)); }).allocations == 0);
  const ssmkit::long_conv_layer<T> layer(ssmkit::make_view(k.data(), 1, H, Lk), {}, L);
  ssmkit::fft_conv_workspace<T> ws;
  const auto run = [&] {
    layer.forward(ssmkit::make_view(u.data(), B, L, H), ssmkit::make_view(y.data(), B, L, H), ws, one_thread);
  };
  run();
  CHECK(measure(run).allocations == 0);
  CHECK(ws.size() == layer.plan().workspace_size(1));
}

TEST_CASE("mamba_mixer: forward's workspace is B L (5 d_inner + dt_rank + 2 N) values plus the scan's", "[memory][mamba]") {
  ssmkit::mamba_config c;
  c.d_model = 24, c.d_state = 8;
  const auto mixer = ssmkit::mamba_mixer<T>::random(c);
  const std::size_t B = 2, L = 40, di = c.d_inner(), r = c.resolved_dt_rank();
  const auto x = ssm_test::uniform<T>(B * L * c.d_model, -1, 1, 17);
  std::vector<T> out(x.size());
  ssmkit::mamba_workspace<T> ws;
  const auto run = [&] {
    mixer.forward(ssmkit::make_view(x.data(), B, L, c.d_model), ssmkit::make_view(out.data(), B, L, c.d_model), ws, nullptr,
                  one_thread);
  };
  const std::size_t workspace = B * L * (5 * di + r + 2 * c.d_state) * sizeof(T), scan = selective_scan_bytes(di, c.d_state, 1);
  CHECK_PEAK_EXACTISH(measure(run).peak, workspace + scan);
  CHECK_PEAK_EXACTISH(measure(run).peak, scan);  // a reused workspace: only the scan's scratch
  auto state = mixer.make_state(B);
  std::vector<T> out_t(B * c.d_model);
  CHECK(measure([&] {
          mixer.step(ssmkit::make_view(x.data(), B, c.d_model), ssmkit::make_view(out_t.data(), B, c.d_model), state, one_thread);
        }).allocations == 0);
}

TEST_CASE("mamba2_mixer: forward's workspace is B L (d_in_proj + conv_dim + d_inner) values plus the SSD's", "[memory][mamba2]") {
  ssmkit::mamba2_config c;
  c.d_model = 16, c.d_state = 16, c.headdim = 8, c.ngroups = 1;
  const auto mixer = ssmkit::mamba2_mixer<T>::random(c);
  const std::size_t B = 2, L = 30, H = c.nheads();
  const auto x = ssm_test::uniform<T>(B * L * c.d_model, -1, 1, 18);
  std::vector<T> out(x.size());
  ssmkit::mamba2_workspace<T> ws;
  const auto run = [&] {
    mixer.forward(ssmkit::make_view(x.data(), B, L, c.d_model), ssmkit::make_view(out.data(), B, L, c.d_model), ws, nullptr,
                  one_thread);
  };
  const std::size_t workspace = B * L * (c.d_in_proj() + c.conv_dim() + c.d_inner()) * sizeof(T);
  const std::size_t ssd = std::max(ssd_recurrent_bytes(B, H, c.headdim, c.d_state),
                                   ssd_chunked_bytes(B, L, H, c.ngroups, c.headdim, c.d_state, 64));
  const usage first = measure(run);
  INFO("measured " << first.peak << " workspace " << workspace << " ssd <= " << ssd);
  CHECK(first.peak <= workspace + ssd);
  CHECK(first.peak >= workspace);
  CHECK(ws.ssd.bytes() <= ssd);
  CHECK(measure(run).allocations == 0);
  auto state = mixer.make_state(B);
  std::vector<T> out_t(B * c.d_model);
  CHECK(measure([&] {
          mixer.step(ssmkit::make_view(x.data(), B, c.d_model), ssmkit::make_view(out_t.data(), B, c.d_model), state, one_thread);
        }).allocations == 0);
}
