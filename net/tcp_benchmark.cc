// Ping-pong on one loopback TCP connection: kqio's StreamSocket against a
// minimal raw-epoll echo, in the same binary and the same run, with the
// ratio printed at the end.  Linux only (the raw side is epoll).
//
// Both sides do the same work in one thread: a client sends a 64-byte
// message, a server echoes it, the client reads the reply; one iteration is
// one round trip.  Both sockets are non-blocking, TCP_NODELAY, registered
// once edge-triggered for read and write.  The raw echo writes back inline
// from its read loop; the kqio echo is written the way users write it (read,
// then WriteAll, then read again from the write's completion), so the ratio
// includes kqio's completion hops.
//
//   bazel run -c opt //net:tcp_benchmark
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "bench/bench_main.h"
#include "benchmark/benchmark.h"
#include "io/io_service.h"
#include "net/socket_address.h"
#include "net/stream_socket.h"

namespace kqio {
namespace net {
namespace {

constexpr size_t kMessage = 64;

#define BENCH_CHECK(cond)                                              \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "%s:%d: check failed: %s (errno %d)\n", __FILE__, \
              __LINE__, #cond, errno);                                 \
      abort();                                                         \
    }                                                                  \
  } while (0)

// A connected loopback TCP pair, both ends TCP_NODELAY.
std::pair<int, int> TcpPair() {
  const int l = socket(AF_INET, SOCK_STREAM, 0);
  SocketAddress a = SocketAddress::Ipv4Loopback(0);
  BENCH_CHECK(bind(l, a.data(), a.size()) == 0 && listen(l, 1) == 0);
  socklen_t len = SocketAddress::capacity();
  BENCH_CHECK(getsockname(l, a.mutable_data(), &len) == 0);
  a.set_size(len);
  const int c = socket(AF_INET, SOCK_STREAM, 0);
  BENCH_CHECK(connect(c, a.data(), a.size()) == 0);
  const int s = accept(l, nullptr, nullptr);
  BENCH_CHECK(s >= 0);
  close(l);
  const int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return {c, s};
}

void BM_PingPongRawEpoll(benchmark::State& state) {
  auto [client, server] = TcpPair();
  for (int fd : {client, server}) {
    BENCH_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
  }
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  for (int fd : {client, server}) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.fd = fd;
    BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
  }
  char msg[kMessage] = {};
  char buf[4096];
  for (auto _ : state) {
    BENCH_CHECK(write(client, msg, kMessage) == static_cast<ssize_t>(kMessage));
    size_t got = 0;
    while (got < kMessage) {
      struct epoll_event evs[8];
      const int n = epoll_wait(ep, evs, 8, -1);
      for (int i = 0; i < n; ++i) {
        if ((evs[i].events & EPOLLIN) == 0) continue;
        const int fd = evs[i].data.fd;
        for (;;) {  // edge-triggered: drain
          const ssize_t r = read(fd, buf, sizeof(buf));
          if (r <= 0) break;
          if (fd == server) {
            BENCH_CHECK(write(server, buf, r) == r);
          } else {
            got += static_cast<size_t>(r);
          }
        }
      }
    }
  }
  state.SetItemsProcessed(state.iterations());
  close(ep);
  close(client);
  close(server);
}

// The server side of the kqio ping-pong: read, write it all back, read again.
class KqioEcho final {
 public:
  explicit KqioEcho(StreamSocket* s) : s_(s) {}
  void Start() {
    s_->Read(absl::MakeSpan(buf_), [this](absl::Status st, size_t n) {
      if (!st.ok() || n == 0) return;
      s_->WriteAll(absl::string_view(buf_, n), [this](absl::Status st, size_t) {
        if (st.ok()) Start();
      });
    });
  }

 private:
  StreamSocket* const s_;
  char buf_[4096];
};

void BM_PingPongKqio(benchmark::State& state) {
  auto service = *io::IoService::Create();
  auto [c, s] = TcpPair();
  std::unique_ptr<StreamSocket> client = *StreamSocket::Adopt(*service, c);
  std::unique_ptr<StreamSocket> server = *StreamSocket::Adopt(*service, s);
  KqioEcho echo(server.get());
  echo.Start();
  char msg[kMessage] = {};
  char reply[kMessage];
  const uint64_t iterations_before = service->metrics().loop_iterations;
  for (auto _ : state) {
    bool done = false;
    client->WriteAll(absl::string_view(msg, kMessage), [](absl::Status, size_t) {});
    client->ReadExactly(absl::MakeSpan(reply), [&done](absl::Status st, size_t) {
      BENCH_CHECK(st.ok());
      done = true;
    });
    while (!done) service->RunOnce();
  }
  state.SetItemsProcessed(state.iterations());
  const io::Metrics m = service->metrics();
  state.counters["loop_iters_per_rt"] = benchmark::Counter(
      static_cast<double>(m.loop_iterations - iterations_before) /
      std::max<double>(1, static_cast<double>(state.iterations())));
  client.reset();
  server.reset();
  service->Shutdown();
}

// Remembers items/s per implementation and prints kqio/raw at the end.
class RatioReporter final : public benchmark::ConsoleReporter {
 public:
  using ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) continue;
      auto it = run.counters.find("items_per_second");
      if (it == run.counters.end()) continue;
      const std::string name = run.benchmark_name();
      const char* impl = name.find("/kqio") != std::string::npos ? "kqio" : "raw";
      rates_[impl].push_back(it->second.value);
    }
    ConsoleReporter::ReportRuns(runs);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    if (rates_["raw"].empty() || rates_["kqio"].empty()) return;
    auto best = [](std::vector<double> v) { return *std::max_element(v.begin(), v.end()); };
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double raw_best = best(rates_["raw"]), kq_best = best(rates_["kqio"]);
    const double raw_med = median(rates_["raw"]), kq_med = median(rates_["kqio"]);
    printf("\nPing-pong round trips per second (64-byte message, loopback TCP)\n");
    printf("  raw epoll: best %.0f, median %.0f\n", raw_best, raw_med);
    printf("  kqio:      best %.0f, median %.0f\n", kq_best, kq_med);
    printf("  ratio kqio/raw: best %.3f, median %.3f (issue 5 target >= 0.9)\n",
           kq_best / raw_best, kq_med / raw_med);
    printf("  sizeof(StreamSocket) = %zu bytes (idle-connection target < 1 KiB "
           "of kqio state)\n",
           sizeof(StreamSocket));
  }

 private:
  std::map<std::string, std::vector<double>> rates_;
};

// Interleaved repetitions, so that a burst of foreign load hits both.
void RegisterAll() {
  for (int rep = 0; rep < 5; ++rep) {
    benchmark::RegisterBenchmark("PingPong/raw_epoll", BM_PingPongRawEpoll)
        ->UseRealTime()
        ->MinTime(0.3);
    benchmark::RegisterBenchmark("PingPong/kqio", BM_PingPongKqio)
        ->UseRealTime()
        ->MinTime(0.3);
  }
}

}  // namespace
}  // namespace net
}  // namespace kqio

int main(int argc, char** argv) {
  kqio::net::RatioReporter reporter(kqio::bench::ConsoleOutputOptions());
  return kqio::bench::RunBenchmarks(argc, argv, {}, &reporter,
                                    kqio::net::RegisterAll);
}
