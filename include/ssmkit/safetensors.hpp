#pragma once
/// \file safetensors.hpp
/// Reading and writing safetensors files, the format Mamba and most current checkpoints ship in.
///
/// Layout (huggingface/safetensors): an 8-byte little-endian unsigned header size N, N bytes of
/// JSON, then the data section. The JSON maps each tensor name to
/// `{"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}` (byte offsets into the data
/// section) and may hold a `"__metadata__"` object of string pairs. Tensors are row-major and
/// little-endian.
///
/// The reader trusts nothing: it checks the header size against the file, the JSON, every dtype,
/// shape and offset pair (the byte count must equal the element count times the dtype size, ranges
/// must lie inside the data section, must not overlap, and must cover it without holes, as the
/// format requires), and throws `ssmkit::error` naming the file and the tensor. It reads F64, F32,
/// F16 and BF16 tensors into float or double; other dtypes are listed but not converted.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <ssmkit/detail/json.hpp>
#include <ssmkit/error.hpp>
#include <ssmkit/view.hpp>

namespace ssmkit::safetensors {

/// One tensor's entry in the header.
struct tensor_info {
  std::string name;
  std::string dtype;               ///< as written: "F64", "F32", "F16", "BF16", "I64", ...
  std::vector<std::size_t> shape;  ///< row-major extents
  std::size_t begin = 0;           ///< byte range [begin, end) in the data section
  std::size_t end = 0;

