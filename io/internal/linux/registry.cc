#include "io/internal/linux/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/event.h>
#include <unistd.h>

#include <thread>
#include <utility>
#include <vector>

#include "absl/base/internal/sysinfo.h"
#include "io/kqueue_ext.h"

namespace kqio::kq_internal {
namespace {

uint64_t MonitorCookie(uint32_t id, int fd) {
  return (uint64_t{id} << 32) | static_cast<uint32_t>(fd);
}

// Queues abandoned in a forked child: their locks may be held by threads that
// do not exist there, so they are never destroyed.
std::vector<std::shared_ptr<Queue>>* abandoned = nullptr;

}  // namespace

Registry& Registry::Get() {
  static Registry* const registry = new Registry;
  return *registry;
}

Registry::Registry() {
  pthread_atfork(&Registry::ForkPrepare, &Registry::ForkParent,
                 &Registry::ForkChild);
}

int Registry::EnsureMonitor() {
  absl::MutexLock lock(&monitor_mu_);
  if (monitor_epfd_ >= 0) return monitor_epfd_;
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return -errno;
  // absl::Mutex learns the number of CPUs the first time a lock is
  // contended, which opens a file under /sys.  Do it now, in the caller's
  // thread: the monitor must never open a descriptor behind the program's
  // back (a dup2() onto a number the program just closed would fail with
  // EBUSY, and descriptor counts would be off).
  absl::base_internal::NumCPUs();
  // The monitor must never take a signal meant for the program (a kqueue
  // program blocks the signals it watches only in its own threads), so it
  // starts with every signal blocked.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread(&Registry::MonitorLoop, this, epfd).detach();
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  monitor_epfd_ = epfd;
  return epfd;
}

void Registry::MonitorLoop(int epfd) {
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(epfd, evs, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // the set was closed (after fork, in a child)
    }
    for (int i = 0; i < n; ++i) {
      Release(static_cast<int>(evs[i].data.u64 & 0xffffffff),
              static_cast<uint32_t>(evs[i].data.u64 >> 32));
    }
  }
}

void Registry::Sweep(int timeout_ms) {
  int epfd;
  {
    absl::MutexLock lock(&monitor_mu_);
    epfd = monitor_epfd_;
  }
  if (epfd < 0) return;
  struct epoll_event evs[64];
  int n;
  while ((n = epoll_wait(epfd, evs, 64, timeout_ms)) > 0) {
    for (int i = 0; i < n; ++i) {
      Release(static_cast<int>(evs[i].data.u64 & 0xffffffff),
              static_cast<uint32_t>(evs[i].data.u64 >> 32));
    }
    if (n < 64) break;
  }
}

void Registry::Release(int fd, uint32_t id) {
  std::shared_ptr<Queue> queue;
  {
    Shard& shard = ShardFor(fd);
    absl::MutexLock lock(&shard.mu);
    auto it = shard.queues.find(fd);
    if (it == shard.queues.end() || it->second.id != id) return;
    queue = std::move(it->second.queue);
    shard.queues.erase(it);
    absl::MutexLock release_lock(&release_mu_);
    ++releasing_;
  }
  queue->MarkClosed();
  // The last reference (ours, or that of a kevent() now waking up) closes
  // the queue's descriptors.
  queue.reset();
  absl::MutexLock release_lock(&release_mu_);
  --releasing_;
}

void Registry::DrainPendingClose() {
  Sweep(0);
  // The monitor may hold hangups it has fetched but not released yet: ask
  // every pipe directly.
  std::vector<std::pair<int, uint32_t>> closed;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [fd, slot] : shard.queues) {
      struct pollfd p = {slot.queue->hangup_fd(), 0, 0};
      if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) {
        closed.emplace_back(fd, slot.id);
      }
    }
  }
  for (const auto& [fd, id] : closed) Release(fd, id);
  // A release the monitor thread started before this call may still be
  // closing descriptors.
  absl::MutexLock lock(&release_mu_);
  release_mu_.Await(absl::Condition(
      +[](int* releasing) { return *releasing == 0; }, &releasing_));
}

