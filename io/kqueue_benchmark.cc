// kqio's Linux kqueue against the raw Linux syscalls it is built on, side by
// side in one run.  Every case is registered twice, as "<Case>/raw/..." and
// "<Case>/kqio/...", doing the same work; at the end the binary prints the
// median and the minimum over the repetitions of the real time per operation
// of each, and the ratios kqio/raw (> 1: kqio is slower; see Configure() for
// why the minimum).  bench/kqueue_ratios.py prints the same table, and the
// range over several runs, from --benchmark_out JSON files.
//
// The process is made multi-threaded before anything is measured (see
// main()), and kqio's monitor thread exists throughout, for both sides.
//
//   PingPong  EVFILT_USER (EV_CLEAR) triggered from one thread, kevent()
//             returning on another, and back: two cross-thread wakeups per
//             iteration.  raw: write(eventfd) -> epoll_wait (EPOLLET, the
//             counter is never read, so each write is an edge; this is also
//             what kqio does for its own wake descriptor).  Unit: wakeup.
//   Sockets   1000 AF_UNIX SOCK_STREAM socketpairs, one end of each watched
//             with EVFILT_READ|EV_CLEAR (raw: EPOLLIN|EPOLLET).  An iteration
//             writes 1 byte into every pair, then collects events in batches
//             and reads each socket until EAGAIN, until all 1000 are seen
//             (each exactly once).  timed_writes:0 excludes the 1000 writes
//             from the timing (PauseTiming), leaving only the event loop.
//             nodata:1 registers the kqio side with KQIO_NOTE_NODATA
//             (io/kqueue_ext.h), which spares it the FIONREAD per event;
//             the raw side does the same work either way.  Unit: event.
//   Changes   64 EV_ADD then 64 EV_DELETE of EVFILT_READ on 64 socketpairs,
//             each batch in one kevent() call; raw: the same 128 epoll_ctl
//             calls.  Unit: change.
//
// Run (defaults: 30 repetitions of each benchmark, interleaved at random,
// 0.03 s each, aggregates only on the console: about 25 s in all; any flag
// given overrides them):
//   bazel run -c opt //io:kqueue_benchmark
//   bazel-bin/io/kqueue_benchmark --benchmark_out=/tmp/kq.json
//   python3 bench/kqueue_ratios.py /tmp/kq*.json
//
// Any unexpected result (an event missing, duplicated or of the wrong kind, a
// failed call) aborts the binary: a number is printed only for work that was
// verifiably done.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/event.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/bench_main.h"
#include "benchmark/benchmark.h"
#include "io/kqueue_ext.h"

namespace {

#define BENCH_CHECK(cond)                                                  \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s (errno %d: %s)\n", __FILE__, \
              __LINE__, #cond, errno, strerror(errno));                    \
      abort();                                                             \
    }                                                                      \
  } while (0)

// ---------------------------------------------------------------------------
// Helpers.

void CloseAll(std::vector<int>& fds) {
  for (int fd : fds) close(fd);
  fds.clear();
}

// `n` AF_UNIX stream socketpairs: `watched[i]` is the end the queue watches
// and reads, `peer[i]` the end the benchmark writes to.
void MakeSocketPairs(int n, std::vector<int>* watched, std::vector<int>* peer) {
  for (int i = 0; i < n; ++i) {
    int sv[2];
    BENCH_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                           0, sv) == 0);
    watched->push_back(sv[0]);
    peer->push_back(sv[1]);
  }
}

// Reads `fd` until EAGAIN; returns the number of bytes read.
int64_t ReadUntilEagain(int fd) {
  char buf[64];
  int64_t total = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r > 0) {
      total += r;
      continue;
    }
    BENCH_CHECK(r < 0 && errno == EAGAIN);
    return total;
  }
}

void SetOpsPerIteration(benchmark::State& state, int ops) {
  state.SetItemsProcessed(state.iterations() * ops);
  state.counters["ops_per_iter"] = ops;
}

