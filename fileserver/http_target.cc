#include "fileserver/http_target.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "fileserver/http_chars.h"

namespace kqio {
namespace fileserver {
namespace {

absl::Status Malformed(absl::string_view why) {
  return absl::InvalidArgumentError(why);
}

// The path of an absolute-form target: what follows "scheme://authority",
// or "/" if nothing does.  Only http and https (RFC 9110 4.2).
bool StripSchemeAndAuthority(absl::string_view* target) {
  for (absl::string_view scheme : {"http://", "https://"}) {
    if (absl::StartsWithIgnoreCase(*target, scheme)) {
      absl::string_view rest = target->substr(scheme.size());
      const size_t path = rest.find_first_of("/?");
      if (path == absl::string_view::npos || rest[path] == '?') {
        *target = "/";  // "http://host" and "http://host?q" mean "/"
      } else {
        *target = rest.substr(path);
      }
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<TargetPath> ParseTarget(absl::string_view target,
                                       const TargetOptions& options) {
  if (target.find('#') != absl::string_view::npos) {
    return Malformed("fragment in request target");
  }
  absl::string_view path = target;
  if (path.empty() || path.front() != '/') {
    if (!StripSchemeAndAuthority(&path)) {
      return Malformed("request target is neither origin- nor absolute-form");
    }
  }
  path = path.substr(0, path.find('?'));

  TargetPath out;
  out.raw_path = path;
  out.path.reserve(path.size());
  bool dot_file = false;
  bool last_was_dot = false;  // the final segment was "."
  size_t segment_start = 0;   // in out.path
  // Closes the segment out.path[segment_start..]; false for "..".
  auto end_segment = [&]() {
    const absl::string_view segment =
        absl::string_view(out.path).substr(segment_start);
    last_was_dot = segment == ".";
    if (segment.empty() || last_was_dot) {
      out.path.resize(segment_start);  // "//" and "/./" collapse
      return true;
    }
    if (segment == "..") return false;
    dot_file |= segment.front() == '.';
    out.path.push_back('/');
    segment_start = out.path.size();
    return true;
  };

  // path[0] is '/'.
  for (size_t i = 1; i < path.size(); ++i) {
    char c = path[i];
    if (c == '/') {
      if (!end_segment()) return Malformed("'..' segment");
      continue;
    }
    if (c == '%') {
      const int hi =
          i + 2 < path.size() ? http_chars::HexValue(path[i + 1]) : -1;
      const int lo = hi >= 0 ? http_chars::HexValue(path[i + 2]) : -1;
      if (lo < 0) return Malformed("malformed percent-encoding");
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
      if (c == '/') return Malformed("encoded '/'");
      const unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        return Malformed("encoded NUL or control character");
      }
    } else if (!http_chars::Is(c, http_chars::kTargetChar)) {
      return Malformed("NUL, control or non-ASCII byte in request target");
    }
    if (c == '\\') return Malformed("backslash in request target");
    out.path.push_back(c);
  }
  if (!end_segment()) return Malformed("'..' segment");
  // Every segment left a '/' behind it.
  if (!out.path.empty()) out.path.pop_back();
  out.is_directory = out.path.empty() || path.back() == '/' || last_was_dot;
  if (dot_file && !options.allow_dot_files) {
    return absl::PermissionDeniedError("dot-file segment in request target");
  }
  return out;
}

}  // namespace fileserver
}  // namespace kqio
