#include "fileserver/http_response.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kqio {
namespace fileserver {
namespace {

struct MediaType {
  const char* extension;
  const char* type;
};

// Most-requested first: the lookup is a linear scan.
constexpr MediaType kMediaTypes[] = {
    {"html", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},  // RFC 9239
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"svg", "image/svg+xml"},
    {"woff2", "font/woff2"},
    {"json", "application/json"},  // RFC 8259 11: no charset parameter
    {"webp", "image/webp"},
    {"gif", "image/gif"},
    {"ico", "image/x-icon"},
    {"jpeg", "image/jpeg"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"xml", "text/xml; charset=utf-8"},
    {"avif", "image/avif"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"woff", "font/woff"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"map", "application/json"},  // source maps
};

constexpr absl::string_view kOctetStream = "application/octet-stream";

#define KQIO_CANNED(code, reason)                                  \
  case code:                                                       \
    return "<!DOCTYPE html>\n<html><head><title>" #code " " reason \
           "</title></head>\n<body><h1>" #code " " reason          \
           "</h1></body>"                                          \
           "</html>\n"

bool Safe(absl::string_view value) {
  return value.find_first_of("\r\n") == absl::string_view::npos;
}

void AppendField(absl::string_view name, absl::string_view value,
                 std::string* out) {
  if (!Safe(value)) return;
  absl::StrAppend(out, name, ": ", value, "\r\n");
}

}  // namespace

// One line per entry: these switches are tables.
// clang-format off
absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}
// clang-format on

absl::string_view ContentTypeForPath(absl::string_view path) {
  const size_t slash = path.rfind('/');
  const absl::string_view name =
      slash == absl::string_view::npos ? path : path.substr(slash + 1);
  const size_t dot = name.rfind('.');
  if (dot == absl::string_view::npos || dot + 1 == name.size()) {
    return kOctetStream;
  }
  const absl::string_view extension = name.substr(dot + 1);
  for (const MediaType& m : kMediaTypes) {
    if (absl::EqualsIgnoreCase(extension, m.extension)) return m.type;
  }
  return kOctetStream;
}

std::string MakeETag(uint64_t inode, uint64_t size, int64_t mtime_ns) {
  return absl::StrCat("\"", absl::Hex(inode), "-", absl::Hex(size), "-",
                      absl::Hex(static_cast<uint64_t>(mtime_ns)), "\"");
}

absl::string_view CannedBody(int status) {
  switch (status) {
    KQIO_CANNED(400, "Bad Request");
    KQIO_CANNED(403, "Forbidden");
    KQIO_CANNED(404, "Not Found");
    KQIO_CANNED(405, "Method Not Allowed");
    KQIO_CANNED(408, "Request Timeout");
    KQIO_CANNED(412, "Precondition Failed");
    KQIO_CANNED(413, "Content Too Large");
    KQIO_CANNED(414, "URI Too Long");
    KQIO_CANNED(416, "Range Not Satisfiable");
    KQIO_CANNED(431, "Request Header Fields Too Large");
    KQIO_CANNED(500, "Internal Server Error");
    KQIO_CANNED(501, "Not Implemented");
    KQIO_CANNED(503, "Service Unavailable");
    KQIO_CANNED(505, "HTTP Version Not Supported");
    default:
      return "<!DOCTYPE html>\n<html><head><title>Error</title></head>\n"
             "<body><h1>Error</h1></body></html>\n";
  }
}

#undef KQIO_CANNED

// clang-format off
int HttpStatusFromStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument: return 400;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kOutOfRange: return 416;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}
// clang-format on

ResponseWriter::ResponseWriter(absl::string_view server_name)
    : server_name_(Safe(server_name) ? server_name : "kqio") {}

void ResponseWriter::AppendHead(const ResponseHead& head, absl::Time now,
                                std::string* out) {
  absl::StrAppend(out, "HTTP/1.1 ", head.status, " ", ReasonPhrase(head.status),
                  "\r\n");
  if (!server_name_.empty()) AppendField("Server", server_name_, out);
  AppendField("Date", date_.Get(now), out);
  if (!head.content_type.empty()) {
    AppendField("Content-Type", head.content_type, out);
  }
  const bool bodiless =
      head.status < 200 || head.status == 204 || head.status == 304;
  if (head.content_length.has_value() && !bodiless) {
    absl::StrAppend(out, "Content-Length: ", *head.content_length, "\r\n");
  }
  if (head.last_modified.has_value()) {
    out->append("Last-Modified: ");
    AppendHttpDate(*head.last_modified, out);
    out->append("\r\n");
  }
  if (!head.etag.empty()) AppendField("ETag", head.etag, out);
  if (head.accept_ranges) out->append("Accept-Ranges: bytes\r\n");
  if (head.has_content_range) {
    absl::StrAppend(out, "Content-Range: bytes ", head.range_first, "-",
                    head.range_last, "/", head.complete_length, "\r\n");
  } else if (head.status == 416) {
    absl::StrAppend(out, "Content-Range: bytes */", head.complete_length,
                    "\r\n");
  }
  if (!head.allow.empty()) AppendField("Allow", head.allow, out);
  if (!head.location.empty()) AppendField("Location", head.location, out);
  if (head.close) {
    out->append("Connection: close\r\n");
  } else if (head.http10_keep_alive) {
    out->append("Connection: keep-alive\r\n");
  }
  if (!head.extra_fields.empty() && absl::EndsWith(head.extra_fields, "\r\n")) {
    out->append(head.extra_fields.data(), head.extra_fields.size());
  }
  out->append("\r\n");
}

void ResponseWriter::AppendCannedResponse(ResponseHead head, bool head_only,
                                          absl::Time now, std::string* out) {
  const absl::string_view body = CannedBody(head.status);
  head.content_type = "text/html; charset=utf-8";
  head.content_length = body.size();
  if (head.status == 405 && head.allow.empty()) head.allow = "GET, HEAD";
  AppendHead(head, now, out);
  if (!head_only) out->append(body.data(), body.size());
}

}  // namespace fileserver
}  // namespace kqio
