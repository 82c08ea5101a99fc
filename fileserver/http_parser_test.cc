#include "fileserver/http_parser.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

using Kind = ParseResult::Kind;

// Everything a caller can observe about one Parse() outcome, as text, so
// that two outcomes compare in one EXPECT_EQ.
std::string Summary(const HttpParser& parser, const ParseResult& r) {
  switch (r.kind) {
    case Kind::kIncomplete:
      return "incomplete";
    case Kind::kError:
      return absl::StrCat("error ", r.status);
    case Kind::kComplete:
      break;
  }
  const HttpRequest& q = parser.request();
  std::string s = absl::StrCat(
      "complete ", r.consumed, " [", q.method, "] [", q.target, "] 1.",
      q.version_minor, " host=[", q.host, "] ka=", q.keep_alive,
      " cl=", q.content_length, " chunked=", q.is_chunked);
  for (const HttpHeader& h : q.headers) {
    absl::StrAppend(&s, " {", h.name, ":", h.value, "}");
  }
  return s;
}

std::string ParseWhole(absl::string_view data,
                       ParserOptions options = ParserOptions()) {
  HttpParser parser(options);
  return Summary(parser, parser.Parse(data));
}

// The bytes arrive split at `split`: the first call may already decide (an
// early error), but never differently from a parse of the whole.
void ExpectSplitInvariant(absl::string_view data,
                          ParserOptions options = ParserOptions()) {
  const std::string whole = ParseWhole(data, options);
  for (size_t split = 0; split <= data.size(); ++split) {
    HttpParser parser(options);
    // A fresh copy each time: the buffer may move between calls.
    std::string first(data.substr(0, split));
    std::string outcome = Summary(parser, parser.Parse(first));
    if (outcome == "incomplete") {
      std::string all(data);
      outcome = Summary(parser, parser.Parse(all));
    }
    ASSERT_EQ(outcome, whole)
        << "split at " << split << " of \"" << absl::CEscape(data) << "\"";
  }
}

// Bytes one at a time, each call with the buffer so far.
std::string ParseByteByByte(absl::string_view data, HttpParser* parser) {
  std::string buffer;
  for (char c : data) {
    buffer.push_back(c);
    const ParseResult r = parser->Parse(buffer);
    if (r.kind != Kind::kIncomplete) return Summary(*parser, r);
  }
  return "incomplete";
}

TEST(HttpParserTest, SimpleGet) {
  const std::string req =
      "GET /hello.txt HTTP/1.1\r\n"
      "User-Agent: curl/7.64.1\r\n"
      "Host: www.example.com\r\n"
      "Accept-Language: en, mi\r\n"
      "\r\n";
  HttpParser parser;
  const ParseResult r = parser.Parse(req);
  ASSERT_EQ(r.kind, Kind::kComplete);
  EXPECT_EQ(r.consumed, req.size());
  const HttpRequest& q = parser.request();
  EXPECT_EQ(q.method, "GET");
  EXPECT_EQ(q.target, "/hello.txt");
  EXPECT_EQ(q.version_minor, 1);
  EXPECT_EQ(q.host, "www.example.com");
  EXPECT_TRUE(q.keep_alive);
  EXPECT_EQ(q.content_length, 0u);
  ASSERT_EQ(q.headers.size(), 3u);
  EXPECT_EQ(q.headers[0].name, "User-Agent");
  EXPECT_EQ(q.headers[0].value, "curl/7.64.1");
  EXPECT_EQ(q.Header("accept-LANGUAGE"), "en, mi");
  EXPECT_EQ(q.Header("missing"), "");
  EXPECT_FALSE(q.HasHeader("missing"));
}

TEST(HttpParserTest, EveryPrefixIsIncomplete) {
  const std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
  for (size_t n = 0; n < req.size(); ++n) {
    HttpParser parser;
    EXPECT_EQ(parser.Parse(req.substr(0, n)).kind, Kind::kIncomplete) << n;
  }
}

TEST(HttpParserTest, ValuesTrimmedNamesCaseInsensitiveRepeatsInOrder) {
  HttpParser parser;
  const std::string req =
      "GET / HTTP/1.1\r\nhOsT:example.com \r\nAccept:  \t text/html\t \r\n"
      "X-Empty:\r\nAccept: image/png\r\nx-multi: a b  c\r\n\r\n";
  ASSERT_EQ(parser.Parse(req).kind, Kind::kComplete);
  const HttpRequest& q = parser.request();
  EXPECT_EQ(q.host, "example.com");
  EXPECT_EQ(q.Header("x-empty"), "");
  EXPECT_TRUE(q.HasHeader("X-EMPTY"));
  EXPECT_EQ(q.HeaderCount("accept"), 2);
  EXPECT_EQ(q.Header("ACCEPT"), "text/html");
  std::string scratch;
  EXPECT_EQ(q.HeaderList("Accept", &scratch), "text/html, image/png");
  EXPECT_EQ(q.HeaderList("Host", &scratch), "example.com");
  EXPECT_EQ(q.Header("X-Multi"), "a b  c");  // inner whitespace kept
}

