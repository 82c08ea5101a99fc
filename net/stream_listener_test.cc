// StreamListener: registration after listen() (seed 000), accept batches,
// the connection limit (seed 002), several addresses, IPv6, dual stack and
// Unix-domain sockets.
#include "net/stream_listener.h"

#include <errno.h>
#include <sys/event.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "io/errno_status.h"
#include "io/io_service.h"
#include "net/internal/test_util.h"
#include "net/resolver.h"
#include "net/socket_address.h"
#include "net/stream_socket.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace net {
namespace {

using testing::Collect;
using testing::Connections;
using testing::NewService;
using testing::RawClient;
using testing::RunFor;
using testing::RunUntil;

// Seed 000: asio registers the socket for READ|WRITE before bind/listen,
// then again after.  A listener must only ever be registered after listen():
// Adopt() refuses a socket that is not listening, and a socket that was
// registered elsewhere before listen() still accepts once adopted.
TEST(StreamListenerTest, Seed000RegisterListenRegister) {
  auto service = NewService();
  const int sock = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  const int scratch_kq = kqueue();
  struct kevent ev[2];
  EV_SET(&ev[0], sock, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  EV_SET(&ev[1], sock, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  ASSERT_EQ(kevent(scratch_kq, ev, 2, nullptr, 0, nullptr), 0);

  auto early = StreamListener::Adopt(*service, sock);
  EXPECT_TRUE(absl::IsFailedPrecondition(early.status())) << early.status();
  EXPECT_NE(early.status().message().find("listen"), std::string::npos);

  int one = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  SocketAddress a = SocketAddress::Ipv4Loopback(0);
  ASSERT_EQ(bind(sock, a.data(), a.size()), 0);  // the descriptor survived
  ASSERT_EQ(listen(sock, 0x80), 0);
  ASSERT_EQ(ioctl(sock, FIONBIO, &one), 0);
  ASSERT_EQ(kevent(scratch_kq, ev, 2, nullptr, 0, nullptr), 0);

  auto l = StreamListener::Adopt(*service, sock);
  ASSERT_TRUE(l.ok()) << l.status();
  Connections conns;
  ASSERT_TRUE((*l)->StartAccepting(Collect(conns)).ok());
  const int client = RawClient((*l)->local_addresses()[0]);
  ASSERT_TRUE(RunUntil(*service, [&] { return conns.size() == 1; },
                       absl::Seconds(10)));
  close(client);
  close(scratch_kq);
}

TEST(StreamListenerTest, BudgetOfOneStillDrainsTheWholeBacklog) {
  auto service = NewService();
  ListenerOptions options;
  options.accept_budget = 1;
  auto l = StreamListener::Listen(*service, SocketAddress::Ipv4Loopback(0), options);
  ASSERT_TRUE(l.ok());
  std::vector<int> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(RawClient((*l)->local_addresses()[0]));
  Connections conns;
  const uint64_t iterations_before = service->metrics().loop_iterations;
  ASSERT_TRUE((*l)->StartAccepting(Collect(conns)).ok());
  // Under EV_CLEAR the backlog is reported once: without the listener's
  // own continuation only the first connection would ever be accepted.
  ASSERT_TRUE(RunUntil(*service, [&] { return conns.size() == 20; }));
  // The first batch runs in StartAccepting, each later one in its own
  // iteration (the listener's edge event may add one to the first).
  EXPECT_GE(service->metrics().loop_iterations - iterations_before, 18u);
  EXPECT_EQ((*l)->stats().accepted, 20u);
  EXPECT_EQ((*l)->open_connections(), 20u);
  conns.clear();
  EXPECT_EQ((*l)->open_connections(), 0u);
  for (int fd : clients) close(fd);
}

// Seed 002: a TCP server with a connection pool, on every address
// getaddrinfo returns for the name; the excess is refused cleanly.
TEST(StreamListenerTest, Seed002ConnectionPoolOverGetaddrinfo) {
  auto service = NewService();
  auto pool = threadpool::ThreadPool::Create(threadpool::ThreadPoolOptions());
  ASSERT_TRUE(pool.ok());
  Resolver resolver(*service, **pool);
  absl::StatusOr<std::vector<SocketAddress>> addrs;
  bool resolved = false;
  ResolveOptions ro;
  ro.address_config = false;  // a loopback-only machine still has both
  ASSERT_TRUE(resolver
                  .Resolve("localhost", 0, ro,
                           [&](absl::StatusOr<std::vector<SocketAddress>> r) {
                             addrs = std::move(r);
                             resolved = true;
                           })
                  .ok());
  ASSERT_TRUE(RunUntil(*service, [&] { return resolved; }));
  ASSERT_TRUE(addrs.ok()) << addrs.status();
  ListenerOptions options;
  options.max_connections = 2;
  auto l = StreamListener::Listen(*service, *addrs, options);
  if (!l.ok() && io::StatusErrno(l.status()) == EADDRNOTAVAIL) {
    // "localhost" names ::1 but this machine has no IPv6 loopback.
    std::vector<SocketAddress> v4;
    for (const SocketAddress& a : *addrs) {
      if (a.family() == AF_INET) v4.push_back(a);
    }
    l = StreamListener::Listen(*service, v4, options);
  }
  ASSERT_TRUE(l.ok()) << l.status();
  const std::vector<SocketAddress> bound = (*l)->local_addresses();
  for (const SocketAddress& a : bound) EXPECT_EQ(a.port(), bound[0].port());
  Connections conns;
  ASSERT_TRUE((*l)->StartAccepting(Collect(conns)).ok());

  const int c1 = RawClient(bound[0]);
  const int c2 = RawClient(bound.back());
  ASSERT_TRUE(RunUntil(*service, [&] { return conns.size() == 2; }));
  const int c3 = RawClient(bound[0]);
  ASSERT_TRUE(RunUntil(*service, [&] { return (*l)->stats().refused_over_limit == 1; }));
  char byte;
  EXPECT_EQ(read(c3, &byte, 1), 0);  // refused: EOF, not a hang
  EXPECT_EQ(conns.size(), 2u);
  EXPECT_EQ((*l)->open_connections(), 2u);

  conns.erase(conns.begin());  // one leaves the pool...
  EXPECT_EQ((*l)->open_connections(), 1u);
  const int c4 = RawClient(bound[0]);  // ...and a newcomer gets its place
  ASSERT_TRUE(RunUntil(*service, [&] { return conns.size() == 2; }));
  EXPECT_EQ((*l)->stats().refused_over_limit, 1u);
  for (int fd : {c1, c2, c3, c4}) close(fd);
}

TEST(StreamListenerTest, Ipv6Loopback) {
  auto service = NewService();
  auto l = StreamListener::Listen(*service, SocketAddress::Ipv6Loopback(0));
  if (!l.ok()) GTEST_SKIP() << "no IPv6 loopback: " << l.status();
  Connections conns;
  ASSERT_TRUE((*l)->StartAccepting(Collect(conns)).ok());
  auto client = StreamSocket::Create(*service);
  bool connected = false;
  client->Connect((*l)->local_addresses()[0], absl::Seconds(5), [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    connected = true;
  });
  ASSERT_TRUE(RunUntil(*service, [&] { return connected && conns.size() == 1; }));
  EXPECT_EQ(conns[0]->peer_address()->family(), AF_INET6);
  char buf[3];
  bool got = false;
  conns[0]->ReadExactly(absl::MakeSpan(buf), [&](absl::Status s, size_t) {
    EXPECT_TRUE(s.ok());
    got = true;
  });
  client->WriteAll("six", [](absl::Status s, size_t) { EXPECT_TRUE(s.ok()); });
  ASSERT_TRUE(RunUntil(*service, [&] { return got; }));
  EXPECT_EQ(std::string(buf, 3), "six");
}

TEST(StreamListenerTest, DualStackAcceptsIpv4OnAnIpv6Socket) {
  auto service = NewService();
  ListenerOptions options;
  options.dual_stack = true;
  // The IPv4 loopback as an IPv4-mapped IPv6 address: loopback only.
  auto mapped = SocketAddress::Parse("::ffff:127.0.0.1", 0);
  ASSERT_TRUE(mapped.ok());
  auto l = StreamListener::Listen(*service, *mapped, options);
  if (!l.ok()) GTEST_SKIP() << "no IPv6 sockets: " << l.status();
  Connections conns;
  ASSERT_TRUE((*l)->StartAccepting(Collect(conns)).ok());
  const int client =
      RawClient(SocketAddress::Ipv4Loopback((*l)->local_addresses()[0].port()));
  ASSERT_TRUE(RunUntil(*service, [&] { return conns.size() == 1; }));
  const SocketAddress peer = *conns[0]->peer_address();
  EXPECT_EQ(peer.family(), AF_INET6);
  EXPECT_EQ(peer.ToString().rfind("[::ffff:127.0.0.1]:", 0), 0u) << peer.ToString();
  close(client);

  options.dual_stack = false;  // IPV6_V6ONLY: a mapped address cannot bind
  EXPECT_FALSE(StreamListener::Listen(*service, *mapped, options).ok());
}

TEST(StreamListenerTest, UnixDomainListenerAndStream) {
  auto service = NewService();
  testing::ShortTempDir dir;
  const std::string path = dir.path() + "/s";
  auto addr = SocketAddress::Unix(path);
  ASSERT_TRUE(addr.ok());
  auto l = StreamListener::Listen(*service, *addr);
  ASSERT_TRUE(l.ok()) << l.status();
  Connections conns;
  ASSERT_TRUE((*l)->StartAccepting(Collect(conns)).ok());
  auto client = StreamSocket::Create(*service);
  bool connected = false;
  client->Connect(*addr, absl::Seconds(5), [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    connected = true;
  });
  ASSERT_TRUE(RunUntil(*service, [&] { return connected && conns.size() == 1; }));
  EXPECT_EQ(client->peer_address()->unix_path(), path);
  // Echo through the Unix socket, both directions.
  char buf[5];
  bool echoed = false;
  conns[0]->ReadExactly(absl::MakeSpan(buf), [&](absl::Status s, size_t n) {
    ASSERT_TRUE(s.ok());
    conns[0]->WriteAll(absl::string_view(buf, n), [](absl::Status, size_t) {});
  });
  char back[5];
  client->WriteAll("local", [](absl::Status s, size_t) { EXPECT_TRUE(s.ok()); });
  client->ReadExactly(absl::MakeSpan(back), [&](absl::Status s, size_t) {
    EXPECT_TRUE(s.ok());
    echoed = true;
  });
  ASSERT_TRUE(RunUntil(*service, [&] { return echoed; }));
  EXPECT_EQ(std::string(back, 5), "local");
  EXPECT_FALSE(client->SetNoDelay(true).ok());  // not TCP: an error, no crash

  (*l)->Close();
  struct stat st;
  EXPECT_NE(stat(path.c_str(), &st), 0);  // unlinked on close

  // Connecting to a path nobody listens on fails with its errno.
  auto nobody = StreamSocket::Create(*service);
  testing::IoResult connect;
  nobody->Connect(*addr, absl::Seconds(5), testing::RecordConnect(connect));
  ASSERT_TRUE(RunUntil(*service, [&] { return connect.done; }));
  EXPECT_EQ(io::StatusErrno(connect.status), ENOENT) << connect.status;
}

TEST(StreamListenerTest, BindErrorsNameTheAddressAndLeaveNothingOpen) {
  auto service = NewService();
  auto l = StreamListener::Listen(*service, SocketAddress::Ipv4Loopback(0));
  ASSERT_TRUE(l.ok());
  const SocketAddress taken = (*l)->local_addresses()[0];
  auto again = StreamListener::Listen(*service, taken);
  EXPECT_EQ(io::StatusErrno(again.status()), EADDRINUSE) << again.status();
  EXPECT_NE(again.status().message().find(taken.ToString()), std::string::npos);

  ListenerOptions reuse;
  reuse.reuse_port = true;
  auto p1 = StreamListener::Listen(*service, SocketAddress::Ipv4Loopback(0), reuse);
  ASSERT_TRUE(p1.ok()) << p1.status();
  auto p2 = StreamListener::Listen(*service, (*p1)->local_addresses()[0], reuse);
  EXPECT_TRUE(p2.ok()) << p2.status();  // SO_REUSEPORT: one per loop

  EXPECT_FALSE(StreamListener::Listen(*service, SocketAddress()).ok());
  EXPECT_FALSE(
      StreamListener::Listen(*service, absl::Span<const SocketAddress>()).ok());
  Connections conns;
  ASSERT_TRUE((*l)->StartAccepting(Collect(conns)).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition((*l)->StartAccepting(Collect(conns))));
  EXPECT_EQ(service->metrics().registrations, 3u);  // one per socket
}

}  // namespace
}  // namespace net
}  // namespace kqio
