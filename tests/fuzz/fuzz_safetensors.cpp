// libFuzzer target: the safetensors reader. The input is a whole file. Property: parse either
// throws ssmkit::error or yields tensors whose byte ranges lie inside the file and whose float
// tensors convert without touching anything outside them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <ssmkit/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = ssmkit::safetensors::file::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& t : f.tensors()) {
      if (t.end > size || t.begin > t.end) std::abort();
      if (t.dtype == "F32" || t.dtype == "F64" || t.dtype == "F16" || t.dtype == "BF16") {
        if (f.read<float>(t.name).size() != t.element_count()) std::abort();
      }
    }
  } catch (const ssmkit::error&) {
    // A clean rejection.
  }
  return 0;
}
