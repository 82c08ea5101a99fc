#include "io/io_service.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <limits>
#include <utility>

#include "io/errno_status.h"

namespace kqio {
namespace io {
namespace {

// The loop's own EVFILT_USER event.  Its udata is null, which no
// registration ever has (generations start at 1).
constexpr uintptr_t kWakeIdent = 0x6b71696f;  // "kqio"
// Options::nap_us: after this many naps in a row that each brought nearly
// all that was due, the next kMinNapPause would-be naps are skipped, twice
// as many each time it happens again without a shorter nap between, up to
// kMaxNapPause (also the most skipped after empty naps).
constexpr uint32_t kLongNapsToPause = 4;
constexpr uint32_t kMinNapPause = 64;
constexpr uint32_t kMaxNapPause = 4096;

// The next of a run of doubling pauses: `first` after none (`last` 0).
uint32_t NextPause(uint32_t last, uint32_t first) {
  return last == 0 ? first : std::min(last * 2, kMaxNapPause);
}

constexpr int64_t kMaxNs = std::numeric_limits<int64_t>::max();
// Longest period RunEvery accepts (~146 years), so that deadline + period
// cannot overflow.
constexpr int64_t kMaxPeriodNs = int64_t{1} << 62;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             MonoClock::now().time_since_epoch())
      .count();
}

int64_t SaturatingAdd(int64_t a, int64_t b) {
  if (b > 0 && a > kMaxNs - b) return kMaxNs;
  return a + b;
}

struct timespec ToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  return ts;
}

// kevent() on the loop's own queue has no legitimate failure but EINTR; any
// other error means the descriptor was closed under us or memory is corrupt.
[[noreturn]] void Fatal(const char* what, int err) {
  fprintf(stderr, "kqio::io::IoService: %s failed: %s\n", what, strerror(err));
  abort();
}

}  // namespace

// Marks the calling thread as the loop thread for the duration of
// Run/RunOnce/Poll/Shutdown.
class IoService::LoopScope final {
 public:
  explicit LoopScope(IoService* s) : s_(s) {
    assert(s->loop_depth_ == 0 && "Run/RunOnce/Poll/Shutdown from a callback");
    assert((s->running_thread_.load(std::memory_order_relaxed) ==
                std::thread::id() ||
            s->InLoopThread()) &&
           "another thread is running this loop");
    ++s->loop_depth_;
    s->op_now_valid_ = false;
    s->running_thread_.store(std::this_thread::get_id(),
                             std::memory_order_relaxed);
  }
  ~LoopScope() {
    --s_->loop_depth_;
    s_->running_thread_.store(std::thread::id(), std::memory_order_relaxed);
  }
  LoopScope(const LoopScope&) = delete;
  LoopScope& operator=(const LoopScope&) = delete;

 private:
  IoService* const s_;
};

// ---------------------------------------------------------------------------
// Creation and the loop.

