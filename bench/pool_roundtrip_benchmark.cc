// A blocking operation's round trip through kqio (threadpool::ThreadPool +
// io::IoService) against libuv's (uv_queue_work + uv_loop_t), side by side in
// one run.
//
//   RoundTrip/<impl>/window:W
//     The loop thread (the benchmark's own) submits a task; a pool worker
//     runs it (trivial work: only the machinery is measured) and hands the
//     result back; the loop wakes, runs the completion, which submits the
//     next.  W trips in flight: W=1 is latency (two cross-thread wakeups per
//     trip), W=64 throughput.  kqio: lane kGeneral, capped at the pool size,
//     back through IoService::Post (one EVFILT_USER trigger per sleep of the
//     loop).  libuv: uv_work_t requests reused, back through its uv_async.
//     Unit: round trip.
//
// Pool size: libuv sizes its one process-wide pool from UV_THREADPOOL_SIZE
// when it is first used, so a run has a single size.  This binary sets it to
// 2 (the cores of the machine it was written on) unless it is set, and gives
// kqio's pool the same; run again with UV_THREADPOOL_SIZE=1 for one worker.
//
// At the end: median and minimum over the repetitions of the real time per
// round trip of each, ratios kqio/libuv (> 1: kqio slower), trips per second.
// cpu_ns_per_trip is the CPU time of the whole process per trip.
//
// Run (defaults: 20 repetitions, interleaved at random, 0.05 s each):
//   bazel run -c opt //bench:pool_roundtrip_benchmark
//   UV_THREADPOOL_SIZE=1 bazel-bin/bench/pool_roundtrip_benchmark
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <uv.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/bench_main.h"
#include "benchmark/benchmark.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace {

constexpr int kTripsPerIteration = 2000;

#define BENCH_CHECK(cond)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

int PoolSize() { return atoi(getenv("UV_THREADPOOL_SIZE")); }

int TrivialWork() {
  static volatile int one = 1;
  return one;
}

// Trips in flight and trips done; every member is touched by the loop thread
// only.
struct Trips {
  int total = 0, issued = 0, done = 0;
  void Reset(int n) { total = n, issued = done = 0; }
};

class KqioSide {
 public:
  KqioSide() {
    auto service = io::IoService::Create();
    BENCH_CHECK(service.ok());
    service_ = *std::move(service);
    threadpool::ThreadPoolOptions options;
    options.num_threads = PoolSize();
    options.lanes[threadpool::LaneIndex(threadpool::Lane::kGeneral)] = {
        options.num_threads, 4096};
    auto pool = threadpool::ThreadPool::Create(options);
    BENCH_CHECK(pool.ok());
    pool_ = *std::move(pool);
  }

  void RunTrips(int trips, int window) {
    trips_.Reset(trips);
    guard_ = service_->MakeWorkGuard();  // the pool's work is not the loop's
    for (int i = 0; i < window && trips_.issued < trips; ++i) Issue();
    service_->Run();
    BENCH_CHECK(trips_.done == trips);
  }

 private:
  void Issue() {
    ++trips_.issued;
    auto handle = pool_->Submit(threadpool::Lane::kGeneral, *service_,
                                &TrivialWork, [this](absl::StatusOr<int> r) {
                                  BENCH_CHECK(r.ok() && *r == 1);
                                  if (++trips_.done == trips_.total) {
                                    guard_.Reset();
                                  } else if (trips_.issued < trips_.total) {
                                    Issue();
                                  }
                                });
    BENCH_CHECK(handle.ok());
  }

  // Destroyed in reverse: the pool (joins its workers) before the service.
  std::unique_ptr<io::IoService> service_;
  std::unique_ptr<threadpool::ThreadPool> pool_;
  io::WorkGuard guard_;
  Trips trips_;
};

class UvSide {
 public:
  UvSide() { BENCH_CHECK(uv_loop_init(&loop_) == 0); }
  ~UvSide() { uv_loop_close(&loop_); }

  void RunTrips(int trips, int window) {
    trips_.Reset(trips);
    requests_.resize(window);
    for (Request& r : requests_) {
      if (trips_.issued == trips) break;
      r.side = this;
      Issue(&r);
    }
    uv_run(&loop_, UV_RUN_DEFAULT);  // returns when no request is left
    BENCH_CHECK(trips_.done == trips);
  }

 private:
  struct Request {
    uv_work_t work;  // first: the callbacks cast back from it
    UvSide* side = nullptr;
    int result = 0;
  };

  void Issue(Request* r) {
    ++trips_.issued;
    BENCH_CHECK(uv_queue_work(&loop_, &r->work, &WorkCb, &AfterWorkCb) == 0);
  }
  static void WorkCb(uv_work_t* work) {
    reinterpret_cast<Request*>(work)->result = TrivialWork();
  }
  static void AfterWorkCb(uv_work_t* work, int status) {
    Request* r = reinterpret_cast<Request*>(work);
    BENCH_CHECK(status == 0 && r->result == 1);
    UvSide* side = r->side;
    ++side->trips_.done;
    if (side->trips_.issued < side->trips_.total) side->Issue(r);
  }

  uv_loop_t loop_;
  std::vector<Request> requests_;
  Trips trips_;
};

int64_t ProcessCpuNanos() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const struct timeval& tv) {
    return int64_t{tv.tv_sec} * 1000000000 + int64_t{tv.tv_usec} * 1000;
  };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

template <typename Side>
void BM_RoundTrip(benchmark::State& state) {
  const int window = static_cast<int>(state.range(0));
  Side side;
  side.RunTrips(window, window);  // warm up: pool threads started and parked
  const int64_t cpu = ProcessCpuNanos();
  for (auto _ : state) side.RunTrips(kTripsPerIteration, window);
  const double trips =
      static_cast<double>(state.iterations()) * kTripsPerIteration;
  state.SetItemsProcessed(static_cast<int64_t>(trips));
  state.counters["trips_per_iter"] = kTripsPerIteration;
  state.counters["threads"] = PoolSize();
  if (trips > 0) {
    state.counters["cpu_ns_per_trip"] = (ProcessCpuNanos() - cpu) / trips;
  }
}

void RegisterAll() {
  auto configure = [](benchmark::internal::Benchmark* b) {
    b->ArgName("window")
        ->Arg(1)
        ->Arg(64)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond)
        ->Apply(bench::AddMinStatistic);
  };
  configure(
      benchmark::RegisterBenchmark("RoundTrip/libuv", &BM_RoundTrip<UvSide>));
  configure(
      benchmark::RegisterBenchmark("RoundTrip/kqio", &BM_RoundTrip<KqioSide>));
}

}  // namespace
}  // namespace kqio

int main(int argc, char** argv) {
  setenv("UV_THREADPOOL_SIZE", "2", /*overwrite=*/0);  // before libuv starts
  BENCH_CHECK(kqio::PoolSize() >= 1);
  char title[128];
  snprintf(title, sizeof(title),
           "Real time per round trip (ns), %d pool thread(s); ratio = "
           "kqio/libuv (> 1: kqio slower)",
           kqio::PoolSize());
  kqio::bench::PairRatioTable table;
  table.peer = "libuv";
  table.per_op_counter = "trips_per_iter";
  table.title = title;
  table.footer = "(trips per second: from the medians)";
  kqio::bench::PairRatioReporter reporter(std::move(table),
                                          kqio::bench::ConsoleOutputOptions());
  return kqio::bench::RunBenchmarks(
      argc, argv, kqio::bench::InterleavedRepetitionFlags(20, 0.05), &reporter,
      kqio::RegisterAll);
}
