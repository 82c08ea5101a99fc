// "AIO vs thread pool" (issue 4): kqio's file engines against libuv and
// glibc's POSIX AIO, in one run, on the same files; prints a table and the
// ratios the issue sets targets for, and writes the whole table as JSON
// (bench/aio_chart.py turns it into a PNG; bench/aio_vs_fio.sh adds fio).
//
// Workloads (bench/aio_engines.h):
//   rand4k      random 4 KiB reads of one file, qd 1, 8, 32, 128 in flight
//   seq128k     sequential 128 KiB reads, qd 8
//   smallfiles  open + fstat + read + close of 10,000 files of 1-64 KiB,
//               32 files in flight (kqio: FileService::ReadFile)
// each page cache hot (read through first) and cold (O_DIRECT where the
// file system takes it, else posix_fadvise(DONTNEED) before the cell; the
// small files are always evicted with fadvise, and a cold small-file cell
// stops after one pass over them).  Pool engines run with 4 threads, and at
// rand4k/qd32 also with 1, 2 and 16.
//
// Each cell keeps qd operations in flight for --seconds, on one loop
// thread; ops/s and MiB/s count completed operations over the time to the
// last completion, p50/p99 are per operation (submission to callback).
// libuv and POSIX AIO size their pools once per process, so each of their
// cells runs in a forked child (the driver has no other thread then).
//
// Rounds (--rounds).  A cold cell reads a virtual disk whose speed drifts
// by +-20% from one second to the next (the host caches, other guests), and
// engines compared with each other run one after the other.  With one
// round the same engine always follows the same neighbour, which biases
// every ratio; with --rounds=N every cell runs N times, every second round
// in reverse order and each round with new random offsets, and the table
// shows each cell's median round (by ops/s).
//
//   ./bazelw build -c opt //bench:aio_engines_benchmark
//   bazel-bin/bench/aio_engines_benchmark --json=/tmp/aio_engines.json
//   python3 bench/aio_chart.py /tmp/aio_engines.json /tmp/aio_engines.png
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/aio_engines.h"
#include "bench/aio_engines_data.h"
#include "bench/mutex_mode.h"

ABSL_FLAG(std::string, dir, "/tmp",
          "where the test files go (a fresh subdirectory, removed at exit)");
ABSL_FLAG(std::string, file, "",
          "read this existing file instead of writing one (kept at exit)");
ABSL_FLAG(int, file_mib, 256,
          "size of the random/sequential file, MiB (<= 1024)");
ABSL_FLAG(int, small_files, 10000, "number of 1-64 KiB files (<= 20000)");
ABSL_FLAG(double, seconds, 1.0, "time per cell");
ABSL_FLAG(std::string, filter, "",
          "comma-separated; run only cells whose name "
          "(rand4k/hot/qd32/kqio-pool/t4) contains one of these");
ABSL_FLAG(std::string, json, "/tmp/aio_engines.json", "JSON output path");
ABSL_FLAG(int, threads, 4, "pool size of the queue-depth ladder");
ABSL_FLAG(std::string, pool_sizes, "1,2,4,16",
          "pool sizes tried at rand4k/qd32");
ABSL_FLAG(std::string, qds, "1,8,32,128", "queue depths of rand4k");
ABSL_FLAG(bool, keep, false, "keep the test files");
ABSL_FLAG(int, rounds, 1,
          "runs of every cell; every second round in reverse order, each with "
          "new offsets; the median round (by ops/s) is reported");