absl::StatusOr<std::unique_ptr<IoService>> IoService::Create(Options options) {
  if (options.max_events < 1) {
    return absl::InvalidArgumentError("IoService: max_events must be >= 1");
  }
  if (options.completion_rounds < 1) {
    return absl::InvalidArgumentError(
        "IoService: completion_rounds must be >= 1");
  }
  if (options.nap_us > 0 && options.nap_min_due < 2) {
    return absl::InvalidArgumentError(
        "IoService: nap_min_due must be >= 2 (or nap_us 0)");
  }
  const int kq = kqueue();
  if (kq < 0) return ErrnoStatus(errno, "kqueue");
  struct kevent ev;
  EV_SET(&ev, kWakeIdent, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  if (kevent(kq, &ev, 1, nullptr, 0, nullptr) != 0) {
    const int err = errno;
    close(kq);
    return ErrnoStatus(err, "kevent", "EVFILT_USER EV_ADD");
  }
  return std::unique_ptr<IoService>(new IoService(kq, options));
}

IoService::IoService(int kq, Options options)
    : options_(options),
      kq_(kq),
      events_(options.max_events),
      spin_budget_ns_(int64_t{options.spin_before_sleep_us} * 1000) {}

IoService::~IoService() {
  assert(loop_depth_ == 0 && "IoService destroyed from its own callback");
  Shutdown();
}

void IoService::AssertLoopThread() const {
  assert((running_thread_.load(std::memory_order_relaxed) ==
              std::thread::id() ||
          InLoopThread()) &&
         "IoService: loop-thread-only method called from another thread");
}

size_t IoService::Run() {
  LoopScope scope(this);
  size_t ran = 0;
  while (!stopped() && !closed_local_ && HasWork()) {
    ran += Iterate(/*may_block=*/true, TimerQueue::kNoDeadline);
  }
  return ran;
}

size_t IoService::RunOnce() {
  LoopScope scope(this);
  size_t ran = 0;
  while (ran == 0 && !stopped() && !closed_local_ && HasWork()) {
    ran += Iterate(/*may_block=*/true, TimerQueue::kNoDeadline);
  }
  return ran;
}

size_t IoService::Poll() {
  LoopScope scope(this);
  if (stopped() || closed_local_) return 0;
  return Iterate(/*may_block=*/false, TimerQueue::kNoDeadline);
}

void IoService::Stop() {
  stopped_.store(true, std::memory_order_release);
  absl::MutexLock lock(&mu_);
  WakeLocked();
}

void IoService::Restart() { stopped_.store(false, std::memory_order_release); }

bool IoService::HasWork() const {
  if (ev_pos_ < ev_count_ || !pending_.empty() || batch_pos_ < batch_.size() ||
      HasOwnWork() || work_guards_.load(std::memory_order_acquire) > 0) {
    return true;
  }
  absl::MutexLock lock(&mu_);
  return !incoming_.empty();
}

size_t IoService::Iterate(bool may_block, int64_t deadline_cap_ns) {
  counters_.loop_iterations.Add();
  // Events left over from a pass that Stop() interrupted are dispatched
  // before new ones are fetched (fetching would overwrite them).
  if (ev_pos_ >= ev_count_) {
    int64_t wait_ns = 0;  // < 0: no timeout
    if (may_block && pending_.empty() && batch_pos_ >= batch_.size()) {
      const int64_t deadline =
          std::min(timers_.NextDeadline(), deadline_cap_ns);
      wait_ns = deadline == TimerQueue::kNoDeadline
                    ? -1
                    : std::max<int64_t>(0, deadline - NowNs());
    }
    bool blocking = wait_ns != 0;
    // Pool results due: many of them, a nap collects a batch per wakeup;
    // a few, a short spin for them is cheaper than a wakeup (see
    // Options::nap_us and spin_before_sleep_us).
    const int64_t due = pool_work_.load(std::memory_order_acquire);
    bool nap = blocking && options_.nap_us > 0 &&
               due >= int64_t{options_.nap_min_due};
    if (nap && naps_paused_ > 0) {
      --naps_paused_;
      nap = false;
    }
    if (blocking && !nap && due > 1 && SpinForPosts(wait_ns)) {
      blocking = false;
      wait_ns = 0;
    }
    if (blocking) {
      // Post, Stop and the last WorkGuard decide under mu_ whether to wake
      // us, so what they change is re-checked here, under mu_, before we
      // declare ourselves asleep.  A nap is not asleep: Post() leaves it be.
      absl::MutexLock lock(&mu_);
      if (!incoming_.empty() || stopped() ||
          (!HasOwnWork() &&
           work_guards_.load(std::memory_order_acquire) == 0)) {
        blocking = false;
        wait_ns = 0;
        nap = false;
      } else if (nap) {
        const int64_t nap_ns = int64_t{options_.nap_us} * 1000;
        wait_ns = wait_ns < 0 ? nap_ns : std::min(wait_ns, nap_ns);
      } else {
        sleeping_ = true;
      }
    }
    const struct timespec ts = ToTimespec(wait_ns > 0 ? wait_ns : 0);
    const int n = kevent(kq_.load(std::memory_order_relaxed), nullptr, 0,
                         events_.data(), static_cast<int>(events_.size()),
                         wait_ns < 0 ? nullptr : &ts);
    const int err = errno;
    (blocking ? counters_.kevent_blocking : counters_.kevent_polling).Add();
    if (nap) counters_.loop_naps.Add();
    // After a poll, the lock is taken only if a Post() came in: a busy
    // loop (a stream echoing without a pause) polls once per few chunks.  A
    // Post() missed here is taken after the next kevent(), or under mu_
    // before the loop sleeps.
    if (blocking || has_incoming_.load(std::memory_order_acquire)) {
      absl::MutexLock lock(&mu_);
      if (nap) {
        NapEndedLocked(due, n);
      } else if (blocking) {
        sleeping_ = false;
        wake_pending_ = false;
      }
      TakeIncomingLocked();
    }
    ev_pos_ = 0;
    ev_count_ = 0;
    if (n < 0) {
      if (err != EINTR) Fatal("kevent()", err);
    } else {
      ev_count_ = static_cast<size_t>(n);
      counters_.events.Add(ev_count_);
    }
  }
  op_now_valid_ = false;
  size_t ran = DispatchEvents();
  if (!stopped() && !timers_.empty()) ran += RunTimers();
  // Closures that the batch itself posted from the loop thread (a read's
  // completion whose callback started a write that finished at once) get
  // up to completion_rounds passes before the kernel is asked again: each
  // extra pass saves a zero-timeout kevent() per chained completion, and
  // the bound keeps a closure that re-posts itself from starving I/O.
  for (uint32_t round = 0; round < options_.completion_rounds && !stopped();
       ++round) {
    if (round > 0 && pending_.empty()) break;
    ran += RunBatch(/*honour_stop=*/true);
  }
  return ran;
}

void IoService::NapEndedLocked(int64_t due, int events) {
  if (incoming_.empty() && events <= 0) {
    // Nothing came: the pool's work outlasts a nap (a disk read).  Skip
    // the next would-be naps, twice as many after each empty nap in a row.
    counters_.loop_naps_empty.Add();
    long_naps_in_row_ = 0;
    empty_pause_ = NextPause(empty_pause_, 1);
    naps_paused_ = empty_pause_;
    return;
  }
  empty_pause_ = 0;
  if (incoming_.size() * 8 < static_cast<size_t>(due) * 7) {
    long_naps_in_row_ = 0;
    long_pause_ = 0;
    return;
  }
  // Seven eighths of what was due came, or more: the pool's work is quick
  // enough that it may have run out of queued work meanwhile.  Several such
  // naps in a row: skip the next would-be naps, twice as many each time it
  // happens again without a shorter nap between.
  counters_.loop_naps_long.Add();
  if (++long_naps_in_row_ >= kLongNapsToPause) {
    long_naps_in_row_ = 0;
    long_pause_ = NextPause(long_pause_, kMinNapPause);
    naps_paused_ = long_pause_;
  }
}

bool IoService::SpinForPosts(int64_t wait_ns) {
  const int64_t full = int64_t{options_.spin_before_sleep_us} * 1000;
  if (full == 0) return false;
  if (spin_budget_ns_ == 0) {
    if (++sleeps_unspun_ < 32) return false;
    sleeps_unspun_ = 0;
    spin_budget_ns_ = full;
  }
  int64_t budget = spin_budget_ns_;
  if (wait_ns > 0) budget = std::min(budget, wait_ns);  // a timer is due
  counters_.loop_spins.Add();
  const int64_t until = NowNs() + budget;
  for (;;) {
    if (has_incoming_.load(std::memory_order_acquire)) {
      counters_.loop_spin_hits.Add();
      spin_budget_ns_ = full;
      return true;
    }
    // No work outstanding any more (WorkFinished may come from any thread,
    // after its Post): nothing to wait for, look again.
    if (pool_work_.load(std::memory_order_acquire) == 0 || stopped()) {
      return true;
    }
    if (NowNs() >= until) break;
    sched_yield();
  }
  // Nothing came: the pool's work takes longer than the budget (a disk
  // read), and spinning again would only burn the CPU.
  spin_budget_ns_ /= 2;
  if (spin_budget_ns_ < 1000) spin_budget_ns_ = 0;
  return false;
}

size_t IoService::DispatchEvents() {
  size_t ran = 0;
  while (ev_pos_ < ev_count_) {
    const struct kevent ev = events_[ev_pos_++];
    if (ev.udata == nullptr && ev.filter == EVFILT_USER &&
        ev.ident == kWakeIdent) {
      continue;  // a wakeup: its work is in incoming_, taken above
    }
    if (Dispatch(ev)) ++ran;
    if (stopped()) break;
  }
  return ran;
}

// Re-checks the registration before every dispatch: an earlier callback of
// the same batch may have removed it, and its slot may even hold a new
// registration (for a descriptor that got the same number) by now.
bool IoService::Dispatch(const struct kevent& ev) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(ev.udata);
  const uint32_t index = static_cast<uint32_t>(v);
  const uint32_t generation = static_cast<uint32_t>(v >> 32);
  if (index >= slots_.size() || !slots_[index].live ||
      slots_[index].generation != generation) {
    counters_.stale_events_dropped.Add();
    return false;
  }
  Slot& s = slots_[index];  // stable: slots_ is a deque that only grows
  (s.kind == SlotKind::kSignal ? counters_.signal_deliveries
                               : counters_.events_dispatched)
      .Add();
  s.in_callback = true;
  s.handler(ev);
  s.in_callback = false;
  // Unregistered from inside its own callback: destroy it now that it is
  // no longer running.
  if (!s.live) ReleaseSlot(index);
  return true;
}

