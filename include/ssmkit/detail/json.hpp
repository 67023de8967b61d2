#pragma once
/// \file detail/json.hpp
/// A small strict JSON reader (RFC 8259) for the golden cases' case.json. It builds a tree of
/// `json` values and throws `ssmkit::error` with the byte offset on anything malformed. Nesting is
/// limited to 64 levels so that hostile input cannot exhaust the stack.

#include <cstddef>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ssmkit/error.hpp>

namespace ssmkit::detail {

class json {
 public:
  enum class kind { null, boolean, number, string, array, object };

  json() = default;

  kind type() const noexcept { return kind_; }
  bool is_null() const noexcept { return kind_ == kind::null; }
  bool is_bool() const noexcept { return kind_ == kind::boolean; }
  bool is_number() const noexcept { return kind_ == kind::number; }
  bool is_string() const noexcept { return kind_ == kind::string; }
  bool is_array() const noexcept { return kind_ == kind::array; }
  bool is_object() const noexcept { return kind_ == kind::object; }

  bool as_bool(std::string_view what) const { expect(kind::boolean, what); return boolean_; }
  double as_number(std::string_view what) const { expect(kind::number, what); return number_; }
  const std::string& as_string(std::string_view what) const { expect(kind::string, what); return string_; }
  const std::vector<json>& as_array(std::string_view what) const { expect(kind::array, what); return array_; }
  const std::vector<std::pair<std::string, json>>& as_object(std::string_view what) const {
    expect(kind::object, what);
    return object_;
  }

  /// The member `key` of an object, or nullptr when absent (or when this is not an object).
  const json* find(std::string_view key) const noexcept {
    if (kind_ != kind::object) return nullptr;
    for (const auto& member : object_) {
      if (member.first == key) return &member.second;
    }
    return nullptr;
  }

  /// Parses a whole document; throws ssmkit::error("<context>: ...") when it is not valid JSON.
  static json parse(std::string_view text, std::string_view context) {
    parser p{text, 0, context};
    p.skip_space();
    json value = p.parse_value(0);
    p.skip_space();
    if (p.pos != text.size()) p.fail("trailing characters after the JSON value");
    return value;
  }

 private:
  static const char* kind_name(kind k) noexcept {
    switch (k) {
      case kind::null: return "null";
      case kind::boolean: return "a boolean";
      case kind::number: return "a number";
      case kind::string: return "a string";
      case kind::array: return "an array";
      case kind::object: return "an object";
    }
    return "?";
  }
  void expect(kind k, std::string_view what) const {
    if (kind_ != k) throw error(concat(what, " must be ", kind_name(k), ", got ", kind_name(kind_)));
  }

  struct parser {
    std::string_view text;
    std::size_t pos;
    std::string_view context;

