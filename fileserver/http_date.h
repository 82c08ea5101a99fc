// HTTP dates (RFC 9110 5.6.7): formatting as IMF-fixdate, which is all a
// server sends, and parsing all three formats a server must accept:
//
//   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
//   RFC 850      Sunday, 06-Nov-94 08:49:37 GMT   (obsolete, two-digit year)
//   asctime      Sun Nov  6 08:49:37 1994          (obsolete)
//
// The functions are stateless and thread-safe.  HttpDateCache is not
// thread-safe: keep one per loop thread.
#ifndef KQIO_FILESERVER_HTTP_DATE_H_
#define KQIO_FILESERVER_HTTP_DATE_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"

namespace kqio {
namespace fileserver {

// IMF-fixdate is always this long.
inline constexpr size_t kHttpDateBytes = 29;

// Writes `t`, truncated to the second, as IMF-fixdate into `out[0..28]`.
// Times outside years 1..9999 are clamped to them.
void FormatHttpDate(absl::Time t, char out[kHttpDateBytes]);
std::string FormatHttpDate(absl::Time t);
void AppendHttpDate(absl::Time t, std::string* out);

// Parses any of the three formats, exactly (HTTP dates are case-sensitive
// and have fixed spacing; the caller trims surrounding whitespace).  The
// weekday must be a weekday name but is not checked against the date, as
// it carries no information.  A two-digit RFC 850 year is placed in the
// century that puts it at most 50 years after `now` (RFC 9110 5.6.7).
// Returns nullopt for anything else, including impossible dates (Feb 30).
absl::optional<absl::Time> ParseHttpDate(absl::string_view s, absl::Time now);

// The Date header's value for the current second: formatting costs more
// than the rest of a small response head, and the value only changes once
// a second.  Not thread-safe (one per loop thread).
class HttpDateCache final {
 public:
  HttpDateCache() = default;
  HttpDateCache(const HttpDateCache&) = delete;
  HttpDateCache& operator=(const HttpDateCache&) = delete;

  // IMF-fixdate of `now`; the view stays valid until the next call.
  absl::string_view Get(absl::Time now);

  // How many times Get() had to format (for tests).
  uint64_t formats() const { return formats_; }

 private:
  int64_t second_ = INT64_MIN;
  uint64_t formats_ = 0;
  char buffer_[kHttpDateBytes] = {};
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_HTTP_DATE_H_
