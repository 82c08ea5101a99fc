// Regression tests from a review of the file server's core (connection,
// worker, server).  In-process: FileServer on an ephemeral port, spoken to
// with the blocking test client.  Each test names the defect it guards.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fileserver/server.h"
#include "fileserver/testing/http_client.h"
#include "fileserver/testing/test_files.h"
#include "gtest/gtest.h"
#include "io/io_service.h"
#include "net/socket_address.h"

namespace kqio {
namespace fileserver {
namespace {

using testing::ConnectOptions;
using testing::HttpClient;
using testing::HttpResponse;
using testing::ReadOptions;

constexpr uint64_t kBigSize = 32 << 20;

std::string MakeRoot() {
  absl::StatusOr<std::string> root = testing::MakeTempDir("review");
  EXPECT_TRUE(root.ok()) << root.status();
  EXPECT_TRUE(testing::WriteFile(*root + "/hello.txt", "hello\n").ok());
  EXPECT_TRUE(testing::MakeDir(*root + "/sub").ok());
  EXPECT_TRUE(testing::WriteFile(*root + "/sub/index.html", "<p>sub</p>").ok());
  EXPECT_TRUE(testing::WritePatternFile(*root + "/big.bin", kBigSize).ok());
  return *root;
}

ServerOptions BaseOptions(const std::string& root) {
  ServerOptions o;
  o.root = root;
  o.address = net::SocketAddress::Ipv4Loopback(0);
  o.threads = 1;
  return o;
}

std::unique_ptr<FileServer> StartServer(ServerOptions o) {
  auto server = FileServer::Create(std::move(o));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  (*server)->Start();
  return *std::move(server);
}

std::unique_ptr<HttpClient> ConnectTo(const FileServer& server,
                                      const ConnectOptions& o = {}) {
  auto c = HttpClient::Connect("127.0.0.1", server.address().port(), o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// connection.cc ProcessInput: while the body of the previous request is
// being discarded no deadline is armed (ClearDeadline in SendHead's
// completion; the keep-alive SetDeadline is only reached with discard_ == 0).
// A client that declares a body and never sends it holds the connection
// (and a slot of max_connections) forever.
TEST(ServerReviewTest, AnnouncedButMissingBodyIsTimedOut) {
  ServerOptions o = BaseOptions(MakeRoot());
  o.header_timeout = absl::Milliseconds(300);
  o.keepalive_timeout = absl::Milliseconds(300);
  std::unique_ptr<FileServer> server = StartServer(o);
  ASSERT_NE(server, nullptr);
  for (absl::string_view method : {"GET", "POST"}) {
    std::unique_ptr<HttpClient> c = ConnectTo(*server);
    ASSERT_NE(c, nullptr);
    ASSERT_TRUE(c->Send(HttpClient::Request(method, "/hello.txt",
                                            "Content-Length: 1000\r\n"))
                    .ok());
    absl::StatusOr<HttpResponse> r = c->ReadResponse();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, method == "GET" ? 200 : 405);
    // Every timeout is 300 ms (linger: 2 s); the body never comes.
    EXPECT_TRUE(c->WaitForClose(absl::Seconds(5)).ok())
        << method << ": the connection is still open 5 s later";
  }
}

// connection_respond.cc Redirect: Location is built from raw_path, which
// keeps the "//" that ParseTarget collapses, so "//sub" answers
// "Location: //sub/", a network-path reference: the browser goes to the
// host "sub" (an open redirect to any name a directory of the root has).
TEST(ServerReviewTest, DirectoryRedirectStaysOnThisHost) {
  std::unique_ptr<FileServer> server = StartServer(BaseOptions(MakeRoot()));
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> c = ConnectTo(*server);
  ASSERT_NE(c, nullptr);
  absl::StatusOr<HttpResponse> r = c->Get("//sub");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 301);
  EXPECT_FALSE(absl::StartsWith(r->Header("Location"), "//"))
      << "Location: " << r->Header("Location");
}

// connection.cc: bytes_sent_ is reset in HandleRequest only, so a response
// that has no parsed request (400 from the parser, 408, 431) after a served
// keep-alive request also counts the previous response's bytes, in the
// access log and in kqio_http_sent_bytes_total.
TEST(ServerReviewTest, ErrorAfterKeepAliveRequestCountsItsOwnBytes) {
  const std::string root = MakeRoot();
  ServerOptions o = BaseOptions(root);
  o.access_log = root + "/../review_access.log";
  std::unique_ptr<FileServer> server = StartServer(o);
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> a = ConnectTo(*server);
  std::unique_ptr<HttpClient> b = ConnectTo(*server);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Get("/big.bin", "Range: bytes=0-9999\r\n").ok());
  for (HttpClient* c : {a.get(), b.get()}) {
    ASSERT_TRUE(c->Send("BAD\r\n\r\n").ok());
    absl::StatusOr<HttpResponse> r = c->ReadResponse();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 400);
  }
  server.reset();  // flushes the log
  FILE* f = fopen(o.access_log.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::vector<std::string> sizes;  // of the "-" (unparsed) requests
  char line[4096];
  while (fgets(line, sizeof(line), f) != nullptr) {
    absl::string_view l = line;
    size_t at = l.find("\"-\" 400 ");
    if (at != absl::string_view::npos) {
      l.remove_prefix(at + 8);
      sizes.emplace_back(l.substr(0, l.find(' ')));
    }
  }
  fclose(f);
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], sizes[1]) << "the same 400 logged with two sizes";
}

