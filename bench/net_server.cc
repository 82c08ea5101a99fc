#include "bench/net_server.h"

#include <pthread.h>
#include <sched.h>

#include <utility>

#include "absl/time/time.h"

namespace kqio {
namespace bench {

namespace {
// Wall-clock caps: a server that does not come up, or a loop that does not
// answer, ends the run with a message instead of hanging it.
constexpr absl::Duration kLoopAnswerCap = absl::Seconds(30);
}  // namespace

const char* ImplName(Impl impl) {
  switch (impl) {
    case Impl::kRawEpoll:
      return "raw_epoll";
    case Impl::kKqio:
      return "kqio";
    case Impl::kAsio:
      return "asio";
    case Impl::kLibuv:
      return "libuv";
  }
  return "?";
}

std::unique_ptr<Server> MakeServer(Impl impl) {
  switch (impl) {
    case Impl::kRawEpoll:
      return MakeRawEpollServer();
    case Impl::kKqio:
      return MakeKqioServer();
    case Impl::kAsio:
      return MakeAsioServer();
    case Impl::kLibuv:
      return MakeLibuvServer();
  }
  return nullptr;
}

bool PinThisThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof(set), &set) == 0;
}

void Server::Start(ServerMode mode, int cpu) {
  NET_BENCH_CHECK(!thread_.joinable());
  mode_ = mode;
  thread_ = std::thread([this, cpu] {
    if (cpu >= 0) NET_BENCH_CHECK(PinThisThread(cpu));
    Run();
  });
  if (!ready_.WaitForNotificationWithTimeout(kLoopAnswerCap)) {
    fprintf(stderr, "net_benchmark: server did not start within %s\n",
            absl::FormatDuration(kLoopAnswerCap).c_str());
    abort();
  }
}

void Server::Ready(uint16_t port) {
  NET_BENCH_CHECK(port != 0);
  port_ = port;
  NET_BENCH_CHECK(pthread_getcpuclockid(pthread_self(), &cpu_clock_) == 0);
  ready_.Notify();
}

void Server::Stop() {
  if (!thread_.joinable()) return;
  Post([this] { StopLoop(); });
  thread_.join();
}

void Server::Sync() {
  absl::Notification done;
  Post([&done] { done.Notify(); });
  if (!done.WaitForNotificationWithTimeout(kLoopAnswerCap)) {
    fprintf(stderr, "net_benchmark: server loop did not answer within %s\n",
            absl::FormatDuration(kLoopAnswerCap).c_str());
    abort();
  }
}

int64_t Server::CpuNanos() const {
  struct timespec ts;
  NET_BENCH_CHECK(clock_gettime(cpu_clock_, &ts) == 0);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace bench
}  // namespace kqio
