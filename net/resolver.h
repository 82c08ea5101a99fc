// net::Resolver: getaddrinfo() on the thread pool, never on the loop
// (contract 4), with the result delivered on the loop.
//
//   Resolver resolver(*service, *pool);
//   auto handle = resolver.Resolve("localhost", 8080, {},
//       [](absl::StatusOr<std::vector<SocketAddress>> addrs) { ... });
//   if (handle.ok()) handle->Cancel();   // the callback gets Cancelled
//
// Runs on the pool's general lane.  The addrinfo list is turned into
// SocketAddress values and freed on the worker, so a cancel that loses the
// race leaves nothing to release (the pool drops the vector).  Exactly one
// callback per accepted Resolve(), on the service's thread: the addresses
// (never empty on success), NotFound for an unknown name, Unavailable for a
// temporary failure (EAI_AGAIN), InvalidArgument for bad hints, or
// CancelledError.  The callback must not outlive what it captures; the
// Resolver itself holds nothing and may be destroyed at any time.
//
// Thread-safety: Resolve() may be called from any thread; the callback runs
// on the service's loop thread.
#ifndef KQIO_NET_RESOLVER_H_
#define KQIO_NET_RESOLVER_H_

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "io/io_service.h"
#include "net/socket_address.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace net {

struct ResolveOptions {
  int family = AF_UNSPEC;        // AF_INET, AF_INET6 or both
  int socktype = SOCK_STREAM;    // SOCK_STREAM or SOCK_DGRAM
  bool passive = false;          // AI_PASSIVE: addresses to bind/listen on
  bool numeric_host = false;     // AI_NUMERICHOST: no name service at all
  bool address_config = true;    // AI_ADDRCONFIG
};

class Resolver final {
 public:
  using Callback = absl::AnyInvocable<void(
      absl::StatusOr<std::vector<SocketAddress>> addresses)>;

  Resolver(io::IoService& service, threadpool::ThreadPool& pool)
      : service_(&service), pool_(&pool) {}

  // Resolves `host` (a name or numeric address; empty with `passive` means
  // the wildcard) for `port`.  Errors from the pool (lane full,
  // ResourceExhausted; shut down, FailedPrecondition) are returned and
  // `cb` is not called.
  absl::StatusOr<threadpool::TaskHandle> Resolve(absl::string_view host,
                                                 uint16_t port,
                                                 const ResolveOptions& options,
                                                 Callback cb);

  // The blocking call itself, for code already on a worker thread.
  static absl::StatusOr<std::vector<SocketAddress>> ResolveBlocking(
      const std::string& host, uint16_t port, const ResolveOptions& options);

 private:
  io::IoService* const service_;
  threadpool::ThreadPool* const pool_;
};

}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_RESOLVER_H_