TEST(HttpParserTest, BareLfLineEndingsAndLeadingEmptyLines) {
  EXPECT_EQ(ParseWhole("GET / HTTP/1.1\nHost: a\n\n"),
            "complete 24 [GET] [/] 1.1 host=[a] ka=1 cl=0 chunked=0 {Host:a}");
  EXPECT_EQ(ParseWhole("\r\n\nGET / HTTP/1.0\r\n\r\n"),
            "complete 21 [GET] [/] 1.0 host=[] ka=0 cl=0 chunked=0");
  std::string many;
  for (int i = 0; i <= HttpParser::kMaxLeadingEmptyLines; ++i) many += "\r\n";
  EXPECT_EQ(ParseWhole(many + "GET / HTTP/1.0\r\n\r\n"), "error 400");
}

TEST(HttpParserTest, KeepAlive) {
  struct Case {
    const char* request;
    bool keep_alive;
  };
  const Case cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n",
       false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: a\r\nConnection: "
       "close\r\n\r\n",
       false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
       false},
  };
  for (const Case& c : cases) {
    HttpParser parser;
    ASSERT_EQ(parser.Parse(c.request).kind, Kind::kComplete) << c.request;
    EXPECT_EQ(parser.request().keep_alive, c.keep_alive) << c.request;
  }
}

