// HttpParser: an incremental parser for HTTP/1.0 and HTTP/1.1 request heads
// (RFC 9112 section 2-3, 5-7; RFC 9110 for field semantics).
//
// The connection keeps the bytes it has received in a buffer and calls
// Parse() with all of them each time more arrive.  The answer is one of:
//   - kIncomplete: more bytes are needed; nothing may be discarded yet;
//   - kComplete: one request head was parsed.  `consumed` bytes (leading
//     empty lines, the request line, the fields and the empty line) belong to
//     it; a body of request().content_length bytes follows (the file server
//     only reads it to throw it away), and after that, pipelined requests.
//   - kError: the request is unusable; `status` is the HTTP status to answer
//     with (400, 413, 414, 431, 501 or 505) before closing the connection.
//     There is no way to find where the next request would start.
//
// Work is linear in the size of the head however the bytes are split across
// calls: the parser remembers how far it has looked for the end of the
// current line and validates each line once, when its LF arrives.  Limits
// (ParserOptions) are enforced as soon as the bytes received so far prove
// they are exceeded, so a peer cannot make the buffer grow past them.
//
// Leniency, and what is refused (the RFC's choices for a server, strictest
// where a proxy in front could read the message differently):
//   - A line may end in LF alone (RFC 9112 2.2 allows it); a CR anywhere else
//     is an error (400), as are obs-fold (a line starting with SP/HTAB),
//     whitespace between a field name and its colon, and control characters.
//   - Up to kMaxLeadingEmptyLines empty lines before the request line are
//     skipped (RFC 9112 2.2: clients send an extra CRLF after a POST body).
//   - The request line is exactly `method SP target SP HTTP/d.d`.  The method
//     is any token up to kMaxMethodBytes (longer: 501, RFC 9112 3); the target
//     is one run of visible ASCII (over max_target_bytes: 414); a version
//     whose major digit is not 1 gets 505, and HTTP/1.2..1.9 are served as
//     1.1 (RFC 9110 2.5).
//   - HTTP/1.1 requires exactly one Host field; any request with two gets 400.
//   - Content-Length must be digits; a repeated or listed value must repeat
//     the same number, else 400; beyond max_body_bytes: 413.
//   - Transfer-Encoding: in HTTP/1.0, or together with Content-Length, 400
//     (the framing is ambiguous: the smuggling case); `chunked` alone is
//     accepted as framing the body is_chunked (the server answers, then
//     closes: it does not decode chunked bodies); a final coding other than
//     chunked is 400 (RFC 9112 6.3); any other coding before it is 501.
//
// Thread-safety: none; one parser per connection, used by one thread.  The
// string_views in request() point into the caller's buffer and are valid
// until the caller changes it or calls Parse() again.
#ifndef KQIO_FILESERVER_HTTP_PARSER_H_
#define KQIO_FILESERVER_HTTP_PARSER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace kqio {
namespace fileserver {

struct ParserOptions {
  // The request target (the URI in the request line).  Longer: 414.
  size_t max_target_bytes = 8 * 1024;
  // The field section: every byte after the request line up to and including
  // the terminating empty line.  Longer: 431.
  size_t max_header_bytes = 16 * 1024;
  // The number of field lines.  More: 431.
  size_t max_headers = 100;
  // A declared Content-Length above this: 413.
  uint64_t max_body_bytes = 1 << 20;
};

// One field line, as received: the name keeps its case, the value is trimmed
// of surrounding spaces and tabs.
struct HttpHeader {
  absl::string_view name;
  absl::string_view value;
};

// A parsed request head.  Owned by the parser, views into the caller's
// buffer (see the file comment for their lifetime).
struct HttpRequest {
  absl::string_view method;         // case-sensitive token, e.g. "GET"
  absl::string_view target;         // raw request-target, e.g. "/a%20b?q=1"
  int version_minor = 1;            // HTTP/1.<version_minor>
  std::vector<HttpHeader> headers;  // in order received, repeats kept
  absl::string_view host;           // the Host value ("" if absent)
  // RFC 9112 9.3: whether the connection may carry another request after
  // this one's response.
  bool keep_alive = true;
  uint64_t content_length = 0;  // body bytes that follow the head
  bool is_chunked = false;      // a chunked body follows (keep_alive false)

  // The first field named `name` (case-insensitive), or "" if none.
  absl::string_view Header(absl::string_view name) const;
  bool HasHeader(absl::string_view name) const;
  // Every field named `name`, combined as one comma-separated list value
  // (RFC 9110 5.3).  When there is at most one such field, its value is
  // returned directly; otherwise the values are joined in `*scratch`.
  absl::string_view HeaderList(absl::string_view name,
                               std::string* scratch) const;
  // How many fields are named `name`.
  int HeaderCount(absl::string_view name) const;
};

struct ParseResult {
  enum class Kind { kIncomplete, kComplete, kError };
  Kind kind = Kind::kIncomplete;
  size_t consumed = 0;  // kComplete: the head's length in bytes
  int status = 0;       // kError: the HTTP status to answer with
  // kError: which rule was broken (a static string, for logs and tests).
  const char* detail = "";
};

class HttpParser final {
 public:
  static constexpr size_t kMaxMethodBytes = 32;
  static constexpr int kMaxLeadingEmptyLines = 8;

  explicit HttpParser(ParserOptions options = ParserOptions());
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  // `data`: every byte received for the current request so far.  Each call
  // must pass what the previous call saw as its prefix (the buffer may have
  // moved).  After kComplete or kError, the next call starts a new request:
  // the caller first drops the consumed head (and the body) from its buffer.
  ParseResult Parse(absl::string_view data);

  // The last complete request.  Valid after Parse() returned kComplete.
  const HttpRequest& request() const { return request_; }

  // Forgets any partial request (e.g. the buffer was discarded).
  void Reset();

  // Bytes examined since construction, for the linearity test and
  // benchmarks: stays proportional to the bytes parsed however they are
  // split across Parse() calls.
  uint64_t bytes_examined() const { return bytes_examined_; }

 private:
  struct Span {
    size_t offset;
    size_t length;
  };
  struct HeaderSpan {
    Span name;
    Span value;
  };
  enum class State { kRequestLine, kHeaders };

  ParseResult Error(int status, const char* detail);
  // Validates a complete request line [begin, end) (CR already stripped).
  ParseResult ParseRequestLine(absl::string_view data, size_t begin,
                               size_t end);
  ParseResult ParseHeaderLine(absl::string_view data, size_t begin, size_t end);
  // Checks the bytes of a request line that has no LF yet, so that a bad or
  // overlong line fails without waiting for the rest.
  ParseResult CheckPartialRequestLine(absl::string_view data);
  // Builds request_ from the spans and applies the whole-message rules.
  ParseResult Finish(absl::string_view data, size_t consumed);

  const ParserOptions options_;
  const size_t max_request_line_;

  State state_ = State::kRequestLine;
  size_t line_start_ = 0;      // first byte of the line being received
  size_t scanned_ = 0;         // bytes before this offset hold no LF
  size_t method_checked_ = 0;  // bytes of the method already validated
  size_t headers_start_ = 0;   // first byte after the request line
  int leading_empty_lines_ = 0;
  Span method_{0, 0};
  Span target_{0, 0};
  int version_minor_ = 1;
  std::vector<HeaderSpan> header_spans_;  // capacity kept across requests

  HttpRequest request_;
  uint64_t bytes_examined_ = 0;
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_HTTP_PARSER_H_