// ---------------------------------------------------------------------------
// 1. Cross-thread wakeup ping-pong.
//
// Thread A (the benchmark thread) and thread B each wait on their own queue.
// One iteration: A signals B, waits; B wakes, signals A; A wakes.  Neither can
// return from its wait before the other thread has acted, so every iteration
// is two real cross-thread handoffs.  `vcsw_per_wakeup` (voluntary context
// switches of both threads per wakeup) shows how often the waiting thread was
// actually asleep rather than still on its way to the wait.

constexpr int kPingPongWarmup = 200;
constexpr uintptr_t kUserIdent = 42;

long VoluntarySwitches() {
  struct rusage ru;
  BENCH_CHECK(getrusage(RUSAGE_THREAD, &ru) == 0);
  return ru.ru_nvcsw;
}

// Runs the ping-pong given `signal(side)` and `wait(side)` for side 0 (A) and
// 1 (B).
template <typename Signal, typename Wait>
void RunPingPong(benchmark::State& state, Signal signal, Wait wait) {
  std::atomic<bool> stop{false};
  std::atomic<long> b_switches{0};
  std::thread b([&] {
    const long before = VoluntarySwitches();
    for (;;) {
      wait(1);
      if (stop.load(std::memory_order_acquire)) break;
      signal(0);
    }
    b_switches.store(VoluntarySwitches() - before, std::memory_order_relaxed);
  });
  for (int i = 0; i < kPingPongWarmup; ++i) {
    signal(1);
    wait(0);
  }
  const long switches_before = VoluntarySwitches();
  for (auto _ : state) {
    signal(1);
    wait(0);
  }
  const long switches = VoluntarySwitches() - switches_before;
  stop.store(true, std::memory_order_release);
  signal(1);
  b.join();
  SetOpsPerIteration(state, 2);
  // B's count includes its warm-up rounds: a slight overestimate.
  state.counters["vcsw_per_wakeup"] =
      state.iterations() == 0
          ? 0.0
          : static_cast<double>(switches + b_switches.load()) /
                static_cast<double>(2 * state.iterations());
}

void BM_PingPongRaw(benchmark::State& state) {
  int efd[2], ep[2];
  for (int side = 0; side < 2; ++side) {
    efd[side] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    BENCH_CHECK(efd[side] >= 0);
    ep[side] = epoll_create1(EPOLL_CLOEXEC);
    BENCH_CHECK(ep[side] >= 0);
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = kUserIdent + static_cast<uint64_t>(side);
    BENCH_CHECK(epoll_ctl(ep[side], EPOLL_CTL_ADD, efd[side], &ev) == 0);
  }
  auto signal = [&](int side) {
    const uint64_t one = 1;
    BENCH_CHECK(write(efd[side], &one, sizeof(one)) == sizeof(one));
  };
  auto wait = [&](int side) {
    struct epoll_event ev;
    int n;
    do {
      n = epoll_wait(ep[side], &ev, 1, -1);
    } while (n < 0 && errno == EINTR);
    BENCH_CHECK(n == 1);
    BENCH_CHECK(ev.data.u64 == kUserIdent + static_cast<uint64_t>(side));
  };
  RunPingPong(state, signal, wait);
  for (int side = 0; side < 2; ++side) {
    close(ep[side]);
    close(efd[side]);
  }
}

