// Error-message quality, in one table: every public entry point that validates its arguments is
// called once with a representative bad argument, and the test checks
//   - the exception type: ssmkit::error, caught as std::invalid_argument (its base);
//   - the full message: the function's name, the argument's name, and the expected and the given
//     shape or value ("selective_scan: delta has shape (2, 3, 7), expected (2, 3, 8)");
//   - that nothing was written: every output (and in/out state) buffer is filled with a sentinel
//     before the call and still holds it after.
// One TEST_CASE per public header, one SECTION per entry point (overloads that validate through
// different code get their own SECTION). The parsers of files (safetensors, golden cases) name
// the file or case instead of a function, by design: their messages start with that context.
#include <algorithm>
#include <complex>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <ssmkit/activation.hpp>
#include <ssmkit/conv1d.hpp>
#include <ssmkit/discretize.hpp>
#include <ssmkit/fft.hpp>
#include <ssmkit/fft_conv.hpp>
#include <ssmkit/fft_conv_stream.hpp>
#include <ssmkit/golden_case.hpp>
#include <ssmkit/hippo.hpp>
#include <ssmkit/long_conv.hpp>
#include <ssmkit/mamba.hpp>
#include <ssmkit/mamba2.hpp>
#include <ssmkit/parallel.hpp>
#include <ssmkit/s4_dplr.hpp>
#include <ssmkit/s4_ptd.hpp>
#include <ssmkit/s4d.hpp>
#include <ssmkit/s4d_init.hpp>
#include <ssmkit/s4d_layer.hpp>
#include <ssmkit/safetensors.hpp>
#include <ssmkit/selective_scan.hpp>
#include <ssmkit/ssd.hpp>
#include <ssmkit/view.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace {

using cf = std::complex<float>;
using ssmkit::make_view;

// Calls f, which must throw ssmkit::error with exactly `expected` as its message. The handler is
// std::invalid_argument's, as a caller that knows nothing of ssmkit would write it; any other
// exception type escapes and fails the test.
template <class F>
void check_error(F&& f, const std::string& expected) {
  INFO("expected: " << expected);
  try {
    f();
  } catch (const std::invalid_argument& e) {
    CHECK(dynamic_cast<const ssmkit::error*>(&e) != nullptr);
    CHECK(std::string(e.what()) == expected);
    return;
  }
  FAIL("no exception thrown");
}

// Output buffers start as this value; a rejected call must leave them so.
constexpr float sentinel_value = -1234.5f;

template <class T>
std::vector<T> sentinel(std::size_t n) {
  return std::vector<T>(n, T(sentinel_value));
}

template <class T>
bool untouched(const std::vector<T>& v) {
  return std::all_of(v.begin(), v.end(), [](const T& x) { return x == T(sentinel_value); });
}

std::vector<float> values(std::size_t n, std::uint32_t seed = 1) {
  return ssm_test::uniform<float>(n, 0.1, 1, seed);
}

std::vector<cf> complex_values(std::size_t n, std::uint32_t seed = 2) {
  const auto r = ssm_test::uniform<float>(2 * n, -1, 1, seed);
  std::vector<cf> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = {r[2 * i], r[2 * i + 1]};
  return v;
}

}  // namespace

TEST_CASE("ssmkit::error derives from std::invalid_argument", "[errors]") {
  STATIC_REQUIRE(std::is_base_of_v<std::invalid_argument, ssmkit::error>);
}

TEST_CASE("error messages: view.hpp", "[errors]") {
  std::vector<float> v(5, 1.0f);
  SECTION("make_view (vector)") {
    check_error([&] { (void)make_view(v, 2, 3); },
                "make_view: vector of size 5 cannot be viewed with shape (2, 3) (6 elements)");
  }
  SECTION("make_view (const vector)") {
    const std::vector<float>& cv = v;
    check_error([&] { (void)make_view(cv, 6); },
                "make_view: vector of size 5 cannot be viewed with shape (6) (6 elements)");
  }
  SECTION("tensor_view::at") {
    check_error([&] { (void)make_view(v.data(), 1, 5).at(0, 5); },
                "tensor_view::at: index 5 out of range for dimension 1 of shape (1, 5)");
  }
  SECTION("tensor_view::permuted") {
    check_error(
        [&] {
          (void)make_view(v.data(), 1, 5).permuted({1, 1});
        },
        "tensor_view::permuted: order (1, 1) is not a permutation of 0..1");
  }
  SECTION("make_vector_view") {
    Eigen::MatrixXf m = Eigen::MatrixXf::Zero(2, 2);
    check_error([&] { (void)ssmkit::make_vector_view(m); }, "make_vector_view: expected a vector, got shape (2, 2)");
  }
}

TEST_CASE("error messages: parallel.hpp", "[errors]") {
  SECTION("parallel_for") {
    bool called = false;
    ssmkit::parallel_options options;
    options.num_threads = -1;
    check_error(
        [&] {
          ssmkit::parallel_for(
              0, 10, [&](int) { called = true; }, options);
        },
        "parallel_for: num_threads must be >= 0, got -1");
    options.num_threads = 1;
    options.min_block = 0;
    check_error(
        [&] {
          ssmkit::parallel_for(
              0, 10, [&](int) { called = true; }, options);
        },
        "parallel_for: min_block must be >= 1, got 0");
    CHECK_FALSE(called);
  }
}

TEST_CASE("error messages: activation.hpp", "[errors]") {
  const auto x = values(6);
  SECTION("softplus") {
    auto y = sentinel<float>(8);
    check_error([&] { ssmkit::softplus<float>(make_view(x, 2, 3), make_view(y, 2, 4)); },
                "softplus: y has shape (2, 4), expected (2, 3)");
    CHECK(untouched(y));
  }
  SECTION("silu") {
    // y = buffer[2..8) partially overlaps x = buffer[0..6): the kernel would read what it wrote.
    auto buffer = sentinel<float>(8);
    check_error([&] { ssmkit::silu<float>(make_view(buffer.data(), 6), make_view(buffer.data() + 2, 6)); },
                "silu: y overlaps x in memory");
    CHECK(untouched(buffer));
  }
  SECTION("sigmoid") {
    auto y = sentinel<float>(6);
    check_error(
        [&] {
          ssmkit::sigmoid<float>(ssmkit::tensor_view<const float, 2>(nullptr, {2, 3}), make_view(y, 2, 3));
        },
        "sigmoid: x is a null view of shape (2, 3)");
    CHECK(untouched(y));
  }
}

