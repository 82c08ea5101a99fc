#include "io/internal/linux/fd_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace kqio::kq_internal {

int ProbeKind(int fd, FdEntry& entry) {
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  entry.dev = st.st_dev;
  entry.ino = st.st_ino;
  if (S_ISSOCK(st.st_mode)) {
    entry.kind = FdKind::kSocket;
  } else if (S_ISFIFO(st.st_mode)) {
    entry.kind = FdKind::kPipe;
  } else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) ||
             S_ISBLK(st.st_mode)) {
    entry.kind = FdKind::kVnode;
  } else {
    entry.kind = FdKind::kOther;
  }
  return 0;
}

namespace {

// TCP reports its accept queue length in tcpi_unacked while listening.  Other
// listening sockets (Unix domain) have no way to ask: report one connection,
// which is what a readable listening socket guarantees.
int64_t ListenQueueLength(int fd) {
  struct tcp_info info;
  socklen_t len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
      len >= sizeof(info.tcpi_unacked) && info.tcpi_state == TCP_LISTEN) {
    return info.tcpi_unacked;
  }
  return 1;
}

}  // namespace

int64_t ReadableBytes(int fd, FdEntry& entry) {
  if (entry.kind == FdKind::kListeningSocket) return ListenQueueLength(fd);
  int n = 0;
  if (ioctl(fd, FIONREAD, &n) == 0) return n;
  // SIOCINQ fails with EINVAL on a listening socket: this one was registered
  // before listen() (see seeds/000): remember it, and report the queue.
  if (errno == EINVAL && entry.kind == FdKind::kSocket) {
    entry.kind = FdKind::kListeningSocket;
    return ListenQueueLength(fd);
  }
  return 0;
}

int64_t WritableSpace(int fd, const FdEntry& entry) {
  switch (entry.kind) {
    case FdKind::kSocket: {
      // SO_MEMINFO gives the buffer size and what is queued in one call, in
      // the kernel's own accounting (both include skb overhead).
      uint32_t mem[SK_MEMINFO_VARS] = {};
      socklen_t len = sizeof(mem);
      if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) != 0) return 0;
      int64_t used = std::max(mem[SK_MEMINFO_WMEM_QUEUED],
                              mem[SK_MEMINFO_WMEM_ALLOC]);
      return std::max<int64_t>(0, int64_t{mem[SK_MEMINFO_SNDBUF]} - used);
    }
    case FdKind::kPipe: {
      int size = fcntl(fd, F_GETPIPE_SZ);
      int queued = 0;
      if (size < 0 || ioctl(fd, FIONREAD, &queued) != 0) return 0;
      return std::max(0, size - queued);
    }
    default:
      return 0;
  }
}

int TakeSocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return 0;
  return err;
}

int64_t BytesToEndOfFile(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  off_t pos = lseek(fd, 0, SEEK_CUR);
  if (pos < 0) return 0;
  return static_cast<int64_t>(st.st_size) - static_cast<int64_t>(pos);
}

bool SameFile(int fd, const FdEntry& entry) {
  struct stat st;
  return fstat(fd, &st) == 0 && st.st_dev == entry.dev &&
         st.st_ino == entry.ino;
}

}  // namespace kqio::kq_internal
