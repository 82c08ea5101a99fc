// Executors for tests of code that completes through threadpool::Executor
// (the pool, and anything built on it) without an io::IoService.
//
//   QueueExecutor   closures run only when the test calls RunAll(), on the
//                   test's thread; WaitForPosted(n) waits (bounded) for posts.
//   ThreadExecutor  one thread of its own, like a loop; its destructor runs
//                   everything posted before it, then joins.
//
// Both are thread-safe.  Test-only.
#ifndef KQIO_THREADPOOL_TEST_EXECUTOR_H_
#define KQIO_THREADPOOL_TEST_EXECUTOR_H_

#include <deque>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "threadpool/executor.h"

namespace kqio {
namespace threadpool {

// An Executor whose closures run only when the test calls RunAll(), on the
// test's thread: so a test sees exactly what was posted and when.
class QueueExecutor final : public Executor {
 public:
  void Post(absl::AnyInvocable<void()> fn) override {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(fn));
    ++posted_;
  }

  // Waits until `n` closures have been posted in all; false after `timeout`.
  bool WaitForPosted(int n, absl::Duration timeout = absl::Seconds(60)) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return posted_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

  // Runs what is queued, and what those closures post, on this thread.
  int RunAll() {
    int ran = 0;
    for (;;) {
      std::deque<absl::AnyInvocable<void()>> batch;
      {
        absl::MutexLock lock(&mu_);
        batch.swap(queue_);
      }
      if (batch.empty()) return ran;
      for (auto& fn : batch) {
        fn();
        ++ran;
      }
    }
  }

  int posted() {
    absl::MutexLock lock(&mu_);
    return posted_;
  }

 private:
  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int posted_ ABSL_GUARDED_BY(mu_) = 0;
};

// An Executor with its own thread, like an IoService's loop.  The destructor
// runs everything posted before it, then joins.
class ThreadExecutor final : public Executor {
 public:
  ThreadExecutor() : thread_([this] { Loop(); }) {}
  ~ThreadExecutor() override {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }
  void Post(absl::AnyInvocable<void()> fn) override {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(fn));
  }

 private:
  void Loop() {
    for (;;) {
      std::deque<absl::AnyInvocable<void()>> batch;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || !queue_.empty();
        };
        mu_.Await(absl::Condition(&ready));
        if (queue_.empty()) return;  // stop_ and drained
        batch.swap(queue_);
      }
      for (auto& fn : batch) fn();
    }
  }

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace threadpool
}  // namespace kqio

#endif  // KQIO_THREADPOOL_TEST_EXECUTOR_H_
