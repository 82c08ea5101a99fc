#include "io/internal/linux/signal_hub.h"

#include <errno.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>

namespace kqio::kq_internal {

SignalHub& SignalHub::Get() {
  static SignalHub* const hub = new SignalHub;
  return *hub;
}

SignalHub::SignalHub() {
  sigemptyset(&mask_);
  pthread_atfork(&SignalHub::ForkPrepare, &SignalHub::ForkParent,
                 &SignalHub::ForkChild);
}

int SignalHub::UpdateMask() {
  const int old = fd_.load(std::memory_order_relaxed);
  const int fd = signalfd(old, &mask_, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return errno;
  // With an existing descriptor, signalfd() changes its mask in place: the
  // queues' epoll registrations stay valid.
  if (old < 0) fd_.store(fd, std::memory_order_release);
  return 0;
}

int SignalHub::Subscribe(int signo, int notify_fd) {
  if (signo < 1 || signo >= NSIG) return EINVAL;
  absl::MutexLock lock(&mu_);
  std::vector<int>& subs = subscribers_[signo];
  if (subs.empty()) {
    sigaddset(&mask_, signo);
    if (int err = UpdateMask(); err != 0) {
      sigdelset(&mask_, signo);
      return err;
    }
  }
  subs.push_back(notify_fd);
  return 0;
}

void SignalHub::Unsubscribe(int signo, int notify_fd) {
  if (signo < 1 || signo >= NSIG) return;
  absl::MutexLock lock(&mu_);
  std::vector<int>& subs = subscribers_[signo];
  auto it = std::find(subs.begin(), subs.end(), notify_fd);
  if (it == subs.end()) return;
  subs.erase(it);
  if (!subs.empty()) return;
  // The signal stays blocked in the threads that blocked it: a signal nobody
  // watches any more stays pending rather than running its default action.
  sigdelset(&mask_, signo);
  if (!sigisemptyset(&mask_)) {
    UpdateMask();
    return;
  }
  // Nobody subscribes: no queue has the descriptor in its epoll set any
  // more (see Queue::DetachSignal), and a program counting its descriptors
  // finds none left behind.
  close(fd_.load(std::memory_order_relaxed));
  fd_.store(-1, std::memory_order_release);
}

void SignalHub::Collect() {
  absl::MutexLock lock(&mu_);
  const int fd = fd_.load(std::memory_order_relaxed);
  if (fd < 0) return;
  bool arrived[NSIG] = {};
  bool any = false;
  struct signalfd_siginfo info[16];
  ssize_t r;
  while ((r = read(fd, info, sizeof(info))) > 0) {
    for (size_t i = 0; i < static_cast<size_t>(r) / sizeof(info[0]); ++i) {
      const uint32_t signo = info[i].ssi_signo;
      if (signo >= static_cast<uint32_t>(NSIG)) continue;
      counts_[signo].fetch_add(1, std::memory_order_release);
      arrived[signo] = any = true;
    }
  }
  if (!any) return;  // another queue's thread was faster
  std::vector<int> notify;
  for (int signo = 1; signo < NSIG; ++signo) {
    if (!arrived[signo]) continue;
    notify.insert(notify.end(), subscribers_[signo].begin(),
                  subscribers_[signo].end());
  }
  std::sort(notify.begin(), notify.end());
  notify.erase(std::unique(notify.begin(), notify.end()), notify.end());
  // Under the lock: once Unsubscribe has returned, the number may be reused.
  const uint64_t one = 1;
  for (int nfd : notify) (void)!write(nfd, &one, sizeof(one));
}

void SignalHub::ForkPrepare() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Get().mu_.Lock();
}

void SignalHub::ForkParent() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Get().mu_.Unlock();
}

void SignalHub::ForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  SignalHub& hub = Get();
  // The subscribers' eventfds are closed with the child's queues, and
  // changing the inherited signalfd's mask would change the parent's.
  const int fd = hub.fd_.load(std::memory_order_relaxed);
  if (fd >= 0) close(fd);
  hub.fd_.store(-1, std::memory_order_relaxed);
  sigemptyset(&hub.mask_);
  for (std::vector<int>& subs : hub.subscribers_) subs.clear();
  hub.mu_.Unlock();
}

}  // namespace kqio::kq_internal
