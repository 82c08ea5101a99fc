// End-to-end: hostile and malformed requests against the real
// kqio_fileserver binary.  Whatever the spelling, a request never gets a
// byte from outside the root or from a dot-file: traversal ("..", encoded,
// with encoded separators or backslashes), NUL bytes, symlinks leading out
// of the root; and a malformed or oversized head gets its status
// (400/413/414/431/501/505) and a closed connection.  In-tree symlinks still
// work.  The server must survive all of it and exit 0 at the end.
#include <signal.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
// Every file that must never be served contains this.
constexpr char kSecret[] = "SECRET";

class AttackTest : public SharedServerTest {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::string> root = MakeTempDir("root");
    absl::StatusOr<std::string> outside = MakeTempDir("outside");
    absl::Status s = root.ok() ? outside.status() : root.status();
    auto step = [&s](absl::Status next) {
      if (s.ok()) s = std::move(next);
    };
    if (s.ok()) {
      const std::string& r = *root;
      step(WriteFile(r + "/hello.txt", kHello));
      step(MakeDir(r + "/dir"));
      step(WriteFile(r + "/dir/a.txt", "a\n"));
      step(WriteFile(r + "/.secret", "SECRET dot-file\n"));
      step(WriteFile(r + "/dir/.hidden", "SECRET hidden\n"));
      step(MakeDir(r + "/.git"));
      step(WriteFile(r + "/.git/config", "SECRET git\n"));
      step(WriteFile(*outside + "/secret.txt", "SECRET outside\n"));
      // In-tree symlinks: allowed.
      step(MakeSymlink("hello.txt", r + "/alias.txt"));
      step(MakeSymlink("dir", r + "/aliasdir"));
      step(MakeSymlink("../hello.txt", r + "/dir/up.txt"));
      // Out of the tree: refused.
      step(MakeSymlink("/etc/passwd", r + "/passwd"));
      step(MakeSymlink(*outside, r + "/outdir"));
      step(MakeSymlink(*outside + "/secret.txt", r + "/outabs.txt"));
      std::string name = outside->substr(outside->rfind('/') + 1);
      step(MakeSymlink("../" + name + "/secret.txt", r + "/outrel.txt"));
      step(MakeSymlink("../../" + name + "/secret.txt", r + "/dir/outrel2.txt"));
      step(MakeSymlink("/", r + "/slash"));
      step(MakeSymlink("loop", r + "/loop"));
      step(MakeSymlink("missing", r + "/dangling"));
    }
    StartSharedServer(s, root.value_or(""), {"--threads=2"});
  }

  void TearDown() override {
    SharedServerTest::TearDown();
    // And it still serves.
    if (server_ != nullptr) {
      EXPECT_EQ(Send(HttpClient::Request("GET", "/hello.txt")).body, kHello);
    }
  }

  // `request` (raw bytes) on a new connection; its response (status 0 on
  // failure, reported).  With `expect_close`, also checks that the response
  // says "Connection: close" and that the server then closes.
  static HttpResponse Send(const std::string& request, bool expect_close = false) {
    std::unique_ptr<HttpClient> client = Connect();
    if (client == nullptr) return {};
    absl::Status sent = client->Send(request);
    absl::StatusOr<HttpResponse> response = client->ReadResponse();
    if (!response.ok()) {
      ADD_FAILURE() << "\"" << absl::CHexEscape(request.substr(0, 120))
                    << "\": send: " << sent << ", read: " << response.status()
                    << "\n" << server_->Diagnostics();
      return {};
    }
    EXPECT_FALSE(absl::StrContains(response->body, kSecret))
        << absl::CHexEscape(request.substr(0, 120));
    if (expect_close) {
      EXPECT_TRUE(response->Closes()) << absl::CHexEscape(request.substr(0, 120));
      absl::Status closed = client->WaitForClose(absl::Seconds(10));
      EXPECT_TRUE(closed.ok()) << absl::CHexEscape(request.substr(0, 120)) << ": "
                               << closed;
    }
    return *std::move(response);
  }

  static HttpResponse Get(absl::string_view target) {
    return Send(HttpClient::Request("GET", target));
  }
};

TEST_F(AttackTest, TraversalAndEncodingTricksAre400AndClose) {
  for (const char* target : {
           "/../x", "/../hello.txt", "/..", "/dir/../hello.txt", "/dir/..",
           "/%2e%2e/x", "/%2E%2E/hello.txt", "/.%2e/hello.txt", "/%2e./hello.txt",
           "/a/..%2fx", "/dir%2fa.txt", "/dir%2Fa.txt", "/..%2f..%2fetc%2fpasswd",
           "/%00", "/hello.txt%00", "/hello.txt%00.html",
           "/..%5chello.txt", "/dir%5ca.txt", "/dir\\a.txt", "/..\\hello.txt",
           "/%zz", "/%4", "/hello.txt%",
           "http://127.0.0.1/../hello.txt", "hello.txt", "*",
           "/../../../../../../etc/passwd",
       }) {
    HttpResponse r = Send(HttpClient::Request("GET", target), /*expect_close=*/true);
    EXPECT_EQ(r.status, 400) << target;
  }
}

TEST_F(AttackTest, DotFilesAre403WhetherOrNotTheyExist) {
  for (const char* target : {"/.secret", "/dir/.hidden", "/.git/config", "/.git/",
                             "/.nothere", "/%2esecret", "/dir/./.hidden",
                             "/aliasdir/.hidden"}) {
    EXPECT_EQ(Get(target).status, 403) << target;
  }
}

