// LatencyHistogram: a fixed-size, lock-free histogram of durations.
//
// Buckets are powers of two in nanoseconds (bucket i holds [2^i, 2^(i+1)) ns;
// bucket 0 also holds 0), which covers 1 ns to ~9 minutes in 40 buckets with
// a relative error under 2x -- enough to tell a 20 us pool hop from a 2 ms
// disk read, which is what the metrics are for.  Record() is one relaxed
// atomic increment plus two adds, so it can sit on every hot path; any
// thread may call it.  Snapshot() reads without stopping writers: a snapshot
// taken while others record is consistent per bucket, not across buckets.
//
// Used by the pool (wait and run time per lane) and by io::IoService (latency
// per operation class); it lives here because the pool may not depend on io/.
#ifndef KQIO_THREADPOOL_LATENCY_HISTOGRAM_H_
#define KQIO_THREADPOOL_LATENCY_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace kqio {
namespace threadpool {

// For sampled latencies: true once in `every` calls that share `countdown`
// (a thread_local of the caller's; 0 to start), never when `every` is 0.
// Callers with different `every` may share one countdown.
inline bool SampleOneIn(uint32_t every, uint32_t& countdown) {
  if (every == 0) return false;
  if (countdown > every) countdown = every;
  if (countdown > 1) {
    --countdown;
    return false;
  }
  countdown = every;
  return true;
}

class LatencyHistogram final {
 public:
  static constexpr int kBuckets = 40;

  struct Snapshot {
    std::array<uint64_t, kBuckets> buckets{};
    uint64_t count = 0;
    uint64_t sum_ns = 0;
    uint64_t max_ns = 0;

    // The upper edge of the bucket holding quantile `q` (0 < q <= 1), so a
    // reported p99 is never below the true one.  Zero when empty.
    absl::Duration Percentile(double q) const;
    absl::Duration Mean() const;
    // Adds `other` into this snapshot (e.g. to sum lanes or services).
    void Merge(const Snapshot& other);
    // "n=12 mean=3.1us p50=4us p99=16us max=15.2us"
    std::string ToString() const;
  };

  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  void Record(absl::Duration d);
  void RecordNanos(uint64_t ns);
  Snapshot Read() const;

  // The bucket `ns` falls in; exposed for tests.
  static int BucketOf(uint64_t ns);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

}  // namespace threadpool
}  // namespace kqio

#endif  // KQIO_THREADPOOL_LATENCY_HISTOGRAM_H_
