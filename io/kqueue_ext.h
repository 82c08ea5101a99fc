// kqio's extensions to <sys/event.h>: a registration flag that spares the
// Linux queue work a program does not need, and the hooks that kqio's own AIO
// engines use to post EVFILT_AIO events.  Plain C, like <sys/event.h>.
#ifndef KQIO_IO_KQUEUE_EXT_H_
#define KQIO_IO_KQUEUE_EXT_H_

#include <sys/event.h>

// KQIO_NOTE_NODATA, an fflags bit for EVFILT_READ and EVFILT_WRITE
// registrations, says "I never read `data`".  FreeBSD defines `data` of these
// filters as the bytes readable and the free send space, which the Linux
// queue has to ask the kernel for on every event (one ioctl(FIONREAD) or
// getsockopt(SO_MEMINFO) each: as many system calls as the read or write the
// event leads to).  With the flag it does not ask, and every event of the
// knote has data == 0.  Everything else is as without it: the same events (a
// read event still means data, an end of stream or an error), EV_EOF, and the
// socket error in fflags with EV_EOF.
//  - The flag is not echoed in returned events, whose fflags is 0 or that
//    error, exactly as without it.
//  - Like NOTE_LOWAT, it is part of the fflags that every change to the knote
//    stores: a later EV_ADD, EV_ENABLE or EV_DISABLE of the knote must pass
//    it again to keep it.
//  - With NOTE_LOWAT, which needs `data`, it is ignored.
//  - Other filters give the bit other meanings (NOTE_FFAND on EVFILT_USER;
//    EVFILT_TIMER rejects it): pass it to READ and WRITE only.
// On FreeBSD and macOS the kernel computes `data` anyway and the flag is 0,
// so portable code can pass it unconditionally.
#if defined(__linux__)
#define KQIO_NOTE_NODATA 0x40000000u
#else
#define KQIO_NOTE_NODATA 0u
#endif

#ifdef __cplusplus
extern "C" {
#endif

// FreeBSD's kernel queues one EVFILT_AIO event per finished aio_read()/
// aio_write() when the request asks for SIGEV_KEVENT.  On Linux, file AIO is
// io_uring, whose completions kqio turns into the same EVFILT_AIO events with
// the two calls below, so that the loop sees one kind of AIO completion on
// every platform.  Programs cannot create EVFILT_AIO knotes with kevent()
// (EPERM, as on FreeBSD).
//
// Both functions are thread-safe.  Where the platform has no such facility
// (FreeBSD and macOS, whose kernels own EVFILT_AIO) they fail with ENOSYS and
// the caller uses the kernel's own mechanism or EVFILT_USER instead.

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
