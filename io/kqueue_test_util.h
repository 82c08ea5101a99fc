// Helpers shared by the kqueue conformance tests (io/kqueue_*_test.cc).
//
// The tests are written against the FreeBSD kqueue(2) manual page and use
// only POSIX, <sys/event.h> and the C++ standard library, so that they also
// run against a native FreeBSD or macOS kqueue.  Where the platforms
// legitimately differ (see the header comment of kqio's Linux
// <sys/event.h>), the expectation goes through a helper here; behaviour that
// only kqio promises is tested under `#ifdef __linux__`.
//
// Every wait in the tests is bounded by kSafety: a timeout is a safety net
// that turns a hang into a failure, never the quantity being measured.
#ifndef KQIO_IO_KQUEUE_TEST_UTIL_H_
#define KQIO_IO_KQUEUE_TEST_UTIL_H_

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/event.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kqio_test {

// Upper bound for anything that is expected to happen "soon".
inline constexpr std::chrono::seconds kSafety{5};

inline struct timespec ToTimespec(std::chrono::nanoseconds d) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(d.count() / 1000000000);
  ts.tv_nsec = static_cast<long>(d.count() % 1000000000);
  return ts;
}

inline struct kevent MakeEvent(uintptr_t ident, short filter,
                               unsigned short flags, unsigned int fflags = 0,
                               int64_t data = 0, void* udata = nullptr) {
  struct kevent kev;
  EV_SET(&kev, ident, filter, flags, fflags, data, udata);
  return kev;
}

// Applies one change without waiting.  Returns 0 or the errno of the change
// (kevent() fails with it, as there is no room for an EV_ERROR entry).
inline int Apply(int kq, const struct kevent& change) {
  const struct timespec zero = {0, 0};
  if (kevent(kq, &change, 1, nullptr, 0, &zero) == 0) return 0;
  return errno;
}

inline int Apply(int kq, uintptr_t ident, short filter, unsigned short flags,
                 unsigned int fflags = 0, int64_t data = 0,
                 void* udata = nullptr) {
  return Apply(kq, MakeEvent(ident, filter, flags, fflags, data, udata));
}

// Collects what is ready now (zero timeout).
inline std::vector<struct kevent> Poll(int kq, int max = 16) {
  std::vector<struct kevent> out(static_cast<size_t>(max));
  const struct timespec zero = {0, 0};
  int n = kevent(kq, nullptr, 0, out.data(), max, &zero);
  if (n < 0) {
    ADD_FAILURE() << "kevent(poll) failed: " << strerror(errno);
    n = 0;
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

// Waits for at least one event, up to `limit`.  Empty on timeout.
inline std::vector<struct kevent> Wait(
    int kq, int max = 16, std::chrono::nanoseconds limit = kSafety) {
  std::vector<struct kevent> out(static_cast<size_t>(max));
  const struct timespec ts = ToTimespec(limit);
  int n = kevent(kq, nullptr, 0, out.data(), max, &ts);
  if (n < 0) {
    ADD_FAILURE() << "kevent(wait) failed: " << strerror(errno);
    n = 0;
  }
  out.resize(static_cast<size_t>(n));
  return out;
}

// Waits (bounded by kSafety) for the event of (ident, filter); events of
// other knotes seen meanwhile are dropped.  Returns false on timeout.
inline bool WaitFor(int kq, uintptr_t ident, short filter, struct kevent* out) {
  const auto deadline = std::chrono::steady_clock::now() + kSafety;
  for (;;) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) return false;
    for (const struct kevent& ev : Wait(kq, 16, left)) {
      if (ev.ident == ident && ev.filter == filter) {
        *out = ev;
        return true;
      }
    }
  }
}

// Returned flags without EV_ADD: kqio and macOS keep it in returned events,
// FreeBSD strips it.
inline unsigned short Flags(const struct kevent& ev) {
  return static_cast<unsigned short>(ev.flags & ~EV_ADD);
}

// Counts events of (ident, filter) in `evs`.
inline int CountOf(const std::vector<struct kevent>& evs, uintptr_t ident,
                   short filter) {
  int n = 0;
  for (const struct kevent& ev : evs) {
    if (ev.ident == ident && ev.filter == filter) ++n;
  }
  return n;
}

