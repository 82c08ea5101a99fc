#include "aio/internal/nowait_read.h"

#include <errno.h>
#include <sys/uio.h>

namespace kqio {
namespace aio {
namespace internal {

#if defined(__linux__) && defined(RWF_NOWAIT)

bool HaveNoWaitRead() { return true; }

int64_t NoWaitRead(int fd, const struct iovec* iov, int iovcnt,
                   uint64_t offset) {
  const ssize_t r =
      preadv2(fd, iov, iovcnt, static_cast<off_t>(offset), RWF_NOWAIT);
  return r < 0 ? -int64_t{errno} : r;
}

#else  // no RWF_NOWAIT: not handled here; every read goes to an engine

bool HaveNoWaitRead() { return false; }

int64_t NoWaitRead(int, const struct iovec*, int, uint64_t) { return -ENOSYS; }

#endif

}  // namespace internal
}  // namespace aio
}  // namespace kqio