  std::size_t element_count() const noexcept {
    std::size_t n = 1;
    for (const auto e : shape) n *= e;
    return n;
  }
};

/// Bytes per element of a safetensors dtype; 0 when unknown.
inline std::size_t dtype_size(std::string_view dtype) noexcept {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

/// A parsed safetensors file, held in memory. Immutable after construction: safe to share.
class file {
 public:
  /// Reads and validates the file at `path`. \throws ssmkit::error on any malformed content.
  static file load(const std::filesystem::path& path) {
    const std::string context = "safetensors: " + path.string();
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(context + ": cannot open");
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse(std::move(bytes), context);
  }

  /// Validates `bytes` as a safetensors file; `context` starts every error message.
  static file parse(std::string bytes, std::string context) {
    file f;
    f.context_ = std::move(context);
    f.bytes_ = std::move(bytes);
    f.index();
    return f;
  }

  const std::vector<tensor_info>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  bool contains(std::string_view name) const noexcept { return find(name) != nullptr; }

  /// The entry of tensor `name`. \throws ssmkit::error when there is none.
  const tensor_info& info(std::string_view name) const {
    const auto* t = find(name);
    if (!t) throw error(detail::concat(context_, ": no tensor '", name, "'"));
    return *t;
  }

  /// Converts tensor `name` (F64, F32, F16 or BF16) into `out`, whose shape must equal the
  /// tensor's (any strides). \throws ssmkit::error on a missing tensor, another dtype or a shape
  /// mismatch; `out` is untouched then.
  template <class T, std::size_t Rank>
  void read(std::string_view name, tensor_view<T, Rank> out) const {
    const auto& t = info(name);
    std::array<std::size_t, Rank> expected{};
    if (t.shape.size() != Rank) {
      throw error(detail::concat(context_, ": tensor '", name, "' has shape ", detail::format_shape(t.shape),
                                 ", expected rank ", Rank, " ", detail::format_shape(out.extents())));
    }
    std::copy(t.shape.begin(), t.shape.end(), expected.begin());
    if (out.extents() != expected) {
      throw error(detail::concat(context_, ": tensor '", name, "' has shape ", detail::format_shape(t.shape),
                                 ", expected ", detail::format_shape(out.extents())));
    }
    detail::check_data("safetensors::file::read", "out", out);
    if (out.is_contiguous()) {  // the usual case: convert straight into the caller's buffer
      convert(t, name, out.data());
      return;
    }
    const auto values = read<T>(name);
    std::size_t i = 0;
    for_each_index(out.extents(), [&](const std::array<std::size_t, Rank>& idx) {
      std::ptrdiff_t offset = 0;
      for (std::size_t d = 0; d < Rank; ++d) offset += static_cast<std::ptrdiff_t>(idx[d]) * out.stride(d);
      out.data()[offset] = values[i++];
    });
  }

  /// Tensor `name` converted to T, row-major. \throws ssmkit::error as read(name, out).
  template <class T>
  std::vector<T> read(std::string_view name) const {
    const auto& t = info(name);
    std::vector<T> values(t.element_count());
    convert(t, name, values.data());
    return values;
  }

 private:
  /// Tensor t's element_count() values, converted to T, into out[0..n). The loads assemble each
  /// value from its little-endian bytes, so the reader is right on any host; compilers turn the
  /// F32 loop into plain vector loads and stores on a little-endian one.
  template <class T>
  void convert(const tensor_info& t, std::string_view name, T* out) const {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes_.data()) + data_start_ + t.begin;
    const std::size_t n = t.element_count();
    if (t.dtype == "F64") {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(load_double(p + 8 * i));
    } else if (t.dtype == "F32") {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(bits_to_float(load_u32(p + 4 * i)));
    } else if (t.dtype == "BF16") {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(bits_to_float(std::uint32_t{load_u16(p + 2 * i)} << 16));
    } else if (t.dtype == "F16") {
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(half_to_float(load_u16(p + 2 * i)));
    } else {
      throw error(
          detail::concat(context_, ": tensor '", name, "' has dtype ", t.dtype, ", expected F64, F32, F16 or BF16"));
    }
  }

  const tensor_info* find(std::string_view name) const noexcept {
    for (const auto& t : tensors_) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }

  static std::uint16_t load_u16(const unsigned char* p) noexcept {
    return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
  }
  static std::uint32_t load_u32(const unsigned char* p) noexcept {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
  }
  static std::uint64_t load_u64(const unsigned char* p) noexcept {
    return std::uint64_t{load_u32(p)} | std::uint64_t{load_u32(p + 4)} << 32;
  }
  static double load_double(const unsigned char* p) noexcept {
    const std::uint64_t bits = load_u64(p);
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  static float bits_to_float(std::uint32_t bits) noexcept {
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  /// IEEE binary16 to float, exactly (every half is a float), including subnormals, inf and NaN.
  static float half_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = std::uint32_t{h & 0x8000u} << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    if (exponent == 0x1F) return bits_to_float(sign | 0x7F800000u | (mantissa << 13));  // inf, NaN
    if (exponent != 0) return bits_to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
    return sign ? -magnitude : magnitude;
  }

  template <std::size_t Rank, class F>
  static void for_each_index(const std::array<std::size_t, Rank>& extents, F&& f) {
    std::array<std::size_t, Rank> idx{};
    for (const auto e : extents) {
      if (e == 0) return;
    }
    for (;;) {
      f(idx);
      std::size_t d = Rank;
      while (d-- > 0) {
        if (++idx[d] < extents[d]) break;
        idx[d] = 0;
        if (d == 0) return;
      }
    }
  }

  void index() {
    if (bytes_.size() < 8)
      throw error(detail::concat(context_, ": ", bytes_.size(), " bytes, too short for a header size"));
    const std::uint64_t header_size = load_u64(reinterpret_cast<const unsigned char*>(bytes_.data()));
    if (header_size > bytes_.size() - 8) {
      throw error(detail::concat(context_, ": header size ", header_size, " exceeds the file's ", bytes_.size() - 8,
                                 " bytes after it"));
    }
    data_start_ = 8 + static_cast<std::size_t>(header_size);
    const std::size_t data_size = bytes_.size() - data_start_;
    const auto root =
        detail::json::parse(std::string_view(bytes_).substr(8, static_cast<std::size_t>(header_size)), context_);
    for (const auto& member : root.as_object(context_ + ": header")) {
      const std::string where = context_ + ": tensor '" + member.first + "'";
      if (member.first == "__metadata__") {
        for (const auto& m : member.second.as_object(context_ + ": __metadata__")) {
          metadata_[m.first] = m.second.as_string(context_ + ": __metadata__." + m.first);
        }
        continue;
      }
      if (find(member.first)) throw error(where + " appears twice");
      tensor_info t;
      t.name = member.first;
      const auto* dtype = member.second.find("dtype");
      const auto* shape = member.second.find("shape");
      const auto* offsets = member.second.find("data_offsets");
      if (!dtype || !shape || !offsets) throw error(where + " needs dtype, shape and data_offsets");
      t.dtype = dtype->as_string(where + " dtype");
      const std::size_t size = dtype_size(t.dtype);
      if (size == 0) throw error(where + ": unknown dtype '" + t.dtype + "'");
      std::size_t count = 1;
      for (const auto& e : shape->as_array(where + " shape")) {
        const std::size_t extent = to_size(e, where + " shape");
        t.shape.push_back(extent);
        if (extent != 0 && count > data_size / extent)
          count = data_size + 1;  // cannot fit: caught below
        else
          count *= extent;
      }
      const auto& range = offsets->as_array(where + " data_offsets");
      if (range.size() != 2) throw error(where + ": data_offsets must hold [begin, end]");
      t.begin = to_size(range[0], where + " data_offsets");
      t.end = to_size(range[1], where + " data_offsets");
      if (t.begin > t.end || t.end > data_size) {
        throw error(detail::concat(where, ": data_offsets [", t.begin, ", ", t.end, "] outside the data section of ",
                                   data_size, " bytes"));
      }
      if (count > data_size || t.end - t.begin != count * size) {
        throw error(detail::concat(where, ": ", t.end - t.begin, " bytes for ", t.dtype, " shape ",
                                   detail::format_shape(t.shape), ", expected ", count * size));
      }
      tensors_.push_back(std::move(t));
    }
    // The ranges must tile the data section: sorted by begin, each starts where the last ended.
    std::vector<const tensor_info*> order;
    for (const auto& t : tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->begin < b->begin; });
    std::size_t next = 0;
    for (const auto* t : order) {
      if (t->begin != next) {
        throw error(detail::concat(context_, ": tensor '", t->name, "' starts at byte ", t->begin, ", expected ", next,
                                   t->begin < next ? " (it overlaps another tensor)" : " (a hole in the data)"));
      }
      next = t->end;
    }
    if (next != data_size) {
      throw error(detail::concat(context_, ": the tensors cover ", next, " of the ", data_size, " data bytes"));
    }
  }

  static std::size_t to_size(const detail::json& value, const std::string& what) {
    const double v = value.as_number(what);
    if (!(v >= 0 && v <= 9007199254740992.0) || v != std::floor(v)) {
      throw error(detail::concat(what, ": ", v, " is not a non-negative integer"));
    }
    return static_cast<std::size_t>(v);
  }

  std::string context_;
  std::string bytes_;
  std::size_t data_start_ = 0;
  std::vector<tensor_info> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// A tensor to write: its name, shape and row-major values (stored as F32 for float, F64 for double).
template <class T>
struct named_tensor {
  std::string name;
  std::vector<std::size_t> shape;
  std::vector<T> values;
};

/// The bytes of a safetensors file holding `tensors` in order, with optional string metadata.
/// \throws ssmkit::error when a tensor's value count does not match its shape or a name repeats.
template <class T>
std::string serialize(const std::vector<named_tensor<T>>& tensors,
                      const std::map<std::string, std::string>& metadata = {}) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "safetensors::serialize writes F32 or F64");
  const auto quote = [](const std::string& s) {
    std::string out = "\"";
    for (const char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += c;
      }
    }
    return out + "\"";
  };
  std::string header = "{";
  std::string data;
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& m : metadata) {
      header += (first ? "" : ",") + quote(m.first) + ":" + quote(m.second);
      first = false;
    }
    header += "},";
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    std::size_t count = 1;
    for (const auto e : t.shape) count *= e;
    detail::require(count == t.values.size(), "safetensors::serialize", "tensor '", t.name, "' has ", t.values.size(),
                    " values for shape ", detail::format_shape(t.shape));
    for (std::size_t j = 0; j < i; ++j) {
      detail::require(tensors[j].name != t.name, "safetensors::serialize", "tensor '", t.name, "' appears twice");
    }
    const std::size_t begin = data.size();
    for (const T v : t.values) {
      char b[sizeof(T)];
      std::memcpy(b, &v, sizeof(T));  // little-endian machines only, like the format
      data.append(b, sizeof(T));
    }
    std::string shape = "[";
    for (std::size_t d = 0; d < t.shape.size(); ++d) shape += (d ? "," : "") + std::to_string(t.shape[d]);
    header += (i ? "," : "") + quote(t.name) + ":{\"dtype\":\"" + (sizeof(T) == 4 ? "F32" : "F64") +
              "\",\"shape\":" + shape + "],\"data_offsets\":[" + std::to_string(begin) + "," +
              std::to_string(data.size()) + "]}";
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';  // the format pads the header to 8 bytes
  std::string out(8, '\0');
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + header + data;
}

/// Writes `tensors` to a safetensors file at `path`. \throws ssmkit::error when it cannot.
template <class T>
void save(const std::filesystem::path& path, const std::vector<named_tensor<T>>& tensors,
          const std::map<std::string, std::string>& metadata = {}) {
  const std::string bytes = serialize(tensors, metadata);
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw error("safetensors: cannot write " + path.string());
}

}  // namespace ssmkit::safetensors
