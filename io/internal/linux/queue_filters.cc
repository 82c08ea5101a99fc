// The changelist half of the Linux kqueue: registering, modifying and
// deleting knotes, filter by filter, and keeping their kernel sources (epoll
// registrations, timerfds) in step.  Signals are in queue_signals.cc.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>

#include "io/internal/linux/fd_probe.h"
#include "io/internal/linux/queue.h"
#include "io/internal/linux/queue_internal.h"

namespace kqio::kq_internal {
namespace {

// Flags that describe an action, not the registration: never stored.  EV_ADD
// is kept, so returned events carry it (see <sys/event.h>).
constexpr unsigned short kActionFlags =
    EV_DELETE | EV_ENABLE | EV_DISABLE | EV_KEEPUDATA;

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) >= 0; }

// The errno of an epoll_ctl MOD or DEL on a registered descriptor, as the
// change's result.  ENOENT, or EPERM (the number now names a file epoll
// cannot watch, so not the registered one): the registered file was closed,
// and the number is free (EBADF) or names another file (ENOENT).
int RegisteredFileError(int fd, int err) {
  if (err != ENOENT && err != EPERM) return err;
  return IsOpen(fd) ? ENOENT : EBADF;
}

bool PipeReaderGone(int fd) {
  struct pollfd p = {fd, POLLOUT, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

constexpr uint32_t kTimerUnits =
    NOTE_SECONDS | NOTE_MSECONDS | NOTE_USECONDS | NOTE_NSECONDS;

// Converts a timer's data to nanoseconds; -1 for an invalid unit.
int64_t TimerNanos(uint32_t fflags, int64_t data) {
  int64_t scale;
  switch (fflags & kTimerUnits) {  // one unit at most
    case 0:
    case NOTE_MSECONDS:
      scale = 1000000;
      break;
    case NOTE_SECONDS:
      scale = 1000000000;
      break;
    case NOTE_USECONDS:
      scale = 1000;
      break;
    case NOTE_NSECONDS:
      scale = 1;
      break;
    default:
      return -1;
  }
  if (data > INT64_MAX / scale) return INT64_MAX;
  return data * scale;
}

bool ValidTimer(uint32_t fflags, int64_t data) {
  return data >= 0 && (fflags & ~(kTimerUnits | NOTE_ABSTIME)) == 0 &&
         TimerNanos(fflags, data) >= 0;
}

}  // namespace

FdEntry& Queue::Entry(int fd) {
  if (static_cast<size_t>(fd) >= fds_.size()) {
    fds_.resize(std::max<size_t>(fd + 1, fds_.size() * 2));
  }
  return fds_[fd];
}

int Queue::ApplyFdChange(const struct kevent& kev) {
  if (kev.ident > static_cast<uintptr_t>(INT_MAX)) return EBADF;
  const int fd = static_cast<int>(kev.ident);
  // The table grows to the largest number registered: check that the number
  // is open before growing it (an ident of 1 << 30 must not allocate 1G
  // entries).  An open number is below RLIMIT_NOFILE.
  if (static_cast<size_t>(fd) >= fds_.size() && !IsOpen(fd)) return EBADF;
  FdEntry& e = Entry(fd);
  Knote*& slot = kev.filter == EVFILT_READ ? e.read : e.write;

  if (slot == nullptr) {
    if ((kev.flags & EV_ADD) == 0) return IsOpen(fd) ? ENOENT : EBADF;
    const bool fresh = e.read == nullptr && e.write == nullptr;
    if (fresh) {
      // Possibly another file than the last one with this number.
      e.kind = FdKind::kUnknown;
      e.pollable = true;
      e.sticky_error = 0;
    }
    if (kev.filter == EVFILT_WRITE) {
      if (int err = EnsureKind(fd, e); err != 0) return err;
      if (e.kind == FdKind::kPipe && PipeReaderGone(fd)) {
        return EPIPE;  // as FreeBSD: nobody will ever read what is written
      }
    }
    Knote* kn = NewKnote();
    kn->kev = kev;
    kn->kev.flags &= ~kActionFlags;
    kn->sfflags = kev.fflags;
    kn->sdata = kev.data;
    kn->enabled = (kev.flags & EV_DISABLE) == 0;
    slot = kn;
    int err = SyncFd(fd);
    if ((err == ENOENT || err == EBADF) && !fresh) {
      // The other knote on this number belonged to a file that has since
      // been closed: it is gone, as close() would have removed it on BSD.
      // Start again on a fresh entry.
      slot = nullptr;
      FreeKnote(kn);
      PurgeFd(fd);
      return ApplyFdChange(kev);
    }
    if (err != 0) {
      slot = nullptr;
      ready_.Remove(kn);
      FreeKnote(kn);
    }
    return err;
  }

  Knote* kn = slot;
  if (kev.flags & EV_DELETE) {
    slot = nullptr;
    ready_.Remove(kn);
    FreeKnote(kn);
    int err = SyncFd(fd);
    if (err != 0) PurgeFd(fd);  // it belonged to a closed file
    return err;
  }
  Modify(kn, kev);
  if (kev.flags & EV_ENABLE) {
    kn->enabled = true;
  } else if (kev.flags & EV_DISABLE) {
    kn->enabled = false;
  }
  int err = SyncFd(fd);
  if (err == ENOENT || err == EBADF) {
    PurgeFd(fd);
    if (err == EBADF || (kev.flags & EV_ADD) == 0) return err;
    return ApplyFdChange(kev);  // a new registration on the new file
  }
  return err;
}

// Makes the epoll registration of `fd` match its enabled knotes.  Returns 0,
// or ENOENT/EBADF when the registered file is no longer behind the number.
int Queue::SyncFd(int fd) {
  FdEntry& e = fds_[fd];
  uint32_t want = 0;
  bool edge = false;
  for (Knote* kn : {e.read, e.write}) {
    if (kn == nullptr || !kn->enabled) continue;
    want |= kn->kev.filter == EVFILT_READ ? (EPOLLIN | EPOLLRDHUP) : EPOLLOUT;
    if ((kn->kev.flags & EV_CLEAR) || (kn->sfflags & NOTE_LOWAT)) edge = true;
  }

  if (!e.pollable) {
    if (!SameFile(fd, e)) return IsOpen(fd) ? ENOENT : EBADF;
    for (Knote* kn : {e.read, e.write}) {
      if (kn == nullptr) continue;
      if (kn->enabled) {
        kn->active = true;
        Activate(kn);
      } else {
        ready_.Remove(kn);
      }
    }
    return 0;
  }

  struct epoll_event ev = {};
  ev.data.u64 = Cookie(kTagFd, e.gen, static_cast<uint32_t>(fd));
  if (e.read == nullptr && e.write == nullptr) {
    if (!e.in_epoll) return 0;
    e.in_epoll = false;
    if (epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev) != 0) {
      return RegisteredFileError(fd, errno);
    }
    return 0;
  }
  // With every knote disabled the registration stays, edge-triggered and
  // empty, so that a later EV_ENABLE still notices a replaced file.
  ev.events = want | (edge || want == 0 ? uint32_t{EPOLLET} : 0u);
  if (e.in_epoll) {
    if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) {
      e.epoll_events = ev.events;
      return 0;
    }
    return RegisteredFileError(fd, errno);
  }
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0) {
    e.in_epoll = true;
    e.epoll_events = ev.events;
    return 0;
  }
  if (errno == EPERM) {
    // Regular files and other descriptors epoll cannot watch never block:
    // their knotes are always ready and live in user space, and SameFile
    // needs the identity.
    if (int err = EnsureKind(fd, e); err != 0) return err;
    e.pollable = false;
    return SyncFd(fd);
  }
  return errno;
}

