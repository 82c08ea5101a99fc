// The output half of the Linux kqueue: what a returned event says (Fill),
// computed the way FreeBSD computes `data`, `flags` and `fflags` for each
// filter, and what becomes of its knote after delivery (Settle: EV_ONESHOT,
// EV_DISPATCH, EV_CLEAR or level re-queueing).  Called by Queue::Drain.
#include <sys/epoll.h>
#include <sys/event.h>

#include <utility>

#include "io/internal/linux/fd_probe.h"
#include "io/internal/linux/queue.h"
#include "io/kqueue_ext.h"

namespace kqio::kq_internal {

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
  // KQIO_NOTE_NODATA (io/kqueue_ext.h): the program does not read `data`,
  // so the system calls that compute it (FIONREAD, SO_MEMINFO...) are
  // skipped and it reads 0.  NOTE_LOWAT needs the number, and wins.
  const bool nodata =
      (kn->sfflags & (KQIO_NOTE_NODATA | NOTE_LOWAT)) == KQIO_NOTE_NODATA;

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
    const bool kept = kn->batch != epoll_batch_;
    if (kept && !Revalidate(fd)) {
      PurgeFd(fd);
      return false;
    }
    if (is_read) {
      eof = (ev & (EPOLLRDHUP | EPOLLHUP)) != 0;
      if (nodata && !kept) {
        // epoll_wait polled the file moments ago, in this call: its
        // EPOLLIN is not stale (epoll drops an edge whose condition no
        // longer holds when it collects it).
        data = 0;
      } else {
        data = ReadableBytes(fd, e);
        // A socket or pipe with nothing to read and no EOF or error is a
        // stale level report (the bytes were read since): not an event.
        if (!eof && (ev & EPOLLERR) == 0 && data == 0 &&
            (socket || e.kind == FdKind::kPipe)) {
          return false;
        }
      }
    } else {
      // A pipe whose reader is gone reports EPOLLERR; a socket, EPOLLHUP.
      eof = (ev & (socket ? EPOLLHUP : (EPOLLHUP | EPOLLERR))) != 0;
      data = nodata ? 0 : WritableSpace(fd, e);
    }
    if ((kn->sfflags & NOTE_LOWAT) && !eof && data < kn->sdata) return false;
  }

  *out = kn->kev;
  out->fflags = 0;
  out->data = nodata ? 0 : data;
  if (eof) {
    out->flags |= EV_EOF;
    if (socket) {
      // A pending socket error is what makes the socket report EPOLLERR,
      // so a clean end of stream (FIN) costs no SO_ERROR.  SO_ERROR clears
      // the error: keep it for later events.
      if ((ev & EPOLLERR) != 0) {
        if (int err = TakeSocketError(fd); err != 0) e.sticky_error = err;
      }
      out->fflags = static_cast<unsigned int>(e.sticky_error);
    }
  }
  return true;
}

bool Queue::Settle(Knote* kn) {
  const unsigned short flags = kn->kev.flags;
  const short filter = kn->kev.filter;
  if (kn->transient) {
    FreeKnote(kn);
    return false;
  }
  if (flags & EV_ONESHOT) {
    if (filter == EVFILT_READ || filter == EVFILT_WRITE) {
      const int fd = static_cast<int>(kn->kev.ident);
      FdEntry& e = fds_[fd];
      (filter == EVFILT_READ ? e.read : e.write) = nullptr;
      FreeKnote(kn);
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
