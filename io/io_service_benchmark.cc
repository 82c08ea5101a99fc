// io::IoService against the obvious alternatives, in one run, with the
// ratios printed at the end (ns per item; ratio = kqio / peer, < 1: kqio
// faster).
//
//   PostThroughput/<impl>/producers:P   P threads post 200,000 closures in
//       all; the consumer runs them.  kqio: IoService::Post, consumer =
//       Run().  mutex_cv: std::mutex + std::condition_variable +
//       std::deque<std::function<void()>>, notify_one per push, consumer
//       swaps the whole deque out and runs it unlocked (the strong form of
//       the plain queue).  Thread start/join is inside the timing, for both.
//       Counter wakeups_per_post: EVFILT_USER triggers per post (kqio).
//   PingPong/<impl>   one round trip between two threads, each running a
//       loop: A posts to B, B posts back to A.  Unit: round trip.
//   TimerChurn/<impl>/<pattern>   start 1,000,000 timers, then cancel all.
//       Unit: one start + one cancel.  fixed: the same 10 s delay, cancelled
//       in start order (typical timeouts); random: delays of 1 ms..1000 s,
//       cancelled in random order.  Impls: kqio_service (IoService::RunAfter
//       + Cancel, which reads the monotonic clock per start), kqio_queue (the
//       TimerQueue alone, no clock), libuv (uv_timer_start/uv_timer_stop on
//       one loop; handles initialised outside the timing; libuv uses its
//       cached loop time, no clock read), multimap (std::multimap of
//       std::function, erase by iterator).
//
// Run:  bazel run -c opt //io:io_service_benchmark
// (defaults: 5 repetitions, aggregates only; flags given override them).
//
// Abseil's mutex deadlock detection is switched off first, as a release
// build of Abseil has it: Debian's libabsl is built without NDEBUG, so every
// absl::Mutex::Lock would otherwise update a process-wide lock graph (a
// global lock and ~100 ns), which is not what the loop costs.
// KQIO_BENCH_DEADLOCK_DETECTION=1 keeps Abseil's default, to see the
// difference.
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "bench/bench_main.h"
#include "benchmark/benchmark.h"
#include "io/io_service.h"
#include "io/timer_queue.h"

namespace kqio {
namespace io {
namespace {

#define BENCH_CHECK(cond)                                              \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
              #cond);                                                  \
      abort();                                                         \
    }                                                                  \
  } while (0)

// items_per_second for the console, and the constant items_per_iter for the
// ratio table (aggregates of a constant stay that constant).
void SetItemsPerIteration(benchmark::State& state, int items) {
  state.SetItemsProcessed(state.iterations() * items);
  state.counters["items_per_iter"] = items;
}

std::unique_ptr<IoService> NewService() {
  absl::StatusOr<std::unique_ptr<IoService>> s = IoService::Create();
  BENCH_CHECK(s.ok());
  return std::move(*s);
}

// ---------------------------------------------------------------------------
// The peer queue.

class MutexCvQueue {
 public:
  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }
  // Runs closures until one of them sets *done.
  void RunUntil(const bool* done) {
    std::deque<std::function<void()>> batch;
    while (!*done) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !q_.empty(); });
        batch.swap(q_);
      }
      for (std::function<void()>& fn : batch) fn();
      batch.clear();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
};

// ---------------------------------------------------------------------------
// Post throughput.

constexpr int kPostsPerIteration = 200000;

void BM_PostKqio(benchmark::State& state, int producers) {
  auto s = NewService();
  const Metrics before = s->metrics();
  for (auto _ : state) {
    struct Shared {
      int remaining = kPostsPerIteration;
      WorkGuard guard;
    } shared;
    shared.guard = s->MakeWorkGuard();
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&] {
        for (int i = 0; i < kPostsPerIteration / producers; ++i) {
          s->Post([sh = &shared] {
            if (--sh->remaining == 0) sh->guard.Reset();
          });
        }
      });
    }
    s->Run();
    for (std::thread& t : threads) t.join();
    BENCH_CHECK(shared.remaining == 0);
  }
  const Metrics after = s->metrics();
  const double posts =
      static_cast<double>(after.posts_cross_thread - before.posts_cross_thread);
  state.counters["wakeups_per_post"] =
      posts > 0 ? (after.wakeups_sent - before.wakeups_sent) / posts : 0;
  SetItemsPerIteration(state, kPostsPerIteration);
}

