// Helpers for net/ tests: running a loop until a condition, raw peers, and
// short temporary directories for Unix sockets.  Test-only.
#ifndef KQIO_NET_INTERNAL_TEST_UTIL_H_
#define KQIO_NET_INTERNAL_TEST_UTIL_H_

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "io/io_service.h"
#include "net/callbacks.h"
#include "net/socket_address.h"
#include "net/stream_listener.h"
#include "net/stream_socket.h"

namespace kqio {
namespace net {
namespace testing {

inline std::unique_ptr<io::IoService> NewService() {
  absl::StatusOr<std::unique_ptr<io::IoService>> s = io::IoService::Create();
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

// Runs the loop until `done()` or `timeout`; returns done().
inline bool RunUntil(io::IoService& service, absl::FunctionRef<bool()> done,
                     absl::Duration timeout = absl::Seconds(30)) {
  bool timed_out = false;
  const io::TimerId t = service.RunAfter(timeout, [&] { timed_out = true; });
  while (!done() && !timed_out) service.RunOnce();
  service.Cancel(t);
  return done();
}

// Runs the loop for `d` (for "nothing more happens" checks).
inline void RunFor(io::IoService& service, absl::Duration d) {
  bool over = false;
  service.RunAfter(d, [&] { over = true; });
  while (!over) service.RunOnce();
}

// What an IoCallback reported, and how many times it was called.
struct IoResult {
  bool done = false;
  absl::Status status;
  size_t bytes = 0;
  int calls = 0;
};

// A callback that records into `r`, which must outlive it.
inline IoCallback Record(IoResult& r) {
  return [&r](absl::Status s, size_t n) {
    r.done = true;
    r.status = std::move(s);
    r.bytes = n;
    ++r.calls;
  };
}

// A ConnectCallback that records into `r` (bytes stays 0), which must
// outlive it.
inline ConnectCallback RecordConnect(IoResult& r) {
  return [&r](absl::Status s) { Record(r)(std::move(s), 0); };
}

// An unconnected blocking TCP socket with a 5 s receive timeout, so that a
// test cannot hang on a read.
inline int RawClientSocket(int family = AF_INET) {
  const int fd = socket(family, SOCK_STREAM, 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// RawClientSocket() connected (blocking) to `to`.
inline int RawClient(const SocketAddress& to) {
  const int fd = RawClientSocket(to.family());
  EXPECT_EQ(connect(fd, to.data(), to.size()), 0) << errno;
  return fd;
}

using Connections = std::vector<std::unique_ptr<StreamSocket>>;

// An accept handler that keeps every accepted connection in `out`.
inline StreamListener::AcceptHandler Collect(Connections& out) {
  return [&out](absl::StatusOr<std::unique_ptr<StreamSocket>> c) {
    if (c.ok()) out.push_back(*std::move(c));
  };
}

// A listener on 127.0.0.1 (an ephemeral port) accepting into `out`; null,
// and a failure, if it could not start.
inline std::unique_ptr<StreamListener> ListenAndCollect(
    io::IoService& service, Connections& out,
    ListenerOptions options = ListenerOptions()) {
  absl::StatusOr<std::unique_ptr<StreamListener>> l =
      StreamListener::Listen(service, SocketAddress::Ipv4Loopback(0), options);
  if (!l.ok()) {
    ADD_FAILURE() << l.status();
    return nullptr;
  }
  const absl::Status started = (*l)->StartAccepting(Collect(out));
  EXPECT_TRUE(started.ok()) << started;
  return *std::move(l);
}

// A blocking TCP socket bound to 127.0.0.1 on an ephemeral port, and
// listening with `backlog` unless that is negative; `*bound` is its address.
inline int BoundLoopbackSocket(SocketAddress* bound, int backlog = -1) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  *bound = SocketAddress::Ipv4Loopback(0);
  EXPECT_EQ(bind(fd, bound->data(), bound->size()), 0) << errno;
  if (backlog >= 0) {
    EXPECT_EQ(listen(fd, backlog), 0) << errno;
  }
  socklen_t len = SocketAddress::capacity();
  EXPECT_EQ(getsockname(fd, bound->mutable_data(), &len), 0) << errno;
  bound->set_size(len);
  return fd;
}

// A connected loopback TCP pair made with blocking calls: `a` and `b` are
// plain descriptors (blocking).
struct RawPair {
  int a = -1;
  int b = -1;
};
inline RawPair RawTcpPair() {
  RawPair p;
  SocketAddress bound;
  const int l = BoundLoopbackSocket(&bound, 4);
  p.a = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(connect(p.a, bound.data(), bound.size()), 0);
  p.b = accept(l, nullptr, nullptr);
  EXPECT_GE(p.b, 0);
  close(l);
  return p;
}

// A StreamSocket on one end of a loopback TCP connection, the other end a
// raw blocking descriptor the test owns.
struct StreamAndPeer {
  std::unique_ptr<StreamSocket> stream;
  int peer = -1;
};
inline StreamAndPeer TcpStreamAndPeer(io::IoService& service,
                                      StreamOptions options = {}) {
  RawPair p = RawTcpPair();
  absl::StatusOr<std::unique_ptr<StreamSocket>> s =
      StreamSocket::Adopt(service, p.b, options);
  EXPECT_TRUE(s.ok()) << s.status();
  return {*std::move(s), p.a};
}

// Both ends of a loopback TCP connection as StreamSockets.
struct StreamPair {
  std::unique_ptr<StreamSocket> a;
  std::unique_ptr<StreamSocket> b;
};
inline StreamPair TcpStreamPair(io::IoService& service,
                                StreamOptions options = {}) {
  RawPair p = RawTcpPair();
  absl::StatusOr<std::unique_ptr<StreamSocket>> a =
      StreamSocket::Adopt(service, p.a, options);
  absl::StatusOr<std::unique_ptr<StreamSocket>> b =
      StreamSocket::Adopt(service, p.b, options);
  EXPECT_TRUE(a.ok() && b.ok());
  return {*std::move(a), *std::move(b)};
}

// Blocking write of all of `data`.
inline bool WriteFully(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// A directory under /tmp (short enough for sun_path), removed with the files
// the test left in it.
class ShortTempDir final {
 public:
  ShortTempDir() {
    char tmpl[] = "/tmp/kqio-net-XXXXXX";
    const char* p = mkdtemp(tmpl);
    EXPECT_NE(p, nullptr);
    if (p != nullptr) path_ = p;
  }
  ~ShortTempDir() {
    if (path_.empty()) return;
    if (DIR* d = opendir(path_.c_str())) {
      while (struct dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") unlink((path_ + "/" + name).c_str());
      }
      closedir(d);
    }
    rmdir(path_.c_str());
  }
  ShortTempDir(const ShortTempDir&) = delete;
  ShortTempDir& operator=(const ShortTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A 64-bit FNV-1a over `data`, for comparing large transfers.
inline uint64_t Fnv1a(const char* data, size_t n,
                      uint64_t h = 1469598103934665603ull) {
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace testing
}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_INTERNAL_TEST_UTIL_H_
