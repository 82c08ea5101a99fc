// End-to-end: the real kqio_fileserver binary under the clients a server
// must bound — slowloris (header timeout), idle keep-alive connections,
// readers that stop reading (send timeout), more connections than allowed —
// and its lifecycle: graceful shutdown with a 100 MiB download in flight,
// the shutdown deadline, start-up failures, IPv6.
//
// Each test starts its own server with the flags it exercises.  Timing
// bounds are wide (seconds) because the binary may run under ASan or TSan on
// a loaded two-core machine; they still fail a server that never times out.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fileserver/testing/e2e_fixture.h"
#include "fileserver/testing/http_client.h"
#include "fileserver/testing/server_process.h"
#include "fileserver/testing/test_files.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace testing {
namespace {

constexpr char kHello[] = "hello, world\n";
constexpr uint64_t kBigSize = 100ull << 20;  // 100 MiB
constexpr uint64_t kStallAt = 1 << 20;       // where slow downloads pause
// The slack allowed past a timeout before the server counts as late.
constexpr absl::Duration kSlack = absl::Seconds(3);

class LimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::string> root = MakeTempDir("root");
    absl::Status s = root.status();
    if (s.ok()) s = WriteFile(*root + "/hello.txt", kHello);
    if (s.ok()) s = WritePatternFile(*root + "/big.bin", kBigSize);
    if (!s.ok()) {
      *setup_error_ = s.ToString();
      return;
    }
    *root_ = *root;
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_->empty()) << *setup_error_;
  }

  // A server on this suite's root; null (and a failure) if it did not start.
  static std::unique_ptr<ServerProcess> StartServer(std::vector<std::string> flags) {
    flags.insert(flags.begin(), "--root=" + *root_);
    return StartServerOrFail(std::move(flags));
  }

  // A connection reading through a `receive_buffer`-byte socket buffer that
  // has asked for the 100 MiB file; null (and a failure) if refused.
  static std::unique_ptr<HttpClient> RequestBigFile(const ServerProcess& server,
                                                    int receive_buffer) {
    ConnectOptions options;
    options.receive_buffer = receive_buffer;
    std::unique_ptr<HttpClient> client = ConnectOrFail(server, options);
    if (client != nullptr &&
        !client->Send(HttpClient::Request("GET", "/big.bin")).ok()) {
      ADD_FAILURE() << "could not send the request";
      return nullptr;
    }
    return client;
  }

  // Reads the response to RequestBigFile(), the body checked by `verifier`;
  // once kStallAt bytes have arrived, runs `stall` (once), inside the read,
  // so that the client reads nothing until it returns.
  static absl::StatusOr<HttpResponse> ReadStallingOnce(
      HttpClient& client, PatternVerifier& verifier,
      const std::function<void()>& stall) {
    bool stalled = false;
    ReadOptions options;
    options.body_sink = [&](absl::string_view bytes) {
      verifier.Feed(bytes);
      if (stalled || verifier.bytes() < kStallAt) return;
      stalled = true;
      stall();
    };
    return client.ReadResponse(options);
  }

  // A new connection gets the small file.
  static void ExpectServed(const ServerProcess& server) {
    std::unique_ptr<HttpClient> client = ConnectOrFail(server);
    if (client == nullptr) return;
    ASSERT_TRUE(BodyIs(*client, "/hello.txt", kHello)) << server.Diagnostics();
  }

  // Waits for the server to end `client`'s connection, accepting a 408
  // first.  Returns the status seen (408, or 0 for a bare close), or -1 if
  // the connection was still open after `timeout`.
  static int AwaitCloseOr408(HttpClient* client, absl::Duration timeout) {
    absl::StatusOr<bool> data = client->WaitForData(timeout);
    if (!data.ok()) return absl::IsOutOfRange(data.status()) ? 0 : -1;
    if (!*data) return -1;
    absl::StatusOr<HttpResponse> r = client->ReadResponse();
    if (!r.ok()) {
      ADD_FAILURE() << "not a response: " << r.status();
      return -1;
    }
    EXPECT_EQ(r->status, 408);
    EXPECT_TRUE(client->WaitForClose(absl::Seconds(10)).ok());
    return r->status;
  }

  static std::string* const root_;
  static std::string* const setup_error_;
};

