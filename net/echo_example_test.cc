// The echo server of net/net.h's header comment, compiled and run as it is
// written there (port 0 instead of 7777), against a client.
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "net/internal/test_util.h"
#include "net/net.h"

namespace kqio {
namespace {

// --- As in net/net.h.
struct Conn { std::unique_ptr<net::TcpStream> s; char buf[4096]; };
void Echo(std::shared_ptr<Conn> c) {
  c->s->Read(absl::MakeSpan(c->buf), [c](absl::Status st, size_t n) {
    if (!st.ok() || n == 0) return;  // error or EOF: last ref closes it
    c->s->WriteAll({c->buf, n}, [c](absl::Status st, size_t) {
      if (st.ok()) Echo(c);
    });
  });
}
// ---

TEST(EchoExampleTest, EchoesAndClosesOnEof) {
  auto service = *io::IoService::Create();
  auto listener = *net::TcpListener::Listen(
      *service, net::SocketAddress::Ipv4Loopback(0));
  (void)listener->StartAccepting([](auto conn) {
    if (conn.ok()) Echo(std::make_shared<Conn>(Conn{*std::move(conn), {}}));
  });
  auto client = net::TcpStream::Create(*service);
  client->Connect(listener->local_addresses()[0], absl::Seconds(5),
                  [](absl::Status s) { ASSERT_TRUE(s.ok()) << s; });
  const std::string msg(10000, 'e');
  std::string back(msg.size(), '\0');
  bool done = false;
  client->WriteAll(msg, [](absl::Status s, size_t) { EXPECT_TRUE(s.ok()); });
  client->ReadExactly(absl::MakeSpan(back), [&](absl::Status s, size_t) {
    EXPECT_TRUE(s.ok()) << s;
    done = true;
  });
  ASSERT_TRUE(net::testing::RunUntil(*service, [&] { return done; }));
  EXPECT_EQ(back, msg);
  EXPECT_EQ(listener->open_connections(), 1u);
  client.reset();  // EOF: the server's last reference goes, closing it
  ASSERT_TRUE(net::testing::RunUntil(
      *service, [&] { return listener->open_connections() == 0; }));
}

}  // namespace
}  // namespace kqio
