#include "fileserver/http_conditional.h"

#include <string>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "fileserver/http_date.h"
#include "fileserver/http_parser.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

using RangeKind = RangeSpec::Kind;

const absl::Time kModified = absl::FromCivil(
    absl::CivilSecond(2024, 1, 2, 3, 4, 5), absl::UTCTimeZone());
const absl::Time kNow = kModified + absl::Hours(24);
constexpr char kModifiedText[] = "Tue, 02 Jan 2024 03:04:05 GMT";
constexpr char kEtag[] = "\"1a-64-17a\"";

Representation File(uint64_t size = 100) {
  Representation f;
  f.etag = kEtag;
  // Sub-second part: Last-Modified goes out truncated, comparisons use that.
  f.last_modified = kModified + absl::Milliseconds(750);
  f.size = size;
  return f;
}

ConditionalRequest Get() {
  ConditionalRequest r;
  r.method = "GET";
  return r;
}

std::string Eval(const ConditionalRequest& r,
                 const Representation& f = File()) {
  const Decision d = EvaluateRequest(r, f, kNow);
  if (d.status == 200 || d.status == 206) {
    return std::to_string(d.status) + " " + std::to_string(d.offset) + "+" +
           std::to_string(d.length);
  }
  return std::to_string(d.status);
}

std::string Range(absl::string_view value, uint64_t size) {
  const RangeSpec r = ParseRange(value, size);
  switch (r.kind) {
    case RangeKind::kIgnore:
      return "ignore";
    case RangeKind::kMultiple:
      return "multiple";
    case RangeKind::kUnsatisfiable:
      return "416";
    case RangeKind::kSatisfiable:
      return std::to_string(r.first) + "+" + std::to_string(r.length);
  }
  return "?";
}

TEST(ETagTest, StrongAndWeakComparison) {
  // RFC 9110 8.8.3.2's table.
  EXPECT_FALSE(ETagListMatches("W/\"1\"", "W/\"1\"", /*strong=*/true));
  EXPECT_TRUE(ETagListMatches("W/\"1\"", "W/\"1\"", /*strong=*/false));
  EXPECT_FALSE(ETagListMatches("W/\"1\"", "W/\"2\"", true));
  EXPECT_FALSE(ETagListMatches("W/\"1\"", "W/\"2\"", false));
  EXPECT_FALSE(ETagListMatches("W/\"1\"", "\"1\"", true));
  EXPECT_TRUE(ETagListMatches("W/\"1\"", "\"1\"", false));
  EXPECT_TRUE(ETagListMatches("\"1\"", "\"1\"", true));
  EXPECT_TRUE(ETagListMatches("\"1\"", "\"1\"", false));
}

TEST(ETagTest, Lists) {
  EXPECT_TRUE(ETagListMatches("*", kEtag, true));
  EXPECT_TRUE(ETagListMatches(" * ", kEtag, false));
  EXPECT_TRUE(ETagListMatches("\"a\", \"1a-64-17a\"", kEtag, true));
  EXPECT_TRUE(ETagListMatches("\"a\",W/\"1a-64-17a\" ,", kEtag, false));
  EXPECT_TRUE(ETagListMatches(",,\"1a-64-17a\"", kEtag, true));
  EXPECT_TRUE(ETagListMatches("\"a,b\", \"1a-64-17a\"", kEtag, true));
  EXPECT_FALSE(ETagListMatches("\"a\", \"b\"", kEtag, false));
  EXPECT_FALSE(ETagListMatches("1a-64-17a", kEtag, false));  // unquoted
  EXPECT_FALSE(ETagListMatches("\"1a-64-17a", kEtag, false));
  EXPECT_FALSE(ETagListMatches("*, \"1a-64-17a\"", kEtag, false));
  EXPECT_FALSE(ETagListMatches("", kEtag, false));
  // A malformed element ends the list; earlier tags still count.
  EXPECT_TRUE(ETagListMatches("\"1a-64-17a\", junk", kEtag, false));
  EXPECT_FALSE(ETagListMatches("junk, \"1a-64-17a\"", kEtag, false));
}

TEST(RangeTest, Forms) {
  EXPECT_EQ(Range("bytes=0-499", 10000), "0+500");  // RFC 9110 14.1.2
  EXPECT_EQ(Range("bytes=500-999", 10000), "500+500");
  EXPECT_EQ(Range("bytes=-500", 10000), "9500+500");
  EXPECT_EQ(Range("bytes=9500-", 10000), "9500+500");
  EXPECT_EQ(Range("bytes=0-0", 10000), "0+1");
  EXPECT_EQ(Range("bytes=-1", 10000), "9999+1");
  EXPECT_EQ(Range("Bytes=1-2", 10), "1+2");  // the unit is case-insensitive
  EXPECT_EQ(Range(" bytes=1-2 ", 10), "1+2");
  EXPECT_EQ(Range("bytes= 1-2", 10), "1+2");
}

