/*
 * <sys/event.h> for Linux: kqio's kqueue.
 *
 * On FreeBSD and macOS the kernel provides kqueue(2); //io:kqueue is then the
 * system header.  On Linux this header and io/internal/linux/ implement the
 * same API on top of epoll, eventfd, timerfd and signalfd, so that a program
 * written against the FreeBSD kqueue(2) manual page compiles and runs
 * unchanged.  It is plain C and may be included from C or C++.
 *
 * Supported filters: EVFILT_READ, EVFILT_WRITE, EVFILT_AIO (events posted by
 * kqio's own AIO engines; see io/kqueue_ext.h), EVFILT_SIGNAL, EVFILT_TIMER and
 * EVFILT_USER.  Numeric values follow FreeBSD, so code that prints or stores
 * them sees the same numbers.  Filters that are not implemented (VNODE, PROC,
 * ...) are deliberately not defined, so that `#ifdef EVFILT_VNODE` feature
 * tests take their fallback path instead of failing at run time.
 *
 * Choices where FreeBSD, macOS and existing Linux ports differ:
 *  - struct kevent is FreeBSD 12's: the six classic fields and ext[4], which
 *    EV_SET zeroes and which a returned event echoes from its registration.
 *  - Returned events keep EV_ADD in `flags` (macOS and libkqueue do; FreeBSD
 *    strips it).  EV_ENABLE, EV_DISABLE and EV_DELETE are never returned, and
 *    re-adding a knote does not change its stored flags, as on every BSD.
 *  - A changelist entry that fails, or any entry with EV_RECEIPT, comes back
 *    with EV_ERROR or'ed into its own flags and data == errno (0 on success),
 *    all other fields as given (macOS and libkqueue; FreeBSD replaces flags).
 *  - EV_ADD with NOTE_TRIGGER on EVFILT_USER triggers the new event (macOS
 *    and libkqueue; on FreeBSD the trigger is ignored at creation).
 *  - Timer units and NOTE_ABSTIME use FreeBSD's values; NOTE_ABSOLUTE (macOS's
 *    name) is an alias of NOTE_ABSTIME and, as on FreeBSD, means an absolute
 *    CLOCK_REALTIME deadline in the given unit since the Epoch.
 *  - EVFILT_READ on a regular file, directory or other descriptor epoll cannot
 *    watch reports `data` = bytes from the file offset to the end of the file
 *    and is ready while that is not zero; EVFILT_WRITE on one is always ready.
 *    Linux gives no notice of a file growing: every kevent() call checks, but
 *    a call already blocked is not woken by the growth (use a timeout).
 *
 * Linux-specific behaviour worth knowing:
 *  - The descriptor returned by kqueue() is the write end of a private pipe.
 *    close() on it releases every internal descriptor (asynchronously, within
 *    microseconds, and synchronously before the next kqueue() call needs the
 *    number) and makes a kevent() blocked in another thread return -1/EBADF.
 *    It cannot itself be watched with poll() or another kqueue, and a dup()
 *    of it is not a kqueue descriptor.  Bytes written into it are discarded.
 *  - EVFILT_SIGNAL is built on one signalfd shared by every queue, and, as on
 *    FreeBSD, each delivery is counted by every knote that watches the
 *    signal, in every queue.  A signalfd only sees signals that are blocked:
 *    an EV_ADD blocks the signal in the calling thread, and threads created
 *    later inherit the mask, but a thread that already exists and does not
 *    block the signal takes it instead (its handler or default action runs,
 *    and no queue sees it).  So block the signal in every thread, best in
 *    main() before any thread starts, as with sigwait().  A blocked signal is
 *    reported even when its disposition is SIG_IGN (Linux keeps blocked
 *    signals pending whatever their disposition).  The disposition is never
 *    changed.  A signal sent to a thread (raise(), pthread_kill()) rather
 *    than to the process is seen when that thread calls kevent().  A standard
 *    signal that is still pending is not queued again: deliveries that come
 *    before kqio has read the previous one count as one.
 *  - kqueue() creates every internal descriptor a queue needs (an epoll set,
 *    an eventfd and a pipe), so that it, and not a later kevent(), is what
 *    fails with EMFILE when the table is full.  kevent() creates none, except
 *    one timerfd per EVFILT_TIMER knote at EV_ADD (and the process's shared
 *    signalfd at the first EVFILT_SIGNAL EV_ADD): that change then fails
 *    with EMFILE, reported as its EV_ERROR entry.
 *  - `data` of EVFILT_READ/EVFILT_WRITE costs a system call per event; a
 *    program that never reads it can say so with KQIO_NOTE_NODATA (see
 *    io/kqueue_ext.h).
 *  - The socket error reported in fflags with EV_EOF is read with SO_ERROR
 *    when epoll reports one (EPOLLERR), which clears it; it is remembered
 *    and reported again on later events of the same registration.
 *  - Kqueues are not inherited by fork(): in the child the descriptor is
 *    closed, as on FreeBSD.
 *  - epoll watches a file, not a descriptor number: if a registered
 *    descriptor is closed while a dup() of it keeps the file open, its knotes
 *    are not removed as on FreeBSD, and until the last descriptor of the file
 *    is closed the queue may still return their events (old udata, closed
 *    ident).  Delete the knotes (EV_DELETE) before closing such a descriptor.
 *    Without a dup(), close() and reuse of the number are handled.
 */
