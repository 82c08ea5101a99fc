#include "fileserver/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

absl::Time Noon() {
  return absl::FromCivil(absl::CivilSecond(2026, 11, 27, 12, 0, 5),
                         absl::UTCTimeZone());
}

TEST(AccessLogLineTest, CombinedFormat) {
  AccessLogEntry e;
  e.peer = "127.0.0.1";
  e.method = "GET";
  e.target = "/a/b.html?x=1";
  e.version_minor = 1;
  e.referer = "http://example/";
  e.user_agent = "curl/7.88.1";
  e.status = 200;
  e.bytes = 1234;
  std::string out;
  AppendAccessLogLine(e, Noon(), &out);
  EXPECT_EQ(out,
            "127.0.0.1 - - [27/Nov/2026:12:00:05 +0000] \"GET /a/b.html?x=1 "
            "HTTP/1.1\" 200 1234 \"http://example/\" \"curl/7.88.1\"\n");
}

TEST(AccessLogLineTest, UnparsedRequestAndMissingFields) {
  AccessLogEntry e;
  e.peer = "::1";
  e.status = 400;
  e.bytes = 10;
  std::string out;
  AppendAccessLogLine(e, Noon(), &out);
  EXPECT_EQ(out, "::1 - - [27/Nov/2026:12:00:05 +0000] \"-\" 400 10 \"-\" "
                 "\"-\"\n");
}

TEST(AccessLogLineTest, RequestDataCannotForgeLines) {
  AccessLogEntry e;
  e.peer = "127.0.0.1";
  e.method = "GET";
  e.target = "/\"x\\";
  e.user_agent = "evil\n127.0.0.1 - - fake\x7f";
  e.status = 404;
  std::string out;
  AppendAccessLogLine(e, Noon(), &out);
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
  EXPECT_NE(out.find("/\\x22x\\x5C"), std::string::npos) << out;
  EXPECT_NE(out.find("evil\\x0A127.0.0.1 - - fake\\x7F"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