TEST(RangeTest, ClampingAndUnsatisfiable) {
  EXPECT_EQ(Range("bytes=5-1000", 10), "5+5");
  EXPECT_EQ(Range("bytes=0-99999999999999999999999", 10), "0+10");
  EXPECT_EQ(Range("bytes=-20", 10), "0+10");
  EXPECT_EQ(Range("bytes=9-9", 10), "9+1");
  EXPECT_EQ(Range("bytes=10-", 10), "416");
  EXPECT_EQ(Range("bytes=10-20", 10), "416");
  EXPECT_EQ(Range("bytes=99999999999999999999999-", 10), "416");
  EXPECT_EQ(Range("bytes=-0", 10), "416");
  // An empty file: no first-pos is satisfiable; "-n" sends the (empty)
  // file whole; "-0" stays unsatisfiable.
  EXPECT_EQ(Range("bytes=0-0", 0), "416");
  EXPECT_EQ(Range("bytes=0-", 0), "416");
  EXPECT_EQ(Range("bytes=-5", 0), "ignore");
  EXPECT_EQ(Range("bytes=-0", 0), "416");
}

TEST(RangeTest, IgnoredAndMultiple) {
  for (const char* v :
       {"", "bytes", "bytes=", "bytes=,", "items=0-1", "bytes=a-b", "bytes=5-1",
        "bytes=1", "bytes=-", "bytes=1-2-3", "bytes=0x1-2", "bytes=1 -2",
        "bytes=--1", "bytes 0-1", "bytes=+1-2"}) {
    EXPECT_EQ(Range(v, 100), "ignore") << v;
  }
  EXPECT_EQ(Range("bytes=0-1,5-6", 100), "multiple");
  EXPECT_EQ(Range("bytes=0-1, -5", 100), "multiple");
  EXPECT_EQ(Range("bytes=0-1,junk", 100), "ignore");
  EXPECT_EQ(Range("bytes=0-1,", 100), "0+2");  // empty elements don't count
}

TEST(ConditionalTest, PlainAndRange) {
  ConditionalRequest r = Get();
  EXPECT_EQ(Eval(r), "200 0+100");
  r.range = "bytes=10-19";
  EXPECT_EQ(Eval(r), "206 10+10");
  r.range = "bytes=100-";
  EXPECT_EQ(Eval(r), "416");
  r.range = "bytes=0-1,3-4";
  EXPECT_EQ(Eval(r), "200 0+100");
  r.range = "garbage";
  EXPECT_EQ(Eval(r), "200 0+100");
  // Range is for GET only.
  r.method = "HEAD";
  r.range = "bytes=10-19";
  EXPECT_EQ(Eval(r), "200 0+100");
}

TEST(ConditionalTest, IfNoneMatch) {
  ConditionalRequest r = Get();
  r.if_none_match = kEtag;
  EXPECT_EQ(Eval(r), "304");
  r.if_none_match = "W/\"1a-64-17a\"";  // weak comparison
  EXPECT_EQ(Eval(r), "304");
  r.if_none_match = "*";
  EXPECT_EQ(Eval(r), "304");
  r.if_none_match = "\"other\"";
  EXPECT_EQ(Eval(r), "200 0+100");
  r.method = "HEAD";
  r.if_none_match = kEtag;
  EXPECT_EQ(Eval(r), "304");
  r.method = "DELETE";
  EXPECT_EQ(Eval(r), "412");
}

TEST(ConditionalTest, IfModifiedSince) {
  ConditionalRequest r = Get();
  r.if_modified_since = kModifiedText;  // equal (at the second): unchanged
  EXPECT_EQ(Eval(r), "304");
  r.if_modified_since = "Tuesday, 02-Jan-24 03:04:05 GMT";
  EXPECT_EQ(Eval(r), "304");
  r.if_modified_since = "Tue Jan  2 03:04:05 2024";
  EXPECT_EQ(Eval(r), "304");
  r.if_modified_since = "Tue, 02 Jan 2024 03:04:04 GMT";  // a second older
  EXPECT_EQ(Eval(r), "200 0+100");
  r.if_modified_since = "Wed, 03 Jan 2024 00:00:00 GMT";
  EXPECT_EQ(Eval(r), "304");
  r.if_modified_since = "not a date";
  EXPECT_EQ(Eval(r), "200 0+100");
  // A date after now is ignored: the client's clock cannot be trusted.
  r.if_modified_since = "Fri, 01 Jan 2100 00:00:00 GMT";
  EXPECT_EQ(Eval(r), "200 0+100");
  r.method = "DELETE";
  r.if_modified_since = kModifiedText;
  EXPECT_EQ(Eval(r), "200 0+100");
}