TEST_CASE("error messages: conv1d.hpp", "[errors]") {
  SECTION("causal_conv1d") {
    const auto x = values(20), w = values(6);
    auto y = sentinel<float>(20);
    check_error(
        [&] { ssmkit::causal_conv1d<float>(make_view(x, 1, 5, 4), make_view(w, 3, 2), {}, make_view(y, 1, 5, 4)); },
        "causal_conv1d: weight has shape (3, 2), expected (4, W)");
    CHECK(untouched(y));
  }
  SECTION("causal_conv1d_update") {
    const auto x = values(4), w = values(12);
    auto state = sentinel<float>(4), y = sentinel<float>(4);
    check_error(
        [&] {
          ssmkit::causal_conv1d_update<float>(make_view(x, 1, 4), make_view(state, 1, 4, 1), make_view(w, 4, 3), {},
                                              make_view(y, 1, 4));
        },
        "causal_conv1d_update: conv_state has shape (1, 4, 1), expected (1, 4, 2)");
    CHECK(untouched(state));
    CHECK(untouched(y));
  }
}

TEST_CASE("error messages: discretize.hpp", "[errors]") {
  using cd = std::complex<double>;
  SECTION("parse_discretization") {
    check_error([] { (void)ssmkit::parse_discretization("euler"); },
                "parse_discretization: unknown discretization 'euler' (expected zoh, bilinear or dss)");
  }
  SECTION("discretize_mode") {
    check_error([] { (void)ssmkit::discretize_mode(ssmkit::discretization::zoh, -1.0, cd(-0.5, 1)); },
                "discretize_mode: dt must be positive and finite, got -1");
  }
  SECTION("discretize_step") {
    check_error([] { (void)ssmkit::discretize_step(ssmkit::discretization::dss, 0.1, cd(-0.5, 1)); },
                "discretize_step: the dss discretization has no recurrent form (use zoh or bilinear)");
  }
  SECTION("discretize_dplr_bilinear") {
    const Eigen::VectorXcd Lambda = Eigen::VectorXcd::Constant(2, cd(-0.5, 1)), B = Eigen::VectorXcd::Ones(2);
    const Eigen::MatrixXcd P = Eigen::MatrixXcd::Ones(1, 3);
    check_error([&] { (void)ssmkit::discretize_dplr_bilinear(0.1, Lambda, P, B); },
                "discretize_dplr_bilinear: P has shape (1, 3), expected (rank, 2)");
    check_error([&] { (void)ssmkit::discretize_dplr_bilinear(0.1, Eigen::VectorXcd(), P, B); },
                "discretize_dplr_bilinear: Lambda must have at least one mode, got 0");
  }
  SECTION("dense_kernel") {
    const Eigen::VectorXcd Lambda = Eigen::VectorXcd::Constant(2, cd(-0.5, 1)), B = Eigen::VectorXcd::Ones(2);
    const auto system = ssmkit::discretize_dplr_bilinear(0.1, Lambda, Eigen::MatrixXcd::Zero(1, 2), B);
    check_error([&] { (void)ssmkit::dense_kernel(system, Eigen::VectorXcd::Ones(3), 8); },
                "dense_kernel: dA has shape (4, 4), dB size 4 and C size 3, expected (N, N), N and N with N = 4");
  }
  SECTION("dplr_C_tilde") {
    const Eigen::VectorXcd Lambda = Eigen::VectorXcd::Constant(2, cd(-0.5, 1)), B = Eigen::VectorXcd::Ones(2);
    const auto system = ssmkit::discretize_dplr_bilinear(0.1, Lambda, Eigen::MatrixXcd::Zero(1, 2), B);
    check_error([&] { (void)ssmkit::dplr_C_tilde(system, Eigen::VectorXcd::Ones(3), 8); },
                "dplr_C_tilde: C has size 3, expected 2");
  }
}

TEST_CASE("error messages: fft.hpp", "[errors]") {
  const std::vector<cf> x = complex_values(8);
  std::vector<float> scratch(64, 0.0f);
  SECTION("next_fast_len") {
    check_error([] { (void)ssmkit::next_fast_len(std::numeric_limits<std::size_t>::max()); },
                "next_fast_len: n = " + std::to_string(std::numeric_limits<std::size_t>::max()) + " is too large");
  }
  SECTION("fft_plan (constructor)") {
    check_error([] { (void)ssmkit::fft_plan<float>(7); },
                "fft_plan: size 7 is not of the form 2^a 3^b 5^c (next_fast_len gives 8)");
  }
  SECTION("fft_plan::forward") {
    const ssmkit::fft_plan<float> plan(8);
    auto y = sentinel<cf>(7);
    check_error([&] { plan.forward(make_view(x, 8), make_view(y, 7), make_view(scratch, 64)); },
                "fft_plan::forward: y has shape (7), expected (8)");
    CHECK(untouched(y));
    // A scratch with stride 2: the transform needs 4n contiguous elements.
    auto z = sentinel<cf>(8);
    check_error(
        [&] {
          plan.forward(make_view(x, 8), make_view(z, 8), ssmkit::tensor_view<float, 1>(scratch.data(), {32}, {2}));
        },
        "fft_plan::forward: scratch has stride 2, expected 1");
    check_error([&] { plan.forward(ssmkit::tensor_view<const cf, 1>(nullptr, {8}), make_view(z, 8)); },
                "fft_plan::forward: x is a null view of shape (8)");
    CHECK(untouched(z));
  }
  SECTION("fft_plan::backward") {
    const ssmkit::fft_plan<float> plan(8);
    auto y = sentinel<cf>(8);
    check_error([&] { plan.backward(make_view(x, 8), make_view(y, 8), make_view(scratch.data(), 3)); },
                "fft_plan::backward: scratch has shape (3), expected (>= 32)");
    check_error([&] { plan.backward(make_view(x.data(), 4), make_view(y, 8)); },
                "fft_plan::backward: x has shape (4), expected (8)");
    CHECK(untouched(y));
  }
  SECTION("rfft_plan (constructor)") {
    check_error([] { (void)ssmkit::rfft_plan<float>(0); }, "rfft_plan: size must be >= 1, got 0");
  }
  SECTION("rfft_plan::forward") {
    const ssmkit::rfft_plan<float> plan(8);
    const auto r = values(8);
    auto X = sentinel<cf>(4);
    check_error([&] { plan.forward(make_view(r, 8), make_view(X, 4), make_view(scratch, 64)); },
                "rfft_plan::forward: X has shape (4), expected (5)");
    check_error([&] { plan.forward(make_view(r, 8), make_view(X, 4)); },
                "rfft_plan::forward: X has shape (4), expected (5)");
    CHECK(untouched(X));
  }
  SECTION("rfft_plan::backward") {
    const ssmkit::rfft_plan<float> plan(8);
    auto out = sentinel<float>(7);
    check_error([&] { plan.backward(make_view(x.data(), 5), make_view(out, 7), make_view(scratch, 64)); },
                "rfft_plan::backward: x has shape (7), expected (8)");
    check_error([&] { plan.backward(make_view(x.data(), 5), make_view(out, 7)); },
                "rfft_plan::backward: x has shape (7), expected (8)");
    CHECK(untouched(out));
  }
}

