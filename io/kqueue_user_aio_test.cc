// Conformance tests for EVFILT_USER (NOTE_TRIGGER and the fflags operations
// NOTE_FFNOP/FFAND/FFOR/FFCOPY) and, on Linux, for the EVFILT_AIO events
// kqio's engines post with kqio_aio_post() and kqio_aio_watch()
// (io/kqueue_ext.h).
#include <errno.h>
#include <sys/event.h>
#include <unistd.h>

#include <vector>

#include "gtest/gtest.h"
#include "io/kqueue_test_util.h"

#ifdef __linux__
#include <sys/eventfd.h>

#include "io/kqueue_ext.h"
#endif

namespace kqio_test {
namespace {

using std::chrono::milliseconds;

// ---------------------------------------------------------------------------
// EVFILT_USER.

using KqueueUserTest = KqueueTest;

TEST_F(KqueueUserTest, NotReportedUntilTriggered) {
  int tag = 0;
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, &tag), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, &tag), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, 1u);
  EXPECT_EQ(evs[0].filter, EVFILT_USER);
  EXPECT_EQ(evs[0].udata, &tag);
  EXPECT_EQ(evs[0].fflags & ~static_cast<unsigned>(NOTE_FFLAGSMASK), 0u)
      << "neither NOTE_TRIGGER nor the control bits come back";
}

TEST_F(KqueueUserTest, TriggerWithoutAddIsEnoent) {
  EXPECT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), ENOENT);
}

TEST_F(KqueueUserTest, ClearEventIsReportedOncePerTrigger) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  // Several triggers before a wait coalesce into one event.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  }
  EXPECT_EQ(Poll(kq_).size(), 1u);
  EXPECT_TRUE(Poll(kq_).empty());
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueUserTest, WithoutClearStaysTriggeredUntilCleared) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Poll(kq_).size(), 1u) << i;
  // A change carrying EV_CLEAR resets the trigger.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_CLEAR), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
  EXPECT_EQ(Poll(kq_).size(), 1u) << "still level: EV_CLEAR was not stored";
}

TEST_F(KqueueUserTest, FflagsOperations) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0x10), 0);
  struct Step {
    unsigned int fflags;
    unsigned int expect;
  };
  const Step steps[] = {
      {NOTE_FFNOP | 0xff, 0x10},     // ignored
      {NOTE_FFOR | 0x3, 0x13},       // or'ed in
      {NOTE_FFAND | 0x12, 0x12},     // and'ed in
      {NOTE_FFCOPY | 0x404, 0x404},  // replaced
      {NOTE_FFOR | 0x00ff0000, 0x00ff0404},
      {NOTE_FFCOPY | 0x00ffffff, 0x00ffffff},  // every user flag
      {NOTE_FFAND | 0, 0},
  };
  for (const Step& step : steps) {
    ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, step.fflags | NOTE_TRIGGER), 0);
    auto evs = Poll(kq_);
    ASSERT_EQ(evs.size(), 1u) << std::hex << step.fflags;
    EXPECT_EQ(evs[0].fflags, step.expect) << std::hex << step.fflags;
  }
  // The stored flags change without a trigger too, and are reported by the
  // next one.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_FFCOPY | 0x7), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].fflags, 0x7u);
}

TEST_F(KqueueUserTest, FlagsAboveTheMaskAreNotStored) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  // 0x0f000000 includes NOTE_TRIGGER and three bits outside the user mask.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_FFCOPY | 0x0f000001), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].fflags, 0x1u);
}

#if defined(__linux__) || defined(__APPLE__)
TEST_F(KqueueUserTest, AddWithTriggerTriggers) {
  // macOS and kqio; FreeBSD ignores NOTE_TRIGGER at creation.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
}
#endif

TEST_F(KqueueUserTest, OneshotIsDeletedAfterDelivery) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_ONESHOT), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
  EXPECT_TRUE(Poll(kq_).empty());
  EXPECT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), ENOENT);
}

