// threadpool::ThreadPool against the plainest pool that does the same job,
// side by side in one run: std::mutex + std::condition_variable +
// std::deque<std::function<void()>>, written below.  Both hand each result to
// the same Executor, a loop thread with a mutex+condvar queue that is woken
// only when its queue goes from empty to non-empty (as io::IoService does).
//
//   RoundTrip/<impl>/threads:T/window:W
//     The loop thread submits a task; a worker runs it (the work is trivial,
//     so only the pool's own cost is measured) and posts the completion back
//     to the loop, which counts it and submits the next.  W round trips are
//     kept in flight: W=1 measures latency (two cross-thread wakeups per
//     trip), W=64 throughput.  T workers; kqio uses one lane (kGeneral) with
//     cap T.  Unit: round trip.  vcsw_per_trip = voluntary context switches
//     of the whole process per trip (how often a thread really slept);
//     cpu_ns_per_trip = CPU time of all its threads per trip (less sensitive
//     to other load on the machine than the real time).
//
// At the end the binary prints, per case, the median and the minimum over the
// repetitions of the real time per round trip of each pool, the ratios
// kqio/plain (> 1: kqio slower) and round trips per second.  What kqio pays
// for on top: lanes and caps, a bounded queue, cancellation, one allocation
// per task (the plain pool's std::function fits its small buffer), three clock
// reads and two histogram updates.
//
// Debian's libabsl is built without NDEBUG, so every absl::Mutex::Lock also
// runs Abseil's deadlock detector (a release build of Abseil does not): about
// 400 of kqio's ~2300 instructions per round trip under callgrind.
// bench/mutex_mode.h turns it off (KQIO_BENCH_DEADLOCK_DETECTION=1 keeps
// it), to see the pool as a release build would.
//
// KQIO_BENCH_ITERATIONS=N fixes every benchmark's iteration count (for
// callgrind, where instruction counts per trip are then exact).
//
// Run (defaults: 20 repetitions of each benchmark, interleaved at random,
// 0.05 s each; any flag given overrides them):
//   bazel run -c opt //threadpool:thread_pool_benchmark
#include <stdlib.h>
#include <sys/resource.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "bench/bench_main.h"
#include "benchmark/benchmark.h"
#include "threadpool/executor.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace threadpool {
namespace {

constexpr int kTripsPerIteration = 2000;

// The executor both pools deliver to: one thread, a locked batch queue,
// notified only on the empty -> non-empty transition.
class LoopThread final : public Executor {
 public:
  LoopThread() : thread_([this] { Run(); }) {}
  ~LoopThread() override {
    Post(nullptr);  // an empty closure stops the loop
    thread_.join();
  }
  void Post(absl::AnyInvocable<void()> fn) override {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      wake = queue_.empty();
      queue_.push_back(std::move(fn));
    }
    if (wake) cv_.notify_one();
  }

 private:
  void Run() {
    std::vector<absl::AnyInvocable<void()>> batch;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        batch.swap(queue_);
      }
      for (auto& fn : batch) {
        if (fn == nullptr) return;
        fn();
      }
      batch.clear();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<absl::AnyInvocable<void()>> queue_;
  std::thread thread_;
};

// The baseline: a fixed pool over one locked deque of std::function.
class PlainPool final {
 public:
  explicit PlainPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~PlainPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void Submit(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// (Not benchmark::DoNotOptimize(int&): GCC at -O1 miscompiles its "+r,m"
// asm constraint here, and the result check in OnDone() catches it.)
int TrivialWork() {
  static volatile int one = 1;
  return one;
}

// Keeps `window` round trips in flight until `trips` have completed.  Every
// method but Start() and Wait() runs on the loop thread.  Pool: has
// SubmitOne(Driver*).
template <typename Pool>
class Driver {
 public:
  Driver(Pool& pool, LoopThread& loop) : pool_(pool), loop_(loop) {}

  void RunTrips(int trips, int window) {
    trips_ = trips;
    issued_ = done_ = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = false;
    }
    loop_.Post([this, window] {
      for (int i = 0; i < window && issued_ < trips_; ++i) Issue();
    });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return finished_; });
  }

  void OnDone(int result) {
    if (result != 1) abort();
    if (++done_ == trips_) {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
      cv_.notify_one();
    } else if (issued_ < trips_) {
      Issue();
    }
  }

  LoopThread& loop() { return loop_; }

 private:
  void Issue() {
    ++issued_;
    pool_.SubmitOne(this);
  }

  Pool& pool_;
  LoopThread& loop_;
  int trips_ = 0, issued_ = 0, done_ = 0;  // loop thread only
  std::mutex mu_;
  std::condition_variable cv_;
  bool finished_ = false;
};

