#include "io/internal/linux/queue.h"

#include <errno.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "io/internal/linux/queue_internal.h"
#include "io/internal/linux/signal_hub.h"

namespace kqio::kq_internal {
namespace {

constexpr int kMaxBatch = 256;  // epoll events fetched per epoll_wait

int64_t MonotonicNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// epoll_pwait2 takes a timespec (Linux 5.11); older kernels get milliseconds,
// rounded up so that a short timeout never turns into a busy poll.
int EpollWait(int epfd, struct epoll_event* evs, int n, int64_t timeout_ns) {
  static std::atomic<bool> have_pwait2{true};
  if (timeout_ns > 0 && have_pwait2.load(std::memory_order_relaxed)) {
    struct timespec ts = ToTimespec(timeout_ns);
    int r = epoll_pwait2(epfd, evs, n, &ts, nullptr);
    if (r >= 0 || errno != ENOSYS) return r;
    have_pwait2.store(false, std::memory_order_relaxed);
  }
  int ms;
  if (timeout_ns < 0) {
    ms = -1;
  } else {
    ms = static_cast<int>(
        std::min<int64_t>(INT_MAX, (timeout_ns + 999999) / 1000000));
  }
  return epoll_wait(epfd, evs, n, ms);
}

}  // namespace

int Queue::Create(int hangup_fd, int kq_fd, std::shared_ptr<Queue>* out) {
  // Every descriptor the queue needs to wait and to be woken is created
  // here, where running out of descriptors is an error of kqueue() the
  // program expects; kevent() must not fail with EMFILE later because the
  // table filled up in between.  Only knotes that own a descriptor (timers)
  // create one, at EV_ADD, which reports EMFILE as that change's error.
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return errno;
  int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int err = errno;
    close(epfd);
    return err;
  }
  // Never read: each write is an edge, which wakes one waiter.  The
  // SignalHub writes it too, when a watched signal was counted.
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.u64 = Cookie(kTagControl, 0, kControlWake);
  int err = 0;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) err = errno;
  // The read end reports EPOLLHUP once every writer (the user's kqueue
  // descriptor) is closed.  EPOLLIN: bytes a program writes into its kqueue
  // descriptor are read and dropped (see Translate), so that the pipe never
  // fills up: a full pipe is not writable, and StillOpen's wake would be
  // lost.
  ev.events = EPOLLIN;
  ev.data.u64 = Cookie(kTagControl, 0, kControlHangup);
  if (err == 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, hangup_fd, &ev) != 0) {
    err = errno;
  }
  // epoll holds no reference to the file: closing kq_fd still hangs up.  No
  // interest bits until StillOpen asks for EPOLLOUT: an event nobody asked
  // for would take the place of a real one in a small batch.
  ev.events = EPOLLET;
  ev.data.u64 = Cookie(kTagControl, 0, kControlKq);
  if (err == 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, kq_fd, &ev) != 0) err = errno;
  // Both ends of a pipe share one inode: the identity StillOpen looks for.
  struct stat st;
  if (err == 0 && fstat(hangup_fd, &st) != 0) err = errno;
  if (err != 0) {
    close(wake_fd);
    close(epfd);
    return err;
  }
  out->reset(
      new Queue(epfd, wake_fd, hangup_fd, kq_fd, st.st_dev, st.st_ino));
  return 0;
}

Queue::Queue(int epfd, int wake_fd, int hangup_fd, int kq_fd, dev_t pipe_dev,
             ino_t pipe_ino)
    : epfd_(epfd),
      wake_fd_(wake_fd),
      hangup_fd_(hangup_fd),
      kq_fd_(kq_fd),
      pipe_dev_(pipe_dev),
      pipe_ino_(pipe_ino) {}

Queue::~Queue() {
  absl::MutexLock lock(&mu_);
  // Before wake_fd_ is closed: the hub must not write to its number.
  for (Knote* kn : signal_knotes_) {
    SignalHub::Get().Unsubscribe(static_cast<int>(kn->kev.ident), wake_fd_);
  }
  // The ready list first: its links live in knotes freed below.  Posted AIO
  // completions are owned by the list alone.
  while (!ready_.empty()) {
    Knote* kn = ready_.front();
    ready_.Remove(kn);
    if (kn->transient) delete kn;
  }
  for (auto& [key, kn] : idents_) {
    if (kn->source_fd >= 0 && kn->kev.filter == EVFILT_TIMER) {
      close(kn->source_fd);
    }
    delete kn;
  }
  for (FdEntry& e : fds_) {
    delete e.read;
    delete e.write;
  }
  for (Knote* kn : spare_knotes_) delete kn;
  close(wake_fd_);
  close(hangup_fd_);
  close(epfd_);
}

