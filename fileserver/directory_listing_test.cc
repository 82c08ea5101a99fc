#include "fileserver/directory_listing.h"

#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

const absl::Time kTime = absl::FromCivil(absl::CivilSecond(2024, 1, 2, 3, 4, 5),
                                         absl::UTCTimeZone());

bool Contains(const std::string& haystack, absl::string_view needle) {
  return haystack.find(std::string(needle)) != std::string::npos;
}

TEST(DirectoryListingTest, Escaping) {
  std::string html;
  AppendHtmlEscaped("<a href=\"x\">'&'</a>", &html);
  EXPECT_EQ(html, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  std::string url;
  AppendPercentEncoded("a b%c/d?e#f:g\"<\xc3\xa9~._-Z9", &url);
  EXPECT_EQ(url, "a%20b%25c%2Fd%3Fe%23f%3Ag%22%3C%C3%A9~._-Z9");
}

TEST(DirectoryListingTest, EntriesAreEscapedAndEncoded) {
  const std::vector<DirectoryEntry> entries = {
      {"sub dir", true, 4096, kTime},
      {"<script>alert(1)</script>.html", false, 12, kTime},
      {"a&b \"q\" 'x'.txt", false, 0, kTime},
      {"100%.txt", false, 7, kTime},
      {"caf\xc3\xa9.txt", false, 1, kTime},
      {"javascript:alert(1)", false, 1, kTime},
  };
  std::string out;
  AppendDirectoryListing("docs/<b>", entries, &out);
  EXPECT_TRUE(Contains(out, "<title>Index of /docs/&lt;b&gt;/</title>"));
  EXPECT_TRUE(Contains(out, "<a href=\"../\">../</a>"));
  EXPECT_TRUE(Contains(out, "<a href=\"sub%20dir/\">sub dir/</a>"));
  EXPECT_TRUE(Contains(out, "<td>-</td>"));  // no size for directories
  EXPECT_TRUE(
      Contains(out,
               "<a href=\"%3Cscript%3Ealert%281%29%3C%2Fscript%3E.html\">"
               "&lt;script&gt;alert(1)&lt;/script&gt;.html</a>"));
  EXPECT_TRUE(Contains(out,
                       "<a href=\"a%26b%20%22q%22%20%27x%27.txt\">"
                       "a&amp;b &quot;q&quot; &#39;x&#39;.txt</a>"));
  EXPECT_TRUE(Contains(out, "<a href=\"100%25.txt\">100%.txt</a>"));
  EXPECT_TRUE(Contains(out, "<a href=\"caf%C3%A9.txt\">caf\xc3\xa9.txt</a>"));
  EXPECT_TRUE(Contains(out, "<a href=\"javascript%3Aalert%281%29\">"));
  EXPECT_TRUE(Contains(out, "<td>2024-01-02 03:04</td><td>12</td>"));
  // No raw markup from any name made it through.
  EXPECT_FALSE(Contains(out, "<script>"));
  EXPECT_FALSE(Contains(out, "<b>"));
  // Entries in the order given.
  EXPECT_LT(out.find("sub%20dir"), out.find("caf%C3%A9"));
}

TEST(DirectoryListingTest, RootHasNoParentLink) {
  std::string out;
  AppendDirectoryListing("", {}, &out);
  EXPECT_TRUE(Contains(out, "<title>Index of /</title>"));
  EXPECT_FALSE(Contains(out, "../"));
  EXPECT_TRUE(Contains(out, "</html>\n"));
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
