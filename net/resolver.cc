#include "net/resolver.h"

#include <errno.h>
#include <netdb.h>

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"

namespace kqio {
namespace net {
namespace {

absl::Status GaiStatus(int rc, const std::string& what) {
  const std::string message =
      absl::StrCat("getaddrinfo(", what, "): ", gai_strerror(rc));
  switch (rc) {
    case EAI_SYSTEM:
      return io::ErrnoStatus(errno, "getaddrinfo", what);
    case EAI_NONAME:
#if defined(EAI_NODATA) && EAI_NODATA != EAI_NONAME
    case EAI_NODATA:
#endif
      return absl::NotFoundError(message);
    case EAI_AGAIN:
      return absl::UnavailableError(message);
    case EAI_MEMORY:
      return absl::ResourceExhaustedError(message);
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE:
    case EAI_BADFLAGS:
      return absl::InvalidArgumentError(message);
    default:
      return absl::UnknownError(message);
  }
}

}  // namespace

absl::StatusOr<std::vector<SocketAddress>> Resolver::ResolveBlocking(
    const std::string& host, uint16_t port, const ResolveOptions& options) {
  struct addrinfo hints = {};
  hints.ai_family = options.family;
  hints.ai_socktype = options.socktype;
  hints.ai_flags = AI_NUMERICSERV;
  if (options.passive) hints.ai_flags |= AI_PASSIVE;
  if (options.numeric_host) hints.ai_flags |= AI_NUMERICHOST;
  if (options.address_config) hints.ai_flags |= AI_ADDRCONFIG;
  const std::string service = absl::StrCat(port);
  const std::string what = absl::StrCat(host, " port ", port);
  struct addrinfo* list = nullptr;
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(),
                             service.c_str(), &hints, &list);
  if (rc != 0) return GaiStatus(rc, what);
  std::unique_ptr<struct addrinfo, void (*)(struct addrinfo*)> owner(
      list, freeaddrinfo);
  std::vector<SocketAddress> out;
  for (const struct addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    SocketAddress a = SocketAddress::FromSockaddr(ai->ai_addr, ai->ai_addrlen);
    bool seen = false;
    for (const SocketAddress& b : out) seen = seen || a == b;
    if (!seen) out.push_back(a);
  }
  if (out.empty()) {
    return absl::NotFoundError(
        absl::StrCat("getaddrinfo(", what, "): no IPv4 or IPv6 address"));
  }
  return out;
}

absl::StatusOr<threadpool::TaskHandle> Resolver::Resolve(
    absl::string_view host, uint16_t port, const ResolveOptions& options,
    Callback cb) {
  io::IoService* service = service_;
  const io::MonoTime start = service_->OpNow();
  absl::StatusOr<threadpool::TaskHandle> handle = pool_->Submit(
      threadpool::Lane::kGeneral, *service_,
      [host = std::string(host), port, options] {
        return ResolveBlocking(host, port, options);
      },
      [service, start, cb = std::move(cb)](
          absl::StatusOr<std::vector<SocketAddress>> result) mutable {
        service->RecordOpDone(io::OpClass::kResolve, start, result.status());
        cb(std::move(result));
      });
  if (handle.ok()) service_->RecordOpStarted(io::OpClass::kResolve);
  return handle;
}

}  // namespace net
}  // namespace kqio
