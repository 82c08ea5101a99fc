#include "net/socket_address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kqio {
namespace net {
namespace {

SocketAddress FromIn4(uint32_t host_order_addr, uint16_t port) {
  struct sockaddr_in sin = {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(host_order_addr);
  return SocketAddress::FromSockaddr(reinterpret_cast<struct sockaddr*>(&sin),
                                     sizeof(sin));
}

SocketAddress FromIn6(const struct in6_addr& addr, uint16_t port,
                      uint32_t scope_id) {
  struct sockaddr_in6 sin6 = {};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  sin6.sin6_addr = addr;
  sin6.sin6_scope_id = scope_id;
  return SocketAddress::FromSockaddr(
      reinterpret_cast<struct sockaddr*>(&sin6), sizeof(sin6));
}

}  // namespace

absl::StatusOr<SocketAddress> SocketAddress::Parse(absl::string_view host,
                                                   uint16_t port) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  // inet_pton wants a NUL-terminated string.
  std::string text(host);
  struct in_addr a4;
  if (inet_pton(AF_INET, text.c_str(), &a4) == 1) {
    return FromIn4(ntohl(a4.s_addr), port);
  }
  uint32_t scope_id = 0;
  const size_t percent = text.find('%');
  if (percent != std::string::npos) {
    const std::string zone = text.substr(percent + 1);
    scope_id = if_nametoindex(zone.c_str());
    if (scope_id == 0) {
      // A numeric zone ("fe80::1%2") is an index already.
      char* end = nullptr;
      const unsigned long n = strtoul(zone.c_str(), &end, 10);
      if (zone.empty() || *end != '\0') {
        return absl::InvalidArgumentError(
            absl::StrCat("SocketAddress: unknown IPv6 zone in '", host, "'"));
      }
      scope_id = static_cast<uint32_t>(n);
    }
    text.resize(percent);
  }
  struct in6_addr a6;
  if (inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
    return FromIn6(a6, port, scope_id);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "SocketAddress: '", host, "' is not a numeric IPv4 or IPv6 address"));
}

SocketAddress SocketAddress::Ipv4Loopback(uint16_t port) {
  return FromIn4(INADDR_LOOPBACK, port);
}
SocketAddress SocketAddress::Ipv4Any(uint16_t port) {
  return FromIn4(INADDR_ANY, port);
}
SocketAddress SocketAddress::Ipv6Loopback(uint16_t port) {
  return FromIn6(in6addr_loopback, port, 0);
}
SocketAddress SocketAddress::Ipv6Any(uint16_t port) {
  return FromIn6(in6addr_any, port, 0);
}

absl::StatusOr<SocketAddress> SocketAddress::Unix(absl::string_view path) {
  struct sockaddr_un sun = {};
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SocketAddress: Unix socket path must be 1..",
        sizeof(sun.sun_path) - 1, " bytes, got ", path.size(), ": ", path));
  }
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path.data(), path.size());
  const socklen_t len =
      static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) +
                             path.size() + 1);
  return FromSockaddr(reinterpret_cast<struct sockaddr*>(&sun), len);
}

SocketAddress SocketAddress::FromSockaddr(const struct sockaddr* addr,
                                          socklen_t len) {
  SocketAddress a;
  len = std::min<socklen_t>(len, capacity());
  if (addr != nullptr && len > 0) memcpy(&a.storage_, addr, len);
  a.size_ = len;
  return a;
}

void SocketAddress::set_size(socklen_t size) {
  size_ = std::min<socklen_t>(size, capacity());
}

bool SocketAddress::is_ip() const {
  return family() == AF_INET || family() == AF_INET6;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  }
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

SocketAddress SocketAddress::WithPort(uint16_t port) const {
  SocketAddress a = *this;
  if (family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  } else if (family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  }
  return a;
}

std::string SocketAddress::unix_path() const {
  if (family() != AF_UNIX) return "";
  const auto* sun = reinterpret_cast<const sockaddr_un*>(&storage_);
  const size_t offset = offsetof(struct sockaddr_un, sun_path);
  if (size_ <= offset) return "";  // unnamed (e.g. a socketpair end)
  size_t n = std::min<size_t>(size_ - offset, sizeof(sun->sun_path));
  // A Linux abstract address starts with NUL and is not terminated.
  if (sun->sun_path[0] != '\0') n = strnlen(sun->sun_path, n);
  return std::string(sun->sun_path, n);
}

std::string SocketAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET: {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(&storage_);
      inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
      return absl::StrCat(buf, ":", port());
    }
    case AF_INET6: {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
      if (sin6->sin6_scope_id != 0) {
        return absl::StrCat("[", buf, "%", sin6->sin6_scope_id, "]:", port());
      }
      return absl::StrCat("[", buf, "]:", port());
    }
    case AF_UNIX: {
      std::string path = unix_path();
      if (!path.empty() && path[0] == '\0') path[0] = '@';
      return absl::StrCat("unix:", path);
    }
    default:
      return "unspecified";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) {
  return a.size_ == b.size_ && memcmp(&a.storage_, &b.storage_, a.size_) == 0;
}

}  // namespace net
}  // namespace kqio
