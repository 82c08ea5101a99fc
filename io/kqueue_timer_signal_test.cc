// Conformance tests for EVFILT_TIMER (units, periodic and one-shot timers,
// `data` = expirations since the last delivery, re-adding restarts,
// NOTE_ABSTIME) and EVFILT_SIGNAL (`data` = deliveries since the last
// delivery; every queue that watches a signal sees each delivery).
//
// Timings are only ever checked against generous bounds: a timer must not
// fire early (a lower bound the clock guarantees), and must fire before the
// safety limit.  Everything else is counts and ordering.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/event.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "io/kqueue_test_util.h"

namespace kqio_test {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

int64_t RealtimeNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

void SleepFor(milliseconds d) {
  struct timespec ts = ToTimespec(d);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

// ---------------------------------------------------------------------------
// EVFILT_TIMER.

using KqueueTimerTest = KqueueTest;

TEST_F(KqueueTimerTest, UnitsAreHonoured) {
  // Five one-shot timers, each due after at least its nominal duration; a
  // unit mistaken for another is off by a factor of 1000 at least.
  struct Case {
    uintptr_t id;
    unsigned int fflags;
    int64_t data;
    milliseconds due;
  };
  const Case cases[] = {
      {1, 0, 300, milliseconds(300)},  // milliseconds by default
      {2, NOTE_MSECONDS, 200, milliseconds(200)},
      {3, NOTE_USECONDS, 250000, milliseconds(250)},
      {4, NOTE_NSECONDS, 150000000, milliseconds(150)},
      {5, NOTE_SECONDS, 1, milliseconds(1000)},
  };
  const auto start = steady_clock::now();
  for (const Case& c : cases) {
    ASSERT_EQ(
        Apply(kq_, c.id, EVFILT_TIMER, EV_ADD | EV_ONESHOT, c.fflags, c.data),
        0)
        << c.id;
  }
  std::map<uintptr_t, steady_clock::duration> fired;
  const auto deadline = start + kSafety;
  while (fired.size() < 5 && steady_clock::now() < deadline) {
    for (const struct kevent& ev :
         Wait(kq_, 8, deadline - steady_clock::now())) {
      EXPECT_EQ(ev.filter, EVFILT_TIMER);
      EXPECT_EQ(ev.data, 1);
      EXPECT_EQ(fired.count(ev.ident), 0u) << "one-shot fired twice";
      fired[ev.ident] = steady_clock::now() - start;
    }
  }
  ASSERT_EQ(fired.size(), 5u);
  for (const Case& c : cases) {
    EXPECT_GE(fired[c.id], c.due) << "timer " << c.id << " fired early";
  }
  // Ordering follows the durations.
  EXPECT_LT(fired[4], fired[5]);
  EXPECT_LT(fired[2], fired[5]);
}

TEST_F(KqueueTimerTest, PeriodicTimerKeepsFiring) {
  int tag = 0;
  ASSERT_EQ(Apply(kq_, 9, EVFILT_TIMER, EV_ADD, 0, 10, &tag), 0);
  int64_t expirations = 0;
  while (expirations < 5) {
    auto evs = Wait(kq_);
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].ident, 9u);
    EXPECT_EQ(evs[0].udata, &tag);
    EXPECT_GE(evs[0].data, 1);
    EXPECT_TRUE(Flags(evs[0]) & EV_CLEAR) << "timers are EV_CLEAR";
    expirations += evs[0].data;
  }
  ASSERT_EQ(Apply(kq_, 9, EVFILT_TIMER, EV_DELETE), 0);
  EXPECT_TRUE(Wait(kq_, 4, milliseconds(40)).empty()) << "deleted";
}

TEST_F(KqueueTimerTest, DataCountsExpirationsSinceLastDelivery) {
  const auto start = steady_clock::now();
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, 0, 10), 0);
  SleepFor(milliseconds(120));
  auto evs = Poll(kq_);
  const auto elapsed = steady_clock::now() - start;
  ASSERT_EQ(evs.size(), 1u);
  // 120 ms at 10 ms: about 12 expirations, in one event.
  EXPECT_GE(evs[0].data, 5);
  EXPECT_LE(evs[0].data,
            std::chrono::duration_cast<milliseconds>(elapsed).count() / 10 + 1);
  // Counted from the last delivery: nothing is pending right after it.
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueTimerTest, OneshotFiresOnceThenIsDeleted) {
  ASSERT_EQ(Apply(kq_, 3, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 10), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 1);
  EXPECT_TRUE(Flags(evs[0]) & EV_ONESHOT);
  EXPECT_TRUE(Wait(kq_, 4, milliseconds(50)).empty());
  EXPECT_EQ(Apply(kq_, 3, EVFILT_TIMER, EV_DELETE), ENOENT);
}

