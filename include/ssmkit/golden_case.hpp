#pragma once
/// \file golden_case.hpp
/// Reader for golden cases: reference outputs computed by running state-spaces/s4 and
/// state-spaces/mamba, in the format of tests/golden/cases/README.md. One directory per case:
/// `case.json` (name, kernel, params, tolerance, and the inputs/outputs with file, dtype, shape)
/// plus one raw little-endian row-major `.bin` file per array, dtypes f64, f32, c128, c64.
///
/// Arrays are read into double (f32 widens exactly); complex arrays keep their interleaved
/// (re, im) layout, so `values.size() == 2 * element_count()`. The reader validates everything it
/// is given (JSON syntax, field types, shapes, file names and sizes) and throws `ssmkit::error`
/// naming the case and the field; it never reads outside the case directory.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ssmkit/detail/json.hpp>
#include <ssmkit/error.hpp>

namespace ssmkit::golden {

/// One array of a case.
struct array {
  std::string file;
  std::string dtype;               ///< "f64", "f32", "c128" or "c64"
  std::vector<std::size_t> shape;  ///< row-major extents
  std::vector<double> values;      ///< complex: interleaved (re, im)

  bool is_complex() const noexcept { return dtype == "c128" || dtype == "c64"; }
  /// The number of (real or complex) elements: the product of the shape.
  std::size_t element_count() const noexcept {
    std::size_t n = 1;
    for (const auto e : shape) n *= e;
    return n;
  }
};

/// One golden case, fully loaded.
struct golden_case {
  std::filesystem::path directory;
  std::string name;
  std::string kernel;
  std::string description;
  std::string precision = "f64";  ///< params.precision: the precision the reference ran in
  double rtol = 0;
  double atol = 0;
  detail::json params;            ///< the params object, as written
  std::map<std::string, array> inputs;
  std::map<std::string, array> outputs;

  bool has_input(const std::string& key) const { return inputs.count(key) != 0; }
  /// The input `key`; throws ssmkit::error naming the case when it is absent.
  const array& input(const std::string& key) const { return find(inputs, key, "input"); }
  /// The output `key`; throws ssmkit::error naming the case when it is absent.
  const array& output(const std::string& key) const { return find(outputs, key, "output"); }

  /// params[key] as a bool/number/string, or `fallback` when absent; throws on a wrong type.
  bool param_bool(const std::string& key, bool fallback) const {
    const auto* v = params.find(key);
    return v && !v->is_null() ? v->as_bool(context("params." + key)) : fallback;
  }
  double param_number(const std::string& key, double fallback) const {
    const auto* v = params.find(key);
    return v && !v->is_null() ? v->as_number(context("params." + key)) : fallback;
  }
  std::string param_string(const std::string& key, const std::string& fallback) const {
    const auto* v = params.find(key);
    return v && !v->is_null() ? v->as_string(context("params." + key)) : fallback;
  }

  std::string context(const std::string& field) const { return "golden case " + name + ": " + field; }

 private:
  const array& find(const std::map<std::string, array>& arrays, const std::string& key, const char* what) const {
    const auto it = arrays.find(key);
    if (it == arrays.end()) throw error(context(std::string(what) + " '" + key + "' is missing"));
    return it->second;
  }
};

}  // namespace ssmkit::golden

namespace ssmkit::detail {

/// Bytes per element of a golden dtype (a complex element counts both parts); 0 when unknown.
inline std::size_t dtype_bytes(const std::string& dtype) noexcept {
  if (dtype == "f64" || dtype == "c64") return 8;
  if (dtype == "f32") return 4;
  if (dtype == "c128") return 16;
  return 0;
}

inline std::string read_file(const std::filesystem::path& path, const std::string& context,
                             std::uintmax_t max_bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw error(context + ": cannot read " + path.string() + " (" + ec.message() + ")");
  if (size > max_bytes) throw error(concat(context, ": ", path.string(), " has ", size, " bytes, more than ", max_bytes));
  std::ifstream in(path, std::ios::binary);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    throw error(context + ": cannot read " + path.string());
  }
  return bytes;
}

inline double decode_little_endian(const unsigned char* p, std::size_t bytes) noexcept {
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < bytes; ++i) bits |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  if (bytes == 8) {
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  const auto b32 = static_cast<std::uint32_t>(bits);
  float f;
  std::memcpy(&f, &b32, 4);
  return static_cast<double>(f);
}

