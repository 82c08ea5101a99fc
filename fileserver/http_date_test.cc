#include "fileserver/http_date.h"

#include <string>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

absl::Time Utc(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s),
                         absl::UTCTimeZone());
}

// RFC 9110 5.6.7's example moment.
const absl::Time kExample = Utc(1994, 11, 6, 8, 49, 37);
const absl::Time kNow = Utc(2024, 6, 1, 12, 0, 0);

TEST(HttpDateTest, FormatsImfFixdate) {
  EXPECT_EQ(FormatHttpDate(kExample), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(FormatHttpDate(absl::UnixEpoch()), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(FormatHttpDate(Utc(2000, 2, 29, 23, 59, 59)),
            "Tue, 29 Feb 2000 23:59:59 GMT");
  // Sub-second parts are truncated, also before the epoch.
  EXPECT_EQ(FormatHttpDate(kExample + absl::Milliseconds(999)),
            "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(FormatHttpDate(absl::UnixEpoch() - absl::Milliseconds(1)),
            "Wed, 31 Dec 1969 23:59:59 GMT");
  // Out of range: clamped to four-digit years.
  EXPECT_EQ(FormatHttpDate(absl::InfiniteFuture()),
            "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(FormatHttpDate(absl::InfinitePast()),
            "Mon, 01 Jan 0001 00:00:00 GMT");
  std::string s = "x";
  AppendHttpDate(kExample, &s);
  EXPECT_EQ(s.size(), 1 + kHttpDateBytes);
}

TEST(HttpDateTest, ParsesAllThreeFormats) {
  EXPECT_EQ(ParseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", kNow), kExample);
  EXPECT_EQ(ParseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", kNow), kExample);
  EXPECT_EQ(ParseHttpDate("Sun Nov  6 08:49:37 1994", kNow), kExample);
  EXPECT_EQ(ParseHttpDate("Sun Nov 16 08:49:37 1994", kNow),
            Utc(1994, 11, 16, 8, 49, 37));
}

TEST(HttpDateTest, RoundTrips) {
  for (absl::Time t :
       {absl::UnixEpoch(), kExample, kNow, Utc(2038, 1, 19, 3, 14, 8),
        Utc(9999, 12, 31, 0, 0, 0), Utc(1900, 3, 1, 0, 0, 0)}) {
    EXPECT_EQ(ParseHttpDate(FormatHttpDate(t), kNow), t) << t;
  }
}

TEST(HttpDateTest, TwoDigitYearsWithinFiftyYears) {
  // Now is 2024: "74" is 2074 (50 years ahead), "75" is 1975.
  EXPECT_EQ(ParseHttpDate("Monday, 01-Jan-74 00:00:00 GMT", kNow),
            Utc(2074, 1, 1, 0, 0, 0));
  EXPECT_EQ(ParseHttpDate("Wednesday, 01-Jan-75 00:00:00 GMT", kNow),
            Utc(1975, 1, 1, 0, 0, 0));
  EXPECT_EQ(ParseHttpDate("Saturday, 01-Jan-00 00:00:00 GMT", kNow),
            Utc(2000, 1, 1, 0, 0, 0));
  // Near a century's end, "01" is the next century.
  EXPECT_EQ(
      ParseHttpDate("Monday, 01-Jan-01 00:00:00 GMT", Utc(2099, 6, 1, 0, 0, 0)),
      Utc(2101, 1, 1, 0, 0, 0));
}

TEST(HttpDateTest, LeapSecondCountsAsNextMinute) {
  EXPECT_EQ(ParseHttpDate("Sat, 31 Dec 2016 23:59:60 GMT", kNow),
            Utc(2017, 1, 1, 0, 0, 0));
}

TEST(HttpDateTest, RejectsInvalid) {
  for (const char* s : {
           "",
           "Sun, 06 Nov 1994 08:49:37 UTC",
           "Sun, 06 Nov 1994 08:49:37 gmt",
           "sun, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 nov 1994 08:49:37 GMT",
           "Sun, 6 Nov 1994 08:49:37 GMT",
           "Sun,  06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37 GMT ",
           " Sun, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 94 08:49:37 GMT",
           "Sun, 06 Nov 1994 8:49:37 GMT",
           "Sun, 06 Nov 1994 24:00:00 GMT",
           "Sun, 06 Nov 1994 08:60:00 GMT",
           "Sun, 06 Nov 1994 08:49:61 GMT",
           "Sun, 31 Nov 1994 08:49:37 GMT",
           "Sun, 30 Feb 1994 08:49:37 GMT",
           "Sun, 29 Feb 1900 08:49:37 GMT",
           "Sun, 00 Nov 1994 08:49:37 GMT",
           "Xyz, 06 Nov 1994 08:49:37 GMT",
           "Sun, 06 Nov 1994 08:49:37",
           "Sun, 06 Nov 1994",
           "Sunday, 06-Nov-1994 08:49:37 GMT",
           "Sun, 06-Nov-94 08:49:37 GMT",
           "Sun Nov 6 08:49:37 1994",
           "Sun Nov  6 08:49:37 94",
           "Sun Nov  6 08:49:37 1994 GMT",
           "1994-11-06T08:49:37Z",
           "784111777",
       }) {
    EXPECT_FALSE(ParseHttpDate(s, kNow).has_value()) << s;
  }
}

TEST(HttpDateTest, CacheFormatsOncePerSecond) {
  HttpDateCache cache;
  EXPECT_EQ(cache.Get(kExample), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(cache.Get(kExample + absl::Milliseconds(500)),
            "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(cache.formats(), 1u);
  EXPECT_EQ(cache.Get(kExample + absl::Seconds(1)),
            "Sun, 06 Nov 1994 08:49:38 GMT");
  EXPECT_EQ(cache.formats(), 2u);
  // Going back (a clock step) reformats too.
  EXPECT_EQ(cache.Get(kExample), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(cache.formats(), 3u);
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
