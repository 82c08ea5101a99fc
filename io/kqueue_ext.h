// kqio's extensions to <sys/event.h>, for kqio's own AIO engines.
//
// FreeBSD's kernel queues one EVFILT_AIO event per finished aio_read()/
// aio_write() when the request asks for SIGEV_KEVENT.  On Linux, file AIO is
// io_uring, whose completions kqio turns into the same EVFILT_AIO events with
// these two calls, so that the loop sees one kind of AIO completion on every
// platform.  Programs cannot create EVFILT_AIO knotes with kevent() (EPERM,
// as on FreeBSD).
//
// Both functions are thread-safe.  Where the platform has no such facility
// (FreeBSD and macOS, whose kernels own EVFILT_AIO) they fail with ENOSYS and
// the caller uses the kernel's own mechanism or EVFILT_USER instead.
#ifndef KQIO_IO_KQUEUE_EXT_H_
#define KQIO_IO_KQUEUE_EXT_H_

#include <sys/event.h>

#ifdef __cplusplus
extern "C" {
#endif

// Queues one EVFILT_AIO event on `kq` with ev->ident, ev->fflags, ev->data and
// ev->udata (filter and flags are set by the queue: EV_ADD|EV_CLEAR|
// EV_ONESHOT).  Every call yields exactly one event; none are coalesced.
// Returns 0, or -1 with errno (EBADF: not an open kqueue).
int kqio_aio_post(int kq, const struct kevent *ev);

// Applies `change` (EV_ADD, EV_DELETE, EV_ENABLE or EV_DISABLE; filter must be
// EVFILT_AIO) to an EVFILT_AIO knote identified by change->ident that is
// activated, edge-triggered, whenever `fd` becomes readable, e.g. an
// io_uring's completion eventfd.  `fd` stays owned by the caller and must
// outlive the knote.  Returns 0, or -1 with errno.
int kqio_aio_watch(int kq, int fd, const struct kevent *change);

#ifdef __cplusplus
}
#endif

#endif  // KQIO_IO_KQUEUE_EXT_H_
