// io::TimerQueue on its own, with a fake clock (plain numbers): order, FIFO
// ties, cancellation in every state, periodic timers, re-entrancy, and a
// randomised comparison against a std::multimap model.
#include "io/timer_queue.h"

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace kqio {
namespace io {
namespace {

// Sets *flag when destroyed: tells whether a callback was destroyed (and
// when) without being run.
struct DestroyFlag {
  explicit DestroyFlag(bool* f) : flag(f) {}
  ~DestroyFlag() { *flag = true; }
  bool* flag;
};

TEST(TimerQueueTest, EmptyQueue) {
  TimerQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.NextDeadline(), TimerQueue::kNoDeadline);
  EXPECT_EQ(q.RunDue(1000), 0u);
  EXPECT_FALSE(q.Cancel(TimerId()));
}

TEST(TimerQueueTest, RunsInDeadlineOrderOnlyWhenDue) {
  TimerQueue q;
  std::vector<int> order;
  q.Add(30, 0, [&] { order.push_back(30); });
  q.Add(10, 0, [&] { order.push_back(10); });
  q.Add(20, 0, [&] { order.push_back(20); });
  EXPECT_EQ(q.NextDeadline(), 10);
  EXPECT_EQ(q.RunDue(9), 0u);
  EXPECT_EQ(q.RunDue(20), 2u);
  EXPECT_EQ(order, (std::vector<int>{10, 20}));
  EXPECT_EQ(q.NextDeadline(), 30);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.RunDue(1000), 1u);
  EXPECT_EQ(order, (std::vector<int>{10, 20, 30}));
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueueTest, EqualDeadlinesAreFifo) {
  TimerQueue q;
  std::vector<int> order;
  for (int i = 0; i < 50; ++i) {
    q.Add(i % 2 == 0 ? 7 : 5, 0, [&order, i] { order.push_back(i); });
  }
  EXPECT_EQ(q.RunDue(7), 50u);
  ASSERT_EQ(order.size(), 50u);
  for (int i = 0; i < 25; ++i) {
    EXPECT_EQ(order[i], 2 * i + 1) << i;  // deadline 5, in order added
    EXPECT_EQ(order[25 + i], 2 * i) << i;  // then deadline 7
  }
}

TEST(TimerQueueTest, RejectsNullCallbackAndNegativePeriod) {
  TimerQueue q;
  EXPECT_FALSE(q.Add(1, 0, nullptr).valid());
  EXPECT_FALSE(q.Add(1, -1, [] {}).valid());
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueueTest, CancelPendingDestroysCallbackUnrun) {
  TimerQueue q;
  bool ran = false, destroyed = false;
  auto flag = std::make_shared<DestroyFlag>(&destroyed);
  TimerId id = q.Add(10, 0, [&ran, flag] { ran = true; });
  flag.reset();
  EXPECT_FALSE(destroyed);
  EXPECT_TRUE(q.Cancel(id));
  EXPECT_TRUE(destroyed);  // before Cancel returned
  EXPECT_FALSE(q.Cancel(id));  // cancel after cancel
  EXPECT_EQ(q.RunDue(100), 0u);  // fire after cancel: nothing
  EXPECT_FALSE(ran);
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueueTest, CancelAfterFireIsHarmless) {
  TimerQueue q;
  int runs = 0;
  TimerId id = q.Add(10, 0, [&] { ++runs; });
  EXPECT_EQ(q.RunDue(10), 1u);
  EXPECT_FALSE(q.Cancel(id));
  EXPECT_EQ(runs, 1);
}

TEST(TimerQueueTest, StaleIdDoesNotCancelTimerInReusedSlot) {
  TimerQueue q;
  TimerId old_id = q.Add(10, 0, [] {});
  ASSERT_TRUE(q.Cancel(old_id));
  int runs = 0;
  TimerId new_id = q.Add(10, 0, [&] { ++runs; });  // reuses the slot
  EXPECT_NE(old_id, new_id);
  EXPECT_FALSE(q.Cancel(old_id));
  EXPECT_EQ(q.RunDue(10), 1u);
  EXPECT_EQ(runs, 1);
}

TEST(TimerQueueTest, OneShotCancellingItselfPreventsNothing) {
  TimerQueue q;
  TimerId id;
  bool cancel_result = true;
  id = q.Add(10, 0, [&] { cancel_result = q.Cancel(id); });
  EXPECT_EQ(q.RunDue(10), 1u);
  EXPECT_FALSE(cancel_result);
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueueTest, PeriodicTicksAtFixedRateAndSkipsMissedTicks) {
  TimerQueue q;
  std::vector<int64_t> lateness;
  int runs = 0;
  q.Add(10, 10, [&] { ++runs; });
  auto record = [&](int64_t late) {
    lateness.push_back(late);
    return true;
  };
  EXPECT_EQ(q.RunDue(10, record), 1u);
  EXPECT_EQ(q.NextDeadline(), 20);
  EXPECT_EQ(q.RunDue(23, record), 1u);  // late, but the phase is kept
  EXPECT_EQ(q.NextDeadline(), 30);
  EXPECT_EQ(q.RunDue(75, record), 1u);  // 40, 50, 60, 70 missed: one run
  EXPECT_EQ(q.NextDeadline(), 80);
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(lateness, (std::vector<int64_t>{0, 3, 45}));
  EXPECT_EQ(q.size(), 1u);
}

TEST(TimerQueueTest, PeriodicCancelledInsideItsCallbackStops) {
  TimerQueue q;
  TimerId id;
  int runs = 0;
  bool destroyed = false;
  auto flag = std::make_shared<DestroyFlag>(&destroyed);
  id = q.Add(10, 10, [&, flag] {
    if (++runs == 3) {
      EXPECT_TRUE(q.Cancel(id));   // stops the ticks to come
      EXPECT_FALSE(q.Cancel(id));  // once
      EXPECT_FALSE(destroyed);     // not while running
    }
  });
  flag.reset();
  for (int64_t t = 10; t <= 100; t += 10) q.RunDue(t);
  EXPECT_EQ(runs, 3);
  EXPECT_TRUE(destroyed);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.NextDeadline(), TimerQueue::kNoDeadline);
}

