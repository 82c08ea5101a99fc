// Character classes of the HTTP grammar (RFC 9110 5.6, RFC 3986 2), shared
// by the fileserver's parsers.  Table lookups: these sit in the innermost
// loops of request parsing.  Header-only, stateless, thread-safe.
#ifndef KQIO_FILESERVER_HTTP_CHARS_H_
#define KQIO_FILESERVER_HTTP_CHARS_H_

#include <array>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace kqio {
namespace fileserver {
namespace http_chars {

enum : uint8_t {
  kTchar = 1 << 0,       // token: field names, methods, codings
  kTargetChar = 1 << 1,  // VCHAR: allowed in a request-target
  kValueChar = 1 << 2,   // field-vchar / SP / HTAB: allowed in field values
  kUnreserved = 1 << 3,  // RFC 3986 unreserved: never percent-encoded
  kHexDigit = 1 << 4,
};

constexpr std::array<uint8_t, 256> MakeTable() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t bits = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    bool tchar = alpha || digit;
    for (char s : absl::string_view("!#$%&'*+-.^_`|~")) tchar |= c == s;
    if (tchar) bits |= kTchar;
    if (c > 0x20 && c < 0x7f) bits |= kTargetChar;
    if (c == '\t' || (c >= 0x20 && c != 0x7f)) bits |= kValueChar;
    if (alpha || digit || c == '-' || c == '.' || c == '_' || c == '~') {
      bits |= kUnreserved;
    }
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
      bits |= kHexDigit;
    }
    t[c] = bits;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kTable = MakeTable();

inline bool Is(char c, uint8_t cls) {
  return (kTable[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool IsTchar(char c) { return Is(c, kTchar); }
inline bool IsOws(char c) { return c == ' ' || c == '\t'; }
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Eight bytes at a time (SWAR), for the long runs in targets and field
// values; each test is exact (a borrow or carry only crosses a byte that
// already fails it).  The caller loads with memcpy, so any alignment works.
inline constexpr uint64_t kOnes = 0x0101010101010101ULL;
inline constexpr uint64_t kHighs = 0x8080808080808080ULL;
// Some byte of `w` is below `n` (n <= 128).
inline bool AnyByteBelow(uint64_t w, uint8_t n) {
  return ((w - kOnes * n) & ~w & kHighs) != 0;
}
// Some byte of `w` is 0x7f or above.
inline bool AnyByteAbove7E(uint64_t w) {
  return (((w + kOnes) | w) & kHighs) != 0;
}
// Some byte of `w` equals `b`.
inline bool AnyByteIs(uint64_t w, uint8_t b) {
  return AnyByteBelow(w ^ (kOnes * b), 1);
}

// 0-15, or -1 for a non-hex character.
inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Case-insensitive ASCII equality, inline: field-name matching is on the
// per-request path, where a call into the Abseil library per comparison
// showed in profiles.
inline bool EqualsIgnoreCase(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + ('a' - 'A'));
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + ('a' - 'A'));
    if (x != y) return false;
  }
  return true;
}

// `s` without leading and trailing spaces and tabs.
inline absl::string_view TrimOws(absl::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// Calls `fn(element)` for each element of a comma-separated list (RFC 9110
// 5.6.1), trimmed; empty elements are skipped, as the RFC asks.  Does not
// understand quoted strings: callers whose elements may contain commas in
// quotes (entity tags may) parse those themselves.  Stops early when `fn`
// returns false; returns false then.
template <typename Fn>
bool ForEachListElement(absl::string_view list, Fn fn) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    absl::string_view element = list.substr(0, comma);
    list = comma == absl::string_view::npos ? absl::string_view()
                                            : list.substr(comma + 1);
    element = TrimOws(element);
    if (element.empty()) continue;
    if (!fn(element)) return false;
  }
  return true;
}

}  // namespace http_chars
}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_HTTP_CHARS_H_
