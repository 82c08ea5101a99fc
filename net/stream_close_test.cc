// Closing aborts (contract 2) and no stale events (contract 3): closing any
// socket with operations pending, closing from inside callbacks, and a close
// that leaves an event of the same batch behind.
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "io/errno_status.h"
#include "io/io_service.h"
#include "net/internal/test_util.h"
#include "net/socket_address.h"
#include "net/stream_listener.h"
#include "net/stream_socket.h"

namespace kqio {
namespace net {
namespace {

using testing::IoResult;
using testing::NewService;
using testing::RawClient;
using testing::Record;
using testing::RecordConnect;
using testing::RunFor;
using testing::RunUntil;

TEST(StreamCloseTest, ClosingAListenerCancelsItsAcceptOnce) {
  auto service = NewService();
  auto l = StreamListener::Listen(*service, SocketAddress::Ipv4Loopback(0));
  ASSERT_TRUE(l.ok());
  const SocketAddress addr = (*l)->local_addresses()[0];
  std::vector<absl::Status> calls;
  ASSERT_TRUE((*l)->StartAccepting([&](absl::StatusOr<std::unique_ptr<StreamSocket>> c) {
                  calls.push_back(c.status());
                }).ok());
  RunFor(*service, absl::Milliseconds(10));
  EXPECT_TRUE(calls.empty());
  (*l)->Close();
  EXPECT_TRUE(calls.empty());  // from the loop, not inside Close()
  ASSERT_TRUE(RunUntil(*service, [&] { return !calls.empty(); }));
  EXPECT_TRUE(absl::IsCancelled(calls[0])) << calls[0];
  EXPECT_EQ(io::StatusErrno(calls[0]), ECANCELED);
  // The port is closed, and the handler is never called again.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_NE(connect(fd, addr.data(), addr.size()), 0);
  close(fd);
  RunFor(*service, absl::Milliseconds(10));
  EXPECT_EQ(calls.size(), 1u);
  EXPECT_FALSE((*l)->StartAccepting([](auto) {}).ok());
  EXPECT_EQ(service->metrics().tracked_operations, 0u);
}

TEST(StreamCloseTest, ClosingCancelsPendingReadsAndWritesInOrder) {
  auto service = NewService();
  StreamOptions options;
  options.max_write_queue_bytes = 64 << 20;
  auto sp = testing::TcpStreamAndPeer(*service, options);
  char buf[16];
  const std::string big(32 << 20, 'w');
  IoResult r1, r2, w1, w2;
  std::vector<int> order;
  sp.stream->Read(absl::MakeSpan(buf), [&](absl::Status s, size_t n) {
    Record(r1)(s, n);
    order.push_back(1);
  });
  sp.stream->ReadExactly(absl::MakeSpan(buf), [&](absl::Status s, size_t n) {
    Record(r2)(s, n);
    order.push_back(2);
  });
  sp.stream->WriteAll(big, [&](absl::Status s, size_t n) {
    Record(w1)(s, n);
    order.push_back(3);
  });
  sp.stream->WriteAll("tail", [&](absl::Status s, size_t n) {
    Record(w2)(s, n);
    order.push_back(4);
  });
  RunFor(*service, absl::Milliseconds(20));
  ASSERT_FALSE(r1.done || r2.done || w1.done || w2.done)
      << r1.status << r2.status << w1.status << w2.status << w1.bytes;
  sp.stream->Close();
  EXPECT_FALSE(r1.done);  // never inside Close()
  EXPECT_FALSE(sp.stream->is_open());
  ASSERT_TRUE(RunUntil(*service, [&] { return order.size() == 4; }));
  for (IoResult* r : {&r1, &r2, &w1, &w2}) {
    EXPECT_TRUE(absl::IsCancelled(r->status)) << r->status;
    EXPECT_EQ(r->calls, 1);
  }
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_GT(w1.bytes, 0u);
  EXPECT_EQ(w2.bytes, 0u);
  sp.stream->Close();  // idempotent
  RunFor(*service, absl::Milliseconds(5));
  EXPECT_EQ(order.size(), 4u);
  close(sp.peer);
}

TEST(StreamCloseTest, ClosingCancelsAPendingConnectAndItsTimer) {
  auto service = NewService();
  const int l = socket(AF_INET, SOCK_STREAM, 0);
  SocketAddress a = SocketAddress::Ipv4Loopback(0);
  ASSERT_EQ(bind(l, a.data(), a.size()), 0);
  ASSERT_EQ(listen(l, 0), 0);
  socklen_t len = SocketAddress::capacity();
  ASSERT_EQ(getsockname(l, a.mutable_data(), &len), 0);
  a.set_size(len);
  // Fill the backlog (1 connection with backlog 0) with raw clients.
  std::vector<int> fillers;
  for (int i = 0; i < 2; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(fd, a.data(), a.size());
    fillers.push_back(fd);
  }
  auto c = StreamSocket::Create(*service);
  IoResult connect;
  c->Connect(a, absl::Seconds(30), RecordConnect(connect));
  RunFor(*service, absl::Milliseconds(20));
  if (connect.done) {
    GTEST_SKIP() << "the kernel completed the connect: " << connect.status;
  }
  EXPECT_EQ(service->metrics().timers_pending, 1u);
  c.reset();  // the destructor closes
  ASSERT_TRUE(RunUntil(*service, [&] { return connect.done; }));
  EXPECT_TRUE(absl::IsCancelled(connect.status)) << connect.status;
  EXPECT_EQ(service->metrics().timers_pending, 0u);
  EXPECT_EQ(service->metrics().tracked_operations, 0u);
  for (int fd : fillers) close(fd);
  close(l);
}

TEST(StreamCloseTest, DestroyingTheSocketFromItsReadCallbackCancelsItsWrite) {
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  const std::string big(32 << 20, 'x');
  IoResult w, r;
  char buf[4];
  sp.stream->WriteAll(big, Record(w));
  sp.stream->Read(absl::MakeSpan(buf), [&](absl::Status s, size_t n) {
    Record(r)(s, n);
    sp.stream.reset();  // close from inside the socket's own callback
  });
  ASSERT_TRUE(testing::WriteFully(sp.peer, "go"));
  ASSERT_TRUE(RunUntil(*service, [&] { return r.done && w.done; }));
  EXPECT_TRUE(r.status.ok());
  EXPECT_EQ(r.bytes, 2u);
  EXPECT_EQ(sp.stream, nullptr);
  EXPECT_TRUE(absl::IsCancelled(w.status)) << w.status;
  EXPECT_EQ(w.calls, 1);
  close(sp.peer);
}

TEST(StreamCloseTest, QueuedCompletionsSurviveTheSocket) {
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  ASSERT_TRUE(testing::WriteFully(sp.peer, "ready"));
  RunFor(*service, absl::Milliseconds(5));
  char buf[8];
  IoResult r;
  sp.stream->Read(absl::MakeSpan(buf), Record(r));  // completes at once...
  sp.stream.reset();  // ...and its closure outlives the socket
  ASSERT_TRUE(RunUntil(*service, [&] { return r.done; }));
  EXPECT_TRUE(r.status.ok());  // it had finished before the close
  EXPECT_EQ(std::string(buf, r.bytes), "ready");
  close(sp.peer);
}

TEST(StreamCloseTest, AcceptHandlerMayDestroyTheListener) {
  auto service = NewService();
  ListenerOptions options;
  auto l = StreamListener::Listen(*service, SocketAddress::Ipv4Loopback(0), options);
  ASSERT_TRUE(l.ok());
  std::unique_ptr<StreamListener> listener = *std::move(l);
  const SocketAddress addr = listener->local_addresses()[0];
  std::vector<int> clients;
  for (int i = 0; i < 5; ++i) clients.push_back(RawClient(addr));
  std::vector<std::unique_ptr<StreamSocket>> accepted;
  std::vector<absl::Status> errors;
  ASSERT_TRUE(listener
                  ->StartAccepting([&](absl::StatusOr<std::unique_ptr<StreamSocket>> c) {
                    if (!c.ok()) {
                      errors.push_back(c.status());
                      return;
                    }
                    accepted.push_back(*std::move(c));
                    listener.reset();  // from inside its own handler
                  })
                  .ok());
  ASSERT_TRUE(RunUntil(*service, [&] { return !errors.empty(); }));
  RunFor(*service, absl::Milliseconds(10));
  EXPECT_EQ(accepted.size(), 1u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(absl::IsCancelled(errors[0]));
  accepted.clear();  // so that every client, this one too, reads an end
  // Every client is told: EOF (accepted, then closed) or a reset.
  int told = 0;
  for (int fd : clients) {
    char c;
    const ssize_t n = read(fd, &c, 1);
    if (n == 0 || (n < 0 && errno == ECONNRESET)) ++told;
    close(fd);
  }
  EXPECT_EQ(told, 5);
  EXPECT_EQ(service->metrics().tracked_operations, 0u);
}

// Contract 3, end to end.  One kevent() batch holds an event of a pipe whose
// handler closes socket B, and an event of B.  The handler then creates
// socket C, which gets B's descriptor number and B's slot in the service
// (free slots are reused last-in first-out).  B's event must be dropped as
// stale: it must not reach C (a spurious read completion) nor freed B.
TEST(StreamCloseTest, EventOfASocketClosedEarlierInTheSameBatchIsDropped) {
  auto service = NewService();
  testing::RawPair pb = testing::RawTcpPair();
  auto b = StreamSocket::Adopt(*service, pb.b);
  ASSERT_TRUE(b.ok());
  std::unique_ptr<StreamSocket> stream_b = *std::move(b);
  const int b_fd = stream_b->native_handle();
  char bbuf[8];
  IoResult rb;
  stream_b->Read(absl::MakeSpan(bbuf), Record(rb));  // nothing yet: pending
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC), 0);
  RunFor(*service, absl::Milliseconds(5));  // settle the first events
  ASSERT_FALSE(rb.done);