void Queue::AbandonAfterFork() {
  for (auto& [key, kn] : idents_) {
    if (kn->source_fd >= 0 && kn->kev.filter == EVFILT_TIMER) {
      close(kn->source_fd);
    }
  }
  close(wake_fd_);
  close(hangup_fd_);
  close(epfd_);
}

int Queue::Kevent(const struct kevent* changes, int nchanges,
                  struct kevent* events, int nevents,
                  const struct timespec* timeout) {
  if (nchanges < 0 || nevents < 0) return -EINVAL;
  if ((nchanges > 0 && changes == nullptr) ||
      (nevents > 0 && events == nullptr)) {
    return -EFAULT;
  }
  if (closed_.load(std::memory_order_acquire)) return -EBADF;

  // As FreeBSD does: a failed change (or any change with EV_RECEIPT) becomes
  // an EV_ERROR entry while there is room; without room the call fails with
  // the change's errno and the changes after it are not applied.  The change
  // is copied first because changelist and eventlist may be the same array.
  int reported = 0;
  int failed = 0;  // the errno of a failed change that found no room
  int wake_fd = -1;
  if (nchanges > 0) {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < nchanges; ++i) {
      struct kevent kev = changes[i];
      if (kev.filter == 0) continue;  // as FreeBSD: an empty slot
      kev.flags &= ~EV_SYSFLAGS;
      int err = ApplyChange(kev);
      if (err == 0 && (kev.flags & EV_RECEIPT) == 0) continue;
      if (reported == nevents) {
        if (err == 0) continue;
        failed = err;
        break;
      }
      kev.flags |= EV_ERROR;
      kev.data = err;
      events[reported++] = kev;
    }
    wake_fd = TakeWakeLocked();
  }
  if (failed != 0 || reported > 0 || nevents == 0) {
    // This call returns without epoll_wait, which is where a closed
    // descriptor is otherwise noticed, and its number may already name
    // another file.  (Changes applied to a closed queue are invisible: it
    // is never used again.)
    if (!StillOpen(wake_fd)) return -EBADF;
    return failed != 0 ? -failed : reported;
  }
  SendWake(wake_fd);
  if (timeout != nullptr &&
      (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
       timeout->tv_nsec >= 1000000000)) {
    return -EINVAL;
  }
  return Wait(events, nevents, timeout);
}

bool Queue::StillOpen(int wake_fd) {
  if (wake_fd >= 0) {
    // Re-arming the edge-triggered registration of a writable pipe puts it
    // on epoll's ready list and wakes a waiter: the wake costs nothing more.
    struct epoll_event ev = {};
    ev.events = EPOLLOUT | EPOLLET;
    ev.data.u64 = Cookie(kTagControl, 0, kControlKq);
    if (epoll_ctl(epfd_, EPOLL_CTL_MOD, kq_fd_, &ev) == 0) {
      return !closed_.load(std::memory_order_acquire);
    }
    switch (errno) {
      case EBADF:   // the number is closed
      case ENOENT:  // it names another file (or ours through a dup() only)
      case EPERM:   // ... one that epoll cannot watch
      case EINVAL:  // ... an epoll set
        MarkClosed();
        return false;
      default:  // ENOMEM: wake the usual way, and ask fstat()
        SendWake(wake_fd);
        break;
    }
  }
  struct stat st;
  if (fstat(kq_fd_, &st) != 0 || st.st_dev != pipe_dev_ ||
      st.st_ino != pipe_ino_) {
    MarkClosed();
  }
  return !closed_.load(std::memory_order_acquire);
}

int Queue::ApplyChange(const struct kevent& kev) {
  if ((kev.flags & (EV_ENABLE | EV_DISABLE)) == (EV_ENABLE | EV_DISABLE)) {
    return EINVAL;
  }
  switch (kev.filter) {
    case EVFILT_READ:
    case EVFILT_WRITE:
      return ApplyFdChange(kev);
    case EVFILT_USER:
    case EVFILT_TIMER:
    case EVFILT_SIGNAL:
      return ApplyIdentChange(kev, -1);
    case EVFILT_AIO:
      // AIO knotes belong to kqio's engines (io/kqueue_ext.h); as on FreeBSD,
      // a program cannot create one with kevent().
      if (kev.flags & EV_ADD) return EPERM;
      return ApplyIdentChange(kev, -1);
    default:
      return EINVAL;
  }
}

