// Internal to aio/: the page-cache fast path's one system call, the only
// platform difference of the core, kept here (STYLE.md habit 3).
#ifndef KQIO_AIO_INTERNAL_NOWAIT_READ_H_
#define KQIO_AIO_INTERNAL_NOWAIT_READ_H_

#include <sys/uio.h>

#include <cstdint>

namespace kqio {
namespace aio {
namespace internal {

// True where NoWaitRead can work (Linux: preadv2 with RWF_NOWAIT).
bool HaveNoWaitRead();

// preadv2(fd, iov, iovcnt, offset, RWF_NOWAIT): bytes read from the page
// cache without blocking, or -errno (-EAGAIN: not cached; -ENOSYS where the
// platform has no such call).  Never blocks on the disk.
int64_t NoWaitRead(int fd, const struct iovec* iov, int iovcnt,
                   uint64_t offset);

}  // namespace internal
}  // namespace aio
}  // namespace kqio

#endif  // KQIO_AIO_INTERNAL_NOWAIT_READ_H_
