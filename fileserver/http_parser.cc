#include "fileserver/http_parser.h"

#include <string.h>

#include <algorithm>
#include <limits>

#include "fileserver/http_chars.h"

namespace kqio {
namespace fileserver {

using http_chars::IsDigit;
using http_chars::IsOws;
using http_chars::IsTchar;

namespace {

constexpr absl::string_view kVersionPrefix = "HTTP/";
constexpr size_t kVersionBytes = 8;  // "HTTP/1.1"

// RFC 3986 3.2.2 reg-name / IP-literal characters, plus ':' for the port.
// A Host with anything else (spaces, '/', '@', '\') gets 400 (RFC 9112 3.2).
bool IsValidHost(absl::string_view host) {
  for (char c : host) {
    if (http_chars::Is(c, http_chars::kUnreserved)) continue;
    if (strchr("!$&'()*+,;=%:[]", c) == nullptr || c == '\0') return false;
  }
  return true;
}

// Content-Length = 1*DIGIT; the field may hold a list of the same number
// (RFC 9110 8.6).  Values past 2^63 saturate: they are valid but over any
// body limit, which gives 413, not 400.
bool ParseContentLength(absl::string_view value, bool* seen, uint64_t* out) {
  bool ok = true;
  bool any = false;
  http_chars::ForEachListElement(value, [&](absl::string_view element) {
    uint64_t n = 0;
    for (char c : element) {
      if (!IsDigit(c)) {
        ok = false;
        return false;
      }
      n = n > (uint64_t{1} << 63) / 10
              ? (uint64_t{1} << 63)
              : n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (*seen && n != *out) {
      ok = false;
      return false;
    }
    *seen = true;
    any = true;
    *out = n;
    return true;
  });
  return ok && any;
}

}  // namespace

absl::string_view HttpRequest::Header(absl::string_view name) const {
  for (const HttpHeader& h : headers) {
    if (http_chars::EqualsIgnoreCase(h.name, name)) return h.value;
  }
  return absl::string_view();
}

bool HttpRequest::HasHeader(absl::string_view name) const {
  return HeaderCount(name) > 0;
}

int HttpRequest::HeaderCount(absl::string_view name) const {
  int n = 0;
  for (const HttpHeader& h : headers) {
    n += http_chars::EqualsIgnoreCase(h.name, name);
  }
  return n;
}

absl::string_view HttpRequest::HeaderList(absl::string_view name,
                                          std::string* scratch) const {
  absl::string_view first;
  int n = 0;
  for (const HttpHeader& h : headers) {
    if (!http_chars::EqualsIgnoreCase(h.name, name)) continue;
    if (n == 0) {
      first = h.value;
    } else {
      if (n == 1) scratch->assign(first.data(), first.size());
      scratch->append(", ");
      scratch->append(h.value.data(), h.value.size());
    }
    ++n;
  }
  return n > 1 ? absl::string_view(*scratch) : first;
}

HttpParser::HttpParser(ParserOptions options)
    : options_(options),
      max_request_line_(kMaxMethodBytes + 1 + options.max_target_bytes + 1 +
                        kVersionBytes + 1) {}

void HttpParser::Reset() {
  state_ = State::kRequestLine;
  line_start_ = 0;
  scanned_ = 0;
  method_checked_ = 0;
  headers_start_ = 0;
  leading_empty_lines_ = 0;
  header_spans_.clear();
}

ParseResult HttpParser::Error(int status, const char* detail) {
  Reset();
  ParseResult r;
  r.kind = ParseResult::Kind::kError;
  r.status = status;
  r.detail = detail;
  return r;
}

ParseResult HttpParser::Parse(absl::string_view data) {
  const char* const base = data.data();
  const size_t size = data.size();
  // A shorter buffer breaks the contract (it must grow); start afresh rather
  // than index past its end.
  if (size < scanned_) Reset();
  for (;;) {
    const void* lf = scanned_ < size
                         ? memchr(base + scanned_, '\n', size - scanned_)
                         : nullptr;
    if (lf == nullptr) {
      bytes_examined_ += size - std::min(size, scanned_);
      scanned_ = std::max(scanned_, size);
      if (state_ == State::kRequestLine) return CheckPartialRequestLine(data);
      if (size - headers_start_ > options_.max_header_bytes) {
        return Error(431, "field section too large");
      }
      return ParseResult();
    }
    const size_t lf_pos = static_cast<const char*>(lf) - base;
    bytes_examined_ += lf_pos + 1 - scanned_;
    const size_t begin = line_start_;
    size_t end = lf_pos;
    if (end > begin && base[end - 1] == '\r') --end;
    line_start_ = scanned_ = lf_pos + 1;

    if (state_ == State::kRequestLine) {
      if (begin == end) {
        if (++leading_empty_lines_ > kMaxLeadingEmptyLines) {
          return Error(400, "too many empty lines before the request");
        }
        method_checked_ = line_start_;
        continue;
      }
      ParseResult r = ParseRequestLine(data, begin, end);
      if (r.kind == ParseResult::Kind::kError) return r;
      state_ = State::kHeaders;
      headers_start_ = line_start_;
      continue;
    }
    // Checked before the line's contents, and counting the line's LF, so
    // that the verdict does not depend on how the bytes were split (the
    // partial check above sees at most these bytes).
    if (lf_pos + 1 - headers_start_ > options_.max_header_bytes) {
      return Error(431, "field section too large");
    }
    if (begin == end) return Finish(data, lf_pos + 1);
    ParseResult r = ParseHeaderLine(data, begin, end);
    if (r.kind == ParseResult::Kind::kError) return r;
  }
}

ParseResult HttpParser::CheckPartialRequestLine(absl::string_view data) {
  // The method, byte by byte as it arrives, so that a stream that is not
  // HTTP (a TLS ClientHello, a binary protocol) fails at once.
  const size_t method_limit = line_start_ + kMaxMethodBytes + 1;
  method_checked_ = std::max(method_checked_, line_start_);
  const size_t stop = std::min(data.size(), method_limit);
  while (method_checked_ < stop) {
    const char c = data[method_checked_];
    const size_t index = method_checked_ - line_start_;
    ++bytes_examined_;
    // A CR first may be the start of an empty line (skipped), and then
    // only its LF, which ends the line, may follow.
    if (index == 0 && c == '\r') {
      ++method_checked_;
      continue;
    }
    if (data[line_start_] == '\r') return Error(400, "bare CR");
    if (c == ' ') {
      if (index == 0) return Error(400, "malformed request line");
      method_checked_ = method_limit;  // the method is complete and valid
      break;
    }
    if (!IsTchar(c)) return Error(400, "malformed request line");
    if (index == kMaxMethodBytes) return Error(501, "method too long");
    ++method_checked_;
  }
  // An overlong line: the method and target are at most their limits and
  // the version 8 bytes plus CR, so a longer line breaks one of these rules,
  // and the full check finds the same first broken rule that it will find
  // once the line is complete.
  if (data.size() - line_start_ > max_request_line_) {
    ParseResult r = ParseRequestLine(data, line_start_, data.size());
    if (r.kind == ParseResult::Kind::kError) return r;
    return Error(400, "malformed request line");  // not reached
  }
  return ParseResult();
}

ParseResult HttpParser::ParseRequestLine(absl::string_view data, size_t begin,
                                         size_t end) {
  const char* const p = data.data();
  bytes_examined_ += end - begin;
  size_t i = begin;
  while (i < end && IsTchar(p[i])) {
    if (i - begin == kMaxMethodBytes) return Error(501, "method too long");
    ++i;
  }
  if (i == begin || i == end || p[i] != ' ') {
    return Error(400, "malformed request line");
  }
  method_ = Span{begin, i - begin};
  const size_t target_begin = ++i;
  // Whole words of target characters first (no SP, CTL, DEL or non-ASCII),
  // up to the limit; the byte loop below decides at the first other byte.
  const size_t fast_end =
      std::min(end, target_begin + options_.max_target_bytes);
  while (i + 8 <= fast_end) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (http_chars::AnyByteBelow(w, 0x21) || http_chars::AnyByteAbove7E(w)) {
      break;
    }
    i += 8;
  }
  while (i < end && p[i] != ' ') {
    if (!http_chars::Is(p[i], http_chars::kTargetChar)) {
      return Error(400, "invalid character in request target");
    }
    if (i - target_begin == options_.max_target_bytes) {
      return Error(414, "request target too long");
    }
    ++i;
  }
  if (i == target_begin || i == end) {
    return Error(400, "malformed request line");
  }
  target_ = Span{target_begin, i - target_begin};
  const absl::string_view version(p + i + 1, end - i - 1);
  if (version.size() != kVersionBytes ||
      version.substr(0, kVersionPrefix.size()) != kVersionPrefix ||
      !IsDigit(version[5]) || version[6] != '.' || !IsDigit(version[7])) {
    return Error(400, "malformed HTTP version");
  }
  if (version[5] != '1') return Error(505, "HTTP version not supported");
  version_minor_ = version[7] - '0';
  return ParseResult();
}

ParseResult HttpParser::ParseHeaderLine(absl::string_view data, size_t begin,
                                        size_t end) {
  const char* const p = data.data();
  bytes_examined_ += end - begin;
  if (IsOws(p[begin])) return Error(400, "obsolete line folding");
  if (header_spans_.size() >= options_.max_headers) {
    return Error(431, "too many header fields");
  }
  // No bounds check: p[end] is the line's CR or LF, which is not a tchar.
  size_t i = begin;
  while (IsTchar(p[i])) ++i;
  if (i == end) return Error(400, "field line without a colon");
  if (p[i] != ':') {
    if (IsOws(p[i])) return Error(400, "whitespace before the colon");
    if (p[i] == '\r') return Error(400, "bare CR");
    return Error(400, "invalid character in field name");
  }
  if (i == begin) return Error(400, "empty field name");
  const size_t name_length = i - begin;
  ++i;
  while (i < end && IsOws(p[i])) ++i;
  const size_t value_begin = i;
  // Whole words without CTL or DEL first (a tab sends the rest of the value
  // to the byte loop).
  while (i + 8 <= end) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (http_chars::AnyByteBelow(w, 0x20) || http_chars::AnyByteIs(w, 0x7f)) {
      break;
    }
    i += 8;
  }
  // If only a partial word is left (the loop did not stop at a bad word),
  // check the value's final 8 bytes, overlapping words already checked,
  // instead of looping over up to 7 bytes.
  if (i < end && end - i < 8 && end - value_begin >= 8) {
    uint64_t w;
    memcpy(&w, p + end - 8, 8);
    if (!http_chars::AnyByteBelow(w, 0x20) && !http_chars::AnyByteIs(w, 0x7f)) {
      i = end;
    }
  }
  for (; i < end; ++i) {
    const char c = p[i];
    if (!http_chars::Is(c, http_chars::kValueChar)) {
      return Error(400, c == '\r' ? "bare CR" : "control character in field");
    }
  }
  size_t value_end = end;
  while (value_end > value_begin && IsOws(p[value_end - 1])) --value_end;
  // Written in place: building the struct on the stack and copying it
  // stalled on store forwarding in profiles.
  HeaderSpan& h = header_spans_.emplace_back();
  h.name.offset = begin;
  h.name.length = name_length;
  h.value.offset = value_begin;
  h.value.length = value_end - value_begin;
  return ParseResult();
}

ParseResult HttpParser::Finish(absl::string_view data, size_t consumed) {
  const char* const p = data.data();
  auto view = [p](Span s) { return absl::string_view(p + s.offset, s.length); };
  HttpRequest& req = request_;
  req.method = view(method_);
  req.target = view(target_);
  req.version_minor = version_minor_;
  req.headers.resize(header_spans_.size());
  for (size_t k = 0; k < header_spans_.size(); ++k) {
    req.headers[k].name = view(header_spans_[k].name);
    req.headers[k].value = view(header_spans_[k].value);
  }
  const bool http11 = version_minor_ >= 1;

  int hosts = 0;
  bool has_length = false;
  bool has_coding = false;
  int codings = 0;
  int chunked_codings = 0;
  bool final_chunked = false;
  bool close = false;
  bool keep_alive_token = false;
  uint64_t length = 0;
  req.host = absl::string_view();
  for (const HttpHeader& h : req.headers) {
    if (http_chars::EqualsIgnoreCase(h.name, "host")) {
      if (++hosts > 1) return Error(400, "more than one Host");
      if (!IsValidHost(h.value)) return Error(400, "invalid Host");
      req.host = h.value;
    } else if (http_chars::EqualsIgnoreCase(h.name, "content-length")) {
      if (!ParseContentLength(h.value, &has_length, &length)) {
        return Error(400, "invalid or conflicting Content-Length");
      }
    } else if (http_chars::EqualsIgnoreCase(h.name, "transfer-encoding")) {
      has_coding = true;
      http_chars::ForEachListElement(h.value, [&](absl::string_view coding) {
        final_chunked = http_chars::EqualsIgnoreCase(coding, "chunked");
        chunked_codings += final_chunked;
        ++codings;
        return true;
      });
    } else if (http_chars::EqualsIgnoreCase(h.name, "connection")) {
      http_chars::ForEachListElement(h.value, [&](absl::string_view option) {
        close |= http_chars::EqualsIgnoreCase(option, "close");
        keep_alive_token |= http_chars::EqualsIgnoreCase(option, "keep-alive");
        return true;
      });
    }
  }
  if (http11 && hosts == 0) return Error(400, "missing Host");
  if (has_coding) {
    // RFC 9112 6.1 and 6.3: every case but "chunked" alone either cannot be
    // framed (400) or needs a decoder this server does not have (501).
    if (!http11) return Error(400, "Transfer-Encoding in HTTP/1.0");
    if (has_length) return Error(400, "Transfer-Encoding with Content-Length");
    if (!final_chunked || chunked_codings > 1) {
      return Error(400, "chunked is not the final coding, or not once");
    }
    if (codings > 1) return Error(501, "unsupported transfer coding");
  }
  if (has_length && length > options_.max_body_bytes) {
    return Error(413, "body too large");
  }
  req.content_length = has_length ? length : 0;
  req.is_chunked = has_coding;
  req.keep_alive = !has_coding && !close && (http11 || keep_alive_token);

  Reset();
  ParseResult r;
  r.kind = ParseResult::Kind::kComplete;
  r.consumed = consumed;
  return r;
}

}  // namespace fileserver
}  // namespace kqio