TEST_F(KqueueUserTest, DispatchDisablesUntilEnabled) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR | EV_DISPATCH), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  EXPECT_TRUE(Poll(kq_).empty()) << "disabled by the delivery";
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ENABLE), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u) << "the trigger made while disabled";
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueUserTest, DisabledEventIsNotReportedUntilEnabled) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR | EV_DISABLE), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ENABLE), 0);
  EXPECT_EQ(Poll(kq_).size(), 1u);
}

TEST_F(KqueueUserTest, DeleteDropsATriggeredEvent) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_DELETE), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  // A new knote with the same ident starts untriggered.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueUserTest, ManyEventsWithASmallEventlist) {
  constexpr int kEvents = 10;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_EQ(Apply(kq_, 100 + i, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
    ASSERT_EQ(Apply(kq_, 100 + i, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  }
  std::vector<struct kevent> seen;
  for (int call = 0; call < kEvents; ++call) {
    auto evs = Poll(kq_, 3);
    if (evs.empty()) break;
    seen.insert(seen.end(), evs.begin(), evs.end());
  }
  ASSERT_EQ(seen.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) {
    EXPECT_EQ(CountOf(seen, 100 + i, EVFILT_USER), 1) << i;
  }
}

TEST_F(KqueueUserTest, TriggerWakesABlockedWaitInTheSameChangelist) {
  // A change that triggers and a wait in one call: the event comes back
  // from that same call.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  struct kevent change = MakeEvent(1, EVFILT_USER, 0, NOTE_TRIGGER);
  struct kevent out[2];
  const struct timespec ts = ToTimespec(kSafety);
  ASSERT_EQ(kevent(kq_, &change, 1, out, 2, &ts), 1);
  EXPECT_EQ(out[0].ident, 1u);
  EXPECT_FALSE(out[0].flags & EV_ERROR);
}

// ---------------------------------------------------------------------------
// EVFILT_AIO (Linux): events posted by kqio's engines.

#ifdef __linux__
using KqueueAioTest = KqueueTest;

TEST_F(KqueueAioTest, EveryPostIsOneEvent) {
  int tags[3];
  for (int i = 0; i < 3; ++i) {
    struct kevent ev =
        MakeEvent(7, EVFILT_AIO, 0, 0x10u + i, 1000 + i, &tags[i]);
    ASSERT_EQ(kqio_aio_post(kq_, &ev), 0);
  }
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 3u) << "posts are never coalesced";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(evs[i].ident, 7u);
    EXPECT_EQ(evs[i].filter, EVFILT_AIO);
    EXPECT_EQ(evs[i].fflags, 0x10u + i);
    EXPECT_EQ(evs[i].data, 1000 + i);
    EXPECT_EQ(evs[i].udata, &tags[i]);
    EXPECT_EQ(evs[i].flags, EV_ADD | EV_CLEAR | EV_ONESHOT)
        << "as io/kqueue_ext.h documents";
  }
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueAioTest, PostWakesABlockedWaiterAndSmallEventlist) {
  for (int i = 0; i < 5; ++i) {
    struct kevent ev = MakeEvent(i, EVFILT_AIO, 0, 0, i);
    ASSERT_EQ(kqio_aio_post(kq_, &ev), 0);
  }
  std::vector<struct kevent> seen;
  for (int call = 0; call < 5 && seen.size() < 5; ++call) {
    auto evs = Poll(kq_, 2);
    seen.insert(seen.end(), evs.begin(), evs.end());
  }
  ASSERT_EQ(seen.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(seen[i].data, i) << "in post order";
}

TEST_F(KqueueAioTest, PostErrors) {
  struct kevent ev = MakeEvent(1, EVFILT_AIO, 0);
  errno = 0;
  EXPECT_EQ(kqio_aio_post(-1, &ev), -1);
  EXPECT_EQ(errno, EBADF);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ScopedFd r(p[0]), w(p[1]);
  errno = 0;
  EXPECT_EQ(kqio_aio_post(r.get(), &ev), -1) << "not a kqueue";
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(kqio_aio_post(kq_, nullptr), -1);
  EXPECT_EQ(errno, EFAULT);
}

TEST_F(KqueueAioTest, ProgramsCannotAddButCanDeleteWatchedKnotes) {
  EXPECT_EQ(Apply(kq_, 1, EVFILT_AIO, EV_ADD), EPERM);
  ScopedFd efd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_GE(efd.get(), 0);
  struct kevent change = MakeEvent(1, EVFILT_AIO, EV_ADD);
  ASSERT_EQ(kqio_aio_watch(kq_, efd.get(), &change), 0);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_AIO, EV_DELETE), 0);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_AIO, EV_DELETE), ENOENT);
}

