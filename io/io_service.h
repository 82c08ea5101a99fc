// io::IoService: kqio's event loop.  One kqueue, one completion queue, one
// thread running callbacks.
//
// Everything that completes lands on the loop thread, in the order it
// completed, and never inside the call that started it:
//   - Post(fn) from any thread (the thread pool hands its results back this
//     way: IoService is its threadpool::Executor);
//   - kernel events for registrations (Watch, RegisterHandler), after a
//     staleness check (below);
//   - timers (RunAfter, RunAt, RunEvery), all served by the kevent() timeout
//     over one heap (io/timer_queue.h), never one kernel timer per timer;
//   - signals (OnSignal) through EVFILT_SIGNAL.
// An iteration of the loop: kevent() (blocking only when nothing is ready),
// dispatch the events it returned, run the due timers, then run the posted
// closures that were queued when the pass began; closures those post run in
// a further pass, up to Options::completion_rounds passes (4), then wait
// for the next iteration, so a closure that re-posts itself cannot starve
// I/O.
//
// Cross-thread Post() appends under a short lock and wakes the loop with one
// EVFILT_USER NOTE_TRIGGER only if the loop is asleep in kevent() and no
// wakeup is already on its way: a busy loop is never signalled, and a
// sleeping one at most once per sleep (metrics().wakeups_sent).  A wakeup
// is dear (perf on this project's VM: ~25 us of the poster's CPU each),
// so a loop that waits only for the thread pool's results (work is
// outstanding with the pool) first spins a little for them, yielding its
// CPU (Options::spin_before_sleep_us); with many due, it naps instead, a
// sleep that Posts do not end, and takes what came in one pass
// (Options::nap_us).
//
// No stale events (ARCHITECTURE.md contract 3).  Every registration owns a
// slot {handler, generation}; its kevent udata encodes slot index and
// generation.  An event whose slot is free or whose generation differs
// (the registration was removed, perhaps by an earlier callback of the same
// batch, or its slot reused for a new descriptor with the same number) is
// dropped and counted (stale_events_dropped).  A handler may unregister
// itself, or close its descriptor, inside its own callback: the callable is
// destroyed only after it returns.
//
// Thread-safety.  Thread-safe: Post, Stop, Restart, stopped, MakeWorkGuard
// (and WorkGuard), RecordOpStarted/RecordOpDone, metrics, is_shut_down,
// InLoopThread, kqueue_fd.  Everything else (Run/RunOnce/Poll, Shutdown,
// timers, registrations, signals, Track/Untrack) is loop-thread only: call
// it from callbacks, or from the one thread that runs the loop while no
// thread is inside Run/RunOnce/Poll.  Debug builds assert this.  Only one
// thread at a time may run the loop, and Run/RunOnce/Poll/Shutdown may not be
// called from inside a callback.
//
// Ownership and lifetime.  The service owns its kqueue, every registered
// handler, every timer callback and every queued closure.  Destroying the
// service (or Shutdown) aborts tracked operations, destroys timer callbacks
// without running them, runs every closure already posted, closes the
// kqueue and destroys the handlers.  Timers are not operations: a cancelled,
// dropped or never-due timer's callback is destroyed without being run and
// without a status (libuv's model).  Registrations and TimerIds are plain
// values and stay safe to use (as no-ops) after their target is gone, but
// not after the service itself is destroyed.  Threads that Post() must stop
// doing so before the service is destroyed; after Shutdown() (while the
// object still exists) Post() destroys the closure at once, in the calling
// thread, without running it, and counts it in metrics().posts_rejected.
// Graceful stop from a signal: OnSignal(SIGTERM, ..., KeepAlive::kNo) calls
// Stop(); when Run() returns, the owner closes its listeners and calls
// Shutdown(drain).
#ifndef KQIO_IO_IO_SERVICE_H_
#define KQIO_IO_IO_SERVICE_H_

#include <sys/event.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "io/pending_operation.h"
#include "io/service_metrics.h"
#include "io/timer_queue.h"
#include "threadpool/executor.h"

namespace kqio {
namespace io {

class IoService;

// One registration in a service's slot table: a plain value.  Put udata()
// in every kevent of the registration (Watch does it for you).
class Registration final {
 public:
  constexpr Registration() = default;
  bool valid() const { return value_ != 0; }
  void* udata() const { return reinterpret_cast<void*>(value_); }
  uint32_t slot() const { return static_cast<uint32_t>(value_); }
  uint32_t generation() const { return static_cast<uint32_t>(value_ >> 32); }
  friend bool operator==(Registration a, Registration b) {
    return a.value_ == b.value_;
  }
  friend bool operator!=(Registration a, Registration b) { return !(a == b); }