namespace kqio {
namespace bench {
namespace {

struct Row {
  Cell cell;
  Measurement m;  // the median round, once all rounds ran
  std::vector<Measurement> rounds;
  bool ran = false;
  double ops_per_s() const { return m.seconds > 0 ? m.ops / m.seconds : 0; }
  double mib_per_s() const {
    return m.seconds > 0 ? m.bytes / m.seconds / (1 << 20) : 0;
  }
};

std::vector<int> IntList(const std::string& s) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    int v = 0;
    if (absl::SimpleAtoi(part, &v) && v > 0) out.push_back(v);
  }
  return out;
}

std::vector<Cell> MakeCells() {
  const int t = absl::GetFlag(FLAGS_threads);
  std::vector<Cell> cells;
  auto add = [&](Workload w, Cache c, const char* engine, int threads, int qd) {
    Cell cell;
    cell.workload = w;
    cell.cache = c;
    cell.engine = engine;
    cell.threads = threads;
    cell.qd = qd;
    cells.push_back(cell);
  };
  for (Cache c : {Cache::kHot, Cache::kCold}) {
    for (int qd : IntList(absl::GetFlag(FLAGS_qds))) {
      add(Workload::kRand4k, c, kKqioUring, 0, qd);
      add(Workload::kRand4k, c, kKqioPool, t, qd);
      add(Workload::kRand4k, c, kLibuv, t, qd);
      if (qd == 1 || qd == 32) {
        add(Workload::kRand4k, c, kKqioAuto, 0, qd);
        add(Workload::kRand4k, c, kPosixAio, t, qd);
      }
    }
    for (int n : IntList(absl::GetFlag(FLAGS_pool_sizes))) {
      if (n == t) continue;  // in the ladder already
      add(Workload::kRand4k, c, kKqioPool, n, 32);
      add(Workload::kRand4k, c, kLibuv, n, 32);
    }
    add(Workload::kSeq128k, c, kKqioUring, 0, 8);
    add(Workload::kSeq128k, c, kKqioPool, t, 8);
    add(Workload::kSeq128k, c, kLibuv, t, 8);
    // auto takes the pool for cached files (aio/read_file.cc): the same
    // pool as libuv.
    add(Workload::kSmallFiles, c, kKqioAuto, t, 32);
    add(Workload::kSmallFiles, c, kKqioPool, t, 32);
    add(Workload::kSmallFiles, c, kLibuv, t, 32);
  }
  return cells;
}

// --- Peers in a child process ----------------------------------------------

std::string Serialize(const absl::StatusOr<Measurement>& m) {
  if (!m.ok()) return absl::StrCat("ERR\n", m.status().ToString());
  return absl::StrFormat("OK %u %u %.9f %.3f %.3f %.4f\n%s", m->ops, m->bytes,
                         m->seconds, m->p50_us, m->p99_us, m->cpu_us_per_op,
                         m->error);
}

absl::StatusOr<Measurement> Parse(const std::string& text) {
  const size_t nl = text.find('\n');
  const std::string head = text.substr(0, nl);
  const std::string rest = nl == std::string::npos ? "" : text.substr(nl + 1);
  Measurement m;
  unsigned long long ops = 0, bytes = 0;
  if (head == "ERR") return absl::UnavailableError(rest);
  if (std::sscanf(head.c_str(), "OK %llu %llu %lf %lf %lf %lf", &ops, &bytes,
                  &m.seconds, &m.p50_us, &m.p99_us, &m.cpu_us_per_op) != 6) {
    return absl::InternalError("child died or said: " + text);
  }
  m.ops = ops;
  m.bytes = bytes;
  m.error = rest;
  return m;
}

// User-space threads of this process now.  Between cells: kqio's pools are
// joined, but the Linux kqueue emulation keeps one process-wide monitor
// thread parked in epoll_wait (io/internal/linux), and sanitizer runtimes
// add their own.  The children touch only libuv or glibc's AIO, their own
// memory and malloc (which glibc makes fork-safe), so that is harmless; it
// is reported once all the same.  The kernel's io_uring workers
// ("iou-wrk-*", "iou-sqp-*") are tasks of the process too, but not copied
// by fork(): not counted.
int ThreadCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return 0;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char comm[64] = {};
    const std::string path =
        absl::StrCat("/proc/self/task/", e->d_name, "/comm");
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      if (std::fgets(comm, sizeof(comm), f) == nullptr) comm[0] = 0;
      std::fclose(f);
    }
    n += !absl::StartsWith(comm, "iou-");
  }
  closedir(d);
  return n;
}

