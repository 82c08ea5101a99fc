// kqio net/: TCP, UDP and Unix-domain sockets on one io::IoService.
//
// The parts:
//   SocketAddress   (socket_address.h)  IPv4 / IPv6 / Unix address values;
//   StreamListener  (stream_listener.h) TCP and Unix listeners: batches of
//                   accepts, connection limit, EMFILE back-off;
//   StreamSocket    (stream_socket.h)   connected streams: Connect with a
//                   deadline, Read, ReadExactly, Write, WriteAll (gather),
//                   SendFile, half-close, bounded write queue;
//   UdpSocket       (udp_socket.h)      SendTo / ReceiveFrom;
//   Resolver        (resolver.h)        getaddrinfo on the thread pool.
// TcpListener / UnixListener and TcpStream / UnixStream are the same
// classes; the address family decides.
//
// How they fit: every socket registers its descriptor with the service's
// kqueue once (EV_CLEAR, edge-triggered) and keeps "readable" / "writable"
// flags; operations run their system calls while the flag is set and drain
// until EAGAIN.  Completions are posted to the loop and own their operation,
// so sockets can be closed or destroyed from any callback; closing cancels
// what is pending (CancelledError).  A socket with pending operations keeps
// IoService::Run() going; idle sockets do not (a listener that is accepting
// does).  See net/internal/socket_core.h for the details.
//
// An echo server (README-ready; echo_example_test.cc runs the same code):
//
//   struct Conn { std::unique_ptr<net::TcpStream> s; char buf[4096]; };
//   void Echo(std::shared_ptr<Conn> c) {
//     c->s->Read(absl::MakeSpan(c->buf), [c](absl::Status st, size_t n) {
//       if (!st.ok() || n == 0) return;  // error or EOF: last ref closes it
//       c->s->WriteAll({c->buf, n}, [c](absl::Status st, size_t) {
//         if (st.ok()) Echo(c);
//       });
//     });
//   }
//   int main() {
//     auto service = *io::IoService::Create();
//     auto listener = *net::TcpListener::Listen(
//         *service, net::SocketAddress::Ipv4Loopback(7777));
//     (void)listener->StartAccepting([](auto conn) {
//       if (conn.ok()) Echo(std::make_shared<Conn>(Conn{*std::move(conn), {}}));
//     });
//     service->Run();
//   }
#ifndef KQIO_NET_NET_H_
#define KQIO_NET_NET_H_

#include "net/callbacks.h"
#include "net/resolver.h"
#include "net/socket_address.h"
#include "net/stream_listener.h"
#include "net/stream_options.h"
#include "net/stream_socket.h"
#include "net/udp_socket.h"

#endif  // KQIO_NET_NET_H_