size_t IoService::RunTimers() {
  const size_t n = timers_.RunDue(NowNs(), [this](int64_t late_ns) {
    counters_.RecordLatency(OpClass::kTimer, absl::Nanoseconds(late_ns));
    return !stopped();
  });
  counters_.timers_fired.Add(n);
  timers_gauge_.store(timers_.size(), std::memory_order_relaxed);
  return n;
}

size_t IoService::RunBatch(bool honour_stop) {
  if (batch_pos_ >= batch_.size()) {
    batch_.clear();
    batch_pos_ = 0;
    batch_.swap(pending_);
  }
  size_t ran = 0;
  while (batch_pos_ < batch_.size()) {
    // In place: nothing but this function touches batch_ (callbacks post to
    // pending_ or incoming_, and may not re-enter the loop).
    Closure& fn = batch_[batch_pos_++];
    fn();
    fn = nullptr;  // what it captured goes now, not at the end of the batch
    ++ran;
    if (honour_stop && stopped()) break;
  }
  if (batch_pos_ >= batch_.size()) {
    batch_.clear();
    batch_pos_ = 0;
    // Keep the larger empty buffer where the next swap hands it to
    // incoming_, so that producers do not regrow one from nothing.
    if (pending_.empty() && pending_.capacity() < batch_.capacity()) {
      pending_.swap(batch_);
    }
  }
  counters_.completions_run.Add(ran);
  return ran;
}