TEST_CASE("error messages: fft_conv.hpp", "[errors]") {
  const auto u = values(16), k = values(18), D = values(3);
  auto y = sentinel<float>(24);
  SECTION("fft_conv_plan (rank-3 kernel)") {
    check_error([&] { (void)ssmkit::fft_conv_plan<float>(make_view(k, 1, 2, 9), 8); },
                "fft_conv_plan: k has shape (1, 2, 9), expected (1, 2, <= 8)");
  }
  SECTION("fft_conv_plan (rank-2 kernel)") {
    check_error([&] { (void)ssmkit::fft_conv_plan<float>(make_view(k.data(), 2, 3), 0); },
                "fft_conv_plan: L must be >= 1, got 0");
  }
  SECTION("fft_conv_plan::forward") {
    const ssmkit::fft_conv_plan<float> plan(make_view(k.data(), 1, 2, 3), 8);
    ssmkit::fft_conv_workspace<float> ws;
    check_error([&] { plan.forward(make_view(u, 1, 8, 2), make_view(y, 1, 8, 3), {}, ws); },
                "fft_conv_plan: y has shape (1, 8, 3), expected (1, 8, 2)");
    check_error([&] { plan.forward(make_view(u, 1, 8, 2), make_view(y.data(), 1, 8, 2), make_view(D, 1, 3)); },
                "fft_conv_plan: D has shape (1, 3), expected (1, 2)");
    CHECK(untouched(y));
  }
  SECTION("fft_conv (rank-3 kernel)") {
    check_error(
        [&] {
          ssmkit::fft_conv<float>(make_view(u, 1, 8, 2), make_view(k, 1, 2, 9), {}, make_view(y.data(), 1, 8, 2));
        },
        "fft_conv: k has shape (1, 2, 9), expected (1, 2, <= 8)");
    CHECK(untouched(y));
  }
  SECTION("fft_conv (rank-2 kernel)") {
    check_error(
        [&] {
          ssmkit::fft_conv<float>(make_view(u, 1, 8, 2), make_view(k.data(), 2, 3), make_view(D, 3),
                                  make_view(y.data(), 1, 8, 2));
        },
        "fft_conv: D has shape (3), expected (2)");
    CHECK(untouched(y));
  }
}

TEST_CASE("error messages: fft_conv_stream.hpp", "[errors]") {
  const auto u = values(10), k = values(6), D = values(3);
  ssmkit::fft_conv_stream_options options;
  options.block = 8;
  SECTION("fft_conv_stream (constructor)") {
    options.block = 7;
    check_error([&] { (void)ssmkit::fft_conv_stream<float>(make_view(k, 2, 3), {}, 1, options); },
                "fft_conv_stream: block 7 is not of the form 2^a 3^b 5^c (next_fast_len gives 8)");
  }
  SECTION("fft_conv_stream::process") {
    ssmkit::fft_conv_stream<float> stream(make_view(k, 2, 3), {}, 1, options);
    auto y = sentinel<float>(8);
    check_error([&] { stream.process(make_view(u, 1, 5, 2), make_view(y, 1, 4, 2)); },
                "fft_conv_stream::process: y has shape (1, 4, 2), expected (1, 5, 2)");
    CHECK(untouched(y));
    CHECK(stream.position() == 0);  // the stream did not advance
  }
  SECTION("fft_conv_blocked") {
    // fft_conv_blocked validates through the stream it builds, whose name its messages carry.
    auto y = sentinel<float>(10);
    check_error(
        [&] {
          ssmkit::fft_conv_blocked<float>(make_view(u, 1, 5, 2), make_view(k, 2, 3), make_view(D, 3),
                                          make_view(y, 1, 5, 2), options);
        },
        "fft_conv_stream: D has shape (3), expected (2)");
    CHECK(untouched(y));
  }
}

TEST_CASE("error messages: golden_case.hpp", "[errors]") {
  ssmkit::golden::golden_case c;
  c.name = "g";
  SECTION("golden_case::input") {
    check_error([&] { (void)c.input("x"); }, "golden case g: input 'x' is missing");
  }
  SECTION("golden_case::output") {
    check_error([&] { (void)c.output("y"); }, "golden case g: output 'y' is missing");
  }
  SECTION("golden_case::param_bool, param_number, param_string") {
    c.params = ssmkit::detail::json::parse(R"({"flag": 1, "n": "x", "s": true})", "params");
    check_error([&] { (void)c.param_bool("flag", false); },
                "golden case g: params.flag must be a boolean, got a number");
    check_error([&] { (void)c.param_number("n", 0); }, "golden case g: params.n must be a number, got a string");
    check_error([&] { (void)c.param_string("s", ""); }, "golden case g: params.s must be a string, got a boolean");
  }
  SECTION("parse_case") {
    const auto no_files = [](const std::string&, std::size_t) -> std::string { return {}; };
    check_error([&] { (void)ssmkit::golden::parse_case("{}", "g", no_files); },
                "golden case g: case.json has no 'kernel'");
    check_error(
        [&] { (void)ssmkit::golden::parse_case(R"({"kernel": "k", "tolerance": {"rtol": -1}})", "g", no_files); },
        "golden case g: tolerance must be non-negative");
  }
  SECTION("load_case") {
    // The message names the case, the file and the operating system's reason (not portable text).
    try {
      (void)ssmkit::golden::load_case("/nonexistent/ssmkit-case");
      FAIL("no exception thrown");
    } catch (const ssmkit::error& e) {
      const std::string message = e.what();
      CHECK(message.rfind("golden case ssmkit-case: case.json: cannot read /nonexistent/ssmkit-case/case.json (", 0) ==
            0);
    }
  }
  SECTION("list_cases") {
    check_error([] { (void)ssmkit::golden::list_cases("/nonexistent/ssmkit-cases"); },
                "golden: /nonexistent/ssmkit-cases is not a directory");
  }
}

TEST_CASE("error messages: hippo.hpp", "[errors]") {
  namespace hippo = ssmkit::hippo;
  const std::string measures =
      "(expected legs, legt, lmu, lagt, tlagt, glagt, legsd, fout/fourier, foud/fourier_diag, fourier_decay or "
      "fourier2)";
  SECTION("hippo::parse_measure") {
    check_error([] { (void)hippo::parse_measure("random"); },
                "hippo::parse_measure: unknown measure 'random' " + measures);
  }
  SECTION("hippo::transition (measure)") {
    check_error([] { (void)hippo::transition(hippo::measure::legs, 0); }, "hippo::transition: N must be >= 1, got 0");
  }
  SECTION("hippo::transition (name)") {
    check_error([] { (void)hippo::transition("fourier", 5); },
                "hippo::transition: N must be even for measure fout, got 5");
  }
  SECTION("hippo::rank_correction (measure)") {
    check_error([] { (void)hippo::rank_correction(hippo::measure::legt, 4, 1); },
                "hippo::rank_correction: measure legt needs rank >= 2, got 1");
  }
  SECTION("hippo::rank_correction (name)") {
    check_error(
        [] { (void)hippo::rank_correction("lmu", 4); },
        "hippo::rank_correction: measure lmu has no rank correction (defined for legs, legt, lagt, legsd and the "
        "Fourier measures)");
  }
  SECTION("hippo::nplr (measure)") {
    check_error([] { (void)hippo::nplr(hippo::measure::legs, 2); }, "hippo::nplr: N must be >= 4, got 2");
  }
  SECTION("hippo::nplr (name)") {
    check_error([] { (void)hippo::nplr("fourier", 5); }, "hippo::nplr: N must be even for measure fout, got 5");
  }
}

