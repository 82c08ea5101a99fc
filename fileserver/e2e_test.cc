// End-to-end: the real kqio_fileserver binary on an ephemeral port, spoken
// to over loopback by a blocking HTTP client.  This file: what a well-behaved
// client sees — the start-up line, bodies and their fields, directories,
// ranges, conditional requests, keep-alive, pipelining, a 100 MiB file
// checked byte by byte, each file engine, and the optional features.
// Hostile input is in e2e_attack_test.cc; timeouts, limits and shutdown in
// e2e_limits_test.cc.
//
// One server (two loops) serves the whole suite; it must still be running
// after every test, and exit 0 on SIGTERM at the end (under ASan that also
// means no leak).
#include <signal.h>

#include <iostream>
#include <memory>
#include <utility>
#include <string>
#include <vector>

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
constexpr char kIndex[] = "<!doctype html><title>home</title>\n";
constexpr char kDirIndex[] = "<!doctype html><title>dir</title>\n";
constexpr uint64_t kBigSize = 100ull << 20;    // 100 MiB
constexpr uint64_t kMediumSize = 8ull << 20;   // above any socket buffer
constexpr uint64_t kSendfileMin = 64 * 1024;   // --sendfile_min_bytes default

// The files every test here reads.
absl::Status BuildRoot(const std::string& root) {
  absl::Status s;
  auto step = [&s](absl::Status next) {
    if (s.ok()) s = std::move(next);
  };
  step(WriteFile(root + "/index.html", kIndex));
  step(WriteFile(root + "/hello.txt", kHello));
  step(WriteFile(root + "/with space.txt", "spaced\n"));
  step(WriteFile(root + "/data.json", "{}\n"));
  step(WriteFile(root + "/empty.txt", ""));
  step(WriteFile(root + "/.dotfile", "dot\n"));
  step(MakeDir(root + "/dir"));
  step(WriteFile(root + "/dir/index.html", kDirIndex));
  step(WriteFile(root + "/dir/a.txt", "a\n"));
  step(MakeDir(root + "/nodir"));
  step(WriteFile(root + "/nodir/b.txt", "b\n"));
  step(WritePatternFile(root + "/big.bin", kBigSize));
  step(WritePatternFile(root + "/medium.bin", kMediumSize));
  step(WritePatternFile(root + "/below.bin", kSendfileMin - 1));
  step(WritePatternFile(root + "/at.bin", kSendfileMin));
  return s;
}

class FileServerTest : public SharedServerTest {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::string> root = MakeTempDir("root");
    StartSharedServer(root.ok() ? BuildRoot(*root) : root.status(),
                      root.value_or(""), {"--threads=2"});
  }

  // One request on a new connection; status 0 if it failed (reported).
  static HttpResponse Fetch(absl::string_view method, absl::string_view target,
                            absl::string_view headers = "") {
    std::unique_ptr<HttpClient> client = Connect();
    if (client == nullptr) return {};
    absl::StatusOr<HttpResponse> response =
        client->RoundTrip(method, target, headers);
    if (!response.ok()) {
      ADD_FAILURE() << method << " " << target << ": " << response.status()
                    << "\n" << server_->Diagnostics();
      return {};
    }
    return *std::move(response);
  }
  static HttpResponse Get(absl::string_view target,
                          absl::string_view headers = "") {
    return Fetch("GET", target, headers);
  }
};

TEST_F(FileServerTest, StartupLineNamesRootAddressThreadsAndEngines) {
  const std::string& line = server_->serving_line();
  EXPECT_TRUE(absl::StartsWith(
      line, absl::StrCat("kqio_fileserver: serving ", *root_,
                         " on http://127.0.0.1:", server_->port(),
                         "/ threads=2 engines: ")))
      << line;
  for (const char* op : {" open=", " stat=", " read=", " close="}) {
    EXPECT_TRUE(absl::StrContains(line, op)) << op << " missing: " << line;
  }
}