    [[noreturn]] void fail(std::string_view message) const {
      throw error(concat(context, ": invalid JSON at byte ", pos, ": ", message));
    }
    void skip_space() noexcept {
      while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' || text[pos] == '\n' || text[pos] == '\r')) ++pos;
    }
    bool consume(std::string_view word) noexcept {
      if (text.substr(pos, word.size()) != word) return false;
      pos += word.size();
      return true;
    }
    json parse_value(int depth) {
      if (depth > 64) fail("nesting deeper than 64 levels");
      if (pos >= text.size()) fail("unexpected end of input");
      json value;
      const char c = text[pos];
      if (c == '{') {
        value.kind_ = kind::object;
        ++pos;
        skip_space();
        if (pos < text.size() && text[pos] == '}') { ++pos; return value; }
        for (;;) {
          skip_space();
          if (pos >= text.size() || text[pos] != '"') fail("expected a string key");
          std::string key = parse_string();
          skip_space();
          if (pos >= text.size() || text[pos] != ':') fail("expected ':'");
          ++pos;
          skip_space();
          value.object_.emplace_back(std::move(key), parse_value(depth + 1));
          skip_space();
          if (pos < text.size() && text[pos] == ',') { ++pos; continue; }
          if (pos < text.size() && text[pos] == '}') { ++pos; return value; }
          fail("expected ',' or '}'");
        }
      }
      if (c == '[') {
        value.kind_ = kind::array;
        ++pos;
        skip_space();
        if (pos < text.size() && text[pos] == ']') { ++pos; return value; }
        for (;;) {
          skip_space();
          value.array_.push_back(parse_value(depth + 1));
          skip_space();
          if (pos < text.size() && text[pos] == ',') { ++pos; continue; }
          if (pos < text.size() && text[pos] == ']') { ++pos; return value; }
          fail("expected ',' or ']'");
        }
      }
      if (c == '"') {
        value.kind_ = kind::string;
        value.string_ = parse_string();
        return value;
      }
      if (consume("true")) { value.kind_ = kind::boolean; value.boolean_ = true; return value; }
      if (consume("false")) { value.kind_ = kind::boolean; value.boolean_ = false; return value; }
      if (consume("null")) return value;
      // Python's json module writes these for non-finite floats; accept them as numbers.
      if (consume("NaN")) { value.kind_ = kind::number; value.number_ = std::numeric_limits<double>::quiet_NaN(); return value; }
      if (consume("Infinity")) { value.kind_ = kind::number; value.number_ = std::numeric_limits<double>::infinity(); return value; }
      if (consume("-Infinity")) { value.kind_ = kind::number; value.number_ = -std::numeric_limits<double>::infinity(); return value; }
      value.kind_ = kind::number;
      value.number_ = parse_number();
      return value;
    }
    double parse_number() {
      const std::size_t start = pos;
      auto digits = [&] {
        const std::size_t from = pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
        return pos > from;
      };
      if (pos < text.size() && text[pos] == '-') ++pos;
      if (!digits()) fail("expected a value");
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        if (!digits()) fail("expected digits after '.'");
      }
      if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
        ++pos;
        if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) ++pos;
        if (!digits()) fail("expected digits in the exponent");
      }
      const std::string token(text.substr(start, pos - start));
      return std::strtod(token.c_str(), nullptr);
    }
    static void append_utf8(std::string& out, unsigned code) {
      if (code < 0x80) {
        out += static_cast<char>(code);
      } else if (code < 0x800) {
        out += static_cast<char>(0xC0 | (code >> 6));
        out += static_cast<char>(0x80 | (code & 0x3F));
      } else if (code < 0x10000) {
        out += static_cast<char>(0xE0 | (code >> 12));
        out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (code >> 18));
        out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code & 0x3F));
      }
    }
    unsigned parse_hex4() {
      if (pos + 4 > text.size()) fail("truncated \\u escape");
      unsigned code = 0;
      for (int i = 0; i < 4; ++i) {
        const char h = text[pos++];
        code <<= 4;
        if (h >= '0' && h <= '9') code |= static_cast<unsigned>(h - '0');
        else if (h >= 'a' && h <= 'f') code |= static_cast<unsigned>(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') code |= static_cast<unsigned>(h - 'A' + 10);
        else fail("bad hex digit in \\u escape");
      }
      return code;
    }
    std::string parse_string() {
      ++pos;  // the opening quote
      std::string out;
      for (;;) {
        if (pos >= text.size()) fail("unterminated string");
        const char c = text[pos++];
        if (c == '"') return out;
        if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
        if (c != '\\') { out += c; continue; }
        if (pos >= text.size()) fail("unterminated escape");
        const char e = text[pos++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            unsigned code = parse_hex4();
            if (code >= 0xD800 && code < 0xDC00) {  // a surrogate pair
              if (!consume("\\u")) fail("unpaired surrogate");
              const unsigned low = parse_hex4();
              if (low < 0xDC00 || low >= 0xE000) fail("unpaired surrogate");
              code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            } else if (code >= 0xDC00 && code < 0xE000) {
              fail("unpaired surrogate");
            }
            append_utf8(out, code);
            break;
          }
          default: fail("unknown escape");
        }
      }
    }
  };

  kind kind_ = kind::null;
  bool boolean_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<json> array_;
  std::vector<std::pair<std::string, json>> object_;
};

}  // namespace ssmkit::detail