TEST_CASE("error messages: long_conv.hpp", "[errors]") {
  const auto k = values(8), D = values(3), u = values(14);
  SECTION("squash") {
    auto out = sentinel<float>(8);
    check_error([&] { ssmkit::squash<float>(make_view(k, 1, 2, 4), make_view(out, 1, 2, 4), -1.0f); },
                "squash: lambda must be >= 0, got -1");
    CHECK(untouched(out));
  }
  SECTION("smooth") {
    auto out = sentinel<float>(8);
    check_error([&] { ssmkit::smooth<float>(make_view(k, 1, 2, 4), make_view(out, 1, 2, 4), 2); },
                "smooth: window must be odd, got 2");
    check_error([&] { ssmkit::smooth<float>(make_view(k, 1, 2, 4), make_view(out.data(), 1, 4, 2), 3); },
                "smooth: out has shape (1, 4, 2), expected (1, 2, 4)");
    CHECK(untouched(out));
  }
  SECTION("long_conv_layer (constructor)") {
    check_error([&] { (void)ssmkit::long_conv_layer<float>(make_view(k, 1, 2, 4), make_view(D, 1, 3), 8); },
                "long_conv_layer: D has shape (1, 3), expected (1, 2)");
    check_error(
        [&] {
          (void)ssmkit::long_conv_layer<float>(make_view(k, 1, 2, 4), {}, 8, {0.0, 2});
        },
        "long_conv_layer: smooth_window must be odd, got 2");
    check_error([&] { (void)ssmkit::long_conv_layer<float>(make_view(k, 1, 2, 4), {}, 3); },
                "long_conv_layer: k has shape (1, 2, 4), expected (1, 2, <= 3)");
  }
  SECTION("long_conv_layer::forward") {
    const ssmkit::long_conv_layer<float> layer(make_view(k, 1, 2, 4), {}, 8);
    ssmkit::fft_conv_workspace<float> ws;
    auto y = sentinel<float>(16);
    check_error([&] { layer.forward(make_view(u, 1, 7, 2), make_view(y, 1, 8, 2), ws); },
                "long_conv_layer: u has shape (1, 7, 2), expected (1, 8, 2)");
    CHECK(untouched(y));
  }
}

namespace {

ssmkit::mamba_config small_mamba() {
  ssmkit::mamba_config c;
  c.d_model = 4;  // d_inner 8, dt_rank 1
  c.d_state = 2;
  return c;
}

ssmkit::mamba2_config small_mamba2() {
  ssmkit::mamba2_config c;
  c.d_model = 16;  // d_inner 32 = 4 heads of 8
  c.d_state = 6;
  c.headdim = 8;
  c.ngroups = 2;
  return c;
}

// A safetensors file with one tensor that no mixer or model needs.
ssmkit::safetensors::file unrelated_file() {
  return ssmkit::safetensors::file::parse(ssmkit::safetensors::serialize<float>({{"other", {1}, {1.0f}}}), "t");
}

}  // namespace

TEST_CASE("error messages: mamba.hpp", "[errors]") {
  const auto c = small_mamba();
  const auto mixer = ssmkit::mamba_mixer<float>::random(c);
  const auto x = values(20);
  SECTION("mamba_mixer (constructor)") {
    auto w = mixer.weights();
    w.in_proj.resize(7, 4);
    check_error([&] { (void)ssmkit::mamba_mixer<float>(c, w); },
                "mamba_mixer: in_proj has shape (7, 4), expected (16, 4)");
  }
  SECTION("mamba_mixer::random") {
    auto bad = c;
    bad.d_conv = 9;
    check_error([&] { (void)ssmkit::mamba_mixer<float>::random(bad); }, "mamba_mixer: d_conv must be 1 to 8, got 9");
  }
  SECTION("mamba_mixer::load") {
    check_error([&] { (void)ssmkit::mamba_mixer<float>::load(unrelated_file(), "m.", c); },
                "t: no tensor 'm.in_proj.weight'");
  }
  SECTION("mamba_mixer::forward") {
    ssmkit::mamba_workspace<float> ws;
    auto out = sentinel<float>(16);
    check_error([&] { mixer.forward(make_view(x, 1, 5, 4), make_view(out, 1, 4, 4), ws); },
                "mamba_mixer::forward: out has shape (1, 4, 4), expected (1, 5, 4)");
    CHECK(untouched(out));
  }
  SECTION("mamba_mixer::step") {
    auto state = mixer.make_state(1);
    auto out = sentinel<float>(8);
    check_error([&] { mixer.step(make_view(x.data(), 2, 4), make_view(out, 2, 4), state); },
                "mamba_mixer::step: x has shape (2, 4), expected (1, 4)");
    check_error(
        [&] {
          mixer.step(ssmkit::tensor_view<const float, 2>(x.data(), {1, 4}, {8, 2}), make_view(out.data(), 1, 4), state);
        },
        "mamba_mixer::step: x and out need contiguous channels (stride 1 along d_model), got strides 2 and 1");
    CHECK(untouched(out));
    CHECK(std::all_of(state.ssm.begin(), state.ssm.end(), [](float v) { return v == 0; }));
    CHECK(std::all_of(state.conv.begin(), state.conv.end(), [](float v) { return v == 0; }));
  }
  SECTION("mamba_model (constructor)") {
    check_error(
        [] {
          (void)ssmkit::mamba_model<float>(ssmkit::row_matrix<float>::Zero(10, 4), {},
                                           ssmkit::column_vector<float>::Ones(4));
        },
        "mamba_model: needs at least one layer, got 0");
    std::vector<ssmkit::mamba_model<float>::layer> layers{{ssmkit::column_vector<float>::Ones(3), mixer}};
    check_error(
        [&] {
          (void)ssmkit::mamba_model<float>(ssmkit::row_matrix<float>::Zero(10, 4), layers,
                                           ssmkit::column_vector<float>::Ones(4));
        },
        "mamba_model: every layer needs d_model = 4, got a layer with d_model = 4 and a norm of size 3");
  }
  SECTION("mamba_model::random") {
    check_error([&] { (void)ssmkit::mamba_model<float>::random(c, 0, 1); },
                "mamba_model: embedding has shape (0, 4), expected (vocab, 4)");
  }
  SECTION("mamba_model::load") {
    check_error([&] { (void)ssmkit::mamba_model<float>::load(unrelated_file(), c, 1); },
                "t: no tensor 'backbone.embedding.weight'");
  }
  SECTION("mamba_model::forward") {
    const auto model = ssmkit::mamba_model<float>::random(c, 10, 1);
    const std::vector<std::int32_t> tokens{0, 99};
    ssmkit::mamba_model_workspace<float> ws;
    auto logits = sentinel<float>(20);
    check_error([&] { model.forward(make_view(tokens, 1, 2), make_view(logits, 1, 2, 10), ws); },
                "mamba_model::forward: token 99 at (0, 1) is outside [0, 10)");
    check_error(
        [&] { model.forward(make_view(tokens, 1, 2), make_view(logits.data(), 1, 10, 2).transposed(1, 2), ws); },
        "mamba_model::forward: logits need a contiguous vocabulary dimension (stride 1), got stride 2");
    CHECK(untouched(logits));
  }
  SECTION("mamba_model::step") {
    const auto model = ssmkit::mamba_model<float>::random(c, 10, 1);
    auto state = model.make_state(1);
    const std::vector<std::int32_t> tokens{0, 1};
    auto logits = sentinel<float>(20);
    check_error([&] { model.step(make_view(tokens, 2), make_view(logits, 2, 10), state); },
                "mamba_model::step: tokens has shape (2), expected (1)");
    CHECK(untouched(logits));
  }
}

