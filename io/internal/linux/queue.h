// One Linux kqueue: the knotes registered with it, an epoll set that watches
// their descriptors, and the list of knotes with events ready to return.
//
// Descriptor filters (EVFILT_READ/WRITE) map to one epoll registration per
// descriptor.  Every other source lives in user space: EVFILT_USER triggers
// and posted EVFILT_AIO completions go straight to the ready list; timers
// (one timerfd each), signals (one signalfd) and watched AIO descriptors are
// epoll members whose readiness activates their knote.  A thread that is
// about to block in epoll_wait counts itself in `waiters_`; activating a
// knote from another thread then writes the wake eventfd once.
//
// Thread-safety: every public method may be called from any thread.  The
// mutex is never held across epoll_wait and never while user code runs (this
// layer calls no user code).  Lifetime: owned by the registry through a
// shared_ptr; callers of Kevent() hold a reference for the whole call.
#ifndef KQIO_IO_INTERNAL_LINUX_QUEUE_H_
#define KQIO_IO_INTERNAL_LINUX_QUEUE_H_

#include <signal.h>
#include <sys/epoll.h>
#include <sys/event.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "io/internal/linux/knote.h"

namespace kqio::kq_internal {

class Queue final {
 public:
  // Creates a queue that watches `hangup_fd` (the read end of the pipe whose
  // write end the user holds) and takes ownership of it.  Returns an errno
  // on failure, in which case `hangup_fd` is left open.
  static int Create(int hangup_fd, std::shared_ptr<Queue>* out);

  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  ~Queue();

  // kevent(2).  Returns the number of events stored, or -errno.
  int Kevent(const struct kevent* changes, int nchanges, struct kevent* events,
             int nevents, const struct timespec* timeout);

  // Queues one EVFILT_AIO event (not coalesced with any other).  0 or errno.
  int PostAio(const struct kevent& ev);
  // EV_ADD / EV_DELETE / EV_ENABLE / EV_DISABLE of an EVFILT_AIO knote
  // (ident, udata from `ev`) that becomes active, edge-triggered, whenever
  // `fd` turns readable.  `fd` stays owned by the caller.  0 or errno.
  int WatchAio(int fd, const struct kevent& ev);

  // The user's descriptor is gone: every waiter returns EBADF.
  void MarkClosed() { closed_.store(true, std::memory_order_release); }
  // Whether the user's descriptor is closed, asking the pipe (one poll()).
  bool HungUp();
  int hangup_fd() const { return hangup_fd_; }

  // After fork() in the child: closes the descriptors without locking (the
  // lock may be held by a thread that does not exist in the child).
  void AbandonAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS;

 private:
  Queue(int epfd, int hangup_fd);

  // Changes.  Each returns 0 or an errno for the EV_ERROR entry.
  int ApplyChange(const struct kevent& kev) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int ApplyFdChange(const struct kevent& kev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int ApplyIdentChange(const struct kevent& kev, int aio_fd)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Modify(Knote* kn, const struct kevent& kev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Filter hooks for ident-keyed knotes.
  int Attach(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int Touch(Knote* kn, const struct kevent& kev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Detach(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int SyncSource(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int ArmTimer(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int UpdateSignalMask() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Descriptor entries.
  FdEntry& Entry(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int SyncFd(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PurgeFd(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Revalidate(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Slots: epoll identities of timerfds and AIO watches.
  uint32_t AllocSlot(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeSlot(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Readiness.
  void Activate(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Destroy(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int Wait(struct kevent* events, int nevents, const struct timespec* timeout);
  void Translate(const struct epoll_event& ev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadSignals() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int Drain(struct kevent* out, int room) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Fill(Knote* kn, struct kevent* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FillFd(Knote* kn, struct kevent* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After delivery: EV_ONESHOT, EV_DISPATCH, EV_CLEAR or level re-queueing.
  // Returns true when the knote must be queued again (level-triggered).
  bool Settle(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes one blocked waiter if there is one and no wake is in flight.
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FlushWake() ABSL_LOCKS_EXCLUDED(mu_);

  const int epfd_;
  const int hangup_fd_;
  std::atomic<bool> closed_{false};

  absl::Mutex mu_;
  int wake_fd_ ABSL_GUARDED_BY(mu_) = -1;  // created by the first waiter
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;   // threads blocked in epoll_wait
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_due_ ABSL_GUARDED_BY(mu_) = false;  // write wake_fd_ after unlock
  int signal_fd_ ABSL_GUARDED_BY(mu_) = -1;
  sigset_t signal_mask_ ABSL_GUARDED_BY(mu_);
  std::vector<FdEntry> fds_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::pair<short, uintptr_t>, Knote*> idents_
      ABSL_GUARDED_BY(mu_);
  std::vector<Knote*> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> slot_gens_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_slots_ ABSL_GUARDED_BY(mu_);
  ReadyList ready_ ABSL_GUARDED_BY(mu_);
  uint64_t drain_stamp_ ABSL_GUARDED_BY(mu_) = 0;  // see Knote::drain_stamp
  uint64_t epoll_batch_ ABSL_GUARDED_BY(mu_) = 0;  // see Knote::batch
  // Descriptors whose edge-triggered registration must be re-armed because a
  // level-triggered knote on them was just returned.
  std::vector<int> rearm_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kqio::kq_internal

#endif  // KQIO_IO_INTERNAL_LINUX_QUEUE_H_