TEST_F(FileServerTest, GetSendsTheFileWithItsFields) {
  HttpResponse r = Get("/hello.txt");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.version, "HTTP/1.1");
  EXPECT_EQ(r.body, kHello);
  EXPECT_EQ(r.Header("Content-Length"), "13");
  EXPECT_TRUE(absl::StartsWith(r.Header("Content-Type"), "text/plain"))
      << r.Header("Content-Type");
  EXPECT_EQ(r.Header("Accept-Ranges"), "bytes");
  EXPECT_TRUE(absl::EndsWith(r.Header("Last-Modified"), " GMT"))
      << r.Header("Last-Modified");
  // Strong: quoted, no W/ prefix.
  std::string etag = r.Header("ETag");
  EXPECT_TRUE(etag.size() > 2 && etag.front() == '"' && etag.back() == '"') << etag;
  EXPECT_FALSE(r.Closes());

  EXPECT_TRUE(absl::StartsWith(Get("/index.html").Header("Content-Type"), "text/html"));
  EXPECT_TRUE(absl::StartsWith(Get("/data.json").Header("Content-Type"),
                               "application/json"));
  EXPECT_EQ(Get("/medium.bin", "Range: bytes=0-0\r\n").Header("Content-Type"),
            "application/octet-stream");
  EXPECT_EQ(Get("/with%20space.txt").body, "spaced\n");

  HttpResponse empty = Get("/empty.txt");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.Header("Content-Length"), "0");
  EXPECT_EQ(empty.body, "");
}

TEST_F(FileServerTest, MissingFilesAre404) {
  // The last one names a file as if it were a directory (ENOTDIR): still
  // "not found", as nginx answers.
  for (const char* target : {"/nope.txt", "/dir/nope", "/nope/", "/hello.txt/x"}) {
    EXPECT_EQ(Get(target).status, 404) << target;
  }
}

TEST_F(FileServerTest, HeadHasTheFieldsOfGetAndNoBody) {
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  // HEAD of the 100 MiB file then a GET on the same connection: if the HEAD
  // carried a body, the second response would not parse.
  ASSERT_TRUE(client->Send(HttpClient::Request("HEAD", "/big.bin") +
                           HttpClient::Request("GET", "/hello.txt") +
                           HttpClient::Request("HEAD", "/hello.txt")).ok());
  absl::StatusOr<std::vector<HttpResponse>> r =
      client->ReadResponses({true, false, true});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].status, 200);
  EXPECT_EQ((*r)[0].Header("Content-Length"), absl::StrCat(kBigSize));
  EXPECT_EQ((*r)[1].body, kHello);
  for (const char* field : {"Content-Length", "Content-Type", "ETag",
                            "Last-Modified", "Accept-Ranges"}) {
    EXPECT_EQ((*r)[2].Header(field), (*r)[1].Header(field)) << field;
  }
  // Nothing more arrives: no stray body bytes after the last HEAD.
  absl::StatusOr<bool> extra = client->WaitForData(absl::Milliseconds(300));
  ASSERT_TRUE(extra.ok()) << extra.status();
  EXPECT_FALSE(*extra);
}

TEST_F(FileServerTest, DirectoriesServeIndexRedirectOrRefuse) {
  EXPECT_EQ(Get("/").body, kIndex);
  HttpResponse dir = Get("/dir/");
  EXPECT_EQ(dir.status, 200);
  EXPECT_EQ(dir.body, kDirIndex);

  HttpResponse redirect = Get("/dir");
  EXPECT_EQ(redirect.status, 301);
  EXPECT_TRUE(absl::EndsWith(redirect.Header("Location"), "/dir/"))
      << redirect.Header("Location");

  // No index.html and no --directory_listing: 403, as nginx.
  EXPECT_EQ(Get("/nodir/").status, 403);
  EXPECT_EQ(Get("/nodir").status, 301);
}

TEST_F(FileServerTest, OtherMethodsAre405WithAllow) {
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"}) {
    HttpResponse r = Fetch(method, "/hello.txt");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_TRUE(absl::StrContains(r.Header("Allow"), "GET") &&
                absl::StrContains(r.Header("Allow"), "HEAD"))
        << method << ": Allow: " << r.Header("Allow");
  }
  // A small body is skipped: the next request on the connection is served.
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(absl::StrCat(
      "POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
      HttpClient::Request("GET", "/hello.txt"))).ok());
  absl::StatusOr<HttpResponse> post = client->ReadResponse();
  ASSERT_TRUE(post.ok()) << post.status();
  EXPECT_EQ(post->status, 405);
  if (!post->Closes()) {
    absl::StatusOr<HttpResponse> get = client->ReadResponse();
    ASSERT_TRUE(get.ok()) << get.status();
    EXPECT_EQ(get->body, kHello);
  }
}

