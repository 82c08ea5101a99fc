// IoService's wait for pool results before it sleeps
// (Options::spin_before_sleep_us): a result that arrives within the budget
// is taken without a sleep; a budget that sees nothing shrinks; with one
// result due or none, or with the option at 0, the loop never spins.  A
// thread here stands in for the pool (WorkStarted, Post, WorkFinished).
#include <chrono>
#include <memory>
#include <thread>

#include "gtest/gtest.h"
#include "io/io_service.h"

namespace kqio {
namespace io {
namespace {

std::unique_ptr<IoService> NewService(uint32_t spin_us) {
  IoService::Options o;
  o.spin_before_sleep_us = spin_us;
  absl::StatusOr<std::unique_ptr<IoService>> s = IoService::Create(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

// Runs a loop whose only work is `units` of pool work, finished (a Post
// each, then WorkFinished, as the pool does) by another thread after
// `delay`.
Metrics RunPoolWork(uint32_t spin_us, std::chrono::milliseconds delay,
                    int units = 2) {
  auto s = NewService(spin_us);
  int ran = 0;
  for (int i = 0; i < units; ++i) s->WorkStarted();
  std::thread worker([&] {
    std::this_thread::sleep_for(delay);
    for (int i = 0; i < units; ++i) s->Post([&ran] { ++ran; });
    for (int i = 0; i < units; ++i) s->WorkFinished();
  });
  s->Run();
  worker.join();
  EXPECT_EQ(ran, units);
  return s->metrics();
}

TEST(IoServiceSpinTest, AResultWithinTheBudgetIsTakenWithoutSleeping) {
  // A budget far longer than the worker's delay: the loop is spinning, not
  // asleep, when the results come.
  const Metrics m = RunPoolWork(10'000'000, std::chrono::milliseconds(5));
  EXPECT_GE(m.loop_spin_hits, 1u) << m.ToString();
}

TEST(IoServiceSpinTest, ASpinThatSeesNothingSleepsAndIsWoken) {
  const Metrics m = RunPoolWork(1000, std::chrono::milliseconds(50));
  EXPECT_GE(m.loop_spins, 1u) << m.ToString();
  EXPECT_EQ(m.loop_spin_hits, 0u) << m.ToString();
  EXPECT_GE(m.wakeups_sent, 1u) << m.ToString();
}

TEST(IoServiceSpinTest, ABudgetOfZeroNeverSpins) {
  const Metrics m = RunPoolWork(0, std::chrono::milliseconds(5));
  EXPECT_EQ(m.loop_spins, 0u) << m.ToString();
}

TEST(IoServiceSpinTest, OneResultDueIsNotSpunFor) {
  const Metrics m = RunPoolWork(10'000'000, std::chrono::milliseconds(5), 1);
  EXPECT_EQ(m.loop_spins, 0u) << m.ToString();
}

TEST(IoServiceSpinTest, APostWithoutPoolWorkIsNotWaitedFor) {
  auto s = NewService(/*spin_us=*/10'000'000);
  bool ran = false;
  WorkGuard guard = s->MakeWorkGuard();  // keeps Run() waiting, no pool work
  std::thread other([&] {
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
