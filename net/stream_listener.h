// net::StreamListener: accepts TCP (IPv4, IPv6, dual-stack) or Unix-domain
// connections on one or more addresses, on an IoService.
//
//   auto listener = StreamListener::Listen(*service,
//                                          SocketAddress::Ipv4Loopback(8080));
//   (*listener)->StartAccepting(
//       [](absl::StatusOr<std::unique_ptr<StreamSocket>> conn) { ... });
//
// One listener may own several sockets: Listen() binds every address it is
// given (e.g. all that net::Resolver returns for a name with passive = true,
// or "::" and "0.0.0.0"); port 0 on several addresses binds the first one to
// an ephemeral port and the others to that same port.
//
// Each socket is registered with the kqueue only after listen() (contract
// 6: FreeBSD picks a socket's read filter when the knote is attached), with
// EVFILT_READ | EV_CLEAR, once.  On each edge the listener accepts until
// EAGAIN, but at most `accept_budget` connections per loop iteration; then
// it posts itself a continuation, so other I/O runs in between and the
// edge-triggered backlog is still drained.  Accepted connections are handed
// to the handler from one posted closure per batch.
//
// Overload, cleanly:
//  - `max_connections`: connections accepted while that many accepted
//    sockets are still open are closed at once (the client reads EOF) and
//    counted (stats().refused_over_limit);
//  - EMFILE / ENFILE / ENOBUFS / ENOMEM from accept() (contract 7): the
//    listener stops accepting for `backoff` (a timer, never a busy loop),
//    and with `reserve_descriptor` first frees its spare descriptor to
//    accept and close one pending connection ("shed", so that a client is
//    told instead of left waiting), then takes the spare again; it counts
//    each event and resumes after the interval.
//  Transient per-connection errors (ECONNABORTED, EPROTO, ...) are counted
//  and skipped.
//
// The handler is called once per accepted connection with the new socket,
// and finally once with a non-OK status: CancelledError when the listener is
// closed or the service shuts down, or the error that broke the listener.
// It is never called after that, and may close or destroy the listener.
// Connections accepted but not yet delivered when the listener closes are
// closed.
//
// Lifetime and thread-safety: owned by the user; loop thread only; destroyed
// before its service.  Accepted sockets may outlive the listener.
#ifndef KQIO_NET_STREAM_LISTENER_H_
#define KQIO_NET_STREAM_LISTENER_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "io/io_service.h"
#include "io/pending_operation.h"
#include "net/socket_address.h"
#include "net/stream_socket.h"

namespace kqio {
namespace net {

struct ListenerOptions {
  int backlog = SOMAXCONN;
  bool reuse_address = true;   // SO_REUSEADDR (IP only)
  bool reuse_port = false;     // SO_REUSEPORT: one listener per loop
  // For IPv6 sockets: false sets IPV6_V6ONLY (the IPv6 wildcard then takes
  // IPv6 only, whatever the system default); true clears it, so "::" also
  // accepts IPv4 connections as ::ffff:a.b.c.d.
  bool dual_stack = false;
  size_t accept_budget = 64;  // per loop iteration, >= 1
  size_t max_connections = 0;  // 0: no limit
  absl::Duration backoff = absl::Milliseconds(100);  // after EMFILE & co.
  bool reserve_descriptor = true;
  // Unix-domain paths this listener bound are unlinked when it closes.
  bool unlink_on_close = true;
  StreamOptions stream_options;  // for accepted sockets
};

struct ListenerStats {
  uint64_t accepted = 0;            // connections accept() returned
  uint64_t refused_over_limit = 0;  // closed at once: max_connections
  uint64_t descriptor_exhaustion = 0;  // EMFILE/ENFILE/ENOBUFS/ENOMEM events
  uint64_t shed = 0;                // accepted with the spare and closed
  uint64_t backoffs = 0;            // pauses started
  uint64_t transient_errors = 0;    // ECONNABORTED & co., skipped
};

class StreamListener final : public io::PendingOperation {
 public:
  using AcceptHandler = absl::AnyInvocable<void(
      absl::StatusOr<std::unique_ptr<StreamSocket>> connection)>;

  // Binds and listens on every address (IPv4, IPv6 or Unix).  Errors name
  // the address; nothing stays open on failure.
  static absl::StatusOr<std::unique_ptr<StreamListener>> Listen(
      io::IoService& service, absl::Span<const SocketAddress> addresses,
      const ListenerOptions& options = {});
  static absl::StatusOr<std::unique_ptr<StreamListener>> Listen(
      io::IoService& service, const SocketAddress& address,
      const ListenerOptions& options = {}) {
    return Listen(service, absl::MakeConstSpan(&address, 1), options);
  }
  // Takes a socket that is already listening (inherited, or made by other
  // code); FailedPrecondition if it is not (contract 6), and the descriptor
  // is then left open.  Binding options are not applied.
  static absl::StatusOr<std::unique_ptr<StreamListener>> Adopt(
      io::IoService& service, int fd, const ListenerOptions& options = {});

  ~StreamListener() override;
  StreamListener(const StreamListener&) = delete;
  StreamListener& operator=(const StreamListener&) = delete;

  // Starts handing connections to `handler` (see above).
  // FailedPrecondition if closed or already accepting.
  absl::Status StartAccepting(AcceptHandler handler);
  // Closes every socket; the handler gets CancelledError.  Idempotent.
  void Close();

  bool is_open() const { return !endpoints_.empty(); }
  // One per socket, in the order bound, with the ports the kernel chose.
  std::vector<SocketAddress> local_addresses() const;
  const ListenerStats& stats() const { return stats_; }
  // Accepted sockets still open (with those not yet delivered).
  size_t open_connections() const { return count_->live; }

 private:
  struct Endpoint {
    int fd = -1;
    io::Registration reg;
    bool readable = false;
    std::string unix_path;  // to unlink on close; empty otherwise
  };
  // Shared with the posted delivery closures, so that the handler survives
  // the listener's destruction while it runs.
  struct Shared {
    StreamListener* listener = nullptr;  // null once closed
    AcceptHandler handler;
    bool finished = false;  // the final (non-OK) call is done or queued
  };

  StreamListener(io::IoService& service, const ListenerOptions& options);

  absl::Status AddEndpoint(int fd, std::string unix_path);
  void AcceptBatch();
  // Accept failed with `err` on endpoint `e`: true to go on accepting.
  bool OnAcceptError(Endpoint& e, int err);
  void PauseAfterExhaustion(Endpoint& e);
  void Resume();
  // Queues the handler's final call with `status`; stops accepting.
  void Finish(absl::Status status);
  class AcceptedBatch;
  static void Deliver(const std::shared_ptr<Shared>& shared,
                      AcceptedBatch& batch);
  void Abort() override;

  io::IoService* const service_;
  const ListenerOptions options_;
  std::vector<Endpoint> endpoints_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<internal::ConnectionCount> count_;
  io::TimerId backoff_timer_;
  int reserve_fd_ = -1;
  size_t next_endpoint_ = 0;  // round-robin start of the next batch
  bool accepting_ = false;
  bool paused_ = false;
  bool continuation_posted_ = false;
  ListenerStats stats_;
};

using TcpListener = StreamListener;
using UnixListener = StreamListener;

}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_STREAM_LISTENER_H_