std::string* const LimitsTest::root_ = new std::string;
std::string* const LimitsTest::setup_error_ = new std::string;

// A client sending its head one byte every 200 ms is cut off at
// --header_timeout, while another client on the same (only) loop is served.
TEST_F(LimitsTest, SlowlorisIsCutAtTheHeaderTimeout) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--threads=1", "--header_timeout=1s"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> slow = ConnectOrFail(*server);
  ASSERT_NE(slow, nullptr);
  const std::string head =
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(200, 'z');
  const absl::Time start = absl::Now();
  int outcome = -1;  // 408, 0 (closed without a response), -1 (still open)
  for (size_t i = 0; i < head.size() && outcome < 0; ++i) {
    absl::Status sent = slow->Send(head.substr(i, 1));
    if (absl::IsOutOfRange(sent)) {
      outcome = AwaitCloseOr408(slow.get(), absl::Seconds(1));
      if (outcome < 0) outcome = 0;  // reset: the response, if any, is lost
      break;
    }
    ASSERT_TRUE(sent.ok()) << sent;
    if (i == 1) ExpectServed(*server);  // meanwhile, others are served
    absl::StatusOr<bool> data = slow->WaitForData(absl::Milliseconds(200));
    if (!data.ok() || *data) outcome = AwaitCloseOr408(slow.get(), absl::Seconds(10));
  }
  const absl::Duration elapsed = absl::Now() - start;
  std::cout << "slowloris: " << (outcome == 408 ? "408 then close" : "closed")
            << " after " << elapsed << std::endl;
  ASSERT_GE(outcome, 0) << "still open after " << elapsed;
  EXPECT_GE(elapsed, absl::Milliseconds(800)) << "cut before --header_timeout";
  EXPECT_LE(elapsed, absl::Seconds(1) + kSlack);
  ExpectServed(*server);
  ExpectCleanExit(*server);
}

// A connection that never sends a byte is closed at the header timeout too.
TEST_F(LimitsTest, SilentConnectionIsClosedAtTheHeaderTimeout) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--threads=1", "--header_timeout=1s"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> silent = ConnectOrFail(*server);
  ASSERT_NE(silent, nullptr);
  const absl::Time start = absl::Now();
  int outcome = AwaitCloseOr408(silent.get(), absl::Seconds(1) + kSlack);
  const absl::Duration elapsed = absl::Now() - start;
  std::cout << "silent connection: "
            << (outcome == 408 ? "408 then close" : outcome == 0 ? "closed" : "open")
            << " after " << elapsed << std::endl;
  EXPECT_GE(outcome, 0) << "still open after " << elapsed;
  EXPECT_GE(elapsed, absl::Milliseconds(800));
  ExpectCleanExit(*server);
}

// An idle keep-alive connection closes after --keepalive_timeout; one that
// keeps sending requests more often than that stays open.
TEST_F(LimitsTest, IdleKeepAliveConnectionsClose) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--threads=1", "--keepalive_timeout=1s"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> idle = ConnectOrFail(*server);
  std::unique_ptr<HttpClient> busy = ConnectOrFail(*server);
  ASSERT_TRUE(idle != nullptr && busy != nullptr);
  absl::StatusOr<HttpResponse> first = idle->Get("/hello.txt");
  ASSERT_TRUE(first.ok()) << first.status();
  const absl::Time start = absl::Now();
  // The busy client's requests 300 ms apart, over three timeouts.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(BodyIs(*busy, "/hello.txt", kHello)) << "request " << i;
    absl::SleepFor(absl::Milliseconds(300));
  }
  absl::Status closed = idle->WaitForClose(kSlack);
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_TRUE(closed.ok()) << closed;
  EXPECT_GE(elapsed, absl::Milliseconds(800));
  ExpectCleanExit(*server);
}

