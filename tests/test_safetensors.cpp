// safetensors: round trips, half and bfloat16 decoding, strided reads, and every malformation.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <ssmkit/safetensors.hpp>

#include "catch_compat.hpp"
#include "test_support.hpp"

using ssm_test::contains;
namespace st = ssmkit::safetensors;

namespace {

// A file from a header text and a data section, with the 8-byte little-endian size in front.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return out + header + data;
}

std::string u16s(std::initializer_list<unsigned> values) {
  std::string s;
  for (const unsigned v : values) {
    s += static_cast<char>(v & 0xFF);
    s += static_cast<char>(v >> 8);
  }
  return s;
}

}  // namespace

TEST_CASE("a written file reads back exactly, with its metadata", "[safetensors]") {
  const auto a = ssm_test::uniform<float>(6, -1, 1, 1);
  const auto b = ssm_test::uniform<float>(5, -1, 1, 2);
  const auto path = std::filesystem::temp_directory_path() / "ssmkit_test_roundtrip.safetensors";
  st::save<float>(path, {{"mixer.in_proj.weight", {2, 3}, a}, {"mixer.A_log", {5}, b}, {"empty (0 x 4)", {0, 4}, {}}},
                  {{"format", "pt"}, {"note", "quote \" and (parens)"}});
  const auto f = st::file::load(path);
  std::filesystem::remove(path);
  CHECK(f.tensors().size() == 3);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "quote \" and (parens)");
  CHECK(f.info("mixer.in_proj.weight").shape == std::vector<std::size_t>{2, 3});
  CHECK(f.read<float>("mixer.in_proj.weight") == a);
  CHECK(f.read<float>("mixer.A_log") == b);
  CHECK(f.read<double>("empty (0 x 4)").empty());
  // A strided destination: the transpose of a (3, 2) buffer.
  std::vector<double> t(6);
  f.read("mixer.in_proj.weight", ssmkit::make_view(t, 3, 2).transposed(0, 1));
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j) CHECK(t[j * 2 + i] == double(a[i * 3 + j]));
  // A contiguous destination takes the direct conversion path: the same values.
  std::vector<double> direct(6, -1.0);
  f.read("mixer.in_proj.weight", ssmkit::make_view(direct, 2, 3));
  for (std::size_t i = 0; i < 6; ++i) CHECK(direct[i] == double(a[i]));
}

TEST_CASE("F16 and BF16 decode exactly, including subnormals, infinities and NaN", "[safetensors]") {
  // half: 1.0 = 0x3C00, -2.5 = 0xC100, 65504 = 0x7BFF, smallest subnormal 2^-24 = 0x0001, inf 0x7C00, NaN 0x7E00
  // bfloat16: 1.0 = 0x3F80, -3.0 = 0xC040
  const std::string header = R"({"h":{"dtype":"F16","shape":[6],"data_offsets":[0,12]},)"
                             R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]}})";
  const auto f = st::file::parse(
      raw_file(header, u16s({0x3C00, 0xC100, 0x7BFF, 0x0001, 0x7C00, 0x7E00}) + u16s({0x3F80, 0xC040})), "t");
  const auto h = f.read<double>("h");
  CHECK(h[0] == 1.0);
  CHECK(h[1] == -2.5);
  CHECK(h[2] == 65504.0);
  CHECK(h[3] == std::ldexp(1.0, -24));
  CHECK(h[4] == std::numeric_limits<double>::infinity());
  CHECK(std::isnan(h[5]));
  CHECK(f.read<float>("b") == std::vector<float>{1.0f, -3.0f});
}

TEST_CASE("malformed files are refused with the file and tensor named", "[safetensors][errors]") {
  const std::string ok_data(8, '\0');
  const auto parse = [](const std::string& bytes) { return st::file::parse(bytes, "m.safetensors"); };
  CHECK_THROWS_WITH(parse("abc"), "m.safetensors: 3 bytes, too short for a header size");
  std::string huge = raw_file("{}", "");
  huge[6] = 1;
  CHECK_THROWS_WITH(parse(huge), contains("exceeds the file's 2 bytes after it"));
  CHECK_THROWS_WITH(parse(raw_file("{\"x\": ", "")), contains("invalid JSON"));
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"F32","shape":[2]}})", ok_data)),
                    "m.safetensors: tensor 'x' needs dtype, shape and data_offsets");
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", ok_data)),
                    "m.safetensors: tensor 'x': unknown dtype 'Q4'");
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", ok_data)),
                    "m.safetensors: tensor 'x': 8 bytes for F32 shape (3), expected 12");
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", ok_data)),
                    "m.safetensors: tensor 'x': data_offsets [0, 16] outside the data section of 8 bytes");
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", ok_data)),
                    contains("is not a non-negative integer"));
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                   R"("y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                   ok_data)),
                    contains("(it overlaps another tensor)"));
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", ok_data)),
                    "m.safetensors: tensor 'x' starts at byte 4, expected 0 (a hole in the data)");
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", ok_data)),
                    "m.safetensors: the tensors cover 4 of the 8 data bytes");
  CHECK_THROWS_WITH(
      parse(raw_file(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", ok_data)),
      contains("expected"));
  CHECK_THROWS_WITH(parse(raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                   R"("x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                   ok_data)),
                    "m.safetensors: tensor 'x' appears twice");
  CHECK_THROWS_WITH(st::file::load("/nonexistent/x.safetensors"),
                    "safetensors: /nonexistent/x.safetensors: cannot open");
}

TEST_CASE("reads check the name, dtype and shape and leave the destination untouched", "[safetensors][errors]") {
  const auto f = st::file::parse(st::serialize<double>({{"w", {2, 3}, std::vector<double>(6, 1.0)}}), "m");
  std::vector<float> out(6, 7.0f);
  CHECK_THROWS_WITH(f.read(std::string_view("w"), ssmkit::make_view(out, 3, 2)),
                    "m: tensor 'w' has shape (2, 3), expected (3, 2)");
  CHECK_THROWS_WITH(f.read(std::string_view("w"), ssmkit::make_view(out, 6)),
                    "m: tensor 'w' has shape (2, 3), expected rank 1 (6)");
  CHECK_THROWS_WITH(f.read<float>("v"), "m: no tensor 'v'");
  CHECK(out == std::vector<float>(6, 7.0f));
  const auto ints =
      st::file::parse(raw_file(R"({"i":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')), "m");
  CHECK_THROWS_WITH(ints.read<float>("i"), "m: tensor 'i' has dtype I32, expected F64, F32, F16 or BF16");
  CHECK_THROWS_WITH(st::serialize<float>({{"a", {2}, {1.0f}}}),
                    "safetensors::serialize: tensor 'a' has 1 values for shape (2)");
}
