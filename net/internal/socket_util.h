// Small helpers every net/ socket uses: the statuses kqio reports for closed
// and cancelled operations, address queries, socket options, and the one
// place where a finished non-blocking connect() is judged.
//
// All functions are thread-safe (they only make system calls on the
// descriptor they are given).
#ifndef KQIO_NET_INTERNAL_SOCKET_UTIL_H_
#define KQIO_NET_INTERNAL_SOCKET_UTIL_H_

#include <sys/event.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "io/io_service.h"
#include "net/socket_address.h"

namespace kqio {
namespace net {
namespace internal {

// CancelledError with errno ECANCELED: what every operation pending on a
// socket gets when the socket is closed (ARCHITECTURE.md contract 2) or the
// service shuts down.
absl::Status CancelledStatus(absl::string_view why);
// FailedPrecondition for an operation started on a closed (or never opened)
// socket.
absl::Status NotOpenStatus(absl::string_view op);

// The errno of a connect() that was in progress on `fd`, now that an
// EVFILT_WRITE event `ev` reported the socket: 0 if it is connected.
// kqueue on the BSDs (and kqio's Linux kqueue) put the socket error in
// `fflags` with EV_EOF; otherwise SO_ERROR is asked; an EOF with no error at
// all (seen on macOS) is judged with getpeername().  Contract 8: the only
// place this difference is handled.
int ConnectError(int fd, const struct kevent& ev);

absl::StatusOr<SocketAddress> LocalAddress(int fd);
absl::StatusOr<SocketAddress> PeerAddress(int fd);
// For error messages: the peer ("127.0.0.1:80"), else the local address,
// else "fd N".
std::string Describe(int fd);

// Registers `fd` with `service` once: one slot for `handler`, which does not
// keep the loop running (KeepAlive::kNo), and EVFILT_READ (and EVFILT_WRITE
// if `watch_write`) with EV_CLEAR, added in one kevent() call.  The
// descriptor stays the caller's either way.
absl::StatusOr<io::Registration> RegisterSocket(
    io::IoService& service, int fd, bool watch_write,
    io::IoService::EventHandler handler);

// setsockopt(fd, level, name, &value) as a Status naming `what`.
absl::Status SetIntOption(int fd, int level, int name, int value,
                          absl::string_view what);

}  // namespace internal
}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_INTERNAL_SOCKET_UTIL_H_
