#include "bench/bench_main.h"

#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace kqio {
namespace bench {
namespace {

TEST(RemoveTagTest, RemovesOneWholeComponentAndRealTime) {
  std::string name = "RoundTrip/kqio/window:1/real_time";
  EXPECT_TRUE(PairRatioReporter::RemoveTag("kqio", &name));
  EXPECT_EQ(name, "RoundTrip/window:1");

  name = "PingPong/raw";
  EXPECT_TRUE(PairRatioReporter::RemoveTag("raw", &name));
  EXPECT_EQ(name, "PingPong");
}

TEST(RemoveTagTest, IgnoresATagThatIsOnlyAPrefix) {
  // "/raw" occurs in "/raw_epoll", but "raw" is not a component of it.
  std::string name = "PingPong/raw_epoll/real_time";
  EXPECT_FALSE(PairRatioReporter::RemoveTag("raw", &name));
  EXPECT_EQ(name, "PingPong/raw_epoll/real_time");

  name = "PingPong/raw_epoll/raw";
  EXPECT_TRUE(PairRatioReporter::RemoveTag("raw", &name));
  EXPECT_EQ(name, "PingPong/raw_epoll");
}

benchmark::BenchmarkReporter::Run MakeRun(const std::string& name,
                                          double seconds, double ops) {
  benchmark::BenchmarkReporter::Run run;
  run.run_name.function_name = name;
  run.iterations = 1;
  run.real_accumulated_time = seconds;
  run.time_unit = benchmark::kNanosecond;
  run.counters["ops_per_iter"] = ops;
  return run;
}

// Two repetitions per side, no aggregates: the median is the mean of the
// two, the min the smaller; the ratio is kqio over the peer.
TEST(PairRatioReporterTest, PrintsMediansMinsAndRatios) {
  PairRatioTable table;
  table.peer = "raw";
  table.per_op_counter = "ops_per_iter";
  table.title = "TITLE";
  table.footer = "FOOTER";
  PairRatioReporter reporter(std::move(table),
                             benchmark::ConsoleReporter::OO_None);
  std::ostringstream console;
  reporter.SetOutputStream(&console);
  reporter.SetErrorStream(&console);
  // 10 operations per iteration: 1000 ns -> 100 ns per op.
  reporter.ReportRuns({MakeRun("Op/raw", 1000e-9, 10),
                       MakeRun("Op/raw", 3000e-9, 10),
                       MakeRun("Op/kqio", 2000e-9, 10),
                       MakeRun("Op/kqio", 6000e-9, 10),
                       MakeRun("Other/neither", 1e-6, 10)});
  testing::internal::CaptureStdout();
  reporter.Finalize();
  const std::string out = testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("TITLE\n"), std::string::npos) << out;
  EXPECT_NE(out.find("FOOTER\n"), std::string::npos) << out;
  // raw: median 200, min 100; kqio: median 400, min 200; both ratios 2.
  EXPECT_NE(out.find("Op "), std::string::npos) << out;
  EXPECT_NE(out.find("200       400   2.00 |       100       200   2.00"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("Other"), std::string::npos) << out;
}

}  // namespace
}  // namespace bench
}  // namespace kqio
