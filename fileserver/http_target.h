// ParseTarget: from a request-target to a path that is safe to resolve under
// the served root.
//
// The result is a relative path ("" for the root itself) with no leading
// '/', no empty, "." or ".." segments, no NUL, control character or
// backslash.  The caller still opens it with openat2(RESOLVE_BENEATH) (or
// an equivalent walk), which handles what text alone cannot: symlinks.
//
// Accepted forms (RFC 9112 3.2): origin-form ("/a/b?q") and absolute-form
// ("http://host/a/b"; the scheme and authority are dropped: the server does
// not do virtual hosts).  The query is dropped undecoded.  The path is
// percent-decoded once; a trailing '/' (or a final "." segment) means the
// target names a directory (index.html or a listing).
//
// Decisions, and the status the server answers with for each:
//   - 400 (absl::InvalidArgumentError) for anything malformed or hostile:
//     asterisk- or authority-form, a fragment ('#'), a malformed escape
//     ("%zz", "%4"), NUL raw or encoded, control characters, raw bytes
//     outside visible ASCII, a backslash raw or encoded, an encoded '/'
//     ("%2F": a file name cannot contain '/', so the only use of one is to
//     hide a segment boundary from a filter; Apache refuses them too), and
//     ANY ".." segment, however it is spelled ("..", "%2e%2e", ".%2E").
//     ".." is rejected rather than resolved: a legitimate client resolves
//     dot segments itself (RFC 3986 5.2.4) and never sends one.
//   - 403 (absl::PermissionDeniedError) for a segment starting with '.'
//     (".git", ".env") unless TargetOptions::allow_dot_files.  Decided from
//     the text alone, so the answer is the same whether the file exists or
//     not, and says nothing about what the root contains.  400 outranks 403
//     when a target breaks both rules.
//   - "//" and "." segments are collapsed: they are harmless, and browsers
//     send "//" when a link is built by naive concatenation.
//   - 404 is never decided here; it is the file system's answer.
//
// Stateless and thread-safe.
#ifndef KQIO_FILESERVER_HTTP_TARGET_H_
#define KQIO_FILESERVER_HTTP_TARGET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kqio {
namespace fileserver {

struct TargetOptions {
  // Serve segments that start with '.' (".well-known/", ".htaccess").
  bool allow_dot_files = false;
};

struct TargetPath {
  // Decoded, relative, '/'-separated; "" is the root.
  std::string path;
  // The target ended in '/' (or "/."), or is the root: it asks for a
  // directory.  A target naming a directory without the '/' gets a redirect
  // from the server, built from raw_path.
  bool is_directory = false;
  // The target's path as received, still percent-encoded, without scheme,
  // authority or query ("/" for "http://host").  A view into the target.
  absl::string_view raw_path;
};

absl::StatusOr<TargetPath> ParseTarget(
    absl::string_view target, const TargetOptions& options = TargetOptions());

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_HTTP_TARGET_H_
