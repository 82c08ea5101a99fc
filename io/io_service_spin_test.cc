// IoService's waits for pool results.  The spin before it sleeps
// (Options::spin_before_sleep_us): a result that arrives within the budget
// is taken without a sleep; a budget that sees nothing shrinks; with one
// result due or none, or with the option at 0, the loop never spins.  The
// nap (Options::nap_us): with enough due, Posts during it do not wake the
// loop; empty naps and naps that bring nearly all that was due are not
// repeated at once, and napping resumes; timers end a nap.  A
// thread here stands in for the pool (WorkStarted, Post, WorkFinished).
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "io/io_service.h"

namespace kqio {
namespace io {
namespace {

std::unique_ptr<IoService> NewService(IoService::Options o) {
  absl::StatusOr<std::unique_ptr<IoService>> s = IoService::Create(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

std::unique_ptr<IoService> NewService(uint32_t spin_us) {
  IoService::Options o;
  o.spin_before_sleep_us = spin_us;
  o.nap_us = 0;
  return NewService(o);
}

// `units` of pool work, finished by another thread (a Post, then
// WorkFinished, as the pool does).
struct PoolWork {
  explicit PoolWork(int units) : units(units) {}
  PoolWork& Delay(int ms) {
    delay = std::chrono::milliseconds(ms);
    return *this;
  }
  PoolWork& AfterFirstSpin() {
    after_first_spin = true;
    return *this;
  }
  PoolWork& OnePost() {
    one_post = true;
    return *this;
  }

  int units;
  // From when the loop's first spin began, or (when no spin is expected)
  // its first iteration: a loop thread slow to start must not find the
  // results already there.
  std::chrono::milliseconds delay{5};
  bool after_first_spin = false;
  // One Post carries every unit's result.
  bool one_post = false;
};

// Waits until `s` has begun an iteration (or, with `spin`, a spin).
void AwaitLoop(IoService& s, bool spin = false) {
  while ((spin ? s.metrics().loop_spins : s.metrics().loop_iterations) == 0) {
    std::this_thread::yield();
  }
}

// Posts `n` results as the pool does: each closure, on the loop thread,
// also ends its unit of work (TaskBase::Deliver calls WorkFinished last).
void PostResults(IoService& s, int n, std::atomic<int>& ran, bool one_post) {
  if (one_post) {
    s.Post([&s, &ran, n] {
      ran += n;
      for (int i = 0; i < n; ++i) s.WorkFinished();
    });
    return;
  }
  for (int i = 0; i < n; ++i) {
    s.Post([&s, &ran] {
      ++ran;
      s.WorkFinished();
    });
  }
}

Metrics RunPoolWork(std::unique_ptr<IoService> s, PoolWork w) {
  std::atomic<int> ran{0};
  for (int i = 0; i < w.units; ++i) s->WorkStarted();
  std::thread worker([&] {
    AwaitLoop(*s, w.after_first_spin);
    std::this_thread::sleep_for(w.delay);
    PostResults(*s, w.units, ran, w.one_post);
  });
  s->Run();
  worker.join();
  EXPECT_EQ(ran, w.units);
  return s->metrics();
}

TEST(IoServiceSpinTest, AResultWithinTheBudgetIsTakenWithoutSleeping) {
  // A budget far longer than the worker's delay: the loop is spinning, not
  // asleep, when the results come.
  const Metrics m = RunPoolWork(NewService(10'000'000),
                                PoolWork(2).AfterFirstSpin());
  EXPECT_GE(m.loop_spin_hits, 1u) << m.ToString();
  EXPECT_EQ(m.wakeups_sent, 0u) << m.ToString();
}

TEST(IoServiceSpinTest, ASpinThatSeesNothingSleepsAndIsWoken) {
  const Metrics m = RunPoolWork(
      NewService(1000), PoolWork(2).Delay(50).AfterFirstSpin().OnePost());
  EXPECT_GE(m.loop_spins, 1u) << m.ToString();
  EXPECT_EQ(m.loop_spin_hits, 0u) << m.ToString();
  EXPECT_GE(m.wakeups_sent, 1u) << m.ToString();
}

TEST(IoServiceSpinTest, ABudgetOfZeroNeverSpins) {
  const Metrics m = RunPoolWork(NewService(0), PoolWork(2));
  EXPECT_EQ(m.loop_spins, 0u) << m.ToString();
}

TEST(IoServiceSpinTest, OneResultDueIsNotSpunFor) {
  const Metrics m = RunPoolWork(NewService(10'000'000), PoolWork(1));
  EXPECT_EQ(m.loop_spins, 0u) << m.ToString();
}

// Options::nap_us: with nap_min_due results due the loop naps, and Posts
// during the nap do not wake it.
IoService::Options NapOptions(uint32_t nap_us) {
  IoService::Options o;
  o.spin_before_sleep_us = 0;
  o.nap_us = nap_us;
  o.nap_min_due = 4;
  return o;
}

TEST(IoServiceNapTest, PostsDuringANapDoNotWakeTheLoop) {
  // A nap far longer than the worker's delay: the results wait for its end.
  const auto start = std::chrono::steady_clock::now();
  const Metrics m =
      RunPoolWork(NewService(NapOptions(2'000'000)), PoolWork(8).Delay(50));
  EXPECT_GE(m.loop_naps, 1u) << m.ToString();
  EXPECT_EQ(m.loop_naps_empty, 0u) << m.ToString();
  EXPECT_EQ(m.wakeups_sent, 0u) << m.ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(1900));
}

TEST(IoServiceNapTest, AnEmptyNapIsNotRepeatedAtOnce) {
  // 1 ms naps, results after 100 ms: one empty nap, then a sleep that the
  // Post ends, not a hundred naps.
  const Metrics m =
      RunPoolWork(NewService(NapOptions(1000)), PoolWork(8).Delay(100));
  EXPECT_EQ(m.loop_naps_empty, 1u) << m.ToString();
  EXPECT_EQ(m.loop_naps, 1u) << m.ToString();
  EXPECT_GE(m.wakeups_sent, 1u) << m.ToString();
}

TEST(IoServiceNapTest, NappingResumesAfterAnEmptyNap) {
  // Round 1: results only after the first (200 ms) nap ended empty; the
  // loop sleeps for them instead of napping again.  Round 2: results 20 ms
  // into the next nap, which takes them.
  auto s = NewService(NapOptions(200'000));
  std::atomic<int> ran{0};
  for (int i = 0; i < 8; ++i) s->WorkStarted();
  std::thread worker([&] {
    AwaitLoop(*s);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (int i = 0; i < 8; ++i) s->WorkStarted();  // round 2's work
    PostResults(*s, 8, ran, /*one_post=*/false);
    while (ran < 8) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    PostResults(*s, 8, ran, /*one_post=*/false);
  });
  s->Run();
  worker.join();
  EXPECT_EQ(ran, 16);
  const Metrics m = s->metrics();
  EXPECT_EQ(m.loop_naps, 2u) << m.ToString();
  EXPECT_EQ(m.loop_naps_empty, 1u) << m.ToString();
  EXPECT_GE(m.wakeups_sent, 1u) << m.ToString();
}

TEST(IoServiceNapTest, NapsThatBringNearlyAllInARowGiveWayToSleeps) {
  // 8 due at all times; each round's 8 results come in the middle of a
  // 100 ms nap, with the next round's 8 units started.  After four such
  // naps the loop sleeps instead, and the fifth round's Posts wake it.
  auto s = NewService(NapOptions(100'000));
  constexpr int kDue = 8;
  constexpr int kRounds = 5;
  std::atomic<int> ran{0};
  for (int i = 0; i < kDue; ++i) s->WorkStarted();
  std::thread worker([&] {
    AwaitLoop(*s);
    for (int round = 0; round < kRounds; ++round) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (round + 1 < kRounds) {
        for (int i = 0; i < kDue; ++i) s->WorkStarted();
      }
      PostResults(*s, kDue, ran, /*one_post=*/false);
      while (ran < (round + 1) * kDue) std::this_thread::yield();
    }
  });
  s->Run();
  worker.join();
  EXPECT_EQ(ran, kRounds * kDue);
  const Metrics m = s->metrics();
  EXPECT_EQ(m.loop_naps, 4u) << m.ToString();
  EXPECT_EQ(m.loop_naps_long, 4u) << m.ToString();
  EXPECT_GE(m.wakeups_sent, 1u) << m.ToString();
}

TEST(IoServiceNapTest, FewerDueThanTheMinimumSleepsInstead) {
  const Metrics m = RunPoolWork(NewService(NapOptions(2'000'000)),
                                PoolWork(3));
  EXPECT_EQ(m.loop_naps, 0u) << m.ToString();
  EXPECT_GE(m.wakeups_sent, 1u) << m.ToString();
}

TEST(IoServiceNapTest, ANapOfZeroNeverNaps) {
  const Metrics m = RunPoolWork(NewService(NapOptions(0)), PoolWork(8));
  EXPECT_EQ(m.loop_naps, 0u) << m.ToString();
}

TEST(IoServiceNapTest, ATimerEndsANap) {
  // A 10 s nap; a timer due in 10 ms finishes the work.
  auto s = NewService(NapOptions(10'000'000));
  for (int i = 0; i < 8; ++i) s->WorkStarted();
  IoService* raw = s.get();
  s->RunAfter(absl::Milliseconds(10), [raw] {
    for (int i = 0; i < 8; ++i) raw->WorkFinished();
  });
  const auto start = std::chrono::steady_clock::now();
  s->Run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_GE(s->metrics().loop_naps, 1u) << s->metrics().ToString();
}

TEST(IoServiceNapTest, ANapMinimumBelowTwoIsInvalid) {
  IoService::Options o = NapOptions(20);
  o.nap_min_due = 1;
  EXPECT_EQ(IoService::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.nap_us = 0;  // no naps: the minimum does not matter
  EXPECT_TRUE(IoService::Create(o).ok());
}

TEST(IoServiceSpinTest, APostWithoutPoolWorkIsNotWaitedFor) {
  auto s = NewService(/*spin_us=*/10'000'000);
  bool ran = false;
  WorkGuard guard = s->MakeWorkGuard();  // keeps Run() waiting, no pool work
  std::thread other([&] {
    AwaitLoop(*s);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    s->Post([&] {
      ran = true;
      guard.Reset();
    });
  });
  s->Run();
  other.join();
  EXPECT_TRUE(ran);
  EXPECT_EQ(s->metrics().loop_spins, 0u);
  EXPECT_EQ(s->metrics().wakeups_sent, 1u);
}

}  // namespace
}  // namespace io
}  // namespace kqio