  std::unique_ptr<StreamSocket> stream_c;
  int peer_c = -1;
  char cbuf[8];
  IoResult rc;
  auto watch = service->Watch(
      pipe_fds[0], EVFILT_READ, EV_CLEAR, 0, [&](const struct kevent&) {
        stream_b.reset();
        int sv[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        auto c = StreamSocket::Adopt(*service, sv[0]);
        ASSERT_TRUE(c.ok());
        stream_c = *std::move(c);
        peer_c = sv[1];
        stream_c->Read(absl::MakeSpan(cbuf), Record(rc));
      });
  ASSERT_TRUE(watch.ok());
  const uint64_t stale_before = service->metrics().stale_events_dropped;
  ASSERT_EQ(write(pipe_fds[1], "p", 1), 1);    // ready first...
  ASSERT_TRUE(testing::WriteFully(pb.a, "B!"));  // ...then B: one batch
  service->RunOnce();
  ASSERT_NE(stream_c, nullptr);
  EXPECT_EQ(stream_c->native_handle(), b_fd);  // the scenario's premise
  // B's read event, and the write readiness epoll reports with it.
  EXPECT_GE(service->metrics().stale_events_dropped, stale_before + 1);
  ASSERT_TRUE(RunUntil(*service, [&] { return rb.done; }));
  EXPECT_TRUE(absl::IsCancelled(rb.status)) << rb.status;
  RunFor(*service, absl::Milliseconds(10));
  EXPECT_FALSE(rc.done);  // nothing leaked into C
  ASSERT_TRUE(testing::WriteFully(peer_c, "C"));
  ASSERT_TRUE(RunUntil(*service, [&] { return rc.done; }));
  EXPECT_EQ(std::string(cbuf, rc.bytes), "C");
  ASSERT_TRUE(service->Unwatch(*watch).ok());
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  close(pb.a);
  close(peer_c);
}

}  // namespace
}  // namespace net
}  // namespace kqio
