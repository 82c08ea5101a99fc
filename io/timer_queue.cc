#include "io/timer_queue.h"

#include <algorithm>
#include <utility>

namespace kqio {
namespace io {

TimerQueue::~TimerQueue() { Clear(); }

TimerId TimerQueue::Add(int64_t deadline_ns, int64_t period_ns, Callback cb) {
  if (!cb || period_ns < 0) return TimerId();
  const uint32_t index = AllocSlot();
  Slot& s = slots_[index];
  s.cb = std::move(cb);
  s.period = period_ns;
  s.state = State::kPending;
  ++live_;
  Push(deadline_ns, index);
  return TimerId(uint64_t{s.generation} << 32 | index);
}

bool TimerQueue::Cancel(TimerId id) {
  Slot* s = Lookup(id);
  if (s == nullptr) return false;
  switch (s->state) {
    case State::kPending: {
      const uint32_t index = static_cast<uint32_t>(id.value_);
      RemoveAt(s->heap_index);
      Callback doomed = std::move(s->cb);
      FreeSlot(index);
      --live_;
      return true;  // `doomed` is destroyed here, with the queue consistent
    }
    case State::kRunning:
      // Only periodic timers stay in their slot while running: this stops
      // the ticks to come.  RunDue frees the slot when the callback returns.
      s->state = State::kCancelledWhileRunning;
      --live_;
      return true;
    case State::kCancelledWhileRunning:
    case State::kFree:
      break;
  }
  return false;
}

size_t TimerQueue::RunDue(int64_t now_ns,
                          absl::FunctionRef<bool(int64_t)> after_each) {
  // Timers added from here on have seq >= limit and wait for the next pass,
  // so a callback that re-adds itself with a zero delay cannot spin here.
  const uint64_t limit = next_seq_;
  size_t ran = 0;
  while (!heap_.empty()) {
    const Entry top = heap_.front();
    if (top.deadline > now_ns || top.seq >= limit) break;
    RemoveAt(0);
    const uint32_t index = top.slot;
    Callback cb = std::move(slots_[index].cb);
    const int64_t period = slots_[index].period;
    if (period > 0) {
      slots_[index].state = State::kRunning;
    } else {
      // A one-shot timer is gone before its callback runs, so Cancel() from
      // inside the callback sees a stale id.
      FreeSlot(index);
      --live_;
    }
    cb();
    ++ran;
    if (period > 0) {
      Slot& s = slots_[index];  // the callback may have grown slots_
      if (s.state == State::kRunning) {
        int64_t next = top.deadline + period;
        if (next <= now_ns) {  // missed ticks: skip them, keep the phase
          next = top.deadline + ((now_ns - top.deadline) / period + 1) * period;
        }
        s.cb = std::move(cb);
        s.state = State::kPending;
        Push(next, index);
      } else {
        FreeSlot(index);  // cancelled inside its callback; `cb` dies below
      }
    }
    const bool go_on = after_each(now_ns - top.deadline);
    if (!go_on) break;
  }
  return ran;
}

size_t TimerQueue::Clear() {
  std::vector<Callback> doomed;
  doomed.reserve(heap_.size());
  for (const Entry& e : heap_) {
    doomed.push_back(std::move(slots_[e.slot].cb));
    FreeSlot(e.slot);
  }
  const size_t dropped = heap_.size();
  live_ -= dropped;
  heap_.clear();
  // A periodic timer whose callback is running (Clear() called from inside
  // it) is stopped the same way Cancel() would.
  for (Slot& s : slots_) {
    if (s.state == State::kRunning) {
      s.state = State::kCancelledWhileRunning;
      --live_;
    }
  }
  doomed.clear();  // destructors may use the queue again: it is consistent
  return dropped;
}

TimerQueue::Slot* TimerQueue::Lookup(TimerId id) {
  const uint32_t index = static_cast<uint32_t>(id.value_);
  const uint32_t generation = static_cast<uint32_t>(id.value_ >> 32);
  if (!id.valid() || index >= slots_.size()) return nullptr;
  Slot& s = slots_[index];
  if (s.generation != generation || s.state == State::kFree) return nullptr;
  return &s;
}

uint32_t TimerQueue::AllocSlot() {
  if (!free_.empty()) {
    const uint32_t index = free_.back();
    free_.pop_back();
    return index;
  }
  slots_.emplace_back();
  return static_cast<uint32_t>(slots_.size() - 1);
}

void TimerQueue::FreeSlot(uint32_t index) {
  Slot& s = slots_[index];
  s.cb = nullptr;
  s.state = State::kFree;
  if (++s.generation == 0) s.generation = 1;  // 0 would make a null TimerId
  free_.push_back(index);
}

void TimerQueue::Push(int64_t deadline, uint32_t slot) {
  heap_.push_back(Entry{deadline, next_seq_++, slot});
  SiftUp(heap_.size() - 1);
}

void TimerQueue::RemoveAt(size_t i) {
  const size_t last = heap_.size() - 1;
  if (i != last) {
    const Entry moved = heap_[last];
    heap_.pop_back();
    Place(i, moved);
    if (i > 0 && Before(moved, heap_[(i - 1) / kArity])) {
      SiftUp(i);
    } else {
      SiftDown(i);
    }
  } else {
    heap_.pop_back();
  }
}

void TimerQueue::SiftUp(size_t i) {
  const Entry e = heap_[i];
  while (i > 0) {
    const size_t parent = (i - 1) / kArity;
    if (!Before(e, heap_[parent])) break;
    Place(i, heap_[parent]);
    i = parent;
  }
  Place(i, e);
}

void TimerQueue::SiftDown(size_t i) {
  const size_t n = heap_.size();
  const Entry e = heap_[i];
  for (;;) {
    const size_t first = kArity * i + 1;
    if (first >= n) break;
    const size_t end = std::min(first + kArity, n);
    size_t best = first;
    for (size_t c = first + 1; c < end; ++c) {
      if (Before(heap_[c], heap_[best])) best = c;
    }
    if (!Before(heap_[best], e)) break;
    Place(i, heap_[best]);
    i = best;
  }
  Place(i, e);
}

}  // namespace io
}  // namespace kqio
