#include "io/internal/linux/queue.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "io/internal/linux/fd_probe.h"
#include "io/internal/linux/queue_internal.h"

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

int Queue::Create(int hangup_fd, std::shared_ptr<Queue>* out) {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return errno;
  // No interest bits: a pipe read end reports EPOLLHUP once every writer
  // (the user's kqueue descriptor) is closed, and nothing else.
  struct epoll_event ev = {};
  ev.data.u64 = Cookie(kTagControl, 0, kControlHangup);
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, hangup_fd, &ev) != 0) {
    int err = errno;
    close(epfd);
    return err;
  }
  out->reset(new Queue(epfd, hangup_fd));
  return 0;
}

Queue::Queue(int epfd, int hangup_fd) : epfd_(epfd), hangup_fd_(hangup_fd) {
  sigemptyset(&signal_mask_);
}

Queue::~Queue() {
  absl::MutexLock lock(&mu_);
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
  if (wake_fd_ >= 0) close(wake_fd_);
  if (signal_fd_ >= 0) close(signal_fd_);
  close(hangup_fd_);
  close(epfd_);
}

void Queue::AbandonAfterFork() {
  for (auto& [key, kn] : idents_) {
    if (kn->source_fd >= 0 && kn->kev.filter == EVFILT_TIMER) {
      close(kn->source_fd);
    }
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  if (signal_fd_ >= 0) close(signal_fd_);
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
  {
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
  }
  FlushWake();
  if (failed != 0 || reported > 0 || nevents == 0) {
    // This call returns without epoll_wait, which is where a closed
    // descriptor is otherwise noticed, and its number may already name
    // another file: ask the pipe.  (Changes applied to a closed queue are
    // invisible: it is never used again.)
    if (HungUp()) return -EBADF;
    return failed != 0 ? -failed : reported;
  }
  if (timeout != nullptr &&
      (timeout->tv_sec < 0 || timeout->tv_nsec < 0 ||
       timeout->tv_nsec >= 1000000000)) {
    return -EINVAL;
  }
  return Wait(events, nevents, timeout);
}

bool Queue::HungUp() {
  struct pollfd p = {hangup_fd_, 0, 0};
  if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) != 0) MarkClosed();
  return closed_.load(std::memory_order_acquire);
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
  {
    absl::MutexLock lock(&mu_);
    Knote* kn = new Knote;
    kn->kev = ev;
    kn->kev.filter = EVFILT_AIO;
    // What io/kqueue_ext.h promises; EV_ADD as on every returned event.
    kn->kev.flags = EV_ADD | EV_CLEAR | EV_ONESHOT;
    kn->out_fflags = ev.fflags;
    kn->out_data = ev.data;
    kn->transient = true;
    kn->active = true;
    Activate(kn);
  }
  FlushWake();
  return 0;
}

int Queue::WatchAio(int fd, const struct kevent& ev) {
  if (closed_.load(std::memory_order_acquire)) return EBADF;
  if ((ev.flags & EV_ADD) && fd < 0) return EBADF;
  if (ev.filter != EVFILT_AIO) return EINVAL;
  struct kevent change = ev;
  change.flags &= ~EV_SYSFLAGS;
  int err;
  {
    absl::MutexLock lock(&mu_);
    err = ApplyIdentChange(change, fd);
  }
  FlushWake();
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

void Queue::FlushWake() {
  int fd = -1;
  {
    absl::MutexLock lock(&mu_);
    if (!wake_due_) return;
    wake_due_ = false;
    fd = wake_fd_;
  }
  // The descriptor lives as long as the queue, and callers hold a reference.
  uint64_t one = 1;
  if (fd >= 0) (void)!write(fd, &one, sizeof(one));
}

void Queue::Destroy(Knote* kn) {
  ready_.Remove(kn);
  delete kn;
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
      if (wait_ns != 0) {
        if (wake_fd_ < 0) {
          wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
          if (wake_fd_ < 0) return -errno;
          struct epoll_event ev = {};
          ev.events = EPOLLIN | EPOLLET;  // never read: each write is an edge
          ev.data.u64 = Cookie(kTagControl, 0, kControlWake);
          if (epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
            int err = errno;
            close(wake_fd_);
            wake_fd_ = -1;
            return -err;
          }
        }
        ++waiters_;
      }
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
    }
    FlushWake();
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
      break;
    case kControlHangup:
      MarkClosed();
      break;
    case kControlSignal:
      ReadSignals();
      break;
  }
}