TEST_CASE("error messages: mamba2.hpp", "[errors]") {
  const auto c = small_mamba2();
  const auto mixer = ssmkit::mamba2_mixer<float>::random(c);
  const auto u = values(5 * 16);
  SECTION("mamba2_mixer (constructor)") {
    auto w = mixer.weights();
    w.D.resize(3);
    check_error([&] { (void)ssmkit::mamba2_mixer<float>(c, w); }, "mamba2_mixer: D has shape (3, 1), expected (4, 1)");
  }
  SECTION("mamba2_mixer::random") {
    auto bad = c;
    bad.ngroups = 3;
    check_error([&] { (void)ssmkit::mamba2_mixer<float>::random(bad); },
                "mamba2_mixer: ngroups = 3 does not divide nheads = 4");
  }
  SECTION("mamba2_mixer::load") {
    check_error([&] { (void)ssmkit::mamba2_mixer<float>::load(unrelated_file(), "m.", c); },
                "t: no tensor 'm.in_proj.weight'");
  }
  SECTION("mamba2_mixer::forward") {
    ssmkit::mamba2_workspace<float> ws;
    auto out = sentinel<float>(64);
    check_error([&] { mixer.forward(make_view(u, 1, 5, 16), make_view(out, 1, 4, 16), ws); },
                "mamba2_mixer::forward: out has shape (1, 4, 16), expected (1, 5, 16)");
    check_error(
        [&] { mixer.forward(make_view(u.data(), 1, 16, 4).transposed(1, 2), make_view(out, 1, 4, 16), ws); },
        "mamba2_mixer::forward: u and out need contiguous channels (stride 1 along d_model), got strides 4 and 1");
    CHECK(untouched(out));
  }
  SECTION("mamba2_mixer::step") {
    auto state = mixer.make_state(1);
    auto out = sentinel<float>(32);
    check_error([&] { mixer.step(make_view(u.data(), 2, 16), make_view(out, 2, 16), state); },
                "mamba2_mixer::step: u has shape (2, 16), expected (1, 16)");
    CHECK(untouched(out));
    CHECK(std::all_of(state.ssm.begin(), state.ssm.end(), [](float v) { return v == 0; }));
  }
}

namespace {

// A small DPLR system: H = 2, N2 = 3, rank 1, 2 channels.
struct dplr_inputs {
  std::vector<float> dt = std::vector<float>(2, 0.05f);
  std::vector<cf> Lambda = std::vector<cf>(6, cf(-0.5f, 1.0f));
  std::vector<cf> P = complex_values(6, 3), B = complex_values(6, 4), C = complex_values(12, 5);
};

}  // namespace

TEST_CASE("error messages: s4_dplr.hpp", "[errors]") {
  const dplr_inputs in;
  const auto dt = make_view(in.dt, 2, 1);
  const auto Lambda = make_view(in.Lambda, 2, 3);
  const auto B = make_view(in.B, 2, 3);
  const auto C = make_view(in.C, 2, 2, 3);
  SECTION("s4_dplr_kernel") {
    auto K = sentinel<float>(2 * 2 * 8);
    check_error(
        [&] {
          ssmkit::s4_dplr_kernel<float>(dt, Lambda, make_view(in.P.data(), 1, 2, 2), B, C, make_view(K, 2, 2, 8));
        },
        "s4_dplr_kernel: P has shape (1, 2, 2), expected (rank, 2, 3) (the rank is its first extent)");
    CHECK(untouched(K));
  }
  SECTION("s4_dplr_c_tilde") {
    auto C_tilde = sentinel<cf>(12);
    check_error(
        [&] {
          ssmkit::s4_dplr_c_tilde<float>(dt, Lambda, make_view(in.P, 1, 2, 3), B, C, 0, make_view(C_tilde, 2, 2, 3));
        },
        "s4_dplr_c_tilde: L must be >= 1, got 0");
    CHECK(untouched(C_tilde));
  }
  SECTION("s4_dplr_recurrence (constructor)") {
    ssmkit::s4_dplr_step_options options;
    options.c_input = ssmkit::dplr_c_input::tilde;
    check_error([&] { (void)ssmkit::s4_dplr_recurrence<float>(dt, Lambda, make_view(in.P, 1, 2, 3), B, C, options); },
                "s4_dplr_recurrence: c_input tilde needs the kernel length L >= 1, got 0");
  }
  const ssmkit::s4_dplr_recurrence<float> recurrence(dt, Lambda, make_view(in.P, 1, 2, 3), B, C);
  const auto u = values(2 * 2 * 4);
  SECTION("s4_dplr_recurrence::step") {
    auto state = recurrence.make_state(2);
    auto y = sentinel<float>(4);
    check_error([&] { recurrence.step(make_view(u.data(), 1, 2), state, make_view(y, 1, 2, 2)); },
                "s4_dplr_recurrence::step: state has shape (2, 2, 3), expected (1, 2, 3) (make it with make_state)");
    CHECK(untouched(y));
  }
  SECTION("s4_dplr_recurrence::forward") {
    auto state = recurrence.make_state(1);
    auto y = sentinel<float>(2 * 2 * 3);
    check_error([&] { recurrence.forward(make_view(u.data(), 1, 2, 4), state, make_view(y, 1, 2, 2, 3)); },
                "s4_dplr_recurrence::forward: y has shape (1, 2, 2, 3), expected (1, 2, 2, 4)");
    CHECK(untouched(y));
    CHECK(std::all_of(state.x().data(), state.x().data() + state.x().size(), [](cf v) { return v == cf(0); }));
  }
}