TEST_F(KqueueTimerTest, ZeroOneshotFiresAtOnce) {
  ASSERT_EQ(Apply(kq_, 3, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 0), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 1);
}

TEST_F(KqueueTimerTest, ReaddRestartsWithTheNewPeriod) {
  // A one-minute timer re-added with 20 ms fires well before the minute.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, 0, 60000), 0);
  int tag = 0;
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, 0, 20, &tag), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].udata, &tag);
}

TEST_F(KqueueTimerTest, ReaddForgetsExpirationsNotYetReturned) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, 0, 5), 0);
  SleepFor(milliseconds(50));  // several expirations, not returned
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, 0, 60000), 0);
  EXPECT_TRUE(Poll(kq_).empty()) << "restarted: nothing is due";
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_DELETE), 0);
}

TEST_F(KqueueTimerTest, DisabledTimerDoesNotFireUntilEnabled) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD | EV_DISABLE, 0, 5), 0);
  EXPECT_TRUE(Wait(kq_, 4, milliseconds(40)).empty());
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ENABLE), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_GE(evs[0].data, 1);
}

TEST_F(KqueueTimerTest, DispatchFiresOncePerEnable) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD | EV_DISPATCH, 0, 5), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_TRUE(Wait(kq_, 4, milliseconds(40)).empty()) << "disabled";
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ENABLE), 0);
  evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_GE(evs[0].data, 1);
}

TEST_F(KqueueTimerTest, SeveralTimersAreIndependent) {
  int tags[3];
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Apply(kq_, 100 + i, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0,
                    10 * (i + 1), &tags[i]),
              0);
  }
  std::vector<struct kevent> seen;
  const auto deadline = steady_clock::now() + kSafety;
  while (seen.size() < 3 && steady_clock::now() < deadline) {
    for (const struct kevent& ev :
         Wait(kq_, 4, deadline - steady_clock::now())) {
      seen.push_back(ev);
    }
  }
  ASSERT_EQ(seen.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(CountOf(seen, 100 + i, EVFILT_TIMER), 1);
  }
  for (const struct kevent& ev : seen) {
    EXPECT_EQ(ev.udata, &tags[ev.ident - 100]);
  }
}

TEST_F(KqueueTimerTest, AbsoluteTimerFiresAtTheDeadline) {
  const int64_t due_ms = RealtimeNanos() / 1000000 + 100;
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, NOTE_ABSTIME, due_ms), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_GE(RealtimeNanos() / 1000000, due_ms) << "fired early";
  EXPECT_EQ(evs[0].data, 1);
  // It fired once and stays triggered until deleted (it is not EV_CLEAR).
  EXPECT_FALSE(Flags(evs[0]) & EV_CLEAR);
  for (int i = 0; i < 2; ++i) {
    evs = Poll(kq_);
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].data, 1);
  }
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_DELETE), 0);
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueTimerTest, AbsoluteTimerInOtherUnitsAndInThePast) {
  const int64_t now_ns = RealtimeNanos();
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, NOTE_ABSTIME | NOTE_NSECONDS,
                  now_ns + 50000000),
            0);
  ASSERT_EQ(Apply(kq_, 2, EVFILT_TIMER, EV_ADD, NOTE_ABSTIME | NOTE_SECONDS,
                  now_ns / 1000000000 - 10),
            0);
  ASSERT_EQ(Apply(kq_, 3, EVFILT_TIMER, EV_ADD, NOTE_ABSTIME | NOTE_USECONDS,
                  now_ns / 1000 + 60000000),
            0);  // a minute away
  struct kevent ev;
  ASSERT_TRUE(WaitFor(kq_, 2, EVFILT_TIMER, &ev)) << "in the past: at once";
  ASSERT_TRUE(WaitFor(kq_, 1, EVFILT_TIMER, &ev));
  EXPECT_GE(RealtimeNanos(), now_ns + 50000000);
  EXPECT_EQ(CountOf(Poll(kq_), 3, EVFILT_TIMER), 0);
}