TEST_F(FileServerTest, OneRangeIs206) {
  HttpResponse r = Get("/hello.txt", "Range: bytes=2-5\r\n");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, "llo,");
  EXPECT_EQ(r.Header("Content-Range"), "bytes 2-5/13");
  EXPECT_EQ(r.Header("Content-Length"), "4");

  EXPECT_EQ(Get("/hello.txt", "Range: bytes=7-\r\n").body, "world\n");
  EXPECT_EQ(Get("/hello.txt", "Range: bytes=-3\r\n").body, "ld\n");
  HttpResponse clamped = Get("/hello.txt", "Range: bytes=10-99\r\n");
  EXPECT_EQ(clamped.Header("Content-Range"), "bytes 10-12/13");
  EXPECT_EQ(clamped.body, "ld\n");

  // A megabyte from the middle of the large file (sendfile at an offset).
  constexpr uint64_t kFirst = 50000000, kCount = 1000000;
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(HttpClient::Request(
      "GET", "/big.bin",
      absl::StrCat("Range: bytes=", kFirst, "-", kFirst + kCount - 1, "\r\n"))).ok());
  PatternVerifier verifier(kFirst);
  absl::StatusOr<HttpResponse> big = client->ReadResponse(FeedBodyTo(verifier));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->status, 206);
  EXPECT_EQ(big->Header("Content-Range"),
            absl::StrCat("bytes ", kFirst, "-", kFirst + kCount - 1, "/", kBigSize));
  EXPECT_TRUE(verifier.Check(kCount).ok()) << verifier.Check(kCount);
}

// A connection reuses its buffers: a range after the whole file on the same
// connection must still send only the range (and frame it right).
TEST_F(FileServerTest, RangeAfterTheWholeFileOnOneConnection) {
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  for (const char* range : {"", "Range: bytes=0-4\r\n", "", "Range: bytes=-3\r\n",
                            "Range: bytes=7-\r\n"}) {
    SCOPED_TRACE(range);
    absl::StatusOr<HttpResponse> r = client->Get("/hello.txt", range);
    ASSERT_TRUE(r.ok()) << r.status();
    std::string expected = *range == '\0' ? kHello
                           : absl::StrContains(range, "0-4") ? "hello"
                           : absl::StrContains(range, "-3")  ? "ld\n"
                                                             : "world\n";
    EXPECT_EQ(r->body, expected);
    // Nothing beyond Content-Length.
    absl::StatusOr<bool> extra = client->WaitForData(absl::Milliseconds(100));
    ASSERT_TRUE(extra.ok()) << extra.status();
    ASSERT_FALSE(*extra) << "bytes past the response's Content-Length";
  }
}

TEST_F(FileServerTest, UnsatisfiableRangeIs416AndIgnoredRangesGiveTheWholeFile) {
  HttpResponse r = Get("/hello.txt", "Range: bytes=100-200\r\n");
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.Header("Content-Range"), "bytes */13");

  // Several ranges, another unit, a malformed one: 200 and the whole file.
  for (const char* range : {"bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=x"}) {
    HttpResponse whole = Get("/hello.txt", absl::StrCat("Range: ", range, "\r\n"));
    EXPECT_EQ(whole.status, 200) << range;
    EXPECT_EQ(whole.body, kHello) << range;
  }
  // HEAD ignores Range (RFC 9110 14.2).
  EXPECT_EQ(Fetch("HEAD", "/hello.txt", "Range: bytes=0-1\r\n").status, 200);
}