TEST(TimerQueueTest, CancelFromAnotherTimersCallback) {
  TimerQueue q;
  TimerId b;
  bool b_ran = false, cancelled = false;
  q.Add(10, 0, [&] { cancelled = q.Cancel(b); });
  b = q.Add(10, 0, [&] { b_ran = true; });  // due in the same pass
  EXPECT_EQ(q.RunDue(10), 1u);
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(b_ran);
  EXPECT_TRUE(q.empty());
}

TEST(TimerQueueTest, TimersAddedByCallbacksWaitForTheNextPass) {
  TimerQueue q;
  int inner = 0;
  q.Add(10, 0, [&] { q.Add(5, 0, [&] { ++inner; }); });  // already due
  EXPECT_EQ(q.RunDue(10), 1u);
  EXPECT_EQ(inner, 0);
  EXPECT_EQ(q.NextDeadline(), 5);
  EXPECT_EQ(q.RunDue(10), 1u);
  EXPECT_EQ(inner, 1);
}

TEST(TimerQueueTest, AfterEachCanStopThePass) {
  TimerQueue q;
  int runs = 0;
  for (int i = 0; i < 5; ++i) q.Add(10, 0, [&] { ++runs; });
  EXPECT_EQ(q.RunDue(10, [&](int64_t) { return runs < 2; }), 2u);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.RunDue(10), 3u);
}

TEST(TimerQueueTest, ClearDestroysUnrunAndToleratesReentry) {
  TimerQueue q;
  bool ran = false, destroyed = false;
  struct AddOnDestroy {
    explicit AddOnDestroy(TimerQueue* queue) : q(queue) {}
    ~AddOnDestroy() { q->Add(1, 0, [] {}); }
    TimerQueue* q;
  };
  auto adder = std::make_shared<AddOnDestroy>(&q);
  auto flag = std::make_shared<DestroyFlag>(&destroyed);
  q.Add(10, 0, [&ran, flag] { ran = true; });
  q.Add(20, 5, [adder] {});
  adder.reset();
  flag.reset();
  EXPECT_EQ(q.Clear(), 2u);
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(ran);
  EXPECT_EQ(q.size(), 1u);  // the one the destructor added
  EXPECT_EQ(q.RunDue(1), 1u);
}

TEST(TimerQueueTest, DestructorDestroysPendingCallbacks) {
  bool destroyed = false;
  {
    TimerQueue q;
    auto flag = std::make_shared<DestroyFlag>(&destroyed);
    q.Add(10, 0, [flag] {});
  }
  EXPECT_TRUE(destroyed);
}

// Random adds, cancels and passes, checked against a multimap keyed by
// (deadline, insertion order): the heap and its position bookkeeping.
TEST(TimerQueueTest, MatchesMultimapModel) {
  std::mt19937_64 rng(42);
  TimerQueue q;
  std::map<std::pair<int64_t, int>, TimerId> model;
  std::vector<std::pair<int64_t, int>> keys;  // live keys, for random cancel
  std::vector<int> fired;
  int next = 0;
  int64_t now = 0;
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      const int64_t deadline = now + static_cast<int64_t>(rng() % 100);
      const int n = next++;
      TimerId id = q.Add(deadline, 0, [&fired, n] { fired.push_back(n); });
      model.emplace(std::make_pair(deadline, n), id);
      keys.emplace_back(deadline, n);
    } else if (op < 8 && !keys.empty()) {
      const size_t k = rng() % keys.size();
      auto it = model.find(keys[k]);
      const bool live = it != model.end();
      const TimerId id = live ? it->second : TimerId();
      EXPECT_EQ(q.Cancel(id), live);
      if (live) model.erase(it);
      keys[k] = keys.back();
      keys.pop_back();
    } else {
      now += static_cast<int64_t>(rng() % 30);
      fired.clear();
      q.RunDue(now);
      std::vector<int> expected;
      while (!model.empty() && model.begin()->first.first <= now) {
        expected.push_back(model.begin()->first.second);
        model.erase(model.begin());
      }
      ASSERT_EQ(fired, expected) << "step " << step;
    }
    ASSERT_EQ(q.size(), model.size());
    ASSERT_EQ(q.NextDeadline(), model.empty() ? TimerQueue::kNoDeadline
                                              : model.begin()->first.first);
  }
}

}  // namespace
}  // namespace io
}  // namespace kqio
