// HttpParser against the floor a request parser cannot beat, side by side in
// one run: a minimal "split on CRLF, find ': '" loop that records the same
// views (method, target, version, each field's name and value) but checks
// nothing.  Also response heads: ResponseWriter::AppendHead against one
// snprintf of the same fields.  Every case is registered as
// "<Case>/baseline" and "<Case>/kqio"; at the end the binary prints the
// median CPU time per request of each side and the ratio kqio/baseline (> 1:
// kqio is slower).  CPU time, not real time: the work is single-threaded
// computation, and CPU time is what stays comparable on a shared machine.
//
//   Wrk        the request wrk sends: request line and Host (38 bytes)
//   Browser    a desktop browser's GET with its usual fields (~700 bytes)
//   Pipelined  20 Browser requests in one buffer, parsed in turn
//   Head       a 200 response head: Server, Date, Content-Type,
//              Content-Length, Last-Modified, ETag, Accept-Ranges
//
// Run (defaults: 10 repetitions, aggregates only; flags override them):
//   bazel run -c opt //fileserver:http_parser_benchmark
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_main.h"
#include "benchmark/benchmark.h"
#include "fileserver/http_parser.h"
#include "fileserver/http_response.h"

namespace kqio {
namespace fileserver {
namespace {

const char kWrk[] = "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

const char kBrowser[] =
    "GET /static/css/site.css?v=3 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", "
    "\"Not-A.Brand\";v=\"99\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Accept: text/css,*/*;q=0.1\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Dest: style\r\n"
    "Referer: https://www.example.com/\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8\r\n"
    "Cookie: session=7f3a9c2e41b84d0f; theme=dark; "
    "_ga=GA1.1.123456789.1700000000\r\n"
    "If-None-Match: \"1a2b-64-17979cfe3d85cd15\"\r\n"
    "If-Modified-Since: Tue, 02 Jan 2024 03:04:05 GMT\r\n"
    "\r\n";

constexpr int kPipelined = 20;

// ---------------------------------------------------------------------------
// The baseline: the least a parser must do to hand out the same views.

struct BaselineRequest {
  absl::string_view method, target, version;
  std::vector<std::pair<absl::string_view, absl::string_view>> headers;
};

// Returns the head's length, or 0 if incomplete.  No validation at all.
size_t BaselineParse(absl::string_view data, BaselineRequest* out) {
  out->headers.clear();
  size_t pos = 0;
  bool first = true;
  for (;;) {
    const size_t eol = data.find("\r\n", pos);
    if (eol == absl::string_view::npos) return 0;
    const absl::string_view line = data.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) return pos;
    if (first) {
      const size_t sp1 = line.find(' ');
      const size_t sp2 = line.find(' ', sp1 + 1);
      out->method = line.substr(0, sp1);
      out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      out->version = line.substr(sp2 + 1);
      first = false;
      continue;
    }
    const size_t colon = line.find(": ");
    out->headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
}

// ---------------------------------------------------------------------------
// Parsing.

std::string Pipeline(absl::string_view request) {
  std::string s;
  for (int i = 0; i < kPipelined; ++i) s.append(request.data(), request.size());
  return s;
}

// Parses every request in `buffer` (which holds `count`).
void BM_ParseKqio(benchmark::State& state, std::string buffer, int count) {
  HttpParser parser;
  for (auto _ : state) {
    absl::string_view rest = buffer;
    for (int i = 0; i < count; ++i) {
      const ParseResult r = parser.Parse(rest);
      if (r.kind != ParseResult::Kind::kComplete) {
        state.SkipWithError("parse failed");
        return;
      }
      benchmark::DoNotOptimize(parser.request().headers.data());
      rest.remove_prefix(r.consumed);
    }
  }
  state.counters["ops_per_iter"] = count;
  state.SetItemsProcessed(state.iterations() * count);
  state.SetBytesProcessed(state.iterations() * buffer.size());
}

void BM_ParseBaseline(benchmark::State& state, std::string buffer, int count) {
  BaselineRequest request;
  for (auto _ : state) {
    absl::string_view rest = buffer;
    for (int i = 0; i < count; ++i) {
      const size_t consumed = BaselineParse(rest, &request);
      if (consumed == 0) {
        state.SkipWithError("parse failed");
        return;
      }
      benchmark::DoNotOptimize(request.headers.data());
      rest.remove_prefix(consumed);
    }
  }
  state.counters["ops_per_iter"] = count;
  state.SetItemsProcessed(state.iterations() * count);
  state.SetBytesProcessed(state.iterations() * buffer.size());
}

// ---------------------------------------------------------------------------
// Response heads.

const absl::Time kModified = absl::FromUnixSeconds(1'700'000'000);

void BM_HeadKqio(benchmark::State& state) {
  ResponseWriter writer;
  ResponseHead head;
  head.content_type = "text/css; charset=utf-8";
  head.content_length = 65536;
  head.last_modified = kModified;
  head.etag = "\"1a2b-10000-17979cfe3d85cd15\"";
  head.accept_ranges = true;
  std::string out;
  for (auto _ : state) {
    out.clear();
    writer.AppendHead(head, absl::Now(), &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ops_per_iter"] = 1;
  state.SetItemsProcessed(state.iterations());
}

// The same bytes with one snprintf, the Date formatted once (as the cache
// does) and Last-Modified preformatted: the floor for building a head.
void BM_HeadBaseline(benchmark::State& state) {
  const std::string date = FormatHttpDate(absl::Now());
  const std::string modified = FormatHttpDate(kModified);
  char buffer[512];
  std::string out;
  for (auto _ : state) {
    absl::Time now = absl::Now();
    benchmark::DoNotOptimize(now);
    const int n = snprintf(
        buffer, sizeof(buffer),
        "HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\nContent-Type: %s\r\n"
        "Content-Length: %llu\r\nLast-Modified: %s\r\nETag: %s\r\n"
        "Accept-Ranges: bytes\r\n\r\n",
        200, "OK", "kqio", date.c_str(), "text/css; charset=utf-8", 65536ULL,
        modified.c_str(), "\"1a2b-10000-17979cfe3d85cd15\"");
    out.assign(buffer, n);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ops_per_iter"] = 1;
  state.SetItemsProcessed(state.iterations());
}

void RegisterAll() {
  using benchmark::RegisterBenchmark;
  struct Input {
    const char* name;
    std::string buffer;
    int count;
  };
  const Input inputs[] = {{"Wrk", kWrk, 1},
                          {"Browser", kBrowser, 1},
                          {"Pipelined", Pipeline(kBrowser), kPipelined}};
  for (const Input& in : inputs) {
    RegisterBenchmark((std::string(in.name) + "/baseline").c_str(),
                      BM_ParseBaseline, in.buffer, in.count);
    RegisterBenchmark((std::string(in.name) + "/kqio").c_str(), BM_ParseKqio,
                      in.buffer, in.count);
  }
  RegisterBenchmark("Head/baseline", BM_HeadBaseline);
  RegisterBenchmark("Head/kqio", BM_HeadKqio);
}

// ---------------------------------------------------------------------------
// The ratio table.

class RatioReporter : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const std::string name = run.run_name.function_name;
      const size_t slash = name.rfind('/');
      auto ops = run.counters.find("ops_per_iter");
      if (slash == std::string::npos || ops == run.counters.end()) continue;
      const std::string key = name.substr(0, slash);
      const int side = name.substr(slash + 1) == "kqio" ? 1 : 0;
      const double ns = run.GetAdjustedCPUTime() /
                        benchmark::GetTimeUnitMultiplier(run.time_unit) * 1e9 /
                        ops->second.value;
      // The median aggregate when there are repetitions, else the runs.
      if (run.run_type == Run::RT_Iteration) {
        samples_[key][side].push_back(ns);
      } else if (run.aggregate_name == "median") {
        medians_[key][side] = ns;
        samples_[key];  // so that Finalize() visits the key
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    if (samples_.empty()) return;
    printf(
        "\nMedian CPU time per request (or per head), ns; "
        "ratio = kqio/baseline (> 1: kqio slower)\n");
    printf("%-10s | %10s %10s %7s | %12s %12s\n", "case", "baseline", "kqio",
           "ratio", "baseline/s", "kqio/s");
    for (auto& [key, sides] : samples_) {
      std::array<double, 2>& median = medians_[key];
      const double base = median[0] > 0 ? median[0] : Median(&sides[0]);
      const double kqio = median[1] > 0 ? median[1] : Median(&sides[1]);
      if (base <= 0 || kqio <= 0) continue;
      printf("%-10s | %10.1f %10.1f %7.2f | %12.4g %12.4g\n", key.c_str(), base,
             kqio, kqio / base, 1e9 / base, 1e9 / kqio);
    }
    fflush(stdout);
  }

 private:
  static double Median(std::vector<double>* v) {
    if (v->empty()) return 0;
    std::sort(v->begin(), v->end());
    const size_t n = v->size();
    return n % 2 ? (*v)[n / 2] : ((*v)[n / 2 - 1] + (*v)[n / 2]) / 2;
  }
  // key -> {baseline, kqio}, ns per request.
  std::map<std::string, std::array<std::vector<double>, 2>> samples_;
  std::map<std::string, std::array<double, 2>> medians_;
};

}  // namespace
}  // namespace fileserver
}  // namespace kqio

int main(int argc, char** argv) {
  kqio::fileserver::RatioReporter reporter(
      kqio::bench::ConsoleOutputOptions());
  return kqio::bench::RunBenchmarks(argc, argv,
                                    {"--benchmark_repetitions=10",
                                     "--benchmark_min_time=0.05",
                                     "--benchmark_display_aggregates_only=true"},
                                    &reporter, kqio::fileserver::RegisterAll);
}