// ---------------------------------------------------------------------------
// Posting and waking.

void IoService::Post(Closure fn) {
  if (!fn) return;
  if (InLoopThread() && !closed_local_) {
    if (SampleThisPost()) fn = Sampled(std::move(fn));
    pending_.push_back(std::move(fn));
    counters_.posts_local.Add();
    return;
  }
  if (SampleThisPost()) fn = Sampled(std::move(fn));
  // The trigger is decided under mu_ but sent after it is released: sent
  // under the lock, the woken loop thread (often on the other CPU at once)
  // finds mu_ held, sleeps on it, and the poster pays a futex wake on top
  // of the trigger; pool workers measured 82% of their time in preadv that
  // way, 93% without (bench/aio_engines_benchmark, rand4k/cold/qd128).
  // wakers_ keeps Shutdown() from closing the queue under a trigger.
  int kq = -1;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) {
      // `fn` is a parameter: it is destroyed after the lock is released.
      counters_.posts_rejected.Add();
      return;
    }
    incoming_.push_back(std::move(fn));
    has_incoming_.store(true, std::memory_order_release);
    counters_.posts_cross_thread.Add();
    if (!sleeping_ || wake_pending_) return;
    wake_pending_ = true;
    counters_.wakeups_sent.Add();
    wakers_.fetch_add(1, std::memory_order_relaxed);
    kq = kq_.load(std::memory_order_relaxed);
  }
  struct kevent ev;
  EV_SET(&ev, kWakeIdent, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
  const int rc = kevent(kq, &ev, 1, nullptr, 0, nullptr);
  const int err = errno;
  wakers_.fetch_sub(1, std::memory_order_release);
  if (rc != 0) Fatal("kevent(NOTE_TRIGGER)", err);
}

