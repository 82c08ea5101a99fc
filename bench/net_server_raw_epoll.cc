// The reference server: epoll used directly, as a careful C programmer
// would, with nothing kqio, Asio or libuv add.  Every socket is registered
// once, edge-triggered for read and write (what kqio's EV_CLEAR
// registration does), and drained until EAGAIN; the echo writes back inline
// from its read loop and keeps what the kernel did not take until EPOLLOUT.
// Connections sit on an intrusive list, so a connection costs one small
// struct (plus, in kEcho, its buffer).  Cross-thread requests (Post) go
// through a mutex-guarded list and one eventfd.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "bench/net_server.h"

namespace kqio {
namespace bench {
namespace {

class RawEpollServer final : public Server {
 public:
  ~RawEpollServer() override { Stop(); }

 private:
  struct Conn {
    int fd = -1;
    bool readable = false;
    bool writable = false;
    size_t pending_offset = 0, pending_length = 0;  // echo bytes not yet sent
    std::unique_ptr<char[]> buffer;                 // kEcho only
    Conn* prev = nullptr;
    Conn* next = nullptr;
  };

  // epoll_event.data.ptr of the two descriptors that are not connections.
  static void* ListenerTag() { return reinterpret_cast<void*>(1); }
  static void* WakeTag() { return reinterpret_cast<void*>(2); }

  void Run() override;
  void Post(absl::AnyInvocable<void()> fn) override;
  void StopLoop() override { running_ = false; }

  void AcceptAll();
  void OnConnEvent(Conn* c, uint32_t events);
  // kEcho: writes what is pending, reads, writes it back, until EAGAIN.
  void Pump(Conn* c);
  // kIdle: reads into the shared buffer until EAGAIN (end of stream: close).
  void Drain(Conn* c);
  void CloseConn(Conn* c);
  void RunPosted();

  int ep_ = -1, listen_fd_ = -1, wake_fd_ = -1;
  bool running_ = true;
  Conn* head_ = nullptr;
  std::unique_ptr<char[]> shared_buffer_;

  absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_ ABSL_GUARDED_BY(mu_);
};

void RawEpollServer::Run() {
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  NET_BENCH_CHECK(ep_ >= 0 && wake_fd_ >= 0 && listen_fd_ >= 0);
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  NET_BENCH_CHECK(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) ==
                  0);
  NET_BENCH_CHECK(listen(listen_fd_, SOMAXCONN) == 0);
  NET_BENCH_CHECK(
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  struct epoll_event ev = {};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.ptr = ListenerTag();
  NET_BENCH_CHECK(epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0);
  ev.events = EPOLLIN;
  ev.data.ptr = WakeTag();
  NET_BENCH_CHECK(epoll_ctl(ep_, EPOLL_CTL_ADD, wake_fd_, &ev) == 0);
  if (mode() == ServerMode::kIdle) {
    shared_buffer_.reset(new char[kServerBufferSize]);
  }
  Ready(ntohs(addr.sin_port));

  struct epoll_event events[256];  // as many as kqio's IoService fetches
  while (running_) {
    const int n = epoll_wait(ep_, events, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    NET_BENCH_CHECK(n >= 0);
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == ListenerTag()) {
        AcceptAll();
      } else if (tag == WakeTag()) {
        RunPosted();
      } else {
        // No event of a batch refers to a connection closed earlier in it:
        // a descriptor appears at most once per batch, and only its own
        // event closes a connection.
        OnConnEvent(static_cast<Conn*>(tag), events[i].events);
      }
    }
  }

  while (head_ != nullptr) CloseConn(head_);
  close(listen_fd_);
  close(wake_fd_);
  close(ep_);
  absl::MutexLock lock(&mu_);
  posted_.clear();
}

void RawEpollServer::Post(absl::AnyInvocable<void()> fn) {
  bool wake;
  {
    absl::MutexLock lock(&mu_);
    wake = posted_.empty();
    posted_.push_back(std::move(fn));
  }
  if (wake) {
    const uint64_t one = 1;
    NET_BENCH_CHECK(write(wake_fd_, &one, sizeof(one)) == sizeof(one));
  }
}

void RawEpollServer::RunPosted() {
  uint64_t count;
  (void)!read(wake_fd_, &count, sizeof(count));
  std::vector<absl::AnyInvocable<void()>> batch;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void RawEpollServer::AcceptAll() {
  for (;;) {
    const int fd =
        accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      NET_BENCH_CHECK(fd >= 0);  // EMFILE: the run's limits are wrong
    }
    if (mode() == ServerMode::kAcceptClose) {
      OnAccepted();
      close(fd);
      OnClosed();
      continue;
    }
    auto* c = new Conn;
    c->fd = fd;
    if (mode() == ServerMode::kEcho) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      c->buffer.reset(new char[kServerBufferSize]);
    }
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.ptr = c;
    NET_BENCH_CHECK(epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) == 0);
    c->next = head_;
    if (head_ != nullptr) head_->prev = c;
    head_ = c;
    OnAccepted();
  }
}

void RawEpollServer::OnConnEvent(Conn* c, uint32_t events) {
  // Errors and hang-ups surface through the next read or write.
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) c->readable = true;
  if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) c->writable = true;
  if (mode() == ServerMode::kEcho) {
    Pump(c);
  } else {
    Drain(c);
  }
}

void RawEpollServer::Pump(Conn* c) {
  for (;;) {
    if (c->pending_length > 0) {
      if (!c->writable) return;
      const ssize_t n = send(c->fd, c->buffer.get() + c->pending_offset,
                             c->pending_length, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          c->writable = false;
          return;
        }
        if (errno == EINTR) continue;
        CloseConn(c);
        return;
      }
      c->pending_offset += static_cast<size_t>(n);
      c->pending_length -= static_cast<size_t>(n);
      continue;
    }
    if (!c->readable) return;
    const ssize_t n = read(c->fd, c->buffer.get(), kServerBufferSize);
    if (n > 0) {
      c->pending_offset = 0;
      c->pending_length = static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c->readable = false;
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    CloseConn(c);  // end of stream or error
    return;
  }
}

void RawEpollServer::Drain(Conn* c) {
  while (c->readable) {
    const ssize_t n = read(c->fd, shared_buffer_.get(), kServerBufferSize);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      c->readable = false;
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    CloseConn(c);
    return;
  }
}

void RawEpollServer::CloseConn(Conn* c) {
  close(c->fd);  // removes it from the epoll set
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (head_ == c) head_ = c->next;
  delete c;
  OnClosed();
}

}  // namespace

std::unique_ptr<Server> MakeRawEpollServer() {
  return std::unique_ptr<Server>(new RawEpollServer);
}

}  // namespace bench
}  // namespace kqio
