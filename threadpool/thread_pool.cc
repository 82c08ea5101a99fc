#include "threadpool/thread_pool.h"

#include <errno.h>
#include <sys/resource.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace kqio {
namespace threadpool {
namespace {

constexpr int kMaxThreads = 1024;

uint64_t NanosSince(std::chrono::steady_clock::time_point start,
                    std::chrono::steady_clock::time_point end) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start);
  return ns.count() < 0 ? 0 : static_cast<uint64_t>(ns.count());
}

// Raises the calling thread's nice value by `increment` (capped at 19);
// true if it did.  Linux only: there a thread's nice value is its own.
bool LowerThisThreadsPriority(int increment) {
#if defined(__linux__)
  if (increment <= 0) return false;
  const id_t tid = static_cast<id_t>(syscall(SYS_gettid));
  errno = 0;
  const int now = getpriority(PRIO_PROCESS, tid);
  if (now == -1 && errno != 0) return false;
  return setpriority(PRIO_PROCESS, tid, std::min(19, now + increment)) == 0;
#else
  (void)increment;
  return false;
#endif
}

}  // namespace

absl::string_view LaneName(Lane lane) {
  switch (lane) {
    case Lane::kMetadata:
      return "metadata";
    case Lane::kData:
      return "data";
    case Lane::kSync:
      return "sync";
    case Lane::kGeneral:
      return "general";
  }
  return "unknown";
}

std::string ThreadPoolMetrics::ToString() const {
  std::string out = absl::StrCat("threads=", num_threads,
                                 " niced=", workers_niced, "\n");
  for (int i = 0; i < kLaneCount; ++i) {
    const LaneMetrics& l = lanes[i];
    absl::StrAppend(&out, LaneName(static_cast<Lane>(i)),
                    ": submitted=", l.submitted, " completed=", l.completed,
                    " cancelled=", l.cancelled, " rejected=", l.rejected,
                    " queued=", l.queue_depth, " (max ", l.max_queue_depth,
                    ") running=", l.running, " wait{", l.wait.ToString(),
                    "} run{", l.run.ToString(), "}\n");
  }
  return out;
}

namespace internal {

// The state the pool shares with its tasks: the lanes' queues and counters
// under one lock, and the workers.  Owned by the ThreadPool and by every
// task it accepted (see ThreadPool::core_).  Thread-safe.
class PoolCore final : public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(const ThreadPoolOptions& options)
      : num_threads_(options.num_threads),
        worker_nice_(options.worker_nice),
        sample_every_(options.latency_sample_every) {
    for (int i = 0; i < kLaneCount; ++i) queues_[i].options = options.lanes[i];
  }

  void Start() {
    absl::MutexLock lock(&join_mu_);
    for (int i = 0; i < num_threads_; ++i) {
      threads_.emplace_back([this] {
        if (LowerThisThreadsPriority(worker_nice_)) {
          workers_niced_.fetch_add(1, std::memory_order_relaxed);
        }
        WorkerLoop();
      });
    }
  }

  absl::Status Enqueue(Lane lane_id, Executor* executor,
                       const std::shared_ptr<TaskBase>& task) {
    task->core_ = shared_from_this();
    task->executor_ = executor;
    task->lane_ = lane_id;
    task->timed_ = SampleThisTask();
    if (task->timed_) task->enqueued_at_ = std::chrono::steady_clock::now();
    absl::MutexLock lock(&mu_);
    LaneQueue& lane = queues_[LaneIndex(lane_id)];
    if (stopping_) {
      ++lane.rejected;
      return absl::FailedPreconditionError("threadpool: shut down");
    }
    if (lane.queued >= lane.options.max_queued) {
      ++lane.rejected;
      return absl::ResourceExhaustedError(
          absl::StrCat("threadpool: lane ", LaneName(lane_id), " is full (",
                       lane.queued, " queued)"));
    }
    task->prev_ = lane.tail;
    (lane.tail != nullptr ? lane.tail->next_ : lane.head) = task.get();
    lane.tail = task.get();
    task->queue_ref_ = task;
    ++lane.queued;
    ++lane.submitted;
    if (lane.queued > lane.max_queue_depth) lane.max_queue_depth = lane.queued;
    ++queued_total_;
    if (idle_ > 0 && lane.running < lane.options.max_running) work_cv_.Signal();
    return absl::OkStatus();
  }

  // Takes `task` out of its queue if it is still there and posts its
  // CancelledError completion.  False if a worker got it first.
  bool CancelQueued(TaskBase* task) {
    std::shared_ptr<TaskBase> owned;
    {
      absl::MutexLock lock(&mu_);
      if ((task->state_.load() & TaskBase::kPhaseMask) != TaskBase::kQueued) {
        return false;
      }
      owned = UnlinkLocked(task);
      task->state_.store(TaskBase::kDone | TaskBase::kCancelBit);
    }
    PostDelivery(std::move(owned));
    return true;
  }