// Number of open descriptors of this process, once every closed kqueue has
// released its internal descriptors.
inline int OpenFdCount() {
#ifdef __linux__
  // The first kqueue() starts kqio's monitor, which keeps one descriptor for
  // the life of the process: create it before anything is counted.
  static const bool warmed_up = [] {
    int kq = kqueue();
    if (kq >= 0) close(kq);
    return true;
  }();
  (void)warmed_up;
  kqio_drain_pending_close();
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (struct dirent* d = readdir(dir)) {
    if (d->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory's own descriptor
#else
  int n = 0;
  const int limit = static_cast<int>(sysconf(_SC_OPEN_MAX));
  for (int fd = 0; fd < limit && fd < 65536; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) ++n;
  }
  return n;
#endif
}

// For failure messages: the open descriptors and what they are.
inline std::string OpenFdList() {
  std::string out;
#ifdef __linux__
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return out;
  while (struct dirent* d = readdir(dir)) {
    if (d->d_name[0] == '.') continue;
    char target[256] = {};
    const std::string link = std::string("/proc/self/fd/") + d->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    out += std::string(" ") + d->d_name + "=" + (n > 0 ? target : "?");
  }
  closedir(dir);
#endif
  return out;
}

// A kqueue per test, and a check that the test left no descriptor open.
class KqueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fds_before_ = OpenFdCount();
    kq_ = kqueue();
    ASSERT_GE(kq_, 0) << strerror(errno);
  }

  void TearDown() override {
    if (kq_ >= 0) {
      EXPECT_EQ(close(kq_), 0);
    }
    EXPECT_EQ(OpenFdCount(), fds_before_)
        << "a descriptor leaked; open:" << OpenFdList();
  }

  int kq_ = -1;

 private:
  int fds_before_ = 0;
};

// Closes a descriptor at the end of a scope.
class ScopedFd final {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  ~ScopedFd() { reset(); }

  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

inline void SetNonBlocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  ASSERT_GE(fl, 0);
  ASSERT_EQ(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

// Writes `n` bytes ('x') to `fd` in one call, which must take them all.
inline void Send(int fd, size_t n) {
  std::vector<char> buf(n, 'x');
  ASSERT_EQ(write(fd, buf.data(), n), static_cast<ssize_t>(n));
}

// A connected non-blocking AF_UNIX stream pair, closed at the end of the
// test.
struct SocketPair {
  SocketPair() {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
      a.reset(sv[0]);
      b.reset(sv[1]);
      SetNonBlocking(sv[0]);
      SetNonBlocking(sv[1]);
    }
  }
  ScopedFd a, b;
};

// A non-blocking pipe, closed at the end of the test.
struct Pipe {
  Pipe() {
    int p[2];
    if (pipe(p) == 0) {
      read_end.reset(p[0]);
      write_end.reset(p[1]);
      SetNonBlocking(p[0]);
      SetNonBlocking(p[1]);
    }
  }
  int r() const { return read_end.get(); }
  int w() const { return write_end.get(); }
  // Writes `n` bytes.
  void Put(size_t n) { Send(w(), n); }
  ScopedFd read_end;
  ScopedFd write_end;
};

// Fills `fd` (non-blocking) until the kernel says EAGAIN; returns the bytes
// written.
inline size_t FillUntilEagain(int fd) {
  static char chunk[4096];
  size_t total = 0;
  for (;;) {
    ssize_t n = write(fd, chunk, sizeof(chunk));
    if (n > 0) {
      total += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    EXPECT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        << strerror(errno);
    return total;
  }
}

// Reads and discards everything readable now from `fd` (non-blocking).
inline size_t DrainReadable(int fd) {
  char buf[4096];
  size_t total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      total += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return total;
  }
}

// A TCP socket listening on 127.0.0.1 at an ephemeral port.
inline int ListenLoopback(int backlog, struct sockaddr_in* addr) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&a), sizeof(a)) != 0 ||
      (backlog >= 0 && listen(fd, backlog) != 0) ||
      getsockname(fd, reinterpret_cast<struct sockaddr*>(&a), &len) != 0) {
    close(fd);
    return -1;
  }
  *addr = a;
  return fd;
}