#ifdef __linux__
static_assert(NOTE_ABSOLUTE == NOTE_ABSTIME, "macOS's name, FreeBSD's value");
#endif

// ---------------------------------------------------------------------------
// EVFILT_SIGNAL.  SIGUSR1 and SIGUSR2 are blocked in the test thread, so
// that a raised signal stays pending for the queue to see instead of killing
// the process.

class KqueueSignalTest : public KqueueTest {
 protected:
  void SetUp() override {
    sigemptyset(&mask_);
    sigaddset(&mask_, SIGUSR1);
    sigaddset(&mask_, SIGUSR2);
    ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &mask_, &old_mask_), 0);
    KqueueTest::SetUp();
  }
  void TearDown() override {
    KqueueTest::TearDown();
    // Consume whatever a test left pending before unblocking.
    const struct timespec zero = {0, 0};
    while (sigtimedwait(&mask_, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }

  sigset_t mask_, old_mask_;
};

TEST_F(KqueueSignalTest, RaisedSignalIsReported) {
  int tag = 0;
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, &tag), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  ASSERT_EQ(raise(SIGUSR1), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, static_cast<uintptr_t>(SIGUSR1));
  EXPECT_EQ(evs[0].filter, EVFILT_SIGNAL);
  EXPECT_EQ(evs[0].data, 1);
  EXPECT_EQ(evs[0].udata, &tag);
  EXPECT_TRUE(Flags(evs[0]) & EV_CLEAR) << "signals are EV_CLEAR";
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueSignalTest, SignalSentToTheProcessIsReported) {
  ASSERT_EQ(Apply(kq_, SIGUSR2, EVFILT_SIGNAL, EV_ADD), 0);
  ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, static_cast<uintptr_t>(SIGUSR2));
  EXPECT_EQ(evs[0].data, 1);
}

TEST_F(KqueueSignalTest, DataCountsDeliveriesSinceLastTime) {
  // The knote counts while disabled; polling between the signals lets the
  // queue see each one (a blocked signal that is already pending does not
  // queue twice).
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD | EV_DISABLE), 0);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(raise(SIGUSR1), 0);
    EXPECT_TRUE(Poll(kq_).empty()) << "disabled";
  }
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ENABLE), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 3);
  // Reset by the delivery.
  ASSERT_EQ(raise(SIGUSR1), 0);
  evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 1);
}

TEST_F(KqueueSignalTest, TwoSignalsAreSeparateKnotes) {
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD), 0);
  ASSERT_EQ(Apply(kq_, SIGUSR2, EVFILT_SIGNAL, EV_ADD), 0);
  ASSERT_EQ(raise(SIGUSR2), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, static_cast<uintptr_t>(SIGUSR2));
  ASSERT_EQ(raise(SIGUSR1), 0);
  ASSERT_EQ(raise(SIGUSR2), 0);
  std::vector<struct kevent> seen;
  const auto deadline = steady_clock::now() + kSafety;
  while (seen.size() < 2 && steady_clock::now() < deadline) {
    for (const struct kevent& ev :
         Wait(kq_, 4, deadline - steady_clock::now())) {
      seen.push_back(ev);
    }
  }
  EXPECT_EQ(CountOf(seen, SIGUSR1, EVFILT_SIGNAL), 1);
  EXPECT_EQ(CountOf(seen, SIGUSR2, EVFILT_SIGNAL), 1);
}

TEST_F(KqueueSignalTest, DeletedSignalIsNoLongerReported) {
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD), 0);
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_DELETE), 0);
  ASSERT_EQ(raise(SIGUSR1), 0);  // stays pending (blocked); TearDown eats it
  EXPECT_TRUE(Wait(kq_, 4, milliseconds(20)).empty());
  EXPECT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_DELETE), ENOENT);
}

TEST_F(KqueueSignalTest, OneshotSignal) {
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD | EV_ONESHOT), 0);
  ASSERT_EQ(raise(SIGUSR1), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_DELETE), ENOENT);
}

