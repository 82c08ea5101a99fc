#include "bench/net_client.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kqio {
namespace bench {
namespace {

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "net_benchmark: %s (errno %d: %s)\n", what.c_str(), errno,
          strerror(errno));
  abort();
}

int TimeoutMillis() {
  return static_cast<int>(absl::ToInt64Milliseconds(kClientTimeout));
}

void WriteFully(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      Die("client send failed or timed out");
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void ReadFully(int fd, char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = recv(fd, data, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) Die("client receive failed, timed out or hit end of stream");
    data += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

void RaiseFileLimit(size_t needed) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) Die("getrlimit(RLIMIT_NOFILE)");
  if (rl.rlim_cur >= needed) return;
  if (rl.rlim_max < needed) rl.rlim_max = needed;
  rl.rlim_cur = needed;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    fprintf(stderr,
            "net_benchmark: needs %zu descriptors (one per idle connection, "
            "and spares) and cannot raise RLIMIT_NOFILE to that (%s).\nRun "
            "it as root with CAP_SYS_RESOURCE, raise the hard limit first "
            "(ulimit -Hn), or ask for fewer with --net_idle_connections=N.\n",
            needed, strerror(errno));
    exit(2);
  }
}

int ConnectLoopback(uint16_t port, bool no_delay) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("client socket()");
  struct timeval tv;
  tv.tv_sec = absl::ToInt64Seconds(kClientTimeout);
  tv.tv_usec = 0;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (no_delay) {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    Die(absl::StrCat("client connect() to 127.0.0.1:", port));
  }
  return fd;
}

void CloseWithReset(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

// --- PingPongClient

PingPongClient::PingPongClient(uint16_t port, size_t message_size)
    : fd_(ConnectLoopback(port, /*no_delay=*/true)),
      out_(std::max(message_size, sizeof(uint64_t)), 'p'),
      in_(out_.size()) {}

PingPongClient::~PingPongClient() { close(fd_); }

void PingPongClient::RoundTrip() {
  ++sequence_;
  memcpy(out_.data(), &sequence_, sizeof(sequence_));
  WriteFully(fd_, out_.data(), out_.size());
  ReadFully(fd_, in_.data(), in_.size());
  if (memcmp(in_.data(), out_.data(), out_.size()) != 0) {
    Die("ping-pong reply differs from the message");
  }
}

// --- StreamClient

StreamClient::StreamClient(uint16_t port, size_t chunk, size_t window)
    : fd_(ConnectLoopback(port, /*no_delay=*/true)),
      chunk_(chunk),
      window_(window),
      pattern_(chunk),
      in_(chunk) {
  // Not a multiple of any power of two: a misplaced block shows.
  for (size_t i = 0; i < chunk; ++i) pattern_[i] = static_cast<char>(i % 251);
  if (fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK) != 0) {
    Die("client fcntl(O_NONBLOCK)");
  }
}

StreamClient::~StreamClient() { close(fd_); }

void StreamClient::SendSome() {
  while (sent_ - received_ < window_) {
    const size_t at = sent_ % chunk_;
    const size_t n = std::min(chunk_ - at, window_ - (sent_ - received_));
    const ssize_t r = send(fd_, pattern_.data() + at, n, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      Die("stream client send");
    }
    sent_ += static_cast<uint64_t>(r);
  }
}

bool StreamClient::ReceiveSome() {
  const ssize_t r = recv(fd_, in_.data(), in_.size(), 0);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;
    Die("stream client receive");
  }
  if (r == 0) Die("stream client: server closed the connection");
  const size_t n = static_cast<size_t>(r);
  // First and last byte of every read, against what was sent there.
  for (size_t k : {size_t{0}, n - 1}) {
    if (in_[k] != pattern_[(received_ + k) % chunk_]) {
      Die("stream client: echoed bytes differ from those sent");
    }
  }
  received_ += n;
  if (received_ > sent_) Die("stream client: more bytes came back than sent");
  return true;
}

void StreamClient::WaitForSocket(bool want_write) {
  struct pollfd p = {
      fd_, static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0};
  int n;
  do {
    n = poll(&p, 1, TimeoutMillis());
  } while (n < 0 && errno == EINTR);
  if (n <= 0) Die("stream client: no progress within the timeout");
}

void StreamClient::ReceiveChunk() {
  target_ += chunk_;
  while (received_ < target_) {
    SendSome();
    if (ReceiveSome()) continue;
    WaitForSocket(sent_ - received_ < window_);
  }
}

void StreamClient::Finish() {
  while (received_ < sent_) {
    if (!ReceiveSome()) WaitForSocket(false);
  }
}

// --- Connections

void ConnectAndAwaitClose(uint16_t port, size_t count) {
  int fds[256];
  if (count > 256) Die("ConnectAndAwaitClose: batch too large");
  for (size_t i = 0; i < count; ++i) {
    fds[i] = ConnectLoopback(port, /*no_delay=*/false);
  }
  for (size_t i = 0; i < count; ++i) {
    char c;
    ssize_t n;
    do {
      n = recv(fds[i], &c, 1, 0);
    } while (n < 0 && errno == EINTR);
    // A reset instead of a FIN is a close too.
    if (n > 0 || (n < 0 && errno != ECONNRESET)) {
      Die("accept client: expected the server to close the connection");
    }
    CloseWithReset(fds[i]);
  }
}

