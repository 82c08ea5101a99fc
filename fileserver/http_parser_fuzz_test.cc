// Fuzz-style test of the request parser and the target decoder: a seeded
// generator of plausible requests, mutated (bit flips, truncation,
// insertion of CR, LF, NUL, '%', ...), fed to HttpParser whole, split at a
// random point and (for some) byte by byte, and every complete request's
// target to ParseTarget.  Under --config=asan any out-of-bounds read fails
// the test; in every config each outcome must be one of the allowed ones,
// identical however the bytes were split, and every decoded path safe.
// Deterministic: a fixed seed and a hand-rolled PRNG (the standard
// distributions differ between libraries).
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fileserver/http_parser.h"
#include "fileserver/http_target.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

constexpr int kInputs = 200'000;

// xorshift64*: small, fast, the same everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1DULL;
  }
  size_t Below(size_t n) { return n == 0 ? 0 : Next() % n; }
  bool OneIn(size_t n) { return Below(n) == 0; }
  template <typename T, size_t N>
  const T& Pick(const T (&items)[N]) {
    return items[Below(N)];
  }

 private:
  uint64_t state_;
};

// Each part comes from a pool of valid values, or now and then from one of
// invalid ones, so that every outcome is common.
const char* const kMethods[] = {"GET",     "GET",  "HEAD",    "POST",
                                "OPTIONS", "BREW", "M-SEARCH"};
const char* const kBadMethods[] = {"G(T", "", "GET GET",
                                   "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM"};
const char* const kTargets[] = {"/",
                                "/index.html",
                                "/a/b/c.txt",
                                "/dir/",
                                "/a%20b",
                                "/%2e%2e/etc/passwd",
                                "/../etc/passwd",
                                "/a/..%2f..",
                                "/.git/config",
                                "/%00",
                                "/a?x=1&y=%zz",
                                "http://example.com/x/../y",
                                "HTTPS://h",
                                "*",
                                "example.com:443",
                                "/a//b/./c",
                                "/%C3%A9",
                                "/\\..\\",
                                "/.%2E/",
                                "/a#b",
                                "/%"};
const char* const kVersions[] = {"HTTP/1.1", "HTTP/1.1", "HTTP/1.0"};
const char* const kBadVersions[] = {"HTTP/2.0", "HTTP/1.10", "http/1.1",
                                    "HTTP/0.9", "HTTP/1."};
