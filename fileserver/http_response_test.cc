#include "fileserver/http_response.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

const absl::Time kNow = absl::FromCivil(
    absl::CivilSecond(1994, 11, 6, 8, 49, 37), absl::UTCTimeZone());

TEST(ContentTypeTest, ByExtension) {
  EXPECT_EQ(ContentTypeForPath("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeForPath("a/b/INDEX.HTM"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeForPath("s.css"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeForPath("app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeForPath("m.mjs"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeForPath("d.json"), "application/json");
  EXPECT_EQ(ContentTypeForPath("r.txt"), "text/plain; charset=utf-8");
  EXPECT_EQ(ContentTypeForPath("f.xml"), "text/xml; charset=utf-8");
  EXPECT_EQ(ContentTypeForPath("i.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeForPath("i.png"), "image/png");
  EXPECT_EQ(ContentTypeForPath("i.jpg"), "image/jpeg");
  EXPECT_EQ(ContentTypeForPath("i.JPEG"), "image/jpeg");
  EXPECT_EQ(ContentTypeForPath("i.gif"), "image/gif");
  EXPECT_EQ(ContentTypeForPath("i.webp"), "image/webp");
  EXPECT_EQ(ContentTypeForPath("i.avif"), "image/avif");
  EXPECT_EQ(ContentTypeForPath("favicon.ico"), "image/x-icon");
  EXPECT_EQ(ContentTypeForPath("m.wasm"), "application/wasm");
  EXPECT_EQ(ContentTypeForPath("d.pdf"), "application/pdf");
  EXPECT_EQ(ContentTypeForPath("a.zip"), "application/zip");
  EXPECT_EQ(ContentTypeForPath("a.tar.gz"), "application/gzip");
  EXPECT_EQ(ContentTypeForPath("v.mp4"), "video/mp4");
  EXPECT_EQ(ContentTypeForPath("v.webm"), "video/webm");
  EXPECT_EQ(ContentTypeForPath("f.woff"), "font/woff");
  EXPECT_EQ(ContentTypeForPath("f.woff2"), "font/woff2");
  EXPECT_EQ(ContentTypeForPath("f.ttf"), "font/ttf");
  EXPECT_EQ(ContentTypeForPath("f.otf"), "font/otf");
}

TEST(ContentTypeTest, UnknownIsOctetStream) {
  for (const char* path : {"", "README", "a.exe", "x.", "dir.html/file",
                           ".bashrc", "a.html.bak", "a.htmlx"}) {
    EXPECT_EQ(ContentTypeForPath(path), "application/octet-stream") << path;
  }
}

TEST(ResponseTest, ETagIsStrongAndChangesWithEachInput) {
  const std::string tag = MakeETag(0x1a, 100, 1'700'000'000'123'456'789);
  EXPECT_EQ(tag, "\"1a-64-17979cfe3d85cd15\"");
  EXPECT_NE(tag, MakeETag(0x1b, 100, 1'700'000'000'123'456'789));
  EXPECT_NE(tag, MakeETag(0x1a, 101, 1'700'000'000'123'456'789));
  EXPECT_NE(tag, MakeETag(0x1a, 100, 1'700'000'000'123'456'790));
  EXPECT_EQ(MakeETag(1, 0, -1), "\"1-0-ffffffffffffffff\"");
}

TEST(ResponseTest, FullHead) {
  ResponseWriter writer("kqio-test");
  ResponseHead head;
  head.status = 200;
  head.content_type = "text/html; charset=utf-8";
  head.content_length = 1234;
  head.last_modified = kNow - absl::Hours(24);
  head.etag = "\"1-2-3\"";
  head.accept_ranges = true;
  std::string out = "previous";
  writer.AppendHead(head, kNow, &out);
  EXPECT_EQ(out,
            "previous"
            "HTTP/1.1 200 OK\r\n"
            "Server: kqio-test\r\n"
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            "Content-Length: 1234\r\n"
            "Last-Modified: Sat, 05 Nov 1994 08:49:37 GMT\r\n"
            "ETag: \"1-2-3\"\r\n"
            "Accept-Ranges: bytes\r\n"
            "\r\n");
}

TEST(ResponseTest, PartialContentAndConnection) {
  ResponseWriter writer;
  ResponseHead head;
  head.status = 206;
  head.content_length = 10;
  head.has_content_range = true;
  head.range_first = 5;
  head.range_last = 14;
  head.complete_length = 100;
  head.close = true;
  std::string out;
  writer.AppendHead(head, kNow, &out);
  EXPECT_TRUE(absl::StartsWith(out, "HTTP/1.1 206 Partial Content\r\n"));
  EXPECT_TRUE(absl::StrContains(out, "\r\nContent-Range: bytes 5-14/100\r\n"));
  EXPECT_TRUE(absl::StrContains(out, "\r\nConnection: close\r\n"));
  EXPECT_TRUE(absl::EndsWith(out, "\r\n\r\n"));

  head = ResponseHead();
  head.http10_keep_alive = true;
  out.clear();
  writer.AppendHead(head, kNow, &out);
  EXPECT_TRUE(absl::StrContains(out, "\r\nConnection: keep-alive\r\n"));
}

TEST(ResponseTest, NotModifiedHasNoContentLength) {
  ResponseWriter writer;
  ResponseHead head;
  head.status = 304;
  head.content_length = 1234;  // ignored for 304
  head.etag = "\"x\"";
  std::string out;
  writer.AppendHead(head, kNow, &out);
  EXPECT_TRUE(absl::StartsWith(out, "HTTP/1.1 304 Not Modified\r\n"));
  EXPECT_FALSE(absl::StrContains(out, "Content-Length"));
  EXPECT_TRUE(absl::StrContains(out, "ETag: \"x\"\r\n"));
}

TEST(ResponseTest, CannedErrors) {
  ResponseWriter writer;
  for (int status :
       {400, 403, 404, 405, 408, 412, 413, 414, 416, 431, 500, 501, 503, 505}) {
    ResponseHead head;
    head.status = status;
    head.close = true;
    std::string out;
    writer.AppendCannedResponse(head, /*head_only=*/false, kNow, &out);
    const absl::string_view body = CannedBody(status);
    const std::string line =
        std::to_string(status) + " " + std::string(ReasonPhrase(status));
    EXPECT_NE(ReasonPhrase(status), "Unknown") << status;
    EXPECT_TRUE(absl::StartsWith(out, "HTTP/1.1 " + line + "\r\n")) << out;
    EXPECT_TRUE(absl::StrContains(body, "<title>" + line + "</title>")) << body;
    EXPECT_TRUE(absl::StrContains(
        out, "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"));
    EXPECT_TRUE(
        absl::EndsWith(out, std::string("\r\n\r\n") + std::string(body)));

    // HEAD: the same head, no body.
    std::string head_only;
    writer.AppendCannedResponse(head, /*head_only=*/true, kNow, &head_only);
    EXPECT_EQ(head_only, out.substr(0, out.size() - body.size()));
  }
}

TEST(ResponseTest, CannedSpecialFields) {
  ResponseWriter writer;
  ResponseHead head;
  head.status = 405;
  std::string out;
  writer.AppendCannedResponse(head, false, kNow, &out);
  EXPECT_TRUE(absl::StrContains(out, "\r\nAllow: GET, HEAD\r\n"));

  head = ResponseHead();
  head.status = 416;
  head.complete_length = 4096;
  out.clear();
  writer.AppendCannedResponse(head, false, kNow, &out);
  EXPECT_TRUE(absl::StrContains(out, "\r\nContent-Range: bytes */4096\r\n"));
}

TEST(ResponseTest, ValuesWithLineBreaksAreDropped) {
  ResponseWriter writer("bad\r\nX-Injected: 1");
  ResponseHead head;
  head.status = 301;
  head.location = "/a\r\nSet-Cookie: x=1";
  head.etag = "\"a\"\n";
  head.content_type = "text/plain";
  std::string out;
  writer.AppendHead(head, kNow, &out);
  EXPECT_FALSE(absl::StrContains(out, "Injected"));
  EXPECT_FALSE(absl::StrContains(out, "Set-Cookie"));
  EXPECT_FALSE(absl::StrContains(out, "ETag"));
  EXPECT_TRUE(absl::StrContains(out, "Server: kqio\r\n"));
  EXPECT_TRUE(absl::StrContains(out, "Content-Type: text/plain\r\n"));
}

TEST(ResponseTest, DateIsCachedPerSecond) {
  ResponseWriter writer;
  std::string a, b, c;
  writer.AppendHead(ResponseHead(), kNow, &a);
  writer.AppendHead(ResponseHead(), kNow + absl::Milliseconds(999), &b);
  writer.AppendHead(ResponseHead(), kNow + absl::Seconds(1), &c);
  EXPECT_EQ(a, b);
  EXPECT_TRUE(absl::StrContains(c, "Date: Sun, 06 Nov 1994 08:49:38 GMT"));
}

TEST(ResponseTest, StatusMapping) {
  EXPECT_EQ(HttpStatusFromStatus(absl::OkStatus()), 200);
  EXPECT_EQ(HttpStatusFromStatus(absl::InvalidArgumentError("")), 400);
  EXPECT_EQ(HttpStatusFromStatus(absl::PermissionDeniedError("")), 403);
  EXPECT_EQ(HttpStatusFromStatus(absl::NotFoundError("")), 404);
  EXPECT_EQ(HttpStatusFromStatus(absl::OutOfRangeError("")), 416);
  EXPECT_EQ(HttpStatusFromStatus(absl::ResourceExhaustedError("")), 503);
  EXPECT_EQ(HttpStatusFromStatus(absl::UnavailableError("")), 503);
  EXPECT_EQ(HttpStatusFromStatus(absl::InternalError("")), 500);
  EXPECT_EQ(HttpStatusFromStatus(absl::CancelledError("")), 500);
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
