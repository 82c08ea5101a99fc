// Issue 5's load test: 1,000 concurrent connections echoing through one loop.
#include <sys/resource.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "io/io_service.h"
#include "net/internal/test_util.h"
#include "net/socket_address.h"
#include "net/stream_listener.h"
#include "net/stream_socket.h"

namespace kqio {
namespace net {
namespace {

constexpr int kConnections = 1000;

// Server side: read some, write it back, until EOF.
struct ServerConn {
  std::unique_ptr<StreamSocket> s;
  char buf[2048];
};
void Echo(std::shared_ptr<ServerConn> c) {
  c->s->Read(absl::MakeSpan(c->buf), [c](absl::Status st, size_t n) {
    if (!st.ok() || n == 0) return;  // the last reference closes it
    c->s->WriteAll(absl::string_view(c->buf, n), [c](absl::Status st, size_t) {
      if (st.ok()) Echo(c);
    });
  });
}

struct Client {
  std::unique_ptr<StreamSocket> s;
  std::string sent;
  std::string got;
  bool ok = false;
  bool done = false;
};

TEST(EchoTest, ThousandConcurrentConnections) {
  struct rlimit lim;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &lim), 0);
  const rlim_t want = 2 * kConnections + 64;
  if (lim.rlim_cur < want) {
    struct rlimit raised = lim;
    raised.rlim_cur = std::min<rlim_t>(lim.rlim_max, want);
    setrlimit(RLIMIT_NOFILE, &raised);
    getrlimit(RLIMIT_NOFILE, &raised);
    if (raised.rlim_cur < want) {
      GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << lim.rlim_max << " < " << want;
    }
  }
  auto service = testing::NewService();
  ListenerOptions options;
  options.backlog = 2 * kConnections;
  auto l = StreamListener::Listen(*service, SocketAddress::Ipv4Loopback(0), options);
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_TRUE((*l)->StartAccepting([](absl::StatusOr<std::unique_ptr<StreamSocket>> c) {
                  if (!c.ok()) return;  // Cancelled when the listener closes
                  auto conn = std::make_shared<ServerConn>();
                  conn->s = *std::move(c);
                  Echo(conn);
                }).ok());
  const SocketAddress addr = (*l)->local_addresses()[0];

  std::vector<Client> clients(kConnections);
  int finished = 0;
  for (int i = 0; i < kConnections; ++i) {
    Client& c = clients[i];
    c.s = StreamSocket::Create(*service);
    c.sent = absl::StrCat("connection ", i, ":", std::string(100 + (i * 37) % 3000, 'a' + i % 26));
    c.got.resize(c.sent.size());
    c.s->Connect(addr, absl::Seconds(20), [&c, &finished](absl::Status st) {
      if (!st.ok()) {
        ADD_FAILURE() << st;
        c.done = true;
        ++finished;
        return;
      }
      c.s->WriteAll(c.sent, [](absl::Status st, size_t) { EXPECT_TRUE(st.ok()) << st; });
      c.s->ReadExactly(absl::MakeSpan(c.got), [&c, &finished](absl::Status st, size_t) {
        c.ok = st.ok() && c.got == c.sent;
        c.done = true;
        ++finished;
        c.s->Close();  // the server sees EOF and drops its side
      });
    });
  }
  ASSERT_TRUE(testing::RunUntil(*service, [&] { return finished == kConnections; },
                                absl::Seconds(120)));
  int ok = 0;
  for (const Client& c : clients) ok += c.ok ? 1 : 0;
  EXPECT_EQ(ok, kConnections);
  ASSERT_TRUE(testing::RunUntil(*service, [&] { return (*l)->open_connections() == 0; }));
  EXPECT_EQ((*l)->stats().accepted, static_cast<uint64_t>(kConnections));
  EXPECT_EQ(service->metrics().op(io::OpClass::kConnect).completed,
            static_cast<uint64_t>(kConnections));
  (*l)->Close();
  service->Run();  // nothing left: returns
  EXPECT_EQ(service->metrics().tracked_operations, 0u);
  setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace
}  // namespace net
}  // namespace kqio
