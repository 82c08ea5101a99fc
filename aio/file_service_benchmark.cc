// Random 4 KiB reads of a file in the page cache, through each engine
// available here, against a raw pread() loop on the benchmark thread, in one
// run; prints the time per read and the ratio to raw (> 1: slower).
//
//   raw               pread(), one at a time, on this thread
//   auto/qd1          FileService with its defaults: the page-cache fast path
//                     serves the read on the loop, completion posted
//   uring/qd1, /qd32  the io_uring engine (fast path skipped): one read at a
//                     time, or 32 kept in flight
//   pool/qd1, /qd32   the thread pool engine (4 workers, data lane 4 wide)
//
// Each iteration is one turn of the loop (raw: one pread); the table divides
// the time by the reads completed.  At qd1 that is the latency of a read; at
// qd32, the reciprocal of the throughput.  The cold-cache,
// larger-block and small-file workloads, and the comparisons with fio and
// libuv, belong to the engine-comparison benchmark (issue 4), not here.
//
//   ./bazelw run -c opt //aio:file_service_benchmark
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "aio/file_service.h"
#include "bench/mutex_mode.h"
#include "benchmark/benchmark.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace aio {
namespace {

constexpr size_t kFileBytes = size_t{64} << 20;
constexpr size_t kBlock = 4096;

#define BENCH_CHECK(cond)                                                   \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                  \
      std::abort();                                                         \
    }                                                                       \
  } while (0)

// One file, one service, one pool, one FileService for the whole run.
struct Env {
  std::string path;
  int raw_fd = -1;
  std::unique_ptr<io::IoService> service;
  std::unique_ptr<threadpool::ThreadPool> pool;
  std::unique_ptr<FileService> files;
  File file;
  std::mt19937_64 rng{42};

  Env() {
    const char* dir = std::getenv("TMPDIR");
    path = std::string(dir != nullptr ? dir : "/tmp") + "/kqio_aio_bench." +
           std::to_string(getpid());
    raw_fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    BENCH_CHECK(raw_fd >= 0);
    std::vector<char> chunk(1 << 20);
    for (size_t i = 0; i < chunk.size(); ++i)
      chunk[i] = static_cast<char>(i * 7);
    for (size_t done = 0; done < kFileBytes; done += chunk.size()) {
      BENCH_CHECK(write(raw_fd, chunk.data(), chunk.size()) ==
                  static_cast<ssize_t>(chunk.size()));
    }
    unlink(path.c_str());  // the descriptors keep it
    service = *io::IoService::Create();
    threadpool::ThreadPoolOptions po;
    po.num_threads = 4;
    po.lanes[threadpool::LaneIndex(threadpool::Lane::kData)] = {4, 4096};
    pool = *threadpool::ThreadPool::Create(po);
    files = *FileService::Create(*service, *pool);
    bool opened = false;
    files->Open("/proc/self/fd/" + std::to_string(raw_fd), O_RDONLY, 0,
                [&](absl::StatusOr<File> f) {
                  BENCH_CHECK(f.ok());
                  file = *std::move(f);
                  opened = true;
                });
    while (!opened) service->RunOnce();
  }

  uint64_t RandomOffset() { return (rng() % (kFileBytes / kBlock)) * kBlock; }
  bool Has(EngineKind kind) const {
    const CapabilityReport r = files->Capabilities();
    return kind != EngineKind::kUring || r.engines[0] == "uring: available";
  }
};

Env& GetEnv() {
  static Env* env = new Env();
  return *env;
}