const char* const kFields[] = {
    "User-Agent: fuzz/1.0",
    "Accept: */*",
    "Content-Length: 5",
    "Content-Length: 5, 5",
    "Transfer-Encoding: chunked",
    "Connection: close",
    "Connection: keep-alive",
    "If-None-Match: \"x\"",
    "Range: bytes=0-1",
    "X-Long: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
const char* const kBadFields[] = {"Host: a b",
                                  "Host: second",
                                  "Content-Length: 7",
                                  "Content-Length: 99999999999999999999",
                                  "Content-Length: -1",
                                  "Transfer-Encoding: gzip, chunked",
                                  "Transfer-Encoding: gzip",
                                  " folded",
                                  "Bad Name: x",
                                  "NoColon",
                                  ": empty"};
const char kSpecial[] = {'\r', '\n', '\0', '%', ' ',    ':',    '\t', '.',
                         '/',  '\\', '?',  '#', '\x80', '\xff', 'a',  '2'};

std::string RandomTarget(Rng& rng) {
  if (!rng.OneIn(3)) return rng.Pick(kTargets);
  static const char kAlphabet[] = "/ab.%2eEf0\\?#:~";
  std::string t = "/";
  const size_t n = rng.Below(40);
  for (size_t i = 0; i < n; ++i) t.push_back(kAlphabet[rng.Below(15)]);
  return t;
}

std::string Generate(Rng& rng) {
  const char* eol = rng.OneIn(5) ? "\n" : "\r\n";
  std::string s;
  if (rng.OneIn(10)) s += eol;
  absl::StrAppend(&s, rng.OneIn(8) ? rng.Pick(kBadMethods) : rng.Pick(kMethods),
                  " ", RandomTarget(rng), " ",
                  rng.OneIn(8) ? rng.Pick(kBadVersions) : rng.Pick(kVersions),
                  eol);
  if (!rng.OneIn(8)) absl::StrAppend(&s, "Host: example.com", eol);
  const size_t fields = rng.Below(8);
  for (size_t i = 0; i < fields; ++i) {
    absl::StrAppend(&s, rng.OneIn(8) ? rng.Pick(kBadFields) : rng.Pick(kFields),
                    eol);
  }
  s += eol;
  if (rng.OneIn(4)) s += "hello";
  if (rng.OneIn(4)) s += "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  return s;
}

void Mutate(Rng& rng, std::string* s) {
  const size_t mutations = rng.Below(4);
  for (size_t m = 0; m < mutations && !s->empty(); ++m) {
    const size_t at = rng.Below(s->size());
    switch (rng.Below(6)) {
      case 0:  // bit flip
        (*s)[at] = static_cast<char>((*s)[at] ^ (1 << rng.Below(8)));
        break;
      case 1:  // replace
        (*s)[at] = rng.Pick(kSpecial);
        break;
      case 2:  // insert
        s->insert(s->begin() + at, rng.Pick(kSpecial));
        break;
      case 3:  // delete
        s->erase(at, 1 + rng.Below(4));
        break;
      case 4:  // truncate
        s->resize(at);
        break;
      case 5:  // repeat a slice (long lines, many fields)
        s->insert(at, s->substr(at, rng.Below(64)), 0, std::string::npos);
        break;
    }
  }
}

std::string Summary(const HttpParser& parser, const ParseResult& r) {
  if (r.kind == ParseResult::Kind::kIncomplete) return "incomplete";
  if (r.kind == ParseResult::Kind::kError)
    return absl::StrCat("error ", r.status);
  const HttpRequest& q = parser.request();
  std::string s = absl::StrCat(
      "complete ", r.consumed, " ", q.method, " ", q.target, " ",
      q.version_minor, " ", q.keep_alive, q.is_chunked, " ", q.content_length);
  for (const HttpHeader& h : q.headers)
    absl::StrAppend(&s, "|", h.name, ":", h.value);
  return s;
}

// Summary(a, ra) == Summary(b, rb), without building the strings: this
// runs a few hundred thousand times, and under TSan strings are slow.
bool Same(const HttpParser& a, const ParseResult& ra, const HttpParser& b,
          const ParseResult& rb) {
  if (ra.kind != rb.kind) return false;
  if (ra.kind == ParseResult::Kind::kIncomplete) return true;
  if (ra.kind == ParseResult::Kind::kError) return ra.status == rb.status;
  const HttpRequest& p = a.request();
  const HttpRequest& q = b.request();
  if (ra.consumed != rb.consumed || p.method != q.method ||
      p.target != q.target || p.version_minor != q.version_minor ||
      p.keep_alive != q.keep_alive || p.is_chunked != q.is_chunked ||
      p.content_length != q.content_length || p.host != q.host ||
      p.headers.size() != q.headers.size()) {
    return false;
  }
  for (size_t i = 0; i < p.headers.size(); ++i) {
    if (p.headers[i].name != q.headers[i].name ||
        p.headers[i].value != q.headers[i].value) {
      return false;
    }
  }
  return true;
}

// The outcome's class, for the histogram: -1 incomplete, 0 complete, else
// the error status.
int OutcomeClass(const ParseResult& r) {
  if (r.kind == ParseResult::Kind::kIncomplete) return -1;
  return r.kind == ParseResult::Kind::kComplete ? 0 : r.status;
}

bool Within(absl::string_view inner, absl::string_view outer) {
  return inner.data() >= outer.data() &&
         inner.data() + inner.size() <= outer.data() + outer.size();
}

// Empty when `r` is an allowed outcome for `data`; otherwise why not.
std::string CheckOutcome(const HttpParser& parser, const ParseResult& r,
                         absl::string_view data, const ParserOptions& o) {
  switch (r.kind) {
    case ParseResult::Kind::kIncomplete:
      return "";
    case ParseResult::Kind::kError:
      for (int allowed : {400, 413, 414, 431, 501, 505}) {
        if (r.status == allowed) return r.detail[0] ? "" : "no detail";
      }
      return absl::StrCat("status ", r.status);
    case ParseResult::Kind::kComplete:
      break;
  }
  if (r.consumed == 0 || r.consumed > data.size()) return "consumed";
  if (data[r.consumed - 1] != '\n') return "head does not end in LF";
  const absl::string_view head = data.substr(0, r.consumed);
  const HttpRequest& q = parser.request();
  if (q.method.empty() || q.method.size() > HttpParser::kMaxMethodBytes ||
      !Within(q.method, head)) {
    return "method";
  }
  if (q.target.empty() || q.target.size() > o.max_target_bytes ||
      !Within(q.target, head)) {
    return "target";
  }
  for (char c : q.target) {
    if (c <= ' ' || c == 0x7f) return "target character";
  }
  if (q.version_minor < 0 || q.version_minor > 9) return "version";
  if (q.headers.size() > o.max_headers) return "header count";
  if (q.content_length > o.max_body_bytes) return "content length";
  if (q.is_chunked && q.keep_alive) return "chunked keep-alive";
  for (const HttpHeader& h : q.headers) {
    if (h.name.empty() || !Within(h.name, head) || !Within(h.value, head)) {
      return "field view";
    }
    if (h.name.find_first_of(": \t\r\n") != absl::string_view::npos) {
      return "field name";
    }
    for (char c : h.value) {
      if (c == '\r' || c == '\n' || c == '\0') return "field value";
    }
    if (!h.value.empty() &&
        (h.value.front() == ' ' || h.value.back() == ' ' ||
         h.value.front() == '\t' || h.value.back() == '\t')) {
      return "untrimmed value";
    }
  }
  return "";
}

// Empty when ParseTarget's answer for `target` is allowed.
std::string CheckTarget(absl::string_view target, bool allow_dot_files) {
  const absl::StatusOr<TargetPath> r =
      ParseTarget(target, TargetOptions{allow_dot_files});
  if (!r.ok()) {
    if (absl::IsInvalidArgument(r.status())) return "";
    if (absl::IsPermissionDenied(r.status()) && !allow_dot_files) return "";
    return "status " + r.status().ToString();
  }
  const std::string& p = r->path;
  if (p.empty()) return r->is_directory ? "" : "root is not a directory";
  if (p.front() == '/' || p.back() == '/') return "leading or trailing '/'";
  for (char c : p) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') return "unsafe byte";
  }
  for (absl::string_view segment : absl::StrSplit(p, '/')) {
    if (segment.empty() || segment == "." || segment == "..") {
      return "empty or dot segment";
    }
    if (segment.front() == '.' && !allow_dot_files) return "dot-file";
  }
  return "";
}