TEST_F(KqueueSignalTest, BlockedIgnoredSignalIsStillReported) {
  // FreeBSD records a signal even when its disposition is SIG_IGN.  On
  // Linux a blocked signal is never discarded as ignored, so it stays
  // pending for the queue.
  struct sigaction ignore = {}, old = {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR2, &ignore, &old), 0);
  ASSERT_EQ(Apply(kq_, SIGUSR2, EVFILT_SIGNAL, EV_ADD), 0);
  ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
  auto evs = Wait(kq_);
  sigaction(SIGUSR2, &old, nullptr);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, static_cast<uintptr_t>(SIGUSR2));
  EXPECT_EQ(evs[0].data, 1);
}

// ---------------------------------------------------------------------------
// One signal, several queues: FreeBSD records each delivery in every knote
// that watches the signal, whichever queue it belongs to.

class KqueueSignalQueuesTest : public KqueueSignalTest {
 protected:
  void SetUp() override {
    KqueueSignalTest::SetUp();
    other_.reset(kqueue());
    ASSERT_GE(other_.get(), 0) << strerror(errno);
  }
  void TearDown() override {
    other_.reset();
    KqueueSignalTest::TearDown();
  }

  // Waits for exactly one event on `kq` and returns its data (-1: none).
  static int64_t OneSignal(int kq, int signo, void* udata) {
    auto evs = Wait(kq);
    if (evs.size() != 1u) {
      ADD_FAILURE() << evs.size() << " events";
      return -1;
    }
    EXPECT_EQ(evs[0].ident, static_cast<uintptr_t>(signo));
    EXPECT_EQ(evs[0].filter, EVFILT_SIGNAL);
    EXPECT_EQ(evs[0].udata, udata);
    return evs[0].data;
  }

  ScopedFd other_;
  int tag_ = 0, other_tag_ = 0;
};

TEST_F(KqueueSignalQueuesTest, EveryQueueSeesOneDelivery) {
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, &tag_), 0);
  ASSERT_EQ(Apply(other_.get(), SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0,
                  &other_tag_),
            0);
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_EQ(OneSignal(kq_, SIGUSR1, &tag_), 1);
  EXPECT_EQ(OneSignal(other_.get(), SIGUSR1, &other_tag_), 1);
  EXPECT_TRUE(Poll(kq_).empty());
  EXPECT_TRUE(Poll(other_.get()).empty());
  // The other order: the second queue is the first to look this time.
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_EQ(OneSignal(other_.get(), SIGUSR1, &other_tag_), 1);
  EXPECT_EQ(OneSignal(kq_, SIGUSR1, &tag_), 1);
}

TEST_F(KqueueSignalQueuesTest, CountsCoalescePerQueue) {
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, &tag_), 0);
  ASSERT_EQ(Apply(other_.get(), SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0,
                  &other_tag_),
            0);
  // kq_ returns each delivery (which also lets the next one be sent: a
  // blocked signal that is already pending does not queue twice); the other
  // queue is not asked until the end and reports both at once.
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
    EXPECT_EQ(OneSignal(kq_, SIGUSR1, &tag_), 1) << i;
  }
  EXPECT_EQ(OneSignal(other_.get(), SIGUSR1, &other_tag_), 2);
  EXPECT_TRUE(Poll(other_.get()).empty());
}

TEST_F(KqueueSignalQueuesTest, DeleteInOneQueueLeavesTheOther) {
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, &tag_), 0);
  ASSERT_EQ(Apply(other_.get(), SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0,
                  &other_tag_),
            0);
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_DELETE), 0);
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_EQ(OneSignal(other_.get(), SIGUSR1, &other_tag_), 1);
  EXPECT_TRUE(Poll(kq_).empty());
  // And the other way round, with a knote added again.
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, &tag_), 0);
  ASSERT_EQ(Apply(other_.get(), SIGUSR1, EVFILT_SIGNAL, EV_DELETE), 0);
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_EQ(OneSignal(kq_, SIGUSR1, &tag_), 1) << "counted from its EV_ADD";
  EXPECT_TRUE(Poll(other_.get()).empty());
}

