// kqio's server: net::TcpListener and net::TcpStream on an io::IoService,
// written as net/net.h's echo example is (a connection is a shared_ptr that
// its pending completion holds; the last reference closes the socket).  The
// echo answers from its read callback with TryWrite, and only what the
// kernel does not take goes through WriteAll, as the libuv server does with
// uv_try_write.
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "bench/net_server.h"
#include "io/io_service.h"
#include "net/socket_address.h"
#include "net/stream_listener.h"
#include "net/stream_socket.h"

namespace kqio {
namespace bench {
namespace {

class KqioServer final : public Server {
 public:
  ~KqioServer() override { Stop(); }

 private:
  // Destroying it closes the socket (and counts the close).
  struct Conn {
    Conn(KqioServer* server, std::unique_ptr<net::TcpStream> s)
        : server(server), socket(std::move(s)) {}
    ~Conn() { server->OnClosed(); }
    KqioServer* const server;
    std::unique_ptr<net::TcpStream> socket;
  };
  struct EchoConn : Conn {
    using Conn::Conn;
    char buffer[kServerBufferSize];
  };

  void Run() override;
  void Post(absl::AnyInvocable<void()> fn) override {
    service_->Post(std::move(fn));
  }
  void StopLoop() override {
    listener_->Close();
    service_->Stop();
  }

  void OnConnection(std::unique_ptr<net::TcpStream> socket);
  static void Echo(std::shared_ptr<EchoConn> c);
  void Idle(std::shared_ptr<Conn> c);

  std::unique_ptr<io::IoService> service_;
  std::unique_ptr<net::TcpListener> listener_;
  std::unique_ptr<char[]> shared_buffer_;
};

void KqioServer::Run() {
  absl::StatusOr<std::unique_ptr<io::IoService>> service =
      io::IoService::Create();
  NET_BENCH_CHECK(service.ok());
  service_ = *std::move(service);
  absl::StatusOr<std::unique_ptr<net::TcpListener>> listener =
      net::TcpListener::Listen(*service_, net::SocketAddress::Ipv4Loopback(0));
  NET_BENCH_CHECK(listener.ok());
  listener_ = *std::move(listener);
  if (mode() == ServerMode::kIdle) {
    shared_buffer_.reset(new char[kServerBufferSize]);
  }
  NET_BENCH_CHECK(
      listener_
          ->StartAccepting(
              [this](absl::StatusOr<std::unique_ptr<net::TcpStream>> conn) {
                // The final call (CancelledError) comes from
                // Close() in StopLoop().
                if (conn.ok()) OnConnection(*std::move(conn));
              })
          .ok());
  Ready(listener_->local_addresses().front().port());

  service_->Run();

  listener_.reset();
  // Cancels the reads still pending; their completions drop the last
  // references to the connections.
  service_->Shutdown();
  service_.reset();
}

void KqioServer::OnConnection(std::unique_ptr<net::TcpStream> socket) {
  switch (mode()) {
    case ServerMode::kAcceptClose:
      OnAccepted();
      socket.reset();
      OnClosed();
      return;
    case ServerMode::kEcho: {
      NET_BENCH_CHECK(socket->SetNoDelay(true).ok());
      auto c = std::make_shared<EchoConn>(this, std::move(socket));
      OnAccepted();
      Echo(std::move(c));
      return;
    }
    case ServerMode::kIdle: {
      auto c = std::make_shared<Conn>(this, std::move(socket));
      OnAccepted();
      Idle(std::move(c));
      return;
    }
  }
}

void KqioServer::Echo(std::shared_ptr<EchoConn> c) {
  EchoConn* conn = c.get();
  conn->socket->Read(absl::MakeSpan(conn->buffer),
                     [c = std::move(c)](absl::Status st, size_t n) mutable {
                       if (!st.ok() || n == 0)
                         return;  // the last reference closes it
                       EchoConn* conn = c.get();
                       const absl::string_view data(conn->buffer, n);
                       absl::StatusOr<size_t> sent =
                           conn->socket->TryWrite(data);
                       if (!sent.ok()) return;
                       if (*sent == n) {
                         Echo(std::move(c));
                         return;
                       }
                       conn->socket->WriteAll(
                           data.substr(*sent),
                           [c = std::move(c)](absl::Status st, size_t) mutable {
                             if (st.ok()) Echo(std::move(c));
                           });
                     });
}

void KqioServer::Idle(std::shared_ptr<Conn> c) {
  Conn* conn = c.get();
  conn->socket->Read(
      absl::MakeSpan(shared_buffer_.get(), kServerBufferSize),
      [this, c = std::move(c)](absl::Status st, size_t n) mutable {
        if (st.ok() && n > 0) Idle(std::move(c));
      });
}

}  // namespace

std::unique_ptr<Server> MakeKqioServer() {
  return std::unique_ptr<Server>(new KqioServer);
}

}  // namespace bench
}  // namespace kqio