bool IoService::SampleThisPost() const {
  thread_local uint32_t countdown = 0;
  return threadpool::SampleOneIn(options_.post_latency_sample_every, countdown);
}

IoService::Closure IoService::Sampled(Closure fn) {
  return [this, queued = NowNs(), fn = std::move(fn)]() mutable {
    counters_.RecordLatency(OpClass::kPost,
                            absl::Nanoseconds(NowNs() - queued));
    fn();
  };
}

void IoService::TakeIncomingLocked() {
  if (incoming_.empty()) return;
  has_incoming_.store(false, std::memory_order_relaxed);
  if (pending_.empty()) {
    pending_.swap(incoming_);  // incoming_ inherits pending_'s capacity
  } else {
    for (Closure& fn : incoming_) pending_.push_back(std::move(fn));
    incoming_.clear();
  }
}

// One trigger per sleep at most: none while the loop is awake (it takes
// incoming_ after every kevent()), none if one is already on its way.
void IoService::WakeLocked() {
  if (!sleeping_ || wake_pending_) return;
  struct kevent ev;
  EV_SET(&ev, kWakeIdent, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
  if (kevent(kq_.load(std::memory_order_relaxed), &ev, 1, nullptr, 0,
             nullptr) != 0) {
    Fatal("kevent(NOTE_TRIGGER)", errno);
  }
  wake_pending_ = true;
  counters_.wakeups_sent.Add();
}

WorkGuard::WorkGuard(IoService& service) : service_(&service) {
  service.work_guards_.fetch_add(1, std::memory_order_relaxed);
}

WorkGuard& WorkGuard::operator=(WorkGuard&& other) noexcept {
  if (this != &other) {
    Reset();
    service_ = other.service_;
    other.service_ = nullptr;
  }
  return *this;
}

void WorkGuard::Reset() {
  if (service_ != nullptr) {
    service_->ReleaseWork();
    service_ = nullptr;
  }
}

void IoService::ReleaseWork() {
  if (work_guards_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    absl::MutexLock lock(&mu_);
    WakeLocked();  // Run() may be asleep with nothing else to wait for
  }
}

void IoService::WorkStarted() {
  pool_work_.fetch_add(1, std::memory_order_relaxed);
}

void IoService::WorkFinished() {
  if (pool_work_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    absl::MutexLock lock(&mu_);
    WakeLocked();  // Run() or Shutdown() may be waiting for just this
  }
}

// Shutdown's wait for pool results: blocks until a Post() arrives or the
// last result is in.  It waits on mu_ rather than in kevent(), which could
// spin on a level-triggered registration that is still ready.
void IoService::WaitForIncoming() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](IoService* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
        return !self->incoming_.empty() ||
               self->pool_work_.load(std::memory_order_acquire) == 0;
      },
      this));
}

// ---------------------------------------------------------------------------
// Timers.

