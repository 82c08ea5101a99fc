// Conformance tests for KQIO_NOTE_NODATA (io/kqueue_ext.h): EVFILT_READ and
// EVFILT_WRITE knotes registered with it report data == 0 and otherwise the
// same events, EV_EOF and socket errors as without it.  On FreeBSD and macOS
// the flag is 0 and `data` is the kernel's, so the tests compare `data` with
// NoData(real value) and run unchanged there.
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "gtest/gtest.h"
#include "io/kqueue_ext.h"
#include "io/kqueue_test_util.h"

namespace kqio_test {
namespace {

constexpr unsigned kNoData = KQIO_NOTE_NODATA;

// What `data` reads for a knote registered with the flag, where the kernel
// would say `real`.
int64_t NoData(int64_t real) { return kNoData != 0 ? 0 : real; }

// Waits (bounded) until both filters of `fd` have reported an event with
// EV_EOF, and returns the first such event of each: {read, write}.
bool WaitForBothEofs(int kq, int fd, struct kevent out[2]) {
  bool seen[2] = {false, false};
  const auto deadline = std::chrono::steady_clock::now() + kSafety;
  while (!(seen[0] && seen[1])) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds::zero()) return false;
    for (const struct kevent& ev : Wait(kq, 16, left)) {
      if (ev.ident != static_cast<uintptr_t>(fd) || !(ev.flags & EV_EOF)) {
        continue;
      }
      const int i = ev.filter == EVFILT_READ ? 0 : 1;
      if (!seen[i]) out[i] = ev;
      seen[i] = true;
    }
  }
  return true;
}

using KqueueNoDataTest = KqueueTest;

TEST_F(KqueueNoDataTest, ReadAndWriteReportZeroAndTheFlagIsNotEchoed) {
  SocketPair s;
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR, kNoData), 0);
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR, kNoData),
            0);
  struct kevent ev;
  ASSERT_TRUE(WaitFor(kq_, s.a.get(), EVFILT_WRITE, &ev));
  EXPECT_EQ(ev.fflags, 0u);
  EXPECT_EQ(Flags(ev), EV_CLEAR);
  EXPECT_EQ(ev.data == 0, kNoData != 0);  // otherwise: the free space
  EXPECT_EQ(CountOf(Poll(kq_), s.a.get(), EVFILT_READ), 0);
  Send(s.b.get(), 5);
  ASSERT_TRUE(WaitFor(kq_, s.a.get(), EVFILT_READ, &ev));
  EXPECT_EQ(ev.data, NoData(5));
  EXPECT_EQ(ev.fflags, 0u);
  EXPECT_EQ(Flags(ev), EV_CLEAR);
}

TEST_F(KqueueNoDataTest, ClearReportsEachArrivalOnce) {
  SocketPair s;
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_READ, EV_ADD | EV_CLEAR, kNoData), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  for (int round = 0; round < 3; ++round) {
    Send(s.b.get(), 1);
    struct kevent ev;
    ASSERT_TRUE(WaitFor(kq_, s.a.get(), EVFILT_READ, &ev)) << round;
    EXPECT_TRUE(Poll(kq_).empty()) << round;
    EXPECT_EQ(DrainReadable(s.a.get()), 1u);
  }
}

TEST_F(KqueueNoDataTest, LevelTriggeredUntilReadAndNotAfter) {
  SocketPair s;
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_READ, EV_ADD, kNoData), 0);
  Send(s.b.get(), 2);
  for (int i = 0; i < 2; ++i) {
    auto evs = i == 0 ? Wait(kq_) : Poll(kq_);
    ASSERT_EQ(evs.size(), 1u) << i;
    EXPECT_EQ(evs[0].data, NoData(2));
  }
  DrainReadable(s.a.get());
  EXPECT_TRUE(Poll(kq_).empty());
}

// An event left over from an earlier call (no room for it) whose bytes were
// read in between is not reported: with nothing newer to go by, the queue
// checks such an event as if the flag were not there.
TEST_F(KqueueNoDataTest, LeftoverEventWhoseBytesWereReadIsDropped) {
  SocketPair s;
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_READ, EV_ADD, kNoData), 0);
  Send(s.b.get(), 1);
  // The user event, queued first, takes the only slot of the next call.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  auto evs = Wait(kq_, 1);
  ASSERT_EQ(evs.size(), 1u);
  DrainReadable(s.a.get());
  evs = Poll(kq_);
  EXPECT_EQ(CountOf(evs, s.a.get(), EVFILT_READ), 0);
}