void BM_Raw(benchmark::State& state) {
  Env& env = GetEnv();
  char buf[kBlock];
  for (auto _ : state) {
    BENCH_CHECK(pread(env.raw_fd, buf, kBlock,
                      static_cast<off_t>(env.RandomOffset())) == kBlock);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Engine(benchmark::State& state) {
  Env& env = GetEnv();
  const EngineKind kind = static_cast<EngineKind>(state.range(0));
  const int depth = static_cast<int>(state.range(1));
  if (!env.Has(kind)) {
    state.SkipWithError("engine not available here");
    return;
  }
  OpOptions opts;
  opts.engine = kind;  // explicit: no fast path (kAuto keeps it)
  std::vector<Buffer> spare;
  for (int i = 0; i < depth; ++i)
    spare.push_back(Buffer::Aligned(kBlock, 4096));
  int in_flight = 0;
  int64_t done = 0;
  auto issue = [&] {
    Buffer b = std::move(spare.back());
    spare.pop_back();
    ++in_flight;
    env.files->Read(
        env.file, env.RandomOffset(), std::move(b),
        [&](absl::StatusOr<IoResult> r) {
          BENCH_CHECK(r.ok() && r->bytes == kBlock);
          spare.push_back(std::move(r->buffer));
          --in_flight;
          ++done;
        },
        opts);
  };
  for (auto _ : state) {
    while (in_flight < depth) issue();
    env.service->RunOnce();
  }
  while (in_flight > 0) env.service->RunOnce();
  state.SetItemsProcessed(done);
}

BENCHMARK(BM_Raw)->Name("raw")->UseRealTime();
BENCHMARK(BM_Engine)
    ->Name("auto")
    ->ArgNames({"engine", "qd"})
    ->Args({static_cast<int>(EngineKind::kAuto), 1})
    ->UseRealTime();
BENCHMARK(BM_Engine)
    ->Name("uring")
    ->ArgNames({"engine", "qd"})
    ->Args({static_cast<int>(EngineKind::kUring), 1})
    ->Args({static_cast<int>(EngineKind::kUring), 32})
    ->UseRealTime();
BENCHMARK(BM_Engine)
    ->Name("pool")
    ->ArgNames({"engine", "qd"})
    ->Args({static_cast<int>(EngineKind::kPool), 1})
    ->Args({static_cast<int>(EngineKind::kPool), 32})
    ->UseRealTime();

// Collects the median real time per iteration of each benchmark and prints
// them against "raw" at the end.
class RatioReporter final : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const bool median =
          run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      const bool single = run.run_type == Run::RT_Iteration;
      auto rate = run.counters.find("items_per_second");
      if ((!median && !single) || rate == run.counters.end() ||
          rate->second.value <= 0) {
        continue;
      }
      std::string name = run.run_name.function_name;
      if (!run.run_name.args.empty()) name += "/" + run.run_name.args;
      const double ns = 1e9 / rate->second.value;  // per read
      if (median || ns_.count(name) == 0) ns_[name] = ns;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    auto raw = ns_.find("raw");
    if (raw == ns_.end()) return;
    std::printf(
        "\n4 KiB random reads, page cache hot: ns per read (median); "
        "ratio = engine / raw pread (> 1: slower)\n");
    std::printf("%-28s %10s %8s %12s\n", "benchmark", "ns/read", "ratio",
                "reads/s");
    for (const auto& [name, ns] : ns_) {
      std::printf("%-28s %10.1f %8.2f %12.0f\n", name.c_str(), ns,
                  ns / raw->second, 1e9 / ns);
    }
    Env& env = GetEnv();
    std::printf("\n%s\n%s", env.files->metrics().ToString().c_str(),
                env.files->EngineStats().c_str());
  }

 private:
  std::map<std::string, double> ns_;
};

}  // namespace
}  // namespace aio
}  // namespace kqio

int main(int argc, char** argv) {
  kqio::bench::UseReleaseMutexMode();  // see bench/mutex_mode.h
  std::vector<std::string> defaults = {
      "--benchmark_repetitions=5",
      "--benchmark_min_time=0.2",
      "--benchmark_display_aggregates_only=true",
  };
  std::vector<char*> args = {argv[0]};
  for (std::string& d : defaults) args.push_back(d.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  kqio::aio::GetEnv();  // the file, the service and its threads first
  kqio::aio::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