// Stores the registration-time values and, unless EV_KEEPUDATA, the udata.
// As on FreeBSD this happens on every change to an existing knote, not only
// on EV_ADD.
void Queue::Modify(Knote* kn, const struct kevent& kev) {
  if ((kev.flags & EV_KEEPUDATA) == 0) kn->kev.udata = kev.udata;
  kn->sfflags = kev.fflags;
  kn->sdata = kev.data;
}

int Queue::PostAio(const struct kevent& ev) {
  if (closed_.load(std::memory_order_acquire)) return EBADF;
  int wake_fd;
  {
    absl::MutexLock lock(&mu_);
    Knote* kn = NewKnote();
    kn->kev = ev;
    kn->kev.filter = EVFILT_AIO;
    // What io/kqueue_ext.h promises; EV_ADD as on every returned event.
    kn->kev.flags = EV_ADD | EV_CLEAR | EV_ONESHOT;
    kn->out_fflags = ev.fflags;
    kn->out_data = ev.data;
    kn->transient = true;
    kn->active = true;
    Activate(kn);
    wake_fd = TakeWakeLocked();
  }
  SendWake(wake_fd);
  return 0;
}

int Queue::WatchAio(int fd, const struct kevent& ev) {
  if (closed_.load(std::memory_order_acquire)) return EBADF;
  if ((ev.flags & EV_ADD) && fd < 0) return EBADF;
  if (ev.filter != EVFILT_AIO) return EINVAL;
  struct kevent change = ev;
  change.flags &= ~EV_SYSFLAGS;
  int err;
  int wake_fd;
  {
    absl::MutexLock lock(&mu_);
    err = ApplyIdentChange(change, fd);
    wake_fd = TakeWakeLocked();
  }
  SendWake(wake_fd);
  return err;
}

void Queue::Activate(Knote* kn) {
  kn->active = true;
  if (!kn->enabled) return;
  if (kn->parked) {
    ready_.Remove(kn);
    kn->parked = false;
  }
  ready_.PushBack(kn);
  WakeLocked();
}

void Queue::WakeLocked() {
  if (waiters_ > 0 && !wake_pending_) {
    wake_pending_ = true;
    wake_due_ = true;
  }
}

int Queue::TakeWakeLocked() {
  if (!wake_due_) return -1;
  wake_due_ = false;
  return wake_fd_;
}

void Queue::SendWake(int wake_fd) {
  // The descriptor lives as long as the queue, and callers hold a reference.
  const uint64_t one = 1;
  if (wake_fd >= 0) (void)!write(wake_fd, &one, sizeof(one));
}

void Queue::Destroy(Knote* kn) {
  ready_.Remove(kn);
  FreeKnote(kn);
}

Knote* Queue::NewKnote() {
  if (spare_knotes_.empty()) return new Knote;
  Knote* kn = spare_knotes_.back();
  spare_knotes_.pop_back();
  *kn = Knote();
  return kn;
}

void Queue::FreeKnote(Knote* kn) {
  if (spare_knotes_.size() < kMaxSpareKnotes) {
    spare_knotes_.push_back(kn);
  } else {
    delete kn;
  }
}

// Each pass fetches what epoll has, translates it and drains the ready list
// once, so that one call never returns a knote twice: when knotes are
// already queued, epoll is only polled (their events plus the fresh ones go
// out together); when none are, the pass blocks.
int Queue::Wait(struct kevent* events, int nevents,
                const struct timespec* timeout) {
  const int64_t deadline =
      timeout == nullptr
          ? -1
          : MonotonicNanos() + std::min<int64_t>(
                                   int64_t{timeout->tv_sec},
                                   INT64_MAX / 2000000000) *
                                   1000000000 +
                timeout->tv_nsec;
  struct epoll_event evs[kMaxBatch];
  const int room = std::min(nevents, kMaxBatch);
  for (;;) {
    int64_t wait_ns;
    {
      absl::MutexLock lock(&mu_);
      if (ready_.HasUnparked()) {
        wait_ns = 0;
      } else if (deadline < 0) {
        wait_ns = -1;
      } else {
        wait_ns = std::max<int64_t>(0, deadline - MonotonicNanos());
      }
      if (wait_ns != 0) ++waiters_;
    }
    if (closed_.load(std::memory_order_acquire)) {
      if (wait_ns != 0) {
        absl::MutexLock lock(&mu_);
        --waiters_;
      }
      return -EBADF;
    }
    int k = EpollWait(epfd_, evs, room, wait_ns);
    const int wait_errno = errno;
    int n;
    int wake_fd;
    {
      absl::MutexLock lock(&mu_);
      if (wait_ns != 0) --waiters_;
      ++epoll_batch_;
      for (int i = 0; i < k; ++i) Translate(evs[i]);
      if (closed_.load(std::memory_order_acquire)) return -EBADF;
      n = Drain(events, nevents);
      // Knotes left behind (no room, or level-triggered ones returned again
      // later) are ready: another blocked waiter must not sleep through them.
      if (ready_.HasUnparked()) WakeLocked();
      wake_fd = TakeWakeLocked();
    }
    SendWake(wake_fd);
    if (n > 0) return n;
    if (k < 0) return -wait_errno;  // EINTR: a signal handler ran, as on BSD
    if (deadline >= 0 && MonotonicNanos() >= deadline) return 0;
    // Everything fetched was stale or filtered out: wait again.
  }
}