TEST(HttpParserFuzzTest, RandomAndMutatedRequests) {
  Rng rng(0x6b71696f);  // "kqio"
  ParserOptions small;
  small.max_target_bytes = 32;
  small.max_header_bytes = 128;
  small.max_headers = 4;
  small.max_body_bytes = 6;
  const ParserOptions options[] = {ParserOptions(), small};

  std::map<int, int> outcomes;  // OutcomeClass() -> count
  int failures = 0;
  auto fail = [&](const std::string& why, absl::string_view input) {
    if (++failures <= 10) {
      ADD_FAILURE() << why << " for \"" << absl::CEscape(input) << "\"";
    }
  };
  HttpParser whole_parsers[] = {HttpParser(options[0]), HttpParser(options[1])};
  for (int i = 0; i < kInputs; ++i) {
    std::string input = Generate(rng);
    Mutate(rng, &input);
    const int which = static_cast<int>(rng.Below(2));
    const ParserOptions& o = options[which];

    HttpParser& whole = whole_parsers[which];
    whole.Reset();
    const ParseResult r = whole.Parse(input);
    std::string why = CheckOutcome(whole, r, input, o);
    if (!why.empty()) fail(why, input);
    outcomes[OutcomeClass(r)]++;

    // Split once at random, each part in its own buffer.
    {
      HttpParser split(o);
      const std::string first = input.substr(0, rng.Below(input.size() + 1));
      ParseResult got = split.Parse(first);
      const std::string all = input;
      if (got.kind == ParseResult::Kind::kIncomplete) got = split.Parse(all);
      if (!Same(split, got, whole, r)) {
        fail("split: " + Summary(split, got) + " vs " + Summary(whole, r),
             input);
      }
    }
    // Byte by byte, for some.
    if (rng.OneIn(64)) {
      HttpParser bytewise(o);
      std::string buffer;
      ParseResult got;
      for (char c : input) {
        buffer.push_back(c);
        got = bytewise.Parse(buffer);
        if (got.kind != ParseResult::Kind::kIncomplete) break;
      }
      if (!Same(bytewise, got, whole, r)) {
        fail("bytewise: " + Summary(bytewise, got) + " vs " + Summary(whole, r),
             input);
      }
    }

    if (r.kind == ParseResult::Kind::kComplete) {
      for (bool allow : {false, true}) {
        why = CheckTarget(whole.request().target, allow);
        if (!why.empty()) fail("target: " + why, whole.request().target);
      }
    }
    // The decoder alone, on raw mutated targets (NUL, CR, non-ASCII...).
    std::string target = RandomTarget(rng);
    Mutate(rng, &target);
    why = CheckTarget(target, rng.OneIn(2));
    if (!why.empty()) fail("raw target: " + why, target);
  }
  EXPECT_EQ(failures, 0);

  // The generator must reach every outcome, or the test proves little.
  for (int outcome : {-1, 0, 400, 413, 414, 431, 501, 505}) {
    EXPECT_GT(outcomes[outcome], kInputs / 1000) << outcome;
  }
  for (const auto& [outcome, count] : outcomes) {
    std::printf("%-12s %d\n",
                outcome < 0    ? "incomplete"
                : outcome == 0 ? "complete"
                               : absl::StrCat("error ", outcome).c_str(),
                count);
  }
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
