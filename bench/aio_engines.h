// Shared pieces of //bench:aio_engines_benchmark (issue 4): what a cell of
// the comparison is, what it measured, the test data on disk, and the
// runners for each engine (kqio's FileService on io_uring / the pool / its
// defaults, libuv's uv_fs_*, glibc's POSIX AIO).
//
// A runner measures one cell: it keeps `qd` operations in flight for
// `seconds` (or until `max_ops` were started), then waits for the ones in
// flight, and reports the operations that completed, their bytes, the time
// from the first submission to the last completion and the latency of each
// operation (submission to callback).  Runners create and destroy every
// thread they use, so between cells the driver may fork() (libuv's and
// glibc's thread pools are sized once per process; each of their cells runs
// in a child).
//
// Thread-safety: none; everything here runs on the driver's one thread.
#ifndef KQIO_BENCH_AIO_ENGINES_H_
#define KQIO_BENCH_AIO_ENGINES_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kqio {
namespace bench {

enum class Workload { kRand4k, kSeq128k, kSmallFiles };
enum class Cache { kHot, kCold };

const char* WorkloadName(Workload w);  // "rand4k", "seq128k", "smallfiles"
const char* CacheName(Cache c);        // "hot", "cold"

// Engines, as named in the table and the JSON.
inline constexpr char kKqioUring[] = "kqio-uring";  // io_uring, no fast path
inline constexpr char kKqioPool[] = "kqio-pool";    // thread pool, no fast path
inline constexpr char kKqioAuto[] = "kqio-auto";    // FileService defaults
inline constexpr char kLibuv[] = "libuv";           // uv_fs_* on its pool
inline constexpr char kPosixAio[] = "posix-aio";    // glibc aio_read

struct Cell {
  Workload workload = Workload::kRand4k;
  Cache cache = Cache::kHot;
  std::string engine;
  int threads = 0;  // pool size; 0 where the engine uses none (io_uring)
  int qd = 1;       // operations kept in flight
  // "rand4k/hot/qd32/kqio-pool/t4": what --filter matches.
  std::string Name() const;
};

struct Measurement {
  uint64_t ops = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  double p50_us = 0;
  double p99_us = 0;
  // Process CPU time (user + system, every thread; io_uring's kernel
  // workers too on Linux 5.12 and later) over the cell, per operation.
  double cpu_us_per_op = 0;
  std::string error;  // empty: ok
  // Where kqio's reads went: "fast path 793/0, uring 0, pool 0".
  std::string note;
};

// The files a run reads.  Owned by the driver; read-only for runners.
struct Data {
  std::string big_path;  // random and sequential reads
  uint64_t big_bytes = 0;
  std::vector<std::string> small_paths;  // 1-64 KiB each
  uint64_t small_bytes = 0;
  bool direct_ok = false;  // O_DIRECT works on big_path's file system
};

// How long a cell runs, and the most operations it starts (0: no cap).
struct Limits {
  double seconds = 1.0;
  uint64_t max_ops = 0;
  uint64_t seed = 1;
};

size_t BlockSize(Workload w);  // 4 KiB or 128 KiB; 0 for small files

// Offsets for the read workloads: random block-aligned, or sequential
// wrapping at the end of the file.
class OffsetGenerator final {
 public:
  OffsetGenerator(Workload w, uint64_t file_bytes, uint64_t seed);
  uint64_t Next();

 private:
  bool random_;
  uint64_t blocks_;
  uint64_t block_;
  uint64_t state_;
  uint64_t next_ = 0;
};

// Latencies of one cell, and the clock every runner uses.
class Recorder final {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Recorder(const Limits& limits);

  // True while a new operation may start (time and op cap); counts it.
  bool MayStart();
  void Done(Clock::time_point started, uint64_t bytes);
  void Fail(std::string error);
  bool failed() const { return !error_.empty(); }
  Measurement Finish();

 private:
  Clock::time_point begin_;
  Clock::time_point deadline_;
  Clock::time_point last_done_;
  int64_t cpu_begin_ns_;
  uint64_t max_ops_;
  uint64_t started_ = 0;
  uint64_t bytes_ = 0;
  std::vector<int64_t> latency_ns_;
  std::string error_;
};

// Runners (one per engine family).  An error status means the cell could
// not be set up (the engine is missing); errors during the run are in
// Measurement::error.
absl::StatusOr<Measurement> RunKqio(const Cell& cell, const Data& data,
                                    const Limits& limits);
absl::StatusOr<Measurement> RunLibuv(const Cell& cell, const Data& data,
                                     const Limits& limits);
absl::StatusOr<Measurement> RunPosixAio(const Cell& cell, const Data& data,
                                        const Limits& limits);
std::string LibuvVersion();
// FileService::Capabilities() here, as text.
std::string KqioCapabilities();

}  // namespace bench
}  // namespace kqio

#endif  // KQIO_BENCH_AIO_ENGINES_H_