void BM_PingPongKqio(benchmark::State& state) {
  int kq[2];
  struct kevent trigger[2];
  for (int side = 0; side < 2; ++side) {
    kq[side] = kqueue();
    BENCH_CHECK(kq[side] >= 0);
    struct kevent add;
    EV_SET(&add, kUserIdent, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0,
           reinterpret_cast<void*>(static_cast<uintptr_t>(side)));
    BENCH_CHECK(kevent(kq[side], &add, 1, nullptr, 0, nullptr) == 0);
    EV_SET(&trigger[side], kUserIdent, EVFILT_USER, 0, NOTE_TRIGGER, 0,
           reinterpret_cast<void*>(static_cast<uintptr_t>(side)));
  }
  auto signal = [&](int side) {
    BENCH_CHECK(kevent(kq[side], &trigger[side], 1, nullptr, 0, nullptr) == 0);
  };
  auto wait = [&](int side) {
    struct kevent ev;
    int n;
    do {
      n = kevent(kq[side], nullptr, 0, &ev, 1, nullptr);
    } while (n < 0 && errno == EINTR);
    BENCH_CHECK(n == 1);
    BENCH_CHECK(ev.filter == EVFILT_USER && ev.ident == kUserIdent &&
                ev.udata == reinterpret_cast<void*>(
                                static_cast<uintptr_t>(side)));
  };
  RunPingPong(state, signal, wait);
  for (int side = 0; side < 2; ++side) close(kq[side]);
  kqio_drain_pending_close();
}

// ---------------------------------------------------------------------------
// 2. Edge-triggered reads on 1000 socketpairs.

constexpr int kSockets = 1000;

// What both variants share: the sockets, the per-socket "seen in this
// iteration" marks and the checks.  `Collect(batch, on_event)` is the
// variant's wait: it returns the number of events stored (> 0) and calls
// on_event(index) for each.
struct SocketBench {
  std::vector<int> watched, peer;
  std::vector<uint64_t> seen_in;  // iteration that saw socket i, 0: none
  uint64_t iteration = 0;
  int64_t bytes = 0;

  SocketBench() {
    MakeSocketPairs(kSockets, &watched, &peer);
    seen_in.assign(kSockets, 0);
  }
  ~SocketBench() {
    CloseAll(watched);
    CloseAll(peer);
  }

  void WriteAll() {
    for (int fd : peer) BENCH_CHECK(write(fd, "x", 1) == 1);
  }

  void OnEvent(uint64_t index) {
    BENCH_CHECK(index < static_cast<uint64_t>(kSockets));
    BENCH_CHECK(seen_in[index] != iteration);  // reported twice
    seen_in[index] = iteration;
    const int64_t n = ReadUntilEagain(watched[index]);
    BENCH_CHECK(n == 1);
    bytes += n;
  }

  template <typename Collect>
  void Run(benchmark::State& state, Collect collect) {
    const int batch = static_cast<int>(state.range(1));
    const bool timed_writes = state.range(2) != 0;
    auto one_iteration = [&] {
      ++iteration;
      int seen = 0;
      while (seen < kSockets) {
        const int n = collect(batch);
        BENCH_CHECK(n > 0 && n <= batch);
        seen += n;
      }
      BENCH_CHECK(seen == kSockets);
    };
    // Warm-up: one round, untimed.
    WriteAll();
    one_iteration();
    for (auto _ : state) {
      if (!timed_writes) state.PauseTiming();
      WriteAll();
      if (!timed_writes) state.ResumeTiming();
      one_iteration();
    }
    benchmark::DoNotOptimize(bytes);
    BENCH_CHECK(bytes ==
                static_cast<int64_t>(iteration) * kSockets);
    SetOpsPerIteration(state, kSockets);
  }
};

void BM_SocketsRaw(benchmark::State& state) {
  SocketBench b;
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  BENCH_CHECK(ep >= 0);
  for (int i = 0; i < kSockets; ++i) {
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = static_cast<uint64_t>(i);
    BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, b.watched[i], &ev) == 0);
  }
  std::vector<struct epoll_event> evs(static_cast<size_t>(state.range(1)));
  b.Run(state, [&](int batch) {
    const int n = epoll_wait(ep, evs.data(), batch, 5000);
    BENCH_CHECK(n > 0);  // 0: an expected event never came
    for (int i = 0; i < n; ++i) {
      BENCH_CHECK((evs[i].events & EPOLLIN) != 0);
      b.OnEvent(evs[i].data.u64);
    }
    return n;
  });
  close(ep);
}

