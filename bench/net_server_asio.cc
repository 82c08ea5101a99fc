// Asio's server (standalone Asio, Debian's libasio-dev): one io_context run
// by one thread, an acceptor, and connections kept alive by the handlers
// that hold their shared_ptr, as in Asio's own echo examples.
#include <asio.hpp>
#include <memory>
#include <system_error>
#include <utility>

#include "bench/net_server.h"

namespace kqio {
namespace bench {
namespace {

using asio::ip::tcp;

class AsioServer final : public Server {
 public:
  ~AsioServer() override { Stop(); }

 private:
  struct Conn {
    Conn(AsioServer* server, tcp::socket s)
        : server(server), socket(std::move(s)) {}
    ~Conn() { server->OnClosed(); }
    AsioServer* const server;
    tcp::socket socket;
  };
  struct EchoConn : Conn {
    using Conn::Conn;
    char buffer[kServerBufferSize];
  };

  void Run() override;
  void Post(absl::AnyInvocable<void()> fn) override {
    asio::post(*context_, std::move(fn));
  }
  void StopLoop() override {
    std::error_code ignored;
    acceptor_->close(ignored);
    context_->stop();
  }

  void Accept();
  void OnConnection(tcp::socket socket);
  static void Echo(std::shared_ptr<EchoConn> c);
  void Idle(std::shared_ptr<Conn> c);

  asio::io_context* context_ = nullptr;
  tcp::acceptor* acceptor_ = nullptr;
  std::unique_ptr<char[]> shared_buffer_;
};

void AsioServer::Run() {
  // Destroyed in reverse order: the acceptor, then the context, whose
  // destructor destroys the handlers still pending and with them the last
  // references to the connections.
  asio::io_context context(/*concurrency_hint=*/1);
  tcp::acceptor acceptor(context,
                         tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  context_ = &context;
  acceptor_ = &acceptor;
  if (mode() == ServerMode::kIdle) {
    shared_buffer_.reset(new char[kServerBufferSize]);
  }
  Accept();
  Ready(acceptor.local_endpoint().port());
  context.run();
}

void AsioServer::Accept() {
  acceptor_->async_accept([this](std::error_code ec, tcp::socket socket) {
    if (ec) return;  // closed by StopLoop()
    OnConnection(std::move(socket));
    Accept();
  });
}

void AsioServer::OnConnection(tcp::socket socket) {
  switch (mode()) {
    case ServerMode::kAcceptClose: {
      OnAccepted();
      std::error_code ignored;
      socket.close(ignored);
      OnClosed();
      return;
    }
    case ServerMode::kEcho: {
      socket.set_option(tcp::no_delay(true));
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

void AsioServer::Echo(std::shared_ptr<EchoConn> c) {
  EchoConn* conn = c.get();
  conn->socket.async_read_some(
      asio::buffer(conn->buffer),
      [c = std::move(c)](std::error_code ec, size_t n) mutable {
        if (ec) return;  // end of stream or error: the last reference closes
        EchoConn* conn = c.get();
        asio::async_write(
            conn->socket, asio::buffer(conn->buffer, n),
            [c = std::move(c)](std::error_code ec, size_t) mutable {
              if (!ec) Echo(std::move(c));
            });
      });
}

void AsioServer::Idle(std::shared_ptr<Conn> c) {
  Conn* conn = c.get();
  conn->socket.async_read_some(
      asio::buffer(shared_buffer_.get(), kServerBufferSize),
      [this, c = std::move(c)](std::error_code ec, size_t) mutable {
        if (!ec) Idle(std::move(c));
      });
}

}  // namespace

std::unique_ptr<Server> MakeAsioServer() {
  return std::unique_ptr<Server>(new AsioServer);
}

}  // namespace bench
}  // namespace kqio
