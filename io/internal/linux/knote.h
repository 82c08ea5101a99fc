// The registration records of the Linux kqueue: one Knote per (ident, filter)
// pair, one FdEntry per watched descriptor, and the intrusive list of knotes
// that have an event waiting to be returned.  All of it is owned by one Queue
// and guarded by its mutex.
#ifndef KQIO_IO_INTERNAL_LINUX_KNOTE_H_
#define KQIO_IO_INTERNAL_LINUX_KNOTE_H_

#include <sys/event.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace kqio::kq_internal {

struct Knote {
  // ident, filter, udata and the persistent flags (EV_CLEAR, EV_ONESHOT,
  // EV_DISPATCH, EV_RECEIPT); fflags and data of `kev` are unused.
  struct kevent kev = {};
  uint32_t sfflags = 0;  // fflags given at registration (NOTE_LOWAT, units...)
  int64_t sdata = 0;     // data given at registration (low-water mark, period)

  // What the next returned event reports: accumulated timer expirations or
  // signal deliveries, the user filter's flags, an AIO result.
  uint32_t out_fflags = 0;
  int64_t out_data = 0;
  // EVFILT_SIGNAL: SignalHub::Count(signo) when deliveries were last added
  // to out_data; the knote reports the difference.
  uint64_t seen = 0;
  // Descriptor knotes that could not be returned in the batch that saw them
  // keep the epoll events here until the next call.
  uint32_t pending_epoll = 0;
  // The epoll batch (Queue::epoll_batch_) that set pending_epoll: events
  // from an earlier batch may belong to a file closed since.
  uint64_t batch = 0;

  bool enabled = true;
  bool active = false;     // has an event to return (non-epoll sources)
  bool transient = false;  // a posted AIO completion: freed once returned
  // A read knote on a regular file at its end: queued so that every pass
  // re-checks the size, but not a reason for kevent() not to block (see
  // ReadyList::HasUnparked).  Changed only while the knote is not queued.
  bool parked = false;

  // Timers and AIO watches own a descriptor registered in the epoll set under
  // a slot number (see Queue::slots_).
  int source_fd = -1;
  uint32_t slot = 0;

  // Ready-list links.
  Knote* prev = nullptr;
  Knote* next = nullptr;
  bool queued = false;
  // The Queue::Drain pass that last returned this knote: a level-triggered
  // knote goes back on the ready list at once, and the stamp keeps the same
  // pass from returning it twice.
  uint64_t drain_stamp = 0;
};

// The kind of a watched descriptor decides how `data` is computed.
enum class FdKind : uint8_t {
  kUnknown,  // not asked yet (see Queue::EnsureKind)
  kSocket,
  kListeningSocket,
  kPipe,
  kVnode,  // regular file, directory, block device: never blocks
  kOther,  // character devices, eventfd, timerfd, inotify...
};

struct FdEntry {
  Knote* read = nullptr;
  Knote* write = nullptr;
  // Bumped whenever the entry is reset, so that epoll events still queued for
  // an earlier file with the same number can be recognised and dropped.
  uint32_t gen = 0;
  uint32_t epoll_events = 0;  // what is registered with epoll_ctl
  bool in_epoll = false;
  bool pollable = true;  // false: epoll refused it (EPERM); always ready
  // Learnt with fstat() only when first needed: registering a read filter
  // costs one epoll_ctl, as it would without kqio.  Until then dev/ino are
  // unset too.
  FdKind kind = FdKind::kUnknown;
  int sticky_error = 0;  // SO_ERROR consumed by an earlier event
  dev_t dev = 0;         // identity of the file, once `kind` is known
  ino_t ino = 0;
};

// Intrusive FIFO of knotes with something to report.
class ReadyList final {
 public:
  bool empty() const { return head_ == nullptr; }
  // Whether something other than parked knotes is queued.
  bool HasUnparked() const { return size_ > parked_; }
  Knote* front() const { return head_; }

  void PushBack(Knote* kn) {
    if (kn->queued) return;
    kn->queued = true;
    ++size_;
    if (kn->parked) ++parked_;
    kn->next = nullptr;
    kn->prev = tail_;
    if (tail_ != nullptr) {
      tail_->next = kn;
    } else {
      head_ = kn;
    }
    tail_ = kn;
  }

  void Remove(Knote* kn) {
    if (!kn->queued) return;
    --size_;
    if (kn->parked) --parked_;
    if (kn->prev != nullptr) {
      kn->prev->next = kn->next;
    } else {
      head_ = kn->next;
    }
    if (kn->next != nullptr) {
      kn->next->prev = kn->prev;
    } else {
      tail_ = kn->prev;
    }
    kn->prev = kn->next = nullptr;
    kn->queued = false;
  }

 private:
  Knote* head_ = nullptr;
  Knote* tail_ = nullptr;
  size_t size_ = 0;
  size_t parked_ = 0;
};

}  // namespace kqio::kq_internal

#endif  // KQIO_IO_INTERNAL_LINUX_KNOTE_H_