int Queue::EnsureKind(int fd, FdEntry& e) {
  return e.kind == FdKind::kUnknown ? ProbeKind(fd, e) : 0;
}

void Queue::PurgeFd(int fd) {
  FdEntry& e = fds_[fd];
  for (Knote* kn : {e.read, e.write}) {
    if (kn == nullptr) continue;
    ready_.Remove(kn);
    FreeKnote(kn);
  }
  if (e.in_epoll) {
    struct epoll_event ev = {};
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev);  // ENOENT is expected
  }
  uint32_t gen = (e.gen + 1) & kGenMask;
  e = FdEntry();
  e.gen = gen;
}

// A descriptor knote that waited in the ready list past the call that saw
// its event: make sure its file was not closed (and the number reused) since.
// fstat() rather than EPOLL_CTL_MOD, which would re-arm the registration and
// make an EV_CLEAR knote report the same data again.
bool Queue::Revalidate(int fd) { return SameFile(fd, fds_[fd]); }

int Queue::ApplyIdentChange(const struct kevent& kev, int aio_fd) {
  const auto key = std::make_pair(kev.filter, kev.ident);
  auto it = idents_.find(key);
  if (it == idents_.end()) {
    if ((kev.flags & EV_ADD) == 0) return ENOENT;
    Knote* kn = NewKnote();
    kn->kev = kev;
    kn->kev.flags &= ~kActionFlags;
    kn->sfflags = kev.fflags;
    kn->sdata = kev.data;
    kn->enabled = (kev.flags & EV_DISABLE) == 0;
    kn->source_fd = aio_fd;
    int err = Attach(kn);
    if (err != 0) {
      FreeKnote(kn);
      return err;
    }
    idents_.emplace(key, kn);
    return SyncSource(kn);
  }
  Knote* kn = it->second;
  if (kev.flags & EV_DELETE) {
    idents_.erase(it);
    Detach(kn);
    Destroy(kn);
    return 0;
  }
  int err = Touch(kn, kev);
  if (err != 0) return err;
  if (kev.flags & EV_ENABLE) {
    kn->enabled = true;
  } else if (kev.flags & EV_DISABLE) {
    kn->enabled = false;
  }
  return SyncSource(kn);
}