struct PlainSide {
  PlainPool pool;
  explicit PlainSide(int threads) : pool(threads) {}
  void SubmitOne(Driver<PlainSide>* d) {
    pool.Submit([d] {
      const int r = TrivialWork();
      d->loop().Post([d, r] { d->OnDone(r); });
    });
  }
};

struct KqioSide {
  std::unique_ptr<ThreadPool> pool;
  explicit KqioSide(int threads) {
    ThreadPoolOptions options;
    options.num_threads = threads;
    options.lanes[LaneIndex(Lane::kGeneral)] = {threads, 4096};
    pool = *ThreadPool::Create(options);
  }
  void SubmitOne(Driver<KqioSide>* d) {
    auto handle = pool->Submit(Lane::kGeneral, d->loop(), &TrivialWork,
                               [d](absl::StatusOr<int> r) { d->OnDone(*r); });
    if (!handle.ok()) abort();
  }
};

// The whole process's voluntary context switches and CPU time (ns).
struct Usage {
  int64_t switches;
  int64_t cpu_ns;
};
Usage ProcessUsage() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  auto ns = [](const struct timeval& tv) {
    return int64_t{tv.tv_sec} * 1000000000 + int64_t{tv.tv_usec} * 1000;
  };
  return {ru.ru_nvcsw, ns(ru.ru_utime) + ns(ru.ru_stime)};
}

template <typename Side>
void BM_RoundTrip(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int window = static_cast<int>(state.range(1));
  LoopThread loop;
  Side side(threads);
  Driver<Side> driver(side, loop);
  driver.RunTrips(window, window);  // warm up: threads started and parked
  const Usage before = ProcessUsage();
  for (auto _ : state) driver.RunTrips(kTripsPerIteration, window);
  const Usage after = ProcessUsage();
  const double trips =
      static_cast<double>(state.iterations()) * kTripsPerIteration;
  state.SetItemsProcessed(static_cast<int64_t>(trips));
  state.counters["trips_per_iter"] = kTripsPerIteration;
  if (trips > 0) {
    state.counters["vcsw_per_trip"] =
        (after.switches - before.switches) / trips;
    state.counters["cpu_ns_per_trip"] = (after.cpu_ns - before.cpu_ns) / trips;
  }
}

void RegisterAll() {
  auto configure = [](benchmark::internal::Benchmark* b) {
    b->ArgNames({"threads", "window"})
        ->Args({1, 1})
        ->Args({2, 1})
        ->Args({1, 64})
        ->Args({2, 64})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond)
        ->Apply(bench::AddMinStatistic);
    const char* env = getenv("KQIO_BENCH_ITERATIONS");
    if (env != nullptr && atoi(env) > 0) b->Iterations(atoi(env));
  };
  configure(benchmark::RegisterBenchmark("RoundTrip/plain",
                                         &BM_RoundTrip<PlainSide>));
  configure(
      benchmark::RegisterBenchmark("RoundTrip/kqio", &BM_RoundTrip<KqioSide>));
}

}  // namespace
}  // namespace threadpool
}  // namespace kqio

int main(int argc, char** argv) {
  kqio::bench::PairRatioTable table;
  table.peer = "plain";
  table.per_op_counter = "trips_per_iter";
  table.title =
      "Real time per round trip (ns); ratio = kqio/plain (> 1: kqio slower)";
  table.footer = "(round trips per second: from the medians)";
  table.case_width = 36;
  kqio::bench::PairRatioReporter reporter(std::move(table),
                                          kqio::bench::ConsoleOutputOptions());
  return kqio::bench::RunBenchmarks(
      argc, argv, kqio::bench::InterleavedRepetitionFlags(20, 0.05), &reporter,
      kqio::threadpool::RegisterAll);
}
