// ssmkit-bench: every benchmark family in one Google Benchmark binary, plus a report.
//
//   ssmkit-bench [--quick] [--report=FILE.md] [any --benchmark_* flag]
//
// --quick runs each benchmark for a short time (under a minute in all; FFTW's planner is then
// limited to 0.2 s per plan, see peers/fftw_conv.cpp); --report writes the
// Markdown report there as well as to standard output. For the raw JSON, add
// --benchmark_out=FILE.json --benchmark_out_format=json.
//
// The report has two tables. "Machine limits" lists what bench_limits.cpp measured in this run.
// "Kernels" lists every benchmark tagged by ssm_bench::describe (bench/common.hpp): its time, its
// items/s, the fraction of the bounding limit it reaches (at the same thread count), and its
// speed ratio to every other implementation of the same operation in this run (>1: ssmkit faster).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "common.hpp"

namespace {

struct row {
  std::string name;
  std::map<std::string, std::string> tags;
  double seconds = 0;
  std::map<std::string, double> counters;
};

std::map<std::string, std::string> parse_label(const std::string& label) {
  std::map<std::string, std::string> tags;
  std::stringstream in(label);
  std::string item;
  while (std::getline(in, item, ';')) {
    const auto eq = item.find('=');
    if (eq != std::string::npos) tags[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return tags;
}

class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;
      row r;
      r.name = run.benchmark_name();
      r.tags = parse_label(run.report_label);
      r.seconds = run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
      for (const auto& c : run.counters) r.counters[c.first] = c.second.value;
      rows.push_back(std::move(r));
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::vector<row> rows;
};

std::string si(double v, const char* unit) {
  const char* prefixes[] = {"", "k", "M", "G", "T"};
  int p = 0;
  while (v >= 1000 && p < 4) {
    v /= 1000;
    ++p;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g %s%s", v, prefixes[p], unit);
  return buf;
}

std::string duration(double s) {
  char buf[32];
  if (s >= 1) std::snprintf(buf, sizeof buf, "%.3g s", s);
  else if (s >= 1e-3) std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
  return buf;
}

std::string report(const std::vector<row>& rows) {
  std::ostringstream md;
  // Limits, keyed by (limit, threads).
  std::map<std::pair<std::string, std::string>, double> limits;
  const std::map<std::string, std::string> limit_counter = {
      {"fma", "flop/s"}, {"exp", "exp/s"}, {"dram", "bytes/s"}, {"l2", "bytes/s"}};
  const std::map<std::string, const char*> limit_unit = {{"fma", "flop/s"}, {"exp", "exp/s"}, {"dram", "B/s"}, {"l2", "B/s"}};
  md << "### Machine limits (measured in this run)\n\n| limit | threads | value |\n|---|---|---|\n";
  for (const auto& r : rows) {
    const auto it = r.tags.find("limit_of");
    if (it == r.tags.end() || !limit_counter.count(it->second)) continue;
    const double value = r.counters.count(limit_counter.at(it->second)) ? r.counters.at(limit_counter.at(it->second)) : 0;
    limits[{it->second, r.tags.at("threads")}] = value;
    md << "| " << it->second << " | " << r.tags.at("threads") << " | " << si(value, limit_unit.at(it->second)) << " |\n";
  }
  md << "\n### Kernels\n\n| operation | implementation | threads | time | items/s | % of limit | vs. other implementations |\n"
        "|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    if (!r.tags.count("op")) continue;
    const std::string& op = r.tags.at("op");
    const std::string threads = r.tags.count("threads") ? r.tags.at("threads") : "1";
    const std::string limit = r.tags.count("limit") ? r.tags.at("limit") : "none";
    std::string pct = "–";
    if (limit != "none" && r.counters.count("limit_rate")) {
      // The limit at this thread count; "all threads" rows of bench_limits carry the resolved count.
      const auto l = limits.find({limit, threads});
      if (l != limits.end() && l->second > 0) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f%% of %s", 100 * r.counters.at("limit_rate") / l->second, limit.c_str());
        pct = buf;
      }
    }
    std::string versus;
    for (const auto& other : rows) {
      if (&other == &r || !other.tags.count("op") || other.tags.at("op") != op) continue;
      const std::string other_threads = other.tags.count("threads") ? other.tags.at("threads") : "1";
      if (other_threads != threads) continue;
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s%.2fx %s", versus.empty() ? "" : ", ", other.seconds / r.seconds,
                    other.tags.count("impl") ? other.tags.at("impl").c_str() : "?");
      versus += buf;
    }
    const double items = r.counters.count("items_per_second") ? r.counters.at("items_per_second") : 0;
    md << "| " << op << " | " << (r.tags.count("impl") ? r.tags.at("impl") : "?") << " | " << threads << " | "
       << duration(r.seconds) << " | " << (items > 0 ? si(items, "") : "–") << " | " << pct << " | "
       << (versus.empty() ? "–" : versus) << " |\n";
  }
  return md.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  std::string report_file;
  bool quick = false;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strncmp(argv[i], "--report=", 9) == 0) {
      report_file = argv[i] + 9;
    } else {
      args.push_back(argv[i]);
    }
  }
  std::string quick_time = "--benchmark_min_time=0.02";  // a bare number: benchmark 1.7.1 rejects "0.02s"
  if (quick) args.insert(args.begin() + 1, quick_time.data());
  ssm_bench::quick_mode() = quick;
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 2;
  collecting_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  if (reporter.rows.empty()) {  // --benchmark_list_tests, or a filter that matched nothing
    benchmark::Shutdown();
    return 0;
  }
  const std::string md = report(reporter.rows);
  std::printf("\n%s", md.c_str());
  if (!report_file.empty()) std::ofstream(report_file) << md;
  benchmark::Shutdown();
  return 0;
}
