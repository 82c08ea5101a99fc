#include "net/socket_address.h"

#include <netinet/in.h>
#include <sys/un.h>

#include <string>

#include "gtest/gtest.h"

namespace kqio {
namespace net {
namespace {

TEST(SocketAddressTest, ParsesNumericAddresses) {
  auto v4 = SocketAddress::Parse("127.0.0.1", 80);
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->family(), AF_INET);
  EXPECT_EQ(v4->port(), 80);
  EXPECT_EQ(v4->ToString(), "127.0.0.1:80");
  EXPECT_EQ(*v4, SocketAddress::Ipv4Loopback(80));

  auto v6 = SocketAddress::Parse("[::1]", 443);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->family(), AF_INET6);
  EXPECT_EQ(v6->ToString(), "[::1]:443");
  EXPECT_EQ(*v6, SocketAddress::Ipv6Loopback(443));
  EXPECT_EQ(SocketAddress::Parse("::", 1)->ToString(), "[::]:1");
  EXPECT_EQ(SocketAddress::Ipv4Any(9).ToString(), "0.0.0.0:9");
  EXPECT_EQ(SocketAddress::Parse("fe80::1%7", 5)->ToString(), "[fe80::1%7]:5");

  EXPECT_FALSE(SocketAddress::Parse("localhost", 80).ok());
  EXPECT_FALSE(SocketAddress::Parse("1.2.3", 80).ok());
  EXPECT_FALSE(SocketAddress::Parse("", 80).ok());
  EXPECT_FALSE(SocketAddress::Parse("fe80::1%no-such-if0", 80).ok());
}

TEST(SocketAddressTest, PortsAndCopies) {
  SocketAddress a = SocketAddress::Ipv6Loopback(0).WithPort(8080);
  EXPECT_EQ(a.port(), 8080);
  SocketAddress b = SocketAddress::FromSockaddr(a.data(), a.size());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, SocketAddress::Ipv6Loopback(8081));
  EXPECT_EQ(SocketAddress().ToString(), "unspecified");
  EXPECT_EQ(SocketAddress().size(), 0u);
}

TEST(SocketAddressTest, UnixPathsMustFitSunPath) {
  auto u = SocketAddress::Unix("/tmp/kqio.sock");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->family(), AF_UNIX);
  EXPECT_EQ(u->unix_path(), "/tmp/kqio.sock");
  EXPECT_EQ(u->ToString(), "unix:/tmp/kqio.sock");
  EXPECT_EQ(u->port(), 0);
  EXPECT_EQ(u->WithPort(5), *u);

  struct sockaddr_un sun;
  const std::string longest(sizeof(sun.sun_path) - 1, 'x');
  EXPECT_TRUE(SocketAddress::Unix(longest).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(
      SocketAddress::Unix(longest + "x").status()));
  EXPECT_FALSE(SocketAddress::Unix("").ok());
}

}  // namespace
}  // namespace net
}  // namespace kqio
