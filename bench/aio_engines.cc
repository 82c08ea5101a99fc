// The engine-independent parts of bench/aio_engines.h.
#include "bench/aio_engines.h"

#include <sys/resource.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace kqio {
namespace bench {

const char* WorkloadName(Workload w) {
  switch (w) {
    case Workload::kRand4k:
      return "rand4k";
    case Workload::kSeq128k:
      return "seq128k";
    case Workload::kSmallFiles:
      return "smallfiles";
  }
  return "?";
}

const char* CacheName(Cache c) { return c == Cache::kHot ? "hot" : "cold"; }

std::string Cell::Name() const {
  std::string name = absl::StrCat(WorkloadName(workload), "/", CacheName(cache),
                                  "/qd", qd, "/", engine);
  if (threads > 0) absl::StrAppend(&name, "/t", threads);
  return name;
}

size_t BlockSize(Workload w) {
  switch (w) {
    case Workload::kRand4k:
      return 4096;
    case Workload::kSeq128k:
      return 128 * 1024;
    case Workload::kSmallFiles:
      return 0;
  }
  return 0;
}

OffsetGenerator::OffsetGenerator(Workload w, uint64_t file_bytes, uint64_t seed)
    : random_(w == Workload::kRand4k),
      blocks_(std::max<uint64_t>(1, file_bytes / BlockSize(w))),
      block_(BlockSize(w)),
      state_(seed * 0x9E3779B97F4A7C15ull + 1) {}

uint64_t OffsetGenerator::Next() {
  if (!random_) {
    const uint64_t offset = next_ * block_;
    next_ = (next_ + 1) % blocks_;
    return offset;
  }
  // splitmix64: cheap, and the same sequence for every engine.
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (z % blocks_) * block_;
}

namespace {

// User + system CPU of the whole process so far.
int64_t ProcessCpuNs() {
  struct rusage ru = {};
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const struct timeval& tv) {
    return int64_t{tv.tv_sec} * 1000000000 + int64_t{tv.tv_usec} * 1000;
  };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

}  // namespace

Recorder::Recorder(const Limits& limits)
    : begin_(Clock::now()),
      deadline_(begin_ + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(limits.seconds))),
      last_done_(begin_),
      cpu_begin_ns_(ProcessCpuNs()),
      max_ops_(limits.max_ops) {
  latency_ns_.reserve(1 << 16);
}

bool Recorder::MayStart() {
  if (failed()) return false;
  if (max_ops_ != 0 && started_ >= max_ops_) return false;
  if (Clock::now() >= deadline_) return false;
  ++started_;
  return true;
}

void Recorder::Done(Clock::time_point started, uint64_t bytes) {
  last_done_ = Clock::now();
  latency_ns_.push_back(
      std::chrono::duration_cast<std::chrono::nanoseconds>(last_done_ - started)
          .count());
  bytes_ += bytes;
}

void Recorder::Fail(std::string error) {
  if (error_.empty()) error_ = std::move(error);
}

Measurement Recorder::Finish() {
  Measurement m;
  m.ops = latency_ns_.size();
  m.bytes = bytes_;
  m.seconds = std::chrono::duration<double>(last_done_ - begin_).count();
  m.error = error_;
  if (!latency_ns_.empty()) {
    m.cpu_us_per_op = static_cast<double>(ProcessCpuNs() - cpu_begin_ns_) /
                      1e3 / static_cast<double>(latency_ns_.size());
    auto at = [&](double q) {
      const size_t i = std::min(latency_ns_.size() - 1,
                                static_cast<size_t>(q * latency_ns_.size()));
      std::nth_element(latency_ns_.begin(), latency_ns_.begin() + i,
                       latency_ns_.end());
      return latency_ns_[i] / 1e3;
    };
    m.p50_us = at(0.50);
    m.p99_us = at(0.99);
  }
  return m;
}

}  // namespace bench
}  // namespace kqio