// A blocking connect to `addr`; the returned socket is then non-blocking.
inline int ConnectTo(const struct sockaddr_in& addr) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<const struct sockaddr*>(&addr),
              sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// A connected TCP pair over loopback: `client` and the accepted `server`,
// both non-blocking.
inline bool TcpPair(ScopedFd* client, ScopedFd* server) {
  struct sockaddr_in addr;
  ScopedFd listener(ListenLoopback(1, &addr));
  if (listener.get() < 0) return false;
  client->reset(ConnectTo(addr));
  if (client->get() < 0) return false;
  server->reset(accept(listener.get(), nullptr, nullptr));
  if (server->get() < 0) return false;
  fcntl(server->get(), F_SETFL, fcntl(server->get(), F_GETFL) | O_NONBLOCK);
  return true;
}

// A non-blocking TCP socket whose connect() is in progress (EINPROGRESS) to
// a port that is bound but does not listen, so the SYN is answered with a
// RST.  `closed_port` holds the port.  -1 (and a failure) if that went
// otherwise.
inline int StartRefusedConnect(ScopedFd* closed_port) {
  struct sockaddr_in addr;
  closed_port->reset(ListenLoopback(-1, &addr));
  if (closed_port->get() < 0) {
    ADD_FAILURE() << "bind: " << strerror(errno);
    return -1;
  }
  ScopedFd sock(socket(AF_INET, SOCK_STREAM, 0));
  if (sock.get() < 0 || fcntl(sock.get(), F_SETFL, O_NONBLOCK) != 0) {
    ADD_FAILURE() << "socket: " << strerror(errno);
    return -1;
  }
  const int r = connect(sock.get(), reinterpret_cast<struct sockaddr*>(&addr),
                        sizeof(addr));
  if (r != -1 || errno != EINPROGRESS) {
    ADD_FAILURE() << "connect: " << r << " " << strerror(errno);
    return -1;
  }
  return sock.release();
}

// The body of the TcpCleanCloseIsEofWithoutError tests: EVFILT_READ,
// registered with `fflags`, on the accepted end of a TCP connection whose
// client then closes, reports nothing before and EV_EOF with no error and
// data 0 after.
inline void ExpectTcpCleanCloseIsEofWithoutError(int kq, unsigned int fflags) {
  ScopedFd client, server;
  ASSERT_TRUE(TcpPair(&client, &server));
  ASSERT_EQ(Apply(kq, server.get(), EVFILT_READ, EV_ADD, fflags), 0);
  EXPECT_TRUE(Poll(kq).empty());
  client.reset();
  struct kevent ev;
  ASSERT_TRUE(WaitFor(kq, server.get(), EVFILT_READ, &ev));
  EXPECT_TRUE(ev.flags & EV_EOF);
  EXPECT_EQ(ev.fflags, 0u);
  EXPECT_EQ(ev.data, 0);
}

// Runs `child` in a forked process and returns its exit status (or -1 if it
// did not exit within kSafety, in which case it is killed).  `child` must
// only use async-signal-safe calls and kevent/kqueue; it returns the exit
// code.
template <typename F>
int RunInChild(F child) {
  pid_t pid = fork();
  if (pid < 0) return -2;
  if (pid == 0) _exit(child());
  const auto deadline = std::chrono::steady_clock::now() + kSafety;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -3;
    if (r < 0 && errno != EINTR) return -4;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    const struct timespec tick = {0, 1000000};
    nanosleep(&tick, nullptr);
  }
}

// A private directory under the test's temporary directory.
inline std::string MakeTempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string path =
      std::string(base != nullptr ? base : "/tmp") + "/kqueue_test.XXXXXX";
  if (mkdtemp(&path[0]) == nullptr) return "";
  return path;
}

}  // namespace kqio_test

#endif  // KQIO_IO_KQUEUE_TEST_UTIL_H_
