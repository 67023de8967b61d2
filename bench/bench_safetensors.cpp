// Loading a checkpoint (safetensors.hpp): a parsed 64 MiB safetensors file held in memory (16 F32
// tensors of 1 Mi values, the shape of a small model's weights), every tensor read into the
// caller's float buffers, as a model's `load` does. Memory-bound: the file's bytes are read once
// and the weights written once, 2 x 64 MiB, compared with the DRAM bandwidth; the peer is a plain
// memcpy of the same bytes (the cost of any loader that only copies). Parsing is not timed: it
// takes ownership of the bytes (a move) and validates the small JSON header.
#include <cstring>
#include <string>
#include <vector>

#include <ssmkit/safetensors.hpp>

#include "common.hpp"

namespace {

constexpr std::size_t tensors = 16, values = std::size_t{1} << 20;

std::string checkpoint() {
  std::vector<ssmkit::safetensors::named_tensor<float>> list;
  for (std::size_t i = 0; i < tensors; ++i) {
    list.push_back({"backbone.layers." + std::to_string(i) + ".mixer.in_proj.weight", {1024, values / 1024},
                    ssm_bench::uniform<float>(values, -1, 1, std::uint32_t(i))});
  }
  return ssmkit::safetensors::serialize(list);
}

void safetensors_read(benchmark::State& state) {
  const std::string bytes = checkpoint();
  std::vector<std::vector<float>> weights(tensors, std::vector<float>(values));
  const auto file = ssmkit::safetensors::file::parse(bytes, "checkpoint");
  for (auto _ : state) {
    for (std::size_t i = 0; i < tensors; ++i) {
      file.read("backbone.layers." + std::to_string(i) + ".mixer.in_proj.weight",
                ssmkit::make_view(weights[i], 1024, values / 1024));
    }
    benchmark::DoNotOptimize(weights.back().data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(tensors * values), 2.0 * double(bytes.size()));
  ssm_bench::describe(state, "safetensors read 16 x 4 MiB F32", "ssmkit", "dram", 2.0 * double(bytes.size()));
}

void safetensors_memcpy(benchmark::State& state) {
  const std::string bytes = checkpoint();
  std::vector<char> copy(bytes.size());
  for (auto _ : state) {
    std::memcpy(copy.data(), bytes.data(), bytes.size());
    benchmark::DoNotOptimize(copy.data());
    benchmark::ClobberMemory();
  }
  ssm_bench::set_throughput(state, double(tensors * values), 2.0 * double(bytes.size()));
  ssm_bench::describe(state, "safetensors read 16 x 4 MiB F32", "memcpy", "dram", 2.0 * double(bytes.size()));
}

}  // namespace

BENCHMARK(safetensors_read)->Unit(benchmark::kMillisecond);
BENCHMARK(safetensors_memcpy)->Unit(benchmark::kMillisecond);
