// FreeBSD and macOS: the kernel owns EVFILT_AIO, so kqio's engines use
// SIGEV_KEVENT (FreeBSD) or the thread pool with EVFILT_USER (macOS) and the
// posting hooks of io/kqueue_ext.h are not handled here.  Compiles to nothing
// on Linux.
#if defined(__FreeBSD__) || defined(__APPLE__)

#include <errno.h>

#include "io/kqueue_ext.h"

extern "C" int kqio_aio_post(int, const struct kevent*) {
  errno = ENOSYS;
  return -1;
}

extern "C" int kqio_aio_watch(int, int, const struct kevent*) {
  errno = ENOSYS;
  return -1;
}

#endif  // __FreeBSD__ || __APPLE__
