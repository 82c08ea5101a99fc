// StreamSocket over loopback TCP: connect (and its failures), reads, writes,
// half-close, resets, back-pressure, and how sockets keep the loop alive.
#include "net/stream_socket.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "io/errno_status.h"
#include "io/io_service.h"
#include "net/internal/test_util.h"
#include "net/socket_address.h"
#include "net/stream_listener.h"

namespace kqio {
namespace net {
namespace {

using testing::IoResult;
using testing::NewService;
using testing::Record;
using testing::RecordConnect;
using testing::RunFor;
using testing::RunUntil;

TEST(StreamSocketTest, ConnectsWritesAndReadsBack) {
  auto service = NewService();
  auto listener = StreamListener::Listen(*service, SocketAddress::Ipv4Loopback(0));
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::unique_ptr<StreamSocket> server;
  ASSERT_TRUE((*listener)
                  ->StartAccepting([&](absl::StatusOr<std::unique_ptr<StreamSocket>> c) {
                    if (c.ok()) server = *std::move(c);
                  })
                  .ok());
  auto client = StreamSocket::Create(*service);
  IoResult connected;
  client->Connect((*listener)->local_addresses()[0], absl::Seconds(5),
                  RecordConnect(connected));
  EXPECT_FALSE(connected.done);  // never inside the starting call
  ASSERT_TRUE(RunUntil(*service, [&] { return connected.done && server; }));
  ASSERT_TRUE(connected.status.ok()) << connected.status;
  EXPECT_TRUE(client->is_connected());
  EXPECT_EQ(client->peer_address()->ToString(),
            server->local_address()->ToString());
  EXPECT_TRUE(client->SetNoDelay(true).ok());
  EXPECT_TRUE(client->SetKeepAlive(true, absl::Seconds(30)).ok());

  // The server echoes one message.
  char sbuf[16];
  IoResult sread, swrite;
  server->Read(absl::MakeSpan(sbuf), [&](absl::Status s, size_t n) {
    sread.status = s;
    sread.bytes = n;
    sread.done = true;
    server->WriteAll(absl::string_view(sbuf, n), Record(swrite));
  });
  const std::string msg = "hello, kqio";
  IoResult cwrite, cread;
  char cbuf[11];
  client->WriteAll(msg, Record(cwrite));
  client->ReadExactly(absl::MakeSpan(cbuf), Record(cread));
  ASSERT_TRUE(RunUntil(*service, [&] { return cread.done && swrite.done; }));
  EXPECT_TRUE(cwrite.status.ok());
  EXPECT_EQ(cwrite.bytes, msg.size());
  ASSERT_TRUE(cread.status.ok()) << cread.status;
  EXPECT_EQ(std::string(cbuf, sizeof(cbuf)), msg);

  const io::Metrics m = service->metrics();
  EXPECT_EQ(m.op(io::OpClass::kConnect).completed, 1u);
  EXPECT_GE(m.op(io::OpClass::kRead).completed, 2u);
  EXPECT_EQ(m.op(io::OpClass::kAccept).completed, 1u);
  EXPECT_EQ(m.tracked_operations, 1u);  // only the accepting listener
}

TEST(StreamSocketTest, ConnectRefusedKeepsTheErrno) {
  auto service = NewService();
  // Bound but not listening: the SYN is answered with a reset.
  SocketAddress a;
  const int holder = testing::BoundLoopbackSocket(&a);

  auto client = StreamSocket::Create(*service);
  IoResult connect;
  client->Connect(a, absl::Seconds(5), RecordConnect(connect));
  ASSERT_TRUE(RunUntil(*service, [&] { return connect.done; }));
  const absl::Status& status = connect.status;
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(io::StatusErrno(status), ECONNREFUSED) << status;
  EXPECT_NE(status.message().find(a.ToString()), std::string::npos) << status;
  EXPECT_FALSE(client->is_open());
  close(holder);
}

TEST(StreamSocketTest, ConnectTimesOutWhenTheBacklogIsFull) {
  auto service = NewService();
  // A listener that never accepts, with the smallest backlog: once its
  // queue is full, SYNs are dropped and connects hang until the deadline.
  SocketAddress a;
  const int l = testing::BoundLoopbackSocket(&a, /*backlog=*/0);

  std::vector<std::unique_ptr<StreamSocket>> clients;
  bool timed_out = false;
  for (int i = 0; i < 16 && !timed_out; ++i) {
    auto c = StreamSocket::Create(*service);
    IoResult connect;
    c->Connect(a, absl::Milliseconds(200), RecordConnect(connect));
    ASSERT_TRUE(RunUntil(*service, [&] { return connect.done; }, absl::Seconds(10)));
    const absl::Status& status = connect.status;
    if (absl::IsDeadlineExceeded(status)) {
      EXPECT_EQ(io::StatusErrno(status), ETIMEDOUT);
      EXPECT_FALSE(c->is_open());
      timed_out = true;
    } else {
      ASSERT_TRUE(status.ok()) << status;
      clients.push_back(std::move(c));
    }
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(service->metrics().timers_pending, 0u);
  close(l);
}

TEST(StreamSocketTest, HalfCloseWaitsForQueuedWritesThenSendsFin) {
  auto service = NewService();
  auto pair = testing::TcpStreamPair(*service);
  const std::string big(1 << 20, 'q');
  IoResult w;
  pair.a->WriteAll(big, Record(w));
  ASSERT_TRUE(pair.a->ShutdownWrite().ok());  // deferred behind the write
  IoResult late;
  pair.a->WriteAll("x", Record(late));

  // The peer reads everything, then EOF; then answers on its still-open side.
  std::string got;
  std::vector<char> buf(64 * 1024);
  bool eof = false;
  std::function<void()> read_more = [&] {
    pair.b->Read(absl::MakeSpan(buf), [&](absl::Status s, size_t n) {
      ASSERT_TRUE(s.ok()) << s;
      if (n == 0) {
        eof = true;
        return;
      }
      got.append(buf.data(), n);
      read_more();
    });
  };
  read_more();
  ASSERT_TRUE(RunUntil(*service, [&] { return eof && w.done && late.done; }));
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(w.status.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(late.status)) << late.status;

  IoResult reply;
  pair.b->WriteAll("pong", Record(reply));
  char rbuf[4];
  IoResult r;
  pair.a->ReadExactly(absl::MakeSpan(rbuf), Record(r));
  ASSERT_TRUE(RunUntil(*service, [&] { return r.done; }));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(std::string(rbuf, 4), "pong");
}

TEST(StreamSocketTest, EndOfStreamIsZeroBytesOrOutOfRange) {
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  ASSERT_TRUE(testing::WriteFully(sp.peer, "abc"));
  close(sp.peer);
  char buf[5];
  IoResult exact, some;
  sp.stream->ReadExactly(absl::MakeSpan(buf), Record(exact));
  sp.stream->Read(absl::MakeSpan(buf), Record(some));
  ASSERT_TRUE(RunUntil(*service, [&] { return exact.done && some.done; }));
  EXPECT_TRUE(absl::IsOutOfRange(exact.status)) << exact.status;
  EXPECT_EQ(exact.bytes, 3u);
  EXPECT_TRUE(some.status.ok());
  EXPECT_EQ(some.bytes, 0u);
}

TEST(StreamSocketTest, PeerResetMidWriteFailsTheWriteWithoutSigpipe) {
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  const std::string big(32 << 20, 'r');
  IoResult w;
  sp.stream->WriteAll(big, Record(w));
  RunFor(*service, absl::Milliseconds(50));  // buffers fill; nobody reads
  ASSERT_FALSE(w.done);
  EXPECT_EQ(sp.stream->write_queue_bytes(), big.size());
  struct linger lg = {1, 0};  // close with RST
  ASSERT_EQ(setsockopt(sp.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(sp.peer);
  ASSERT_TRUE(RunUntil(*service, [&] { return w.done; }));
  ASSERT_FALSE(w.status.ok());
  const int err = io::StatusErrno(w.status);
  EXPECT_TRUE(err == ECONNRESET || err == EPIPE) << w.status;
  EXPECT_GT(w.bytes, 0u);
  EXPECT_LT(w.bytes, big.size());
  EXPECT_EQ(sp.stream->write_queue_bytes(), 0u);

  // Writing again to the dead connection: EPIPE, and the process lives.
  IoResult again;
  sp.stream->WriteAll("more", Record(again));
  ASSERT_TRUE(RunUntil(*service, [&] { return again.done; }));
  EXPECT_FALSE(again.status.ok());
}

TEST(StreamSocketTest, QueuedWritesGatherAndKeepTheirOrder) {
  auto service = NewService();
  auto pair = testing::TcpStreamPair(*service);
  std::vector<std::string> parts;
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    parts.push_back(std::string(1 + (i * 7919) % 20000, static_cast<char>('a' + i % 26)));
    expected += parts.back();
  }
  std::vector<IoResult> results(parts.size() + 1);
  for (size_t i = 0; i < parts.size(); ++i) {
    pair.a->WriteAll(parts[i], Record(results[i]));
  }
  const std::string h = "header:", t = ":trailer";
  const absl::string_view vec[] = {h, t};
  pair.a->WriteVectored(vec, Record(results.back()));
  expected += h + t;
  std::string got;
  std::vector<char> buf(256 * 1024);
  std::function<void()> read_more = [&] {
    pair.b->Read(absl::MakeSpan(buf), [&](absl::Status s, size_t n) {
      ASSERT_TRUE(s.ok()) << s;
      got.append(buf.data(), n);
      if (n > 0 && got.size() < expected.size()) read_more();
    });
  };
  read_more();
  ASSERT_TRUE(RunUntil(*service, [&] {
    return got.size() >= expected.size() && results.back().done;
  }));
  EXPECT_EQ(got, expected);
  for (size_t i = 0; i < parts.size(); ++i) {
    EXPECT_TRUE(results[i].status.ok());
    EXPECT_EQ(results[i].bytes, parts[i].size());
  }
  EXPECT_EQ(results.back().bytes, h.size() + t.size());
}

TEST(StreamSocketTest, CompletionsRunInTheOrderTheWritesWereQueued) {
  auto service = NewService();
  auto pair = testing::TcpStreamPair(*service);
  std::vector<int> order;
  const std::string chunk(300 * 1024, 'o');
  for (int i = 0; i < 10; ++i) {
    pair.a->WriteAll(chunk, [&order, i](absl::Status s, size_t) {
      EXPECT_TRUE(s.ok());
      order.push_back(i);
    });
  }
  std::vector<char> buf(1 << 20);
  size_t total = 0;
  std::function<void()> read_more = [&] {
    pair.b->Read(absl::MakeSpan(buf), [&](absl::Status s, size_t n) {
      // The writes may all complete (the kernel took the bytes) before the
      // reader has read them: Shutdown() below then cancels its read.
      if (absl::IsCancelled(s)) return;
      ASSERT_TRUE(s.ok()) << s;
      total += n;
      if (n > 0 && total < 10 * chunk.size()) read_more();
    });
  };
  read_more();
  ASSERT_TRUE(RunUntil(*service, [&] { return order.size() == 10; }));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(order[i], i);
  service->Shutdown();  // a read may be pending: cancel it while `buf` lives
}

TEST(StreamSocketTest, FullWriteQueueAnswersResourceExhausted) {
  auto service = NewService();
  StreamOptions options;
  options.max_write_queue_bytes = 1 << 20;
  auto sp = testing::TcpStreamAndPeer(*service, options);
  const std::string big(32 << 20, 'b');  // more than the socket buffers
  IoResult first, second;
  sp.stream->WriteAll(big, Record(first));  // an empty queue takes any size
  sp.stream->WriteAll("x", Record(second));
  EXPECT_FALSE(second.done);  // refused, but through the loop
  RunFor(*service, absl::Milliseconds(20));
  EXPECT_TRUE(absl::IsResourceExhausted(second.status)) << second.status;
  EXPECT_EQ(second.bytes, 0u);
  EXPECT_FALSE(first.done);
  sp.stream->Close();
  ASSERT_TRUE(RunUntil(*service, [&] { return first.done; }));
  EXPECT_TRUE(absl::IsCancelled(first.status));
  EXPECT_EQ(io::StatusErrno(first.status), ECANCELED);
  EXPECT_GT(first.bytes, 0u);  // what the kernel took before the close
  close(sp.peer);
}

TEST(StreamSocketTest, WriteSomeCompletesAfterAPartialWrite) {
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  const std::string big(32 << 20, 's');
  IoResult w;
  sp.stream->Write(big, Record(w));
  ASSERT_TRUE(RunUntil(*service, [&] { return w.done; }));
  EXPECT_TRUE(w.status.ok());
  EXPECT_GT(w.bytes, 0u);
  EXPECT_LT(w.bytes, big.size());
  close(sp.peer);
}

TEST(StreamSocketTest, TryWriteSendsWhatFitsNowAndKeepsTheByteOrder) {
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  absl::StatusOr<size_t> hello = sp.stream->TryWrite("hello");
  ASSERT_TRUE(hello.ok()) << hello.status();
  EXPECT_EQ(*hello, 5u);
  EXPECT_EQ(*sp.stream->TryWrite(""), 0u);

  // More than the socket buffers: part goes now, the rest through WriteAll;
  // while that is queued TryWrite takes nothing, so nothing overtakes it.
  std::string big(32 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  absl::StatusOr<size_t> part = sp.stream->TryWrite(big);
  ASSERT_TRUE(part.ok()) << part.status();
  ASSERT_GT(*part, 0u);
  ASSERT_LT(*part, big.size());
  IoResult rest;
  sp.stream->WriteAll(absl::string_view(big).substr(*part), Record(rest));
  EXPECT_EQ(*sp.stream->TryWrite("overtaking"), 0u);

  std::string got;
  std::thread reader([&] {
    char buf[1 << 16];
    while (got.size() < 5 + big.size()) {
      const ssize_t n = read(sp.peer, buf, sizeof(buf));
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
  });
  const bool done = RunUntil(*service, [&] { return rest.done; });
  if (!done) shutdown(sp.peer, SHUT_RD);  // the reader's read() returns 0
  reader.join();
  ASSERT_TRUE(done);
  EXPECT_TRUE(rest.status.ok()) << rest.status;
  ASSERT_EQ(got.size(), 5 + big.size());
  EXPECT_EQ(got.substr(0, 5), "hello");
  EXPECT_TRUE(got.compare(5, big.size(), big) == 0);

  // Half-closed: refused with EPIPE, nothing sent.
  ASSERT_TRUE(sp.stream->ShutdownWrite().ok());
  absl::StatusOr<size_t> after = sp.stream->TryWrite("late");
  EXPECT_TRUE(absl::IsFailedPrecondition(after.status())) << after.status();
  EXPECT_EQ(io::StatusErrno(after.status()), EPIPE);
  close(sp.peer);
}

TEST(StreamSocketTest, TryWriteReportsResetsAndUnconnectedSockets) {
  auto service = NewService();
  auto unconnected = StreamSocket::Create(*service);
  absl::StatusOr<size_t> r = unconnected->TryWrite("x");
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_EQ(io::StatusErrno(r.status()), ENOTCONN);

  auto sp = testing::TcpStreamAndPeer(*service);
  struct linger lg = {1, 0};  // close with RST
  ASSERT_EQ(setsockopt(sp.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(sp.peer);
  // The first send may still be taken (the RST has not been seen); one of
  // the next fails with the errno (Linux says ENOTCONN when the reset came
  // before any data), and SIGPIPE does not kill the process.
  absl::Status failure;
  for (int i = 0; i < 100 && failure.ok(); ++i) {
    absl::StatusOr<size_t> sent = sp.stream->TryWrite("after the reset");
    if (!sent.ok()) failure = sent.status();
    RunFor(*service, absl::Milliseconds(1));
  }
  ASSERT_FALSE(failure.ok());
  const int err = io::StatusErrno(failure);
  EXPECT_TRUE(err == ECONNRESET || err == EPIPE || err == ENOTCONN) << failure;
}

TEST(StreamSocketTest, BadCallsFailThroughTheLoop) {
  auto service = NewService();
  auto s = StreamSocket::Create(*service);
  char buf[4];
  IoResult not_open, empty, sendfile;
  s->Read(absl::MakeSpan(buf), Record(not_open));
  s->SendFile(-1, 0, 10, Record(sendfile));
  auto sp = testing::TcpStreamAndPeer(*service);
  sp.stream->Read(absl::Span<char>(), Record(empty));
  EXPECT_FALSE(not_open.done || empty.done || sendfile.done);
  ASSERT_TRUE(RunUntil(*service, [&] {
    return not_open.done && empty.done && sendfile.done;
  }));
  EXPECT_TRUE(absl::IsFailedPrecondition(not_open.status)) << not_open.status;
  EXPECT_TRUE(absl::IsInvalidArgument(empty.status));
  EXPECT_TRUE(absl::IsInvalidArgument(sendfile.status));
  EXPECT_TRUE(absl::IsFailedPrecondition(s->ShutdownWrite()));
  EXPECT_FALSE(s->SetNoDelay(true).ok());
  EXPECT_FALSE(s->local_address().ok());
  // Connect on an open socket.
  IoResult connect;
  sp.stream->Connect(SocketAddress::Ipv4Loopback(1), absl::Seconds(1),
                     RecordConnect(connect));
  ASSERT_TRUE(RunUntil(*service, [&] { return connect.done; }));
  EXPECT_TRUE(absl::IsFailedPrecondition(connect.status));
  close(sp.peer);
}

TEST(StreamSocketTest, IdleSocketsDoNotKeepRunGoingPendingOperationsDo) {
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  EXPECT_EQ(service->Run(), service->Run());  // returns: nothing pending
  char buf[8];
  IoResult r;
  sp.stream->Read(absl::MakeSpan(buf), Record(r));
  EXPECT_EQ(service->metrics().tracked_operations, 1u);
  ASSERT_TRUE(testing::WriteFully(sp.peer, "wake"));
  service->Run();  // returns once the read completed and nothing is left
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.bytes, 4u);
  EXPECT_EQ(service->metrics().tracked_operations, 0u);
  close(sp.peer);
}

TEST(StreamSocketTest, ServiceShutdownCancelsPendingOperations) {
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  char buf[8];
  IoResult r;
  sp.stream->Read(absl::MakeSpan(buf), Record(r));
  service->Shutdown();
  EXPECT_TRUE(r.done);
  EXPECT_TRUE(absl::IsCancelled(r.status));
  EXPECT_EQ(r.calls, 1);
  // After the shutdown, operations are refused without a callback (the
  // service can run nothing), and closing is harmless.
  IoResult after;
  sp.stream->Read(absl::MakeSpan(buf), Record(after));
  EXPECT_FALSE(after.done);
  sp.stream.reset();
  close(sp.peer);
}

TEST(StreamSocketTest, IdleConnectionStateIsSmall) {
  // Issue 5: under 1 KiB of kqio state per idle connection.  The socket
  // object is most of it (plus one service slot and the kqueue's knotes).
  EXPECT_LE(sizeof(StreamSocket), 256u) << sizeof(StreamSocket);
}

}  // namespace
}  // namespace net
}  // namespace kqio