TEST_F(FileServerTest, ConditionalRequests) {
  HttpResponse first = Get("/hello.txt");
  const std::string etag = first.Header("ETag");
  const std::string date = first.Header("Last-Modified");
  ASSERT_FALSE(etag.empty());
  ASSERT_FALSE(date.empty());

  HttpResponse not_modified = Get("/hello.txt", absl::StrCat("If-None-Match: ", etag, "\r\n"));
  EXPECT_EQ(not_modified.status, 304);
  EXPECT_EQ(not_modified.body, "");
  EXPECT_EQ(not_modified.Header("ETag"), etag);
  EXPECT_EQ(Get("/hello.txt", "If-None-Match: \"other\", " + etag + "\r\n").status, 304);
  EXPECT_EQ(Get("/hello.txt", "If-None-Match: *\r\n").status, 304);
  EXPECT_EQ(Get("/hello.txt", "If-None-Match: \"other\"\r\n").status, 200);
  EXPECT_EQ(Fetch("HEAD", "/hello.txt", "If-None-Match: " + etag + "\r\n").status, 304);

  EXPECT_EQ(Get("/hello.txt", "If-Modified-Since: " + date + "\r\n").status, 304);
  EXPECT_EQ(Get("/hello.txt", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n").body,
            kHello);
  // If-None-Match wins over If-Modified-Since.
  EXPECT_EQ(Get("/hello.txt", "If-None-Match: \"other\"\r\nIf-Modified-Since: " + date +
                                  "\r\n").status,
            200);

  HttpResponse failed = Get("/hello.txt", "If-Match: \"nope\"\r\n");
  EXPECT_EQ(failed.status, 412);
  EXPECT_EQ(Get("/hello.txt", "If-Match: " + etag + "\r\n").body, kHello);
  EXPECT_EQ(Get("/hello.txt", "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n").status,
            412);

  // If-Range: the range if the validator holds, else the whole file.
  EXPECT_EQ(Get("/hello.txt", "Range: bytes=0-4\r\nIf-Range: " + etag + "\r\n").status, 206);
  HttpResponse stale = Get("/hello.txt", "Range: bytes=0-4\r\nIf-Range: \"old\"\r\n");
  EXPECT_EQ(stale.status, 200);
  EXPECT_EQ(stale.body, kHello);
}

TEST_F(FileServerTest, HundredRequestsOnOneConnection) {
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 100; ++i) {
    SCOPED_TRACE(i);
    bool head = i % 5 == 4;
    const char* target = i % 3 == 0 ? "/hello.txt" : i % 3 == 1 ? "/dir/a.txt" : "/";
    absl::StatusOr<HttpResponse> r = client->RoundTrip(head ? "HEAD" : "GET", target);
    ASSERT_TRUE(r.ok()) << r.status() << "\n" << server_->Diagnostics();
    EXPECT_EQ(r->status, 200);
    EXPECT_FALSE(r->Closes());
    const char* expected = i % 3 == 0 ? kHello : i % 3 == 1 ? "a\n" : kIndex;
    EXPECT_EQ(r->body, head ? "" : expected);
  }
}

TEST_F(FileServerTest, TenPipelinedRequestsAnswerInOrder) {
  struct Expect {
    std::string request;
    bool head;
    int status;
    std::string body;
  };
  const std::vector<Expect> batch = {
      {HttpClient::Request("GET", "/hello.txt"), false, 200, kHello},
      {HttpClient::Request("GET", "/dir/a.txt"), false, 200, "a\n"},
      {HttpClient::Request("HEAD", "/index.html"), true, 200, ""},
      {HttpClient::Request("GET", "/nope"), false, 404, "*"},
      {HttpClient::Request("GET", "/hello.txt", "Range: bytes=0-4\r\n"), false, 206, "hello"},
      {HttpClient::Request("GET", "/dir"), false, 301, "*"},
      {HttpClient::Request("GET", "/"), false, 200, kIndex},
      {HttpClient::Request("GET", "/hello.txt", "If-None-Match: *\r\n"), false, 304, ""},
      {HttpClient::Request("GET", "/nodir/b.txt"), false, 200, "b\n"},
      {HttpClient::Request("GET", "/dir/"), false, 200, kDirIndex},
  };
  std::string all;
  std::vector<bool> heads;
  for (const Expect& e : batch) {
    all += e.request;
    heads.push_back(e.head);
  }
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(all).ok());  // one write
  absl::StatusOr<std::vector<HttpResponse>> r = client->ReadResponses(heads);
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << server_->Diagnostics();
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ((*r)[i].status, batch[i].status) << "response " << i;
    if (batch[i].body != "*") {
      EXPECT_EQ((*r)[i].body, batch[i].body) << "response " << i;
    }
  }
}

TEST_F(FileServerTest, LargeBodyThenSmallOnePipelined) {
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(HttpClient::Request("GET", "/medium.bin") +
                           HttpClient::Request("GET", "/hello.txt")).ok());
  PatternVerifier verifier;
  absl::StatusOr<HttpResponse> large = client->ReadResponse(FeedBodyTo(verifier));
  ASSERT_TRUE(large.ok()) << large.status();
  EXPECT_TRUE(verifier.Check(kMediumSize).ok()) << verifier.Check(kMediumSize);
  absl::StatusOr<HttpResponse> small = client->ReadResponse();
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->body, kHello);
}

TEST_F(FileServerTest, BodiesEitherSideOfTheSendfileThreshold) {
  for (const auto& file : {std::make_pair("/below.bin", kSendfileMin - 1),
                           std::make_pair("/at.bin", kSendfileMin)}) {
    HttpResponse r = Get(file.first);
    PatternVerifier verifier;
    verifier.Feed(r.body);
    EXPECT_EQ(r.Header("Content-Length"), absl::StrCat(file.second)) << file.first;
    EXPECT_TRUE(verifier.Check(file.second).ok()) << file.first << ": "
                                                  << verifier.Check(file.second);
  }
}