TEST(HttpParserTest, AnyTokenIsAMethod) {
  for (const char* method :
       {"GET", "HEAD", "POST", "BREW", "M-SEARCH", "get"}) {
    HttpParser parser;
    const std::string req =
        absl::StrCat(method, " / HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(parser.Parse(req).kind, Kind::kComplete) << method;
    EXPECT_EQ(parser.request().method, method);
  }
}

TEST(HttpParserTest, VersionsAndAbsoluteForm) {
  EXPECT_EQ(ParseWhole("GET http://h/x HTTP/1.1\r\nHost: h\r\n\r\n"),
            "complete 36 [GET] [http://h/x] 1.1 host=[h] ka=1 cl=0 "
            "chunked=0 {Host:h}");
  // 1.2 .. 1.9 are served with 1.1 semantics (Host required, persistent).
  EXPECT_EQ(ParseWhole("GET / HTTP/1.2\r\n\r\n"), "error 400");
  HttpParser parser;
  ASSERT_EQ(parser.Parse("GET / HTTP/1.9\r\nHost: a\r\n\r\n").kind,
            Kind::kComplete);
  EXPECT_EQ(parser.request().version_minor, 9);
  EXPECT_TRUE(parser.request().keep_alive);
}

TEST(HttpParserTest, ContentLengthBody) {
  HttpParser parser;
  const std::string req =
      "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n"
      "content-length: 5\r\n\r\nhello";
  const ParseResult r = parser.Parse(req);
  ASSERT_EQ(r.kind, Kind::kComplete);
  EXPECT_EQ(r.consumed, req.size() - 5);  // the body is not the head's
  EXPECT_EQ(parser.request().content_length, 5u);
  EXPECT_TRUE(parser.request().keep_alive);
}

TEST(HttpParserTest, PipelinedRequestsInOneBuffer) {
  const std::string buffer =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "\r\n"  // a stray CRLF after a body, which servers must skip
      "HEAD /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
      "GET /d HT";
  HttpParser parser;
  absl::string_view rest = buffer;
  std::vector<std::string> seen;
  for (;;) {
    const ParseResult r = parser.Parse(rest);
    if (r.kind != Kind::kComplete) {
      EXPECT_EQ(r.kind, Kind::kIncomplete);
      break;
    }
    const HttpRequest& q = parser.request();
    seen.push_back(absl::StrCat(q.method, " ", q.target, " ", q.keep_alive));
    rest.remove_prefix(r.consumed + q.content_length);
  }
  EXPECT_EQ(seen,
            (std::vector<std::string>{"GET /a 1", "POST /b 1", "HEAD /c 0"}));
  EXPECT_EQ(rest, "GET /d HT");
}

struct ErrorCase {
  const char* name;
  std::string request;
  int status;
};

// A string literal with embedded NULs, all of it.
template <size_t N>
std::string Bytes(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

ParserOptions SmallLimits() {
  ParserOptions o;
  o.max_target_bytes = 64;
  o.max_header_bytes = 256;
  o.max_headers = 8;
  o.max_body_bytes = 1000;
  return o;
}

std::vector<ErrorCase> ErrorCases() {
  const std::string ok_line = "GET / HTTP/1.1\r\nHost: a\r\n";
  return {
      {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"space before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
      {"no version", "GET /\r\nHost: a\r\n\r\n", 400},
      {"no target", "GET\r\n\r\n", 400},
      {"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
      {"two-digit minor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
      {"bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"NUL in target", Bytes("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
      {"non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare CR in value", ok_line + "X: a\rb\r\n\r\n", 400},
      {"bare CR as terminator", ok_line + "X: a\r\r\n\r\n", 400},
      {"CR CR LF end", ok_line + "\r\r\n", 400},
      {"obs-fold", ok_line + "X: a\r\n  b\r\n\r\n", 400},
      {"tab fold", ok_line + "X: a\r\n\tb\r\n\r\n", 400},
      {"space in name", ok_line + "Bad Name: x\r\n\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      {"no colon", ok_line + "NoColon\r\n\r\n", 400},
      {"empty name", ok_line + ": x\r\n\r\n", 400},
      {"NUL in value", ok_line + Bytes("X: a\0b\r\n\r\n"), 400},
      {"DEL in value", ok_line + "X: a\x7f\r\n\r\n", 400},
      {"missing Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400},
      {"two Hosts", ok_line + "Host: b\r\n\r\n", 400},
      {"invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"CL letters", ok_line + "Content-Length: abc\r\n\r\n", 400},
      {"CL negative", ok_line + "Content-Length: -1\r\n\r\n", 400},
      {"CL plus", ok_line + "Content-Length: +5\r\n\r\n", 400},
      {"CL empty", ok_line + "Content-Length:\r\n\r\n", 400},
      {"CL list differs", ok_line + "Content-Length: 5, 6\r\n\r\n", 400},
      {"CL repeat differs",
       ok_line + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"CL over limit", ok_line + "Content-Length: 1001\r\n\r\n", 413},
      {"CL overflow",
       ok_line + "Content-Length: 99999999999999999999999999\r\n\r\n", 413},
      {"TE gzip only", ok_line + "Transfer-Encoding: gzip\r\n\r\n", 400},
      {"TE chunked not final",
       ok_line + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"TE chunked twice",
       ok_line + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n",
       400},
      {"TE empty", ok_line + "Transfer-Encoding:\r\n\r\n", 400},
      {"TE and CL",
       ok_line + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"TE in 1.0", "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"TE gzip, chunked", ok_line + "Transfer-Encoding: gzip, chunked\r\n\r\n",
       501},
      {"method too long",
       std::string(HttpParser::kMaxMethodBytes + 1, 'M') +
           " / HTTP/1.1\r\nHost: a\r\n\r\n",
       501},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505},
      {"target too long",
       "GET /" + std::string(64, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
      {"field section too large",
       ok_line + "X: " + std::string(300, 'x') + "\r\n\r\n", 431},
      {"too many fields",
       ok_line + "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\nG: 7\r\n"
                 "H: 8\r\n\r\n",
       431},
  };
}

TEST(HttpParserTest, ErrorStatuses) {
  for (const ErrorCase& c : ErrorCases()) {
    HttpParser parser(SmallLimits());
    const ParseResult r = parser.Parse(c.request);
    EXPECT_EQ(r.kind, Kind::kError) << c.name;
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.detail;
    EXPECT_STRNE(r.detail, "") << c.name;
  }
}

TEST(HttpParserTest, EveryByteOfALongValueIsChecked) {
  // Values are checked a word at a time; a bad byte anywhere, including
  // just before the last (overlapping) word, must still be found.
  const std::string value(40, 'v');
  for (size_t at = 0; at < value.size(); ++at) {
    for (char bad : {'\r', '\0', '\x7f', '\x01'}) {
      std::string v = value;
      v[at] = bad;
      EXPECT_EQ(ParseWhole("GET / HTTP/1.1\r\nHost: a\r\nX: " + v + "\r\n\r\n"),
                "error 400")
          << at << " " << static_cast<int>(bad);
    }
  }
  // A tab is allowed anywhere.
  std::string v = value;
  v[17] = '\t';
  EXPECT_EQ(ParseWhole("GET / HTTP/1.1\r\nHost: a\r\nX: " + v + "\r\n\r\n")
                .substr(0, 8),
            "complete");
}

TEST(HttpParserTest, LimitsAreInclusive) {
  const ParserOptions o = SmallLimits();
  // A target of exactly max_target_bytes is fine.
  const std::string target = "/" + std::string(o.max_target_bytes - 1, 'a');
  EXPECT_EQ(ParseWhole("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n", o)
                .substr(0, 8),
            "complete");
  // max_headers fields are fine, and a body of exactly max_body_bytes.
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n";
  for (size_t i = 2; i < o.max_headers; ++i) req += "X: y\r\n";
  EXPECT_EQ(ParseWhole(req + "\r\n", o).substr(0, 8), "complete");
  // A field section of exactly max_header_bytes (counting the final CRLF).
  std::string fields = "Host: a\r\nX: ";
  fields += std::string(o.max_header_bytes - fields.size() - 4, 'v');
  fields += "\r\n\r\n";
  ASSERT_EQ(fields.size(), o.max_header_bytes);
  EXPECT_EQ(ParseWhole("GET / HTTP/1.1\r\n" + fields, o).substr(0, 8),
            "complete");
  fields.insert(fields.size() - 4, "v");
  EXPECT_EQ(ParseWhole("GET / HTTP/1.1\r\n" + fields, o), "error 431");
}

TEST(HttpParserTest, ChunkedIsFramingOnly) {
  HttpParser parser;
  ASSERT_EQ(parser
                .Parse("POST / HTTP/1.1\r\nHost: a\r\n"
                       "Transfer-Encoding: Chunked\r\n\r\n")
                .kind,
            Kind::kComplete);
  EXPECT_TRUE(parser.request().is_chunked);
  EXPECT_FALSE(parser.request().keep_alive);
}

TEST(HttpParserTest, HopelessInputFailsBeforeTheLineEnds) {
  // Not HTTP (a TLS ClientHello): the first byte decides.
  HttpParser tls;
  EXPECT_EQ(Summary(tls, tls.Parse("\x16\x03\x01\x02\x00")), "error 400");
  HttpParser method;
  EXPECT_EQ(Summary(method, method.Parse(std::string(40, 'A'))), "error 501");
  // A target over the limit, still arriving.
  const ParserOptions o = SmallLimits();
  HttpParser target(o);
  EXPECT_EQ(Summary(target, target.Parse("GET /" + std::string(200, 'a'))),
            "error 414");
  // A field section over the limit, its current line unfinished.
  HttpParser fields(o);
  EXPECT_EQ(Summary(fields, fields.Parse("GET / HTTP/1.1\r\nX: " +
                                         std::string(300, 'x'))),
            "error 431");
}

TEST(HttpParserTest, SplitAtEveryByteMatchesWhole) {
  std::vector<std::string> inputs = {
      "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
      "\r\nGET / HTTP/1.0\nConnection: keep-alive\n\n",
      "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET",
      "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\n",
  };
  for (const ErrorCase& c : ErrorCases()) inputs.push_back(c.request);
  inputs.push_back(std::string(40, 'A') + " / HTTP/1.1\r\n\r\n");
  inputs.push_back("GET /" + std::string(200, 'a') + " HTTP/1.1\r\n\r\n");
  inputs.push_back("GET /" + std::string(200, 'a') + "\x01" + " HTTP/1.1\r\n");
  inputs.push_back("GET / HTTP/1.1" + std::string(200, ' ') + "\r\n\r\n");
  for (const std::string& in : inputs) {
    ExpectSplitInvariant(in, SmallLimits());
    ExpectSplitInvariant(in);
  }
}

TEST(HttpParserTest, ByteByByteMatchesWholeAndStaysLinear) {
  // An 8 KiB field section: one long Cookie, then many short fields.
  std::string one_long =
      "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + std::string(8 * 1024, 'c') +
      "\r\n\r\n";
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  while (many.size() < 8 * 1024) many += "X-Field: value\r\n";
  many += "\r\n";
  ParserOptions options;
  options.max_headers = 1000;
  for (const std::string& req : {one_long, many}) {
    HttpParser whole(options);
    const std::string expected = Summary(whole, whole.Parse(req));
    ASSERT_EQ(expected.substr(0, 8), "complete");
    const uint64_t whole_work = whole.bytes_examined();

    HttpParser bytewise(options);
    EXPECT_EQ(ParseByteByByte(req, &bytewise), expected);
    // Each byte is examined a bounded number of times: when looking for
    // the line's end, when validating the line, and a few for the method.
    // Rescanning from the start on each call would be ~n^2/2 (here ~3e7).
    EXPECT_LE(bytewise.bytes_examined(), 3 * req.size());
    EXPECT_LE(whole_work, 3 * req.size());
  }
}

TEST(HttpParserTest, UsableAfterErrorAndReset) {
  HttpParser parser;
  EXPECT_EQ(parser.Parse("GET / HTTP/3.0\r\n\r\n").status, 505);
  EXPECT_EQ(parser.Parse("GET / HTTP/1.0\r\n\r\n").kind, Kind::kComplete);
  EXPECT_EQ(parser.Parse("GET / HT").kind, Kind::kIncomplete);
  parser.Reset();
  EXPECT_EQ(parser.Parse("HEAD /z HTTP/1.0\r\n\r\n").kind, Kind::kComplete);
  EXPECT_EQ(parser.request().target, "/z");
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
