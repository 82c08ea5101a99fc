// One Linux kqueue: the knotes registered with it, an epoll set that watches
// their descriptors, and the list of knotes with events ready to return.
//
// Descriptor filters (EVFILT_READ/WRITE) map to one epoll registration per
// descriptor.  Every other source lives in user space: EVFILT_USER triggers
// and posted EVFILT_AIO completions go straight to the ready list; timers
// (one timerfd each) and watched AIO descriptors are epoll members whose
// readiness activates their knote; signals come from the process-wide
// SignalHub, whose signalfd is an epoll member and which writes the queue's
// wake eventfd when it counted one.  A thread that is about to block in
// epoll_wait counts itself in `waiters_`; activating a knote from another
// thread then wakes one waiter once (see WakeLocked).  The descriptors a
// queue needs to wait and be woken (epoll set, wake eventfd, hangup pipe)
// are all created by kqueue(): kevent() never creates one, so a full
// descriptor table cannot make it fail; only a knote that owns a descriptor
// (a timer) can fail to be added, with EMFILE as that change's error.
//
// A kevent() call that only applies changes never reaches epoll_wait, where
// a close of the user's descriptor (the write end of the hangup pipe) is
// otherwise noticed, so it must check that its number still names this
// queue: the program may have closed it, and the number may name another
// file already.  The check is one system call, and doubles as the wake when
// the changes must wake a waiter: the user's descriptor is itself in the
// epoll set (edge-triggered), and EPOLL_CTL_MOD of that registration to
// EPOLLOUT, which a pipe nobody fills always has, fails unless the number
// still names the same file, and otherwise queues it, waking one waiter.
// With no wake due, fstat() answers instead (a MOD would wake somebody).
//
// Thread-safety: every public method may be called from any thread.  The
// mutex is never held across epoll_wait and never while user code runs (this
// layer calls no user code).  Lifetime: owned by the registry through a
// shared_ptr; callers of Kevent() hold a reference for the whole call.
#ifndef KQIO_IO_INTERNAL_LINUX_QUEUE_H_
#define KQIO_IO_INTERNAL_LINUX_QUEUE_H_

#include <sys/epoll.h>
#include <sys/event.h>
#include <sys/types.h>

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
  // write end, `kq_fd`, the user holds) and takes ownership of `hangup_fd`.
  // `kq_fd` stays the user's.  Returns an errno on failure, in which case
  // `hangup_fd` is left open.
  static int Create(int hangup_fd, int kq_fd, std::shared_ptr<Queue>* out);

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
  int hangup_fd() const { return hangup_fd_; }

  // After fork() in the child: closes the descriptors without locking (the
  // lock may be held by a thread that does not exist in the child).
  void AbandonAfterFork() ABSL_NO_THREAD_SAFETY_ANALYSIS;

 private:
  Queue(int epfd, int wake_fd, int hangup_fd, int kq_fd, dev_t pipe_dev,
        ino_t pipe_ino);

  // Whether the user's number still names this queue (if not, marks it
  // closed).  With a wake due (`wake_fd` >= 0, from TakeWakeLocked) one
  // EPOLL_CTL_MOD (see the class comment) answers and wakes a waiter;
  // otherwise fstat() answers, waking nobody.
  bool StillOpen(int wake_fd);

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

  // Signals (the SignalHub's side is in signal_hub.h).
  int AttachSignal(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DetachSignal(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds the deliveries counted by the hub since each knote last looked.
  void CountSignals() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Descriptor entries.
  FdEntry& Entry(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Learns the kind and identity of `fd` if not known yet.  0 or errno.
  int EnsureKind(int fd, FdEntry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int SyncFd(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PurgeFd(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Revalidate(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Slots: epoll identities of timerfds and AIO watches.
  uint32_t AllocSlot(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeSlot(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Readiness.
  void Activate(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Destroy(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Knotes come from and go back to a small free list: a batch of EV_ADDs
  // and EV_DELETEs would otherwise go through malloc's slower bins.
  Knote* NewKnote() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeKnote(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int Wait(struct kevent* events, int nevents, const struct timespec* timeout);
  void Translate(const struct epoll_event& ev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int Drain(struct kevent* out, int room) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Fill(Knote* kn, struct kevent* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FillFd(Knote* kn, struct kevent* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After delivery: EV_ONESHOT, EV_DISPATCH, EV_CLEAR or level re-queueing.
  // Returns true when the knote must be queued again (level-triggered).
  bool Settle(Knote* kn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes one blocked waiter if there is one and no wake is in flight: sets
  // wake_due_, which the locked section hands to the system call after the
  // unlock with TakeWakeLocked.
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The eventfd to write after unlocking (SendWake), or -1: no wake is due.
  int TakeWakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void SendWake(int wake_fd);

  const int epfd_;
  // An eventfd in the epoll set, edge-triggered and never read: a write
  // wakes one waiter (see WakeLocked).  Created with the queue, like every
  // descriptor a queue needs to wait (see Create).
  const int wake_fd_;
  const int hangup_fd_;
  const int kq_fd_;  // the user's number, as registered in epfd_
  const dev_t pipe_dev_;  // identity of the pipe (both ends)
  const ino_t pipe_ino_;
  std::atomic<bool> closed_{false};

  absl::Mutex mu_;
  int waiters_ ABSL_GUARDED_BY(mu_) = 0;   // threads blocked in epoll_wait
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_due_ ABSL_GUARDED_BY(mu_) = false;
  // Signals: the hub's signalfd is in the epoll set while signal_knotes_ is
  // not empty, and the hub writes wake_fd_ when their counts moved.
  std::vector<Knote*> signal_knotes_ ABSL_GUARDED_BY(mu_);
  std::vector<FdEntry> fds_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::pair<short, uintptr_t>, Knote*> idents_
      ABSL_GUARDED_BY(mu_);
  std::vector<Knote*> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> slot_gens_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_slots_ ABSL_GUARDED_BY(mu_);
  ReadyList ready_ ABSL_GUARDED_BY(mu_);
  static constexpr size_t kMaxSpareKnotes = 256;
  std::vector<Knote*> spare_knotes_ ABSL_GUARDED_BY(mu_);
  uint64_t drain_stamp_ ABSL_GUARDED_BY(mu_) = 0;  // see Knote::drain_stamp
  uint64_t epoll_batch_ ABSL_GUARDED_BY(mu_) = 0;  // see Knote::batch
  // Descriptors whose edge-triggered registration must be re-armed because a
  // level-triggered knote on them was just returned.
  std::vector<int> rearm_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kqio::kq_internal

#endif  // KQIO_IO_INTERNAL_LINUX_QUEUE_H_
