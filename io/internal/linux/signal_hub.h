// One signalfd for the whole process, shared by every kqueue that watches a
// signal.  A signal read from a signalfd is consumed, so if each queue had
// its own, only one of two queues watching SIGUSR1 would see it; FreeBSD
// records a signal in every knote that watches it.  The hub counts each
// delivery per signal and tells every subscribed queue, through the
// subscriber's own eventfd, that counts moved; a queue's knote reports the
// difference since its last look (see queue_signals.cc).
//
// Any subscribed queue may collect: each one has the hub's signalfd in its
// epoll set.  A signalfd reads the signals pending for the process and for
// the calling thread, so a signal sent to one thread (raise(),
// pthread_kill()) is collected only when that thread calls kevent().
//
// Thread-safety: all methods are thread-safe.  The hub never calls into a
// queue, so a queue may call it with its own lock held (lock order: a
// queue's mutex, then the hub's).  Lifetime: never destroyed.  After fork()
// the child's hub forgets every subscriber (the child's queues are closed)
// and opens a signalfd of its own on the next subscription: the inherited
// one shares its mask with the parent's.
#ifndef KQIO_IO_INTERNAL_LINUX_SIGNAL_HUB_H_
#define KQIO_IO_INTERNAL_LINUX_SIGNAL_HUB_H_

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kqio::kq_internal {

class SignalHub final {
 public:
  static SignalHub& Get();

  SignalHub(const SignalHub&) = delete;
  SignalHub& operator=(const SignalHub&) = delete;

  // Starts counting `signo` (1 <= signo < NSIG) for the subscriber whose
  // eventfd is `notify_fd`; one subscription per (signo, notify_fd).  The
  // hub writes to `notify_fd` until Unsubscribe returns.  0 or an errno.
  int Subscribe(int signo, int notify_fd);
  void Unsubscribe(int signo, int notify_fd);

  // The signalfd the queues watch; -1 while nobody subscribes (the last
  // Unsubscribe closes it).
  int fd() const { return fd_.load(std::memory_order_acquire); }

  // Reads every pending signal, counts it, and notifies the subscribers of
  // the signals that arrived.
  void Collect();

  // Deliveries of `signo` counted so far; never decreases.
  uint64_t Count(int signo) const {
    return counts_[signo].load(std::memory_order_acquire);
  }

 private:
  SignalHub();
  int UpdateMask() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static void ForkPrepare();
  static void ForkParent();
  static void ForkChild();

  absl::Mutex mu_;
  std::atomic<int> fd_{-1};
  sigset_t mask_ ABSL_GUARDED_BY(mu_);
  std::vector<int> subscribers_[NSIG] ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> counts_[NSIG] = {};
};

}  // namespace kqio::kq_internal

#endif  // KQIO_IO_INTERNAL_LINUX_SIGNAL_HUB_H_
