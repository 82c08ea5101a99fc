// ThreadPool: the pool that runs kqio's blocking operations.
//
// Work that would block an event loop (open, stat, pread, fsync, close,
// getaddrinfo, user tasks) runs here on a fixed set of worker threads, and
// each result goes back to the loop that asked for it as one closure posted
// to that loop's Executor (threadpool/executor.h).  Several loops may share
// one pool; each Submit() names its own Executor.
//
// Lanes, not one queue (ARCHITECTURE.md, contract 5).  Every task belongs to
// a Lane; each lane has a concurrency cap (how many of its tasks may run at
// once) and a bounded queue.  A worker takes the next task round-robin from
// the lanes that are under their cap, so a lane at its cap cannot take more
// workers however long its queue is: slow fsyncs cannot starve opens.  A full
// queue refuses the task at submission with ResourceExhaustedError; nothing
// queues without bound.
//
//   ThreadPoolOptions options;
//   options.num_threads = 4;
//   options.lanes[LaneIndex(Lane::kSync)] = {/*max_running=*/1,
//                                            /*max_queued=*/256};
//   auto pool = ThreadPool::Create(options);  // InvalidArgument if bad
//   auto handle = (*pool)->Submit(
//       Lane::kMetadata, service,              // service: an Executor
//       [path] { return OpenFile(path); },     // StatusOr<int>, on a worker
//       [](absl::StatusOr<int> fd) { ... },    // on service's thread
//       [](int fd) { close(fd); });            // result nobody wants
//   if (!handle.ok()) ...                      // full / shut down
//   handle->Cancel();
//
// Completions.  Every accepted task gets exactly one completion, always via
// Executor::Post (never inside Submit, never on a worker): its result, or
// CancelledError.  A refused Submit (error returned) never calls anything.
//
// Cancellation (TaskHandle::Cancel, any thread, returns whether it changed
// the outcome):
//   queued     -> taken out of its queue; the work never runs; the completion
//                 gets CancelledError.                                -> true
//   running    -> cannot be interrupted.  When the work returns, its result
//                 goes to the cleanup hook on the worker; the completion
//                 gets CancelledError.                                -> true
//   finished, completion not yet run -> the completion, on the executor's
//                 thread, finds the cancel, passes the result to the cleanup
//                 hook there and reports CancelledError.              -> true
//   completion already running or run, or cancelled before   -> no-op, false
// The cleanup hook only ever sees a successful result (an error has nothing
// to release), at most once; without a hook a cancelled result is dropped.
//
// Lifetimes.  The Executor passed to Submit must accept Post() until the
// task's completion has run.  The callables are destroyed where they finish:
// the work on its worker after it runs (or with the completion if it never
// ran), the completion and cleanup on the executor's thread; a refused
// task's inside Submit.  A TaskHandle
// may outlive the pool; the rules above still hold for it.
//
// Shutdown.  Shutdown(kDrain) runs everything queued; Shutdown(kCancel)
// completes queued tasks with CancelledError.  Either way running tasks
// finish, no worker outlives the call, and later Submits fail with
// FailedPreconditionError.  The destructor is Shutdown(kCancel).  Neither may
// be called from inside a pool task (it would wait for itself).
//
// Thread-safety: all methods of ThreadPool and TaskHandle are thread-safe.
// The pool lock is held only to move tasks between queues; no user code runs
// under it.
#ifndef KQIO_THREADPOOL_THREAD_POOL_H_
#define KQIO_THREADPOOL_THREAD_POOL_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "threadpool/executor.h"
#include "threadpool/latency_histogram.h"

