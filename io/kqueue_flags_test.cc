// Conformance tests for the action and behaviour flags of kevent():
// level-triggered vs EV_CLEAR, EV_ONESHOT, EV_DISPATCH, EV_ENABLE and
// EV_DISABLE, EV_KEEPUDATA, re-adding, and which flags come back.  Written
// from the FreeBSD kqueue(2) manual page; see io/kqueue_test_util.h for how
// platform differences are handled.
#include <errno.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "gtest/gtest.h"
#include "io/kqueue_test_util.h"

namespace kqio_test {
namespace {

using KqueueFlagsTest = KqueueTest;

TEST_F(KqueueFlagsTest, LevelTriggeredReportsOnEveryCall) {
  Pipe p;
  p.Put(5);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD), 0);
  for (int i = 0; i < 3; ++i) {
    auto evs = Poll(kq_);
    ASSERT_EQ(evs.size(), 1u) << "call " << i;
    EXPECT_EQ(evs[0].data, 5);
  }
  char buf[5];
  ASSERT_EQ(read(p.r(), buf, 5), 5);
  EXPECT_TRUE(Poll(kq_).empty()) << "the condition no longer holds";
}

TEST_F(KqueueFlagsTest, ClearReportsOnlyNewData) {
  Pipe p;
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD | EV_CLEAR), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  p.Put(2);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 2);
  EXPECT_TRUE(Flags(evs[0]) & EV_CLEAR);
  EXPECT_TRUE(Poll(kq_).empty()) << "no new data";
  p.Put(3);
  evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 5) << "data is what is readable, not what is new";
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueFlagsTest, OneshotDeletesAfterDelivery) {
  Pipe p;
  p.Put(1);
  int tag = 0;
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, &tag), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].udata, &tag);
  EXPECT_TRUE(Flags(evs[0]) & EV_ONESHOT);
  EXPECT_TRUE(Poll(kq_).empty()) << "still readable, but deleted";
  EXPECT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DELETE), ENOENT);
  // It can be added again.
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD | EV_ONESHOT), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
  EXPECT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DELETE), ENOENT);
}

TEST_F(KqueueFlagsTest, DispatchDisablesUntilEnabled) {
  Pipe p;
  p.Put(1);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD | EV_DISPATCH), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_TRUE(Flags(evs[0]) & EV_DISPATCH);
  EXPECT_TRUE(Poll(kq_).empty()) << "disabled after delivery";
  p.Put(1);
  EXPECT_TRUE(Poll(kq_).empty()) << "new data does not enable it";
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ENABLE), 0);
  evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 2);
  EXPECT_TRUE(Poll(kq_).empty()) << "dispatched again";
  // Still registered (disabled), unlike EV_ONESHOT.
  EXPECT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DELETE), 0);
}

TEST_F(KqueueFlagsTest, EnableReportsAConditionThatIsAlreadyTrue) {
  Pipe p;
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD | EV_DISABLE), 0);
  p.Put(4);
  EXPECT_TRUE(Poll(kq_).empty()) << "EV_ADD|EV_DISABLE does not report";
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ENABLE), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].data, 4);
  EXPECT_FALSE(evs[0].flags & (EV_ENABLE | EV_DISABLE | EV_DELETE));
}

TEST_F(KqueueFlagsTest, EnableOfClearKnoteReportsReadyDescriptor) {
  Pipe p;
  ASSERT_EQ(Apply(kq_, p.w(), EVFILT_WRITE, EV_ADD | EV_CLEAR | EV_DISABLE), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  ASSERT_EQ(Apply(kq_, p.w(), EVFILT_WRITE, EV_ENABLE), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueFlagsTest, DisableHidesAPendingEvent) {
  Pipe p;
  p.Put(1);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD), 0);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DISABLE), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ENABLE), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
}

TEST_F(KqueueFlagsTest, DeleteRemovesAPendingEvent) {
  Pipe p;
  p.Put(1);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD, 0, 0, nullptr), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  struct kevent out[1];
  const struct timespec zero = {0, 0};
  // Fetch one of the two so the other has certainly been seen as ready.
  ASSERT_EQ(kevent(kq_, nullptr, 0, out, 1, &zero), 1);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DELETE), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_DELETE), 0);
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueFlagsTest, ReaddUpdatesUdataWithoutDuplicating) {
  Pipe p;
  p.Put(1);
  int first = 0, second = 0;
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD, 0, 0, &first), 0);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD, 0, 0, &second), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].udata, &second);
  // One knote: one delete removes it.
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DELETE), 0);
  EXPECT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DELETE), ENOENT);
}