// worker.cc Init: only worker 0 handles SIGINT/SIGTERM.  A worker with no
// connections stops at the first signal, so when worker 0 has none (the
// kernel spreads connections over the SO_REUSEPORT listeners) nobody reads
// the second signal and the promised abort waits for shutdown_timeout.
// Several servers with 4 loops: one stalled download lands off worker 0 in
// all but (1/4)^4 of the runs.
TEST(ServerReviewTest, SecondSignalAbortsWhateverLoopHoldsTheDownload) {
  ASSERT_TRUE(io::BlockSignals({SIGINT, SIGTERM}).ok());
  const std::string root = MakeRoot();
  for (int trial = 0; trial < 4; ++trial) {
    ServerOptions o = BaseOptions(root);
    o.threads = 4;
    o.handle_signals = true;
    o.shutdown_timeout = absl::Seconds(6);
    std::unique_ptr<FileServer> server = StartServer(o);
    ASSERT_NE(server, nullptr);
    ConnectOptions slow;
    slow.receive_buffer = 64 * 1024;
    std::unique_ptr<HttpClient> download = ConnectTo(*server, slow);
    ASSERT_NE(download, nullptr);
    ASSERT_TRUE(download->Send(HttpClient::Request("GET", "/big.bin")).ok());
    // The head has arrived: the response is in flight, and stalls since
    // the client reads nothing more.
    ASSERT_TRUE(download->WaitForData(absl::Seconds(10)).value_or(false));

    ASSERT_EQ(kill(getpid(), SIGINT), 0);
    // The first signal has been taken once new connections are refused.
    bool refused = false;
    for (absl::Time end = absl::Now() + absl::Seconds(10);
         !refused && absl::Now() < end;) {
      auto late = HttpClient::Connect("127.0.0.1", server->address().port());
      refused = absl::IsUnavailable(late.status());
      if (!refused) absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_TRUE(refused);
    ASSERT_EQ(kill(getpid(), SIGINT), 0);
    const absl::Time start = absl::Now();
    server->Wait();
    const absl::Duration took = absl::Now() - start;
    // A second signal nobody took stays pending: drop it before the next
    // server, whose signalfd would read it at once.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, nullptr, &zero) == SIGINT) {
    }
    EXPECT_LT(took, absl::Seconds(3))
        << "trial " << trial << ": the second SIGINT did not abort the "
        << "download; Wait() took " << took;
    server.reset();
  }
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