TEST_CASE("error messages: s4_ptd.hpp", "[errors]") {
  SECTION("ptd::perturb_then_diagonalize") {
    check_error([] { (void)ssmkit::ptd::perturb_then_diagonalize(Eigen::MatrixXd::Zero(2, 3)); },
                "ptd::perturb_then_diagonalize: A must be square and non-empty, got (2, 3)");
  }
  SECTION("ptd::diag_init") {
    check_error([] { (void)ssmkit::ptd::diag_init(ssmkit::hippo::measure::legs, 3); },
                "ptd::diag_init: N must be even and >= 2, got 3");
  }
}

TEST_CASE("error messages: s4d.hpp", "[errors]") {
  const auto dt = values(2);
  const auto A = complex_values(6), B = complex_values(6, 3), C = complex_values(6, 4);
  SECTION("s4d_kernel") {
    auto K = sentinel<float>(2 * 8);
    check_error(
        [&] {
          ssmkit::s4d_kernel<float>(make_view(dt.data(), 1, 2), make_view(A, 2, 3), make_view(B, 2, 3),
                                    make_view(C, 1, 2, 3), make_view(K, 1, 2, 8));
        },
        "s4d_kernel: dt has shape (1, 2), expected (2, 1) or (2, 3)");
    CHECK(untouched(K));
  }
  SECTION("s4d_state_kernel") {
    const auto state = complex_values(4, 5);
    auto K = sentinel<float>(2 * 8);
    check_error(
        [&] {
          ssmkit::s4d_state_kernel<float>(make_view(dt, 2, 1), make_view(A, 2, 3), make_view(C, 1, 2, 3),
                                          make_view(state, 1, 2, 2), make_view(K, 1, 1, 2, 8));
        },
        "s4d_state_kernel: state has shape (1, 2, 2), expected (1, 2, 3)");
    CHECK(untouched(K));
  }
  SECTION("s4d_step_setup") {
    auto dA = sentinel<cf>(4), dB = sentinel<cf>(6);
    check_error(
        [&] {
          ssmkit::s4d_step_setup<float>(make_view(dt, 2, 1), make_view(A, 2, 3), make_view(B, 2, 3),
                                        make_view(dA, 2, 2), make_view(dB, 2, 3));
        },
        "s4d_step_setup: dA has shape (2, 2), expected (2, 3)");
    CHECK(untouched(dA));
    CHECK(untouched(dB));
  }
  SECTION("s4d_recurrence") {
    const auto u = values(2 * 4);
    auto state = sentinel<cf>(6);
    auto y = sentinel<float>(2 * 3);
    check_error(
        [&] {
          ssmkit::s4d_recurrence<float>(make_view(A, 2, 3), make_view(B, 2, 3), make_view(C, 1, 2, 3),
                                        make_view(u, 1, 2, 4), make_view(state, 1, 2, 3), make_view(y, 1, 1, 2, 3));
        },
        "s4d_recurrence: y has shape (1, 1, 2, 3), expected (1, 1, 2, 4)");
    CHECK(untouched(state));
    CHECK(untouched(y));
  }
}

TEST_CASE("error messages: s4d_init.hpp", "[errors]") {
  namespace s4d = ssmkit::s4d;
  SECTION("s4d::parse_diag_init") {
    check_error([] { (void)s4d::parse_diag_init("cubic"); },
                "s4d::parse_diag_init: unknown init 'cubic' (expected legs, inv, inv2, lin, quad, real or rand)");
  }
  SECTION("s4d::parse_b_init") {
    check_error(
        [] { (void)s4d::parse_b_init("ones"); },
        "s4d::parse_b_init: unknown B_init 'ones' (expected constant, random, alternating, unit-cw, unit-ccw or legs)");
  }
  SECTION("s4d::diag (init)") {
    check_error([] { (void)s4d::diag(s4d::diag_init::lin, 3, 1); }, "s4d::diag: N must be even and >= 2, got 3");
  }
  SECTION("s4d::diag (name)") {
    check_error([] { (void)s4d::diag("lin", 4, 0); }, "s4d::diag: H must be >= 1, got 0");
  }
  SECTION("s4d::init_log_dt") {
    s4d::dt_init_options options;
    options.dt_min = 0.25;
    options.dt_max = 0.125;
    check_error([&] { (void)s4d::init_log_dt(1, 1, options); },
                "s4d::init_log_dt: need 0 < dt_min <= dt_max < inf, got dt_min = 0.25, dt_max = 0.125");
  }
  SECTION("s4d::init_dt_bias") {
    check_error([] { (void)s4d::init_dt_bias(2, {}, 0.0); }, "s4d::init_dt_bias: floor must be > 0, got 0");
  }
}

