// The HTML page listing a directory (when the server is configured to show
// listings).
//
// Names are whatever bytes the file system holds, so both uses of a name
// are encoded: in text it is HTML-escaped (& < > " '), in the link it is
// percent-encoded byte by byte, everything but RFC 3986 unreserved
// characters ("a b:c" -> "a%20b%3Ac"; encoding ':' also keeps a name like
// "javascript:x" from being read as a URL scheme).  Links are relative to
// the directory's own URL, which ends in '/' (the server redirects there
// first).  Which entries to show (dot-files?) and their order are the
// caller's: entries are printed as given.
//
// Stateless and thread-safe.
#ifndef KQIO_FILESERVER_DIRECTORY_LISTING_H_
#define KQIO_FILESERVER_DIRECTORY_LISTING_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace kqio {
namespace fileserver {

struct DirectoryEntry {
  std::string name;  // one path segment, as on disk
  bool is_directory = false;
  uint64_t size = 0;  // not shown for directories
  absl::Time modified;
};

// Appends the page for the directory at `path` (decoded, relative to the
// root, "" for the root itself: the title, and whether a "../" link is
// shown).
void AppendDirectoryListing(absl::string_view path,
                            absl::Span<const DirectoryEntry> entries,
                            std::string* out);

// `text` with & < > " ' replaced by character references.
void AppendHtmlEscaped(absl::string_view text, std::string* out);

// `segment` with every byte that is not an RFC 3986 unreserved character
// written as %XX (uppercase hex).
void AppendPercentEncoded(absl::string_view segment, std::string* out);

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_DIRECTORY_LISTING_H_