TimerId IoService::AddTimer(int64_t deadline_ns, int64_t period_ns,
                            Closure cb) {
  AssertLoopThread();
  if (closed_local_) return TimerId();
  const TimerId id = timers_.Add(deadline_ns, period_ns, std::move(cb));
  if (id.valid()) counters_.timers_started.Add();
  timers_gauge_.store(timers_.size(), std::memory_order_relaxed);
  return id;
}

TimerId IoService::RunAfter(absl::Duration delay, Closure cb) {
  const int64_t ns = std::max<int64_t>(0, absl::ToInt64Nanoseconds(delay));
  return AddTimer(SaturatingAdd(NowNs(), ns), 0, std::move(cb));
}

TimerId IoService::RunAt(absl::Time when, Closure cb) {
  return RunAfter(when - absl::Now(), std::move(cb));
}

TimerId IoService::RunEvery(absl::Duration period, Closure cb) {
  if (period <= absl::ZeroDuration()) return TimerId();
  const int64_t ns = std::min(absl::ToInt64Nanoseconds(period), kMaxPeriodNs);
  return AddTimer(SaturatingAdd(NowNs(), ns), ns, std::move(cb));
}

bool IoService::Cancel(TimerId id) {
  AssertLoopThread();
  const bool prevented = timers_.Cancel(id);
  if (prevented) counters_.timers_cancelled.Add();
  timers_gauge_.store(timers_.size(), std::memory_order_relaxed);
  return prevented;
}

// ---------------------------------------------------------------------------
// Shutdown and metrics.  (Registrations, signals and tracked operations are
// in io_service_registry.cc.)

void IoService::Shutdown(absl::Duration drain) {
  if (is_shut_down()) return;
  LoopScope scope(this);
  stopped_.store(false, std::memory_order_release);
  if (drain > absl::ZeroDuration()) {
    const int64_t cap =
        SaturatingAdd(NowNs(), absl::ToInt64Nanoseconds(drain));
    while (!stopped() && HasWork() && NowNs() < cap) Iterate(true, cap);
  }
  stopped_.store(false, std::memory_order_release);
  ev_pos_ = ev_count_ = 0;  // their registrations are about to go
  // Abort, drop, run; again while that produced more (an aborted
  // operation's completion may start another, a closure may post one).
  for (;;) {
    while (tracked_head_ != nullptr) {
      PendingOperation* op = tracked_head_;
      Untrack(op);
      op->Abort();
    }
    counters_.timers_dropped.Add(timers_.Clear());
    timers_gauge_.store(timers_.size(), std::memory_order_relaxed);
    {
      absl::MutexLock lock(&mu_);
      TakeIncomingLocked();
      if (pending_.empty() && batch_pos_ >= batch_.size() &&
          tracked_head_ == nullptr && timers_.empty() &&
          pool_work_.load(std::memory_order_acquire) == 0) {
        closed_ = true;  // from here on Post() rejects
        break;
      }
    }
    // Only pool results still to come (tasks running on workers, whose
    // completions will be posted here): wait for them.
    if (pending_.empty() && batch_pos_ >= batch_.size() &&
        tracked_head_ == nullptr && timers_.empty()) {
      WaitForIncoming();
      op_now_valid_ = false;  // the wait may have been long
      continue;
    }
    RunBatch(/*honour_stop=*/false);
  }
  closed_local_ = true;
  int kq;
  {
    absl::MutexLock lock(&mu_);
    kq = kq_.exchange(-1, std::memory_order_relaxed);
  }
  // A Post() may still be sending its trigger (see Post); closed_ is set,
  // so no other starts.
  while (wakers_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  close(kq);
  DestroyRegistrations();
  shut_down_.store(true, std::memory_order_release);
}

Metrics IoService::metrics() const {
  Metrics m = counters_.Snapshot();
  m.timers_pending = timers_gauge_.load(std::memory_order_relaxed);
  m.registrations = slots_gauge_.load(std::memory_order_relaxed);
  m.tracked_operations = tracked_gauge_.load(std::memory_order_relaxed);
  return m;
}

}  // namespace io
}  // namespace kqio