void BM_SocketsKqio(benchmark::State& state) {
  SocketBench b;
  const int kq = kqueue();
  BENCH_CHECK(kq >= 0);
  const bool nodata = state.range(3) != 0;
  const unsigned fflags = nodata ? KQIO_NOTE_NODATA : 0;
  const int64_t want_data = nodata ? 0 : 1;  // the byte written, or nothing
  std::vector<struct kevent> changes(kSockets);
  for (int i = 0; i < kSockets; ++i) {
    EV_SET(&changes[i], b.watched[i], EVFILT_READ, EV_ADD | EV_CLEAR, fflags,
           0, reinterpret_cast<void*>(static_cast<uintptr_t>(i)));
  }
  BENCH_CHECK(kevent(kq, changes.data(), kSockets, nullptr, 0, nullptr) == 0);
  std::vector<struct kevent> evs(static_cast<size_t>(state.range(1)));
  const struct timespec timeout = {5, 0};
  b.Run(state, [&](int batch) {
    const int n = kevent(kq, nullptr, 0, evs.data(), batch, &timeout);
    BENCH_CHECK(n > 0);  // 0: an expected event never came
    for (int i = 0; i < n; ++i) {
      BENCH_CHECK(evs[i].filter == EVFILT_READ &&
                  (evs[i].flags & (EV_ERROR | EV_EOF)) == 0 &&
                  evs[i].data == want_data);
      const uintptr_t index = reinterpret_cast<uintptr_t>(evs[i].udata);
      BENCH_CHECK(evs[i].ident == static_cast<uintptr_t>(b.watched[index]));
      b.OnEvent(index);
    }
    return n;
  });
  close(kq);
  kqio_drain_pending_close();
}

// ---------------------------------------------------------------------------
// 3. A batch of 64 changes.

constexpr int kChanges = 64;

void BM_ChangesRaw(benchmark::State& state) {
  std::vector<int> watched, peer;
  MakeSocketPairs(kChanges, &watched, &peer);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  BENCH_CHECK(ep >= 0);
  for (auto _ : state) {
    for (int i = 0; i < kChanges; ++i) {
      struct epoll_event ev = {};
      ev.events = EPOLLIN;
      ev.data.u64 = static_cast<uint64_t>(i);
      BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, watched[i], &ev) == 0);
    }
    for (int i = 0; i < kChanges; ++i) {
      struct epoll_event ev = {};
      BENCH_CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, watched[i], &ev) == 0);
    }
  }
  SetOpsPerIteration(state, 2 * kChanges);
  close(ep);
  CloseAll(watched);
  CloseAll(peer);
}

void BM_ChangesKqio(benchmark::State& state) {
  std::vector<int> watched, peer;
  MakeSocketPairs(kChanges, &watched, &peer);
  const int kq = kqueue();
  BENCH_CHECK(kq >= 0);
  struct kevent add[kChanges], del[kChanges];
  for (int i = 0; i < kChanges; ++i) {
    void* udata = reinterpret_cast<void*>(static_cast<uintptr_t>(i));
    EV_SET(&add[i], watched[i], EVFILT_READ, EV_ADD, 0, 0, udata);
    EV_SET(&del[i], watched[i], EVFILT_READ, EV_DELETE, 0, 0, udata);
  }
  for (auto _ : state) {
    // 0: every change applied (a failure would come back as an EV_ERROR
    // entry only with room for it; with none the call fails).
    BENCH_CHECK(kevent(kq, add, kChanges, nullptr, 0, nullptr) == 0);
    BENCH_CHECK(kevent(kq, del, kChanges, nullptr, 0, nullptr) == 0);
  }
  SetOpsPerIteration(state, 2 * kChanges);
  close(kq);
  kqio_drain_pending_close();
  CloseAll(watched);
  CloseAll(peer);
}

// ---------------------------------------------------------------------------
// Registration: raw and kqio next to each other.

