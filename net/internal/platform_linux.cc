// Linux half of net/internal/platform.h.
#if defined(__linux__)

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>

#include "net/internal/platform.h"

namespace kqio {
namespace net {
namespace internal {
namespace {

// sendfile(2) refuses to move more than this in one call.
constexpr size_t kMaxSendFileChunk = 0x7ffff000;

// sendfile(2) has no MSG_NOSIGNAL: block SIGPIPE in this thread for the
// call, and if the call failed with EPIPE (raising a SIGPIPE that is now
// pending on this thread), take that signal back with a zero-timeout
// sigtimedwait() before unblocking, unless one was already pending before.
class SigPipeGuard final {
 public:
  SigPipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_mask_);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
  }
  ~SigPipeGuard() { pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr); }
  SigPipeGuard(const SigPipeGuard&) = delete;
  SigPipeGuard& operator=(const SigPipeGuard&) = delete;

  void ConsumeRaised() {
    if (was_pending_) return;
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }

 private:
  sigset_t pipe_;
  sigset_t old_mask_;
  bool was_pending_ = false;
};

}  // namespace

int OpenSocket(int family, int type, int protocol) {
  return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
}

int AcceptSocket(int listen_fd, struct sockaddr* addr, socklen_t* len) {
  return accept4(listen_fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int PrepareSocket(int fd) {
  const int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
  const int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 || fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0) return -1;
  return 0;
}

int NoSigPipeFlags() { return MSG_NOSIGNAL; }

SendFileResult KernelSendFile(int sock_fd, int file_fd, int64_t offset,
                              size_t length, bool /*no_disk_io*/) {
  SendFileResult r;
  if (offset < 0) {
    r.error = EINVAL;
    return r;
  }
  off_t off = static_cast<off_t>(offset);
  SigPipeGuard guard;
  ssize_t n;
  do {
    n = sendfile(sock_fd, file_fd, &off, std::min(length, kMaxSendFileChunk));
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    r.sent = static_cast<size_t>(n);
    return r;
  }
  r.error = errno;
  if (r.error == EPIPE) guard.ConsumeRaised();
  if (r.error == EWOULDBLOCK) r.error = EAGAIN;
  return r;
}

bool KernelSendFileCanAvoidDisk() { return false; }

}  // namespace internal
}  // namespace net
}  // namespace kqio

#endif  // defined(__linux__)