TEST_F(KqueueAioTest, WatchIsEdgeTriggeredOnTheDescriptor) {
  ScopedFd efd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_GE(efd.get(), 0);
  int tag = 0;
  struct kevent change = MakeEvent(42, EVFILT_AIO, EV_ADD, 0, 0, &tag);
  ASSERT_EQ(kqio_aio_watch(kq_, efd.get(), &change), 0);
  EXPECT_TRUE(Poll(kq_).empty());
  uint64_t one = 1;
  ASSERT_EQ(write(efd.get(), &one, sizeof(one)), 8);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, 42u);
  EXPECT_EQ(evs[0].filter, EVFILT_AIO);
  EXPECT_EQ(evs[0].udata, &tag);
  EXPECT_TRUE(Poll(kq_).empty()) << "still readable, but edge-triggered";
  ASSERT_EQ(write(efd.get(), &one, sizeof(one)), 8);
  EXPECT_EQ(Wait(kq_).size(), 1u) << "a new completion is a new edge";

  // Disabled: not reported; the descriptor stays the caller's.
  change.flags = EV_DISABLE;
  ASSERT_EQ(kqio_aio_watch(kq_, efd.get(), &change), 0);
  ASSERT_EQ(write(efd.get(), &one, sizeof(one)), 8);
  EXPECT_TRUE(Wait(kq_, 4, milliseconds(10)).empty());
  change.flags = EV_DELETE;
  ASSERT_EQ(kqio_aio_watch(kq_, efd.get(), &change), 0);
  ASSERT_EQ(write(efd.get(), &one, sizeof(one)), 8);
  EXPECT_TRUE(Wait(kq_, 4, milliseconds(10)).empty());
  errno = 0;
  EXPECT_EQ(kqio_aio_watch(kq_, efd.get(), &change), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(KqueueAioTest, WatchErrors) {
  ScopedFd efd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_GE(efd.get(), 0);
  struct kevent change = MakeEvent(1, EVFILT_USER, EV_ADD);
  errno = 0;
  EXPECT_EQ(kqio_aio_watch(kq_, efd.get(), &change), -1);
  EXPECT_EQ(errno, EINVAL) << "the filter must be EVFILT_AIO";
  change.filter = EVFILT_AIO;
  errno = 0;
  EXPECT_EQ(kqio_aio_watch(kq_, -1, &change), -1);
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(kqio_aio_watch(-1, efd.get(), &change), -1);
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(kqio_aio_watch(kq_, efd.get(), nullptr), -1);
  EXPECT_EQ(errno, EFAULT);
}

TEST(KqueueAioCloseTest, ClosingTheQueueLeavesTheWatchedDescriptorOpen) {
  const int before = OpenFdCount();
  ScopedFd efd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_GE(efd.get(), 0);
  int kq = kqueue();
  ASSERT_GE(kq, 0);
  struct kevent change = MakeEvent(1, EVFILT_AIO, EV_ADD);
  ASSERT_EQ(kqio_aio_watch(kq, efd.get(), &change), 0);
  struct kevent posted = MakeEvent(2, EVFILT_AIO, 0);
  ASSERT_EQ(kqio_aio_post(kq, &posted), 0);  // never collected
  ASSERT_EQ(close(kq), 0);
  EXPECT_EQ(OpenFdCount(), before + 1);
  uint64_t one = 1;
  EXPECT_EQ(write(efd.get(), &one, sizeof(one)), 8) << "still the caller's";
  efd.reset();
  EXPECT_EQ(OpenFdCount(), before);
}
#endif  // __linux__

}  // namespace
}  // namespace kqio_test
