#include "net/internal/socket_util.h"

#include <errno.h>
#include <sys/socket.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"
#include "io/kqueue_ext.h"

namespace kqio {
namespace net {
namespace internal {

absl::Status CancelledStatus(absl::string_view why) {
  return io::WithErrno(absl::CancelledError(why), ECANCELED);
}

absl::Status NotOpenStatus(absl::string_view op) {
  return io::WithErrno(
      absl::FailedPreconditionError(absl::StrCat(op, ": socket is not open")),
      EBADF);
}

int ConnectError(int fd, const struct kevent& ev) {
  if ((ev.flags & EV_EOF) != 0 && ev.fflags != 0) {
    return static_cast<int>(ev.fflags);
  }
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  if (err != 0) return err;
  if ((ev.flags & EV_EOF) != 0) {
    // The connection ended before or as it was made and the error was
    // consumed elsewhere: connected only if it has a peer.
    SocketAddress peer;
    socklen_t plen = SocketAddress::capacity();
    if (getpeername(fd, peer.mutable_data(), &plen) != 0) {
      return errno == ENOTCONN ? ECONNREFUSED : errno;
    }
  }
  return 0;
}

namespace {

absl::StatusOr<SocketAddress> NameOf(int fd, bool peer) {
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  const int rc = peer ? getpeername(fd, a.mutable_data(), &len)
                      : getsockname(fd, a.mutable_data(), &len);
  if (rc != 0) {
    return io::ErrnoStatus(errno, peer ? "getpeername" : "getsockname",
                           absl::StrCat("fd ", fd));
  }
  a.set_size(len);
  return a;
}

}  // namespace

absl::StatusOr<SocketAddress> LocalAddress(int fd) {
  return NameOf(fd, /*peer=*/false);
}

absl::StatusOr<SocketAddress> PeerAddress(int fd) {
  return NameOf(fd, /*peer=*/true);
}

std::string Describe(int fd) {
  if (fd < 0) return "closed socket";
  absl::StatusOr<SocketAddress> a = PeerAddress(fd);
  if (a.ok() && a->family() != AF_UNSPEC && a->ToString() != "unix:") {
    return a->ToString();
  }
  a = LocalAddress(fd);
  if (a.ok() && a->family() != AF_UNSPEC && a->ToString() != "unix:") {
    return a->ToString();
  }
  return absl::StrCat("fd ", fd);
}

absl::StatusOr<io::Registration> RegisterSocket(
    io::IoService& service, int fd, bool watch_write,
    io::IoService::EventHandler handler) {
  absl::StatusOr<io::Registration> r = service.RegisterHandler(
      std::move(handler), io::IoService::KeepAlive::kNo);
  if (!r.ok()) return r.status();
  // net/ never reads `data` (each edge is drained until EAGAIN), so the
  // Linux queue need not compute it: one system call less per event.
  struct kevent changes[2];
  EV_SET(&changes[0], fd, EVFILT_READ, EV_ADD | EV_CLEAR, KQIO_NOTE_NODATA, 0,
         r->udata());
  EV_SET(&changes[1], fd, EVFILT_WRITE, EV_ADD | EV_CLEAR, KQIO_NOTE_NODATA, 0,
         r->udata());
  if (kevent(service.kqueue_fd(), changes, watch_write ? 2 : 1, nullptr, 0,
             nullptr) != 0) {
    const int err = errno;
    service.Unregister(*r);
    return io::ErrnoStatus(err, "kevent(EV_ADD)", absl::StrCat("fd ", fd));
  }
  return r;
}

absl::Status SetIntOption(int fd, int level, int name, int value,
                          absl::string_view what) {
  if (fd < 0) return NotOpenStatus(what);
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return io::ErrnoStatus(errno, absl::StrCat("setsockopt ", what),
                           Describe(fd));
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace net
}  // namespace kqio
