#include "fileserver/http_date.h"

#include <string.h>

#include <algorithm>

#include "absl/time/civil_time.h"

namespace kqio {
namespace fileserver {
namespace {

constexpr absl::CivilSecond kEpoch(1970, 1, 1, 0, 0, 0);
constexpr const char* kMonths[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
// In absl::Weekday order: Monday first.
constexpr const char* kDays[7] = {"Mon", "Tue", "Wed", "Thu",
                                  "Fri", "Sat", "Sun"};
constexpr const char* kLongDays[7] = {"Monday",   "Tuesday", "Wednesday",
                                      "Thursday", "Friday",  "Saturday",
                                      "Sunday"};

void Put2(char* p, int v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

// A cursor over the date being parsed; every method consumes on success.
class Reader {
 public:
  explicit Reader(absl::string_view s) : s_(s) {}
  bool Literal(absl::string_view lit) {
    if (s_.substr(0, lit.size()) != lit) return false;
    s_.remove_prefix(lit.size());
    return true;
  }
  // Exactly `n` digits.
  bool Digits(int n, int* out) {
    if (s_.size() < static_cast<size_t>(n)) return false;
    int v = 0;
    for (int i = 0; i < n; ++i) {
      if (s_[i] < '0' || s_[i] > '9') return false;
      v = v * 10 + (s_[i] - '0');
    }
    s_.remove_prefix(n);
    *out = v;
    return true;
  }
  // One of `names`, returning its index.
  bool OneOf(const char* const* names, int count, int* out) {
    for (int i = 0; i < count; ++i) {
      if (Literal(names[i])) {
        *out = i;
        return true;
      }
    }
    return false;
  }
  // hh:mm:ss
  bool TimeOfDay(int* h, int* m, int* s) {
    return Digits(2, h) && Literal(":") && Digits(2, m) && Literal(":") &&
           Digits(2, s);
  }
  bool AtEnd() const { return s_.empty(); }

 private:
  absl::string_view s_;
};

// nullopt unless the fields name a real moment; the grammar allows second
// 60 (a leap second), which counts as the next minute's 00.
absl::optional<absl::Time> Make(int year, int month, int day, int hour,
                                int minute, int second) {
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 ||
      second > 60) {
    return absl::nullopt;
  }
  const absl::CivilDay civil_day(year, month, day);
  if (civil_day.month() != month || civil_day.day() != day) {
    return absl::nullopt;  // e.g. Feb 30, normalised to Mar 2
  }
  const absl::CivilSecond cs(year, month, day, hour, minute, second);
  return absl::FromUnixSeconds(cs - kEpoch);
}

}  // namespace

void FormatHttpDate(absl::Time t, char out[kHttpDateBytes]) {
  static constexpr int64_t kMin = absl::CivilSecond(1, 1, 1, 0, 0, 0) - kEpoch;
  static constexpr int64_t kMax =
      absl::CivilSecond(9999, 12, 31, 23, 59, 59) - kEpoch;
  const int64_t secs = std::clamp(absl::ToUnixSeconds(t), kMin, kMax);
  const absl::CivilSecond cs = kEpoch + secs;
  const int weekday = static_cast<int>(absl::GetWeekday(cs));
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  memcpy(out, kDays[weekday], 3);
  memcpy(out + 3, ", ", 2);
  Put2(out + 5, cs.day());
  out[7] = ' ';
  memcpy(out + 8, kMonths[cs.month() - 1], 3);
  out[11] = ' ';
  const int year = static_cast<int>(cs.year());
  Put2(out + 12, year / 100);
  Put2(out + 14, year % 100);
  out[16] = ' ';
  Put2(out + 17, cs.hour());
  out[19] = ':';
  Put2(out + 20, cs.minute());
  out[22] = ':';
  Put2(out + 23, cs.second());
  memcpy(out + 25, " GMT", 4);
}

std::string FormatHttpDate(absl::Time t) {
  char buffer[kHttpDateBytes];
  FormatHttpDate(t, buffer);
  return std::string(buffer, kHttpDateBytes);
}

void AppendHttpDate(absl::Time t, std::string* out) {
  char buffer[kHttpDateBytes];
  FormatHttpDate(t, buffer);
  out->append(buffer, kHttpDateBytes);
}

absl::optional<absl::Time> ParseHttpDate(absl::string_view s, absl::Time now) {
  int weekday, day, month, year, hour, minute, second;
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  {
    Reader r(s);
    if (r.OneOf(kDays, 7, &weekday) && r.Literal(", ") && r.Digits(2, &day) &&
        r.Literal(" ") && r.OneOf(kMonths, 12, &month) && r.Literal(" ") &&
        r.Digits(4, &year) && r.Literal(" ") &&
        r.TimeOfDay(&hour, &minute, &second) && r.Literal(" GMT") &&
        r.AtEnd()) {
      return Make(year, month + 1, day, hour, minute, second);
    }
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
  {
    Reader r(s);
    if (r.OneOf(kLongDays, 7, &weekday) && r.Literal(", ") &&
        r.Digits(2, &day) && r.Literal("-") && r.OneOf(kMonths, 12, &month) &&
        r.Literal("-") && r.Digits(2, &year) && r.Literal(" ") &&
        r.TimeOfDay(&hour, &minute, &second) && r.Literal(" GMT") &&
        r.AtEnd()) {
      // The latest year ending in these two digits that is not more than 50
      // years after now.
      const int now_year =
          static_cast<int>(absl::ToCivilYear(now, absl::UTCTimeZone()).year());
      int full = now_year - now_year % 100 + year;
      if (full > now_year + 50) full -= 100;
      if (full <= now_year - 50) full += 100;
      return Make(full, month + 1, day, hour, minute, second);
    }
  }
  // asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space)
  {
    Reader r(s);
    int tens = 0;
    if (r.OneOf(kDays, 7, &weekday) && r.Literal(" ") &&
        r.OneOf(kMonths, 12, &month) && r.Literal(" ") &&
        (r.Literal(" ") || r.Digits(1, &tens)) && r.Digits(1, &day) &&
        r.Literal(" ") && r.TimeOfDay(&hour, &minute, &second) &&
        r.Literal(" ") && r.Digits(4, &year) && r.AtEnd()) {
      return Make(year, month + 1, tens * 10 + day, hour, minute, second);
    }
  }
  return absl::nullopt;
}

absl::string_view HttpDateCache::Get(absl::Time now) {
  const int64_t second = absl::ToUnixSeconds(now);
  if (second != second_) {
    FormatHttpDate(now, buffer_);
    second_ = second;
    ++formats_;
  }
  return absl::string_view(buffer_, kHttpDateBytes);
}

}  // namespace fileserver
}  // namespace kqio
