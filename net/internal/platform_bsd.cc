// FreeBSD / macOS / other BSD half of net/internal/platform.h.  Not built or
// tested on Linux: keep it small.
#if !defined(__linux__)

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "net/internal/platform.h"

namespace kqio {
namespace net {
namespace internal {
namespace {

int SetNoSigPipe(int fd) {
#if defined(SO_NOSIGPIPE)
  int one = 1;
  return setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#else
  (void)fd;
  return 0;
#endif
}

// Closes `fd` keeping the errno of the failure that made us give it up.
int CloseKeepErrno(int fd) {
  const int err = errno;
  close(fd);
  errno = err;
  return -1;
}

}  // namespace

int OpenSocket(int family, int type, int protocol) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  const int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) return -1;
#else
  const int fd = socket(family, type, protocol);
  if (fd < 0) return -1;
  if (PrepareSocket(fd) != 0) return CloseKeepErrno(fd);
#endif
  if (SetNoSigPipe(fd) != 0) return CloseKeepErrno(fd);
  return fd;
}

int AcceptSocket(int listen_fd, struct sockaddr* addr, socklen_t* len) {
#if defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)
  const int fd = accept4(listen_fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return -1;
#else
  const int fd = accept(listen_fd, addr, len);
  if (fd < 0) return -1;
  if (PrepareSocket(fd) != 0) return CloseKeepErrno(fd);
#endif
  if (SetNoSigPipe(fd) != 0) return CloseKeepErrno(fd);
  return fd;
}

int PrepareSocket(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
  const int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return -1;
  return SetNoSigPipe(fd);
}

int NoSigPipeFlags() {
#if defined(MSG_NOSIGNAL)
  return MSG_NOSIGNAL;
#else
  return 0;
#endif
}

SendFileResult KernelSendFile(int sock_fd, int file_fd, int64_t offset,
                              size_t length, bool no_disk_io) {
  SendFileResult r;
  for (;;) {
    r = SendFileResult();
#if defined(__FreeBSD__)
    off_t sbytes = 0;
    const int flags = no_disk_io ? SF_NODISKIO : 0;
    if (sendfile(file_fd, sock_fd, static_cast<off_t>(offset), length, nullptr,
                 &sbytes, flags) != 0) {
      r.error = errno;
    }
    // sbytes == 0 without an error means the file ended.
    r.sent = static_cast<size_t>(sbytes);
#elif defined(__APPLE__)
    (void)no_disk_io;
    off_t len = static_cast<off_t>(length);
    if (sendfile(file_fd, sock_fd, static_cast<off_t>(offset), &len, nullptr,
                 0) != 0) {
      r.error = errno;
    }
    r.sent = static_cast<size_t>(len);
#else
    (void)sock_fd, (void)file_fd, (void)offset, (void)length, (void)no_disk_io;
    r.error = ENOSYS;
#endif
    if (r.error != EINTR) break;
    if (r.sent > 0) {  // interrupted after some progress: report it
      r.error = 0;
      break;
    }
  }
  if (r.error == EWOULDBLOCK) r.error = EAGAIN;
  return r;
}

bool KernelSendFileCanAvoidDisk() {
#if defined(__FreeBSD__)
  return true;
#else
  return false;
#endif
}

}  // namespace internal
}  // namespace net
}  // namespace kqio

#endif  // !defined(__linux__)