#if defined(__linux__) || defined(__FreeBSD__)
TEST_F(KqueueFlagsTest, KeepUdataKeepsTheStoredUdata) {
  Pipe p;
  p.Put(1);
  int first = 0, second = 0;
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD, 0, 0, &first), 0);
  ASSERT_EQ(
      Apply(kq_, p.r(), EVFILT_READ, EV_ADD | EV_KEEPUDATA, 0, 0, &second), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].udata, &first);
  EXPECT_FALSE(evs[0].flags & EV_KEEPUDATA) << "an action, not stored";
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DISABLE, 0, 0, &second), 0);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ENABLE, 0, 0, &second), 0);
  evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].udata, &second) << "any other change replaces it";
}
#endif

TEST_F(KqueueFlagsTest, ReaddKeepsTheStoredFlags) {
  Pipe p;
  p.Put(1);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD | EV_CLEAR), 0);
  ASSERT_EQ(Poll(kq_).size(), 1u);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD), 0);
  // Re-adding does not turn EV_CLEAR off (as on every BSD).
  auto evs = Poll(kq_);
  for (const struct kevent& ev : evs) EXPECT_TRUE(Flags(ev) & EV_CLEAR);
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueFlagsTest, ReadAndWriteAreIndependentKnotes) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ScopedFd a(sv[0]), b(sv[1]);
  int rtag = 0, wtag = 0;
  ASSERT_EQ(Apply(kq_, a.get(), EVFILT_READ, EV_ADD, 0, 0, &rtag), 0);
  ASSERT_EQ(Apply(kq_, a.get(), EVFILT_WRITE, EV_ADD, 0, 0, &wtag), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u) << "writable, not readable";
  EXPECT_EQ(evs[0].filter, EVFILT_WRITE);
  EXPECT_EQ(evs[0].udata, &wtag);
  ASSERT_EQ(write(b.get(), "hi", 2), 2);
  evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(CountOf(evs, a.get(), EVFILT_READ), 1);
  EXPECT_EQ(CountOf(evs, a.get(), EVFILT_WRITE), 1);
  for (const struct kevent& ev : evs) {
    EXPECT_EQ(ev.udata, ev.filter == EVFILT_READ ? &rtag : &wtag);
  }
  ASSERT_EQ(Apply(kq_, a.get(), EVFILT_WRITE, EV_DELETE), 0);
  evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].filter, EVFILT_READ);
  EXPECT_EQ(evs[0].data, 2);
}

TEST_F(KqueueFlagsTest, SameIdentOnDifferentFiltersIsIndependent) {
  ASSERT_EQ(Apply(kq_, 7, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  ASSERT_EQ(Apply(kq_, 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 60000), 0);
  ASSERT_EQ(Apply(kq_, 7, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].filter, EVFILT_USER);
  EXPECT_EQ(Apply(kq_, 7, EVFILT_USER, EV_DELETE), 0);
  EXPECT_EQ(Apply(kq_, 7, EVFILT_TIMER, EV_DELETE), 0);
}

TEST_F(KqueueFlagsTest, OneCallNeverReturnsAKnoteTwice) {
  Pipe p;
  p.Put(1);
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  auto evs = Poll(kq_, 8);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(CountOf(evs, p.r(), EVFILT_READ), 1);
  EXPECT_EQ(CountOf(evs, 1, EVFILT_USER), 1);
}

TEST_F(KqueueFlagsTest, ShortEventlistServesEveryLevelEventInTurn) {
  for (uintptr_t id = 1; id <= 3; ++id) {
    ASSERT_EQ(Apply(kq_, id, EVFILT_USER, EV_ADD), 0);
    ASSERT_EQ(Apply(kq_, id, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  }
  // Three level events and room for one: three calls see all three.
  std::vector<struct kevent> seen;
  for (int i = 0; i < 3; ++i) {
    auto evs = Poll(kq_, 1);
    ASSERT_EQ(evs.size(), 1u);
    seen.push_back(evs[0]);
  }
  for (uintptr_t id = 1; id <= 3; ++id) {
    EXPECT_EQ(CountOf(seen, id, EVFILT_USER), 1) << id;
  }
}

}  // namespace
}  // namespace kqio_test