int Registry::Create() {
  const int monitor = EnsureMonitor();
  if (monitor < 0) return monitor;
  Sweep(0);
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
    if (errno != EMFILE && errno != ENFILE) return -errno;
    DrainPendingClose();
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
  }
  std::shared_ptr<Queue> queue;
  if (int err = Queue::Create(p[0], p[1], &queue); err != 0) {
    close(p[0]);
    close(p[1]);
    return -err;
  }
  const uint32_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
  struct epoll_event ev = {};
  ev.events = EPOLLONESHOT;  // no interest bits: EPOLLHUP only, once
  ev.data.u64 = MonitorCookie(id, p[1]);
  if (epoll_ctl(monitor, EPOLL_CTL_ADD, p[0], &ev) != 0) {
    int err = errno;
    queue.reset();  // closes p[0]
    close(p[1]);
    return -err;
  }
  std::shared_ptr<Queue> stale;
  {
    Shard& shard = ShardFor(p[1]);
    absl::MutexLock lock(&shard.mu);
    Slot& slot = shard.queues[p[1]];
    // The number was free, so whatever queue it named before is closed.
    stale = std::move(slot.queue);
    slot.queue = std::move(queue);
    slot.id = id;
  }
  if (stale != nullptr) stale->MarkClosed();
  return p[1];
}

std::shared_ptr<Queue> Registry::Find(int fd) {
  if (fd < 0) return nullptr;
  Shard& shard = ShardFor(fd);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.queues.find(fd);
  if (it == shard.queues.end()) return nullptr;
  return it->second.queue;
}

void Registry::ForkPrepare() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Registry& r = Get();
  r.monitor_mu_.Lock();
  for (Shard& shard : r.shards_) shard.mu.Lock();
  r.release_mu_.Lock();
}

void Registry::ForkParent() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Registry& r = Get();
  r.release_mu_.Unlock();
  for (Shard& shard : r.shards_) shard.mu.Unlock();
  r.monitor_mu_.Unlock();
}

// A kqueue is not inherited by a child (FreeBSD's rule): close every queue's
// descriptors, the user's included, and forget the monitor, whose thread did
// not survive the fork.
void Registry::ForkChild() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  Registry& r = Get();
  // Releases in flight belonged to threads that do not exist here.
  r.releasing_ = 0;
  r.release_mu_.Unlock();
  if (abandoned == nullptr) abandoned = new std::vector<std::shared_ptr<Queue>>;
  for (Shard& shard : r.shards_) {
    for (auto& [fd, slot] : shard.queues) {
      close(fd);
      slot.queue->MarkClosed();
      slot.queue->AbandonAfterFork();
      abandoned->push_back(std::move(slot.queue));
    }
    shard.queues.clear();
    shard.mu.Unlock();
  }
  if (r.monitor_epfd_ >= 0) close(r.monitor_epfd_);
  r.monitor_epfd_ = -1;
  r.monitor_mu_.Unlock();
}

}  // namespace kqio::kq_internal

// ---------------------------------------------------------------------------
// The C API.

using kqio::kq_internal::Registry;

namespace {

int Fail(int err) {
  errno = err;
  return -1;
}

}  // namespace

extern "C" int kqueue(void) {
  int fd = Registry::Get().Create();
  return fd < 0 ? Fail(-fd) : fd;
}

extern "C" int kevent(int kq, const struct kevent* changelist, int nchanges,
                      struct kevent* eventlist, int nevents,
                      const struct timespec* timeout) {
  auto queue = Registry::Get().Find(kq);
  if (queue == nullptr) return Fail(EBADF);
  int n = queue->Kevent(changelist, nchanges, eventlist, nevents, timeout);
  return n < 0 ? Fail(-n) : n;
}

extern "C" void kqio_drain_pending_close(void) {
  Registry::Get().DrainPendingClose();
}

extern "C" void libkqueue_drain_pending_close(void) {
  Registry::Get().DrainPendingClose();
}

extern "C" int kqio_aio_post(int kq, const struct kevent* ev) {
  if (ev == nullptr) return Fail(EFAULT);
  auto queue = Registry::Get().Find(kq);
  if (queue == nullptr) return Fail(EBADF);
  int err = queue->PostAio(*ev);
  return err != 0 ? Fail(err) : 0;
}

extern "C" int kqio_aio_watch(int kq, int fd, const struct kevent* change) {
  if (change == nullptr) return Fail(EFAULT);
  auto queue = Registry::Get().Find(kq);
  if (queue == nullptr) return Fail(EBADF);
  int err = queue->WatchAio(fd, *change);
  return err != 0 ? Fail(err) : 0;
}