 private:
  friend class IoService;
  static_assert(sizeof(uintptr_t) >= 8, "udata holds slot + generation");
  explicit Registration(uint32_t slot, uint32_t generation)
      : value_(uintptr_t{generation} << 32 | slot) {}
  uintptr_t value_ = 0;  // generation << 32 | slot; generation is never 0
};

// Keeps Run() from returning for lack of work while it exists, like asio's
// executor_work_guard: for a service that waits for posts from other
// threads.  Movable; any thread may create, move and destroy it.  Releasing
// the last guard wakes the loop so that Run() can notice it ran out of work.
// Must not outlive the service.
class WorkGuard final {
 public:
  WorkGuard() = default;
  explicit WorkGuard(IoService& service);
  WorkGuard(WorkGuard&& other) noexcept : service_(other.service_) {
    other.service_ = nullptr;
  }
  WorkGuard& operator=(WorkGuard&& other) noexcept;
  WorkGuard(const WorkGuard&) = delete;
  WorkGuard& operator=(const WorkGuard&) = delete;
  ~WorkGuard() { Reset(); }

  void Reset();
  bool owns_work() const { return service_ != nullptr; }

 private:
  IoService* service_ = nullptr;
};

class IoService final : public threadpool::Executor {
 public:
  struct Options {
    // Events fetched per kevent() call.
    int max_events = 256;
    // Post() latency (metrics().op(OpClass::kPost).latency) is measured on
    // one post in this many, per posting thread; 0 = never.
    uint32_t post_latency_sample_every = 64;
    // Passes over the posted closures per iteration (>= 1): closures
    // posted on the loop thread by the closures of a pass run in the next
    // pass, up to this many, before events are fetched again.
    uint32_t completion_rounds = 4;
    // Before sleeping while two or more units of pool work are outstanding
    // (WorkStarted without WorkFinished), wait this long for a Post(),
    // calling sched_yield() so that a runnable worker may take the CPU.  A
    // result that arrives in time costs neither the worker a wakeup nor the
    // loop a sleep.  With one unit due the loop does not spin: the worker
    // is usually still being woken itself, and a spinning loop keeps busy a
    // CPU it could use (the median latency of one 4 KiB read at a time
    // doubled).  The budget adapts: it halves after a spin that saw nothing
    // (a disk read takes longer) and is whole again after one that did; at
    // zero, one sleep in 32 tries the whole budget again.  Kernel events
    // (sockets, io_uring completions) that come meanwhile wait for the spin
    // to end: at most the budget.  0: never spin.
    uint32_t spin_before_sleep_us = 20;
    // With at least nap_min_due (>= 2) units of pool work outstanding and
    // nothing else to run, the loop naps for nap_us instead of spinning or
    // sleeping until a Post() wakes it: Posts that come during a nap do not
    // wake it (kernel events and timers end it as usual), so one wakeup,
    // the nap's timer, serves every result that came meanwhile.  A loop
    // that takes results one or two at a time (a wakeup or a spin each)
    // spends more CPU waiting than on them, and with more workers than
    // cores that CPU is the workers'.  A nap lasts nap_us plus the thread's
    // timer slack (50 us by default on Linux; where there is no
    // epoll_pwait2, before Linux 5.11, kevent() timeouts round up to 1 ms).
    // It adapts to the pool's pace; a skipped nap is a spin, then a sleep,
    // as with fewer due:
    //  - a nap that brings nothing (the work takes longer: a disk) skips
    //    the next would-be nap, twice as many after each empty nap in a
    //    row (up to 4096);
    //  - four naps in a row that each bring 7/8 of what was due or more
    //    (the work is quick, and the pool may have run dry meanwhile) skip
    //    the next 64 would-be naps, twice as many each time that happens
    //    again without a shorter nap between (up to 4096).
    // Posts from other sources, Stop(), the last WorkGuard's release and a
    // WorkFinished() from another thread wait at most a nap.  0: never nap.
    uint32_t nap_us = 20;
    uint32_t nap_min_due = 16;
  };
  using Closure = absl::AnyInvocable<void()>;
  using EventHandler = absl::AnyInvocable<void(const struct kevent&)>;
  using SignalHandler = absl::AnyInvocable<void(int count)>;
  // Whether a registration alone keeps Run() going (libuv's ref/unref).
  enum class KeepAlive : bool { kNo = false, kYes = true };

