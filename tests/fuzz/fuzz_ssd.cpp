// libFuzzer target: the Mamba-2 SSD scan (ssd_scan, both algorithms, any chunk size, every option,
// packed sequences by seq_idx) and its decode step ssd_step. The bytes choose the sizes, the
// options, sometimes one wrong shape, and the values (tame or wild, fuzz_input.hpp). Properties:
//   - a wrong shape throws ssmkit::error, and an error leaves every output untouched;
//   - tame inputs: the chunked path (any chunk size) agrees with the recurrent one, the SIMD
//     backend with the scalar one (normwise 1e-4 in float, NaN in the same places), and one
//     ssd_step equals a scan of one token from the same state;
//   - wild inputs (NaN, inf, subnormals, huge values): no crash, no out-of-bounds access (ASan).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <ssmkit/ssd.hpp>

#include "fuzz_input.hpp"

namespace {

using T = float;
constexpr T sentinel = T(-12345.5);
constexpr double tolerance = 1e-4;

struct ssd_case {
  std::size_t batch, length, heads, head_dim, groups, nstate;
  bool has_D, D_per_head, has_z, has_bias, softplus, has_limit, has_initial, has_final, has_seq_idx;
  T dt_min = 0, dt_max = 0;
  std::vector<T> x, dt, A, B, C, D, z, bias, initial;
  std::vector<std::int32_t> seq_idx;
};

template <class Arch>
void scan(const ssd_case& c, std::vector<T>& out, std::vector<T>& final_states, ssmkit::ssd_algorithm algorithm,
          std::size_t chunk, std::size_t wrong) {
  ssmkit::ssd_options<T> o;
  if (c.has_D) o.D = ssmkit::make_view(c.D.data(), c.heads, c.D_per_head ? 1 : c.head_dim);
  if (c.has_z) o.z = ssmkit::make_view(c.z.data(), c.batch, c.length, c.heads, c.head_dim);
  if (c.has_bias) o.dt_bias = ssmkit::make_view(c.bias.data(), c.heads);
  o.dt_softplus = c.softplus;
  if (c.has_limit) o.dt_min = c.dt_min, o.dt_max = c.dt_max;
  if (c.has_initial) o.initial_states = ssmkit::make_view(c.initial.data(), c.batch, c.heads, c.head_dim, c.nstate);
  if (c.has_final) o.final_states = ssmkit::make_view(final_states.data(), c.batch, c.heads, c.head_dim, c.nstate);
  if (c.has_seq_idx) o.seq_idx = ssmkit::make_view(c.seq_idx.data(), c.batch, c.length);
  o.algorithm = algorithm;
  o.chunk_size = chunk;
  const std::size_t out_heads = wrong == 1 ? c.heads - 1 : c.heads;
  ssmkit::ssd_scan<T, Arch>(ssmkit::make_view(c.x.data(), c.batch, c.length, c.heads, c.head_dim),
                            ssmkit::make_view(c.dt.data(), c.batch, c.length, c.heads),
                            ssmkit::make_view(c.A.data(), wrong == 2 ? c.heads + 1 : c.heads),
                            ssmkit::make_view(c.B.data(), c.batch, c.length, c.groups, c.nstate),
                            ssmkit::make_view(c.C.data(), c.batch, c.length, c.groups, c.nstate),
                            ssmkit::make_view(out.data(), c.batch, c.length, out_heads, c.head_dim), o);
}

ssd_case make_case(ssm_fuzz::fuzz_input& in, std::size_t max_length) {
  ssd_case c;
  c.batch = in.size_in(1, 2);
  c.length = in.size_in(0, max_length);
  c.groups = in.size_in(1, 3);
  c.heads = in.flag() ? c.groups * in.size_in(1, 3) : in.size_in(1, 6);  // G need not divide H: then an error
  c.head_dim = in.size_in(1, 20);
  c.nstate = in.size_in(0, 24);
  c.has_D = in.flag();
  c.D_per_head = in.flag();
  c.has_z = in.flag();
  c.has_bias = in.flag();
  c.softplus = in.flag();
  c.has_limit = in.flag();
  c.has_initial = in.flag();
  c.has_final = in.flag();
  c.has_seq_idx = in.flag();
  c.dt_min = in.value<T>(0, 0.2);  // may exceed dt_max: then an error
  c.dt_max = in.value<T>(0.1, 2);
  const std::size_t bl = c.batch * c.length, hp = c.heads * c.head_dim;
  c.x = in.values<T>(bl * hp, -2, 2);
  c.dt = in.values<T>(bl * c.heads, c.softplus ? -3 : 0, c.softplus ? 1 : 0.5);
  c.A = in.values<T>(c.heads + 1, -4, 0);
  c.B = in.values<T>(bl * c.groups * c.nstate, -2, 2);
  c.C = in.values<T>(bl * c.groups * c.nstate, -2, 2);
  c.D = in.values<T>(hp, -2, 2);
  c.z = in.values<T>(bl * hp, -2, 2);
  c.bias = in.values<T>(c.heads, c.softplus ? -1 : 0, 0.5);  // tame dt stays >= 0: no growth
  c.initial = in.values<T>(c.batch * hp * c.nstate, -1, 1);
  c.seq_idx.resize(bl);
  std::int32_t s = 0;
  for (auto& v : c.seq_idx) v = (s += in.byte() % 8 == 0);  // a new sequence now and then
  return c;
}

void fuzz_scan(ssm_fuzz::fuzz_input& in) {
  const ssd_case c = make_case(in, 100);
  const auto algorithm = static_cast<ssmkit::ssd_algorithm>(in.byte() % 3);
  const std::size_t chunk = in.size_in(0, 40);  // 0: the default
  std::size_t wrong = in.byte() % 8;            // 1: out with H - 1 heads, 2: A with H + 1
  if (wrong > 2 || (wrong == 1 && c.heads < 2)) wrong = 0;
  const std::size_t out_size = c.batch * c.length * c.heads * c.head_dim, state_size = c.batch * c.heads * c.head_dim * c.nstate;
  std::vector<T> out(out_size, sentinel), final_states(state_size, sentinel);
  const bool ok = ssm_fuzz::run_checked<T>(
      [&] { scan<ssmkit::default_arch>(c, out, final_states, algorithm, chunk, wrong); }, {&out, &final_states}, sentinel);
  if (wrong != 0 && ok) std::abort();  // a wrong shape was accepted
  if (!ok || !in.tame()) return;
  // Every other algorithm and backend gives the same result.
  const std::pair<ssmkit::ssd_algorithm, bool> others[] = {{ssmkit::ssd_algorithm::recurrent, false},
                                                           {ssmkit::ssd_algorithm::chunked, false},
                                                           {ssmkit::ssd_algorithm::recurrent, true}};
  for (const auto& [other, scalar] : others) {
    std::vector<T> out2(out_size, sentinel), final2(state_size, sentinel);
    if (scalar) {
      scan<ssmkit::scalar>(c, out2, final2, other, chunk, 0);
    } else {
      scan<ssmkit::default_arch>(c, out2, final2, other, chunk, 0);
    }
    ssm_fuzz::require_agreement(out, out2, tolerance);
    if (c.has_final) ssm_fuzz::require_agreement(final_states, final2, tolerance);
  }
}

void fuzz_step(ssm_fuzz::fuzz_input& in) {
  ssd_case c = make_case(in, 1);
  c.length = 1;
  c.has_seq_idx = false;
  c.has_initial = true;
  c.has_final = true;
  const std::size_t bl = c.batch, hp = c.heads * c.head_dim;
  c.x.resize(bl * hp), c.dt.resize(bl * c.heads), c.B.resize(bl * c.groups * c.nstate);
  c.C.resize(bl * c.groups * c.nstate), c.z.resize(bl * hp);
  const bool wrong = in.byte() % 4 == 1;  // B with one state too many
  if (wrong) c.B.resize(bl * c.groups * (c.nstate + 1));
  std::vector<T> state = c.initial, out(bl * hp, sentinel);
  ssmkit::ssd_step_options<T> o;
  if (c.has_D) o.D = ssmkit::make_view(c.D.data(), c.heads, c.D_per_head ? 1 : c.head_dim);
  if (c.has_z) o.z = ssmkit::make_view(c.z.data(), c.batch, c.heads, c.head_dim);
  if (c.has_bias) o.dt_bias = ssmkit::make_view(c.bias.data(), c.heads);
  o.dt_softplus = c.softplus;
  if (c.has_limit) o.dt_min = c.dt_min, o.dt_max = c.dt_max;
  const bool ok = ssm_fuzz::run_checked<T>(
      [&] {
        ssmkit::ssd_step<T>(ssmkit::make_view(state.data(), c.batch, c.heads, c.head_dim, c.nstate),
                            ssmkit::make_view(c.x.data(), c.batch, c.heads, c.head_dim),
                            ssmkit::make_view(c.dt.data(), c.batch, c.heads), ssmkit::make_view(c.A.data(), c.heads),
                            ssmkit::make_view(c.B.data(), c.batch, c.groups, wrong ? c.nstate + 1 : c.nstate),
                            ssmkit::make_view(c.C.data(), c.batch, c.groups, c.nstate),
                            ssmkit::make_view(out.data(), c.batch, c.heads, c.head_dim), o);
      },
      {&out}, sentinel);
  if (wrong && ok) std::abort();
  if (!ok) {
    for (std::size_t i = 0; i < state.size(); ++i) {
      if (!(state[i] == c.initial[i]) && !(std::isnan(state[i]) && std::isnan(c.initial[i]))) std::abort();
    }
    return;
  }
  if (!in.tame()) return;
  std::vector<T> out_scan(bl * hp, sentinel), final_states(state.size(), sentinel);
  scan<ssmkit::default_arch>(c, out_scan, final_states, ssmkit::ssd_algorithm::recurrent, 0, 0);
  ssm_fuzz::require_agreement(out, out_scan, tolerance);
  ssm_fuzz::require_agreement(state, final_states, tolerance);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ssm_fuzz::fuzz_input in(data, size);
  const std::uint8_t head = in.byte();
  in.set_tame((head & 2) == 0);
  if (head & 1) {
    fuzz_step(in);
  } else {
    fuzz_scan(in);
  }
  return 0;
}