namespace kqio {
namespace threadpool {

enum class Lane : int {
  kMetadata = 0,  // open, stat, close
  kData = 1,      // pread, pwrite
  kSync = 2,      // fsync
  kGeneral = 3,   // getaddrinfo, user tasks
};
inline constexpr int kLaneCount = 4;
constexpr int LaneIndex(Lane lane) { return static_cast<int>(lane); }
// "metadata", "data", "sync", "general".
absl::string_view LaneName(Lane lane);

struct LaneOptions {
  int max_running = 1;    // tasks of this lane running at once, >= 1
  int max_queued = 1024;  // tasks waiting to start, >= 1; more are refused
};

struct ThreadPoolOptions {
  int num_threads = 4;  // 1..1024
  // Indexed by LaneIndex().  The defaults leave every lane at most half of
  // the default pool, and fsync one worker.
  std::array<LaneOptions, kLaneCount> lanes = {{
      {2, 4096},  // kMetadata
      {2, 4096},  // kData
      {1, 1024},  // kSync
      {2, 1024},  // kGeneral
  }};
  // LaneMetrics::wait and run time one task in this many per submitting
  // thread (1: every task; 0: none).  Three clock reads per task were 5% of
  // the CPU of a pool serving 500,000 cached 4 KiB reads a second.
  uint32_t latency_sample_every = 16;
  // Workers run this much nicer than the thread that created the pool
  // (0..19; Linux only, where a thread's nice value is its own: elsewhere
  // setpriority() would renice the whole process, so it is left alone).
  // Every result passes through the event loop's one thread; with more
  // runnable workers than cores, an equal share of the CPU each leaves
  // that thread short, and the loop, not the disk or the pool, sets the
  // pace.  At +5 the scheduler weighs the loop about three times a worker
  // while both are runnable; workers still take all the CPU the loop
  // leaves.  Threads a worker starts inherit its nice value, and a pool
  // created from a worker adds its own on top.
  int worker_nice = 5;
};

// A copy of the pool's counters.  After every accepted task's completion has
// run: submitted == completed + cancelled per lane.
struct LaneMetrics {
  uint64_t submitted = 0;   // accepted by Submit
  uint64_t rejected = 0;    // refused by Submit: lane full or pool shut down
  uint64_t completed = 0;   // completion ran with the task's own result
  uint64_t cancelled = 0;   // completion ran with CancelledError
  int queue_depth = 0;      // waiting now
  int max_queue_depth = 0;  // most ever waiting at once
  int running = 0;          // on a worker now
  // Sampled (ThreadPoolOptions::latency_sample_every).
  LatencyHistogram::Snapshot wait;  // Submit -> start on a worker
  LatencyHistogram::Snapshot run;   // the work itself
};

struct ThreadPoolMetrics {
  int num_threads = 0;
  int workers_niced = 0;  // workers that took ThreadPoolOptions::worker_nice
  std::array<LaneMetrics, kLaneCount> lanes;
  // One line per lane, e.g.
  // "sync: submitted=3 completed=2 cancelled=1 rejected=0 queued=0/1 ..."
  std::string ToString() const;
};

namespace internal {

class PoolCore;

// The type-independent half of a task: where it is in its life (see
// Cancel() above) and its place in a lane's queue.  Task<R> adds the user's
// callables.  Owned by shared_ptr: the queue (through queue_ref_), the worker
// running it, the posted completion and any TaskHandles.
class TaskBase {
 public:
  TaskBase() = default;
  TaskBase(const TaskBase&) = delete;
  TaskBase& operator=(const TaskBase&) = delete;
  virtual ~TaskBase() = default;

  bool Cancel();

 protected:
  // Implemented by Task<R>; each is called at most once, never under a lock.
  virtual void Run() = 0;                   // worker: work -> result
  virtual void DropResult() = 0;            // result -> cleanup hook, if any
  virtual void Finish(bool cancelled) = 0;  // executor: call the completion

 private:
  friend class PoolCore;

  // state_: a phase in the low bits plus kCancelBit.  The phase moves only
  // forward.  While it is kQueued only PoolCore, under its lock, changes
  // state_; afterwards Cancel() sets kCancelBit by CAS and the worker and the
  // completion advance the phase by CAS, so whichever of a cancel and a
  // delivery comes first decides the outcome.
  static constexpr uint32_t kQueued = 0, kRunning = 1, kDone = 2,
                            kDelivered = 3, kPhaseMask = 3, kCancelBit = 4;
  // Advances the phase to `phase`, keeping the cancel bit; returns the old
  // state.
  uint32_t AdvanceTo(uint32_t phase);
  // Executor thread: the last step of every accepted task.
  void Deliver();

  std::atomic<uint32_t> state_{kQueued};
  // Set once by PoolCore::Enqueue before the task is published.
  std::shared_ptr<PoolCore> core_;
  Executor* executor_ = nullptr;
  Lane lane_ = Lane::kGeneral;
  bool timed_ = false;  // sampled for the wait and run histograms
  std::chrono::steady_clock::time_point enqueued_at_;
  // Guarded by core_->mu_: the lane's FIFO links, and the queue's own
  // reference to the task (moved out when the task leaves the queue).
  TaskBase* prev_ = nullptr;
  TaskBase* next_ = nullptr;
  std::shared_ptr<TaskBase> queue_ref_;
};

// What a work callable's return type R0 becomes: void and absl::Status give
// absl::Status; absl::StatusOr<T> stays; any other T gives absl::StatusOr<T>.
template <typename R0>
struct ResultOf {
  using type = absl::StatusOr<R0>;
};
template <>
struct ResultOf<void> {
  using type = absl::Status;
};
template <>
struct ResultOf<absl::Status> {
  using type = absl::Status;
};
template <typename T>
struct ResultOf<absl::StatusOr<T>> {
  using type = absl::StatusOr<T>;
};

// The argument of the cleanup hook: T for StatusOr<T>; Status has none.
template <typename R>
struct CleanupOf {
  using type = absl::AnyInvocable<void()>;  // unused for absl::Status
};
template <typename T>
struct CleanupOf<absl::StatusOr<T>> {
  using type = absl::AnyInvocable<void(T)>;
};

// R: absl::Status or absl::StatusOr<T>.
template <typename R>
class Task final : public TaskBase {
 public:
  using Cleanup = typename CleanupOf<R>::type;

