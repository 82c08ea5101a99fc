// net::SocketAddress: an IPv4, IPv6 or Unix-domain socket address, by value.
//
// A thin, copyable wrapper over sockaddr_storage that knows its length, so
// that it can be handed to bind(), connect() and sendto() as it is and filled
// by accept(), getsockname() and recvfrom().  Parsing is numeric only (no
// name lookups, which block: names go through net::Resolver on the pool).
//
// Thread-safety: a plain value; const methods may be called concurrently.
#ifndef KQIO_NET_SOCKET_ADDRESS_H_
#define KQIO_NET_SOCKET_ADDRESS_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kqio {
namespace net {

class SocketAddress final {
 public:
  // AF_UNSPEC, size 0: "no address".
  SocketAddress() = default;

  // A numeric IPv4 ("127.0.0.1") or IPv6 ("::1", "[::1]", "fe80::1%lo")
  // address and a port.  InvalidArgument for anything else.
  static absl::StatusOr<SocketAddress> Parse(absl::string_view host,
                                             uint16_t port);
  static SocketAddress Ipv4Loopback(uint16_t port);
  static SocketAddress Ipv6Loopback(uint16_t port);
  static SocketAddress Ipv4Any(uint16_t port);
  static SocketAddress Ipv6Any(uint16_t port);
  // A Unix-domain path.  InvalidArgument if it is empty or does not fit in
  // sun_path (about 104 bytes; Bazel's TEST_TMPDIR usually does not).
  static absl::StatusOr<SocketAddress> Unix(absl::string_view path);
  // Copies `len` bytes of `addr` (truncated to sizeof(sockaddr_storage)).
  static SocketAddress FromSockaddr(const struct sockaddr* addr,
                                    socklen_t len);

  int family() const { return storage_.ss_family; }
  bool is_ip() const;
  // The port of an IP address, 0 otherwise.
  uint16_t port() const;
  // The same address with another port (IP only; unchanged otherwise).
  SocketAddress WithPort(uint16_t port) const;
  // The path of a Unix-domain address, "" otherwise.
  std::string unix_path() const;

  const struct sockaddr* data() const {
    return reinterpret_cast<const struct sockaddr*>(&storage_);
  }
  socklen_t size() const { return size_; }
  // For calls that fill an address: pass mutable_data() and a length
  // initialised to capacity(), then set_size() with what the call returned.
  struct sockaddr* mutable_data() {
    return reinterpret_cast<struct sockaddr*>(&storage_);
  }
  static constexpr socklen_t capacity() { return sizeof(sockaddr_storage); }
  void set_size(socklen_t size);

  // "127.0.0.1:80", "[::1]:80", "unix:/tmp/s", "unspecified".
  std::string ToString() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b);
  friend bool operator!=(const SocketAddress& a, const SocketAddress& b) {
    return !(a == b);
  }

 private:
  struct sockaddr_storage storage_ = {};
  socklen_t size_ = 0;
};

}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_SOCKET_ADDRESS_H_