TEST_F(FileServerTest, HundredMebibyteFileArrivesWhole) {
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send(HttpClient::Request("GET", "/big.bin")).ok());
  PatternVerifier verifier;
  absl::StatusOr<HttpResponse> r = client->ReadResponse(FeedBodyTo(verifier));
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << server_->Diagnostics();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("Content-Length"), absl::StrCat(kBigSize));
  EXPECT_TRUE(verifier.Check(kBigSize).ok()) << verifier.Check(kBigSize);
  // The connection is still usable afterwards.
  EXPECT_TRUE(BodyIs(*client, "/hello.txt", kHello));
}

TEST_F(FileServerTest, Http10ClosesUnlessAskedToKeepAlive) {
  std::unique_ptr<HttpClient> client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("GET /hello.txt HTTP/1.0\r\n\r\n").ok());
  absl::StatusOr<HttpResponse> r = client->ReadResponse();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, kHello);
  EXPECT_TRUE(client->WaitForClose(absl::Seconds(10)).ok());

  client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").ok());
  r = client->ReadResponse();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(absl::EqualsIgnoreCase(r->Header("Connection"), "keep-alive"))
      << r->Header("Connection");
  ASSERT_TRUE(client->Send("GET /dir/a.txt HTTP/1.0\r\n\r\n").ok());
  r = client->ReadResponse();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "a\n");
}

// Each engine serves the same bytes (uring may fall back where it is not
// available; the start-up line says which engine each operation got).
TEST_F(FileServerTest, EveryFileEngineServesTheSameBytes) {
  for (const char* engine : {"uring", "posix", "pool"}) {
    SCOPED_TRACE(engine);
    std::unique_ptr<ServerProcess> server = StartServerOrFail(
        {"--root=" + *root_, "--threads=1", absl::StrCat("--file_engine=", engine),
         "--sendfile_min_bytes=1000000000"});  // every body through aio reads
    ASSERT_NE(server, nullptr);
    std::cout << server->serving_line() << std::endl;
    std::unique_ptr<HttpClient> client = ConnectOrFail(*server);
    ASSERT_NE(client, nullptr);
    ASSERT_TRUE(BodyIs(*client, "/hello.txt", kHello)) << server->Diagnostics();
    PatternVerifier verifier;
    ASSERT_TRUE(client->Send(HttpClient::Request("GET", "/medium.bin")).ok());
    absl::StatusOr<HttpResponse> medium = client->ReadResponse(FeedBodyTo(verifier));
    ASSERT_TRUE(medium.ok()) << medium.status() << server->Diagnostics();
    EXPECT_TRUE(verifier.Check(kMediumSize).ok()) << verifier.Check(kMediumSize);
    ExpectCleanExit(*server);
  }
}

TEST_F(FileServerTest, OptionalListingDotFilesAndMetrics) {
  std::unique_ptr<ServerProcess> server = StartServerOrFail(
      {"--root=" + *root_, "--threads=1", "--directory_listing", "--dot_files",
       "--metrics_path=/-/metrics"});
  ASSERT_NE(server, nullptr);
  std::unique_ptr<HttpClient> client = ConnectOrFail(*server);
  ASSERT_NE(client, nullptr);

  absl::StatusOr<HttpResponse> listing = client->Get("/nodir/");
  ASSERT_TRUE(listing.ok()) << listing.status();
  EXPECT_EQ(listing->status, 200);
  EXPECT_TRUE(absl::StartsWith(listing->Header("Content-Type"), "text/html"));
  EXPECT_TRUE(absl::StrContains(listing->body, "b.txt")) << listing->body;

  absl::StatusOr<HttpResponse> index = client->Get("/dir/");  // index.html wins
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->body, kDirIndex);

  absl::StatusOr<HttpResponse> dot = client->Get("/.dotfile");
  ASSERT_TRUE(dot.ok()) << dot.status();
  EXPECT_EQ(dot->status, 200);
  EXPECT_EQ(dot->body, "dot\n");

  absl::StatusOr<HttpResponse> metrics = client->Get("/-/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status, 200);
  EXPECT_TRUE(absl::StartsWith(metrics->Header("Content-Type"), "text/plain"))
      << metrics->Header("Content-Type");
  EXPECT_TRUE(absl::StrContains(metrics->body, "# TYPE ")) << metrics->body;

  // And without the flags (the suite's server): 403 for the same names.
  EXPECT_EQ(Get("/.dotfile").status, 403);
  EXPECT_EQ(Get("/-/metrics").status, 404);

  ExpectCleanExit(*server);
}

}  // namespace
}  // namespace testing
}  // namespace fileserver
}  // namespace kqio