void BM_PostMutexCv(benchmark::State& state, int producers) {
  MutexCvQueue q;
  for (auto _ : state) {
    int remaining = kPostsPerIteration;
    bool done = false;
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
      threads.emplace_back([&] {
        for (int i = 0; i < kPostsPerIteration / producers; ++i) {
          q.Post([r = &remaining, d = &done] {
            if (--*r == 0) *d = true;
          });
        }
      });
    }
    q.RunUntil(&done);
    for (std::thread& t : threads) t.join();
  }
  state.counters["wakeups_per_post"] = 0;
  SetItemsPerIteration(state, kPostsPerIteration);
}

// The same closures, posted and then run by one thread: the bare cost of the
// queue (lock, store, wakeup bookkeeping, run, destroy), free of scheduling
// noise.  kqio: posted while no thread runs the loop, so through the
// cross-thread path; then Run().
void BM_PostOneThreadKqio(benchmark::State& state) {
  auto s = NewService();
  for (auto _ : state) {
    int remaining = kPostsPerIteration;
    for (int i = 0; i < kPostsPerIteration; ++i) {
      s->Post([r = &remaining] { --*r; });
    }
    s->Run();
    BENCH_CHECK(remaining == 0);
  }
  SetItemsPerIteration(state, kPostsPerIteration);
}

void BM_PostOneThreadMutexCv(benchmark::State& state) {
  MutexCvQueue q;
  for (auto _ : state) {
    int remaining = kPostsPerIteration;
    bool done = false;
    for (int i = 0; i < kPostsPerIteration; ++i) {
      q.Post([r = &remaining, d = &done] {
        if (--*r == 0) *d = true;
      });
    }
    q.RunUntil(&done);
  }
  SetItemsPerIteration(state, kPostsPerIteration);
}

// ---------------------------------------------------------------------------
// Ping-pong: the benchmark thread is A, a second thread is B.

void BM_PingPongKqio(benchmark::State& state) {
  auto a = NewService();
  auto b = NewService();
  WorkGuard a_guard = a->MakeWorkGuard();  // RunOnce() waits, never spins
  WorkGuard b_guard = b->MakeWorkGuard();
  std::thread b_thread([&] { b->Run(); });
  bool back = false;
  for (auto _ : state) {
    back = false;
    b->Post([&] { a->Post([&] { back = true; }); });
    while (!back) a->RunOnce();
  }
  b->Post([&] { b_guard.Reset(); });
  b_thread.join();
  SetItemsPerIteration(state, 1);
}

void BM_PingPongMutexCv(benchmark::State& state) {
  MutexCvQueue a, b;
  bool b_done = false;
  std::thread b_thread([&] { b.RunUntil(&b_done); });
  for (auto _ : state) {
    bool back = false;
    b.Post([&] { a.Post([&] { back = true; }); });
    a.RunUntil(&back);
  }
  b.Post([&] { b_done = true; });
  b_thread.join();
  SetItemsPerIteration(state, 1);
}

// ---------------------------------------------------------------------------
// Timer churn.

constexpr int kTimers = 1000000;

struct ChurnPlan {
  std::vector<int64_t> delay_ms;
  std::vector<int> cancel_order;
};

const ChurnPlan& Plan(bool random) {
  static const ChurnPlan* plans[2] = {nullptr, nullptr};
  const ChurnPlan*& p = plans[random ? 1 : 0];
  if (p == nullptr) {
    auto* plan = new ChurnPlan;
    std::mt19937_64 rng(1);
    plan->delay_ms.resize(kTimers);
    plan->cancel_order.resize(kTimers);
    std::iota(plan->cancel_order.begin(), plan->cancel_order.end(), 0);
    for (int64_t& d : plan->delay_ms) {
      d = random ? 1 + static_cast<int64_t>(rng() % 1000000) : 10000;
    }
    if (random) {
      std::shuffle(plan->cancel_order.begin(), plan->cancel_order.end(), rng);
    }
    p = plan;
  }
  return *p;
}

