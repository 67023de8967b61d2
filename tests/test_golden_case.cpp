// The golden-case reader: real cases load exactly, malformed input is refused with a clear error.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <ssmkit/golden_case.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using ssm_test::contains;

namespace {

// A scratch case directory under the build tree, removed at the end of the test.
struct scratch_case {
  fs::path dir;
  explicit scratch_case(const std::string& name) : dir(fs::temp_directory_path() / ("ssmkit_golden_" + name)) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~scratch_case() { fs::remove_all(dir); }
  void write(const std::string& file, const std::string& bytes) const {
    std::ofstream(dir / file, std::ios::binary) << bytes;
  }
};

std::string doubles(std::initializer_list<double> values) {
  std::string bytes;
  for (const double v : values) {
    char b[8];
    std::memcpy(b, &v, 8);  // the test machines are little-endian, like the format
    bytes.append(b, 8);
  }
  return bytes;
}

}  // namespace

TEST_CASE("a real case loads with its params, shapes and values", "[golden]") {
  const auto c = ssmkit::golden::load_case(fs::path(SSMKIT_TEST_GOLDEN_DIR) / "selective_scan_full");
  CHECK(c.name == "selective_scan_full");
  CHECK(c.kernel == "selective_scan");
  CHECK(c.precision == "f64");
  CHECK(c.rtol == 1e-10);
  CHECK(c.atol == 1e-12);
  CHECK(c.param_bool("delta_softplus", false));
  CHECK(c.param_number("dstate", 0) == 8);
  CHECK(c.param_string("B_layout", "") == "BNL");
  CHECK(c.input("u").shape == std::vector<std::size_t>{2, 4, 32});
  CHECK(c.input("u").values.size() == 256);
  CHECK(c.output("last_state").element_count() == 64);
  CHECK_THROWS_WITH(c.input("nope"), "golden case selective_scan_full: input 'nope' is missing");
  CHECK_THROWS_WITH(c.param_bool("B_layout", false), contains("must be a boolean, got a string"));
}

TEST_CASE("complex and float32 arrays decode", "[golden]") {
  const auto c = ssmkit::golden::load_case(fs::path(SSMKIT_TEST_GOLDEN_DIR) / "selective_scan_complex");
  const auto& a = c.input("A");
  CHECK(a.dtype == "c128");
  CHECK(a.is_complex());
  CHECK(a.values.size() == 2 * a.element_count());
  const auto f = ssmkit::golden::load_case(fs::path(SSMKIT_TEST_GOLDEN_DIR) / "selective_scan_f32");
  CHECK(f.precision == "f32");
  CHECK(f.input("u").dtype == "f32");
  for (const double v : f.input("u").values) CHECK(double(float(v)) == v);  // widened exactly
}

TEST_CASE("every shipped case loads", "[golden]") {
  const auto cases = ssmkit::golden::list_cases(SSMKIT_TEST_GOLDEN_DIR);
  CHECK(cases.size() == 26);
  for (const auto& dir : cases) CHECK_NOTHROW(ssmkit::golden::load_case(dir));
}

TEST_CASE("malformed cases are refused with the case and field named", "[golden][errors]") {
  scratch_case s("reader");
  const std::string head = R"({"name": "t", "kernel": "fftconv", )";
  s.write("out.y.bin", doubles({1, 2, 3}));
  SECTION("a file one element short") {
    s.write("case.json", head + R"("outputs": {"y": {"file": "out.y.bin", "dtype": "f64", "shape": [4]}}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), "golden case t: array 'y': out.y.bin has 24 bytes, expected 32 for f64 shape (4)");
  }
  SECTION("a path outside the case directory") {
    s.write("case.json", head + R"("outputs": {"y": {"file": "../x.bin", "dtype": "f64", "shape": [3]}}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("must be a plain file name"));
  }
  SECTION("an unknown dtype") {
    s.write("case.json", head + R"("outputs": {"y": {"file": "out.y.bin", "dtype": "f16", "shape": [3]}}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), "golden case t: array 'y': unknown dtype 'f16'");
  }
  SECTION("a negative or fractional extent") {
    s.write("case.json", head + R"("outputs": {"y": {"file": "out.y.bin", "dtype": "f64", "shape": [-3]}}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("is not a non-negative integer"));
    s.write("case.json", head + R"("outputs": {"y": {"file": "out.y.bin", "dtype": "f64", "shape": [1.5, 2]}}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("is not a non-negative integer"));
  }
  SECTION("a huge shape is refused before any allocation") {
    s.write("case.json", head + R"("outputs": {"y": {"file": "out.y.bin", "dtype": "f64", "shape": [100000, 100000]}}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("more than 2^31 elements"));
  }
  SECTION("no kernel, no outputs, wrong types") {
    s.write("case.json", R"({"name": "t", "outputs": {}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), "golden case t: case.json has no 'kernel'");
    s.write("case.json", head + R"("outputs": {}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), "golden case t: case has no outputs");
    s.write("case.json", head + R"("params": [], "outputs": {}})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), "golden case t: params must be an object, got an array");
  }
  SECTION("broken JSON reports the byte offset") {
    s.write("case.json", R"({"name": "t", "kernel": })");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("invalid JSON at byte 24: expected a value"));
    s.write("case.json", std::string(100, '[') + std::string(100, ']'));
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("nesting deeper than 64 levels"));
    s.write("case.json", R"({"kernel": "a\q"})");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("unknown escape"));
    s.write("case.json", R"({"kernel": "x"} trailing)");
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("trailing characters"));
  }
  SECTION("no case.json at all") {
    CHECK_THROWS_WITH(ssmkit::golden::load_case(s.dir), contains("cannot read"));
  }
}

TEST_CASE("the JSON reader decodes escapes and numbers", "[golden]") {
  const auto v = ssmkit::detail::json::parse(R"({"s": "a\"b\\c\u00e9\ud83d\ude00", "n": -1.5e3, "t": true, "z": null, "a": [1, NaN]})", "t");
  CHECK(v.find("s")->as_string("s") == "a\"b\\c\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(v.find("n")->as_number("n") == -1500);
  CHECK(v.find("t")->as_bool("t"));
  CHECK(v.find("z")->is_null());
  CHECK(std::isnan(v.find("a")->as_array("a")[1].as_number("a")));
  CHECK(v.find("missing") == nullptr);
}
