// Conformance tests for kqueue()/kevent() used from several threads: one
// queue waited on and changed concurrently, events counted exactly, close()
// from another thread, and writes into the queue's descriptor.  Many queues
// and a full descriptor table are in kqueue_fd_limit_test.cc.  Every wait is
// bounded; a lost wake-up shows up as a timeout, i.e. as a failure, never as
// a hang.
#include <errno.h>
#include <string.h>
#include <sys/event.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "io/kqueue_test_util.h"

namespace kqio_test {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

using KqueueThreadTest = KqueueTest;

// Waits, bounded by kSafety, until `done()`; returns whether it held.
template <typename F>
bool AwaitCondition(std::mutex& mu, std::condition_variable& cv, F done) {
  std::unique_lock<std::mutex> lock(mu);
  return cv.wait_for(lock, kSafety, done);
}

// Waiters that must be woken by an event use this longer timeout, so that a
// waiter that sleeps through an event (and would find it when its own
// timeout expires) is told apart: the test requires them all back within
// kSafety.
constexpr std::chrono::seconds kWaiterTimeout = 3 * kSafety;

TEST_F(KqueueThreadTest, WorkerTriggersWhileTheLoopWaitsCountedExactly) {
  // Ping-pong: the worker triggers, the loop (blocked in kevent) receives
  // and acknowledges through a second queue, many times.  Every trigger is
  // one event: none lost, none duplicated.
  constexpr int kRounds = 1000;
  ScopedFd ack(kqueue());
  ASSERT_GE(ack.get(), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  ASSERT_EQ(Apply(ack.get(), 2, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  std::atomic<int> worker_errors{0};
  std::thread worker([&] {
    for (int i = 0; i < kRounds; ++i) {
      if (Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER) != 0) {
        ++worker_errors;
        return;
      }
      struct kevent ev;
      if (!WaitFor(ack.get(), 2, EVFILT_USER, &ev)) {
        ++worker_errors;
        return;
      }
    }
  });
  int received = 0;
  while (received < kRounds) {
    auto evs = Wait(kq_, 4);
    if (evs.empty()) break;  // timed out: a lost wake-up
    ASSERT_EQ(evs.size(), 1u);
    ASSERT_EQ(evs[0].ident, 1u);
    ++received;
    ASSERT_EQ(Apply(ack.get(), 2, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  }
  worker.join();
  EXPECT_EQ(received, kRounds);
  EXPECT_EQ(worker_errors.load(), 0);
  EXPECT_TRUE(Poll(kq_).empty()) << "no extra event";
}

TEST_F(KqueueThreadTest, NoTriggerIsLostWhileTheLoopWaits) {
  // Without a hand-off the triggers coalesce (EV_CLEAR), but the loop must
  // always see the last one.
  constexpr int kTriggers = 5000;
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  std::atomic<int> seq{0};
  std::atomic<int> worker_errors{0};
  std::thread worker([&] {
    for (int i = 1; i <= kTriggers; ++i) {
      seq.store(i, std::memory_order_release);
      if (Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER) != 0) ++worker_errors;
    }
  });
  int seen = 0, events = 0;
  while (seen < kTriggers) {
    auto evs = Wait(kq_, 4);
    if (evs.empty()) break;  // timed out: the last trigger was lost
    ++events;
    seen = seq.load(std::memory_order_acquire);
  }
  worker.join();
  EXPECT_EQ(seen, kTriggers);
  EXPECT_LE(events, kTriggers);
  EXPECT_EQ(worker_errors.load(), 0);
}

TEST_F(KqueueThreadTest, SeveralWaitersShareEventsExactlyOnce) {
  constexpr int kWaiters = 4;
  constexpr int kEvents = 400;
  constexpr uintptr_t kStop = 0;
  for (int i = 1; i <= kEvents; ++i) {
    ASSERT_EQ(Apply(kq_, i, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  }
  // Level-triggered: once triggered, every waiter sees it.
  ASSERT_EQ(Apply(kq_, kStop, EVFILT_USER, EV_ADD), 0);
  std::unique_ptr<std::atomic<int>[]> hits(new std::atomic<int>[kEvents + 1]);
  for (int i = 0; i <= kEvents; ++i) hits[i] = 0;
  std::atomic<int> timeouts{0};
  int stopped = 0;  // guarded by mu
  std::mutex mu;
  std::condition_variable cv;
  int total = 0;
  std::vector<std::thread> waiters;
  for (int w = 0; w < kWaiters; ++w) {
    waiters.emplace_back([&] {
      for (;;) {
        auto evs = Wait(kq_, 4, kWaiterTimeout);
        if (evs.empty()) {
          ++timeouts;
          return;
        }
        bool stop = false;
        for (const struct kevent& ev : evs) {
          if (ev.ident == kStop) {
            stop = true;
            continue;
          }
          ++hits[ev.ident];
          std::lock_guard<std::mutex> lock(mu);
          if (++total == kEvents) cv.notify_all();
        }
        if (stop) {
          std::lock_guard<std::mutex> lock(mu);
          ++stopped;
          cv.notify_all();
          return;
        }
      }
    });
  }
  for (int i = 1; i <= kEvents; ++i) {
    ASSERT_EQ(Apply(kq_, i, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  }
  EXPECT_TRUE(AwaitCondition(mu, cv, [&] { return total == kEvents; }));
  ASSERT_EQ(Apply(kq_, kStop, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  EXPECT_TRUE(AwaitCondition(mu, cv, [&] { return stopped == kWaiters; }))
      << "a waiter slept through the level-triggered stop event";
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(timeouts.load(), 0) << "a waiter slept through ready events";
  EXPECT_EQ(stopped, kWaiters);
  for (int i = 1; i <= kEvents; ++i) EXPECT_EQ(hits[i].load(), 1) << i;
}

TEST_F(KqueueThreadTest, LevelEventWakesEveryBlockedWaiter) {
  constexpr int kWaiters = 3;
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD), 0);
  std::mutex mu;
  std::condition_variable cv;
  int woken = 0, returned = 0;  // guarded by mu
  std::atomic<int> started{0};
  std::vector<std::thread> waiters;
  for (int w = 0; w < kWaiters; ++w) {
    waiters.emplace_back([&] {
      ++started;
      auto evs = Wait(kq_, 4, kWaiterTimeout);
      std::lock_guard<std::mutex> lock(mu);
      if (evs.size() == 1 && evs[0].ident == 1) ++woken;
      ++returned;
      cv.notify_all();
    });
  }
  // Whether the waiters are already blocked or not, each must return the
  // event; the pause only makes the blocked case the likely one.
  while (started.load() < kWaiters) std::this_thread::yield();
  std::this_thread::sleep_for(milliseconds(20));
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  EXPECT_TRUE(AwaitCondition(mu, cv, [&] { return returned == kWaiters; }))
      << "a waiter slept through the event";
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(woken, kWaiters);
}

TEST_F(KqueueThreadTest, ChangesFromManyThreadsWhileOneWaits) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const uintptr_t id = static_cast<uintptr_t>(t * 100000 + i);
        // A one-shot event, triggered once: exactly one delivery each.
        if (Apply(kq_, id, EVFILT_USER, EV_ADD | EV_ONESHOT) != 0) ++errors;
        if (Apply(kq_, id, EVFILT_USER, 0, NOTE_TRIGGER) != 0) ++errors;
        // And some churn on the same queue: a timer added and deleted.
        if (Apply(kq_, id, EVFILT_TIMER, EV_ADD, 0, 60000) != 0) ++errors;
        if (Apply(kq_, id, EVFILT_TIMER, EV_DELETE) != 0) ++errors;
      }
    });
  }
  std::vector<int> per_thread(kThreads, 0);
  int received = 0;
  while (received < kThreads * kPerThread) {
    auto evs = Wait(kq_, 64);
    if (evs.empty()) break;
    for (const struct kevent& ev : evs) {
      ASSERT_EQ(ev.filter, EVFILT_USER);
      ++per_thread[ev.ident / 100000];
      ++received;
    }
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(received, kThreads * kPerThread);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(per_thread[t], kPerThread);
  EXPECT_TRUE(Poll(kq_).empty());
}

#ifdef __linux__
// On FreeBSD a close() does not interrupt a kevent() already running on the
// descriptor; kqio documents that the waiter returns EBADF.
TEST(KqueueCloseThreadTest, CloseWakesBlockedWaitersWithEbadf) {
  const int before = OpenFdCount();
  for (int round = 0; round < 10; ++round) {
    int kq = kqueue();
    ASSERT_GE(kq, 0);
    ASSERT_EQ(Apply(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
    constexpr int kWaiters = 2;
    std::atomic<int> started{0}, ebadf{0}, other{0};
    std::vector<std::thread> waiters;
    for (int w = 0; w < kWaiters; ++w) {
      waiters.emplace_back([&] {
        ++started;
        struct kevent ev;
        const struct timespec ts = ToTimespec(2 * kSafety);
        int r = kevent(kq, nullptr, 0, &ev, 1, &ts);
        if (r == -1 && errno == EBADF) {
          ++ebadf;
        } else {
          ++other;
        }
      });
    }
    // EBADF is the answer whether the waiters are blocked yet or not; the
    // pause makes the interesting case (blocked) the likely one.
    while (started.load() < kWaiters) std::this_thread::yield();
    std::this_thread::sleep_for(milliseconds(5));
    ASSERT_EQ(close(kq), 0);
    for (std::thread& t : waiters) t.join();
    EXPECT_EQ(ebadf.load(), kWaiters) << "round " << round;
    EXPECT_EQ(other.load(), 0);
  }
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(KqueueCloseThreadTest, CloseWhileOtherThreadsChangeAndPoll) {
  const int before = OpenFdCount();
  int kq = kqueue();
  ASSERT_GE(kq, 0);
  constexpr int kThreads = 3;
  std::atomic<int> running{0}, saw_ebadf{0}, unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      bool counted = false;
      const auto deadline = steady_clock::now() + kSafety;
      for (uintptr_t i = 0; steady_clock::now() < deadline; ++i) {
        struct kevent changes[2];
        EV_SET(&changes[0], t * 1000000 + i, EVFILT_USER,
               EV_ADD | EV_CLEAR | EV_ONESHOT, NOTE_TRIGGER, 0, nullptr);
        EV_SET(&changes[1], t, EVFILT_TIMER, EV_ADD, 0, 60000, nullptr);
        struct kevent out[4];
        const struct timespec zero = {0, 0};
        int r = kevent(kq, changes, 2, out, 4, &zero);
        if (r < 0) {
          if (errno == EBADF) {
            ++saw_ebadf;
          } else {
            ++unexpected;
          }
          return;
        }
        if (!counted) {
          counted = true;
          ++running;
        }
      }
    });
  }
  while (running.load() < kThreads) std::this_thread::yield();
  ASSERT_EQ(close(kq), 0);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(saw_ebadf.load(), kThreads) << "every thread sees the close";
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(OpenFdCount(), before);
}

// A change-only call must find out that its number no longer names the
// queue even when it has a waiter to wake (kqio then checks and wakes with
// one system call): the waiter, woken by the close, may not have left yet.
TEST(KqueueCloseThreadTest, ChangeThatWouldWakeAWaiterOfAClosedQueueIsEbadf) {
  Pipe p;
  const int before = OpenFdCount();
  for (int round = 0; round < 20; ++round) {
    int kq = kqueue();
    ASSERT_GE(kq, 0);
    ASSERT_EQ(Apply(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
    std::atomic<bool> started{false};
    std::thread waiter([&] {
      started = true;
      struct kevent ev;
      const struct timespec ts = ToTimespec(kWaiterTimeout);
      kevent(kq, nullptr, 0, &ev, 1, &ts);  // EBADF, or the trigger
    });
    while (!started.load()) std::this_thread::yield();
    std::this_thread::sleep_for(milliseconds(2));
    ASSERT_EQ(close(kq), 0);
    ASSERT_EQ(dup2(p.r(), kq), kq) << strerror(errno);
    ScopedFd reuse(kq);
    struct kevent trigger = MakeEvent(1, EVFILT_USER, 0, NOTE_TRIGGER);
    errno = 0;
    EXPECT_EQ(kevent(kq, &trigger, 1, nullptr, 0, nullptr), -1) << round;
    EXPECT_EQ(errno, EBADF) << round;
    waiter.join();
  }
  EXPECT_EQ(OpenFdCount(), before);
}

// The same with the number taken over by another file while the queue's own
// file stays open through a dup() (so that nothing tells the queue): the
// number is not a kqueue any more, with a waiter to wake or without.
TEST(KqueueCloseThreadTest, ChangeOnANumberThatNamesAnotherFileIsEbadf) {
  Pipe p;
  const int before = OpenFdCount();
  for (const bool with_waiter : {false, true}) {
    int kq = kqueue();
    ASSERT_GE(kq, 0);
    ASSERT_EQ(Apply(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
    ScopedFd keep(dup(kq));
    ASSERT_GE(keep.get(), 0);
    std::thread waiter;
    if (with_waiter) {
      std::atomic<bool> started{false};
      waiter = std::thread([&started, kq] {
        started = true;
        struct kevent ev;
        const struct timespec ts = ToTimespec(kWaiterTimeout);
        kevent(kq, nullptr, 0, &ev, 1, &ts);  // EBADF once `keep` closes
      });
      while (!started.load()) std::this_thread::yield();
      std::this_thread::sleep_for(milliseconds(5));
    }
    ASSERT_EQ(dup2(p.r(), kq), kq) << strerror(errno);
    ScopedFd reuse(kq);
    struct kevent trigger = MakeEvent(1, EVFILT_USER, 0, NOTE_TRIGGER);
    errno = 0;
    EXPECT_EQ(kevent(kq, &trigger, 1, nullptr, 0, nullptr), -1) << with_waiter;
    EXPECT_EQ(errno, EBADF) << with_waiter;
    keep.reset();  // the queue's last descriptor: the waiter returns
    if (waiter.joinable()) waiter.join();
  }
  EXPECT_EQ(OpenFdCount(), before);
}

// The descriptor is a pipe's write end, so a program can write into it.
// The bytes are dropped, and wake-ups keep working even when it was filled.
TEST(KqueueDescriptorTest, WritesIntoTheDescriptorDoNotLoseWakeups) {
  const int before = OpenFdCount();
  int kq = kqueue();
  ASSERT_GE(kq, 0);
  ASSERT_EQ(Apply(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  EXPECT_GT(FillUntilEagain(kq), 0u);
  constexpr int kRounds = 20;
  std::atomic<int> waiting{-1};  // kRounds: stop
  std::atomic<int> errors{0};
  std::thread worker([&] {
    for (int i = 0; i < kRounds; ++i) {
      while (waiting.load() < i) std::this_thread::yield();
      if (waiting.load() == kRounds) return;
      // Likely blocked by now; the result is the same if not.
      std::this_thread::sleep_for(milliseconds(2));
      if (Apply(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER) != 0) ++errors;
      if (i == kRounds / 2) FillUntilEagain(kq);  // and again, mid-way
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    waiting = i;
    // A waiter that slept through the trigger finds the event when its own
    // timeout expires: only an early return counts.
    const auto start = steady_clock::now();
    const auto evs = Wait(kq, 4, kWaiterTimeout);
    const bool woken = evs.size() == 1u && steady_clock::now() - start < kSafety;
    EXPECT_TRUE(woken) << "round " << i;
    if (!woken) break;
    EXPECT_EQ(evs[0].ident, 1u);
  }
  waiting = kRounds;
  worker.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_TRUE(Poll(kq).empty());
  ASSERT_EQ(close(kq), 0);
  EXPECT_EQ(OpenFdCount(), before);
}
#endif  // __linux__

}  // namespace
}  // namespace kqio_test
