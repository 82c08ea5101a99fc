#include "fileserver/directory_listing.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "fileserver/http_chars.h"

namespace kqio {
namespace fileserver {

void AppendHtmlEscaped(absl::string_view text, std::string* out) {
  for (char c : text) {
    // clang-format off
    switch (c) {
      case '&': out->append("&amp;"); break;
      case '<': out->append("&lt;"); break;
      case '>': out->append("&gt;"); break;
      case '"': out->append("&quot;"); break;
      case '\'': out->append("&#39;"); break;
      default: out->push_back(c);
    }
    // clang-format on
  }
}

void AppendPercentEncoded(absl::string_view segment, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : segment) {
    if (http_chars::Is(c, http_chars::kUnreserved)) {
      out->push_back(c);
      continue;
    }
    const unsigned char u = static_cast<unsigned char>(c);
    out->push_back('%');
    out->push_back(kHex[u >> 4]);
    out->push_back(kHex[u & 0xf]);
  }
}

void AppendDirectoryListing(absl::string_view path,
                            absl::Span<const DirectoryEntry> entries,
                            std::string* out) {
  std::string title = "Index of /";
  AppendHtmlEscaped(path, &title);
  if (!path.empty()) title.push_back('/');
  absl::StrAppend(out,
                  "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                  "<title>",
                  title, "</title></head>\n<body><h1>", title,
                  "</h1>\n<table>\n<tr><th>Name</th><th>Last modified (UTC)"
                  "</th><th>Size</th></tr>\n");
  if (!path.empty()) {
    out->append(
        "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
  }
  for (const DirectoryEntry& e : entries) {
    out->append("<tr><td><a href=\"");
    AppendPercentEncoded(e.name, out);
    if (e.is_directory) out->push_back('/');
    out->append("\">");
    AppendHtmlEscaped(e.name, out);
    if (e.is_directory) out->push_back('/');
    absl::StrAppend(
        out, "</a></td><td>",
        absl::FormatTime("%Y-%m-%d %H:%M", e.modified, absl::UTCTimeZone()),
        "</td><td>");
    if (e.is_directory) {
      out->push_back('-');
    } else {
      absl::StrAppend(out, e.size);
    }
    out->append("</td></tr>\n");
  }
  out->append("</table>\n</body></html>\n");
}

}  // namespace fileserver
}  // namespace kqio