int Queue::Attach(Knote* kn) {
  switch (kn->kev.filter) {
    case EVFILT_USER:
      kn->active = (kn->sfflags & NOTE_TRIGGER) != 0;
      kn->sfflags &= NOTE_FFLAGSMASK;
      return 0;
    case EVFILT_TIMER: {
      if (!ValidTimer(kn->sfflags, kn->sdata)) return EINVAL;
      // As on FreeBSD, a relative timer is EV_CLEAR (data counts expirations
      // since the last return); an absolute one fires once and then stays
      // triggered until it is deleted.
      if ((kn->sfflags & NOTE_ABSTIME) == 0) kn->kev.flags |= EV_CLEAR;
      const clockid_t clock =
          (kn->sfflags & NOTE_ABSTIME) ? CLOCK_REALTIME : CLOCK_MONOTONIC;
      kn->source_fd = timerfd_create(clock, TFD_NONBLOCK | TFD_CLOEXEC);
      if (kn->source_fd < 0) return errno;
      kn->slot = AllocSlot(kn);
      int err = ArmTimer(kn);
      if (err != 0) {
        FreeSlot(kn->slot);
        close(kn->source_fd);
      }
      return err;
    }
    case EVFILT_SIGNAL:
      return AttachSignal(kn);
    case EVFILT_AIO:
      kn->kev.flags |= EV_CLEAR;
      kn->slot = AllocSlot(kn);
      return 0;
    default:
      return EINVAL;
  }
}

