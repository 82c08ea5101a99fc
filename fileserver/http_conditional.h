// Conditional and range requests (RFC 9110 13 and 14): given the request's
// precondition and Range fields and the file's validators, which response
// to send.
//
// EvaluateRequest() applies the preconditions in the RFC's order (13.2.2):
//   1. If-Match (strong comparison; "*" matches any file) false -> 412;
//   2. else If-Unmodified-Since (a valid date) earlier than the file -> 412;
//   3. If-None-Match (weak comparison, a list or "*") matches -> 304 for GET
//      and HEAD, 412 for other methods;
//   4. else, for GET and HEAD, If-Modified-Since not earlier than the file
//      -> 304.  Ignored when If-None-Match is present, when the date is
//      invalid, repeated, or later than `now`;
//   5. for GET only (RFC 9110 14.2: HEAD and other methods ignore Range),
//      a Range whose If-Range (if any) holds: one satisfiable range -> 206,
//      an unsatisfiable one -> 416;
//   6. otherwise 200 with the whole file.
// Dates compare at the second, as Last-Modified is sent.
//
// Ranges: only "bytes", one range: "a-b", "a-" or "-n", the end clamped to
// the file.  A Range this server does not honour is ignored (200, the whole
// file), as RFC 9110 14.2 allows: a malformed one, another unit, several
// ranges (a multipart/byteranges body costs more than the whole file for
// the common small-file case, and is a known amplification vector), and a
// suffix range of an empty file (there is no byte to send; "-0" stays 416).
// If-Range holds for the file's strong ETag, or for a date equal to
// Last-Modified once the second it names is over (before that the file may
// change again and keep the date, so the date is not strong, 8.8.2.2);
// a weak or malformed validator does not hold, so the whole file is sent.
//
// Stateless and thread-safe.
#ifndef KQIO_FILESERVER_HTTP_CONDITIONAL_H_
#define KQIO_FILESERVER_HTTP_CONDITIONAL_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fileserver/http_parser.h"

namespace kqio {
namespace fileserver {

// The request's fields that EvaluateRequest() reads; "" means absent.
struct ConditionalRequest {
  absl::string_view method;
  absl::string_view if_match;       // list of entity tags, or "*"
  absl::string_view if_none_match;  // list of entity tags, or "*"
  absl::string_view if_modified_since;
  absl::string_view if_unmodified_since;
  absl::string_view if_range;
  absl::string_view range;
};

// Reads the fields from `request`.  Repeated If-Match / If-None-Match lines
// form one list (joined in the scratch strings when needed, so the result
// lives as long as they and the request).  A repeated date field is
// treated as absent (RFC 9110 13.1.3: a list of dates is invalid), and a
// repeated Range or If-Range makes the Range ignored.
ConditionalRequest ReadConditionalFields(const HttpRequest& request,
                                         std::string* if_match_scratch,
                                         std::string* if_none_match_scratch);

// What the server knows of the file.
struct Representation {
  absl::string_view etag;  // quoted, strong (MakeETag())
  absl::Time last_modified;
  uint64_t size = 0;
};

struct Decision {
  int status = 200;  // 200, 206, 304, 412 or 416
  // 200 and 206: the bytes to send.  416: unused (the response carries
  // "Content-Range: bytes */size").
  uint64_t offset = 0;
  uint64_t length = 0;
};

Decision EvaluateRequest(const ConditionalRequest& request,
                         const Representation& file, absl::Time now);

// The pieces, exposed for tests and for the server's own use.

// Whether the entity-tag list `list` ("*" or 1#entity-tag) contains one
// matching `etag` by strong (both strong, same opaque tag) or weak (same
// opaque tag) comparison (RFC 9110 8.8.3.2).  A malformed element ends the
// list: the tags before it still count.
bool ETagListMatches(absl::string_view list, absl::string_view etag,
                     bool strong);

struct RangeSpec {
  enum class Kind {
    kIgnore,         // absent, malformed, other unit: send 200
    kMultiple,       // several ranges: send 200 (see the file comment)
    kSatisfiable,    // send 206 with [first, first + length)
    kUnsatisfiable,  // send 416
  };
  Kind kind = Kind::kIgnore;
  uint64_t first = 0;
  uint64_t length = 0;
};

// Parses a Range field value against a file of `size` bytes.
RangeSpec ParseRange(absl::string_view value, uint64_t size);

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_HTTP_CONDITIONAL_H_
