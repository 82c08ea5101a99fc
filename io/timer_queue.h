// io::TimerQueue: every user timer of one IoService, in one heap.
//
// The service never asks the kernel for a timer per user timer: it sleeps in
// kevent() with a timeout of NextDeadline() and then calls RunDue().  The
// heap is an array-based 4-ary min-heap (half the depth of a binary one, and
// siblings share cache lines) ordered by (deadline, sequence),
// so equal deadlines fire in the order they were added (FIFO); each entry
// knows its slot and each slot its heap position, so Cancel() is O(log n)
// and needs no search.  Slots are recycled through a free list and carry a
// generation, which is how a TimerId of a timer that already fired, was
// cancelled, or whose slot was reused is recognised as stale.
//
// Deadlines are int64 nanoseconds on a monotonic clock the caller chooses
// (IoService uses MonoClock); the queue never reads a clock itself.
//
// Callbacks are `void()`.  A cancelled timer's callback, and every pending
// callback at Clear() or destruction, is destroyed without being run.  A
// callback may add and cancel timers, including itself.  A periodic timer
// keeps a fixed rate: after a tick at deadline d it is rescheduled at the
// first d + k*period later than `now`, skipping ticks it missed rather than
// bursting to catch up.
//
// Thread-safety: none; the owning loop thread only.
#ifndef KQIO_IO_TIMER_QUEUE_H_
#define KQIO_IO_TIMER_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"

namespace kqio {
namespace io {

// Names one timer.  Default-constructed: names none (valid() is false).
// Cheap to copy; stays safe to use after the timer is gone.
class TimerId final {
 public:
  constexpr TimerId() = default;
  bool valid() const { return value_ != 0; }
  friend bool operator==(TimerId a, TimerId b) { return a.value_ == b.value_; }
  friend bool operator!=(TimerId a, TimerId b) { return a.value_ != b.value_; }

 private:
  friend class TimerQueue;
  explicit constexpr TimerId(uint64_t v) : value_(v) {}
  uint64_t value_ = 0;  // generation << 32 | slot index
};

class TimerQueue final {
 public:
  using Callback = absl::AnyInvocable<void()>;
  static constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();

  TimerQueue() = default;
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;
  ~TimerQueue();

  // Schedules `cb` at `deadline_ns`; if `period_ns` > 0, again every period
  // after that.  A null `cb` or a negative period adds nothing and returns an
  // invalid id.
  TimerId Add(int64_t deadline_ns, int64_t period_ns, Callback cb);

  // Stops the timer.  Returns true if that prevented a run: the timer was
  // pending, or it is a periodic timer whose callback is running right now
  // (it will not be rescheduled).  False for an invalid or stale id, and for
  // a one-shot timer inside its own callback.  The callback of a pending
  // timer is destroyed before Cancel returns.
  bool Cancel(TimerId id);

  // Earliest pending deadline, or kNoDeadline.
  int64_t NextDeadline() const {
    return heap_.empty() ? kNoDeadline : heap_.front().deadline;
  }
  // Pending timers (a periodic timer inside its own callback counts).
  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }

  // Runs, in (deadline, FIFO) order, every timer due at `now_ns` that was
  // added before this call; timers added by those callbacks wait for the
  // next call even if due.  After each callback, `after_each(lateness_ns)` is
  // told how late it ran; returning false stops the pass (the rest stay
  // pending).  Returns the number of callbacks run.
  size_t RunDue(int64_t now_ns, absl::FunctionRef<bool(int64_t)> after_each);
  size_t RunDue(int64_t now_ns) {
    return RunDue(now_ns, [](int64_t) { return true; });
  }

  // Destroys every pending callback without running it; returns how many.
  // Callback destructors may use the queue again.
  size_t Clear();

 private:
  enum class State : uint8_t { kFree, kPending, kRunning, kCancelledWhileRunning };
  struct Slot {
    Callback cb;
    int64_t period = 0;
    uint32_t generation = 1;
    uint32_t heap_index = 0;
    State state = State::kFree;
  };
  struct Entry {
    int64_t deadline;
    uint64_t seq;
    uint32_t slot;
  };
  static constexpr size_t kArity = 4;
  static bool Before(const Entry& a, const Entry& b) {
    return a.deadline < b.deadline ||
           (a.deadline == b.deadline && a.seq < b.seq);
  }

  Slot* Lookup(TimerId id);
  uint32_t AllocSlot();
  void FreeSlot(uint32_t index);  // bumps the generation
  void Push(int64_t deadline, uint32_t slot);
  void RemoveAt(size_t heap_index);
  void SiftUp(size_t i);
  void SiftDown(size_t i);
  void Place(size_t i, const Entry& e) {
    heap_[i] = e;
    slots_[e.slot].heap_index = static_cast<uint32_t>(i);
  }

  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;
  std::vector<Entry> heap_;
  uint64_t next_seq_ = 0;
  size_t live_ = 0;
};

}  // namespace io
}  // namespace kqio

#endif  // KQIO_IO_TIMER_QUEUE_H_