  // Creates the kqueue and the wakeup event; errors carry errno.
  static absl::StatusOr<std::unique_ptr<IoService>> Create(Options options);
  static absl::StatusOr<std::unique_ptr<IoService>> Create() {
    return Create(Options());
  }
  ~IoService() override;  // Shutdown() if not done

  IoService(const IoService&) = delete;
  IoService& operator=(const IoService&) = delete;

  // --- The loop.  Each returns the number of callbacks it ran.
  // Until Stop() or out of work: nothing queued, no timers, no keep-alive
  // registrations or signal handlers, no tracked operations, no WorkGuard.
  size_t Run();
  // Blocks until at least one callback ran (or stopped / out of work), and
  // runs what is ready.
  size_t RunOnce();
  // One iteration that never blocks.
  size_t Poll();
  // Run/RunOnce/Poll return after the current callback, and return 0 at
  // once until Restart().  Events and closures not yet run stay queued.
  void Stop();
  void Restart();
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }

  // Queues `fn` to run on the loop thread.  Closures posted by one thread run
  // in the order posted; posts of different threads interleave in an
  // unspecified order.  Never runs `fn` inside the call.  After Shutdown(),
  // destroys `fn` without running it (see the class comment).
  void Post(Closure fn) override;

  // Results on their way from a threadpool::ThreadPool (threadpool/
  // executor.h): while any task submitted with this service as its executor
  // has not delivered its completion, Run() keeps going and Shutdown()
  // waits for it (after cancelling what it can through tracked operations),
  // so no completion is lost and no worker posts to a destroyed service.
  // Called by the pool; thread-safe.
  void WorkStarted() override;
  void WorkFinished() override;

  WorkGuard MakeWorkGuard() { return WorkGuard(*this); }

  // Ends the service: on the loop thread, or when no thread runs the loop;
  // not from a callback.  First, if `drain` > 0, keeps running the loop
  // until out of work, Stop(), or `drain` elapses (a Stop() from before the
  // call is cleared).  Then, whatever remains: aborts every tracked
  // operation (PendingOperation::Abort), destroys timer callbacks unrun,
  // drops undispatched events, runs the queued closures until the queue
  // stays empty (aborted operations' completions included; closures they
  // post too), closes the kqueue and destroys every handler.  Idempotent.
  // Watches and signal handlers are work: close listeners and remove
  // handlers (or register them KeepAlive::kNo) before draining, or the
  // drain lasts its full length.
  void Shutdown(absl::Duration drain = absl::ZeroDuration());
  bool is_shut_down() const {
    return shut_down_.load(std::memory_order_acquire);
  }

  // True on the thread inside Run/RunOnce/Poll/Shutdown.
  bool InLoopThread() const {
    return running_thread_.load(std::memory_order_relaxed) ==
           std::this_thread::get_id();
  }
  // For aio/ engines that attach their own EVFILT_AIO sources
  // (kqio_aio_watch) with a RegisterHandler() udata.  -1 after Shutdown.
  int kqueue_fd() const { return kq_.load(std::memory_order_relaxed); }

  // --- Timers (loop thread).  Delays are measured on the monotonic clock;
  // RunAt converts wall time to it once, at the call.  A negative delay is
  // zero.  Same deadline: first added, first run.  RunEvery runs first one
  // period from now, then at a fixed rate, skipping missed ticks; a
  // non-positive period (or a null callback) starts nothing and returns an
  // invalid id.  After Shutdown, return an invalid id.
  TimerId RunAfter(absl::Duration delay, Closure cb);
  TimerId RunAt(absl::Time when, Closure cb);
  TimerId RunEvery(absl::Duration period, Closure cb);
  // True if it prevented a run (see TimerQueue::Cancel); harmless on a timer
  // that fired or was cancelled.  A periodic timer may cancel itself from its
  // own callback.
  bool Cancel(TimerId id);

  // --- Registrations (loop thread).
  // Low level: a slot whose events the caller submits itself with udata()
  // (e.g. kqio_aio_watch(kqueue_fd(), fd, &change)).  Events whose udata is
  // stale are dropped.  FailedPrecondition after Shutdown.
  absl::StatusOr<Registration> RegisterHandler(
      EventHandler handler, KeepAlive keep_alive = KeepAlive::kYes);
  // Frees the slot: no later event reaches the handler, which is destroyed
  // now, or after it returns if it is running.  Removes nothing from the
  // kqueue.  False if `r` is not live.
  bool Unregister(Registration r);