TEST(ConditionalTest, IfNoneMatchOutranksIfModifiedSince) {
  ConditionalRequest r = Get();
  r.if_modified_since = kModifiedText;  // alone: 304
  r.if_none_match = "\"other\"";        // present and false: IMS ignored
  EXPECT_EQ(Eval(r), "200 0+100");
  r.if_none_match = kEtag;
  r.if_modified_since = "Mon, 01 Jan 2024 00:00:00 GMT";  // alone: 200
  EXPECT_EQ(Eval(r), "304");
}

TEST(ConditionalTest, IfMatchAndIfUnmodifiedSince) {
  ConditionalRequest r = Get();
  r.if_match = "\"other\"";
  EXPECT_EQ(Eval(r), "412");
  r.if_match = "W/\"1a-64-17a\"";  // strong comparison: weak never matches
  EXPECT_EQ(Eval(r), "412");
  r.if_match = "*";
  EXPECT_EQ(Eval(r), "200 0+100");
  r.if_match = kEtag;
  r.if_unmodified_since = "Mon, 01 Jan 2024 00:00:00 GMT";  // ignored
  EXPECT_EQ(Eval(r), "200 0+100");
  r.if_match = "";
  EXPECT_EQ(Eval(r), "412");
  r.if_unmodified_since = kModifiedText;
  EXPECT_EQ(Eval(r), "200 0+100");
  r.if_unmodified_since = "garbage";
  EXPECT_EQ(Eval(r), "200 0+100");
  // 412 outranks 304.
  r.if_match = "\"other\"";
  r.if_none_match = kEtag;
  EXPECT_EQ(Eval(r), "412");
  // 304 outranks a Range.
  r = Get();
  r.if_none_match = kEtag;
  r.range = "bytes=0-1";
  EXPECT_EQ(Eval(r), "304");
}

TEST(ConditionalTest, IfRange) {
  ConditionalRequest r = Get();
  r.range = "bytes=0-9";
  r.if_range = kEtag;
  EXPECT_EQ(Eval(r), "206 0+10");
  r.if_range = "\"stale\"";
  EXPECT_EQ(Eval(r), "200 0+100");
  r.if_range = "W/\"1a-64-17a\"";  // weak validators never hold
  EXPECT_EQ(Eval(r), "200 0+100");
  r.if_range = kModifiedText;
  EXPECT_EQ(Eval(r), "206 0+10");
  r.if_range = "Tue, 02 Jan 2024 03:04:06 GMT";  // must be equal
  EXPECT_EQ(Eval(r), "200 0+100");
  r.if_range = "garbage";
  EXPECT_EQ(Eval(r), "200 0+100");
  // A Last-Modified in the current second is not strong: the file may
  // still change within it and keep the date.
  Representation fresh = File();
  fresh.last_modified = kNow;
  const std::string date = FormatHttpDate(fresh.last_modified);
  r.if_range = date;
  EXPECT_EQ(Eval(r, fresh), "200 0+100");
  // If-Range holds, but the range is unsatisfiable.
  r.if_range = kEtag;
  r.range = "bytes=500-";
  EXPECT_EQ(Eval(r), "416");
}

TEST(ConditionalTest, EmptyFile) {
  ConditionalRequest r = Get();
  r.range = "bytes=0-0";
  EXPECT_EQ(Eval(r, File(0)), "416");
  r.range = "bytes=-10";
  EXPECT_EQ(Eval(r, File(0)), "200 0+0");
}

TEST(ConditionalTest, ReadFromRequest) {
  HttpParser parser;
  const std::string req =
      "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\n"
      "if-none-match: \"1a-64-17a\"\r\nRange: bytes=0-1\r\n"
      "If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT\r\n"
      "If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT\r\n\r\n";
  ASSERT_EQ(parser.Parse(req).kind, ParseResult::Kind::kComplete);
  std::string s1, s2;
  const ConditionalRequest c =
      ReadConditionalFields(parser.request(), &s1, &s2);
  EXPECT_EQ(c.method, "GET");
  EXPECT_EQ(c.if_none_match, "\"x\", \"1a-64-17a\"");
  EXPECT_EQ(c.if_modified_since, "");  // repeated: invalid, ignored
  EXPECT_EQ(c.range, "bytes=0-1");
  EXPECT_EQ(Eval(c), "304");

  HttpParser two_ranges;
  ASSERT_EQ(two_ranges
                .Parse("GET / HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\n"
                       "If-Range: \"a\"\r\nIf-Range: \"b\"\r\n\r\n")
                .kind,
            ParseResult::Kind::kComplete);
  EXPECT_EQ(ReadConditionalFields(two_ranges.request(), &s1, &s2).range, "");
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
