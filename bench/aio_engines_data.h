// The files //bench:aio_engines_benchmark reads, and the page cache state
// of each cell.
//
// TestData writes one big file (random and sequential reads) and N small
// files of 1-64 KiB in a fresh directory, flushes them to disk (a cold read
// must reach the device, and posix_fadvise(DONTNEED) drops only clean
// pages), and checks whether O_DIRECT works there.  Destroying it removes
// what it wrote, unless told to keep it.  Single-threaded.
#ifndef KQIO_BENCH_AIO_ENGINES_DATA_H_
#define KQIO_BENCH_AIO_ENGINES_DATA_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bench/aio_engines.h"

namespace kqio {
namespace bench {

struct DataOptions {
  std::string dir = "/tmp";
  std::string existing_file;  // read this instead of writing a big file
  uint64_t file_bytes = uint64_t{256} << 20;
  int small_files = 10000;
  bool keep = false;
};

class TestData final {
 public:
  static absl::StatusOr<std::unique_ptr<TestData>> Create(
      const DataOptions& options);
  ~TestData();
  TestData(const TestData&) = delete;
  TestData& operator=(const TestData&) = delete;

  const Data& data() const { return data_; }
  std::string Describe() const;

  // Before a cell.  Hot: reads the cell's files through once.  Cold:
  // evicts them with posix_fadvise(DONTNEED) (the big file only when
  // O_DIRECT is not available; cold cells open it O_DIRECT otherwise).
  void Prepare(Workload workload, Cache cache);

 private:
  TestData() = default;
  absl::Status WriteBig(uint64_t bytes);
  absl::Status WriteSmall(int count);

  Data data_;
  std::string dir_;  // ours to remove; empty if none was made
  bool owns_big_ = false;
  bool keep_ = false;
};

}  // namespace bench
}  // namespace kqio

#endif  // KQIO_BENCH_AIO_ENGINES_DATA_H_
