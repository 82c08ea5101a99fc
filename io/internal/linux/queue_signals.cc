// EVFILT_SIGNAL on the Linux kqueue: a queue's side of the SignalHub.
//
// While a queue has signal knotes, the hub's signalfd is in its epoll set
// (level-triggered: whichever queue's waiter sees it readable first collects
// for every queue) and the hub knows the queue's wake eventfd, which it
// writes whenever a watched signal was counted (edge-triggered: never read;
// it is the descriptor that wakes a waiter for any other reason too, so a
// queue owns no descriptor of its own for signals).  Either event makes the
// queue compare each knote's `seen` with the hub's count; the difference is
// the `data` of the next event.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>

#include <algorithm>

#include "io/internal/linux/queue.h"
#include "io/internal/linux/queue_internal.h"
#include "io/internal/linux/signal_hub.h"

namespace kqio::kq_internal {

int Queue::AttachSignal(Knote* kn) {
  if (kn->kev.ident < 1 || kn->kev.ident >= static_cast<uintptr_t>(NSIG)) {
    return EINVAL;
  }
  const int signo = static_cast<int>(kn->kev.ident);
  kn->kev.flags |= EV_CLEAR;  // FreeBSD forces it for signals
  SignalHub& hub = SignalHub::Get();
  if (int err = hub.Subscribe(signo, wake_fd_); err != 0) return err;
  if (signal_knotes_.empty()) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN;
    ev.data.u64 = Cookie(kTagControl, 0, kControlSignal);
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, hub.fd(), &ev) != 0) {
      const int err = errno;
      hub.Unsubscribe(signo, wake_fd_);
      return err;
    }
  }
  // Deliveries the hub counted before now belong to other knotes.
  kn->seen = hub.Count(signo);
  signal_knotes_.push_back(kn);
  // signalfd only sees blocked signals (see <sys/event.h>).
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, signo);
  pthread_sigmask(SIG_BLOCK, &one, nullptr);
  return 0;
}

void Queue::DetachSignal(Knote* kn) {
  auto it = std::find(signal_knotes_.begin(), signal_knotes_.end(), kn);
  if (it == signal_knotes_.end()) return;
  signal_knotes_.erase(it);
  SignalHub& hub = SignalHub::Get();
  if (signal_knotes_.empty()) {
    // Otherwise a pending signal that only other queues watch would keep
    // waking this one.  Before unsubscribing: the last subscription closes
    // the descriptor, and its number could then name another file.
    struct epoll_event ev = {};
    epoll_ctl(epfd_, EPOLL_CTL_DEL, hub.fd(), &ev);
  }
  hub.Unsubscribe(static_cast<int>(kn->kev.ident), wake_fd_);
}

void Queue::CountSignals() {
  const SignalHub& hub = SignalHub::Get();
  for (Knote* kn : signal_knotes_) {
    const uint64_t count = hub.Count(static_cast<int>(kn->kev.ident));
    if (count == kn->seen) continue;
    // Counted while disabled too, as on FreeBSD.
    kn->out_data += static_cast<int64_t>(count - kn->seen);
    kn->seen = count;
    Activate(kn);
  }
}

}  // namespace kqio::kq_internal
