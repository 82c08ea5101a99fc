// IoService as the pool's executor: results on their way keep Run() going,
// and Shutdown() waits for them instead of losing them.
#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace io {
namespace {

using threadpool::Lane;
using threadpool::ThreadPool;

std::unique_ptr<IoService> NewService() {
  auto service = IoService::Create();
  EXPECT_TRUE(service.ok()) << service.status();
  return *std::move(service);
}

std::unique_ptr<ThreadPool> NewPool() {
  auto pool = ThreadPool::Create(threadpool::ThreadPoolOptions());
  EXPECT_TRUE(pool.ok()) << pool.status();
  return *std::move(pool);
}

TEST(IoServicePoolTest, RunWaitsForAPoolResult) {
  auto service = NewService();
  auto pool = NewPool();
  absl::Notification release;
  int result = 0;
  std::thread::id done_thread;
  ASSERT_TRUE(pool->Submit(
                      Lane::kGeneral, *service,
                      [&release] {
                        release.WaitForNotification();
                        return 42;
                      },
                      [&](absl::StatusOr<int> r) {
                        ASSERT_TRUE(r.ok());
                        result = *r;
                        done_thread = std::this_thread::get_id();
                      })
                  .ok());
  // The only work is on a worker: Run() must not return before it is back.
  service->RunAfter(absl::Milliseconds(20), [&release] { release.Notify(); });
  service->Run();
  EXPECT_EQ(result, 42);
  EXPECT_EQ(done_thread, std::this_thread::get_id());
}

TEST(IoServicePoolTest, RunWithOnlyPoolWorkDoesNotReturnEarly) {
  auto service = NewService();
  auto pool = NewPool();
  std::atomic<bool> worker_ran{false};
  bool done = false;
  ASSERT_TRUE(pool->Submit(
                      Lane::kGeneral, *service,
                      [&worker_ran] {
                        absl::SleepFor(absl::Milliseconds(30));
                        worker_ran = true;
                      },
                      [&done](absl::Status s) { done = s.ok(); })
                  .ok());
  service->Run();
  EXPECT_TRUE(worker_ran.load());
  EXPECT_TRUE(done);
}

TEST(IoServicePoolTest, ShutdownWaitsForRunningTasksAndDeliversThem) {
  auto service = NewService();
  auto pool = NewPool();
  absl::Notification started;
  int delivered = 0;
  absl::Status status;
  ASSERT_TRUE(pool->Submit(
                      Lane::kGeneral, *service,
                      [&started] {
                        started.Notify();
                        absl::SleepFor(absl::Milliseconds(30));
                      },
                      [&](absl::Status s) {
                        ++delivered;
                        status = s;
                      })
                  .ok());
  started.WaitForNotification();
  service->Shutdown();  // must not lose the completion, nor hang
  EXPECT_EQ(delivered, 1);
  EXPECT_TRUE(status.ok()) << status;
  // Destroying the service now is safe: nothing will post to it again.
  service.reset();
}

TEST(IoServicePoolTest, CancelledTaskStillCompletesOnceBeforeShutdownEnds) {
  auto service = NewService();
  threadpool::ThreadPoolOptions options;
  options.num_threads = 1;
  auto pool_or = ThreadPool::Create(options);
  ASSERT_TRUE(pool_or.ok());
  auto pool = *std::move(pool_or);
  absl::Notification release;
  int completions = 0;
  int cancelled = 0;
  // Occupy the one worker, then queue one more and cancel it.
  ASSERT_TRUE(pool->Submit(
                      Lane::kGeneral, *service,
                      [&release] { release.WaitForNotification(); },
                      [&completions](absl::Status) { ++completions; })
                  .ok());
  auto queued = pool->Submit(
      Lane::kData, *service, [] {},
      [&](absl::Status s) {
        ++completions;
        if (absl::IsCancelled(s)) ++cancelled;
      });
  ASSERT_TRUE(queued.ok());
  EXPECT_TRUE(queued->Cancel());
  release.Notify();
  service->Shutdown();
  EXPECT_EQ(completions, 2);
  EXPECT_EQ(cancelled, 1);
}

TEST(IoServicePoolTest, RefusedSubmissionLeavesNoWorkBehind) {
  auto service = NewService();
  threadpool::ThreadPoolOptions options;
  options.num_threads = 1;
  options.lanes[threadpool::LaneIndex(Lane::kSync)] = {1, 1};
  auto pool_or = ThreadPool::Create(options);
  ASSERT_TRUE(pool_or.ok());
  auto pool = *std::move(pool_or);
  absl::Notification started, release;
  int completions = 0;
  auto count = [&completions](absl::Status) { ++completions; };
  ASSERT_TRUE(pool->Submit(Lane::kSync, *service,
                           [&] {
                             started.Notify();
                             release.WaitForNotification();
                           },
                           count)
                  .ok());
  started.WaitForNotification();  // running: the queue (1 slot) is empty
  ASSERT_TRUE(pool->Submit(Lane::kSync, *service, [] {}, count).ok());
  auto refused = pool->Submit(Lane::kSync, *service, [] {}, count);
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status()));
  release.Notify();
  service->Run();  // returns once the two accepted tasks are back
  EXPECT_EQ(completions, 2);
}

}  // namespace
}  // namespace io
}  // namespace kqio