  void Shutdown(ThreadPool::Mode mode) {
    std::vector<std::shared_ptr<TaskBase>> cancelled;
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      if (mode == ThreadPool::Mode::kCancel) {
        for (LaneQueue& lane : queues_) {
          while (lane.head != nullptr) {
            TaskBase* task = lane.head;
            cancelled.push_back(UnlinkLocked(task));
            task->state_.store(TaskBase::kDone | TaskBase::kCancelBit);
          }
        }
      }
      work_cv_.SignalAll();
    }
    for (auto& task : cancelled) PostDelivery(std::move(task));
    // Joining a worker from itself throws (resource_deadlock_would_occur)
    // rather than hanging.
    absl::MutexLock lock(&join_mu_);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  void CountDelivered(Lane lane, bool cancelled) {
    LaneStats& stats = stats_[LaneIndex(lane)];
    (cancelled ? stats.cancelled : stats.completed)
        .fetch_add(1, std::memory_order_relaxed);
  }

  ThreadPoolMetrics Metrics() const {
    ThreadPoolMetrics m;
    m.num_threads = num_threads_;
    m.workers_niced = workers_niced_.load(std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < kLaneCount; ++i) {
      const LaneQueue& q = queues_[i];
      const LaneStats& stats = stats_[i];
      LaneMetrics& out = m.lanes[i];
      out.submitted = q.submitted;
      out.rejected = q.rejected;
      out.completed = stats.completed.load(std::memory_order_relaxed);
      out.cancelled = stats.cancelled.load(std::memory_order_relaxed);
      out.queue_depth = q.queued;
      out.max_queue_depth = q.max_queue_depth;
      out.running = q.running;
      out.wait = stats.wait.Read();
      out.run = stats.run.Read();
    }
    return m;
  }

 private:
  // A lane's queue and what is decided under the lock.
  struct LaneQueue {
    LaneOptions options;
    // FIFO of queued tasks, linked through TaskBase::prev_/next_.
    TaskBase* head = nullptr;
    TaskBase* tail = nullptr;
    int queued = 0;
    int running = 0;
    int max_queue_depth = 0;
    uint64_t submitted = 0;
    uint64_t rejected = 0;
  };
  // A lane's counters that are updated without the lock: by workers, and by
  // completions on the executors' threads.
  struct LaneStats {
    std::atomic<uint64_t> completed{0};
    std::atomic<uint64_t> cancelled{0};
    LatencyHistogram wait;
    LatencyHistogram run;
  };

  // Removes `task` from its lane's queue and returns the queue's reference.
  std::shared_ptr<TaskBase> UnlinkLocked(TaskBase* task)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    LaneQueue& lane = queues_[LaneIndex(task->lane_)];
    (task->prev_ != nullptr ? task->prev_->next_ : lane.head) = task->next_;
    (task->next_ != nullptr ? task->next_->prev_ : lane.tail) = task->prev_;
    task->prev_ = task->next_ = nullptr;
    --lane.queued;
    --queued_total_;
    return std::move(task->queue_ref_);
  }

  // The first lane with a task waiting and a free slot under its cap,
  // counting from the lane after the one served last, so that a busy lane
  // cannot shut the others out; -1 if none.
  int StartableLaneLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (int i = 0; i < kLaneCount; ++i) {
      const int index = (next_lane_ + i) % kLaneCount;
      const LaneQueue& lane = queues_[index];
      if (lane.head != nullptr && lane.running < lane.options.max_running) {
        return index;
      }
    }
    return -1;
  }

  void WorkerLoop() {
    mu_.Lock();
    for (;;) {
      const int index = StartableLaneLocked();
      if (index < 0) {
        if (stopping_ && queued_total_ == 0) {
          // Workers waiting for a capped lane while draining wait for the
          // end of a running task like this one: let them go too.
          work_cv_.SignalAll();
          break;
        }
        ++idle_;
        work_cv_.Wait(&mu_);
        --idle_;
        continue;
      }
      next_lane_ = (index + 1) % kLaneCount;
      LaneQueue& lane = queues_[index];
      std::shared_ptr<TaskBase> task = UnlinkLocked(lane.head);
      // Only the lock holder writes state_ while it is kQueued.
      task->state_.store(TaskBase::kRunning);
      ++lane.running;
      // One submission or one finished task wakes one worker; if more work
      // is startable now, pass the wakeup on.
      if (idle_ > 0 && StartableLaneLocked() >= 0) work_cv_.Signal();
      mu_.Unlock();
      Execute(std::move(task), stats_[index]);
      mu_.Lock();
      --lane.running;
    }
    mu_.Unlock();
  }

  // Runs the work, without the lock, and hands the task to its executor.
  static void Execute(std::shared_ptr<TaskBase> task, LaneStats& stats) {
    if (task->timed_) {
      const auto start = std::chrono::steady_clock::now();
      stats.wait.RecordNanos(NanosSince(task->enqueued_at_, start));
      task->Run();
      stats.run.RecordNanos(
          NanosSince(start, std::chrono::steady_clock::now()));
    } else {
      task->Run();
    }
    // Cancelled while running: nobody wants the result; release it here,
    // off the loop thread (closing a descriptor may block).
    if (task->AdvanceTo(TaskBase::kDone) & TaskBase::kCancelBit) {
      task->DropResult();
    }
    PostDelivery(std::move(task));
  }

  static void PostDelivery(std::shared_ptr<TaskBase> task) {
    Executor* executor = task->executor_;
    executor->Post([task = std::move(task)] { task->Deliver(); });
  }

  // One task in sample_every_, counted per submitting thread.
  bool SampleThisTask() const {
    thread_local uint32_t countdown = 0;
    return SampleOneIn(sample_every_, countdown);
  }

  const int num_threads_;
  const int worker_nice_;
  std::atomic<int> workers_niced_{0};
  const uint32_t sample_every_;
  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // a task may be startable, or stopping_
  std::array<LaneQueue, kLaneCount> queues_ ABSL_GUARDED_BY(mu_);
  std::array<LaneStats, kLaneCount> stats_;
  int queued_total_ ABSL_GUARDED_BY(mu_) = 0;
  int idle_ ABSL_GUARDED_BY(mu_) = 0;  // workers in work_cv_.Wait
  int next_lane_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Separate from mu_ so that a second Shutdown() can cancel queued tasks
  // while the first one is joining.
  absl::Mutex join_mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(join_mu_);
};