  // Convenience: registers and adds the knote (ident, filter) with
  // EV_ADD | `flags` (e.g. EV_CLEAR, EV_ONESHOT) and `fflags`.  One Watch
  // per (ident, filter): kqueue keeps one knote per pair, and a second Watch
  // would take the first one's events.  Listening sockets: after listen().
  absl::StatusOr<Registration> Watch(uintptr_t ident, int16_t filter,
                                     uint16_t flags, uint32_t fflags,
                                     EventHandler handler);
  // Re-applies the knote with `flags` (EV_ENABLE, EV_DISABLE, EV_CLEAR...)
  // and `fflags`, keeping its udata.
  absl::Status Modify(Registration r, uint16_t flags, uint32_t fflags = 0);
  // EV_DELETE, then Unregister.  The registration is released even if the
  // kernel call fails (the error is returned; ENOENT, e.g. after
  // EV_ONESHOT, is not an error).  NotFound if `r` is not live.
  absl::Status Unwatch(Registration r);
  // For a descriptor already closed (close() removed its knotes): Unregister
  // without EV_DELETE, which could hit a new file with the same number.
  // (On Linux a close() does not remove the knotes of a file that a dup()
  // keeps open; see <sys/event.h>.  Unwatch such descriptors before closing.)
  bool UnwatchClosed(Registration r) { return Unregister(r); }

  // --- Signals (loop thread).  `handler(count)` runs on the loop with the
  // deliveries coalesced since its last run.  InvalidArgument for a bad
  // signo, SIGKILL or SIGSTOP; AlreadyExists if this service handles it.
  // The signal must be blocked in every thread of the process (BlockSignals
  // below, in main() before any thread starts): a thread that does not
  // block it may take it with the default disposition (on Linux the queue
  // only sees blocked signals; on FreeBSD the queue sees it, but so does the
  // disposition).  Linux's kqueue also blocks it in the calling thread.
  // With KeepAlive::kNo the handler alone does not keep Run() (or a
  // Shutdown drain) going: what a server wants for SIGTERM.
  absl::Status OnSignal(int signo, SignalHandler handler,
                        KeepAlive keep_alive = KeepAlive::kYes);
  bool RemoveSignal(int signo);

  // --- Tracked operations (loop thread); see io/pending_operation.h.
  // Track: false if already tracked or after Shutdown (then the caller must
  // not start the operation).  Untrack: false if not tracked here.
  bool Track(PendingOperation* op);
  bool Untrack(PendingOperation* op);

  // --- Metrics (any thread).
  // Counts the start and returns the time to pass to RecordOpDone.
  MonoTime RecordOpStarted(OpClass c) {
    counters_.OpStarted(c);
    return OpNow();
  }
  // Counts the completion by status and records OpNow() - `start`.
  void RecordOpDone(OpClass c, MonoTime start, const absl::Status& status) {
    // Never negative: `start` may come from another thread's clock read,
    // later than the loop's cached one.
    counters_.OpDone(c, status,
                     absl::FromChrono(std::max(OpNow() - start,
                                               MonoClock::duration::zero())));
  }
  // The clock operation latencies are taken from.  On the loop thread it is
  // read at most once per loop iteration, by the first call after kevent()
  // returns, and cached (libuv's uv_now() and nginx's cached time do the
  // same): a latency is then exact to within one iteration's callbacks, and
  // an operation started and completed on the loop costs no clock reads of
  // its own (two per operation were 3% of a streaming server's CPU).  Other
  // threads read the clock.
  MonoTime OpNow() {
    if (!InLoopThread()) return MonoClock::now();
    if (!op_now_valid_) {
      op_now_ = MonoClock::now();
      op_now_valid_ = true;
    }
    return op_now_;
  }
  Metrics metrics() const;

 private:
  class LoopScope;
  friend class WorkGuard;

  enum class SlotKind : uint8_t { kFree, kHandler, kWatch, kSignal };
  struct Slot {
    EventHandler handler;
    uintptr_t ident = 0;
    int16_t filter = 0;
    uint32_t generation = 1;
    SlotKind kind = SlotKind::kFree;
    bool live = false;
    bool keep_alive = false;
    bool in_callback = false;
  };

  IoService(int kq, Options options);

