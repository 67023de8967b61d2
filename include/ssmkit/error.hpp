#pragma once
/// \file error.hpp
/// `ssmkit::error`, the one exception type of the library, and the checking helpers that public
/// entry points use to validate their arguments before touching any buffer.
///
/// Messages always start with the public function's name, then name the argument, what was
/// expected and what was given, for example
///   `selective_scan: delta has shape (2, 64, 100), expected (2, 64, 128)`.

#include <cstddef>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace ssmkit {

/// Thrown by every public entry point on bad input (shape, stride, parameter or file content).
/// Derives from std::invalid_argument, so existing handlers for bad arguments catch it too.
class error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

/// Streams all arguments into one string: concat("N = ", 4, ", got ", 3.5).
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

/// Extents to be written as a tuple, "(2, 64, 100)" ("()" for rank 0), when streamed into a message.
/// Formatting waits for the stream: `require(ok, fn, "x has shape ", format_shape(x.extents()))`
/// formats nothing unless it throws, so a successful check costs no string and no allocation
/// (the decode steps validate every call and promise not to allocate).
template <class Extents>
struct shape_text {
  Extents extents;

  std::string str() const {
    std::string text = "(";
    bool first = true;
    for (const auto extent : extents) {
      if (!first) text += ", ";
      text += std::to_string(extent);
      first = false;
    }
    return text + ")";
  }
  friend std::ostream& operator<<(std::ostream& out, const shape_text& shape) { return out << shape.str(); }
};

/// The extents as a lazily formatted tuple (shape_text); a copy, so it may outlive its argument.
template <class Extents>
shape_text<Extents> format_shape(const Extents& extents) {
  return {extents};
}

/// Throws `ssmkit::error` with "<function>: <message parts...>".
template <class... Parts>
[[noreturn]] void throw_error(std::string_view function, const Parts&... parts) {
  throw error(concat(function, ": ", parts...));
}

/// Throws `ssmkit::error` with "<function>: <message parts...>" unless `condition` holds.
template <class... Parts>
void require(bool condition, std::string_view function, const Parts&... parts) {
  if (!condition) throw_error(function, parts...);
}

}  // namespace detail
}  // namespace ssmkit