TEST_CASE("error messages: s4d_layer.hpp", "[errors]") {
  const std::size_t H = 2, N2 = 3, L = 8;
  const auto dt = values(H), A_imag = values(H * N2, 6), log_dt = values(H, 7);
  std::vector<cf> A(H * N2, cf(-0.5f, -1.0f));
  const auto B = complex_values(H * N2, 3), C = complex_values(H * N2, 4);
  const auto D = values(2 * H, 5);
  using params = ssmkit::s4d_layer_params<float>;
  SECTION("s4d_layer_params::from_raw") {
    check_error(
        [&] {
          (void)params::from_raw(make_view(dt.data(), 1, 2), make_view(A, 2, 3), make_view(B, 2, 3),
                                 make_view(C, 1, 2, 3));
        },
        "s4d_layer_params::from_raw: dt has shape (1, 2), expected (2, 1) or (2, 3)");
  }
  SECTION("s4d_layer_params::from_stored") {
    check_error(
        [&] {
          (void)params::from_stored(make_view(log_dt, 2, 1), make_view(A_imag, 2, 3), make_view(A_imag.data(), 2, 2),
                                    make_view(B, 2, 3), make_view(C, 1, 2, 3));
        },
        "s4d_layer_params::from_stored: A_imag has shape (2, 2), expected (2, 3)");
  }
  SECTION("s4d_layer (raw parameters)") {
    check_error(
        [&] {
          (void)ssmkit::s4d_layer<float>(make_view(dt, 2, 1), make_view(A, 2, 3), make_view(B, 2, 3),
                                         make_view(C, 1, 2, 3), make_view(D, 2, 2), L);
        },
        "s4d_layer: D has shape (2, 2), expected (1, 2)");
  }
  SECTION("s4d_layer (stored parameters)") {
    auto p = params::from_raw(make_view(dt, 2, 1), make_view(A, 2, 3), make_view(B, 2, 3), make_view(C, 1, 2, 3));
    p.log_dt.push_back(0.0f);
    check_error([&] { (void)ssmkit::s4d_layer<float>(p, L); },
                "s4d_layer: params.log_dt has 3 elements, expected 2 (H * dt_columns)");
  }
  SECTION("s4d_layer::random") {
    check_error([] { (void)ssmkit::s4d_layer<float>::random(2, 6, 0, 8); },
                "s4d_layer::random: channels must be >= 1, got 0");
  }
  ssmkit::s4d_layer_options glu;
  glu.output_glu = true;
  auto layer = ssmkit::s4d_layer<float>(make_view(dt, 2, 1), make_view(A, 2, 3), make_view(B, 2, 3),
                                        make_view(C, 1, 2, 3), {}, L, glu);
  const std::vector<float> kernel_before(layer.kernel().data(), layer.kernel().data() + layer.kernel().size());
  const auto kernel_unchanged = [&] {
    return layer.kernel_builds() == 1 && std::equal(kernel_before.begin(), kernel_before.end(), layer.kernel().data());
  };
  SECTION("s4d_layer::set_parameters (raw)") {
    check_error(
        [&] {
          (void)layer.set_parameters(make_view(dt, 2, 1), make_view(A.data(), 2, 2), make_view(B, 2, 3),
                                     make_view(C, 1, 2, 3));
        },
        "s4d_layer::set_parameters: A has shape (2, 2), expected (2, 3)");
    CHECK(kernel_unchanged());
  }
  SECTION("s4d_layer::set_parameters (stored)") {
    const auto other = ssmkit::s4d_layer<float>::random(3, 6, 1, 8);
    check_error([&] { (void)layer.set_parameters(other.parameters()); },
                "s4d_layer::set_parameters: A has shape (3, 3), expected (2, 3)");
    CHECK(kernel_unchanged());
  }
  SECTION("s4d_layer::set_output_linear") {
    const std::vector<float> weight_before(layer.output_weight().data(),
                                           layer.output_weight().data() + layer.output_weight().size());
    const auto w = values(4 * 3), bias = values(4);
    check_error([&] { layer.set_output_linear(make_view(w, 4, 3), make_view(bias, 4)); },
                "s4d_layer::set_output_linear: weight has shape (4, 3), expected (4, 2)");
    CHECK(std::equal(weight_before.begin(), weight_before.end(), layer.output_weight().data()));
  }
  const auto u = values(L * H);
  SECTION("s4d_layer::forward (s4d_layer_workspace)") {
    ssmkit::s4d_layer_workspace<float> ws;
    auto y = sentinel<float>(L * 4);
    check_error([&] { layer.forward(make_view(u, 1, L, H), make_view(y, 1, L, 4), ws); },
                "s4d_layer: y has shape (1, 8, 4), expected (1, 8, 2)");
    CHECK(untouched(y));
  }
  SECTION("s4d_layer::forward (fft_conv_workspace)") {
    ssmkit::fft_conv_workspace<float> ws;
    auto y = sentinel<float>(L * H);
    check_error([&] { layer.forward(make_view(u.data(), 1, 4, H), make_view(y.data(), 1, 4, H), ws); },
                "s4d_layer: u has shape (1, 4, 2), expected (1, 8, 2)");
    CHECK(untouched(y));
  }
  SECTION("s4d_layer::forward (allocating)") {
    auto y = sentinel<float>(L * H);
    check_error([&] { layer.forward(make_view(u, 1, L, H), make_view(y.data() + 1, 1, L - 1, H)); },
                "s4d_layer: y has shape (1, 7, 2), expected (1, 8, 2)");
    CHECK(untouched(y));
  }
  SECTION("s4d_layer::step") {
    auto state = layer.make_state(1);
    auto y = sentinel<float>(2 * H);
    check_error([&] { layer.step(make_view(u.data(), 2, H), make_view(y, 2, H), state); },
                "s4d_layer::step: u_t has shape (2, 2), expected (1, 2)");
    CHECK(untouched(y));
    const auto x = state.view();
    CHECK(std::all_of(x.data(), x.data() + x.size(), [](cf v) { return v == cf(0); }));
  }
}

TEST_CASE("error messages: safetensors.hpp", "[errors]") {
  namespace st = ssmkit::safetensors;
  const auto file = st::file::parse(st::serialize<float>({{"w", {2, 3}, values(6)}}), "m");
  SECTION("safetensors::file::load") {
    check_error([] { (void)st::file::load("/nonexistent/ssmkit.safetensors"); },
                "safetensors: /nonexistent/ssmkit.safetensors: cannot open");
  }
  SECTION("safetensors::file::parse") {
    check_error([] { (void)st::file::parse("abc", "m"); }, "m: 3 bytes, too short for a header size");
  }
  SECTION("safetensors::file::info") {
    check_error([&] { (void)file.info("v"); }, "m: no tensor 'v'");
  }
  SECTION("safetensors::file::read (into a view)") {
    auto out = sentinel<float>(6);
    check_error([&] { file.read("w", make_view(out, 3, 2)); }, "m: tensor 'w' has shape (2, 3), expected (3, 2)");
    check_error([&] { file.read("w", make_view(out, 6)); }, "m: tensor 'w' has shape (2, 3), expected rank 1 (6)");
    CHECK(untouched(out));
  }
  SECTION("safetensors::file::read (into a vector)") {
    check_error([&] { (void)file.read<double>("v"); }, "m: no tensor 'v'");
  }
  SECTION("safetensors::serialize") {
    check_error(
        [] {
          (void)st::serialize<float>({{"a", {1}, {1.0f}}, {"a", {1}, {2.0f}}});
        },
        "safetensors::serialize: tensor 'a' appears twice");
  }
  SECTION("safetensors::save") {
    check_error(
        [] {
          st::save<float>("/nonexistent/dir/ssmkit.safetensors", {{"a", {1}, {1.0f}}});
        },
        "safetensors: cannot write /nonexistent/dir/ssmkit.safetensors");
  }
}

