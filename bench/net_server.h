// The servers of //bench:net_benchmark: one per implementation (raw epoll,
// kqio, Asio, libuv), each running its event loop on a thread of its own,
// listening on 127.0.0.1 at a port the kernel picks.  The client side
// (bench/net_client.h) is the same code for all of them, so the figures
// differ only by the server.
//
// Every implementation is written the way its users write it, doing the
// same work in the same order:
//   kEcho         read up to 64 KiB into the connection's own buffer, write
//                 all of it back, then read again (TCP_NODELAY);
//   kAcceptClose  accept and close at once;
//   kIdle         accept and keep a read pending, into one buffer shared by
//                 every connection of the server (nothing is ever sent on
//                 them), closing on end of stream.  What a connection then
//                 costs is the library's state, not a buffer.
// Connections are owned the idiomatic way of each library (shared_ptr
// captured by completions for kqio and Asio, heap handles closed through
// uv_close for libuv, an intrusive list for raw epoll), so the memory
// figures contain no container of the benchmark's own.
//
// Lifetime and thread-safety: Start() once, then Stop() (the destructor
// does it).  accepted(), live(), CpuNanos(), Sync() and Stop() may be called
// from any one thread (the client's); everything else belongs to the loop.
#ifndef KQIO_BENCH_NET_SERVER_H_
#define KQIO_BENCH_NET_SERVER_H_

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/notification.h"

// Benchmarks abort on anything unexpected: a figure from a broken run is
// worse than none.
#define NET_BENCH_CHECK(cond)                                                  \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

namespace kqio {
namespace bench {

enum class Impl { kRawEpoll, kKqio, kAsio, kLibuv };
constexpr Impl kAllImpls[] = {Impl::kRawEpoll, Impl::kKqio, Impl::kAsio,
                              Impl::kLibuv};
const char* ImplName(Impl impl);  // "raw_epoll", "kqio", "asio", "libuv"

enum class ServerMode { kEcho, kAcceptClose, kIdle };

// Bytes one read may take (and one echo write may send back).
constexpr size_t kServerBufferSize = 64 * 1024;

// Binds the calling thread to one CPU; false if the system refuses.
bool PinThisThread(int cpu);

class Server {
 public:
  virtual ~Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts the loop thread and returns once it is accepting.  With
  // `cpu` >= 0 the loop thread runs on that CPU only.
  void Start(ServerMode mode, int cpu = -1);
  // Closes the listener and every connection, ends the loop, joins the
  // thread.  Idempotent.  Derived destructors must call it.
  void Stop();
  // Runs a no-op on the loop and waits for it: what the loop had queued
  // before has run.
  void Sync();

  uint16_t port() const { return port_; }
  // Connections accepted, and those accepted and not yet closed.
  uint64_t accepted() const {
    return accepted_.load(std::memory_order_acquire);
  }
  int64_t live() const { return live_.load(std::memory_order_acquire); }
  // CPU time the loop thread has used (user + system).
  int64_t CpuNanos() const;

 protected:
  Server() = default;

  // Loop thread: creates the loop and the listener on 127.0.0.1:0, calls
  // Ready() with the port, runs until StopLoop(), then releases everything.
  virtual void Run() = 0;
  // Any thread, after Ready(): runs `fn` on the loop thread.
  virtual void Post(absl::AnyInvocable<void()> fn) = 0;
  // Loop thread: closes the listener and every connection and makes Run()
  // return.
  virtual void StopLoop() = 0;

  void Ready(uint16_t port);
  void OnAccepted() {
    accepted_.fetch_add(1, std::memory_order_acq_rel);
    live_.fetch_add(1, std::memory_order_acq_rel);
  }
  void OnClosed() { live_.fetch_sub(1, std::memory_order_acq_rel); }
  ServerMode mode() const { return mode_; }

 private:
  ServerMode mode_ = ServerMode::kEcho;
  std::thread thread_;
  absl::Notification ready_;
  uint16_t port_ = 0;
  clockid_t cpu_clock_ = CLOCK_THREAD_CPUTIME_ID;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<int64_t> live_{0};
};

std::unique_ptr<Server> MakeRawEpollServer();
std::unique_ptr<Server> MakeKqioServer();
std::unique_ptr<Server> MakeAsioServer();
std::unique_ptr<Server> MakeLibuvServer();
std::unique_ptr<Server> MakeServer(Impl impl);

}  // namespace bench
}  // namespace kqio

#endif  // KQIO_BENCH_NET_SERVER_H_
