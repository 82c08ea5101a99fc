// kqio's sockets (net/ on io::IoService) against a minimal raw-epoll server,
// standalone Asio and libuv, in one run, on loopback TCP (issue 5):
//
//   PingPong/<impl>    64-byte message out, the same 64 bytes back, one
//                      connection; unit: round trip (target: kqio >= 0.9x
//                      raw epoll, >= 1.0x Asio and libuv, in round trips/s);
//   Stream/<impl>      64 KiB writes echoed back, 256 KiB in flight, one
//                      connection; unit: 64 KiB echoed (same targets, MiB/s);
//   Accept/<impl>      batches of 64 connections, each accepted and closed
//                      by the server, the client waiting for the close;
//                      unit: connection;
//   IdleMemory/<impl>  10,000 idle connections, each with a read pending;
//                      heap and RSS growth of the process per connection
//                      (target: kqio < 1 KiB).
//
// The servers (bench/net_server.h) each run their loop on a thread of their
// own and do the same work the way their users would write it; the client
// (bench/net_client.h) is the same blocking-socket code for all of them, in
// the benchmark's thread, pinned to the first CPU while the server loops
// run on the last (--net_pin=false leaves placement to the scheduler, whose
// choice of one CPU or two for the pair decides a run more than the code
// does).  server_cpu_ns_per_op is the CPU time of the
// server's loop thread per unit: on a busy machine it is much steadier than
// the rates, which include waiting for a CPU.
//
// Every phase is bounded: a fixed iteration count (--net_scale multiplies
// them), a wall-clock cap per run (Watchdog) and a timeout on every client
// call.  Repetitions (default 7) run interleaved at random, so a burst of
// foreign load hits every implementation alike.  At the end: a table of the
// medians and the ratios kqio / peer.  JSON: --benchmark_out=FILE.
//
//   ./bazelw build -c opt //bench:net_benchmark
//   bazel-bin/bench/net_benchmark --benchmark_out=/tmp/net.json
//
// The idle connections' client ends are in a child process, so each process
// needs one descriptor per idle connection: RLIMIT_NOFILE is raised if it
// must be (it says so when it may not).  Take figures from -c opt builds:
// under the sanitizers the heap is their allocator's count and RSS
// includes shadow memory.
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "bench/bench_main.h"
#include "bench/net_client.h"
#include "bench/net_server.h"
#include "benchmark/benchmark.h"
#include "net/stream_socket.h"

