#include "threadpool/thread_pool.h"

#include <errno.h>
#include <sys/resource.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "threadpool/test_executor.h"

namespace kqio {
namespace threadpool {
namespace {

// Generous: only a broken pool gets near it, even under TSan.
constexpr absl::Duration kTimeout = absl::Seconds(60);

std::unique_ptr<ThreadPool> MakePool(int threads,
                                     ThreadPoolOptions options = {}) {
  options.num_threads = threads;
  auto pool = ThreadPool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return pool.ok() ? *std::move(pool) : nullptr;
}

ThreadPoolOptions AllLanes(int max_running, int max_queued) {
  ThreadPoolOptions options;
  for (LaneOptions& lane : options.lanes) lane = {max_running, max_queued};
  return options;
}

// Occupies one worker of `lane` until the returned gate is notified; waits
// until the work has started.
std::shared_ptr<absl::Notification> BlockWorker(ThreadPool& pool,
                                                Executor& executor,
                                                Lane lane = Lane::kGeneral) {
  auto gate = std::make_shared<absl::Notification>();
  auto started = std::make_shared<absl::Notification>();
  auto handle = pool.Submit(
      lane, executor,
      [gate, started] {
        started->Notify();
        gate->WaitForNotificationWithTimeout(kTimeout);
      },
      [](absl::Status s) { EXPECT_TRUE(s.ok()) << s; });
  EXPECT_TRUE(handle.ok()) << handle.status();
  EXPECT_TRUE(started->WaitForNotificationWithTimeout(kTimeout));
  return gate;
}

constexpr Lane kAllLanes[] = {Lane::kMetadata, Lane::kData, Lane::kSync,
                              Lane::kGeneral};

TEST(ThreadPoolTest, EveryLaneDeliversThroughTheExecutorNeverInline) {
  auto pool = MakePool(2);
  QueueExecutor executor;
  const std::thread::id test_thread = std::this_thread::get_id();
  std::vector<std::thread::id> work_thread(kLaneCount), done_thread(kLaneCount);
  std::vector<int> value(kLaneCount, -1);
  for (Lane lane : kAllLanes) {
    const int i = LaneIndex(lane);
    ASSERT_TRUE(pool->Submit(
                        lane, executor,
                        [&work_thread, i] {
                          work_thread[i] = std::this_thread::get_id();
                          return i * 10;
                        },
                        [&, i](absl::StatusOr<int> v) {
                          done_thread[i] = std::this_thread::get_id();
                          value[i] = v.ok() ? *v : -2;
                        })
                    .ok());
  }
  ASSERT_TRUE(executor.WaitForPosted(kLaneCount));
  // Every work has run, but no completion until the executor runs it.
  for (int i = 0; i < kLaneCount; ++i) EXPECT_EQ(value[i], -1);
  EXPECT_EQ(executor.RunAll(), kLaneCount);
  for (int i = 0; i < kLaneCount; ++i) {
    EXPECT_EQ(value[i], i * 10);
    EXPECT_NE(work_thread[i], test_thread);
    EXPECT_EQ(done_thread[i], test_thread);
  }
}

TEST(ThreadPoolTest, ResultFormsVoidStatusAndStatusOr) {
  auto pool = MakePool(1);
  QueueExecutor executor;
  absl::Status void_result = absl::UnknownError("unset");
  absl::Status status_result;
  absl::StatusOr<int> statusor_result;
  ASSERT_TRUE(pool->Submit(
                      Lane::kGeneral, executor, [] {},
                      [&](absl::Status s) { void_result = s; })
                  .ok());
  ASSERT_TRUE(pool->Submit(
                      Lane::kGeneral, executor,
                      [] { return absl::NotFoundError("no such file"); },
                      [&](absl::Status s) { status_result = s; })
                  .ok());
  // A work returning StatusOr<T> is not wrapped twice.
  ASSERT_TRUE(pool->Submit(
                      Lane::kGeneral, executor,
                      []() -> absl::StatusOr<int> {
                        return absl::PermissionDeniedError("denied");
                      },
                      [&](absl::StatusOr<int> v) { statusor_result = v; })
                  .ok());
  ASSERT_TRUE(executor.WaitForPosted(3));
  executor.RunAll();
  EXPECT_TRUE(void_result.ok()) << void_result;
  EXPECT_EQ(status_result.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(statusor_result.status().code(),
            absl::StatusCode::kPermissionDenied);
}

// kSync capped at 1 on a 2-worker pool: a second fsync waits although a
// worker is free, and that free worker still serves metadata.
TEST(ThreadPoolTest, LaneCapKeepsSyncFromTakingEveryWorker) {
  ThreadPoolOptions options = AllLanes(2, 16);
  options.lanes[LaneIndex(Lane::kSync)].max_running = 1;
  auto pool = MakePool(2, options);
  QueueExecutor executor;
  std::atomic<int> in_sync{0}, max_in_sync{0};
  auto fsync_like = [&](std::shared_ptr<absl::Notification> gate,
                        std::shared_ptr<absl::Notification> started) {
    return [&, gate, started] {
      const int now = in_sync.fetch_add(1) + 1;
      int seen = max_in_sync.load();
      while (now > seen && !max_in_sync.compare_exchange_weak(seen, now)) {
      }
      started->Notify();
      gate->WaitForNotificationWithTimeout(kTimeout);
      in_sync.fetch_sub(1);
    };
  };
  auto gate = std::make_shared<absl::Notification>();
  auto a_started = std::make_shared<absl::Notification>();
  auto b_started = std::make_shared<absl::Notification>();
  int ok = 0;
  auto count_ok = [&ok](absl::Status s) { ok += s.ok(); };
  ASSERT_TRUE(
      pool->Submit(Lane::kSync, executor, fsync_like(gate, a_started), count_ok)
          .ok());
  ASSERT_TRUE(a_started->WaitForNotificationWithTimeout(kTimeout));
  ASSERT_TRUE(
      pool->Submit(Lane::kSync, executor, fsync_like(gate, b_started), count_ok)
          .ok());
  ASSERT_TRUE(pool->Submit(
                      Lane::kMetadata, executor, [] {}, count_ok)
                  .ok());
  ASSERT_TRUE(executor.WaitForPosted(1));  // the metadata task, not starved
  EXPECT_FALSE(b_started->HasBeenNotified());
  ThreadPoolMetrics m = pool->Metrics();
  EXPECT_EQ(m.lanes[LaneIndex(Lane::kSync)].running, 1);
  EXPECT_EQ(m.lanes[LaneIndex(Lane::kSync)].queue_depth, 1);
  gate->Notify();
  ASSERT_TRUE(executor.WaitForPosted(3));
  executor.RunAll();
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(max_in_sync.load(), 1);
}

// One worker, busy: three data tasks are queued, then three metadata tasks.
// The worker alternates between the lanes instead of serving the queue in
// submission order or emptying one lane first.
TEST(ThreadPoolTest, WorkersServeLanesRoundRobin) {
  auto pool = MakePool(1, AllLanes(1, 16));
  QueueExecutor executor;
  auto gate = BlockWorker(*pool, executor, Lane::kGeneral);
  std::vector<std::string> order;  // written by the single worker only
  auto submit = [&](Lane lane, const char* name) {
    ASSERT_TRUE(pool->Submit(
                        lane, executor,
                        [&order, name] { order.push_back(name); },
                        [](absl::Status) {})
                    .ok());
  };
  for (const char* name : {"d1", "d2", "d3"}) submit(Lane::kData, name);
  for (const char* name : {"m1", "m2", "m3"}) submit(Lane::kMetadata, name);
  gate->Notify();
  ASSERT_TRUE(executor.WaitForPosted(7));
  executor.RunAll();
  EXPECT_EQ(order,
            (std::vector<std::string>{"m1", "d1", "m2", "d2", "m3", "d3"}));
}

TEST(ThreadPoolTest, FullLaneRefusesAtSubmissionAndOthersStillAccept) {
  ThreadPoolOptions options = AllLanes(1, 8);
  options.lanes[LaneIndex(Lane::kData)].max_queued = 2;
  auto pool = MakePool(1, options);
  QueueExecutor executor;
  auto gate = BlockWorker(*pool, executor, Lane::kData);
  int completions = 0;
  ASSERT_TRUE(pool->Submit(
                      Lane::kData, executor, [] {},
                      [&](absl::Status) { ++completions; })
                  .ok());
  ASSERT_TRUE(pool->Submit(
                      Lane::kData, executor, [] {},
                      [&](absl::Status) { ++completions; })
                  .ok());
  bool rejected_work_ran = false, rejected_done_ran = false;
  auto captured = std::make_shared<int>(0);
  auto refused = pool->Submit(
      Lane::kData, executor, [&, captured] { rejected_work_ran = true; },
      [&](absl::Status) { rejected_done_ran = true; });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(captured.use_count(), 1);  // the refused task is already gone
  ASSERT_TRUE(pool->Submit(
                      Lane::kMetadata, executor, [] {},
                      [&](absl::Status) { ++completions; })
                  .ok());
  gate->Notify();
  ASSERT_TRUE(executor.WaitForPosted(4));
  executor.RunAll();
  EXPECT_EQ(completions, 3);
  EXPECT_FALSE(rejected_work_ran);
  EXPECT_FALSE(rejected_done_ran);
  ThreadPoolMetrics m = pool->Metrics();
  EXPECT_EQ(m.lanes[LaneIndex(Lane::kData)].rejected, 1u);
  EXPECT_EQ(m.lanes[LaneIndex(Lane::kData)].max_queue_depth, 2);
  EXPECT_EQ(m.lanes[LaneIndex(Lane::kMetadata)].rejected, 0u);
}

TEST(ThreadPoolTest, CancelQueuedCompletesAtOnceWithoutRunning) {
  auto pool = MakePool(1);
  QueueExecutor executor;
  auto gate = BlockWorker(*pool, executor);
  bool ran = false;
  absl::StatusOr<int> result = 0;
  auto handle = pool->Submit(
      Lane::kGeneral, executor,
      [&ran] {
        ran = true;
        return 1;
      },
      [&](absl::StatusOr<int> v) { result = v; });
  ASSERT_TRUE(handle.ok());
  EXPECT_TRUE(handle->Cancel());
  EXPECT_FALSE(handle->Cancel());
  // Posted while the only worker is still blocked: the task left the queue.
  ASSERT_TRUE(executor.WaitForPosted(1));
  EXPECT_EQ(executor.RunAll(), 1);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(pool->Metrics().lanes[LaneIndex(Lane::kGeneral)].queue_depth, 0);
  gate->Notify();
  pool->Shutdown(ThreadPool::Mode::kDrain);
  executor.RunAll();
  EXPECT_FALSE(ran);
}

TEST(ThreadPoolTest, CancelRunningSendsResultToCleanupOnce) {
  auto pool = MakePool(1);
  QueueExecutor executor;
  auto gate = std::make_shared<absl::Notification>();
  absl::Notification started;
  std::atomic<int> cleanups{0};
  std::thread::id cleanup_thread;
  absl::StatusOr<std::unique_ptr<int>> result;
  auto handle = pool->Submit(
      Lane::kMetadata, executor,
      [&started, gate] {
        started.Notify();
        gate->WaitForNotificationWithTimeout(kTimeout);
        return std::make_unique<int>(42);  // e.g. a descriptor
      },
      [&](absl::StatusOr<std::unique_ptr<int>> v) { result = std::move(v); },
      [&](std::unique_ptr<int> v) {
        EXPECT_EQ(*v, 42);
        cleanup_thread = std::this_thread::get_id();
        cleanups.fetch_add(1);
      });
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kTimeout));
  EXPECT_TRUE(handle->Cancel());
  gate->Notify();
  ASSERT_TRUE(executor.WaitForPosted(1));
  EXPECT_EQ(cleanups.load(), 1);  // on the worker, before the hand-off
  EXPECT_NE(cleanup_thread, std::this_thread::get_id());
  executor.RunAll();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(cleanups.load(), 1);
  EXPECT_FALSE(handle->Cancel());
}

TEST(ThreadPoolTest, CancelAfterFinishBeforeDeliveryCleansUpOnTheLoop) {
  auto pool = MakePool(1);
  QueueExecutor executor;
  int cleaned = -1;
  std::thread::id cleanup_thread;
  absl::StatusOr<int> result = 0;
  auto handle = pool->Submit(
      Lane::kMetadata, executor, [] { return 7; },
      [&](absl::StatusOr<int> v) { result = v; },
      [&](int v) {
        cleaned = v;
        cleanup_thread = std::this_thread::get_id();
      });
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(executor.WaitForPosted(1));
  EXPECT_TRUE(handle->Cancel());
  EXPECT_EQ(cleaned, -1);
  executor.RunAll();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(cleaned, 7);
  EXPECT_EQ(cleanup_thread, std::this_thread::get_id());
}

TEST(ThreadPoolTest, CancelAfterDeliveryIsANoOp) {
  auto pool = MakePool(1);
  QueueExecutor executor;
  bool cleaned = false;
  absl::StatusOr<int> result = 0;
  TaskHandle handle = *pool->Submit(
      Lane::kData, executor, [] { return 5; },
      [&](absl::StatusOr<int> v) {
        result = v;
        EXPECT_FALSE(handle.Cancel());  // from inside its own completion
      },
      [&](int) { cleaned = true; });
  ASSERT_TRUE(executor.WaitForPosted(1));
  executor.RunAll();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(*result, 5);
  EXPECT_FALSE(handle.Cancel());
  EXPECT_FALSE(TaskHandle().Cancel());
  EXPECT_FALSE(cleaned);
  EXPECT_EQ(executor.RunAll(), 0);
}

// Tasks cancelled from several threads while workers run them and two loops
// deliver them: every task completes exactly once, a successful Cancel()
// always means CancelledError, and a result nobody got reaches cleanup.
TEST(ThreadPoolTest, CancelRacesCompleteEachTaskExactlyOnce) {
  constexpr int kTasks = 20000;
  constexpr int kCancellers = 3;
  auto pool = MakePool(2, AllLanes(2, kTasks));
  std::vector<std::atomic<int>> ran(kTasks), done(kTasks), cancelled(kTasks),
      cleaned(kTasks), cancel_won(kTasks);
  std::vector<TaskHandle> handles(kTasks);
  std::vector<std::atomic<bool>> published(kTasks);
  std::atomic<int> total_done{0};
  {
    ThreadExecutor loops[2];
    std::thread submitter([&] {
      for (int i = 0; i < kTasks; ++i) {
        auto handle = pool->Submit(
            kAllLanes[i % kLaneCount], loops[i % 2],
            [&, i] {
              ran[i].fetch_add(1);
              if (i % 7 == 0) {  // linger, to be cancelled while running
                for (volatile int spin = 0; spin < 2000; ++spin) {
                }
              }
              return i;
            },
            [&, i](absl::StatusOr<int> v) {
              done[i].fetch_add(1);
              if (!v.ok()) {
                EXPECT_EQ(v.status().code(), absl::StatusCode::kCancelled);
                cancelled[i].fetch_add(1);
              } else {
                EXPECT_EQ(*v, i);
              }
              total_done.fetch_add(1);
            },
            [&, i](int v) {
              EXPECT_EQ(v, i);
              cleaned[i].fetch_add(1);
            });
        ASSERT_TRUE(handle.ok()) << handle.status();
        handles[i] = *handle;
        published[i].store(true, std::memory_order_release);
      }
    });
    std::vector<std::thread> cancellers;
    for (int t = 0; t < kCancellers; ++t) {
      cancellers.emplace_back([&, t] {
        for (int i = 0; i < kTasks; ++i) {
          if ((i * 2654435761u + t) % 3 != 0) continue;  // ~1 in 3 per thread
          while (!published[i].load(std::memory_order_acquire)) {
            std::this_thread::yield();
          }
          if (handles[i].Cancel()) cancel_won[i].fetch_add(1);
        }
      });
    }
    submitter.join();
    for (auto& t : cancellers) t.join();
    pool->Shutdown(ThreadPool::Mode::kDrain);
  }  // the loops run every posted completion before joining
  EXPECT_EQ(total_done.load(), kTasks);
  int cancels = 0;
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_EQ(done[i].load(), 1) << i;
    ASSERT_LE(cancel_won[i].load(), 1) << i;
    ASSERT_EQ(cancel_won[i].load(), cancelled[i].load()) << i;
    ASSERT_LE(ran[i].load(), 1) << i;
    if (cancelled[i].load()) {
      ASSERT_EQ(cleaned[i].load(), ran[i].load()) << i;
      ++cancels;
    } else {
      ASSERT_EQ(ran[i].load(), 1) << i;
      ASSERT_EQ(cleaned[i].load(), 0) << i;
    }
  }
  EXPECT_GT(cancels, 0);
}

// Several submitters, 120k tasks over all lanes, two loops: each completion
// exactly once.  A full lane is retried, as a caller under load would.
TEST(ThreadPoolTest, StressEveryCompletionExactlyOnce) {
  constexpr int kSubmitters = 4;
  constexpr int kPerSubmitter = 30000;
  constexpr int kTasks = kSubmitters * kPerSubmitter;
  auto pool = MakePool(3, AllLanes(2, 512));
  std::vector<std::atomic<int>> done(kTasks);
  std::atomic<int> total{0};
  std::atomic<uint64_t> refusals{0};
  {
    ThreadExecutor loops[2];
    std::vector<std::thread> submitters;
    for (int s = 0; s < kSubmitters; ++s) {
      submitters.emplace_back([&, s] {
        for (int k = 0; k < kPerSubmitter; ++k) {
          const int id = s * kPerSubmitter + k;
          for (;;) {
            auto h = pool->Submit(
                kAllLanes[id % kLaneCount], loops[id % 2], [id] { return id; },
                [&, id](absl::StatusOr<int> v) {
                  EXPECT_TRUE(v.ok() && *v == id);
                  done[id].fetch_add(1);
                  total.fetch_add(1);
                });
            if (h.ok()) break;
            ASSERT_EQ(h.status().code(), absl::StatusCode::kResourceExhausted);
            refusals.fetch_add(1);
            std::this_thread::yield();
          }
        }
      });
    }
    for (auto& t : submitters) t.join();
    pool->Shutdown(ThreadPool::Mode::kDrain);
  }
  EXPECT_EQ(total.load(), kTasks);
  for (int i = 0; i < kTasks; ++i) ASSERT_EQ(done[i].load(), 1) << i;
  ThreadPoolMetrics m = pool->Metrics();
  uint64_t submitted = 0, completed = 0, rejected = 0;
  for (const LaneMetrics& l : m.lanes) {
    submitted += l.submitted;
    completed += l.completed;
    rejected += l.rejected;
    EXPECT_LE(l.max_queue_depth, 512);
  }
  EXPECT_EQ(submitted, uint64_t{kTasks});
  EXPECT_EQ(completed, uint64_t{kTasks});
  EXPECT_EQ(rejected, refusals.load());
}

// Shutdown() from another thread while tasks are queued behind a blocked
// worker.  Returns the queued tasks' results, in submission order.
std::vector<absl::Status> ShutdownWithQueuedWork(ThreadPool::Mode mode,
                                                 std::vector<bool>* ran) {
  auto pool = MakePool(1);
  QueueExecutor executor;
  auto gate = BlockWorker(*pool, executor);
  constexpr int kQueued = 5;
  std::vector<absl::Status> results(kQueued, absl::UnknownError("unset"));
  ran->assign(kQueued, false);
  for (int i = 0; i < kQueued; ++i) {
    EXPECT_TRUE(pool->Submit(
                        Lane::kGeneral, executor,
                        [ran, i] { (*ran)[i] = true; },
                        [&results, i](absl::Status s) { results[i] = s; })
                    .ok());
  }
  std::thread stopper([&] { pool->Shutdown(mode); });
  // Submit fails as soon as the shutdown has begun; the worker is still
  // busy.  A probe accepted before that is cancelled again at once.
  int probes = 0;
  for (;;) {
    auto h = pool->Submit(
        Lane::kGeneral, executor, [] { ADD_FAILURE(); },
        [](absl::Status s) {
          EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
        });
    if (!h.ok()) {
      EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
      break;
    }
    ++probes;
    // Lost only to a kCancel shutdown, which cancels it too.
    if (!h->Cancel()) {
      EXPECT_EQ(mode, ThreadPool::Mode::kCancel);
    }
  }
  if (mode == ThreadPool::Mode::kCancel) {
    // Cancelled completions are posted before the running task ends.
    EXPECT_TRUE(executor.WaitForPosted(probes + kQueued));
  }
  gate->Notify();
  stopper.join();
  executor.RunAll();
  EXPECT_EQ(pool->Metrics().lanes[LaneIndex(Lane::kGeneral)].running, 0);
  return results;
}

TEST(ThreadPoolTest, ShutdownDrainRunsEverythingQueued) {
  std::vector<bool> ran;
  for (const absl::Status& s :
       ShutdownWithQueuedWork(ThreadPool::Mode::kDrain, &ran)) {
    EXPECT_TRUE(s.ok()) << s;
  }
  for (bool r : ran) EXPECT_TRUE(r);
}

TEST(ThreadPoolTest, ShutdownCancelCancelsQueuedAndFinishesRunning) {
  std::vector<bool> ran;
  for (const absl::Status& s :
       ShutdownWithQueuedWork(ThreadPool::Mode::kCancel, &ran)) {
    EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  }
  for (bool r : ran) EXPECT_FALSE(r);
}

TEST(ThreadPoolTest, DestroyWithQueuedWorkCancelsItAndWaitsForWorkers) {
  auto pool = MakePool(1);
  QueueExecutor executor;
  auto gate = BlockWorker(*pool, executor);
  std::atomic<bool> ran{false};
  std::vector<absl::Status> results;
  std::vector<TaskHandle> handles;
  for (int i = 0; i < 3; ++i) {
    handles.push_back(*pool->Submit(
        Lane::kGeneral, executor, [&ran] { ran = true; },
        [&results](absl::Status s) { results.push_back(s); }));
  }
  std::thread destroyer([&pool] { pool.reset(); });
  ASSERT_TRUE(executor.WaitForPosted(3));  // cancelled while still blocked
  gate->Notify();
  destroyer.join();
  executor.RunAll();
  ASSERT_EQ(results.size(), 3u);
  for (const absl::Status& s : results) {
    EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  }
  EXPECT_FALSE(ran.load());
  for (TaskHandle& h : handles) EXPECT_FALSE(h.Cancel());  // pool gone
}

TEST(ThreadPoolTest, SubmitAfterShutdownFailsWithoutCallingAnything) {
  auto pool = MakePool(2);
  QueueExecutor executor;
  pool->Shutdown(ThreadPool::Mode::kDrain);
  pool->Shutdown(ThreadPool::Mode::kCancel);  // idempotent
  bool called = false;
  auto h = pool->Submit(
      Lane::kMetadata, executor, [&] { called = true; },
      [&](absl::Status) { called = true; });
  EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(executor.RunAll(), 0);
  EXPECT_FALSE(called);
  EXPECT_EQ(pool->Metrics().lanes[LaneIndex(Lane::kMetadata)].rejected, 1u);
}

TEST(ThreadPoolTest, BadOptionsAreInvalidArgument) {
  auto expect_invalid = [](ThreadPoolOptions o) {
    auto pool = ThreadPool::Create(o);
    EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  };
  ThreadPoolOptions o;
  o.num_threads = 0;
  expect_invalid(o);
  o.num_threads = -3;
  expect_invalid(o);
  o.num_threads = 100000;
  expect_invalid(o);
  for (Lane lane : kAllLanes) {
    ThreadPoolOptions p;
    p.lanes[LaneIndex(lane)].max_running = 0;
    expect_invalid(p);
    p = ThreadPoolOptions();
    p.lanes[LaneIndex(lane)].max_queued = 0;
    expect_invalid(p);
  }
  o = ThreadPoolOptions();
  o.worker_nice = -1;  // would need privilege, and outrank the loop
  expect_invalid(o);
  o.worker_nice = 20;
  expect_invalid(o);
  EXPECT_TRUE(ThreadPool::Create(ThreadPoolOptions()).ok());
}

#if defined(__linux__)
// Each worker's own nice value, as the worker itself reads it.
std::vector<int> WorkerNiceValues(ThreadPool& pool, int threads) {
  QueueExecutor executor;
  std::vector<int> seen;
  // Every worker blocked at once, so that each reports once.
  std::atomic<int> started{0};
  absl::Notification all_started;
  for (int i = 0; i < threads; ++i) {
    EXPECT_TRUE(pool.Submit(
                        Lane::kGeneral, executor,
                        [&]() -> int {
                          const int nice = getpriority(
                              PRIO_PROCESS,
                              static_cast<id_t>(syscall(SYS_gettid)));
                          if (started.fetch_add(1) + 1 == threads) {
                            all_started.Notify();
                          }
                          all_started.WaitForNotificationWithTimeout(kTimeout);
                          return nice;
                        },
                        [&seen](absl::StatusOr<int> nice) {
                          ASSERT_TRUE(nice.ok()) << nice.status();
                          seen.push_back(*nice);
                        })
                    .ok());
  }
  EXPECT_TRUE(executor.WaitForPosted(static_cast<size_t>(threads)));
  executor.RunAll();
  return seen;
}

TEST(ThreadPoolTest, WorkersRunNicerThanTheirCreator) {
  errno = 0;
  const int mine = getpriority(PRIO_PROCESS,
                               static_cast<id_t>(syscall(SYS_gettid)));
  ASSERT_EQ(errno, 0);
  ThreadPoolOptions options = AllLanes(2, 16);
  options.worker_nice = 5;
  auto pool = MakePool(2, options);
  EXPECT_EQ(WorkerNiceValues(*pool, 2),
            std::vector<int>(2, std::min(19, mine + 5)));
  EXPECT_EQ(pool->Metrics().workers_niced, 2);

  options.worker_nice = 0;
  auto plain = MakePool(2, options);
  EXPECT_EQ(WorkerNiceValues(*plain, 2), std::vector<int>(2, mine));
  EXPECT_EQ(plain->Metrics().workers_niced, 0);
  // The creator itself is untouched.
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))),
            mine);
}
#endif  // __linux__

