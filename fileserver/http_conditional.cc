#include "fileserver/http_conditional.h"

#include "absl/strings/match.h"
#include "absl/types/optional.h"
#include "fileserver/http_chars.h"
#include "fileserver/http_date.h"

namespace kqio {
namespace fileserver {
namespace {

using http_chars::IsDigit;
using http_chars::IsOws;
using http_chars::TrimOws;

// Last-Modified travels with one-second resolution; comparisons with dates
// from the client must use what it was sent.
absl::Time ToSecond(absl::Time t) {
  return absl::FromUnixSeconds(absl::ToUnixSeconds(t));
}

// A single date field, or nothing if it is absent or not a valid date.
absl::optional<absl::Time> DateField(absl::string_view value, absl::Time now) {
  if (value.empty()) return absl::nullopt;
  return ParseHttpDate(value, now);
}

// 1*DIGIT, saturating at UINT64_MAX (a valid but huge position).
bool ParsePosition(absl::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t n = 0;
  for (char c : s) {
    if (!IsDigit(c)) return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
  }
  *out = n;
  return true;
}

bool IfRangeHolds(absl::string_view if_range, const Representation& file,
                  absl::Time now) {
  if (if_range.empty()) return true;
  if (if_range.front() == '"') {
    // Strong comparison with one entity tag; our tags never need W/.
    return if_range == file.etag && !absl::StartsWith(file.etag, "W/");
  }
  if (absl::StartsWith(if_range, "W/")) return false;
  const absl::optional<absl::Time> date = ParseHttpDate(if_range, now);
  const absl::Time modified = ToSecond(file.last_modified);
  return date.has_value() && *date == modified &&
         modified + absl::Seconds(1) <= now;
}

}  // namespace

ConditionalRequest ReadConditionalFields(const HttpRequest& request,
                                         std::string* if_match_scratch,
                                         std::string* if_none_match_scratch) {
  ConditionalRequest c;
  c.method = request.method;
  c.if_match = request.HeaderList("if-match", if_match_scratch);
  c.if_none_match = request.HeaderList("if-none-match", if_none_match_scratch);
  auto single = [&request](absl::string_view name) {
    return request.HeaderCount(name) == 1 ? request.Header(name)
                                          : absl::string_view();
  };
  c.if_modified_since = single("if-modified-since");
  c.if_unmodified_since = single("if-unmodified-since");
  c.if_range = single("if-range");
  c.range = single("range");
  if (request.HeaderCount("if-range") > 1) c.range = absl::string_view();
  return c;
}

bool ETagListMatches(absl::string_view list, absl::string_view etag,
                     bool strong) {
  list = TrimOws(list);
  if (list == "*") return true;
  const bool etag_weak = absl::StartsWith(etag, "W/");
  const absl::string_view opaque = etag_weak ? etag.substr(2) : etag;
  size_t i = 0;
  while (i < list.size()) {
    if (IsOws(list[i]) || list[i] == ',') {
      ++i;
      continue;
    }
    bool weak = false;
    if (list.substr(i, 2) == "W/") {
      weak = true;
      i += 2;
    }
    if (i >= list.size() || list[i] != '"') return false;
    const size_t close = list.find('"', i + 1);
    if (close == absl::string_view::npos) return false;
    const absl::string_view tag = list.substr(i, close + 1 - i);
    if (tag == opaque && (!strong || (!weak && !etag_weak))) return true;
    i = close + 1;
    while (i < list.size() && IsOws(list[i])) ++i;
    if (i < list.size() && list[i] != ',') return false;
  }
  return false;
}

RangeSpec ParseRange(absl::string_view value, uint64_t size) {
  RangeSpec ignore;
  value = TrimOws(value);
  constexpr absl::string_view kUnit = "bytes=";
  if (!absl::StartsWithIgnoreCase(value, kUnit)) return ignore;
  value.remove_prefix(kUnit.size());

  absl::string_view spec;
  int count = 0;
  bool well_formed = true;
  http_chars::ForEachListElement(value, [&](absl::string_view element) {
    ++count;
    spec = element;
    const size_t dash = element.find('-');
    well_formed = dash != absl::string_view::npos;
    return well_formed;
  });
  if (!well_formed || count == 0) return ignore;
  if (count > 1) {
    RangeSpec multiple;
    multiple.kind = RangeSpec::Kind::kMultiple;
    return multiple;
  }

  const size_t dash = spec.find('-');
  const absl::string_view first_text = spec.substr(0, dash);
  const absl::string_view last_text = spec.substr(dash + 1);
  RangeSpec out;
  if (first_text.empty()) {
    // "-n": the last n bytes.
    uint64_t suffix = 0;
    if (!ParsePosition(last_text, &suffix)) return ignore;
    if (suffix == 0) {
      out.kind = RangeSpec::Kind::kUnsatisfiable;
      return out;
    }
    if (size == 0) return ignore;  // no byte to send: the (empty) file
    out.kind = RangeSpec::Kind::kSatisfiable;
    out.length = suffix < size ? suffix : size;
    out.first = size - out.length;
    return out;
  }
  uint64_t first = 0;
  uint64_t last = UINT64_MAX;
  if (!ParsePosition(first_text, &first)) return ignore;
  if (!last_text.empty()) {
    if (!ParsePosition(last_text, &last)) return ignore;
    if (last < first) return ignore;  // invalid (RFC 9110 14.1.1)
  }
  if (first >= size) {
    out.kind = RangeSpec::Kind::kUnsatisfiable;
    return out;
  }
  if (last >= size) last = size - 1;
  out.kind = RangeSpec::Kind::kSatisfiable;
  out.first = first;
  out.length = last - first + 1;
  return out;
}

Decision EvaluateRequest(const ConditionalRequest& request,
                         const Representation& file, absl::Time now) {
  const bool get = request.method == "GET";
  const bool get_or_head = get || request.method == "HEAD";
  const absl::Time modified = ToSecond(file.last_modified);
  Decision d;
  d.length = file.size;

  if (!request.if_match.empty()) {
    if (!ETagListMatches(request.if_match, file.etag, /*strong=*/true)) {
      d.status = 412;
      return d;
    }
  } else if (absl::optional<absl::Time> date =
                 DateField(request.if_unmodified_since, now)) {
    if (modified > *date) {
      d.status = 412;
      return d;
    }
  }

  if (!request.if_none_match.empty()) {
    if (ETagListMatches(request.if_none_match, file.etag, /*strong=*/false)) {
      d.status = get_or_head ? 304 : 412;
      return d;
    }
  } else if (get_or_head) {
    const absl::optional<absl::Time> date =
        DateField(request.if_modified_since, now);
    if (date.has_value() && *date <= now && modified <= *date) {
      d.status = 304;
      return d;
    }
  }

  if (!get || request.range.empty() ||
      !IfRangeHolds(request.if_range, file, now)) {
    return d;
  }
  const RangeSpec range = ParseRange(request.range, file.size);
  switch (range.kind) {
    case RangeSpec::Kind::kSatisfiable:
      d.status = 206;
      d.offset = range.first;
      d.length = range.length;
      break;
    case RangeSpec::Kind::kUnsatisfiable:
      d.status = 416;
      d.length = 0;
      break;
    case RangeSpec::Kind::kIgnore:
    case RangeSpec::Kind::kMultiple:
      break;
  }
  return d;
}

}  // namespace fileserver
}  // namespace kqio