absl::StatusOr<Measurement> RunInChild(
    absl::FunctionRef<absl::StatusOr<Measurement>()> fn) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  static bool reported = false;
  if (const int threads = ThreadCount(); threads > 1 && !reported) {
    // (Under TSan: TSAN_OPTIONS=die_after_fork=0, see the BUILD file.)
    reported = true;
    std::fprintf(stderr,
                 "note: peers fork with %d threads alive (see ThreadCount)\n",
                 threads);
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    close(p[0]);
    const std::string out = Serialize(fn());
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = write(p[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    _exit(0);  // the parent's atexit handlers and files are not ours
  }
  close(p[1]);
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(p[0], buf, sizeof(buf));
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(p[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return Parse(text);
}

absl::StatusOr<Measurement> RunCell(const Cell& cell, const Data& data,
                                    const Limits& limits) {
  if (cell.engine == kLibuv) {
    return RunInChild([&] { return RunLibuv(cell, data, limits); });
  }
  if (cell.engine == kPosixAio) {
    return RunInChild([&] { return RunPosixAio(cell, data, limits); });
  }
  return RunKqio(cell, data, limits);
}

// The round with the median ops/s (the lower middle one of an even
// count); a failed round, if any, since an error must show.
Measurement MedianRound(std::vector<Measurement> rounds) {
  for (const Measurement& m : rounds) {
    if (!m.error.empty()) return m;
  }
  auto rate = [](const Measurement& m) {
    return m.seconds > 0 ? m.ops / m.seconds : 0.0;
  };
  std::sort(rounds.begin(), rounds.end(),
            [&](const Measurement& a, const Measurement& b) {
              return rate(a) < rate(b);
            });
  Measurement median = rounds[(rounds.size() - 1) / 2];
  if (rounds.size() > 1) {
    absl::StrAppend(&median.note, median.note.empty() ? "" : "; ",
                    "rounds ", absl::StrFormat("%.0f", rate(rounds.front())),
                    "..", absl::StrFormat("%.0f", rate(rounds.back())));
  }
  return median;
}

// --- Output -----------------------------------------------------------------

const Row* Find(const std::vector<Row>& rows, const Cell& like,
                const char* engine, int threads, int qd) {
  for (const Row& r : rows) {
    if (r.ran && r.m.error.empty() && r.cell.workload == like.workload &&
        r.cell.cache == like.cache && r.cell.engine == engine &&
        r.cell.threads == threads && r.cell.qd == qd && r.m.ops > 0) {
      return &r;
    }
  }
  return nullptr;
}

struct Ratio {
  std::string name;
  double value = 0;
  double target = 0;  // 0: informative only
};

std::vector<Ratio> Ratios(const std::vector<Row>& rows) {
  std::vector<Ratio> out;
  const int t = absl::GetFlag(FLAGS_threads);
  for (const Row& r : rows) {
    if (!r.ran || !r.m.error.empty() || r.m.ops == 0) continue;
    const Cell& c = r.cell;
    const std::string where = absl::StrCat(WorkloadName(c.workload), "/",
                                           CacheName(c.cache), "/qd", c.qd);
    const bool small = c.workload == Workload::kSmallFiles;
    if (c.engine == kKqioPool || (small && c.engine == kKqioAuto)) {
      const int threads = small ? t : c.threads;
      if (const Row* uv = Find(rows, c, kLibuv, threads, c.qd)) {
        out.push_back(
            {absl::StrCat(
                 where, " ", c.engine,
                 c.threads > 0 ? absl::StrCat("/t", c.threads) : std::string(),
                 " / libuv/t", threads),
             r.ops_per_s() / uv->ops_per_s(), small ? 2.0 : 1.0});
      }
    }
    if (c.engine == kKqioUring) {
      if (const Row* pool = Find(rows, c, kKqioPool, t, c.qd)) {
        out.push_back({absl::StrCat(where, " kqio-uring / kqio-pool/t", t),
                       r.ops_per_s() / pool->ops_per_s(), 0});
      }
    }
    if (c.engine == kKqioAuto && !small) {
      if (const Row* uring = Find(rows, c, kKqioUring, 0, c.qd)) {
        out.push_back({absl::StrCat(where, " kqio-auto / kqio-uring"),
                       r.ops_per_s() / uring->ops_per_s(), 0});
      }
    }
    // Cold is the test: from the page cache, batching alone helps qd32.
    if (c.engine == kPosixAio && c.qd > 1 && c.cache == Cache::kCold) {
      if (const Row* one = Find(rows, c, kPosixAio, c.threads, 1)) {
        out.push_back(
            {absl::StrCat(WorkloadName(c.workload), "/", CacheName(c.cache),
                          " posix-aio qd", c.qd,
                          " / qd1 (~1: one fd's reads run one at a time)"),
             r.ops_per_s() / one->ops_per_s(), 0});
      }
    }
  }
  return out;
}

void PrintTable(const std::vector<Row>& rows,
                const std::vector<Ratio>& ratios) {
  std::printf("\n%-36s %12s %10s %10s %10s %9s  %s\n", "cell", "ops/s",
              "MiB/s", "p50 us", "p99 us", "CPU us/op",
              "(kqio: where the reads went)");
  for (const Row& r : rows) {
    if (!r.ran) continue;
    std::printf("%-36s %12.0f %10.1f %10.1f %10.1f %9.2f  %s%s%s\n",
                r.cell.Name().c_str(), r.ops_per_s(), r.mib_per_s(), r.m.p50_us,
                r.m.p99_us, r.m.cpu_us_per_op, r.m.note.c_str(),
                r.m.error.empty() ? "" : "  ERROR: ", r.m.error.c_str());
  }
  std::printf("\nratios of ops/s (target: issue 4)\n");
  for (const Ratio& q : ratios) {
    if (q.target > 0) {
      std::printf("  %-72s %6.2f  target >= %.1f %s\n", q.name.c_str(), q.value,
                  q.target, q.value >= q.target ? "ok" : "MISSED");
    } else {
      std::printf("  %-72s %6.2f\n", q.name.c_str(), q.value);
    }
  }
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      out += absl::StrFormat("\\u%04x", ch);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

absl::Status WriteJson(const std::string& path, const Data& data,
                       const std::vector<Row>& rows,
                       const std::vector<Ratio>& ratios) {
  struct utsname u;
  uname(&u);
  std::string j = absl::StrCat(
      "{\n  \"machine\": {\"cpus\": ", sysconf(_SC_NPROCESSORS_ONLN),
      ", \"kernel\": ", JsonString(u.release),
      ", \"libuv\": ", JsonString(LibuvVersion()),
      "},\n  \"direct_io\": ", data.direct_ok ? "true" : "false",
      ",\n  \"file_bytes\": ", data.big_bytes,
      ",\n  \"small_files\": ", data.small_paths.size(),
      ",\n  \"seconds_per_cell\": ", absl::GetFlag(FLAGS_seconds),
      ",\n  \"rounds\": ", std::clamp(absl::GetFlag(FLAGS_rounds), 1, 99),
      ",\n  \"results\": [");
  bool first = true;
  for (const Row& r : rows) {
    if (!r.ran) continue;
    absl::StrAppend(
        &j, first ? "\n" : ",\n", "    {\"name\": ", JsonString(r.cell.Name()),
        ", \"workload\": ", JsonString(WorkloadName(r.cell.workload)),
        ", \"cache\": ", JsonString(CacheName(r.cell.cache)),
        ", \"engine\": ", JsonString(r.cell.engine),
        ", \"threads\": ", r.cell.threads, ", \"qd\": ", r.cell.qd,
        ", \"ops\": ", r.m.ops, ", \"seconds\": ", r.m.seconds,
        ", \"ops_per_s\": ", r.ops_per_s(), ", \"mib_per_s\": ", r.mib_per_s(),
        ", \"p50_us\": ", r.m.p50_us, ", \"p99_us\": ", r.m.p99_us,
        ", \"cpu_us_per_op\": ", r.m.cpu_us_per_op,
        ", \"note\": ", JsonString(r.m.note),
        ", \"error\": ", JsonString(r.m.error), "}");
    first = false;
  }
  absl::StrAppend(&j, "\n  ],\n  \"ratios\": [");
  first = true;
  for (const Ratio& q : ratios) {
    absl::StrAppend(&j, first ? "\n" : ",\n",
                    "    {\"name\": ", JsonString(q.name),
                    ", \"value\": ", q.value, ", \"target\": ", q.target, "}");
    first = false;
  }
  absl::StrAppend(&j, "\n  ]\n}\n");
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    return absl::InternalError(
        absl::StrCat("fopen(", path, "): ", std::strerror(errno)));
  }
  const bool ok = std::fwrite(j.data(), 1, j.size(), f) == j.size();
  return std::fclose(f) == 0 && ok
             ? absl::OkStatus()
             : absl::InternalError(absl::StrCat("write(", path, ") failed"));
}

int Main() {
  const std::string filter = absl::GetFlag(FLAGS_filter);
  const std::vector<std::string> filters =
      absl::StrSplit(filter, ',', absl::SkipEmpty());
  std::vector<Row> rows;
  for (const Cell& c : MakeCells()) {
    const std::string name = c.Name();
    bool keep = filters.empty();
    for (const std::string& f : filters) keep |= absl::StrContains(name, f);
    if (keep) rows.push_back({c, {}, {}, false});
  }

  bool need_small = false;
  for (const Row& r : rows) {
    need_small |= r.cell.workload == Workload::kSmallFiles;
  }
  DataOptions dopts;
  dopts.dir = absl::GetFlag(FLAGS_dir);
  dopts.existing_file = absl::GetFlag(FLAGS_file);
  // Bounded: at most 1 GiB + 20,000 x 64 KiB of test data.
  dopts.file_bytes =
      static_cast<uint64_t>(std::clamp(absl::GetFlag(FLAGS_file_mib), 1, 1024))
      << 20;
  dopts.small_files =
      need_small ? std::clamp(absl::GetFlag(FLAGS_small_files), 0, 20000) : 0;
  dopts.keep = absl::GetFlag(FLAGS_keep);
  absl::StatusOr<std::unique_ptr<TestData>> data = TestData::Create(dopts);
  if (!data.ok()) {
    std::fprintf(stderr, "test data: %s\n", data.status().ToString().c_str());
    return 1;
  }
  const Data& d = (*data)->data();
  const int rounds = std::clamp(absl::GetFlag(FLAGS_rounds), 1, 99);
  std::fprintf(stderr, "%s\nlibuv %s; %d cells of %.2f s, %d round(s)\n",
               (*data)->Describe().c_str(), LibuvVersion().c_str(),
               static_cast<int>(rows.size()), absl::GetFlag(FLAGS_seconds),
               rounds);
  std::fprintf(stderr, "%s", KqioCapabilities().c_str());
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < rows.size(); ++i) {
      Row& r = rows[round % 2 == 0 ? i : rows.size() - 1 - i];
      (*data)->Prepare(r.cell.workload, r.cell.cache);
      Limits limits;
      limits.seconds = absl::GetFlag(FLAGS_seconds);
      limits.seed = static_cast<uint64_t>(round) + 1;
      // A cold small-file cell reads each file once: a second pass is hot.
      if (r.cell.workload == Workload::kSmallFiles &&
          r.cell.cache == Cache::kCold) {
        limits.max_ops = d.small_paths.size();
      }
      absl::StatusOr<Measurement> m = RunCell(r.cell, d, limits);
      Measurement got;
      if (m.ok()) {
        got = *std::move(m);
      } else {
        got.error = m.status().ToString();
      }
      std::fprintf(stderr, "  %d %-36s %12.0f ops/s %s\n", round + 1,
                   r.cell.Name().c_str(),
                   got.seconds > 0 ? got.ops / got.seconds : 0,
                   got.error.c_str());
      r.rounds.push_back(std::move(got));
    }
  }
  for (Row& r : rows) {
    r.m = MedianRound(r.rounds);
    r.ran = true;
  }
  const std::vector<Ratio> ratios = Ratios(rows);
  PrintTable(rows, ratios);
  const std::string json = absl::GetFlag(FLAGS_json);
  if (!json.empty()) {
    absl::Status written = WriteJson(json, d, rows, ratios);
    if (!written.ok()) {
      std::fprintf(stderr, "%s\n", written.ToString().c_str());
      return 1;
    }
    std::printf("\nJSON: %s\n", json.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace kqio

int main(int argc, char** argv) {
  kqio::bench::UseReleaseMutexMode();  // see bench/mutex_mode.h
  absl::ParseCommandLine(argc, argv);
  return kqio::bench::Main();
}