namespace kqio {
namespace bench {
namespace {

constexpr size_t kPingPongMessage = 64;
constexpr size_t kStreamChunk = 64 * 1024;
constexpr size_t kStreamWindow = 4 * kStreamChunk;
constexpr size_t kAcceptBatch = 64;

// Settings from the command line.
struct Settings {
  size_t idle_connections = 10000;
  double scale = 1.0;
  // --net_pin (the default with 2 or more CPUs): the client on the first
  // CPU, every server loop on the last, so that a run is not decided by
  // whether the scheduler put both threads on one CPU.
  bool pin = true;
  int server_cpu = -1;
};
Settings settings;

int64_t Scaled(int64_t n) {
  return std::max<int64_t>(
      1, std::llround(static_cast<double>(n) * settings.scale));
}

// Wall-clock caps of one run of a phase.
constexpr absl::Duration kThroughputCap = absl::Seconds(60);
constexpr absl::Duration kMemoryCap = absl::Seconds(180);

void SetServerCpu(benchmark::State& state, const Server& server,
                  int64_t cpu_before, double ops) {
  state.counters["server_cpu_ns_per_op"] =
      static_cast<double>(server.CpuNanos() - cpu_before) / std::max(1.0, ops);
}

void BM_PingPong(benchmark::State& state, Impl impl) {
  Watchdog watchdog(absl::StrCat("PingPong/", ImplName(impl)), kThroughputCap);
  std::unique_ptr<Server> server = MakeServer(impl);
  server->Start(ServerMode::kEcho, settings.server_cpu);
  {
    PingPongClient client(server->port(), kPingPongMessage);
    for (int i = 0; i < 100; ++i) client.RoundTrip();  // warm up
    const int64_t cpu = server->CpuNanos();
    for (auto _ : state) client.RoundTrip();
    SetServerCpu(state, *server, cpu, static_cast<double>(state.iterations()));
  }
  state.SetItemsProcessed(state.iterations());
  server->Stop();
}

void BM_Stream(benchmark::State& state, Impl impl) {
  Watchdog watchdog(absl::StrCat("Stream/", ImplName(impl)), kThroughputCap);
  std::unique_ptr<Server> server = MakeServer(impl);
  server->Start(ServerMode::kEcho, settings.server_cpu);
  {
    StreamClient client(server->port(), kStreamChunk, kStreamWindow);
    for (int i = 0; i < 16; ++i) client.ReceiveChunk();  // warm up
    const uint64_t bytes_before = client.bytes_received();
    const int64_t cpu = server->CpuNanos();
    for (auto _ : state) client.ReceiveChunk();
    client.Finish();  // the server's CPU counts what is still in flight
    SetServerCpu(state, *server, cpu,
                 static_cast<double>(client.bytes_received() - bytes_before) /
                     kStreamChunk);
  }
  state.SetBytesProcessed(state.iterations() * int64_t{kStreamChunk});
  server->Stop();
}

void BM_Accept(benchmark::State& state, Impl impl) {
  Watchdog watchdog(absl::StrCat("Accept/", ImplName(impl)), kThroughputCap);
  std::unique_ptr<Server> server = MakeServer(impl);
  server->Start(ServerMode::kAcceptClose, settings.server_cpu);
  ConnectAndAwaitClose(server->port(), kAcceptBatch);  // warm up
  const int64_t cpu = server->CpuNanos();
  for (auto _ : state) ConnectAndAwaitClose(server->port(), kAcceptBatch);
  const double connections =
      static_cast<double>(state.iterations()) * kAcceptBatch;
  SetServerCpu(state, *server, cpu, connections);
  state.SetItemsProcessed(state.iterations() * int64_t{kAcceptBatch});
  server->Stop();
}

void BM_IdleMemory(benchmark::State& state, Impl impl) {
  Watchdog watchdog(absl::StrCat("IdleMemory/", ImplName(impl)), kMemoryCap);
  const size_t n = settings.idle_connections;
  // The client process first, while this process has no thread but the
  // watchdog (which holds no lock the child could need).
  IdleClientProcess client_process(n);
  std::unique_ptr<Server> server = MakeServer(impl);
  server->Start(ServerMode::kIdle, settings.server_cpu);
  server->Sync();
  TrimHeap();
  const int64_t heap_before = HeapInUse();
  const int64_t rss_before = ResidentBytes();
  for (auto _ : state) {
    client_process.Open(server->port(), n,
                        [&server] { return server->accepted(); });
    server->Sync();  // every connection's read is pending
  }
  const int64_t heap_after = HeapInUse();
  const int64_t rss_after = ResidentBytes();
  NET_BENCH_CHECK(server->live() == static_cast<int64_t>(n));
  state.counters["connections"] = static_cast<double>(n);
  state.counters["heap_bytes_per_conn"] =
      static_cast<double>(heap_after - heap_before) / static_cast<double>(n);
  state.counters["rss_bytes_per_conn"] =
      static_cast<double>(rss_after - rss_before) / static_cast<double>(n);

  client_process.CloseAll();
  const absl::Time deadline = absl::Now() + kClientTimeout;
  while (server->live() > 0) {
    if (absl::Now() > deadline) {
      fprintf(stderr, "net_benchmark: %s kept %lld of the idle connections\n",
              ImplName(impl), static_cast<long long>(server->live()));
      abort();
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  server->Stop();
}

void RegisterAll() {
  for (Impl impl : kAllImpls) {
    benchmark::RegisterBenchmark(
        absl::StrCat("PingPong/", ImplName(impl)).c_str(), BM_PingPong, impl)
        ->Iterations(Scaled(20000))
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (Impl impl : kAllImpls) {
    benchmark::RegisterBenchmark(
        absl::StrCat("Stream/", ImplName(impl)).c_str(), BM_Stream, impl)
        ->Iterations(Scaled(2048))  // 128 MiB
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (Impl impl : kAllImpls) {
    benchmark::RegisterBenchmark(
        absl::StrCat("Accept/", ImplName(impl)).c_str(), BM_Accept, impl)
        ->Iterations(Scaled(100))  // x 64 connections
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (Impl impl : kAllImpls) {
    benchmark::RegisterBenchmark(
        absl::StrCat("IdleMemory/", ImplName(impl)).c_str(), BM_IdleMemory,
        impl)
        ->Iterations(1)
        ->Repetitions(1)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

// --- The summary

struct Row {
  const char* label;
  const char* phase;
  const char* counter;
  double scale;        // printed value = counter * scale
  bool higher_better;  // for the reader; ratios are always kqio / peer
};

constexpr Row kRows[] = {
    {"ping-pong 64 B, round trips/s", "PingPong", "items_per_second", 1, true},
    {"  server CPU ns / round trip", "PingPong", "server_cpu_ns_per_op", 1,
     false},
    {"stream 64 KiB, MiB/s echoed", "Stream", "bytes_per_second",
     1.0 / (1024 * 1024), true},
    {"  server CPU ns / 64 KiB", "Stream", "server_cpu_ns_per_op", 1, false},
    {"accept+close, connections/s", "Accept", "items_per_second", 1, true},
    {"  server CPU ns / connection", "Accept", "server_cpu_ns_per_op", 1,
     false},
    {"idle conn, heap bytes each", "IdleMemory", "heap_bytes_per_conn", 1,
     false},
    {"idle conn, RSS bytes each", "IdleMemory", "rss_bytes_per_conn", 1, false},
};

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string LoadAverage() {
  FILE* f = fopen("/proc/loadavg", "r");
  if (f == nullptr) return "?";
  char buf[64] = {};
  const bool ok = fgets(buf, sizeof(buf), f) != nullptr;
  fclose(f);
  if (!ok) return "?";
  std::string s(buf);
  const size_t third = s.find(' ', s.find(' ', s.find(' ') + 1) + 1);
  return s.substr(0, third);
}

// Console output, then the table: medians over the repetitions and the
// ratios kqio / peer.
class RatioReporter final : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const std::string name = run.run_name.function_name;
      const size_t slash = name.find('/');
      if (slash == std::string::npos) continue;
      const std::string phase = name.substr(0, slash);
      const std::string impl = name.substr(slash + 1);
      for (const auto& [counter, value] : run.counters) {
        Samples& s = samples_[{phase, counter}][impl];
        if (run.run_type == Run::RT_Iteration) {
          s.all.push_back(value.value);
        } else if (run.aggregate_name == "median") {
          s.median = value.value;  // when only aggregates are reported
        }
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    printf(
        "\nnet_benchmark: medians over the repetitions; ratio = kqio / peer "
        "(rates: > 1 kqio faster; CPU and bytes: < 1 kqio cheaper)\n");
    printf(
        "load average at the end: %s (2 cores: the rates are noisy; the "
        "CPU rows are steadier)\n",
        LoadAverage().c_str());
    printf("%-31s %11s %11s %11s %11s | %8s %8s %8s\n", "", "raw_epoll", "asio",
           "libuv", "kqio", "/raw", "/asio", "/libuv");
    for (const Row& row : kRows) {
      double v[4];
      const char* impls[4] = {"raw_epoll", "asio", "libuv", "kqio"};
      for (int i = 0; i < 4; ++i) v[i] = Value(row, impls[i]);
      if (std::isnan(v[3])) continue;
      printf("%-31s", row.label);
      for (double x : v) {
        if (std::isnan(x)) {
          printf(" %11s", "-");
        } else {
          printf(" %11.5g", x * row.scale);
        }
      }
      printf(" |");
      for (int i = 0; i < 3; ++i) {
        // No ratio to a peer that did not run, or measured nothing.
        if (std::isnan(v[i]) || v[i] <= 0) {
          printf(" %8s", "-");
        } else {
          printf(" %8.3f", v[3] / v[i]);
        }
      }
      printf("\n");
    }
    printf(
        "targets: rates >= 0.9 x raw_epoll and >= 1.0 x asio, libuv; "
        "kqio idle heap < 1024 bytes per connection\n");
    printf("sizeof(net::StreamSocket) = %zu bytes\n",
           sizeof(net::StreamSocket));
    fflush(stdout);
  }

 private:
  struct Samples {
    std::vector<double> all;
    double median = NAN;
  };

  double Value(const Row& row, const std::string& impl) {
    auto it = samples_.find({row.phase, row.counter});
    if (it == samples_.end()) return NAN;
    auto jt = it->second.find(impl);
    if (jt == it->second.end()) return NAN;
    return jt->second.all.empty() ? jt->second.median : Median(jt->second.all);
  }

  // {phase, counter} -> impl -> samples
  std::map<std::pair<std::string, std::string>, std::map<std::string, Samples>>
      samples_;
};

// The client on the first CPU this process may use, the servers on the
// last, if --net_pin and there are two.
void PinThreads() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  int first = -1, last = -1;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &allowed)) continue;
      if (first < 0) first = cpu;
      last = cpu;
    }
  }
  if (!settings.pin || first < 0 || first == last) {
    printf("net_benchmark: threads not pinned (%d CPUs allowed)\n",
           CPU_COUNT(&allowed));
    return;
  }
  // The server CPU first, so that a refusal leaves nothing pinned.
  if (!PinThisThread(last) || !PinThisThread(first)) {
    sched_setaffinity(0, sizeof(allowed), &allowed);
    printf("net_benchmark: threads not pinned (sched_setaffinity refused)\n");
    return;
  }
  settings.server_cpu = last;
  printf("net_benchmark: client on CPU %d, server loops on CPU %d\n", first,
         last);
}

// Takes --net_* flags out of argv; true if all of them parsed.
bool ParseOwnFlags(int& argc, char** argv) {
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--net_idle_connections=")) {
      if (!absl::SimpleAtoi(a, &settings.idle_connections) ||
          settings.idle_connections == 0) {
        return false;
      }
    } else if (a == "--net_pin" || a == "--net_pin=true") {
      settings.pin = true;
    } else if (a == "--nonet_pin" || a == "--net_pin=false") {
      settings.pin = false;
    } else if (absl::ConsumePrefix(&a, "--net_scale=")) {
      if (!absl::SimpleAtod(a, &settings.scale) || !(settings.scale > 0)) {
        return false;
      }
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  argv[argc] = nullptr;
  return true;
}

}  // namespace
}  // namespace bench
}  // namespace kqio

int main(int argc, char** argv) {
  if (!kqio::bench::ParseOwnFlags(argc, argv)) {
    fprintf(stderr,
            "usage: net_benchmark [--net_idle_connections=N (10000)] "
            "[--net_scale=F (1.0: iteration counts)] "
            "[--net_pin=true|false (true)] [--benchmark_...]\n");
    return 2;
  }
  kqio::bench::PinThreads();
  // libuv writes with write(2), which raises SIGPIPE on a reset peer.
  signal(SIGPIPE, SIG_IGN);
  // One end of every idle connection in this process, one in the child.
  kqio::bench::RaiseFileLimit(kqio::bench::settings.idle_connections + 1024);

  kqio::bench::RatioReporter reporter(kqio::bench::ConsoleOutputOptions());
  return kqio::bench::RunBenchmarks(
      argc, argv,
      {"--benchmark_repetitions=7",
       "--benchmark_enable_random_interleaving=true"},
      &reporter, kqio::bench::RegisterAll);
}
