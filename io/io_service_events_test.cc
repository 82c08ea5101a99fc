// io::IoService: registrations (Watch, RegisterHandler), stale events
// (ARCHITECTURE.md contract 3, seeds/001 "Processing stale cached events"),
// unregistering from inside a callback, and signals.
#include <errno.h>
#include <signal.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "io/io_service.h"
#include "io/kqueue_ext.h"

namespace kqio {
namespace io {
namespace {

std::unique_ptr<IoService> NewService() {
  absl::StatusOr<std::unique_ptr<IoService>> s = IoService::Create();
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

struct DestroyFlag {
  explicit DestroyFlag(bool* f) : flag(f) {}
  ~DestroyFlag() { *flag = true; }
  bool* flag;
};

// A socketpair; `a` is readable (one byte waiting) and writable.
struct ReadyPair {
  ReadyPair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    a = sv[0];
    b = sv[1];
    EXPECT_EQ(write(b, "x", 1), 1);
  }
  ~ReadyPair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
  int a = -1, b = -1;
};

// seeds/001: two events for one socket in one batch; the first callback
// closes the socket and unregisters both; the second must not run.
TEST(IoServiceEventsTest, SecondEventOfABatchForAClosedSocketIsDropped) {
  auto s = NewService();
  ReadyPair p;
  Registration regs[2];
  int calls = 0;
  auto handler = [&](const struct kevent&) {
    ++calls;
    close(p.a);
    p.a = -1;
    EXPECT_TRUE(s->UnwatchClosed(regs[0]));
    EXPECT_TRUE(s->UnwatchClosed(regs[1]));
  };
  absl::StatusOr<Registration> r = s->Watch(p.a, EVFILT_READ, 0, 0, handler);
  ASSERT_TRUE(r.ok()) << r.status();
  regs[0] = *r;
  r = s->Watch(p.a, EVFILT_WRITE, 0, 0, handler);
  ASSERT_TRUE(r.ok()) << r.status();
  regs[1] = *r;
  EXPECT_EQ(s->Poll(), 1u);
  EXPECT_EQ(calls, 1);
  const Metrics m = s->metrics();
  EXPECT_EQ(m.events, 2u);  // both came in the one batch
  EXPECT_EQ(m.stale_events_dropped, 1u);
  EXPECT_EQ(m.registrations, 0u);
  EXPECT_EQ(s->Run(), 0u);  // nothing left
}

// The same, and the first callback also puts a new socket on the closed
// number and watches it: the new registration takes the slot of the one the
// stale event names, with a new generation, so the stale event still drops.
TEST(IoServiceEventsTest, StaleEventForAReusedDescriptorAndSlotIsDropped) {
  auto s = NewService();
  ReadyPair p;
  const int fd = p.a;
  Registration read_reg, write_reg, new_reg;
  int old_calls = 0, new_calls = 0;
  int peer = -1;
  auto old_handler = [&](const struct kevent& ev) {
    ++old_calls;
    const Registration self = ev.filter == EVFILT_READ ? read_reg : write_reg;
    const Registration other = ev.filter == EVFILT_READ ? write_reg : read_reg;
    close(fd);
    p.a = -1;
    EXPECT_TRUE(s->UnwatchClosed(self));   // deferred: it is running
    EXPECT_TRUE(s->UnwatchClosed(other));  // freed: next in line for reuse
    int nv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, nv), 0);
    if (nv[0] != fd) {
      ASSERT_EQ(dup2(nv[0], fd), fd);
      close(nv[0]);
    }
    peer = nv[1];
    ASSERT_EQ(write(peer, "y", 1), 1);
    absl::StatusOr<Registration> r =
        s->Watch(fd, EVFILT_READ, 0, 0, [&](const struct kevent& e) {
          ++new_calls;
          EXPECT_EQ(e.udata, new_reg.udata());
        });
    ASSERT_TRUE(r.ok()) << r.status();
    new_reg = *r;
    EXPECT_EQ(new_reg.slot(), other.slot());
    EXPECT_NE(new_reg.generation(), other.generation());
  };
  read_reg = *s->Watch(fd, EVFILT_READ, 0, 0, old_handler);
  write_reg = *s->Watch(fd, EVFILT_WRITE, 0, 0, old_handler);
  EXPECT_EQ(s->Poll(), 1u);
  EXPECT_EQ(old_calls, 1);
  EXPECT_EQ(new_calls, 0);
  EXPECT_EQ(s->metrics().stale_events_dropped, 1u);
  EXPECT_EQ(s->Poll(), 1u);  // the new socket's own event
  EXPECT_EQ(new_calls, 1);
  EXPECT_EQ(old_calls, 1);
  EXPECT_TRUE(s->Unwatch(new_reg).ok());
  close(fd);
  close(peer);
}

TEST(IoServiceEventsTest, HandlerUnwatchingItselfIsDestroyedAfterReturning) {
  auto s = NewService();
  ReadyPair p;
  bool destroyed = false;
  auto flag = std::make_shared<DestroyFlag>(&destroyed);
  Registration reg;
  absl::StatusOr<Registration> r = s->Watch(
      p.a, EVFILT_READ, 0, 0,
      [&, flag, state = std::string(256, 'x')](const struct kevent&) mutable {
        EXPECT_TRUE(s->Unwatch(reg).ok());
        EXPECT_FALSE(destroyed);  // still alive while it runs
        state.assign(512, 'y');   // ASan would catch a premature free
        EXPECT_EQ(s->Unwatch(reg).code(), absl::StatusCode::kNotFound);
      });
  ASSERT_TRUE(r.ok()) << r.status();
  reg = *r;
  flag.reset();
  EXPECT_EQ(s->Poll(), 1u);
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(s->metrics().registrations, 0u);
  EXPECT_EQ(s->Poll(), 0u);
}

TEST(IoServiceEventsTest, ModifyDisablesAndEnables) {
  auto s = NewService();
  ReadyPair p;
  int calls = 0;
  absl::StatusOr<Registration> r =
      s->Watch(p.a, EVFILT_READ, 0, 0, [&](const struct kevent& ev) {
        ++calls;
        EXPECT_EQ(ev.data, 1);  // one byte readable
      });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(s->Poll(), 1u);  // level-triggered: ready until read
  ASSERT_TRUE(s->Modify(*r, EV_DISABLE).ok());
  EXPECT_EQ(s->Poll(), 0u);
  ASSERT_TRUE(s->Modify(*r, EV_ENABLE).ok());
  EXPECT_EQ(s->Poll(), 1u);
  EXPECT_EQ(calls, 2);
  ASSERT_TRUE(s->Unwatch(*r).ok());
  EXPECT_EQ(s->Modify(*r, EV_ENABLE).code(), absl::StatusCode::kNotFound);
}

TEST(IoServiceEventsTest, OneShotWatchThenUnwatch) {
  auto s = NewService();
  ReadyPair p;
  int calls = 0;
  absl::StatusOr<Registration> r =
      s->Watch(p.a, EVFILT_READ, EV_ONESHOT, 0,
               [&](const struct kevent&) { ++calls; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(s->Poll(), 1u);
  EXPECT_EQ(s->Poll(), 0u);
  EXPECT_TRUE(s->Unwatch(*r).ok());  // the knote is gone already: not an error
  EXPECT_EQ(calls, 1);
}

TEST(IoServiceEventsTest, WatchErrors) {
  auto s = NewService();
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  close(pipefd[0]);
  close(pipefd[1]);
  absl::StatusOr<Registration> r =
      s->Watch(pipefd[0], EVFILT_READ, 0, 0, [](const struct kevent&) {});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(s->metrics().registrations, 0u);  // its slot was released
  EXPECT_EQ(s->Watch(0, EVFILT_READ, 0, 0, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->RegisterHandler(nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->Unwatch(Registration()).code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(s->Unregister(Registration()));
  s->Shutdown();
  ReadyPair p;
  EXPECT_EQ(s->Watch(p.a, EVFILT_READ, 0, 0, [](const struct kevent&) {})
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s->RegisterHandler([](const struct kevent&) {}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(IoServiceEventsTest, WatchesKeepRunGoingHandlersMayNot) {
  auto s = NewService();
  absl::StatusOr<Registration> quiet =
      s->RegisterHandler([](const struct kevent&) {}, IoService::KeepAlive::kNo);
  ASSERT_TRUE(quiet.ok());
  EXPECT_EQ(s->Run(), 0u);  // only a kNo registration: out of work
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  absl::StatusOr<Registration> w =
      s->Watch(sv[0], EVFILT_READ, 0, 0, [](const struct kevent&) {});
  ASSERT_TRUE(w.ok());
  s->RunAfter(absl::Milliseconds(2), [&] { EXPECT_TRUE(s->Unwatch(*w).ok()); });
  EXPECT_EQ(s->Run(), 1u);  // returns once the watch is gone
  close(sv[0]);
  close(sv[1]);
}

// The low-level path the aio engines use: their own kevents carry udata().
TEST(IoServiceEventsTest, RegisterHandlerReceivesEventsWithItsUdata) {
  auto s = NewService();
  std::vector<std::pair<uintptr_t, int64_t>> got;
  absl::StatusOr<Registration> r =
      s->RegisterHandler([&](const struct kevent& ev) {
        EXPECT_EQ(ev.filter, EVFILT_AIO);
        got.emplace_back(ev.ident, ev.data);
      });
  ASSERT_TRUE(r.ok());
  struct kevent ev;
  EV_SET(&ev, 77, EVFILT_AIO, 0, 0, 123, r->udata());
  if (kqio_aio_post(s->kqueue_fd(), &ev) != 0) {
    ASSERT_EQ(errno, ENOSYS);
    GTEST_SKIP() << "no kqio_aio_post on this platform";
  }
  EXPECT_EQ(s->Poll(), 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], (std::pair<uintptr_t, int64_t>(77, 123)));
  ASSERT_EQ(kqio_aio_post(s->kqueue_fd(), &ev), 0);
  EXPECT_TRUE(s->Unregister(*r));  // before the event is fetched
  EXPECT_FALSE(s->Unregister(*r));
  EXPECT_EQ(s->Poll(), 0u);
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(s->metrics().stale_events_dropped, 1u);
}

TEST(IoServiceEventsTest, ShutdownDestroysHandlers) {
  auto s = NewService();
  ReadyPair p;
  bool destroyed = false;
  auto flag = std::make_shared<DestroyFlag>(&destroyed);
  ASSERT_TRUE(
      s->Watch(p.a, EVFILT_READ, 0, 0, [flag](const struct kevent&) {}).ok());
  flag.reset();
  s.reset();
  EXPECT_TRUE(destroyed);
}

// --- Signals.  Each test blocks its signals first (BlockSignals), as a
// program would in main(); gtest runs tests on the main thread, and threads
// the tests start inherit the mask.

TEST(IoServiceSignalTest, RejectsBadSignals) {
  auto s = NewService();
  auto h = [](int) {};
  EXPECT_EQ(s->OnSignal(0, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->OnSignal(-3, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->OnSignal(NSIG, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->OnSignal(SIGKILL, h).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->OnSignal(SIGSTOP, h).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s->OnSignal(SIGUSR1, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockSignals({SIGUSR1, 0}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(s->RemoveSignal(SIGUSR1));
  EXPECT_EQ(s->Run(), 0u);
}

TEST(IoServiceSignalTest, BlockedSignalReachesTheHandlerCoalesced) {
  ASSERT_TRUE(BlockSignals({SIGUSR1}).ok());
  auto s = NewService();
  std::vector<int> counts;
  ASSERT_TRUE(s->OnSignal(SIGUSR1, [&](int n) { counts.push_back(n); }).ok());
  EXPECT_EQ(s->OnSignal(SIGUSR1, [](int) {}).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_EQ(s->RunOnce(), 1u);  // one callback for both
  ASSERT_EQ(counts.size(), 1u);
  // FreeBSD counts both sends; Linux's pending set merges them first.
  EXPECT_GE(counts[0], 1);
  EXPECT_LE(counts[0], 2);
  ASSERT_EQ(raise(SIGUSR1), 0);
  EXPECT_EQ(s->RunOnce(), 1u);
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[1], 1);
  EXPECT_EQ(s->metrics().op(OpClass::kSignal).completed, 2u);
  EXPECT_TRUE(s->RemoveSignal(SIGUSR1));
  EXPECT_FALSE(s->RemoveSignal(SIGUSR1));
  EXPECT_EQ(s->Run(), 0u);  // the handler was the only work
}

TEST(IoServiceSignalTest, HandlerRemovingItselfAndReRegistering) {
  ASSERT_TRUE(BlockSignals({SIGUSR2}).ok());
  auto s = NewService();
  int first = 0, second = 0;
  ASSERT_TRUE(s->OnSignal(SIGUSR2, [&](int) {
                 ++first;
                 EXPECT_TRUE(s->RemoveSignal(SIGUSR2));
                 EXPECT_TRUE(
                     s->OnSignal(SIGUSR2, [&](int) { ++second; }).ok());
               }).ok());
  ASSERT_EQ(raise(SIGUSR2), 0);
  EXPECT_EQ(s->RunOnce(), 1u);
  ASSERT_EQ(raise(SIGUSR2), 0);
  EXPECT_EQ(s->RunOnce(), 1u);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  EXPECT_TRUE(s->RemoveSignal(SIGUSR2));
}

// The file server's graceful stop: SIGTERM from elsewhere -> Stop() -> Run()
// returns -> Shutdown(drain).
TEST(IoServiceSignalTest, SigtermStopsRun) {
  ASSERT_TRUE(BlockSignals({SIGTERM}).ok());
  auto s = NewService();
  WorkGuard guard = s->MakeWorkGuard();  // Run() would not end by itself
  ASSERT_TRUE(s->OnSignal(
                   SIGTERM, [&](int) { s->Stop(); }, IoService::KeepAlive::kNo)
                  .ok());
  std::thread sender([] { kill(getpid(), SIGTERM); });
  EXPECT_EQ(s->Run(), 1u);
  sender.join();
  bool drained = false;
  s->Post([&] { drained = true; });
  guard.Reset();
  // The kNo handler does not hold the drain: it ends as soon as the posted
  // closure ran, long before its limit.
  const absl::Time start = absl::Now();
  s->Shutdown(absl::Seconds(30));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_TRUE(drained);
  EXPECT_TRUE(s->is_shut_down());
}

}  // namespace
}  // namespace io
}  // namespace kqio
