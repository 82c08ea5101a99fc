// libuv's server: one uv_loop_t run by one thread, a uv_tcp_t listener, one
// heap-allocated uv_tcp_t per connection, freed from its uv_close callback,
// as in libuv's guide.  Cross-thread requests (Post) go through a
// mutex-guarded list and one uv_async_t.
//
// The echo: libuv reads whenever the socket is readable (uv_read_start);
// each read is written back with uv_try_write, and only if the kernel does
// not take it all does the rest go through uv_write, with reading stopped
// until it completes, so that the one per-connection buffer is never
// overwritten while it is being sent (the same read-write-read order as the
// other servers).
#include <netinet/in.h>
#include <uv.h>

#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "bench/net_server.h"

namespace kqio {
namespace bench {
namespace {

class LibuvServer final : public Server {
 public:
  ~LibuvServer() override { Stop(); }

 private:
  // handle.data points back to the Conn.
  struct Conn {
    uv_tcp_t handle;
    LibuvServer* server = nullptr;
  };
  struct EchoConn : Conn {
    uv_write_t write_req;
    char buffer[kServerBufferSize];
  };
  static Conn* ConnOf(void* handle) {
    return static_cast<Conn*>(static_cast<uv_handle_t*>(handle)->data);
  }

  void Run() override;
  void Post(absl::AnyInvocable<void()> fn) override;
  void StopLoop() override;

  static void OnConnection(uv_stream_t* listener, int status);
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf);
  static void OnWritten(uv_write_t* req, int status);
  static void OnAsync(uv_async_t* async);
  static void CloseConn(Conn* c);

  uv_loop_t loop_;
  uv_tcp_t listener_;
  uv_async_t async_;
  std::unique_ptr<char[]> shared_buffer_;

  absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_ ABSL_GUARDED_BY(mu_);
};

void LibuvServer::Run() {
  NET_BENCH_CHECK(uv_loop_init(&loop_) == 0);
  NET_BENCH_CHECK(uv_async_init(&loop_, &async_, &OnAsync) == 0);
  async_.data = this;
  NET_BENCH_CHECK(uv_tcp_init(&loop_, &listener_) == 0);
  listener_.data = this;
  struct sockaddr_in addr;
  NET_BENCH_CHECK(uv_ip4_addr("127.0.0.1", 0, &addr) == 0);
  NET_BENCH_CHECK(
      uv_tcp_bind(&listener_, reinterpret_cast<sockaddr*>(&addr), 0) == 0);
  NET_BENCH_CHECK(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_),
                            SOMAXCONN, &OnConnection) == 0);
  int len = sizeof(addr);
  NET_BENCH_CHECK(uv_tcp_getsockname(&listener_,
                                     reinterpret_cast<sockaddr*>(&addr),
                                     &len) == 0);
  if (mode() == ServerMode::kIdle) {
    shared_buffer_.reset(new char[kServerBufferSize]);
  }
  Ready(ntohs(addr.sin_port));

  uv_run(&loop_, UV_RUN_DEFAULT);  // until StopLoop() closed every handle
  NET_BENCH_CHECK(uv_loop_close(&loop_) == 0);
  absl::MutexLock lock(&mu_);
  posted_.clear();
}

void LibuvServer::Post(absl::AnyInvocable<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    posted_.push_back(std::move(fn));
  }
  uv_async_send(&async_);  // coalesces wakeups itself
}

void LibuvServer::OnAsync(uv_async_t* async) {
  auto* self = static_cast<LibuvServer*>(async->data);
  std::vector<absl::AnyInvocable<void()>> batch;
  {
    absl::MutexLock lock(&self->mu_);
    batch.swap(self->posted_);
  }
  for (auto& fn : batch) fn();
}

void LibuvServer::StopLoop() {
  // Every handle left is closed; uv_run() returns when the last close
  // callback has run.
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void* arg) {
        auto* self = static_cast<LibuvServer*>(arg);
        if (uv_is_closing(h)) return;
        if (h == reinterpret_cast<uv_handle_t*>(&self->listener_) ||
            h == reinterpret_cast<uv_handle_t*>(&self->async_)) {
          uv_close(h, nullptr);
        } else {
          CloseConn(ConnOf(h));
        }
      },
      this);
}

void LibuvServer::CloseConn(Conn* c) {
  uv_handle_t* h = reinterpret_cast<uv_handle_t*>(&c->handle);
  if (uv_is_closing(h)) return;
  uv_close(h, [](uv_handle_t* h) {
    Conn* c = ConnOf(h);
    LibuvServer* server = c->server;
    if (server->mode() == ServerMode::kEcho) {
      delete static_cast<EchoConn*>(c);
    } else {
      delete c;
    }
    server->OnClosed();
  });
}

void LibuvServer::OnConnection(uv_stream_t* listener, int status) {
  auto* self = static_cast<LibuvServer*>(listener->data);
  if (status < 0) return;
  Conn* c = self->mode() == ServerMode::kEcho ? new EchoConn : new Conn;
  c->server = self;
  NET_BENCH_CHECK(uv_tcp_init(&self->loop_, &c->handle) == 0);
  c->handle.data = c;
  uv_stream_t* stream = reinterpret_cast<uv_stream_t*>(&c->handle);
  NET_BENCH_CHECK(uv_accept(listener, stream) == 0);
  self->OnAccepted();
  switch (self->mode()) {
    case ServerMode::kAcceptClose:
      CloseConn(c);
      return;
    case ServerMode::kEcho:
      NET_BENCH_CHECK(uv_tcp_nodelay(&c->handle, 1) == 0);
      break;
    case ServerMode::kIdle:
      break;
  }
  NET_BENCH_CHECK(uv_read_start(stream, &OnAlloc, &OnRead) == 0);
}

void LibuvServer::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  Conn* c = ConnOf(handle);
  char* base = c->server->mode() == ServerMode::kEcho
                   ? static_cast<EchoConn*>(c)->buffer
                   : c->server->shared_buffer_.get();
  *buf = uv_buf_init(base, kServerBufferSize);
}

void LibuvServer::OnRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
  Conn* c = ConnOf(stream);
  if (n < 0) {  // UV_EOF or an error
    CloseConn(c);
    return;
  }
  // EAGAIN, or kIdle (nothing is sent on idle connections).
  if (n == 0 || c->server->mode() != ServerMode::kEcho) return;
  uv_buf_t out = uv_buf_init(buf->base, static_cast<unsigned>(n));
  const int sent = uv_try_write(stream, &out, 1);
  if (sent == n) return;
  if (sent > 0) {
    out.base += sent;
    out.len -= static_cast<size_t>(sent);
  } else if (sent != UV_EAGAIN) {
    CloseConn(c);
    return;
  }
  uv_read_stop(stream);
  NET_BENCH_CHECK(uv_write(&static_cast<EchoConn*>(c)->write_req, stream, &out,
                           1, &OnWritten) == 0);
}

void LibuvServer::OnWritten(uv_write_t* req, int status) {
  if (status < 0) {
    CloseConn(ConnOf(req->handle));  // no-op if it is closing already
    return;
  }
  NET_BENCH_CHECK(uv_read_start(req->handle, &OnAlloc, &OnRead) == 0);
}

}  // namespace

std::unique_ptr<Server> MakeLibuvServer() {
  return std::unique_ptr<Server>(new LibuvServer);
}

}  // namespace bench
}  // namespace kqio