  Task(absl::AnyInvocable<R()> work, absl::AnyInvocable<void(R)> done,
       Cleanup cleanup)
      : work_(std::move(work)),
        done_(std::move(done)),
        cleanup_(std::move(cleanup)) {}

 private:
  void Run() override {
    result_.emplace(work_());
    work_ = nullptr;  // its captures are released on the worker
  }
  void DropResult() override {
    if constexpr (!std::is_same_v<R, absl::Status>) {
      if (result_.has_value() && result_->ok() && cleanup_ != nullptr) {
        cleanup_(*std::move(*result_));
      }
    }
    result_.reset();
  }
  void Finish(bool cancelled) override {
    work_ = nullptr;  // never ran if cancelled while queued
    cleanup_ = nullptr;
    if (cancelled || !result_.has_value()) {
      done_(R(absl::CancelledError("threadpool: task cancelled")));
    } else {
      done_(*std::move(result_));
    }
    result_.reset();
    done_ = nullptr;
  }

  absl::AnyInvocable<R()> work_;
  absl::AnyInvocable<void(R)> done_;
  Cleanup cleanup_;
  std::optional<R> result_;
};

}  // namespace internal

// A cheap, copyable reference to a submitted task, for cancelling it.  An
// empty (default-constructed) handle cancels nothing.  Thread-safe.
class TaskHandle final {
 public:
  TaskHandle() = default;
  // See "Cancellation" at the top of this file.
  bool Cancel() const { return task_ != nullptr && task_->Cancel(); }

 private:
  friend class ThreadPool;
  explicit TaskHandle(std::shared_ptr<internal::TaskBase> task)
      : task_(std::move(task)) {}
  std::shared_ptr<internal::TaskBase> task_;
};

class ThreadPool final {
 public:
  enum class Mode { kDrain, kCancel };

  // Starts options.num_threads workers.  InvalidArgumentError if an option
  // is out of range (see ThreadPoolOptions).
  static absl::StatusOr<std::unique_ptr<ThreadPool>> Create(
      const ThreadPoolOptions& options);

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  // Shutdown(Mode::kCancel).
  ~ThreadPool();

  // Runs `work` on a worker and posts its result to `executor` for `done`.
  // work returns T or absl::StatusOr<T> (done: void(absl::StatusOr<T>)), or
  // void or absl::Status (done: void(absl::Status)).  `cleanup`, void(T),
  // only with a T result, receives a successful result whose task was
  // cancelled after the work started.  Returns ResourceExhaustedError if the
  // lane's queue is full, FailedPreconditionError after Shutdown(); the task
  // is then dropped and nothing is called.
  template <typename Work, typename Done, typename Cleanup = std::nullptr_t>
  absl::StatusOr<TaskHandle> Submit(Lane lane, Executor& executor, Work work,
                                    Done done, Cleanup cleanup = nullptr) {
    using R0 = std::invoke_result_t<Work&>;
    using R = typename internal::ResultOf<R0>::type;
    static_assert(std::is_invocable_v<Done&, R>,
                  "done must accept absl::StatusOr<T> (or absl::Status for a "
                  "void/Status work)");
    static_assert(std::is_same_v<Cleanup, std::nullptr_t> ||
                      !std::is_same_v<R, absl::Status>,
                  "a cleanup hook needs a work that returns a value");
    absl::AnyInvocable<R()> wrapped;
    if constexpr (std::is_void_v<R0>) {
      wrapped = [work = std::move(work)]() mutable {
        work();
        return absl::OkStatus();
      };
    } else {
      wrapped = std::move(work);
    }
    return Enqueue(
        lane, executor,
        std::make_shared<internal::Task<R>>(
            std::move(wrapped), std::move(done),
            typename internal::Task<R>::Cleanup(std::move(cleanup))));
  }

  // Stops accepting tasks and waits for the workers to finish (see the top of
  // the file).  Idempotent; a later kCancel still cancels what a concurrent
  // kDrain has not started.
  void Shutdown(Mode mode);

  ThreadPoolMetrics Metrics() const;

 private:
  explicit ThreadPool(std::shared_ptr<internal::PoolCore> core);

  absl::StatusOr<TaskHandle> Enqueue(Lane lane, Executor& executor,
                                     std::shared_ptr<internal::TaskBase> task);

  // Shared with every task, so that a late TaskHandle::Cancel() or a
  // completion running after the pool is gone still finds the lock and the
  // counters.
  std::shared_ptr<internal::PoolCore> core_;
};

}  // namespace threadpool
}  // namespace kqio

#endif  // KQIO_THREADPOOL_THREAD_POOL_H_
