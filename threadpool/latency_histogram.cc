#include "threadpool/latency_histogram.h"

#include <algorithm>
#include <cmath>

#include "absl/numeric/bits.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kqio {
namespace threadpool {

int LatencyHistogram::BucketOf(uint64_t ns) {
  if (ns < 2) return 0;
  int b = 63 - absl::countl_zero(ns);
  return std::min(b, kBuckets - 1);
}

void LatencyHistogram::Record(absl::Duration d) {
  int64_t ns = absl::ToInt64Nanoseconds(d);
  RecordNanos(ns < 0 ? 0 : static_cast<uint64_t>(ns));
}

void LatencyHistogram::RecordNanos(uint64_t ns) {
  buckets_[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  uint64_t seen = max_ns_.load(std::memory_order_relaxed);
  while (ns > seen &&
         !max_ns_.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
  }
}

LatencyHistogram::Snapshot LatencyHistogram::Read() const {
  Snapshot s;
  for (int i = 0; i < kBuckets; ++i) {
    s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    s.count += s.buckets[i];
  }
  // The count is summed from the buckets so that percentiles stay consistent
  // with it even while other threads record.
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  s.max_ns = max_ns_.load(std::memory_order_relaxed);
  return s;
}

absl::Duration LatencyHistogram::Snapshot::Percentile(double q) const {
  if (count == 0) return absl::ZeroDuration();
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets[i];
    if (seen >= rank) {
      uint64_t upper = i + 1 >= 64 ? UINT64_MAX : (uint64_t{1} << (i + 1));
      return absl::Nanoseconds(std::min(upper, std::max<uint64_t>(max_ns, 1)));
    }
  }
  return absl::Nanoseconds(max_ns);
}

absl::Duration LatencyHistogram::Snapshot::Mean() const {
  if (count == 0) return absl::ZeroDuration();
  return absl::Nanoseconds(sum_ns / count);
}

void LatencyHistogram::Snapshot::Merge(const Snapshot& other) {
  for (int i = 0; i < kBuckets; ++i) buckets[i] += other.buckets[i];
  count += other.count;
  sum_ns += other.sum_ns;
  max_ns = std::max(max_ns, other.max_ns);
}

std::string LatencyHistogram::Snapshot::ToString() const {
  return absl::StrCat("n=", count, " mean=", absl::FormatDuration(Mean()),
                      " p50=", absl::FormatDuration(Percentile(0.5)),
                      " p99=", absl::FormatDuration(Percentile(0.99)),
                      " max=", absl::FormatDuration(absl::Nanoseconds(max_ns)));
}

}  // namespace threadpool
}  // namespace kqio