// --max_connections=2: two idle connections held, the third gets 503 and a
// close; once one of the two closes, a new connection is served.
TEST_F(LimitsTest, ConnectionLimit) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--threads=1", "--max_connections=2"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> a = ConnectOrFail(*server);
  std::unique_ptr<HttpClient> b = ConnectOrFail(*server);
  ASSERT_TRUE(a != nullptr && b != nullptr);
  // Served, so certainly accepted and counted; then they stay idle.
  ASSERT_TRUE(a->Get("/hello.txt").ok());
  ASSERT_TRUE(b->Get("/hello.txt").ok());

  std::unique_ptr<HttpClient> c = ConnectOrFail(*server);
  ASSERT_NE(c, nullptr);
  // The server may answer at accept() or after reading a request.
  absl::StatusOr<bool> early = c->WaitForData(absl::Seconds(2));
  ASSERT_TRUE(early.ok()) << "closed without a 503: " << early.status();
  if (!*early) {
    ASSERT_TRUE(c->Send(HttpClient::Request("GET", "/hello.txt")).ok());
  }
  absl::StatusOr<HttpResponse> refused = c->ReadResponse();
  ASSERT_TRUE(refused.ok()) << refused.status() << "\n" << server->Diagnostics();
  EXPECT_EQ(refused->status, 503);
  EXPECT_TRUE(refused->Closes());
  EXPECT_TRUE(c->WaitForClose(absl::Seconds(10)).ok());
  std::cout << "503 sent " << (*early ? "at accept" : "after the request") << std::endl;

  // The two held connections are unaffected.
  ASSERT_TRUE(BodyIs(*a, "/hello.txt", kHello));

  // The server learns of the close asynchronously: retry until served.
  b->Close();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int status = 0;
  while (status != 200 && absl::Now() < deadline) {
    std::unique_ptr<HttpClient> d = ConnectOrFail(*server);
    ASSERT_NE(d, nullptr);
    absl::StatusOr<HttpResponse> r = d->Get("/hello.txt");
    status = r.ok() ? r->status : 0;
    if (status != 200) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(status, 200) << "no connection served after one of the two closed";
  ExpectCleanExit(*server);
}

// A reader that stops reading is disconnected after --send_timeout, and does
// not hold up the loop meanwhile.
TEST_F(LimitsTest, StalledReaderIsCutAfterTheSendTimeout) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--threads=1", "--send_timeout=1s"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> stalled = RequestBigFile(*server, 16 * 1024);
  ASSERT_NE(stalled, nullptr);
  absl::StatusOr<bool> started = stalled->WaitForData(absl::Seconds(30));
  ASSERT_TRUE(started.ok() && *started) << started.status();
  ExpectServed(*server);
  absl::SleepFor(absl::Seconds(1) + kSlack);  // the stall under test
  PatternVerifier verifier;
  absl::StatusOr<HttpResponse> r = stalled->ReadResponse(FeedBodyTo(verifier));
  EXPECT_TRUE(absl::IsDataLoss(r.status()))
      << "expected a truncated body, got: " << r.status();
  EXPECT_LT(verifier.bytes(), kBigSize);
  EXPECT_TRUE(verifier.Check(verifier.bytes()).ok()) << "what arrived is corrupt";
  ExpectServed(*server);
  ExpectCleanExit(*server);
}

// SIGTERM during a 100 MiB download: new connections are refused at once,
// the download completes whole, then the server exits 0.
TEST_F(LimitsTest, GracefulShutdownFinishesTheDownloadInFlight) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--threads=2", "--shutdown_timeout=120s"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> download = RequestBigFile(*server, 64 * 1024);
  ASSERT_NE(download, nullptr);

  PatternVerifier verifier;
  bool signalled = false;
  bool refused = false;
  bool alive_while_stalled = false;
  // The download is provably in flight: the client stops reading here.
  absl::StatusOr<HttpResponse> r = ReadStallingOnce(*download, verifier, [&] {
    signalled = true;
    ASSERT_TRUE(server->Signal(SIGTERM).ok());
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!refused && absl::Now() < deadline) {
      absl::StatusOr<std::unique_ptr<HttpClient>> late =
          HttpClient::Connect("127.0.0.1", server->port());
      refused = absl::IsUnavailable(late.status());
      if (!refused) absl::SleepFor(absl::Milliseconds(20));
    }
    alive_while_stalled = absl::IsDeadlineExceeded(server->Wait(absl::ZeroDuration()).status());
  });
  ASSERT_TRUE(signalled);
  EXPECT_TRUE(refused) << "new connections still accepted 20 s after SIGTERM";
  EXPECT_TRUE(alive_while_stalled) << "exited with a response in flight";
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << server->Diagnostics();
  EXPECT_EQ(r->Header("Content-Length"), absl::StrCat(kBigSize));
  EXPECT_TRUE(verifier.Check(kBigSize).ok()) << verifier.Check(kBigSize);
  // Its response done, the connection closes and the server exits 0.
  EXPECT_TRUE(download->WaitForClose(absl::Seconds(30)).ok());
  absl::StatusOr<int> exit = server->Wait(absl::Seconds(60));
  EXPECT_TRUE(exit.ok() && *exit == 0) << DescribeExit(exit) << "\n"
                                       << server->Diagnostics();
}

