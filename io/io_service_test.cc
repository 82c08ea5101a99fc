// io::IoService: the loop, Post from any thread, Stop/Restart, work guards,
// timers, tracked operations and shutdown.  Registrations, stale events and
// signals are in io_service_events_test.cc.
//
// Every test ends with the service destroyed (or shut down) and checks that
// nothing was left behind: callbacks counted exactly once, timers dropped
// unrun, ASan (--config=asan) finds no leak.
#include "io/io_service.h"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kqio {
namespace io {
namespace {

std::unique_ptr<IoService> NewService() {
  absl::StatusOr<std::unique_ptr<IoService>> s = IoService::Create();
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

// Sets *flag when destroyed.
struct DestroyFlag {
  explicit DestroyFlag(std::atomic<bool>* f) : flag(f) {}
  ~DestroyFlag() { flag->store(true); }
  std::atomic<bool>* flag;
};

// An operation that completes only when aborted (or by Complete()), through
// the completion queue, as PendingOperation's contract requires.
class FakeOp final : public PendingOperation {
 public:
  // A template, so that done_ is built straight from the lambda (GCC 12 at
  // -O2 warns, wrongly, about moving a temporary AnyInvocable).
  template <typename F>
  FakeOp(IoService* s, F&& done) : service_(s), done_(std::forward<F>(done)) {}
  bool Start() { return service_->Track(this); }
  void Abort() override {
    ++aborts;
    service_->Post([this] { done_(absl::CancelledError("aborted")); });
  }
  int aborts = 0;

 private:
  IoService* service_;
  absl::AnyInvocable<void(absl::Status)> done_;
};

TEST(IoServiceTest, EmptyServiceRunsNothingAndReturns) {
  auto s = NewService();
  EXPECT_EQ(s->Run(), 0u);
  EXPECT_EQ(s->RunOnce(), 0u);
  EXPECT_EQ(s->Poll(), 0u);
  EXPECT_GE(s->kqueue_fd(), 0);
  const Metrics m = s->metrics();
  EXPECT_EQ(m.completions_run, 0u);
  EXPECT_EQ(m.registrations, 0u);
}

TEST(IoServiceTest, CreateReportsKqueueFailureAsStatus) {
  struct rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  const int lowest_free = dup(0);
  ASSERT_GE(lowest_free, 0);
  close(lowest_free);
  struct rlimit tight = old;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);  // no new descriptor
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  absl::StatusOr<std::unique_ptr<IoService>> s = IoService::Create();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("kqueue"), absl::string_view::npos)
      << s.status();
}

TEST(IoServiceTest, CreateRejectsBadOptions) {
  IoService::Options o;
  o.max_events = 0;
  EXPECT_EQ(IoService::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(IoServiceTest, LocalPostsRunInOrderAndNeverInline) {
  auto s = NewService();
  std::vector<int> order;
  s->Post([&] {
    order.push_back(0);
    for (int i = 1; i <= 3; ++i) {
      s->Post([&order, i] { order.push_back(i); });
      EXPECT_EQ(order.size(), 1u);  // not run inside Post
    }
  });
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(s->Run(), 4u);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  const Metrics m = s->metrics();
  EXPECT_EQ(m.posts_local, 3u);
  EXPECT_EQ(m.posts_cross_thread, 1u);  // posted before any loop ran
  EXPECT_EQ(m.op(OpClass::kPost).started, 4u);
  EXPECT_EQ(m.op(OpClass::kPost).completed, 4u);
}

TEST(IoServiceTest, PostsFromOneThreadRunInOrder) {
  auto s = NewService();
  constexpr int kN = 20000;
  std::vector<int> seen;
  seen.reserve(kN);
  WorkGuard guard = s->MakeWorkGuard();
  std::thread producer([&] {
    for (int i = 0; i < kN; ++i) s->Post([&seen, i] { seen.push_back(i); });
    s->Post([&] { guard.Reset(); });  // on the loop thread
  });
  s->Run();
  producer.join();
  ASSERT_EQ(seen.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) ASSERT_EQ(seen[i], i);
}

// 4 threads x 250k posts: each runs exactly once, and the loop was woken far
// less often than it was posted to.
TEST(IoServiceTest, CrossThreadPostsRunExactlyOnceUnderStress) {
  auto s = NewService();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250000;
  constexpr int kTotal = kThreads * kPerThread;
  std::vector<uint8_t> hits(kTotal, 0);
  int run = 0;
  WorkGuard guard = s->MakeWorkGuard();
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        s->Post([&, i] {
          ++hits[i];
          if (++run == kTotal) guard.Reset();
        });
      }
    });
  }
  const size_t ran = s->Run();
  for (std::thread& p : producers) p.join();
  EXPECT_EQ(ran, static_cast<size_t>(kTotal));
  for (int i = 0; i < kTotal; ++i) ASSERT_EQ(hits[i], 1) << "item " << i;
  const Metrics m = s->metrics();
  EXPECT_EQ(m.posts_cross_thread, static_cast<uint64_t>(kTotal));
  EXPECT_EQ(m.completions_run, static_cast<uint64_t>(kTotal));
  EXPECT_LT(m.wakeups_sent * 20, m.posts_cross_thread) << m.ToString();
  EXPECT_GT(m.op(OpClass::kPost).latency.count, 0u);  // sampled
}

