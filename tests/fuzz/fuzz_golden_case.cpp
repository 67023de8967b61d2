// libFuzzer target: the golden-case reader (JSON parser, field and shape validation, array decoding).
//
// Input layout: the text of case.json, a NUL byte, then the bytes served for every array file.
// Property: parse_case either throws ssmkit::error or returns a case whose arrays hold exactly
// element_count (x2 for complex) values. Anything else (a crash, another exception type, a
// sanitizer report, a wrong size) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <ssmkit/golden_case.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string_view json = input.substr(0, split);
  const std::string blob(split == std::string_view::npos ? std::string_view{} : input.substr(split + 1));
  try {
    const auto c = ssmkit::golden::parse_case(json, "fuzz", [&](const std::string&, std::size_t max_bytes) {
      return blob.size() > max_bytes ? blob.substr(0, max_bytes + 1) : blob;
    });
    for (const auto* group : {&c.inputs, &c.outputs}) {
      for (const auto& entry : *group) {
        const auto& a = entry.second;
        if (a.values.size() != a.element_count() * (a.is_complex() ? 2 : 1)) std::abort();
      }
    }
  } catch (const ssmkit::error&) {
    // A clean rejection.
  }
  return 0;
}