int Queue::Touch(Knote* kn, const struct kevent& kev) {
  switch (kn->kev.filter) {
    case EVFILT_USER: {
      if ((kev.flags & EV_KEEPUDATA) == 0) kn->kev.udata = kev.udata;
      if (kev.fflags & NOTE_TRIGGER) kn->active = true;
      const uint32_t flags = kev.fflags & NOTE_FFLAGSMASK;
      switch (kev.fflags & NOTE_FFCTRLMASK) {
        case NOTE_FFAND:
          kn->sfflags &= flags;
          break;
        case NOTE_FFOR:
          kn->sfflags |= flags;
          break;
        case NOTE_FFCOPY:
          kn->sfflags = flags;
          break;
        default:
          break;
      }
      kn->sdata = kev.data;
      if (kev.flags & EV_CLEAR) {
        kn->active = false;
        ready_.Remove(kn);
      }
      return 0;
    }
    case EVFILT_TIMER: {
      // Re-adding a timer restarts it with the new period and forgets
      // expirations that were not returned yet; other changes leave it
      // running (it keeps counting while disabled).
      if ((kev.flags & EV_KEEPUDATA) == 0) kn->kev.udata = kev.udata;
      if ((kev.flags & EV_ADD) == 0) return 0;
      if (!ValidTimer(kev.fflags, kev.data)) return EINVAL;
      const bool was_abs = (kn->sfflags & NOTE_ABSTIME) != 0;
      Modify(kn, kev);
      kn->out_data = 0;
      kn->active = false;
      ready_.Remove(kn);
      if (was_abs != ((kn->sfflags & NOTE_ABSTIME) != 0)) {
        const clockid_t clock =
            (kn->sfflags & NOTE_ABSTIME) ? CLOCK_REALTIME : CLOCK_MONOTONIC;
        int fd = timerfd_create(clock, TFD_NONBLOCK | TFD_CLOEXEC);
        if (fd < 0) return errno;
        struct epoll_event ev = {};
        epoll_ctl(epfd_, EPOLL_CTL_DEL, kn->source_fd, &ev);
        close(kn->source_fd);
        kn->source_fd = fd;
        FreeSlot(kn->slot);
        kn->slot = AllocSlot(kn);
      }
      return ArmTimer(kn);
    }
    default:
      Modify(kn, kev);
      return 0;
  }
}

void Queue::Detach(Knote* kn) {
  switch (kn->kev.filter) {
    case EVFILT_TIMER:
      close(kn->source_fd);  // also leaves the epoll set
      FreeSlot(kn->slot);
      break;
    case EVFILT_SIGNAL:
      DetachSignal(kn);
      break;
    case EVFILT_AIO: {
      struct epoll_event ev = {};
      if (kn->source_fd >= 0) epoll_ctl(epfd_, EPOLL_CTL_DEL, kn->source_fd, &ev);
      FreeSlot(kn->slot);
      break;
    }
    default:
      break;
  }
}

// Makes the knote's source match its enabled state, and queues it when it
// has something to report.
int Queue::SyncSource(Knote* kn) {
  if (kn->source_fd >= 0) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN | (kn->kev.filter == EVFILT_AIO ? uint32_t{EPOLLET} : 0u);
    ev.data.u64 = Cookie(kTagSlot, slot_gens_[kn->slot], kn->slot);
    int op = kn->enabled ? EPOLL_CTL_ADD : EPOLL_CTL_DEL;
    if (epoll_ctl(epfd_, op, kn->source_fd, &ev) != 0 && errno != EEXIST &&
        errno != ENOENT) {
      return errno;
    }
  }
  if (kn->active && kn->enabled) {
    Activate(kn);
  } else {
    ready_.Remove(kn);
  }
  return 0;
}

int Queue::ArmTimer(Knote* kn) {
  int64_t ns = TimerNanos(kn->sfflags, kn->sdata);
  struct itimerspec its = {};
  int flags = 0;
  if (kn->sfflags & NOTE_ABSTIME) {
    // An absolute timer fires once.  Zero would disarm a timerfd.
    its.it_value = ToTimespec(std::max<int64_t>(ns, 1));
    flags = TFD_TIMER_ABSTIME;
  } else if (kn->kev.flags & EV_ONESHOT) {
    its.it_value = ToTimespec(std::max<int64_t>(ns, 1));
  } else {
    // A periodic timer of 0 runs at one unit, as on FreeBSD.
    if (ns == 0) ns = TimerNanos(kn->sfflags, 1);
    its.it_value = ToTimespec(ns);
    its.it_interval = its.it_value;
  }
  if (timerfd_settime(kn->source_fd, flags, &its, nullptr) != 0) return errno;
  return 0;
}

uint32_t Queue::AllocSlot(Knote* kn) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(nullptr);
    slot_gens_.push_back(0);
  }
  slots_[slot] = kn;
  return slot;
}

void Queue::FreeSlot(uint32_t slot) {
  slots_[slot] = nullptr;
  slot_gens_[slot] = (slot_gens_[slot] + 1) & kGenMask;
  free_slots_.push_back(slot);
}

}  // namespace kqio::kq_internal
