// The main() every kqio benchmark shares, and the two-sided ratio table most
// of them print after the console output.
//
// Each benchmark binary compares kqio with a peer (raw syscalls, libuv, a
// plain mutex + condvar pool...) in one run and prints ratios; the flag
// handling and the "per case: peer and kqio side by side" table are the same
// everywhere, so they live here.  Benchmarks whose tables really differ
// (several peers per row, CPU time, counters other than time) keep their own
// ConsoleReporter subclass and only use RunBenchmarks().
#ifndef KQIO_BENCH_BENCH_MAIN_H_
#define KQIO_BENCH_BENCH_MAIN_H_

#include <array>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "benchmark/benchmark.h"

namespace kqio {
namespace bench {

// Console output options for a reporter passed to RunBenchmarks(): colour and
// the default layout on a terminal, plain tabular output into a pipe or file.
benchmark::ConsoleReporter::OutputOptions ConsoleOutputOptions();

// The body of a benchmark's main():
//   1. UseReleaseMutexMode() (see mutex_mode.h), before any thread starts;
//   2. register_benchmarks(), which registers the cases and may do any setup
//      that must follow step 1 (e.g. start a background thread);
//   3. benchmark::Initialize() on argv[0], then `default_flags`, then the
//      user's arguments, so that a flag given on the command line wins;
//   4. fails (returns 1) on an argument the library did not recognise;
//   5. runs the cases with `console_reporter` as the display reporter when
//      the output format is the console (the default) and it is not null,
//      else with the library's reporter for --benchmark_format.
// Returns main()'s exit code.  `console_reporter` is not owned and must
// outlive the call.
int RunBenchmarks(int argc, char** argv, std::vector<std::string> default_flags,
                  benchmark::BenchmarkReporter* console_reporter,
                  absl::FunctionRef<void()> register_benchmarks);

// The usual defaults: many short, interleaved repetitions, shown as
// aggregates (median, min...) only.
std::vector<std::string> InterleavedRepetitionFlags(int repetitions,
                                                    double min_time_seconds);

// Adds a "min" statistic next to the library's mean/median/stddev, which the
// ratio table prefers over the mean (the least disturbed repetition).
void AddMinStatistic(benchmark::internal::Benchmark* b);

// What a PairRatioReporter prints.  Each case is registered twice, with
// "/<peer>" and "/<kqio>" in its name (e.g. "RoundTrip/libuv/window:1" and
// "RoundTrip/kqio/window:1"), and sets the counter `per_op_counter` to the
// number of operations one iteration does.
struct PairRatioTable {
  std::string peer;            // e.g. "raw", "libuv", "plain"
  std::string kqio = "kqio";   // the other tag
  std::string per_op_counter;  // e.g. "ops_per_iter"
  std::string title;           // the line above the header
  std::string footer;          // the line below the rows
  int case_width = 30;         // of the first column
  int ns_decimals = 0;         // of the ns columns
  int ratio_decimals = 2;      // of the ratio columns
  std::string rate_suffix = "/s";  // rate headers: peer + suffix, kqio + suffix
  int rate_width = 10;             // of the rate columns
  // If set, a column "op" after the case, naming what one operation is.
  const char* (*unit_of)(const std::string& case_name) = nullptr;
};

// The console output, then per case: real time per operation (ns) of the
// peer and of kqio, median and min over the repetitions, their ratios
// kqio/peer, and operations per second from the medians.  The median and min
// are the library's aggregates when it computed them (repetitions > 1 and
// AddMinStatistic()), else taken from the repetitions seen.
//
// Not thread-safe: the library calls a reporter from one thread.
class PairRatioReporter final : public benchmark::ConsoleReporter {
 public:
  PairRatioReporter(PairRatioTable table, OutputOptions options);

  void ReportRuns(const std::vector<Run>& runs) override;
  void Finalize() override;

  // "RoundTrip/kqio/window:1/real_time" with tag "kqio" -> true and
  // "RoundTrip/window:1"; false if the tag is not one component of the name.
  static bool RemoveTag(const std::string& tag, std::string* name);

 private:
  // One side of a case, in ns per operation.
  struct Sample {
    double median = 0;
    double min = 0;
    std::vector<double> repetitions;
    void Finish();
  };

  const PairRatioTable table_;
  // case -> {peer, kqio}.
  std::map<std::string, std::array<Sample, 2>> samples_;
};

}  // namespace bench
}  // namespace kqio

#endif  // KQIO_BENCH_BENCH_MAIN_H_