IdleClientProcess::IdleClientProcess(size_t max_connections)
    : max_connections_(max_connections) {
  child_fds_.reserve(max_connections);
  int down[2], up[2];
  if (pipe2(down, O_CLOEXEC) != 0 || pipe2(up, O_CLOEXEC) != 0) Die("pipe2");
  fflush(nullptr);  // nothing buffered is written twice
  pid_ = fork();
  if (pid_ < 0) Die("fork");
  if (pid_ == 0) {
    close(down[1]);
    close(up[0]);
    to_child_ = up[1];      // the child answers here
    from_child_ = down[0];  // and reads commands here
    ServeCommands();
  }
  close(down[0]);
  close(up[1]);
  to_child_ = down[1];
  from_child_ = up[0];
}

IdleClientProcess::~IdleClientProcess() {
  CloseAll();
  close(to_child_);
  close(from_child_);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Die("idle client process failed");
  }
}

void IdleClientProcess::ServeCommands() {
  for (;;) {
    uint64_t command;
    if (read(from_child_, &command, sizeof(command)) != sizeof(command)) {
      _exit(3);  // the parent is gone
    }
    if (command == 0) {
      for (int fd : child_fds_) CloseWithReset(fd);
      child_fds_.clear();
    } else {
      const uint16_t port = static_cast<uint16_t>(command >> 32);
      const uint64_t count = command & 0xffffffff;
      for (uint64_t i = 0; i < count && child_fds_.size() < max_connections_;
           ++i) {
        child_fds_.push_back(ConnectLoopback(port, /*no_delay=*/false));
      }
    }
    const uint64_t open = child_fds_.size();
    if (write(to_child_, &open, sizeof(open)) != sizeof(open)) _exit(3);
    if (command == 0) _exit(0);
  }
}

uint64_t IdleClientProcess::Command(uint64_t command) {
  if (write(to_child_, &command, sizeof(command)) != sizeof(command)) {
    Die("idle client process: cannot send a command");
  }
  struct pollfd p = {from_child_, POLLIN, 0};
  int n;
  do {
    n = poll(&p, 1, TimeoutMillis());
  } while (n < 0 && errno == EINTR);
  if (n <= 0) Die("idle client process: no answer within the timeout");
  uint64_t open;
  if (read(from_child_, &open, sizeof(open)) != sizeof(open)) {
    Die("idle client process died");
  }
  return open;
}

void IdleClientProcess::Open(uint16_t port, size_t count,
                             absl::FunctionRef<uint64_t()> accepted) {
  constexpr size_t kBatch = 500;  // well under the listen backlog
  const uint64_t before = accepted();
  size_t done = 0;
  while (done < count) {
    const size_t n = std::min(kBatch, count - done);
    if (Command(uint64_t{port} << 32 | n) != opened_ + n) {
      Die("idle client process: could not open the connections");
    }
    opened_ += n;
    done += n;
    const absl::Time deadline = absl::Now() + kClientTimeout;
    while (accepted() - before < done) {
      if (absl::Now() > deadline) {
        Die(absl::StrCat("idle connections: the server accepted ",
                         accepted() - before, " of ", done));
      }
      absl::SleepFor(absl::Microseconds(200));
    }
  }
}

void IdleClientProcess::CloseAll() {
  if (closed_) return;
  closed_ = true;
  if (Command(0) != 0) Die("idle client process: connections left open");
}

// --- Memory

// The sanitizers' allocators replace malloc and keep their own books; they
// define this.
extern "C" size_t __sanitizer_get_current_allocated_bytes()
    __attribute__((weak));

int64_t HeapInUse() {
  if (__sanitizer_get_current_allocated_bytes != nullptr) {
    return static_cast<int64_t>(__sanitizer_get_current_allocated_bytes());
  }
  const struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

int64_t ResidentBytes() {
  FILE* f = fopen("/proc/self/statm", "r");
  if (f == nullptr) Die("open /proc/self/statm");
  long size = 0, resident = 0;
  const int got = fscanf(f, "%ld %ld", &size, &resident);
  fclose(f);
  if (got != 2) Die("parse /proc/self/statm");
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

void TrimHeap() { malloc_trim(0); }

// --- Watchdog

Watchdog::Watchdog(std::string phase, absl::Duration cap)
    : thread_([this, phase = std::move(phase), cap] {
        if (done_.WaitForNotificationWithTimeout(cap)) return;
        fprintf(stderr, "net_benchmark: %s still running after %s: aborting\n",
                phase.c_str(), absl::FormatDuration(cap).c_str());
        abort();
      }) {}

Watchdog::~Watchdog() {
  done_.Notify();
  thread_.join();
}

}  // namespace bench
}  // namespace kqio
