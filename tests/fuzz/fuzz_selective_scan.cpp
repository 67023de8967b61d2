// libFuzzer target: selective_scan (real A, every B/C layout, every option, packed sequences, both
// layouts) and the decode step selective_state_update. The bytes choose the sizes, the options,
// sometimes one wrong shape, and the values (tame or wild, fuzz_input.hpp). Properties:
//   - a wrong shape throws ssmkit::error, and an error leaves every output untouched;
//   - tame inputs: the SIMD backend agrees with the scalar backend (normwise 1e-4 in float), NaN
//     in the same places, and one decode step equals a scan of one token from the same state;
//   - wild inputs (NaN, inf, subnormals, huge values): no crash, no out-of-bounds access (ASan).
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <vector>

#include <ssmkit/selective_scan.hpp>

#include "fuzz_input.hpp"

namespace {

using T = float;
constexpr T sentinel = T(-12345.5);
constexpr double tolerance = 1e-4;

enum class bc_mode { fixed, variable, grouped };

struct scan_case {
  std::size_t batch, dim, length, nstate, b_groups, c_groups, sequences;
  bc_mode b_mode, c_mode;
  bool token_major, has_D, has_z, has_bias, softplus, has_h0, has_last, fast_exp;
  std::vector<T> u, delta, A, B, C, D, z, bias, h0;
  std::vector<std::int64_t> cu;

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
  // (batch, rows, L) channel-major, or a (batch, L, rows) buffer seen as (batch, rows, L).
  template <class U>
  ssmkit::tensor_view<U, 3> seq(U* p, std::size_t rows) const {
    return token_major ? ssmkit::make_view(p, batch, length, rows).transposed(1, 2) : ssmkit::make_view(p, batch, rows, length);
  }
  ssmkit::bc_view<T> bc(const std::vector<T>& x, bc_mode m, std::size_t groups) const {
    const auto s = bc_shape(m, groups);
    if (m == bc_mode::fixed) return ssmkit::make_view(x.data(), s[0], s[1]);
    if (m == bc_mode::variable) return ssmkit::make_view(x.data(), s[0], s[1], s[2]);
    return ssmkit::make_view(x.data(), s[0], s[1], s[2], s[3]);
  }
};

bc_mode mode_of(std::uint8_t b) { return static_cast<bc_mode>(b % 3); }

template <class Arch>
void scan(const scan_case& c, std::vector<T>& out, std::vector<T>& last, std::size_t wrong) {
  const std::size_t rows = c.batch * c.sequences;
  ssmkit::selective_scan_options<T> o;
  if (c.has_D) o.D = ssmkit::make_view(c.D.data(), c.D.size());
  if (c.has_z) o.z = c.seq(c.z.data(), c.dim);
  if (c.has_bias) o.delta_bias = ssmkit::make_view(c.bias.data(), c.bias.size());
  o.delta_softplus = c.softplus;
  if (c.has_h0) o.initial_state = ssmkit::make_view(c.h0.data(), wrong == 3 ? rows + 1 : rows, c.dim, c.nstate);
  if (c.has_last) o.last_state = ssmkit::make_view(last.data(), rows, c.dim, c.nstate);
  if (!c.cu.empty()) o.cu_seqlens = ssmkit::make_view(c.cu.data(), c.cu.size());
  o.fast_exp = c.fast_exp;
  const auto out_view = wrong == 1 ? ssmkit::make_view(out.data(), c.batch, c.dim - 1, c.length) : c.seq(out.data(), c.dim);
  ssmkit::selective_scan<T, Arch>(c.seq(c.u.data(), c.dim), c.seq(c.delta.data(), c.dim),
                                  ssmkit::make_view(c.A.data(), c.dim, wrong == 2 ? c.nstate - 1 : c.nstate),
                                  c.bc(c.B, c.b_mode, c.b_groups), c.bc(c.C, c.c_mode, c.c_groups), out_view, o);
}

void fuzz_scan(ssm_fuzz::fuzz_input& in) {
  scan_case c;
  c.batch = in.size_in(1, 2);
  c.dim = in.size_in(1, 40);
  c.length = in.size_in(0, 80);
  c.nstate = in.size_in(0, 20);
  c.b_mode = mode_of(in.byte());
  c.c_mode = mode_of(in.byte());
  c.b_groups = in.size_in(1, 4);  // need not divide dim: then an error
  c.c_groups = in.size_in(1, 4);
  c.token_major = in.flag();
  c.has_D = in.flag();
  c.has_z = in.flag();
  c.has_bias = in.flag();
  c.softplus = in.flag();
  c.has_h0 = in.flag();
  c.has_last = in.flag();
  c.fast_exp = in.flag();
  c.sequences = 1;
  if (in.flag()) {  // packed sequences; offsets from the bytes, which may be invalid
    c.sequences = in.size_in(1, 4);
    c.cu.push_back(0);
    for (std::size_t s = 1; s < c.sequences; ++s) c.cu.push_back(static_cast<std::int64_t>(in.size_in(0, c.length)));
    c.cu.push_back(static_cast<std::int64_t>(c.length));
    if (in.byte() % 4 != 0) std::sort(c.cu.begin(), c.cu.end());
  }
  // 0: every shape right; 1..3: one shape wrong (out, A, initial_state); more: right.
  std::size_t wrong = in.byte() % 8;
  if (wrong > 3 || (wrong == 1 && c.dim < 2) || (wrong == 2 && c.nstate < 1) || (wrong == 3 && (!c.has_h0 || c.nstate == 0))) wrong = 0;  // an empty view is "not given"

  const std::size_t bdl = c.batch * c.dim * c.length, rows = c.batch * c.sequences;
  c.u = in.values<T>(bdl, -2, 2);
  c.delta = in.values<T>(bdl, c.softplus ? -3 : 0, c.softplus ? 1 : 0.5);
  c.A = in.values<T>(c.dim * c.nstate, -4, 0);
  c.B = in.values<T>(scan_case::count(c.bc_shape(c.b_mode, c.b_groups)), -2, 2);
  c.C = in.values<T>(scan_case::count(c.bc_shape(c.c_mode, c.c_groups)), -2, 2);
  c.D = in.values<T>(c.dim, -2, 2);
  c.z = in.values<T>(bdl, -2, 2);
  c.bias = in.values<T>(c.dim, c.softplus ? -1 : 0, 0.5);  // tame delta stays >= 0: no growth
  c.h0 = in.values<T>((rows + 1) * c.dim * c.nstate, -1, 1);

  std::vector<T> out(bdl, sentinel), last(rows * c.dim * c.nstate, sentinel);
  const bool ok = ssm_fuzz::run_checked<T>([&] { scan<ssmkit::default_arch>(c, out, last, wrong); }, {&out, &last},
                                           sentinel);
  if (wrong != 0 && ok) {  // a wrong shape was accepted
    std::fprintf(stderr, "wrong %zu accepted: batch %zu dim %zu L %zu N %zu modes %d %d groups %zu %zu h0 %d cu %zu\n", wrong, c.batch, c.dim, c.length, c.nstate, int(c.b_mode), int(c.c_mode), c.b_groups, c.c_groups, int(c.has_h0), c.cu.size());
    std::abort();
  }
  if (!ok || !in.tame()) return;
  std::vector<T> out_scalar(bdl, sentinel), last_scalar(rows * c.dim * c.nstate, sentinel);
  scan<ssmkit::scalar>(c, out_scalar, last_scalar, 0);
  ssm_fuzz::require_agreement(out, out_scalar, tolerance);
  if (c.has_last) ssm_fuzz::require_agreement(last, last_scalar, tolerance);
}

template <class Arch>
void decode(std::vector<T>& state, const scan_case& c, const std::vector<T>& x, const std::vector<T>& dt,
            std::vector<T>& out, std::size_t wrong) {
  ssmkit::selective_state_update_options<T, 3> o;
  if (c.has_D) o.D = ssmkit::make_view(c.D.data(), c.dim);
  if (c.has_z) o.z = ssmkit::make_view(c.z.data(), c.batch, c.dim);
  if (c.has_bias) o.dt_bias = ssmkit::make_view(c.bias.data(), c.dim);
  o.dt_softplus = c.softplus;
  ssmkit::selective_state_update<T, Arch>(
      ssmkit::make_view(state.data(), c.batch, c.dim, c.nstate), ssmkit::make_view(x.data(), c.batch, c.dim),
      ssmkit::make_view(dt.data(), c.batch, wrong == 1 ? c.dim + 1 : c.dim), ssmkit::make_view(c.A.data(), c.dim, c.nstate),
      ssmkit::make_view(c.B.data(), c.batch, c.nstate), ssmkit::make_view(c.C.data(), c.batch, c.nstate),
      ssmkit::make_view(out.data(), c.batch, c.dim), o);
}

void fuzz_decode(ssm_fuzz::fuzz_input& in) {
  scan_case c;
  c.batch = in.size_in(1, 3);
  c.dim = in.size_in(1, 40);
  c.nstate = in.size_in(0, 33);
  c.length = 1;
  c.has_D = in.flag();
  c.has_z = in.flag();
  c.has_bias = in.flag();
  c.softplus = in.flag();
  const std::size_t wrong = in.byte() % 4 == 1 ? 1 : 0;  // dt of the wrong width
  const std::size_t bd = c.batch * c.dim;
  c.A = in.values<T>(c.dim * c.nstate, -4, 0);
  c.B = in.values<T>(c.batch * c.nstate, -2, 2);
  c.C = in.values<T>(c.batch * c.nstate, -2, 2);
  c.D = in.values<T>(c.dim, -2, 2);
  c.z = in.values<T>(bd, -2, 2);
  c.bias = in.values<T>(c.dim, c.softplus ? -1 : 0, 0.5);  // tame delta stays >= 0: no growth
  const auto x = in.values<T>(bd, -2, 2);
  const auto dt = in.values<T>(bd + c.batch, c.softplus ? -3 : 0, c.softplus ? 1 : 0.5);
  const auto state0 = in.values<T>(bd * c.nstate, -1, 1);

  std::vector<T> state = state0, out(bd, sentinel);
  const bool ok = ssm_fuzz::run_checked<T>([&] { decode<ssmkit::default_arch>(state, c, x, dt, out, wrong); }, {&out},
                                           sentinel);
  if (wrong != 0 && ok) std::abort();
  if (!ok) {
    for (std::size_t i = 0; i < state.size(); ++i) {
      if (!(state[i] == state0[i]) && !(std::isnan(state[i]) && std::isnan(state0[i]))) std::abort();
    }
    return;
  }
  if (!in.tame()) return;
  std::vector<T> state_scalar = state0, out_scalar(bd, sentinel);
  decode<ssmkit::scalar>(state_scalar, c, x, dt, out_scalar, 0);
  ssm_fuzz::require_agreement(out, out_scalar, tolerance);
  ssm_fuzz::require_agreement(state, state_scalar, tolerance);
  // One decode step == a scan of one token from the same state (B and C variable).
  std::vector<T> out_scan(bd, sentinel), last(bd * c.nstate, sentinel);
  ssmkit::selective_scan_options<T> o;
  if (c.has_D) o.D = ssmkit::make_view(c.D.data(), c.dim);
  if (c.has_z) o.z = ssmkit::make_view(c.z.data(), c.batch, c.dim, 1);
  if (c.has_bias) o.delta_bias = ssmkit::make_view(c.bias.data(), c.dim);
  o.delta_softplus = c.softplus;
  o.initial_state = ssmkit::make_view(state0.data(), c.batch, c.dim, c.nstate);
  o.last_state = ssmkit::make_view(last.data(), c.batch, c.dim, c.nstate);
  ssmkit::selective_scan<T>(ssmkit::make_view(x.data(), c.batch, c.dim, 1), ssmkit::make_view(dt.data(), c.batch, c.dim, 1),
                            ssmkit::make_view(c.A.data(), c.dim, c.nstate), ssmkit::make_view(c.B.data(), c.batch, c.nstate, 1),
                            ssmkit::make_view(c.C.data(), c.batch, c.nstate, 1), ssmkit::make_view(out_scan.data(), c.batch, c.dim, 1),
                            o);
  ssm_fuzz::require_agreement(out, out_scan, tolerance);
  ssm_fuzz::require_agreement(state, last, tolerance);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ssm_fuzz::fuzz_input in(data, size);
  const std::uint8_t head = in.byte();
  in.set_tame((head & 2) == 0);
  if (head & 1) {
    fuzz_decode(in);
  } else {
    fuzz_scan(in);
  }
  return 0;
}