// Common settings.  Besides mean, median, stddev and cv, each benchmark
// reports the minimum over its repetitions: on a shared machine, foreign load
// only ever adds time, and it can switch a whole repetition into a slow mode
// (PingPong: with another process on the second core, each wakeup costs a
// trip through the scheduler, about ten times the cost), so the median can
// compare a fast raw mode with a slow kqio one.  The minimum compares the
// undisturbed costs.
//
// KQIO_BENCH_ITERATIONS=N fixes every benchmark's iteration count (for
// profiling under callgrind, where the counts are then exact per operation).
void Configure(benchmark::internal::Benchmark* b) {
  b->UseRealTime();
  kqio::bench::AddMinStatistic(b);
  const char* env = getenv("KQIO_BENCH_ITERATIONS");
  if (env != nullptr && atoi(env) > 0) b->Iterations(atoi(env));
}

void RegisterAll() {
  using benchmark::RegisterBenchmark;
  for (auto [impl, fn] : {std::make_pair("raw", &BM_PingPongRaw),
                          std::make_pair("kqio", &BM_PingPongKqio)}) {
    RegisterBenchmark((std::string("PingPong/") + impl).c_str(), fn)
        ->Unit(benchmark::kNanosecond)
        ->Apply(Configure);
  }
  for (auto [impl, fn] : {std::make_pair("raw", &BM_SocketsRaw),
                          std::make_pair("kqio", &BM_SocketsKqio)}) {
    RegisterBenchmark((std::string("Sockets/") + impl).c_str(), fn)
        ->ArgNames({"k", "batch", "timed_writes", "nodata"})
        ->Args({kSockets, 64, 1, 0})
        ->Args({kSockets, 256, 1, 0})
        ->Args({kSockets, 64, 0, 0})
        ->Args({kSockets, 256, 0, 0})
        ->Args({kSockets, 64, 0, 1})
        ->Args({kSockets, 256, 0, 1})
        ->Unit(benchmark::kMicrosecond)
        ->Apply(Configure);
  }
  for (auto [impl, fn] : {std::make_pair("raw", &BM_ChangesRaw),
                          std::make_pair("kqio", &BM_ChangesKqio)}) {
    RegisterBenchmark((std::string("Changes/") + impl).c_str(), fn)
        ->Arg(kChanges)
        ->ArgName("n")
        ->Unit(benchmark::kNanosecond)
        ->Apply(Configure);
  }
}

// ---------------------------------------------------------------------------
// The ratio table (bench/bench_main.h): its "op" column, what one operation
// of a case is.
const char* UnitOf(const std::string& key) {
  if (key.rfind("PingPong", 0) == 0) return "wakeup";
  if (key.rfind("Sockets", 0) == 0) return "event";
  return "change";
}

void RaiseFdLimit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t want = 4 * kSockets + 256;
  if (rl.rlim_cur >= want) return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                    ? want
                    : rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

// After UseReleaseMutexMode(), before anything is measured.
//
// The first kqueue() starts kqio's monitor thread, and from then on the
// process is multi-threaded, which makes every libc syscall wrapper (read,
// write, epoll_wait...) take its slower cancellation path.  Do it before
// anything is measured, so that raw and kqio run in the same state whatever
// the order.
void SetUpAndRegisterAll() {
  const int kq = kqueue();
  BENCH_CHECK(kq >= 0);
  close(kq);
  kqio_drain_pending_close();
  RegisterAll();
}

}  // namespace

int main(int argc, char** argv) {
  RaiseFdLimit();
  kqio::bench::PairRatioTable table;
  table.peer = "raw";
  table.per_op_counter = "ops_per_iter";
  table.title =
      "Real time per operation (ns) over the repetitions; ratio = kqio/raw "
      "(> 1: kqio slower)";
  table.footer = "(op/s: from the medians)";
  table.case_width = 40;
  table.ns_decimals = 1;
  table.ratio_decimals = 3;
  table.rate_suffix = " op/s";
  table.rate_width = 9;
  table.unit_of = UnitOf;
  kqio::bench::PairRatioReporter reporter(std::move(table),
                                          kqio::bench::ConsoleOutputOptions());
  return kqio::bench::RunBenchmarks(
      argc, argv, kqio::bench::InterleavedRepetitionFlags(30, 0.03), &reporter,
      SetUpAndRegisterAll);
}