TEST_F(KqueueNoDataTest, PeerCloseIsEofWithoutError) {
  SocketPair s;
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_READ, EV_ADD, kNoData), 0);
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR, kNoData),
            0);
  struct kevent ev;
  ASSERT_TRUE(WaitFor(kq_, s.a.get(), EVFILT_WRITE, &ev));
  Send(s.b.get(), 3);
  s.b.reset();
  struct kevent eof[2];
  ASSERT_TRUE(WaitForBothEofs(kq_, s.a.get(), eof));
  EXPECT_EQ(eof[0].fflags, 0u);
  EXPECT_EQ(eof[0].data, NoData(3));
  EXPECT_EQ(eof[1].fflags, 0u);
  EXPECT_EQ(eof[1].data, 0);
  // Read to the end: EOF stays a lasting condition.
  DrainReadable(s.a.get());
  ASSERT_TRUE(WaitFor(kq_, s.a.get(), EVFILT_READ, &ev));
  EXPECT_TRUE(ev.flags & EV_EOF);
  EXPECT_EQ(ev.data, 0);
}

TEST_F(KqueueNoDataTest, TcpCleanCloseIsEofWithoutError) {
  ExpectTcpCleanCloseIsEofWithoutError(kq_, kNoData);
}

TEST_F(KqueueNoDataTest, TcpResetIsEofWithEconnresetOnEveryEvent) {
  ScopedFd client, server;
  ASSERT_TRUE(TcpPair(&client, &server));
  ASSERT_EQ(Apply(kq_, server.get(), EVFILT_READ, EV_ADD, kNoData), 0);
  ASSERT_EQ(Apply(kq_, server.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR, kNoData),
            0);
  struct kevent ev;
  ASSERT_TRUE(WaitFor(kq_, server.get(), EVFILT_WRITE, &ev));
  struct linger lg = {1, 0};
  ASSERT_EQ(setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)),
            0);
  client.reset();  // sends RST
  struct kevent eof[2];
  ASSERT_TRUE(WaitForBothEofs(kq_, server.get(), eof));
  for (const struct kevent& e : eof) {
    EXPECT_EQ(e.fflags, static_cast<unsigned>(ECONNRESET)) << e.filter;
    EXPECT_EQ(e.data, 0) << e.filter;
  }
  // The next (level-triggered) event says it again.
  ASSERT_TRUE(WaitFor(kq_, server.get(), EVFILT_READ, &ev));
  EXPECT_TRUE(ev.flags & EV_EOF);
  EXPECT_EQ(ev.fflags, static_cast<unsigned>(ECONNRESET));
}

TEST_F(KqueueNoDataTest, RefusedConnectIsEofWithEconnrefusedOnWrite) {
  ScopedFd closed_port;
  ScopedFd sock(StartRefusedConnect(&closed_port));
  ASSERT_GE(sock.get(), 0);
  ASSERT_EQ(Apply(kq_, sock.get(), EVFILT_WRITE, EV_ADD | EV_CLEAR, kNoData),
            0);
  struct kevent ev;
  ASSERT_TRUE(WaitFor(kq_, sock.get(), EVFILT_WRITE, &ev));
  EXPECT_TRUE(ev.flags & EV_EOF);
  EXPECT_EQ(ev.fflags, static_cast<unsigned>(ECONNREFUSED));
  EXPECT_EQ(ev.data, 0);
}

TEST_F(KqueueNoDataTest, WithNoteLowatTheMarkIsHonouredAndDataReported) {
  SocketPair s;
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_READ, EV_ADD,
                  NOTE_LOWAT | kNoData, 5),
            0);
  Send(s.b.get(), 3);
  EXPECT_TRUE(Poll(kq_).empty());
  Send(s.b.get(), 2);
  struct kevent ev;
  ASSERT_TRUE(WaitFor(kq_, s.a.get(), EVFILT_READ, &ev));
  EXPECT_EQ(ev.data, 5);
}

// Every change stores the fflags it carries, as with NOTE_LOWAT.
TEST_F(KqueueNoDataTest, AChangeWithoutTheFlagDropsIt) {
  SocketPair s;
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_READ, EV_ADD, kNoData), 0);
  Send(s.b.get(), 4);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, NoData(4));
  ASSERT_EQ(Apply(kq_, s.a.get(), EVFILT_READ, EV_ADD), 0);
  evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 4);
}

}  // namespace
}  // namespace kqio_test
