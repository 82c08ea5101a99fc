// io::IoService, second half: the slot table (RegisterHandler, Watch and
// friends), signals, tracked operations and BlockSignals.  The loop itself
// is in io_service.cc.
#include <errno.h>
#include <signal.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"
#include "io/io_service.h"

namespace kqio {
namespace io {
namespace {

bool ValidSignal(int signo) {
  return signo > 0 && signo < NSIG && signo != SIGKILL && signo != SIGSTOP;
}

}  // namespace


Registration IoService::AllocSlot(SlotKind kind, EventHandler handler,
                                  bool keep_alive) {
  uint32_t index;
  if (!free_slots_.empty()) {
    index = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slots_.emplace_back();
    index = static_cast<uint32_t>(slots_.size() - 1);
  }
  Slot& s = slots_[index];
  s.handler = std::move(handler);
  s.ident = 0;
  s.filter = 0;
  s.kind = kind;
  s.live = true;
  s.keep_alive = keep_alive;
  s.in_callback = false;
  ++live_slots_;
  if (keep_alive) ++keep_alive_slots_;
  slots_gauge_.store(live_slots_, std::memory_order_relaxed);
  return Registration(index, s.generation);
}

IoService::Slot* IoService::LookupSlot(Registration r) {
  if (!r.valid() || r.slot() >= slots_.size()) return nullptr;
  Slot& s = slots_[r.slot()];
  if (!s.live || s.generation != r.generation()) return nullptr;
  return &s;
}

void IoService::ReleaseSlot(uint32_t index) {
  Slot& s = slots_[index];
  EventHandler doomed = std::move(s.handler);
  s.handler = nullptr;
  s.kind = SlotKind::kFree;
  free_slots_.push_back(index);
  // `doomed` dies last, with the table consistent: its destructor may use
  // the service (e.g. close a socket that unregisters something else).
}

absl::StatusOr<Registration> IoService::RegisterHandler(EventHandler handler,
                                                        KeepAlive keep_alive) {
  AssertLoopThread();
  if (!handler) return absl::InvalidArgumentError("RegisterHandler: null");
  if (closed_local_) {
    return absl::FailedPreconditionError("IoService is shut down");
  }
  return AllocSlot(SlotKind::kHandler, std::move(handler),
                   keep_alive == KeepAlive::kYes);
}

bool IoService::Unregister(Registration r) {
  AssertLoopThread();
  Slot* s = LookupSlot(r);
  if (s == nullptr) return false;
  s->live = false;
  if (++s->generation == 0) s->generation = 1;  // udata is never null
  --live_slots_;
  if (s->keep_alive) --keep_alive_slots_;
  slots_gauge_.store(live_slots_, std::memory_order_relaxed);
  if (s->kind == SlotKind::kSignal) signals_.erase(static_cast<int>(s->ident));
  if (!s->in_callback) ReleaseSlot(r.slot());
  return true;
}

absl::StatusOr<Registration> IoService::AddKnote(SlotKind kind, uintptr_t ident,
                                                 int16_t filter, uint16_t flags,
                                                 uint32_t fflags,
                                                 EventHandler handler,
                                                 bool keep_alive) {
  AssertLoopThread();
  if (!handler) return absl::InvalidArgumentError("Watch: null handler");
  const int kq = kq_.load(std::memory_order_relaxed);
  if (kq < 0 || closed_local_) {
    return absl::FailedPreconditionError("IoService is shut down");
  }
  const Registration r = AllocSlot(kind, std::move(handler), keep_alive);
  Slot& s = slots_[r.slot()];
  s.ident = ident;
  s.filter = filter;
  struct kevent change;
  EV_SET(&change, ident, filter, EV_ADD | flags, fflags, 0, r.udata());
  if (kevent(kq, &change, 1, nullptr, 0, nullptr) != 0) {
    const int err = errno;
    Unregister(r);
    return ErrnoStatus(err, "kevent",
                       absl::StrCat("EV_ADD ident=", ident, " filter=", filter));
  }
  return r;
}

absl::StatusOr<Registration> IoService::Watch(uintptr_t ident, int16_t filter,
                                              uint16_t flags, uint32_t fflags,
                                              EventHandler handler) {
  return AddKnote(SlotKind::kWatch, ident, filter, flags, fflags,
                  std::move(handler), /*keep_alive=*/true);
}

absl::Status IoService::Modify(Registration r, uint16_t flags,
                               uint32_t fflags) {
  AssertLoopThread();
  Slot* s = LookupSlot(r);
  if (s == nullptr || s->kind == SlotKind::kHandler) {
    return absl::NotFoundError("Modify: not a live Watch registration");
  }
  struct kevent change;
  EV_SET(&change, s->ident, s->filter, flags, fflags, 0, r.udata());
  if (kevent(kq_.load(std::memory_order_relaxed), &change, 1, nullptr, 0,
             nullptr) != 0) {
    return ErrnoStatus(errno, "kevent",
                       absl::StrCat("modify ident=", s->ident,
                                    " filter=", s->filter));
  }
  return absl::OkStatus();
}

absl::Status IoService::Unwatch(Registration r) {
  AssertLoopThread();
  Slot* s = LookupSlot(r);
  if (s == nullptr) return absl::NotFoundError("Unwatch: not live");
  int err = 0;
  if (s->kind != SlotKind::kHandler) {
    struct kevent change;
    EV_SET(&change, s->ident, s->filter, EV_DELETE, 0, 0, nullptr);
    if (kevent(kq_.load(std::memory_order_relaxed), &change, 1, nullptr, 0,
               nullptr) != 0 &&
        errno != ENOENT) {
      err = errno;
    }
  }
  const uintptr_t ident = s->ident;
  const int16_t filter = s->filter;
  Unregister(r);
  if (err != 0) {
    return ErrnoStatus(err, "kevent",
                       absl::StrCat("EV_DELETE ident=", ident,
                                    " filter=", filter));
  }
  return absl::OkStatus();
}

absl::Status IoService::OnSignal(int signo, SignalHandler handler,
                                KeepAlive keep_alive) {
  AssertLoopThread();
  if (!ValidSignal(signo)) {
    return absl::InvalidArgumentError(
        absl::StrCat("OnSignal: bad signal number ", signo));
  }
  if (!handler) return absl::InvalidArgumentError("OnSignal: null handler");
  if (signals_.contains(signo)) {
    return absl::AlreadyExistsError(
        absl::StrCat("OnSignal: signal ", signo, " already handled"));
  }
  // FreeBSD forces EV_CLEAR on signal knotes: `data` counts deliveries since
  // the last report.
  absl::StatusOr<Registration> r = AddKnote(
      SlotKind::kSignal, static_cast<uintptr_t>(signo), EVFILT_SIGNAL,
      EV_CLEAR, 0,
      [h = std::move(handler)](const struct kevent& ev) mutable {
        h(static_cast<int>(ev.data));
      },
      keep_alive == KeepAlive::kYes);
  if (!r.ok()) return r.status();
  signals_[signo] = *r;
  return absl::OkStatus();
}

bool IoService::RemoveSignal(int signo) {
  AssertLoopThread();
  auto it = signals_.find(signo);
  if (it == signals_.end()) return false;
  const Registration r = it->second;
  (void)Unwatch(r);  // erases it from signals_
  return true;
}

void IoService::DestroyRegistrations() {
  std::vector<EventHandler> doomed;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (!s.live) continue;
    s.live = false;
    if (++s.generation == 0) s.generation = 1;
    doomed.push_back(std::move(s.handler));
    s.handler = nullptr;
    s.kind = SlotKind::kFree;
    free_slots_.push_back(static_cast<uint32_t>(i));
  }
  live_slots_ = 0;
  keep_alive_slots_ = 0;
  signals_.clear();
  slots_gauge_.store(0, std::memory_order_relaxed);
  doomed.clear();  // handlers' destructors see a consistent, closed service
}

// ---------------------------------------------------------------------------
// Tracked operations.

PendingOperation::~PendingOperation() {
  if (service_ != nullptr) service_->Untrack(this);
}

bool IoService::Track(PendingOperation* op) {
  AssertLoopThread();
  if (op == nullptr || op->service_ != nullptr || closed_local_) return false;
  op->service_ = this;
  op->prev_ = nullptr;
  op->next_ = tracked_head_;
  if (tracked_head_ != nullptr) tracked_head_->prev_ = op;
  tracked_head_ = op;
  ++tracked_count_;
  tracked_gauge_.store(tracked_count_, std::memory_order_relaxed);
  return true;
}

bool IoService::Untrack(PendingOperation* op) {
  AssertLoopThread();
  if (op == nullptr || op->service_ != this) return false;
  if (op->prev_ != nullptr) {
    op->prev_->next_ = op->next_;
  } else {
    tracked_head_ = op->next_;
  }
  if (op->next_ != nullptr) op->next_->prev_ = op->prev_;
  op->service_ = nullptr;
  op->prev_ = nullptr;
  op->next_ = nullptr;
  --tracked_count_;
  tracked_gauge_.store(tracked_count_, std::memory_order_relaxed);
  return true;
}

absl::Status BlockSignals(absl::Span<const int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int signo : signals) {
    if (!ValidSignal(signo)) {
      return absl::InvalidArgumentError(
          absl::StrCat("BlockSignals: bad signal number ", signo));
    }
    sigaddset(&set, signo);
  }
  const int err = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (err != 0) return ErrnoStatus(err, "pthread_sigmask", "BlockSignals");
  return absl::OkStatus();
}

}  // namespace io
}  // namespace kqio