TEST_CASE("error messages: selective_scan.hpp", "[errors]") {
  const std::size_t B = 2, D = 3, N = 4, L = 8;
  const auto u = values(B * D * L), delta = values(B * D * L, 3), A = values(D * N, 4);
  const auto Bv = values(B * N * L, 5), Cv = values(B * N * L, 6);
  auto out = sentinel<float>(B * D * L);
  SECTION("selective_scan (real A)") {
    auto last = sentinel<float>(B * D * N);
    ssmkit::selective_scan_options<float> options;
    options.last_state = make_view(last, B, D, N);
    check_error(
        [&] {
          ssmkit::selective_scan<float>(make_view(u, B, D, L), make_view(delta.data(), B, D, L - 1), make_view(A, D, N),
                                        make_view(Bv, B, N, L), make_view(Cv, B, N, L), make_view(out, B, D, L),
                                        options);
        },
        "selective_scan: delta has shape (2, 3, 7), expected (2, 3, 8)");
    CHECK(untouched(out));
    CHECK(untouched(last));
  }
  SECTION("selective_scan (real A, packed sequences)") {
    const std::vector<std::int64_t> cu{0, 3, 9};
    ssmkit::selective_scan_options<float> options;
    options.cu_seqlens = make_view(cu, 3);
    check_error(
        [&] {
          ssmkit::selective_scan<float>(make_view(u, B, D, L), make_view(delta, B, D, L), make_view(A, D, N),
                                        make_view(Bv, B, N, L), make_view(Cv, B, N, L), make_view(out, B, D, L),
                                        options);
        },
        "selective_scan: cu_seqlens[2] = 9 overruns L = 8");
    CHECK(untouched(out));
  }
  const auto Ac = complex_values(D * N);
  const auto Bc = values(B * N * 2 * L, 7), Cc = values(B * N * 2 * L, 8);
  SECTION("selective_scan (complex A)") {
    check_error(
        [&] {
          ssmkit::selective_scan<float>(make_view(u, B, D, L), make_view(delta, B, D, L), make_view(Ac, D, N),
                                        make_view(Bv, B, N, L), make_view(Cc, B, N, 2 * L), make_view(out, B, D, L));
        },
        "selective_scan: B has shape (2, 4, 8), expected (2, 4, 16)");
    CHECK(untouched(out));
  }
  SECTION("selective_scan (complex A, packed sequences)") {
    const std::vector<std::int64_t> cu{0, 3, 8};
    const auto h0 = complex_values(B * D * N, 9);
    ssmkit::selective_scan_complex_options<float> options;
    options.cu_seqlens = make_view(cu, 3);
    options.initial_state = make_view(h0, B, D, N);
    check_error(
        [&] {
          ssmkit::selective_scan<float>(make_view(u, B, D, L), make_view(delta, B, D, L), make_view(Ac, D, N),
                                        make_view(Bc, B, N, 2 * L), make_view(Cc, B, N, 2 * L), make_view(out, B, D, L),
                                        options);
        },
        "selective_scan: initial_state has shape (2, 3, 4), expected (4, 3, 4)");
    CHECK(untouched(out));
  }
  SECTION("selective_scan (grouped B)") {
    const auto Bg = values(B * 2 * N * L, 10);
    check_error(
        [&] {
          ssmkit::selective_scan<float>(make_view(u, B, D, L), make_view(delta, B, D, L), make_view(A, D, N),
                                        make_view(Bg, B, 2, N, L), make_view(Cv, B, N, L), make_view(out, B, D, L));
        },
        "selective_scan: B has 2 groups, which do not divide D = 3");
    CHECK(untouched(out));
  }
  SECTION("selective_state_update (heads)") {
    const std::size_t H = 4, P = 2;
    auto state = sentinel<float>(1 * H * P * N), y = sentinel<float>(H * P);
    const auto x = values(H * P), dt = values(H * P, 3), Ah = values(H * P * N, 4), Bh = values(3 * N, 5),
               Ch = values(N, 6);
    check_error(
        [&] {
          ssmkit::selective_state_update<float>(make_view(state, 1, H, P, N), make_view(x, 1, H, P),
                                                make_view(dt, 1, H, P), make_view(Ah, H, P, N), make_view(Bh, 1, 3, N),
                                                make_view(Ch, 1, 1, N), make_view(y, 1, H, P));
        },
        "selective_state_update: B has 3 groups, which do not divide H = 4");
    CHECK(untouched(state));
    CHECK(untouched(y));
  }
  SECTION("selective_state_update (no heads)") {
    auto state = sentinel<float>(D * N), y = sentinel<float>(D);
    const auto x = values(D), dt = values(D, 3), B1 = values(N, 5), C1 = values(N, 6);
    check_error(
        [&] {
          ssmkit::selective_state_update<float>(make_view(state, 1, D, N), make_view(x, 1, D), make_view(dt, 1, D),
                                                make_view(A.data(), D, 2), make_view(B1, 1, N), make_view(C1, 1, N),
                                                make_view(y, 1, D));
        },
        "selective_state_update: A has shape (3, 2), expected (3, 4)");
    CHECK(untouched(state));
    CHECK(untouched(y));
  }
}

TEST_CASE("error messages: ssd.hpp", "[errors]") {
  const std::size_t Bt = 1, L = 8, H = 4, P = 3, G = 2, N = 2;
  const auto x = values(Bt * L * H * P), dt = values(Bt * L * H, 3), A = values(H, 4);
  const auto Bm = values(Bt * L * G * N, 5), Cm = values(Bt * L * G * N, 6), B3 = values(Bt * L * 3 * N, 7);
  auto out = sentinel<float>(x.size());
  SECTION("ssd_scan") {
    auto final_states = sentinel<float>(Bt * H * P * N);
    ssmkit::ssd_options<float> options;
    options.final_states = make_view(final_states, Bt, H, P, N);
    check_error(
        [&] {
          ssmkit::ssd_scan<float>(make_view(x, Bt, L, H, P), make_view(dt, Bt, L, H), make_view(A, H),
                                  make_view(B3, Bt, L, 3, N), make_view(B3, Bt, L, 3, N), make_view(out, Bt, L, H, P),
                                  options);
        },
        "ssd_scan: B has 3 groups, which do not divide the 4 heads");
    CHECK(untouched(out));
    CHECK(untouched(final_states));
  }
  SECTION("ssd_scan (packed sequences)") {
    const std::vector<std::int32_t> seq_idx(L - 1, 0);
    ssmkit::ssd_options<float> options;
    options.seq_idx = make_view(seq_idx, Bt, L - 1);
    check_error(
        [&] {
          ssmkit::ssd_scan<float>(make_view(x, Bt, L, H, P), make_view(dt, Bt, L, H), make_view(A, H),
                                  make_view(Bm, Bt, L, G, N), make_view(Cm, Bt, L, G, N), make_view(out, Bt, L, H, P),
                                  options);
        },
        "ssd_scan: seq_idx has shape (1, 7), expected (1, 8)");
    CHECK(untouched(out));
  }
  SECTION("ssd_scan_discrete") {
    check_error(
        [&] {
          ssmkit::ssd_scan_discrete<float>(make_view(x, Bt, L, H, P), make_view(dt.data(), Bt, L, 3),
                                           make_view(Bm, Bt, L, G, N), make_view(Cm, Bt, L, G, N),
                                           make_view(out, Bt, L, H, P));
        },
        "ssd_scan_discrete: A has shape (1, 8, 3), expected (1, 8, 4)");
    CHECK(untouched(out));
  }
  SECTION("ssd_step") {
    auto state = sentinel<float>(Bt * H * P * N), y = sentinel<float>(Bt * H * P);
    const auto D = values(H * 2, 8);
    ssmkit::ssd_step_options<float> options;
    options.D = make_view(D, H, 2);
    check_error(
        [&] {
          ssmkit::ssd_step<float>(make_view(state, Bt, H, P, N), make_view(x.data(), Bt, H, P),
                                  make_view(dt.data(), Bt, H), make_view(A, H), make_view(Bm.data(), Bt, G, N),
                                  make_view(Cm.data(), Bt, G, N), make_view(y, Bt, H, P), options);
        },
        "ssd_step: D has shape (4, 2), expected (4, 3) or (4, 1)");
    CHECK(untouched(state));
    CHECK(untouched(y));
  }
}