uint32_t TaskBase::AdvanceTo(uint32_t phase) {
  uint32_t s = state_.load();
  while (!state_.compare_exchange_weak(s, phase | (s & kCancelBit))) {
  }
  return s;
}

bool TaskBase::Cancel() {
  if ((state_.load() & kPhaseMask) == kQueued && core_->CancelQueued(this)) {
    return true;
  }
  // Past the queue: the phase only moves on from here, so a CAS settles the
  // race with Deliver().
  uint32_t s = state_.load();
  while ((s & kPhaseMask) != kDelivered && (s & kCancelBit) == 0) {
    if (state_.compare_exchange_weak(s, s | kCancelBit)) return true;
  }
  return false;
}

void TaskBase::Deliver() {
  const bool cancelled = (AdvanceTo(kDelivered) & kCancelBit) != 0;
  if (cancelled) DropResult();  // finished, but cancelled before delivery
  core_->CountDelivered(lane_, cancelled);
  Finish(cancelled);
  executor_->WorkFinished();  // last: the executor may now wind down
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<ThreadPool>> ThreadPool::Create(
    const ThreadPoolOptions& options) {
  if (options.worker_nice < 0 || options.worker_nice > 19) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threadpool: worker_nice must be in [0, 19], got ",
        options.worker_nice));
  }
  if (options.num_threads < 1 || options.num_threads > kMaxThreads) {
    return absl::InvalidArgumentError(
        absl::StrCat("threadpool: num_threads must be in [1, ", kMaxThreads,
                     "], got ", options.num_threads));
  }
  for (int i = 0; i < kLaneCount; ++i) {
    const LaneOptions& lane = options.lanes[i];
    if (lane.max_running < 1 || lane.max_queued < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("threadpool: lane ", LaneName(static_cast<Lane>(i)),
                       " needs max_running >= 1 and max_queued >= 1, got ",
                       lane.max_running, " and ", lane.max_queued));
    }
  }
  auto core = std::make_shared<internal::PoolCore>(options);
  core->Start();
  return std::unique_ptr<ThreadPool>(new ThreadPool(std::move(core)));
}

ThreadPool::ThreadPool(std::shared_ptr<internal::PoolCore> core)
    : core_(std::move(core)) {}

ThreadPool::~ThreadPool() { Shutdown(Mode::kCancel); }

absl::StatusOr<TaskHandle> ThreadPool::Enqueue(
    Lane lane, Executor& executor, std::shared_ptr<internal::TaskBase> task) {
  // Counted before the task is published: a worker may finish it and its
  // completion may run (WorkFinished) before Enqueue returns.
  executor.WorkStarted();
  absl::Status status = core_->Enqueue(lane, &executor, task);
  if (!status.ok()) {
    executor.WorkFinished();
    return status;  // `task` and its callables die unlocked
  }
  return TaskHandle(std::move(task));
}

void ThreadPool::Shutdown(Mode mode) { core_->Shutdown(mode); }

ThreadPoolMetrics ThreadPool::Metrics() const { return core_->Metrics(); }

}  // namespace threadpool
}  // namespace kqio