void BM_ChurnService(benchmark::State& state, bool random) {
  const ChurnPlan& plan = Plan(random);
  auto s = NewService();
  std::vector<TimerId> ids(kTimers);
  for (auto _ : state) {
    for (int i = 0; i < kTimers; ++i) {
      ids[i] = s->RunAfter(absl::Milliseconds(plan.delay_ms[i]), [] {});
    }
    for (int i : plan.cancel_order) s->Cancel(ids[i]);
  }
  BENCH_CHECK(s->metrics().timers_pending == 0);
  SetItemsPerIteration(state, kTimers);
}

void BM_ChurnQueue(benchmark::State& state, bool random) {
  const ChurnPlan& plan = Plan(random);
  TimerQueue q;
  std::vector<TimerId> ids(kTimers);
  const int64_t base = 1000000000;
  for (auto _ : state) {
    for (int i = 0; i < kTimers; ++i) {
      ids[i] = q.Add(base + plan.delay_ms[i] * 1000000, 0, [] {});
    }
    for (int i : plan.cancel_order) q.Cancel(ids[i]);
  }
  BENCH_CHECK(q.empty());
  SetItemsPerIteration(state, kTimers);
}

void UvNoop(uv_timer_t*) {}

void BM_ChurnLibuv(benchmark::State& state, bool random) {
  const ChurnPlan& plan = Plan(random);
  uv_loop_t loop;
  BENCH_CHECK(uv_loop_init(&loop) == 0);
  std::vector<uv_timer_t> timers(kTimers);
  for (uv_timer_t& t : timers) BENCH_CHECK(uv_timer_init(&loop, &t) == 0);
  for (auto _ : state) {
    for (int i = 0; i < kTimers; ++i) {
      uv_timer_start(&timers[i], UvNoop, plan.delay_ms[i], 0);
    }
    for (int i : plan.cancel_order) uv_timer_stop(&timers[i]);
  }
  for (uv_timer_t& t : timers) {
    uv_close(reinterpret_cast<uv_handle_t*>(&t), nullptr);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  BENCH_CHECK(uv_loop_close(&loop) == 0);
  SetItemsPerIteration(state, kTimers);
}

void BM_ChurnMultimap(benchmark::State& state, bool random) {
  const ChurnPlan& plan = Plan(random);
  using Map = std::multimap<int64_t, std::function<void()>>;
  Map m;
  std::vector<Map::iterator> its(kTimers);
  const int64_t base = 1000000000;
  for (auto _ : state) {
    for (int i = 0; i < kTimers; ++i) {
      its[i] = m.emplace(base + plan.delay_ms[i] * 1000000, [] {});
    }
    for (int i : plan.cancel_order) m.erase(its[i]);
  }
  BENCH_CHECK(m.empty());
  SetItemsPerIteration(state, kTimers);
}

// ---------------------------------------------------------------------------
// Registration and the ratio table.

// Real time throughout, and the minimum over the repetitions besides the
// median: on a shared machine foreign load only ever adds time.
void Configure(benchmark::internal::Benchmark* b) {
  b->UseRealTime();
  bench::AddMinStatistic(b);
}

void RegisterAll() {
  using benchmark::RegisterBenchmark;
  for (int p : {1, 2}) {
    const std::string suffix = "/producers:" + std::to_string(p);
    RegisterBenchmark(("PostThroughput/kqio" + suffix).c_str(), BM_PostKqio, p)
        ->Apply(Configure)
        ->Unit(benchmark::kMillisecond);
    RegisterBenchmark(("PostThroughput/mutex_cv" + suffix).c_str(),
                      BM_PostMutexCv, p)
        ->Apply(Configure)
        ->Unit(benchmark::kMillisecond);
  }
  RegisterBenchmark("PostOneThread/kqio", BM_PostOneThreadKqio)
      ->Apply(Configure)
      ->Unit(benchmark::kMillisecond);
  RegisterBenchmark("PostOneThread/mutex_cv", BM_PostOneThreadMutexCv)
      ->Apply(Configure)
      ->Unit(benchmark::kMillisecond);
  RegisterBenchmark("PingPong/kqio", BM_PingPongKqio)->Apply(Configure);
  RegisterBenchmark("PingPong/mutex_cv", BM_PingPongMutexCv)->Apply(Configure);
  for (bool random : {false, true}) {
    const std::string pattern = random ? "/random" : "/fixed";
    RegisterBenchmark(("TimerChurn/kqio_service" + pattern).c_str(),
                      BM_ChurnService, random)
        ->Apply(Configure)
        ->Unit(benchmark::kMillisecond);
    RegisterBenchmark(("TimerChurn/kqio_queue" + pattern).c_str(),
                      BM_ChurnQueue, random)
        ->Apply(Configure)
        ->Unit(benchmark::kMillisecond);
    RegisterBenchmark(("TimerChurn/libuv" + pattern).c_str(), BM_ChurnLibuv,
                      random)
        ->Apply(Configure)
        ->Unit(benchmark::kMillisecond);
    RegisterBenchmark(("TimerChurn/multimap" + pattern).c_str(),
                      BM_ChurnMultimap, random)
        ->Apply(Configure)
        ->Unit(benchmark::kMillisecond);
  }
}

// "PostThroughput/kqio/producers:1/real_time" -> case
// "PostThroughput/producers:1", impl "kqio".
std::pair<std::string, std::string> Split(std::string name) {
  const std::string rt = "/real_time";
  if (name.size() > rt.size() &&
      name.compare(name.size() - rt.size(), rt.size(), rt) == 0) {
    name.resize(name.size() - rt.size());
  }
  const size_t a = name.find('/');
  if (a == std::string::npos) return {name, ""};
  const size_t b = name.find('/', a + 1);
  const std::string impl = name.substr(a + 1, b == std::string::npos
                                                  ? std::string::npos
                                                  : b - a - 1);
  const std::string rest = b == std::string::npos ? "" : name.substr(b);
  return {name.substr(0, a) + rest, impl};
}

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  // Takes the "median" and "min" aggregates (or, without repetitions, the
  // single run as both), in ns per item.
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      auto it = run.counters.find("items_per_iter");
      if (it == run.counters.end() || it->second.value <= 0) continue;
      const double ns = run.GetAdjustedRealTime() /
                        benchmark::GetTimeUnitMultiplier(run.time_unit) * 1e9 /
                        it->second.value;
      auto [c, impl] = Split(run.run_name.str());
      Sample& sample = ns_[c][impl];
      if (run.run_type == Run::RT_Iteration) {
        sample.median = sample.min = ns;
      } else if (run.aggregate_name == "median") {
        sample.median = ns;
      } else if (run.aggregate_name == "min") {
        sample.min = ns;
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    printf("\nns per item over the repetitions (median, min); "
           "ratio = kqio / peer (< 1: kqio faster)\n");
    printf("%-34s %-13s %10s %10s | %-9s %10s %10s | %7s %7s\n", "case",
           "kqio impl", "med", "min", "peer", "med", "min", "r(med)",
           "r(min)");
    for (auto& [c, impls] : ns_) {
      const char* peer = impls.count("libuv") ? "libuv" : "mutex_cv";
      if (!impls.count(peer)) continue;
      const Sample p = impls[peer];
      for (auto& [impl, k] : impls) {
        if (impl == peer) continue;
        printf("%-34s %-13s %10.1f %10.1f | %-9s %10.1f %10.1f | %7.3f %7.3f\n",
               c.c_str(), impl.c_str(), k.median, k.min, peer, p.median, p.min,
               k.median / p.median, k.min / p.min);
      }
    }
    fflush(stdout);
  }

 private:
  struct Sample {
    double median = 0, min = 0;
  };
  // case -> impl -> ns per item.
  std::map<std::string, std::map<std::string, Sample>> ns_;
};

}  // namespace
}  // namespace io
}  // namespace kqio

int main(int argc, char** argv) {
  kqio::io::RatioReporter reporter(kqio::bench::ConsoleOutputOptions());
  return kqio::bench::RunBenchmarks(argc, argv,
                                    {"--benchmark_repetitions=5",
                                     "--benchmark_display_aggregates_only=true"},
                                    &reporter, kqio::io::RegisterAll);
}
