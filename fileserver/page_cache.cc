#include "fileserver/page_cache.h"

#if defined(__linux__)
#include <sys/uio.h>
#endif

namespace kqio {
namespace fileserver {

#if defined(__linux__) && defined(RWF_NOWAIT)
bool PagesCached(int fd, uint64_t offset, size_t length) {
  if (length == 0) return true;
  char byte;
  struct iovec iov = {&byte, 1};
  ssize_t n = preadv2(fd, &iov, 1, static_cast<off_t>(offset + length - 1),
                      RWF_NOWAIT);
  // 1: cached.  0: past the end (the send will find out).  -1 with EAGAIN:
  // not cached.  Any other error (EOPNOTSUPP on a file system without
  // RWF_NOWAIT): unknown, so take the path that cannot block the loop.
  return n >= 0;
}
#else
bool PagesCached(int, uint64_t, size_t) { return true; }
#endif

}  // namespace fileserver
}  // namespace kqio
