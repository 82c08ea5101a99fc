// Building HTTP/1.1 response heads into a caller-owned buffer.
//
// The server fills a ResponseHead (status, body framing, validators, range)
// and ResponseWriter::AppendHead() writes the status line and fields, in a
// fixed order, ending with the empty line.  The body, if any, is the
// caller's (a file sent with sendfile, or a canned page from
// AppendCannedResponse()).  A response to HEAD is the same head with no body
// (RFC 9110 9.3.2): the caller simply does not send one.
//
// Also here, the small tables a static file server needs: reason phrases,
// Content-Type by file extension, the strong ETag of a file, canned HTML
// bodies for error statuses, and the absl::Status -> HTTP status mapping.
//
// Free functions are thread-safe.  ResponseWriter is not (it caches the
// Date value): keep one per loop thread.
#ifndef KQIO_FILESERVER_HTTP_RESPONSE_H_
#define KQIO_FILESERVER_HTTP_RESPONSE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "fileserver/http_date.h"

namespace kqio {
namespace fileserver {

// "Not Found" for 404; "Unknown" for codes this server never sends.
absl::string_view ReasonPhrase(int status);

// The media type for a file name, by its extension (case-insensitive):
// html, css, js, mjs, json, txt, xml, svg, png, jpg/jpeg, gif, webp, avif,
// ico, wasm, pdf, zip, gz, mp4, webm, woff, woff2, ttf, otf and a few
// more.  text/* types carry "; charset=utf-8" (the server does not sniff;
// UTF-8 is the web's default and a superset of ASCII).  Anything else,
// including no extension: application/octet-stream, which browsers
// download rather than render, the safe default.
absl::string_view ContentTypeForPath(absl::string_view path);

// A strong entity tag, quoted, from what changes when a file is replaced or
// rewritten: inode, size and mtime in nanoseconds (hex, '-'-separated).
// Caveat, as for any metadata-based tag: a rewrite that keeps the inode,
// the size and the mtime (within the file system's timestamp granularity)
// keeps the tag.
std::string MakeETag(uint64_t inode, uint64_t size, int64_t mtime_ns);

// A small complete HTML page for an error status ("404 Not Found" as title
// and heading).  Static storage.
absl::string_view CannedBody(int status);

// How an error from the file layer or ParseTarget() is answered:
// InvalidArgument 400, PermissionDenied 403, NotFound 404, ResourceExhausted
// and Unavailable 503, OutOfRange 416, anything else 500.  OK gives 200.
int HttpStatusFromStatus(const absl::Status& status);

// Everything a response head can carry.  Fields left at their defaults are
// not sent.  String fields must not contain CR or LF; a field that does is
// dropped rather than let a response be split.
struct ResponseHead {
  int status = 200;
  // "Connection: close": this is the connection's last response.
  bool close = false;
  // "Connection: keep-alive": an HTTP/1.0 client asked for persistence and
  // gets it (an HTTP/1.1 client needs nothing).
  bool http10_keep_alive = false;
  absl::string_view content_type;
  // Not sent for 1xx, 204 and 304 (RFC 9110 8.6), whatever is set here.
  absl::optional<uint64_t> content_length;
  absl::optional<absl::Time> last_modified;
  absl::string_view etag;      // quoted, as MakeETag() returns it
  bool accept_ranges = false;  // "Accept-Ranges: bytes"
  // 206: "Content-Range: bytes <first>-<last>/<complete_length>".
  bool has_content_range = false;
  uint64_t range_first = 0;
  uint64_t range_last = 0;  // inclusive
  // 206 and 416: the representation's full length.  For 416 (no
  // has_content_range) this gives "Content-Range: bytes */<length>".
  uint64_t complete_length = 0;
  absl::string_view allow;     // 405: e.g. "GET, HEAD"
  absl::string_view location;  // redirects
  // Preformatted trusted lines, each ending in "\r\n" (e.g. Cache-Control
  // from the server's configuration).  Never put request data here.
  absl::string_view extra_fields;
};

// Appends response heads; caches the Date value per second.  Not
// thread-safe: one per loop thread.
class ResponseWriter final {
 public:
  explicit ResponseWriter(absl::string_view server_name = "kqio");
  ResponseWriter(const ResponseWriter&) = delete;
  ResponseWriter& operator=(const ResponseWriter&) = delete;

  // Appends the status line, the fields and the empty line to `*out`.
  // `now` is the Date.
  void AppendHead(const ResponseHead& head, absl::Time now, std::string* out);

  // Appends a complete error response for head.status: the head with
  // text/html and the length of CannedBody(head.status), then that body
  // unless `head_only` (a HEAD request).  For 405 an empty head.allow
  // becomes "GET, HEAD"; for 416 set head.complete_length.
  void AppendCannedResponse(ResponseHead head, bool head_only, absl::Time now,
                            std::string* out);

 private:
  const std::string server_name_;
  HttpDateCache date_;
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_HTTP_RESPONSE_H_
