#include "fileserver/http_target.h"

#include <string>

#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

// "path" plus "/" when it names a directory, or the error's code name.
std::string Resolve(absl::string_view target,
                    TargetOptions options = TargetOptions()) {
  absl::StatusOr<TargetPath> r = ParseTarget(target, options);
  if (!r.ok()) return absl::StatusCodeToString(r.status().code());
  return r->path + (r->is_directory ? "/" : "");
}

constexpr char kBad[] = "INVALID_ARGUMENT";      // 400
constexpr char kDenied[] = "PERMISSION_DENIED";  // 403

TEST(HttpTargetTest, OriginForm) {
  EXPECT_EQ(Resolve("/"), "/");  // the root: "" and a directory
  EXPECT_EQ(Resolve("/index.html"), "index.html");
  EXPECT_EQ(Resolve("/a/b/c.txt"), "a/b/c.txt");
  EXPECT_EQ(Resolve("/docs/"), "docs/");
  EXPECT_EQ(Resolve("/a%20b/%C3%A9t%c3%a9.txt"), "a b/\xc3\xa9t\xc3\xa9.txt");
  EXPECT_EQ(Resolve("/100%25.txt"), "100%.txt");  // decoded once only
  EXPECT_EQ(Resolve("/%2541"), "%41");
  EXPECT_EQ(Resolve("/a+b"), "a+b");  // '+' is not a space in a path
  EXPECT_EQ(Resolve("/a...b"), "a...b");
}

TEST(HttpTargetTest, QueryIsDropped) {
  EXPECT_EQ(Resolve("/a.txt?x=1&y=%zz"), "a.txt");
  EXPECT_EQ(Resolve("/dir/?q"), "dir/");
  EXPECT_EQ(Resolve("/?"), "/");
}

TEST(HttpTargetTest, EmptyAndDotSegmentsCollapse) {
  EXPECT_EQ(Resolve("//a///b//"), "a/b/");
  EXPECT_EQ(Resolve("/a/./b"), "a/b");
  EXPECT_EQ(Resolve("/a/."), "a/");
  EXPECT_EQ(Resolve("/."), "/");
  EXPECT_EQ(Resolve("/%2e/a"), "a");
}

TEST(HttpTargetTest, AbsoluteForm) {
  EXPECT_EQ(Resolve("http://example.com/a/b"), "a/b");
  EXPECT_EQ(Resolve("HTTPS://example.com:8443/x/"), "x/");
  EXPECT_EQ(Resolve("http://example.com"), "/");
  EXPECT_EQ(Resolve("http://example.com?q=/etc"), "/");
  EXPECT_EQ(Resolve("http://h/../etc/passwd"), kBad);
  EXPECT_EQ(Resolve("http://h/%2e%2e/etc/passwd"), kBad);
  EXPECT_EQ(Resolve("ftp://h/a"), kBad);
}

TEST(HttpTargetTest, OtherFormsAreRefused) {
  EXPECT_EQ(Resolve("*"), kBad);                // asterisk-form
  EXPECT_EQ(Resolve("example.com:443"), kBad);  // authority-form
  EXPECT_EQ(Resolve("a/b"), kBad);
  EXPECT_EQ(Resolve(""), kBad);
  EXPECT_EQ(Resolve("/a#frag"), kBad);
}

TEST(HttpTargetTest, TraversalIsRejectedNotResolved) {
  for (const char* target : {
           "/..",
           "/../etc/passwd",
           "/a/../b",  // harmless, but a real client never sends it
           "/a/b/../../../etc/passwd",
           "/%2e%2e/",
           "/%2E%2E/etc/passwd",
           "/.%2e/x",
           "/%2e./x",
           "/.%2E",
           "/a/..%2f..",
           "/a/%2e%2e%2f%2e%2e/etc",
           "/..%5c..%5cwindows",
           "\\..\\",
           "/\\..\\etc",
           "/a\\b",
           "/%5c",
           "/%00",
           "/a%00.html",
           "/a%2fb",
           "/a%2Fb",
           "/%0d%0aSet-Cookie:x",
           "/%7f",
           "/a%",
           "/a%2",
           "/a%zz",
           "/a%g0",
           "/%%30%30",
       }) {
    EXPECT_EQ(Resolve(target), kBad) << target;
    EXPECT_EQ(Resolve(target, TargetOptions{true}), kBad) << target;
  }
  // Raw NUL and control characters (the parser never passes these; a
  // caller using the decoder alone must still be safe).
  EXPECT_EQ(Resolve(absl::string_view("/a\0b", 4)), kBad);
  EXPECT_EQ(Resolve("/a\tb"), kBad);
  EXPECT_EQ(Resolve("/a b"), kBad);
  EXPECT_EQ(Resolve("/\xc3\xa9"), kBad);
}

TEST(HttpTargetTest, DotFiles) {
  EXPECT_EQ(Resolve("/.git/config"), kDenied);
  EXPECT_EQ(Resolve("/a/.env"), kDenied);
  EXPECT_EQ(Resolve("/%2egit/config"), kDenied);
  EXPECT_EQ(Resolve("/.well-known/"), kDenied);
  EXPECT_EQ(Resolve("/..."), kDenied);  // a name, not traversal
  EXPECT_EQ(Resolve("/a.b/c."), "a.b/c.");
  const TargetOptions allow{true};
  EXPECT_EQ(Resolve("/.git/config", allow), ".git/config");
  EXPECT_EQ(Resolve("/.well-known/", allow), ".well-known/");
  EXPECT_EQ(Resolve("/...", allow), "...");
  // Malformed outranks forbidden.
  EXPECT_EQ(Resolve("/.git/%00"), kBad);
  EXPECT_EQ(Resolve("/.git/../x"), kBad);
}

TEST(HttpTargetTest, RawPathIsKeptForRedirects) {
  absl::StatusOr<TargetPath> r = ParseTarget("/a%20dir?x=1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->path, "a dir");
  EXPECT_FALSE(r->is_directory);
  EXPECT_EQ(r->raw_path, "/a%20dir");
  r = ParseTarget("http://h");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->raw_path, "/");
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
