// The client side of //bench:net_benchmark: the same code whatever server
// it talks to, plain blocking sockets (or one non-blocking socket and
// poll() where a single thread must send and receive at once), so that the
// figures differ only by the server.  Every blocking call has a timeout
// (kClientTimeout): a server that stops answering ends the run with a
// message instead of hanging it.  Everything here aborts on errors.
//
// Thread-safety: each object belongs to the thread that made it.
#ifndef KQIO_BENCH_NET_CLIENT_H_
#define KQIO_BENCH_NET_CLIENT_H_

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace kqio {
namespace bench {

constexpr absl::Duration kClientTimeout = absl::Seconds(10);

// Raises RLIMIT_NOFILE (soft, and hard if needed: root with
// CAP_SYS_RESOURCE) to at least `needed`; exits with a message saying what
// to do if the process may not.
void RaiseFileLimit(size_t needed);

// A blocking TCP connection to 127.0.0.1:port, with kClientTimeout on
// sends and receives.
int ConnectLoopback(uint16_t port, bool no_delay);
// Closes with a reset (SO_LINGER 0): no TIME_WAIT left behind, so a run's
// many short connections do not use up the ephemeral ports.
void CloseWithReset(int fd);

// Ping-pong: `message_size` bytes out, the same bytes back.
class PingPongClient final {
 public:
  PingPongClient(uint16_t port, size_t message_size);
  ~PingPongClient();
  PingPongClient(const PingPongClient&) = delete;
  PingPongClient& operator=(const PingPongClient&) = delete;

  // One round trip; checks the reply.
  void RoundTrip();

 private:
  const int fd_;
  std::vector<char> out_, in_;
  uint64_t sequence_ = 0;
};

// Streaming: keeps up to `window` bytes in flight, sent in `chunk`-sized
// writes; one ReceiveChunk() returns once `chunk` more bytes came back.
// Samples of the echoed bytes are checked against what was sent.
class StreamClient final {
 public:
  StreamClient(uint16_t port, size_t chunk, size_t window);
  ~StreamClient();
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  void ReceiveChunk();
  // Stops sending and takes back everything in flight.
  void Finish();
  uint64_t bytes_received() const { return received_; }

 private:
  void SendSome();
  // False on EAGAIN.
  bool ReceiveSome();
  void WaitForSocket(bool want_write);

  const int fd_;
  const size_t chunk_, window_;
  std::vector<char> pattern_, in_;
  uint64_t sent_ = 0, received_ = 0, target_ = 0;
};

// Opens `count` connections, waits for the server to close each (end of
// stream), then resets them.
void ConnectAndAwaitClose(uint16_t port, size_t count);

// The client ends of the idle connections, in a child process: both ends
// of 10,000 connections would need more descriptors than one process may
// have without CAP_SYS_RESOURCE, and the server's memory is then measured
// with no client state in the process at all.  The child connects when
// told to and closes everything (with resets) when told to; every answer it
// owes has a timeout, and a child that dies ends the run with a message.
// Fork before starting threads that may hold locks the child would need:
// the child only uses system calls and memory reserved before the fork.
class IdleClientProcess final {
 public:
  explicit IdleClientProcess(size_t max_connections);
  ~IdleClientProcess();  // CloseAll() if not done, then reaps the child
  IdleClientProcess(const IdleClientProcess&) = delete;
  IdleClientProcess& operator=(const IdleClientProcess&) = delete;

  // Opens `count` more connections to 127.0.0.1:port in batches, waiting
  // after each batch until `accepted()` (the server's count) has caught up,
  // so the listen backlog never overflows.  Allocates nothing in this
  // process.
  void Open(uint16_t port, size_t count,
            absl::FunctionRef<uint64_t()> accepted);
  // Resets every connection and lets the child exit.
  void CloseAll();

 private:
  // Child: serves commands until told to close; never returns.
  [[noreturn]] void ServeCommands();
  // Parent: sends a command (0: close all; port << 32 | n: open n to port)
  // and waits for the child's answer (connections open).
  uint64_t Command(uint64_t command);

  const size_t max_connections_;
  int to_child_ = -1, from_child_ = -1;
  int pid_ = -1;
  bool closed_ = false;
  size_t opened_ = 0;
  std::vector<int> child_fds_;  // reserved before the fork; used by the child
};

// Process memory, for the idle-connection figures.
// Bytes malloc has handed out and not had back (all arenas, mmapped blocks
// included).
int64_t HeapInUse();
// Resident set size.
int64_t ResidentBytes();
// Gives free heap pages back to the system, so that the next RSS growth is
// growth.
void TrimHeap();

// Aborts the process with a message if it is still alive after `cap`: the
// wall-clock cap of one benchmark phase.
class Watchdog final {
 public:
  Watchdog(std::string phase, absl::Duration cap);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  absl::Notification done_;
  std::thread thread_;
};

}  // namespace bench
}  // namespace kqio

#endif  // KQIO_BENCH_NET_CLIENT_H_
