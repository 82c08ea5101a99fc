#include "bench/bench_main.h"

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "bench/mutex_mode.h"

namespace kqio {
namespace bench {

benchmark::ConsoleReporter::OutputOptions ConsoleOutputOptions() {
  return isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Defaults
                               : benchmark::ConsoleReporter::OO_Tabular;
}

int RunBenchmarks(int argc, char** argv, std::vector<std::string> default_flags,
                  benchmark::BenchmarkReporter* console_reporter,
                  absl::FunctionRef<void()> register_benchmarks) {
  UseReleaseMutexMode();
  // Defaults first: the library keeps the last value of a flag, so the
  // user's flags, which come later, win.
  std::vector<char*> args;
  args.push_back(argv[0]);
  for (std::string& flag : default_flags) args.push_back(flag.data());
  bool console = true;
  for (int i = 1; i < argc; ++i) {
    args.push_back(argv[i]);
    const std::string a = argv[i];
    if (a.rfind("--benchmark_format=", 0) == 0 &&
        a != "--benchmark_format=console") {
      console = false;
    }
  }
  int args_count = static_cast<int>(args.size());
  args.push_back(nullptr);

  register_benchmarks();
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) {
    return 1;
  }
  if (console && console_reporter != nullptr) {
    benchmark::RunSpecifiedBenchmarks(console_reporter);
  } else {
    benchmark::RunSpecifiedBenchmarks();
  }
  benchmark::Shutdown();
  return 0;
}

std::vector<std::string> InterleavedRepetitionFlags(int repetitions,
                                                    double min_time_seconds) {
  char min_time[64];
  snprintf(min_time, sizeof(min_time), "--benchmark_min_time=%g",
           min_time_seconds);
  return {
      "--benchmark_repetitions=" + std::to_string(repetitions),
      "--benchmark_enable_random_interleaving=true",
      min_time,
      "--benchmark_display_aggregates_only=true",
  };
}

void AddMinStatistic(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics("min", [](const std::vector<double>& v) {
    return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
  });
}

PairRatioReporter::PairRatioReporter(PairRatioTable table,
                                     OutputOptions options)
    : ConsoleReporter(options), table_(std::move(table)) {}

bool PairRatioReporter::RemoveTag(const std::string& tag, std::string* name) {
  const std::string part = "/" + tag;
  size_t pos = name->find(part);
  while (pos != std::string::npos) {
    const size_t end = pos + part.size();
    if (end == name->size() || (*name)[end] == '/') break;
    pos = name->find(part, end);
  }
  if (pos == std::string::npos) return false;
  name->erase(pos, part.size());
  // UseRealTime() appends this to every name; it says nothing here.
  const std::string real_time = "/real_time";
  if (name->size() > real_time.size() &&
      name->compare(name->size() - real_time.size(), real_time.size(),
                    real_time) == 0) {
    name->resize(name->size() - real_time.size());
  }
  return true;
}

void PairRatioReporter::ReportRuns(const std::vector<Run>& runs) {
  for (const Run& run : runs) {
    if (run.error_occurred) continue;
    auto ops = run.counters.find(table_.per_op_counter);
    if (ops == run.counters.end() || ops->second.value <= 0) continue;
    std::string name = run.run_name.str();
    int side;
    if (RemoveTag(table_.peer, &name)) {
      side = 0;
    } else if (RemoveTag(table_.kqio, &name)) {
      side = 1;
    } else {
      continue;
    }
    const double ns_per_op = run.GetAdjustedRealTime() /
                             benchmark::GetTimeUnitMultiplier(run.time_unit) *
                             1e9 / ops->second.value;
    Sample& s = samples_[name][side];
    if (run.run_type == Run::RT_Iteration) {
      s.repetitions.push_back(ns_per_op);
    } else if (run.aggregate_name == "median") {
      s.median = ns_per_op;
    } else if (run.aggregate_name == "min") {
      s.min = ns_per_op;
    }
  }
  ConsoleReporter::ReportRuns(runs);
}

void PairRatioReporter::Finalize() {
  ConsoleReporter::Finalize();
  if (samples_.empty()) return;
  const PairRatioTable& t = table_;
  const int cw = t.case_width;
  const int rw = t.rate_width;
  const bool unit = t.unit_of != nullptr;
  const std::string peer_med = t.peer + " med", kqio_med = t.kqio + " med";
  const std::string peer_min = t.peer + " min", kqio_min = t.kqio + " min";
  const std::string peer_rate = t.peer + t.rate_suffix;
  const std::string kqio_rate = t.kqio + t.rate_suffix;
  printf("\n%s\n", t.title.c_str());
  printf("%-*s | ", cw, "case");
  if (unit) printf("%-6s | ", "op");
  printf("%9s %9s %6s | %9s %9s %6s | %*s %*s\n", peer_med.c_str(),
         kqio_med.c_str(), "ratio", peer_min.c_str(), kqio_min.c_str(), "ratio",
         rw, peer_rate.c_str(), rw, kqio_rate.c_str());
  for (auto& [name, both] : samples_) {
    Sample& p = both[0];
    Sample& k = both[1];
    p.Finish();
    k.Finish();
    if (p.median <= 0 || k.median <= 0) continue;
    printf("%-*s | ", cw, name.c_str());
    if (unit) printf("%-6s | ", t.unit_of(name));
    const int nd = t.ns_decimals, rd = t.ratio_decimals;
    printf("%9.*f %9.*f %6.*f | %9.*f %9.*f %6.*f | %*.4g %*.4g\n", nd,
           p.median, nd, k.median, rd, k.median / p.median, nd, p.min, nd,
           k.min, rd, p.min > 0 ? k.min / p.min : 0.0, rw, 1e9 / p.median, rw,
           1e9 / k.median);
  }
  printf("%s\n", t.footer.c_str());
  fflush(stdout);
}

void PairRatioReporter::Sample::Finish() {
  if (repetitions.empty()) return;
  std::sort(repetitions.begin(), repetitions.end());
  const size_t n = repetitions.size();
  if (median <= 0) {
    median = n % 2 ? repetitions[n / 2]
                   : (repetitions[n / 2 - 1] + repetitions[n / 2]) / 2;
  }
  if (min <= 0) min = repetitions.front();
}

}  // namespace bench
}  // namespace kqio