TEST(IoServiceTest, StopFromAnotherThreadWhileRunBlocks) {
  auto s = NewService();
  WorkGuard guard = s->MakeWorkGuard();  // Run() would block forever
  absl::Notification running;
  s->Post([&] { running.Notify(); });
  std::thread stopper([&] {
    running.WaitForNotification();
    s->Stop();
  });
  EXPECT_EQ(s->Run(), 1u);  // returns only because of Stop()
  stopper.join();
  EXPECT_TRUE(s->stopped());
  // Stopped: nothing runs until Restart().
  s->Post([] {});
  EXPECT_EQ(s->Poll(), 0u);
  EXPECT_EQ(s->RunOnce(), 0u);
  s->Restart();
  EXPECT_EQ(s->Poll(), 1u);
}

// A completion chain (a closure posting the next from the loop thread) runs
// in one iteration up to completion_rounds passes, with no kevent() between
// the passes; a closure re-posting itself forever still lets I/O in.
TEST(IoServiceTest, ChainedLocalPostsRunInBoundedPasses) {
  IoService::Options options;
  options.completion_rounds = 3;
  auto s = *IoService::Create(options);
  int ran = 0;
  std::function<void()> chain = [&] {
    if (++ran < 10) s->Post(chain);
  };
  s->Post(chain);
  EXPECT_EQ(s->Poll(), 3u);  // three passes, one closure each
  EXPECT_EQ(ran, 3);
  EXPECT_EQ(s->metrics().kevent_polling + s->metrics().kevent_blocking, 1u);
  EXPECT_EQ(s->Poll(), 3u);
  EXPECT_EQ(s->Run(), 4u);
  EXPECT_EQ(ran, 10);

  IoService::Options zero;
  zero.completion_rounds = 0;
  EXPECT_EQ(IoService::Create(zero).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(IoServiceTest, StopReturnsAfterTheCurrentCallback) {
  auto s = NewService();
  std::vector<int> order;
  s->Post([&] {
    order.push_back(1);
    s->Stop();
  });
  s->Post([&] { order.push_back(2); });
  EXPECT_EQ(s->Run(), 1u);
  EXPECT_EQ(order, (std::vector<int>{1}));
  s->Restart();
  EXPECT_EQ(s->Run(), 1u);  // the rest of the interrupted batch
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(IoServiceTest, RunReturnsWhenOutOfWork) {
  auto s = NewService();
  int n = 0;
  s->Post([&] {
    ++n;
    s->RunAfter(absl::Milliseconds(2), [&] {
      ++n;
      s->Post([&] { ++n; });
    });
  });
  EXPECT_EQ(s->Run(), 3u);
  EXPECT_EQ(n, 3);
}

TEST(IoServiceTest, WorkGuardKeepsRunUntilReleasedFromAnotherThread) {
  auto s = NewService();
  WorkGuard guard = s->MakeWorkGuard();
  EXPECT_TRUE(guard.owns_work());
  absl::Notification running;
  std::atomic<bool> posted_ran{false};
  s->Post([&] { running.Notify(); });
  std::thread other([&, g = std::move(guard)]() mutable {
    running.WaitForNotification();
    s->Post([&] { posted_ran = true; });
    g.Reset();  // the last guard: wakes the loop if it sleeps
  });
  EXPECT_EQ(s->Run(), 2u);
  other.join();
  EXPECT_TRUE(posted_ran.load());
  EXPECT_FALSE(guard.owns_work());  // moved from
}

TEST(IoServiceTest, ReleasingTheLastGuardAloneEndsRun) {
  auto s = NewService();
  WorkGuard guard = s->MakeWorkGuard();
  absl::Notification running;
  s->Post([&] { running.Notify(); });
  std::thread other([&] {
    running.WaitForNotification();
    guard.Reset();
  });
  EXPECT_EQ(s->Run(), 1u);
  other.join();
}

TEST(IoServiceTest, CrossThreadPostWakesASleepingLoopOnce) {
  auto s = NewService();
  bool timer_ran = false;
  TimerId far = s->RunAfter(absl::Hours(1), [&] { timer_ran = true; });
  absl::Notification asleep_soon;
  s->Post([&] { asleep_soon.Notify(); });
  EXPECT_EQ(s->RunOnce(), 1u);
  std::thread other([&] {
    s->Post([&] { EXPECT_TRUE(s->Cancel(far)); });
  });
  EXPECT_EQ(s->Run(), 1u);  // woken, cancel, out of work
  other.join();
  EXPECT_FALSE(timer_ran);
  EXPECT_LE(s->metrics().wakeups_sent, 1u);
}

TEST(IoServiceTest, RunOnceBlocksForOneCompletion) {
  auto s = NewService();
  WorkGuard guard = s->MakeWorkGuard();
  std::thread other([&] { s->Post([] {}); });
  EXPECT_EQ(s->RunOnce(), 1u);
  other.join();
}

TEST(IoServiceTest, PollNeverBlocks) {
  auto s = NewService();
  WorkGuard guard = s->MakeWorkGuard();
  s->RunAfter(absl::Hours(1), [] {});
  const absl::Time start = absl::Now();
  EXPECT_EQ(s->Poll(), 0u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(IoServiceTest, TimersFireInDeadlineOrder) {
  auto s = NewService();
  std::vector<int> order;
  s->RunAfter(absl::Milliseconds(6), [&] { order.push_back(6); });
  s->RunAfter(absl::Milliseconds(2), [&] { order.push_back(2); });
  s->RunAt(absl::Now() + absl::Milliseconds(4), [&] { order.push_back(4); });
  s->RunAfter(-absl::Seconds(1), [&] { order.push_back(0); });  // = now
  for (int i = 0; i < 5; ++i) {
    s->RunAfter(absl::ZeroDuration(), [&order, i] { order.push_back(10 + i); });
  }
  EXPECT_EQ(s->Run(), 9u);
  EXPECT_EQ(order, (std::vector<int>{0, 10, 11, 12, 13, 14, 2, 4, 6}));
  const Metrics m = s->metrics();
  EXPECT_EQ(m.timers_started, 9u);
  EXPECT_EQ(m.timers_fired, 9u);
  EXPECT_EQ(m.timers_pending, 0u);
  EXPECT_EQ(m.op(OpClass::kTimer).latency.count, 9u);
}

TEST(IoServiceTest, RunEveryTicksUntilCancelledFromInside) {
  auto s = NewService();
  int ticks = 0;
  TimerId id;
  id = s->RunEvery(absl::Milliseconds(1), [&] {
    if (++ticks == 3) {
      EXPECT_TRUE(s->Cancel(id));
    }
  });
  ASSERT_TRUE(id.valid());
  EXPECT_EQ(s->Run(), 3u);  // returns: the cancelled timer was the only work
  EXPECT_EQ(ticks, 3);
  EXPECT_FALSE(s->Cancel(id));
  EXPECT_FALSE(s->RunEvery(absl::ZeroDuration(), [] {}).valid());
  EXPECT_FALSE(s->RunAfter(absl::Seconds(1), nullptr).valid());
}

TEST(IoServiceTest, TimerCancelRaces) {
  auto s = NewService();
  // Cancel after fire.
  int fired = 0;
  TimerId a = s->RunAfter(absl::ZeroDuration(), [&] { ++fired; });
  s->Run();
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(s->Cancel(a));
  // Fire after cancel: the callback is destroyed unrun, at once.
  std::atomic<bool> destroyed{false};
  auto flag = std::make_shared<DestroyFlag>(&destroyed);
  TimerId b = s->RunAfter(absl::ZeroDuration(), [&fired, flag] { ++fired; });
  flag.reset();
  EXPECT_TRUE(s->Cancel(b));
  EXPECT_TRUE(destroyed.load());
  EXPECT_EQ(s->Run(), 0u);
  EXPECT_EQ(fired, 1);
  // Cancel from inside another timer's callback, both due together.
  TimerId d;
  bool d_ran = false;
  s->RunAfter(absl::Milliseconds(1), [&] { EXPECT_TRUE(s->Cancel(d)); });
  d = s->RunAfter(absl::Milliseconds(1), [&] { d_ran = true; });
  EXPECT_EQ(s->Run(), 1u);
  EXPECT_FALSE(d_ran);
  EXPECT_EQ(s->metrics().timers_cancelled, 2u);
}

TEST(IoServiceTest, RecordOpCountsByStatusAndLatency) {
  auto s = NewService();
  const MonoTime start = MonoClock::now();
  s->RecordOpStarted(OpClass::kFileRead);
  s->RecordOpStarted(OpClass::kFileRead);
  s->RecordOpStarted(OpClass::kFileRead);
  s->RecordOpDone(OpClass::kFileRead, start, absl::OkStatus());
  s->RecordOpDone(OpClass::kFileRead, start, absl::CancelledError());
  s->RecordOpDone(OpClass::kFileRead, start, absl::NotFoundError("x"));
  const Metrics m = s->metrics();
  const OpMetrics& r = m.op(OpClass::kFileRead);
  EXPECT_EQ(r.started, 3u);
  EXPECT_EQ(r.completed, 1u);
  EXPECT_EQ(r.cancelled, 1u);
  EXPECT_EQ(r.failed, 1u);
  EXPECT_EQ(r.latency.count, 3u);
  EXPECT_NE(m.ToString().find("file_read"), std::string::npos);
  EXPECT_EQ(m.ToString().find("sendfile"), std::string::npos);  // never used
}

TEST(IoServiceTest, TrackedOperationKeepsRunGoingUntilComplete) {
  auto s = NewService();
  absl::Status result = absl::UnknownError("not run");
  FakeOp op(s.get(), [&](absl::Status st) { result = st; });
  ASSERT_TRUE(op.Start());
  EXPECT_FALSE(op.Start());  // already tracked
  EXPECT_EQ(s->metrics().tracked_operations, 1u);
  s->Post([&] {
    EXPECT_TRUE(s->Untrack(&op));  // "completes"
    s->Post([&] { result = absl::OkStatus(); });
  });
  EXPECT_EQ(s->Run(), 2u);
  EXPECT_TRUE(result.ok());
  EXPECT_FALSE(s->Untrack(&op));
  EXPECT_EQ(op.aborts, 0);
}

TEST(IoServiceTest, DestroyingATrackedOperationUntracksIt) {
  auto s = NewService();
  {
    FakeOp op(s.get(), [](absl::Status) {});
    ASSERT_TRUE(op.Start());
    EXPECT_EQ(s->metrics().tracked_operations, 1u);
  }
  EXPECT_EQ(s->metrics().tracked_operations, 0u);
  EXPECT_EQ(s->Run(), 0u);
}

// Destroying a service with everything pending: each tracked operation
// completes once with CancelledError (through the queue, so also after its
// own closures), every posted closure runs, timers are destroyed unrun.
TEST(IoServiceTest, DestroyWithPendingWork) {
  auto s = NewService();
  std::vector<absl::Status> results(3);
  std::vector<int> completions(3, 0);
  std::vector<std::unique_ptr<FakeOp>> ops;
  for (int i = 0; i < 2; ++i) {
    ops.push_back(std::make_unique<FakeOp>(s.get(), [&, i](absl::Status st) {
      results[i] = st;
      ++completions[i];
      if (i == 0) {
        // A completion that starts another operation during shutdown: it is
        // aborted too.
        ASSERT_TRUE(ops[2]->Start());
      }
    }));
    ASSERT_TRUE(ops.back()->Start());
  }
  ops.push_back(std::make_unique<FakeOp>(s.get(), [&](absl::Status st) {
    results[2] = st;
    ++completions[2];
  }));
  int posts_run = 0;
  for (int i = 0; i < 3; ++i) s->Post([&] { ++posts_run; });
  std::atomic<bool> timer_destroyed{false};
  bool timer_ran = false;
  auto flag = std::make_shared<DestroyFlag>(&timer_destroyed);
  s->RunAfter(absl::Milliseconds(1), [&timer_ran, flag] { timer_ran = true; });
  s->RunEvery(absl::Milliseconds(1), [&timer_ran] { timer_ran = true; });
  flag.reset();
  s.reset();
  EXPECT_EQ(posts_run, 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(completions[i], 1) << i;
    EXPECT_TRUE(absl::IsCancelled(results[i])) << i << results[i];
    EXPECT_EQ(ops[i]->aborts, 1) << i;
    EXPECT_FALSE(ops[i]->tracked());
  }
  EXPECT_FALSE(timer_ran);
  EXPECT_TRUE(timer_destroyed.load());
}

TEST(IoServiceTest, PostAfterShutdownDestroysTheClosureUnrun) {
  auto s = NewService();
  s->Shutdown();
  EXPECT_TRUE(s->is_shut_down());
  EXPECT_EQ(s->kqueue_fd(), -1);
  std::atomic<bool> destroyed{false};
  bool ran = false;
  auto flag = std::make_shared<DestroyFlag>(&destroyed);
  s->Post([&ran, flag] { ran = true; });
  flag.reset();
  EXPECT_TRUE(destroyed.load());
  std::thread other([&] { s->Post([&ran] { ran = true; }); });
  other.join();
  EXPECT_EQ(s->Run(), 0u);
  EXPECT_FALSE(ran);
  EXPECT_EQ(s->metrics().posts_rejected, 2u);
  EXPECT_FALSE(s->RunAfter(absl::ZeroDuration(), [] {}).valid());
  FakeOp op(s.get(), [](absl::Status) {});
  EXPECT_FALSE(op.Start());
  s->Shutdown();  // idempotent
}

TEST(IoServiceTest, ShutdownDrainsUntilOutOfWork) {
  auto s = NewService();
  bool timer_ran = false;
  s->RunAfter(absl::Milliseconds(5), [&] { timer_ran = true; });
  s->Stop();  // cleared by Shutdown
  const absl::Time start = absl::Now();
  s->Shutdown(absl::Seconds(30));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));  // did not wait it out
  EXPECT_TRUE(timer_ran);
}

TEST(IoServiceTest, ShutdownDrainEndsAtTheDeadline) {
  auto s = NewService();
  absl::Status result = absl::UnknownError("not run");
  int completions = 0;
  FakeOp op(s.get(), [&](absl::Status st) {
    result = st;
    ++completions;
  });
  ASSERT_TRUE(op.Start());  // never completes by itself
  bool early = false, late = false;
  s->RunAfter(absl::Milliseconds(1), [&] { early = true; });
  s->RunAfter(absl::Hours(1), [&] { late = true; });
  const absl::Duration drain = absl::Milliseconds(50);
  const absl::Time start = absl::Now();
  s->Shutdown(drain);
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, drain);
  EXPECT_LT(took, drain + absl::Seconds(20));
  EXPECT_TRUE(early);
  EXPECT_FALSE(late);
  EXPECT_EQ(completions, 1);
  EXPECT_TRUE(absl::IsCancelled(result));
  EXPECT_EQ(s->metrics().timers_dropped, 1u);
}

// Producers racing with the destructor: every closure is either run or
// destroyed (posts_rejected), none is lost or leaked.
TEST(IoServiceTest, PostsRacingShutdownAreRunOrRejected) {
  auto s = NewService();
  std::atomic<int> made{0}, ran{0}, destroyed_unrun{0};
  struct Counted {
    Counted(std::atomic<int>* r, std::atomic<int>* d)
        : ran(r), destroyed_unrun(d) {}
    std::atomic<int>* ran;
    std::atomic<int>* destroyed_unrun;
    bool done = false;
    ~Counted() {
      if (!done) destroyed_unrun->fetch_add(1);
    }
  };
  std::atomic<bool> go_on{true};
  std::thread producer([&] {
    while (go_on.load()) {
      auto c = std::make_shared<Counted>(&ran, &destroyed_unrun);
      made.fetch_add(1);
      s->Post([c] {
        c->done = true;
        c->ran->fetch_add(1);
      });
      if (made.load() == 1000) std::this_thread::yield();
    }
  });
  while (made.load() < 1000) s->Poll();
  s->Shutdown();
  go_on = false;
  producer.join();
  EXPECT_EQ(ran.load() + destroyed_unrun.load(), made.load());
  EXPECT_EQ(static_cast<uint64_t>(destroyed_unrun.load()),
            s->metrics().posts_rejected);
}

}  // namespace
}  // namespace io
}  // namespace kqio