TEST_F(AttackTest, SymlinksOutOfTheRootNeverServeTheirTarget) {
  for (const char* target : {"/passwd", "/outdir/secret.txt", "/outdir/",
                             "/outdir", "/outabs.txt", "/outrel.txt",
                             "/dir/outrel2.txt", "/slash/etc/passwd", "/slash/"}) {
    HttpResponse r = Get(target);
    EXPECT_TRUE(r.status == 403 || r.status == 404) << target << ": " << r.status;
    EXPECT_FALSE(absl::StrContains(r.body, "root:")) << target;
  }
  // Overlong UTF-8 for "..": just bytes in a name, not a dot segment.
  HttpResponse overlong = Get("/%c0%ae%c0%ae/hello.txt");
  EXPECT_TRUE(overlong.status == 400 || overlong.status == 404) << overlong.status;
  // A loop and a dangling link: refused or missing, never a crash or 200.
  for (const char* target : {"/loop", "/dangling"}) {
    HttpResponse r = Get(target);
    EXPECT_TRUE(r.status >= 400 && r.status < 600) << target << ": " << r.status;
  }
}

TEST_F(AttackTest, SymlinksWithinTheRootAreServed) {
  EXPECT_EQ(Get("/alias.txt").body, kHello);
  EXPECT_EQ(Get("/aliasdir/a.txt").body, "a\n");
  EXPECT_EQ(Get("/dir/up.txt").body, kHello);
}

TEST_F(AttackTest, MalformedHeadsAre400AndClose) {
  const std::vector<std::string> requests = {
      "GARBAGE\r\n\r\n",
      "GET\r\n\r\n",
      "GET /hello.txt\r\n\r\n",
      "GET  /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /hello.txt HTTP/1.1 extra\r\nHost: x\r\n\r\n",
      "GET /hello.txt HTTX/1.1\r\nHost: x\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nName : v\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nA: b\r\n folded\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
      std::string("GET /hello.txt HTTP/1.1\r\nHost: x\r\nA: b") + '\0' + "c\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      // The smuggling case: both framings.
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      "GET /hello.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "GET /hello.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
  };
  for (const std::string& request : requests) {
    HttpResponse r = Send(request, /*expect_close=*/true);
    EXPECT_EQ(r.status, 400) << absl::CHexEscape(request);
  }
}

TEST_F(AttackTest, OversizedRequestsGetTheirStatusAndClose) {
  // 413: a declared body over 1 MiB (never sent).
  HttpResponse body = Send(HttpClient::Request("GET", "/hello.txt",
                                               "Content-Length: 2000000\r\n"),
                           /*expect_close=*/true);
  EXPECT_EQ(body.status, 413);

  // 414: a target over --max_target_bytes (8192).
  HttpResponse target = Send(
      HttpClient::Request("GET", "/" + std::string(9000, 'a')), /*expect_close=*/true);
  EXPECT_EQ(target.status, 414);

  // 431: one field, or the field section, over --max_header_bytes (16384);
  // or too many fields.
  HttpResponse field = Send(
      HttpClient::Request("GET", "/hello.txt",
                          "X-Big: " + std::string(17000, 'b') + "\r\n"),
      /*expect_close=*/true);
  EXPECT_EQ(field.status, 431);
  std::string many;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&many, "X-F", i, ": v\r\n");
  HttpResponse fields = Send(HttpClient::Request("GET", "/hello.txt", many),
                             /*expect_close=*/true);
  EXPECT_EQ(fields.status, 431);

  // Just under the limits: served.
  EXPECT_EQ(Send(HttpClient::Request("GET", "/hello.txt",
                                     "X-Big: " + std::string(15000, 'b') + "\r\n"))
                .body,
            kHello);
}

TEST_F(AttackTest, UnsupportedVersionsAndCodings) {
  for (const char* version : {"HTTP/2.0", "HTTP/3.0", "HTTP/0.9"}) {
    HttpResponse r = Send(absl::StrCat("GET /hello.txt ", version, "\r\nHost: x\r\n\r\n"),
                          /*expect_close=*/true);
    EXPECT_EQ(r.status, 505) << version;
  }
  HttpResponse coding = Send(
      HttpClient::Request("GET", "/hello.txt", "Transfer-Encoding: foo, chunked\r\n"),
      /*expect_close=*/true);
  EXPECT_EQ(coding.status, 501);
}

// A bad request in the middle of a pipelined batch: the responses before it
// arrive in order, then its error, then the close; nothing after it is
// answered (the server cannot know where the next request would start).
TEST_F(AttackTest, ErrorInAPipelinedBatchEndsTheConnection) {
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client
                  ->Send(HttpClient::Request("GET", "/hello.txt") +
                         HttpClient::Request("GET", "/../x") +
                         HttpClient::Request("GET", "/dir/a.txt"))
                  .ok());
  absl::StatusOr<std::vector<HttpResponse>> r = client->ReadResponses({false, false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].body, kHello);
  EXPECT_EQ((*r)[1].status, 400);
  EXPECT_TRUE((*r)[1].Closes());
  EXPECT_TRUE(client->WaitForClose(absl::Seconds(10)).ok());
}

}  // namespace
}  // namespace testing
}  // namespace fileserver
}  // namespace kqio
