#include "net/udp_socket.h"

#include <errno.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "io/errno_status.h"
#include "io/io_service.h"
#include "net/internal/test_util.h"
#include "net/socket_address.h"

namespace kqio {
namespace net {
namespace {

using testing::NewService;
using testing::RunUntil;

struct Received {
  bool done = false;
  absl::Status status;
  size_t bytes = 0;
  SocketAddress from;
};

ReceiveCallback Record(Received& r) {
  return [&r](absl::Status s, size_t n, const SocketAddress& from) {
    r.done = true;
    r.status = std::move(s);
    r.bytes = n;
    r.from = from;
  };
}

TEST(UdpSocketTest, SendToAndReceiveFromBothWays) {
  auto service = NewService();
  auto a = UdpSocket::Bind(*service, SocketAddress::Ipv4Loopback(0));
  auto b = UdpSocket::Bind(*service, SocketAddress::Ipv4Loopback(0));
  ASSERT_TRUE(a.ok() && b.ok());
  const SocketAddress a_addr = *(*a)->local_address();
  const SocketAddress b_addr = *(*b)->local_address();
  char buf[64];
  Received at_b;
  (*b)->ReceiveFrom(absl::MakeSpan(buf), Record(at_b));  // pending first
  bool sent = false;
  (*a)->SendTo("ping", b_addr, [&](absl::Status s, size_t n) {
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(n, 4u);
    sent = true;
  });
  EXPECT_FALSE(sent);
  ASSERT_TRUE(RunUntil(*service, [&] { return sent && at_b.done; }));
  ASSERT_TRUE(at_b.status.ok()) << at_b.status;
  EXPECT_EQ(std::string(buf, at_b.bytes), "ping");
  EXPECT_EQ(at_b.from, a_addr);

  (*b)->SendTo("pong", at_b.from, [](absl::Status s, size_t) { EXPECT_TRUE(s.ok()); });
  char abuf[64];
  Received at_a;
  (*a)->ReceiveFrom(absl::MakeSpan(abuf), Record(at_a));
  ASSERT_TRUE(RunUntil(*service, [&] { return at_a.done; }));
  EXPECT_EQ(std::string(abuf, at_a.bytes), "pong");
  EXPECT_EQ(at_a.from, b_addr);
}

TEST(UdpSocketTest, DatagramsStayWholeOrReportTruncation) {
  auto service = NewService();
  auto rx = UdpSocket::Bind(*service, SocketAddress::Ipv4Loopback(0));
  auto tx = UdpSocket::Open(*service, AF_INET);
  ASSERT_TRUE(rx.ok() && tx.ok());
  const SocketAddress to = *(*rx)->local_address();
  int sent = 0;
  for (const char* d : {"one", "two", "a-longer-datagram"}) {
    (*tx)->SendTo(d, to, [&](absl::Status s, size_t) {
      EXPECT_TRUE(s.ok());
      ++sent;
    });
  }
  char b1[8], b2[8], b3[4];
  Received r1, r2, r3;
  (*rx)->ReceiveFrom(absl::MakeSpan(b1), Record(r1));
  (*rx)->ReceiveFrom(absl::MakeSpan(b2), Record(r2));
  (*rx)->ReceiveFrom(absl::MakeSpan(b3), Record(r3));
  ASSERT_TRUE(RunUntil(*service, [&] { return sent == 3 && r3.done; }));
  EXPECT_EQ(std::string(b1, r1.bytes), "one");
  EXPECT_EQ(std::string(b2, r2.bytes), "two");
  EXPECT_TRUE(absl::IsOutOfRange(r3.status)) << r3.status;
  EXPECT_EQ(std::string(b3, r3.bytes), "a-lo");
  EXPECT_EQ(r1.from.port(), (*tx)->local_address()->port());
}

TEST(UdpSocketTest, CloseCancelsAPendingReceive) {
  auto service = NewService();
  auto s = UdpSocket::Bind(*service, SocketAddress::Ipv4Loopback(0));
  ASSERT_TRUE(s.ok());
  char buf[8];
  Received r;
  (*s)->ReceiveFrom(absl::MakeSpan(buf), Record(r));
  testing::RunFor(*service, absl::Milliseconds(5));
  EXPECT_FALSE(r.done);
  s->reset();
  ASSERT_TRUE(RunUntil(*service, [&] { return r.done; }));
  EXPECT_TRUE(absl::IsCancelled(r.status));
  EXPECT_EQ(io::StatusErrno(r.status), ECANCELED);
}

TEST(UdpSocketTest, Ipv6AndBadArguments) {
  auto service = NewService();
  EXPECT_TRUE(absl::IsInvalidArgument(UdpSocket::Open(*service, AF_UNIX).status()));
  auto a = UdpSocket::Bind(*service, SocketAddress::Ipv6Loopback(0));
  if (!a.ok()) GTEST_SKIP() << "no IPv6 loopback: " << a.status();
  auto b = UdpSocket::Bind(*service, SocketAddress::Ipv6Loopback(0));
  ASSERT_TRUE(b.ok());
  char buf[8];
  Received r;
  (*b)->ReceiveFrom(absl::MakeSpan(buf), Record(r));
  (*a)->SendTo("v6", *(*b)->local_address(), [](absl::Status s, size_t) {
    EXPECT_TRUE(s.ok()) << s;
  });
  ASSERT_TRUE(RunUntil(*service, [&] { return r.done; }));
  EXPECT_EQ(std::string(buf, r.bytes), "v6");
  EXPECT_EQ(r.from.family(), AF_INET6);
}

}  // namespace
}  // namespace net
}  // namespace kqio