// A download that does not finish within --shutdown_timeout is cut, and the
// server still exits 0, promptly.
TEST_F(LimitsTest, ShutdownTimeoutCutsAStalledDownload) {
  std::unique_ptr<ServerProcess> server =
      StartServer({"--threads=1", "--shutdown_timeout=1s"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> download = RequestBigFile(*server, 64 * 1024);
  ASSERT_NE(download, nullptr);
  PatternVerifier verifier;
  bool signalled = false;
  absl::StatusOr<HttpResponse> r = ReadStallingOnce(*download, verifier, [&] {
    signalled = true;
    // Stalled here until the server has exited.
    ExpectCleanExit(*server, SIGTERM, absl::Seconds(1) + kSlack + kSlack);
  });
  ASSERT_TRUE(signalled);
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_LT(verifier.bytes(), kBigSize);
}

// Idle keep-alive connections do not hold up shutdown (SIGINT too).
TEST_F(LimitsTest, IdleConnectionsDoNotDelayShutdown) {
  std::unique_ptr<ServerProcess> server = StartServer({"--threads=2"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> idle = ConnectOrFail(*server);
  ASSERT_NE(idle, nullptr);
  ASSERT_TRUE(idle->Get("/hello.txt").ok());
  // Well under the default 30 s --shutdown_timeout.
  ExpectCleanExit(*server, SIGINT, absl::Seconds(10));
  EXPECT_TRUE(idle->WaitForClose(absl::Seconds(5)).ok());
}

TEST_F(LimitsTest, StartupFailuresExit1WithAMessage) {
  // A port in use (by a socket without SO_REUSEPORT).
  int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(busy, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(bind(busy, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(listen(busy, 1), 0);
  ASSERT_EQ(getsockname(busy, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);

  const std::vector<std::vector<std::string>> cases = {
      {"--root=" + *root_ + "/no/such/dir"},
      {"--root=" + *root_ + "/hello.txt"},  // not a directory
      {"--root=" + *root_, absl::StrCat("--port=", port)},
      {"--root=" + *root_, "--threads=many"},
  };
  for (const std::vector<std::string>& flags : cases) {
    SCOPED_TRACE(flags.back());
    absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Spawn(flags);
    ASSERT_TRUE(server.ok()) << server.status();
    absl::StatusOr<int> exit = (*server)->Wait(absl::Seconds(60));
    EXPECT_TRUE(exit.ok() && *exit == 1) << DescribeExit(exit) << "\n"
                                         << (*server)->Diagnostics();
    // The reader thread may still be draining: wait for the pipes' EOF.
    EXPECT_FALSE((*server)->WaitForServing(absl::Seconds(10)).ok());
    EXPECT_FALSE((*server)->Stderr().empty()) << "no message on stderr";
    EXPECT_FALSE(absl::StrContains((*server)->Stdout(), "kqio_fileserver: serving"));
  }
  close(busy);
}

TEST_F(LimitsTest, ServesOnIpv6Loopback) {
  int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 address = {};
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  bool have_ipv6 = probe >= 0 && bind(probe, reinterpret_cast<sockaddr*>(&address),
                                      sizeof(address)) == 0;
  if (probe >= 0) close(probe);
  if (!have_ipv6) GTEST_SKIP() << "no ::1 here";
  std::unique_ptr<ServerProcess> server = StartServer({"--address=::1", "--threads=1"});
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(absl::StrContains(server->serving_line(),
                                absl::StrCat("http://[::1]:", server->port(), "/")))
      << server->serving_line();
  absl::StatusOr<std::unique_ptr<HttpClient>> client =
      HttpClient::Connect("::1", server->port());
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE(BodyIs(**client, "/hello.txt", kHello));
  ExpectCleanExit(*server);
}

}  // namespace
}  // namespace testing
}  // namespace fileserver
}  // namespace kqio