TEST_F(KqueueSignalQueuesTest, ClosingOneQueueLeavesTheOtherListening) {
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, &tag_), 0);
  ASSERT_EQ(Apply(other_.get(), SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0,
                  &other_tag_),
            0);
  other_.reset();
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_EQ(OneSignal(kq_, SIGUSR1, &tag_), 1);
  // Closed with a signal pending in it: nothing is left behind (TearDown
  // counts descriptors).
  ASSERT_EQ(close(kq_), 0);
  kq_ = -1;
  other_.reset(kqueue());
  ASSERT_GE(other_.get(), 0);
  ASSERT_EQ(Apply(other_.get(), SIGUSR2, EVFILT_SIGNAL, EV_ADD), 0);
  ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
  EXPECT_EQ(OneSignal(other_.get(), SIGUSR2, nullptr), 1);
}

TEST_F(KqueueSignalQueuesTest, WaiterOnTheOtherQueueIsWoken) {
  // Whichever thread reads the signal, the waiter blocked on the other queue
  // must get it too.  The thread inherits the fixture's signal mask.
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, &tag_), 0);
  ASSERT_EQ(Apply(other_.get(), SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0,
                  &other_tag_),
            0);
  std::atomic<bool> started{false};
  int64_t other_data = -1;
  std::thread waiter([&] {
    started = true;
    other_data = OneSignal(other_.get(), SIGUSR1, &other_tag_);
  });
  while (!started.load()) std::this_thread::yield();
  // Likely blocked by now; the result is the same if not.
  SleepFor(milliseconds(5));
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_EQ(OneSignal(kq_, SIGUSR1, &tag_), 1);
  waiter.join();
  EXPECT_EQ(other_data, 1);
}

TEST_F(KqueueSignalQueuesTest, ChildOfForkHasSignalsOfItsOwn) {
#if defined(__SANITIZE_THREAD__)
  // kqio starts a thread in the child's first kqueue() (Linux), and
  // ThreadSanitizer kills a child of a threaded process that starts one.
  GTEST_SKIP() << "ThreadSanitizer: no threads after a multi-threaded fork";
#endif
  ASSERT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 0, &tag_), 0);
  const int status = RunInChild([] {
    // The parent's queues are closed here; a new one works, and counts the
    // child's own signals.
    const int kq = kqueue();
    if (kq < 0) return 1;
    struct kevent change;
    EV_SET(&change, SIGUSR2, EVFILT_SIGNAL, EV_ADD, 0, 0, nullptr);
    if (kevent(kq, &change, 1, nullptr, 0, nullptr) != 0) return 2;
    if (kill(getpid(), SIGUSR2) != 0) return 3;
    struct kevent ev;
    const struct timespec limit = {5, 0};
    if (kevent(kq, nullptr, 0, &ev, 1, &limit) != 1) return 4;
    if (ev.ident != static_cast<uintptr_t>(SIGUSR2) || ev.data != 1) return 5;
    EV_SET(&change, SIGUSR2, EVFILT_SIGNAL, EV_DELETE, 0, 0, nullptr);
    if (kevent(kq, &change, 1, nullptr, 0, nullptr) != 0) return 6;
    return 0;
  });
  EXPECT_EQ(status, 0);
  // The parent's queue is untouched by what the child did.
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  EXPECT_EQ(OneSignal(kq_, SIGUSR1, &tag_), 1);
}

#ifdef __linux__
TEST_F(KqueueSignalTest, AddBlocksTheSignalInTheCallingThread) {
  // Documented kqio behaviour: signalfd only sees blocked signals.
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  sigset_t now;
  pthread_sigmask(SIG_SETMASK, nullptr, &now);
  ASSERT_FALSE(sigismember(&now, SIGUSR2)) << "the fixture's mask is undone";
  ASSERT_EQ(Apply(kq_, SIGUSR2, EVFILT_SIGNAL, EV_ADD), 0);
  pthread_sigmask(SIG_SETMASK, nullptr, &now);
  EXPECT_TRUE(sigismember(&now, SIGUSR2));
  ASSERT_EQ(raise(SIGUSR2), 0);  // would kill the process if not blocked
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, static_cast<uintptr_t>(SIGUSR2));
  pthread_sigmask(SIG_BLOCK, &mask_, nullptr);
}
#endif

}  // namespace
}  // namespace kqio_test
