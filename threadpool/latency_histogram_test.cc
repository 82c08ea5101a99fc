#include "threadpool/latency_histogram.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace kqio {
namespace threadpool {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  LatencyHistogram::Snapshot s = h.Read();
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.Percentile(0.99), absl::ZeroDuration());
  EXPECT_EQ(s.Mean(), absl::ZeroDuration());
}

TEST(LatencyHistogramTest, BucketsArePowersOfTwo) {
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0);
  EXPECT_EQ(LatencyHistogram::BucketOf(1), 0);
  EXPECT_EQ(LatencyHistogram::BucketOf(2), 1);
  EXPECT_EQ(LatencyHistogram::BucketOf(3), 1);
  EXPECT_EQ(LatencyHistogram::BucketOf(1024), 10);
  EXPECT_EQ(LatencyHistogram::BucketOf(UINT64_MAX),
            LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogramTest, PercentileIsAnUpperBound) {
  LatencyHistogram h;
  for (int i = 0; i < 99; ++i) h.Record(absl::Microseconds(3));
  h.Record(absl::Milliseconds(5));
  LatencyHistogram::Snapshot s = h.Read();
  EXPECT_EQ(s.count, 100u);
  EXPECT_GE(s.Percentile(0.5), absl::Microseconds(3));
  EXPECT_LE(s.Percentile(0.5), absl::Microseconds(6));
  EXPECT_GE(s.Percentile(0.99), absl::Microseconds(3));
  EXPECT_LE(s.Percentile(0.99), absl::Microseconds(6));
  EXPECT_EQ(s.Percentile(1.0), absl::Milliseconds(5));  // capped at max
  EXPECT_EQ(s.max_ns, 5'000'000u);
  EXPECT_NE(s.ToString().find("n=100"), std::string::npos);
}

TEST(LatencyHistogramTest, NegativeDurationsCountAsZero) {
  LatencyHistogram h;
  h.Record(absl::Nanoseconds(-5));
  EXPECT_EQ(h.Read().buckets[0], 1u);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a, b;
  a.Record(absl::Microseconds(1));
  b.Record(absl::Milliseconds(1));
  b.Record(absl::Milliseconds(1));
  LatencyHistogram::Snapshot s = a.Read();
  s.Merge(b.Read());
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.max_ns, 1'000'000u);
}

TEST(LatencyHistogramTest, ConcurrentRecordsAreAllCounted) {
  LatencyHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i) h.RecordNanos(uint64_t(i) * (t + 1));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.Read().count, 40000u);
}

}  // namespace
}  // namespace threadpool
}  // namespace kqio
