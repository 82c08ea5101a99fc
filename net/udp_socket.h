// net::UdpSocket: datagrams on an IoService (IPv4 or IPv6).
//
//   auto udp = UdpSocket::Bind(*service, SocketAddress::Ipv4Loopback(0));
//   (*udp)->ReceiveFrom(absl::MakeSpan(buf),
//       [](absl::Status s, size_t n, const SocketAddress& from) { ... });
//   (*udp)->SendTo(data, peer, [](absl::Status s, size_t n) { ... });
//
// Same machinery as StreamSocket (net/internal/socket_core.h): registered
// once, EV_CLEAR, drained until EAGAIN; FIFO queues of receives and sends;
// completions posted; Close() cancels what is pending.  One datagram per
// operation: a datagram larger than the buffer is cut, and its receive
// completes with OutOfRange (bytes = what fit).  Buffers must stay valid
// until the completion or Close().
//
// Lifetime and thread-safety: owned by the user; loop thread only;
// destroyed before its service.
#ifndef KQIO_NET_UDP_SOCKET_H_
#define KQIO_NET_UDP_SOCKET_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "io/io_service.h"
#include "net/callbacks.h"
#include "net/internal/socket_core.h"
#include "net/socket_address.h"

namespace kqio {
namespace net {

class UdpSocket final : public internal::SocketCore {
 public:
  // A socket bound to `local` (port 0: the kernel picks one).
  static absl::StatusOr<std::unique_ptr<UdpSocket>> Bind(
      io::IoService& service, const SocketAddress& local);
  // An unbound socket of `family` (AF_INET, AF_INET6): the first send binds
  // it to an ephemeral port.
  static absl::StatusOr<std::unique_ptr<UdpSocket>> Open(io::IoService& service,
                                                         int family);
  ~UdpSocket() override;

  void SendTo(absl::string_view data, const SocketAddress& to,
              IoCallback cb);
  void ReceiveFrom(absl::Span<char> buffer, ReceiveCallback cb);
  void Close();

  absl::StatusOr<SocketAddress> local_address() const;

 private:
  explicit UdpSocket(io::IoService& service) : SocketCore(service) {}
  static absl::StatusOr<std::unique_ptr<UdpSocket>> Make(
      io::IoService& service, int family, const SocketAddress* local);
  void OnEvent(const struct kevent& ev) override;
};

}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_UDP_SOCKET_H_