void Queue::ReadSignals() {
  struct signalfd_siginfo info[16];
  for (;;) {
    ssize_t r = read(signal_fd_, info, sizeof(info));
    if (r <= 0) return;
    for (size_t i = 0; i < static_cast<size_t>(r) / sizeof(info[0]); ++i) {
      auto it = idents_.find(
          std::make_pair(short{EVFILT_SIGNAL}, uintptr_t{info[i].ssi_signo}));
      if (it == idents_.end()) continue;
      it->second->out_data++;
      Activate(it->second);
    }
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

bool Queue::Fill(Knote* kn, struct kevent* out) {
  switch (kn->kev.filter) {
    case EVFILT_READ:
    case EVFILT_WRITE:
      return FillFd(kn, out);
    case EVFILT_USER:
      if (!kn->active) return false;
      *out = kn->kev;
      out->fflags = kn->sfflags & NOTE_FFLAGSMASK;
      out->data = kn->sdata;
      return true;
    case EVFILT_TIMER:
    case EVFILT_SIGNAL:
      if (kn->out_data == 0) return false;
      *out = kn->kev;
      out->fflags = 0;
      out->data = kn->out_data;
      return true;
    case EVFILT_AIO:
      *out = kn->kev;
      out->fflags = kn->out_fflags;
      out->data = kn->out_data;
      return true;
    default:
      return false;
  }
}

bool Queue::FillFd(Knote* kn, struct kevent* out) {
  const int fd = static_cast<int>(kn->kev.ident);
  FdEntry& e = fds_[fd];
  const uint32_t ev = kn->pending_epoll;
  kn->pending_epoll = 0;
  const bool is_read = kn->kev.filter == EVFILT_READ;
  const bool socket =
      e.kind == FdKind::kSocket || e.kind == FdKind::kListeningSocket;

  int64_t data;
  bool eof = false;
  if (!e.pollable) {
    if (!SameFile(fd, e)) {
      PurgeFd(fd);  // closed, or the number now names another file
      return false;
    }
    data = is_read ? BytesToEndOfFile(fd) : 0;
    if (is_read && data == 0) {
      // At the end of the file.  Nothing tells us when it grows, so the
      // knote stays queued and every later pass asks again; parked, it does
      // not keep kevent() from blocking.
      kn->parked = true;
      kn->drain_stamp = drain_stamp_;
      ready_.PushBack(kn);
      return false;
    }
  } else {
    if (ev == 0) return false;
    // Events kept from an earlier call: the program may have closed the
    // descriptor since, and its number may name another file now.
    if (kn->batch != epoll_batch_ && !Revalidate(fd)) {
      PurgeFd(fd);
      return false;
    }
    if (is_read) {
      eof = (ev & (EPOLLRDHUP | EPOLLHUP)) != 0;
      data = ReadableBytes(fd, e);
      // A socket or pipe with nothing to read and no EOF or error is a stale
      // level report (the bytes were read since): not an event.
      if (!eof && (ev & EPOLLERR) == 0 && data == 0 &&
          (socket || e.kind == FdKind::kPipe)) {
        return false;
      }
    } else {
      // A pipe whose reader is gone reports EPOLLERR; a socket, EPOLLHUP.
      eof = (ev & (socket ? EPOLLHUP : (EPOLLHUP | EPOLLERR))) != 0;
      data = WritableSpace(fd, e);
    }
    if ((kn->sfflags & NOTE_LOWAT) && !eof && data < kn->sdata) return false;
  }

  *out = kn->kev;
  out->fflags = 0;
  out->data = data;
  if (eof) {
    out->flags |= EV_EOF;
    if (socket) {
      // SO_ERROR clears the error, so keep it for later events.
      if (int err = TakeSocketError(fd); err != 0) e.sticky_error = err;
      out->fflags = static_cast<unsigned int>(e.sticky_error);
    }
  }
  return true;
}

bool Queue::Settle(Knote* kn) {
  const unsigned short flags = kn->kev.flags;
  const short filter = kn->kev.filter;
  if (kn->transient) {
    delete kn;
    return false;
  }
  if (flags & EV_ONESHOT) {
    if (filter == EVFILT_READ || filter == EVFILT_WRITE) {
      const int fd = static_cast<int>(kn->kev.ident);
      FdEntry& e = fds_[fd];
      (filter == EVFILT_READ ? e.read : e.write) = nullptr;
      delete kn;
      if (SyncFd(fd) != 0) PurgeFd(fd);
    } else {
      idents_.erase(std::make_pair(filter, kn->kev.ident));
      Detach(kn);
      Destroy(kn);
    }
    return false;
  }
  const bool fd_filter = filter == EVFILT_READ || filter == EVFILT_WRITE;
  bool level = (flags & EV_CLEAR) == 0;
  if (flags & EV_CLEAR) {
    kn->active = false;
    kn->out_data = 0;
  }
  if (flags & EV_DISPATCH) {
    kn->enabled = false;
    if (fd_filter) {
      const int fd = static_cast<int>(kn->kev.ident);
      if (SyncFd(fd) != 0) {
        PurgeFd(fd);
        return false;
      }
    } else {
      SyncSource(kn);
    }
    return false;
  }
  if (!level) return false;
  if (fd_filter) {
    const int fd = static_cast<int>(kn->kev.ident);
    FdEntry& e = fds_[fd];
    if (!e.pollable) return true;  // always ready
    // epoll re-reports a level-triggered registration by itself; an
    // edge-triggered one (shared with an EV_CLEAR knote) needs a re-arm.
    if (e.epoll_events & EPOLLET) rearm_.push_back(fd);
    return false;
  }
  // Still triggered until cleared or deleted: a user event, or an absolute
  // timer that has fired.
  return filter == EVFILT_USER || filter == EVFILT_TIMER;
}

}  // namespace kqio::kq_internal