#ifndef _SYS_EVENT_H_
#define _SYS_EVENT_H_

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_AIO (-3)
#define EVFILT_SIGNAL (-6)
#define EVFILT_TIMER (-7)
#define EVFILT_USER (-11)

struct kevent {
  uintptr_t ident;       /* identifier: descriptor, signal, timer or user id */
  short filter;          /* EVFILT_* */
  unsigned short flags;  /* EV_* */
  unsigned int fflags;   /* filter-specific flags (NOTE_*) */
  int64_t data;          /* filter-specific data */
  void *udata;           /* opaque user data, returned unchanged */
  uint64_t ext[4];       /* extensions: echoed back, otherwise unused */
};

#define EV_SET(kevp_, a, b, c, d, e, f) \
  do {                                  \
    struct kevent *kevp__ = (kevp_);    \
    kevp__->ident = (a);                \
    kevp__->filter = (b);               \
    kevp__->flags = (c);                \
    kevp__->fflags = (d);               \
    kevp__->data = (e);                 \
    kevp__->udata = (f);                \
    kevp__->ext[0] = 0;                 \
    kevp__->ext[1] = 0;                 \
    kevp__->ext[2] = 0;                 \
    kevp__->ext[3] = 0;                 \
  } while (0)

/* Actions. */
#define EV_ADD 0x0001     /* add the event to the queue (implies enable) */
#define EV_DELETE 0x0002  /* delete the event from the queue */
#define EV_ENABLE 0x0004  /* allow the event to be returned */
#define EV_DISABLE 0x0008 /* keep the event but do not return it */
#define EV_KEEPUDATA 0x0200 /* on modification, keep the stored udata */

/* Flags. */
#define EV_ONESHOT 0x0010  /* delete the event after its first delivery */
#define EV_CLEAR 0x0020    /* reset the state after delivery */
#define EV_RECEIPT 0x0040  /* always report the result of a change */
#define EV_DISPATCH 0x0080 /* disable the event after delivery */

/* Returned values. */
#define EV_SYSFLAGS 0xF000
#define EV_EOF 0x8000   /* end of file; fflags holds the socket error */
#define EV_ERROR 0x4000 /* a change failed; data holds the errno */

/* EVFILT_READ / EVFILT_WRITE: data holds the low-water mark. */
#define NOTE_LOWAT 0x0001

/* EVFILT_USER. */
#define NOTE_FFNOP 0x00000000     /* ignore the input fflags */
#define NOTE_FFAND 0x40000000     /* AND the input fflags into the stored ones */
#define NOTE_FFOR 0x80000000      /* OR the input fflags into the stored ones */
#define NOTE_FFCOPY 0xc0000000    /* replace the stored fflags */
#define NOTE_FFCTRLMASK 0xc0000000 /* mask of the control operations above */
#define NOTE_FFLAGSMASK 0x00ffffff /* the user-defined flags */
#define NOTE_TRIGGER 0x01000000   /* trigger the event */

/* EVFILT_TIMER: the unit of data (milliseconds by default). */
#define NOTE_SECONDS 0x00000001
#define NOTE_MSECONDS 0x00000002
#define NOTE_USECONDS 0x00000004
#define NOTE_NSECONDS 0x00000008
#define NOTE_ABSTIME 0x00000010 /* data is an absolute time since the Epoch */
#define NOTE_ABSOLUTE NOTE_ABSTIME

/* Creates a new event queue.  Returns a descriptor, or -1 with errno set. */
int kqueue(void);

/*
 * Applies the nchanges entries of changelist in order, then waits up to
 * *timeout (forever when timeout is NULL) for at most nevents events and
 * stores them in eventlist.  Returns the number of events stored, or -1 with
 * errno set.  Safe to call on one queue from several threads at once.
 */
int kevent(int kq, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents,
           const struct timespec *timeout);

/*
 * Linux only: finishes the release of every kqueue whose descriptor has been
 * closed, before returning.  Tests that count open descriptors right after
 * close(kq) call it; programs never need to.  libkqueue_drain_pending_close
 * is the same function under the name libkqueue's test suite uses.
 */
void kqio_drain_pending_close(void);
void libkqueue_drain_pending_close(void);

#ifdef __cplusplus
}
#endif

#endif /* _SYS_EVENT_H_ */