/// Reads one array of case `c` described by `spec`; `read_array_file(file, max_bytes)` returns the
/// file's bytes (reading at most max_bytes + 1, so that oversize files are detected cheaply).
template <class ReadArrayFile>
golden::array read_golden_array(const golden::golden_case& c, const std::string& key, const json& spec,
                                ReadArrayFile& read_array_file) {
  const std::string where = c.context("array '" + key + "'");
  golden::array a;
  const auto* file = spec.find("file");
  const auto* dtype = spec.find("dtype");
  const auto* shape = spec.find("shape");
  if (!file || !dtype || !shape) throw error(where + " needs file, dtype and shape");
  a.file = file->as_string(where + " file");
  a.dtype = dtype->as_string(where + " dtype");
  // File names are plain names inside the case directory: no separators, no "..".
  if (a.file.empty() || a.file.find_first_of("/\\") != std::string::npos || a.file == "." || a.file == "..") {
    throw error(where + ": file name '" + a.file + "' must be a plain file name in the case directory");
  }
  const std::size_t scalar_bytes = dtype_bytes(a.dtype);
  if (scalar_bytes == 0) throw error(where + ": unknown dtype '" + a.dtype + "'");
  std::size_t count = 1;
  constexpr std::size_t max_elements = std::size_t{1} << 31;
  for (const auto& extent : shape->as_array(where + " shape")) {
    const double e = extent.as_number(where + " shape entry");
    if (!(e >= 0 && e <= static_cast<double>(max_elements)) || e != static_cast<double>(static_cast<std::size_t>(e))) {
      throw error(concat(where, ": shape entry ", e, " is not a non-negative integer"));
    }
    a.shape.push_back(static_cast<std::size_t>(e));
    count = a.shape.back() == 0 ? 0 : count * a.shape.back();
    if (count > max_elements) throw error(where + ": shape has more than 2^31 elements");
  }
  const std::size_t scalars = a.is_complex() ? 2 * count : count;
  const std::size_t expected_bytes = count * scalar_bytes;  // scalar_bytes is per (complex) element
  const std::string bytes = read_array_file(a.file, expected_bytes);
  if (bytes.size() != expected_bytes) {
    throw error(concat(where, ": ", a.file, " has ", bytes.size(), " bytes, expected ", expected_bytes, " for ",
                       a.dtype, " shape ", format_shape(a.shape)));
  }
  const std::size_t component = a.is_complex() ? scalar_bytes / 2 : scalar_bytes;
  a.values.resize(scalars);
  const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data());
  for (std::size_t i = 0; i < scalars; ++i) a.values[i] = decode_little_endian(raw + i * component, component);
  return a;
}

}  // namespace ssmkit::detail

namespace ssmkit::golden {

/**
 * Loads a golden case from memory: `case_json` is the text of case.json and `read_array_file(name)`
 * returns the bytes of the array file `name` (a plain file name, already checked), or throws.
 * `name` is the case's name when case.json has none. This is what load_case does after reading
 * the files; it lets a program (or a fuzzer) load cases that do not live in a directory.
 * \throws ssmkit::error naming the case and the field on any malformed content.
 */
template <class ReadArrayFile>
golden_case parse_case(std::string_view case_json, const std::string& name, ReadArrayFile&& read_array_file) {
  golden_case c;
  c.name = name;
  const auto root = detail::json::parse(case_json, c.context("case.json"));
  root.as_object(c.context("case.json"));
  const auto string_field = [&](const char* key, bool required) -> std::string {
    const auto* v = root.find(key);
    if (!v) {
      if (required) throw error(c.context(std::string("case.json has no '") + key + "'"));
      return {};
    }
    return v->as_string(c.context(key));
  };
  if (const auto* n = root.find("name")) c.name = n->as_string(c.context("name"));
  c.kernel = string_field("kernel", true);
  c.description = string_field("description", false);
  if (const auto* p = root.find("params")) {
    p->as_object(c.context("params"));
    c.params = *p;
  }
  c.precision = c.param_string("precision", "f64");
  if (c.precision != "f64" && c.precision != "f32") throw error(c.context("params.precision must be f64 or f32"));
  if (const auto* t = root.find("tolerance")) {
    t->as_object(c.context("tolerance"));
    if (const auto* r = t->find("rtol")) c.rtol = r->as_number(c.context("tolerance.rtol"));
    if (const auto* a = t->find("atol")) c.atol = a->as_number(c.context("tolerance.atol"));
    if (!(c.rtol >= 0) || !(c.atol >= 0)) throw error(c.context("tolerance must be non-negative"));
  }
  for (const char* group : {"inputs", "outputs"}) {
    const auto* g = root.find(group);
    const bool is_inputs = std::string(group) == "inputs";
    if (!g) {
      if (!is_inputs) throw error(c.context("case.json has no 'outputs'"));
      continue;
    }
    auto& target = is_inputs ? c.inputs : c.outputs;
    for (const auto& member : g->as_object(c.context(group))) {
      member.second.as_object(c.context(std::string(group) + "." + member.first));
      target[member.first] = detail::read_golden_array(c, member.first, member.second, read_array_file);
    }
  }
  if (c.outputs.empty()) throw error(c.context("case has no outputs"));
  return c;
}

/**
 * Loads the golden case in `directory` (which holds case.json and the array files).
 * \throws ssmkit::error naming the case and the field on any malformed or missing content.
 */
inline golden_case load_case(const std::filesystem::path& directory) {
  const std::string name = directory.filename().string();
  const std::string context = "golden case " + name;
  const std::string text = detail::read_file(directory / "case.json", context + ": case.json", 16u << 20);
  golden_case c = parse_case(text, name, [&](const std::string& file, std::size_t expected_bytes) {
    return detail::read_file(directory / file, context + ": " + file, expected_bytes);
  });
  c.directory = directory;
  return c;
}

/// The case directories under `root`, sorted by name: `root` itself when it holds case.json,
/// otherwise its immediate subdirectories that do.
inline std::vector<std::filesystem::path> list_cases(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw error("golden: " + root.string() + " is not a directory");
  if (fs::exists(root / "case.json", ec)) return {root};
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory(ec) && fs::exists(entry.path() / "case.json", ec)) cases.push_back(entry.path());
  }
  if (ec) throw error("golden: cannot list " + root.string() + " (" + ec.message() + ")");
  std::sort(cases.begin(), cases.end());
  return cases;
}

}  // namespace ssmkit::golden