void Queue::Translate(const struct epoll_event& ev) {
  const uint64_t tag = ev.data.u64 >> 62;
  const uint32_t gen = (ev.data.u64 >> 32) & kGenMask;
  const uint32_t index = static_cast<uint32_t>(ev.data.u64);
  if (tag == kTagFd) {
    if (index >= fds_.size()) return;
    FdEntry& e = fds_[index];
    if (e.gen != gen) return;  // an earlier file with the same number
    // The identity of the file, for events kept past this batch (see
    // Revalidate); fstat() fails only if the number was closed meanwhile.
    if (EnsureKind(static_cast<int>(index), e) != 0) {
      PurgeFd(static_cast<int>(index));
      return;
    }
    for (Knote* kn : {e.read, e.write}) {
      if (kn == nullptr || !kn->enabled) continue;
      const uint32_t relevant =
          kn->kev.filter == EVFILT_READ
              ? (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)
              : (EPOLLOUT | EPOLLHUP | EPOLLERR);
      if ((ev.events & relevant) == 0) continue;
      kn->pending_epoll |= ev.events;
      kn->batch = epoll_batch_;
      Activate(kn);
    }
    return;
  }
  if (tag == kTagSlot) {
    if (index >= slots_.size() || slot_gens_[index] != gen) return;
    Knote* kn = slots_[index];
    if (kn == nullptr) return;
    if (kn->kev.filter == EVFILT_TIMER) {
      uint64_t expirations = 0;
      if (read(kn->source_fd, &expirations, sizeof(expirations)) !=
          sizeof(expirations)) {
        return;  // another thread took them
      }
      kn->out_data += static_cast<int64_t>(expirations);
    }
    Activate(kn);
    return;
  }
  switch (index) {
    case kControlWake:
      wake_pending_ = false;
      // Or the SignalHub's note that counts moved (see queue_signals.cc).
      CountSignals();
      break;
    case kControlKq:  // see StillOpen
      wake_pending_ = false;
      break;
    case kControlHangup:
      if (ev.events & EPOLLIN) {
        char junk[256];
        while (read(hangup_fd_, junk, sizeof(junk)) > 0) {
        }
      }
      if (ev.events & EPOLLHUP) MarkClosed();
      break;
    case kControlSignal:
      SignalHub::Get().Collect();
      CountSignals();
      break;
  }
}

// Moves up to `room` ready knotes into `out`.  Level-triggered knotes go
// back to the end of the list, behind everything that was already there,
// stamped so that this pass stops when it reaches them again.
int Queue::Drain(struct kevent* out, int room) {
  const uint64_t stamp = ++drain_stamp_;
  int n = 0;
  while (n < room && !ready_.empty() &&
         ready_.front()->drain_stamp != stamp) {
    Knote* kn = ready_.front();
    ready_.Remove(kn);
    if (!kn->enabled) continue;
    if (!Fill(kn, &out[n])) continue;
    ++n;
    kn->drain_stamp = stamp;
    kn->parked = false;
    if (Settle(kn)) ready_.PushBack(kn);
  }
  for (int fd : rearm_) {
    // A level-triggered knote on an edge-triggered registration: MOD makes
    // epoll re-check readiness and report the descriptor again if it is
    // still ready.
    FdEntry& e = fds_[fd];
    if (!e.in_epoll) continue;
    struct epoll_event ev = {};
    ev.events = e.epoll_events;
    ev.data.u64 = Cookie(kTagFd, e.gen, static_cast<uint32_t>(fd));
    epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
  }
  rearm_.clear();
  return n;
}

}  // namespace kqio::kq_internal