// The wait and run histograms time one task in latency_sample_every per
// submitting thread; the counters count every task.
TEST(ThreadPoolTest, LatenciesAreSampled) {
  for (uint32_t every : {0u, 4u}) {
    ThreadPoolOptions options;
    options.latency_sample_every = every;
    auto pool = MakePool(2, options);
    QueueExecutor executor;
    for (int i = 0; i < 16; ++i) {
      ASSERT_TRUE(pool->Submit(
                          Lane::kData, executor, [] { return 1; },
                          [](absl::StatusOr<int>) {})
                      .ok());
    }
    ASSERT_TRUE(executor.WaitForPosted(16));
    executor.RunAll();
    pool->Shutdown(ThreadPool::Mode::kDrain);
    const LaneMetrics m = pool->Metrics().lanes[LaneIndex(Lane::kData)];
    EXPECT_EQ(m.completed, 16u);
    EXPECT_EQ(m.wait.count, every == 0 ? 0u : 4u) << every;
    EXPECT_EQ(m.run.count, every == 0 ? 0u : 4u) << every;
  }
}

TEST(ThreadPoolTest, MetricsAddUp) {
  ThreadPoolOptions options = AllLanes(1, 4);
  options.latency_sample_every = 1;  // every task timed
  auto pool = MakePool(1, options);
  QueueExecutor executor;
  auto gate = BlockWorker(*pool, executor, Lane::kSync);
  std::vector<TaskHandle> data;
  for (int i = 0; i < 4; ++i) {
    data.push_back(*pool->Submit(
        Lane::kData, executor, [] { return 1; }, [](absl::StatusOr<int>) {}));
  }
  EXPECT_FALSE(pool->Submit(
                       Lane::kData, executor, [] { return 1; },
                       [](absl::StatusOr<int>) {})
                   .ok());
  EXPECT_TRUE(data[0].Cancel());
  ThreadPoolMetrics before = pool->Metrics();
  const LaneMetrics& d = before.lanes[LaneIndex(Lane::kData)];
  EXPECT_EQ(d.queue_depth, 3);
  EXPECT_EQ(d.max_queue_depth, 4);
  EXPECT_EQ(before.lanes[LaneIndex(Lane::kSync)].running, 1);
  gate->Notify();
  ASSERT_TRUE(executor.WaitForPosted(5));
  executor.RunAll();
  // A worker leaves `running` just after posting; Shutdown waits for that.
  pool->Shutdown(ThreadPool::Mode::kDrain);
  ThreadPoolMetrics m = pool->Metrics();
  const LaneMetrics& data_lane = m.lanes[LaneIndex(Lane::kData)];
  EXPECT_EQ(data_lane.submitted, 4u);
  EXPECT_EQ(data_lane.rejected, 1u);
  EXPECT_EQ(data_lane.completed, 3u);
  EXPECT_EQ(data_lane.cancelled, 1u);
  EXPECT_EQ(data_lane.queue_depth, 0);
  EXPECT_EQ(data_lane.running, 0);
  EXPECT_EQ(data_lane.wait.count, 3u);  // only tasks that started
  EXPECT_EQ(data_lane.run.count, 3u);
  const LaneMetrics& sync_lane = m.lanes[LaneIndex(Lane::kSync)];
  EXPECT_EQ(sync_lane.submitted, 1u);
  EXPECT_EQ(sync_lane.completed, 1u);
  EXPECT_EQ(m.num_threads, 1);
  const std::string text = m.ToString();
  for (const char* needle : {"metadata:", "data: submitted=4 completed=3",
                             "cancelled=1 rejected=1", "sync:", "general:"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
}

}  // namespace
}  // namespace threadpool
}  // namespace kqio