  void AssertLoopThread() const;
  size_t Iterate(bool may_block, int64_t deadline_cap_ns);
  bool HasWork() const;
  bool HasOwnWork() const {
    return !timers_.empty() || keep_alive_slots_ > 0 || tracked_count_ > 0 ||
           pool_work_.load(std::memory_order_acquire) > 0;
  }
  size_t DispatchEvents();
  bool Dispatch(const struct kevent& ev);
  size_t RunTimers();
  size_t RunBatch(bool honour_stop);
  void TakeIncomingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseWork();
  void WaitForIncoming();
  // One post in post_latency_sample_every (per thread) is sampled: wrapped
  // so that it records its time in the queue when it runs.  The others pass
  // through untouched, and the queues hold bare closures.
  bool SampleThisPost() const;
  Closure Sampled(Closure fn);
  TimerId AddTimer(int64_t deadline_ns, int64_t period_ns, Closure cb);
  Registration AllocSlot(SlotKind kind, EventHandler handler, bool keep_alive);
  Slot* LookupSlot(Registration r);
  void ReleaseSlot(uint32_t index);
  absl::StatusOr<Registration> AddKnote(SlotKind kind, uintptr_t ident,
                                        int16_t filter, uint16_t flags,
                                        uint32_t fflags, EventHandler handler,
                                        bool keep_alive);
  void DestroyRegistrations();

  const Options options_;
  // The kqueue; -1 once closed.  Atomic only so that kqueue_fd() may be read
  // anywhere: Shutdown() stores -1 under mu_ after which no thread uses it.
  std::atomic<int> kq_;

  // Loop-thread state.
  std::vector<struct kevent> events_;
  size_t ev_pos_ = 0, ev_count_ = 0;  // undispatched: [ev_pos_, ev_count_)
  std::vector<Closure> pending_;      // to run in the next pass
  std::vector<Closure> batch_;        // the pass being run
  size_t batch_pos_ = 0;
  TimerQueue timers_;
  std::deque<Slot> slots_;  // a deque: a running handler never moves
  std::vector<uint32_t> free_slots_;
  size_t live_slots_ = 0, keep_alive_slots_ = 0;
  absl::flat_hash_map<int, Registration> signals_;
  PendingOperation* tracked_head_ = nullptr;
  size_t tracked_count_ = 0;
  // Spins before sleeping for pool results (Options::spin_before_sleep_us).
  // True if a Post() came in within the budget.
  bool SpinForPosts(int64_t wait_ns);
  int64_t spin_budget_ns_ = 0;  // the current budget, adapted per spin
  // Adapts napping (Options::nap_us) to what a nap with `due` units of pool
  // work outstanding brought (incoming_, and `events` from the kernel).
  void NapEndedLocked(int64_t due, int events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t naps_paused_ = 0;  // would-be naps still to skip
  // The last skip after empty naps, and after long naps, in a row (0: none).
  uint32_t empty_pause_ = 0;
  uint32_t long_pause_ = 0;
  uint32_t long_naps_in_row_ = 0;
  uint32_t sleeps_unspun_ = 0;  // at zero budget, sleeps since a try
  MonoTime op_now_;            // OpNow()'s cache, valid while op_now_valid_
  bool op_now_valid_ = false;  // cleared after every kevent()
  int loop_depth_ = 0;
  bool closed_local_ = false;  // closed_, as the loop thread sees it

  // Shared.
  mutable absl::Mutex mu_;
  std::vector<Closure> incoming_ ABSL_GUARDED_BY(mu_);
  // !incoming_.empty(), stored under mu_, read without it by the loop.
  std::atomic<bool> has_incoming_{false};
  bool sleeping_ ABSL_GUARDED_BY(mu_) = false;      // in a blocking kevent()
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;  // trigger sent this sleep
  std::atomic<int> wakers_{0};  // Post()s sending a trigger, unlocked
  bool closed_ ABSL_GUARDED_BY(mu_) = false;        // Post() rejects
  std::atomic<bool> stopped_{false};
  std::atomic<bool> shut_down_{false};
  std::atomic<int64_t> work_guards_{0};
  std::atomic<int64_t> pool_work_{0};  // WorkStarted - WorkFinished
  std::atomic<std::thread::id> running_thread_{};
  // Gauges the loop publishes for metrics().
  std::atomic<size_t> timers_gauge_{0}, slots_gauge_{0}, tracked_gauge_{0};
  ServiceCounters counters_;
};

// Blocks `signals` in the calling thread (threads it creates later inherit
// the mask).  Call it in main() before starting any thread, for every signal
// a service will handle with OnSignal().  InvalidArgument for a bad signo.
absl::Status BlockSignals(absl::Span<const int> signals);

}  // namespace io
}  // namespace kqio

#endif  // KQIO_IO_IO_SERVICE_H_
