// Conformance tests for kqueue()/kevent(): the API itself, the changelist
// (EV_ERROR entries, EV_RECEIPT), the error paths, and fork().  The flags
// are in io/kqueue_flags_test.cc.  Written from the FreeBSD kqueue(2) manual
// page; see io/kqueue_test_util.h for how platform differences are handled.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/event.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "io/kqueue_test_util.h"

namespace kqio_test {
namespace {

using std::chrono::milliseconds;

// ---------------------------------------------------------------------------
// The API.

using KqueueApiTest = KqueueTest;

TEST_F(KqueueApiTest, CreatesDistinctUsableDescriptors) {
  ScopedFd other(kqueue());
  ASSERT_GE(other.get(), 0);
  EXPECT_NE(other.get(), kq_);
  EXPECT_TRUE(Poll(kq_).empty());
  EXPECT_TRUE(Poll(other.get()).empty());
}

// The layout and constants of the manual page, checked where they are
// compiled.
using Kev = struct kevent;
static_assert(
    std::is_same<decltype(std::declval<Kev>().ident), uintptr_t>::value, "");
static_assert(std::is_same<decltype(std::declval<Kev>().filter), short>::value,
              "");
static_assert(
    std::is_same<decltype(std::declval<Kev>().flags), unsigned short>::value,
    "");
static_assert(
    std::is_same<decltype(std::declval<Kev>().fflags), unsigned int>::value,
    "");
static_assert(std::is_same<decltype(std::declval<Kev>().udata), void*>::value,
              "");
static_assert(sizeof(std::declval<Kev>().data) >= sizeof(intptr_t), "");
// Values shared by FreeBSD and macOS.
static_assert(EV_ADD == 0x1 && EV_DELETE == 0x2 && EV_ENABLE == 0x4 &&
                  EV_DISABLE == 0x8 && EV_ONESHOT == 0x10 && EV_CLEAR == 0x20 &&
                  EV_RECEIPT == 0x40 && EV_DISPATCH == 0x80 &&
                  EV_ERROR == 0x4000 && EV_EOF == 0x8000,
              "");
static_assert(EVFILT_READ == -1 && EVFILT_WRITE == -2 && EVFILT_AIO == -3 &&
                  EVFILT_SIGNAL == -6 && EVFILT_TIMER == -7,
              "");
#if defined(__linux__) || defined(__FreeBSD__)
static_assert(EVFILT_USER == -11, "FreeBSD's value");
static_assert(sizeof(std::declval<Kev>().ext) == 4 * sizeof(uint64_t),
              "FreeBSD 12's ext[4]");
#endif
static_assert(NOTE_FFCTRLMASK == (NOTE_FFAND | NOTE_FFOR | NOTE_FFCOPY), "");
static_assert((NOTE_FFLAGSMASK & (NOTE_FFCTRLMASK | NOTE_TRIGGER)) == 0, "");

TEST_F(KqueueApiTest, EvSetFillsEveryFieldAndEvaluatesItsPointerOnce) {
  struct kevent kevs[2];
  memset(kevs, 0xa5, sizeof(kevs));
  int tag = 0;
  struct kevent* p = kevs;
  EV_SET(p++, 42, EVFILT_READ, EV_ADD | EV_CLEAR, NOTE_LOWAT, -7, &tag);
#if defined(__linux__) || defined(__FreeBSD__)
  EXPECT_EQ(p, kevs + 1) << "the first argument is evaluated once";
#endif
  EXPECT_EQ(kevs[0].ident, 42u);
  EXPECT_EQ(kevs[0].filter, EVFILT_READ);
  EXPECT_EQ(kevs[0].flags, EV_ADD | EV_CLEAR);
  EXPECT_EQ(kevs[0].fflags, static_cast<unsigned>(NOTE_LOWAT));
  EXPECT_EQ(kevs[0].data, -7);
  EXPECT_EQ(kevs[0].udata, &tag);
#if defined(__linux__) || defined(__FreeBSD__)
  for (uint64_t ext : kevs[0].ext) EXPECT_EQ(ext, 0u);
#endif
}

TEST_F(KqueueApiTest, ChangesAndWaitInOneCall) {
  Pipe p;
  p.Put(3);
  int tag = 0;
  struct kevent change = MakeEvent(p.r(), EVFILT_READ, EV_ADD, 0, 0, &tag);
  struct kevent out[4];
  const struct timespec ts = ToTimespec(kSafety);
  ASSERT_EQ(kevent(kq_, &change, 1, out, 4, &ts), 1);
  EXPECT_EQ(out[0].ident, static_cast<uintptr_t>(p.r()));
  EXPECT_EQ(out[0].filter, EVFILT_READ);
  EXPECT_EQ(out[0].data, 3);
  EXPECT_EQ(out[0].udata, &tag);
  EXPECT_EQ(Flags(out[0]), 0);
#ifdef __linux__
  EXPECT_TRUE(out[0].flags & EV_ADD) << "kqio keeps EV_ADD (<sys/event.h>)";
#endif
}

TEST_F(KqueueApiTest, ChangelistMayBeTheEventlist) {
  Pipe p;
  p.Put(1);
  struct kevent kevs[2];
  EV_SET(&kevs[0], p.r(), EVFILT_READ, EV_ADD, 0, 0, nullptr);
  EV_SET(&kevs[1], p.w(), EVFILT_WRITE, EV_ADD, 0, 0, nullptr);
  const struct timespec ts = ToTimespec(kSafety);
  int n = kevent(kq_, kevs, 2, kevs, 2, &ts);
  ASSERT_GE(n, 1);
  // Both are ready; whatever came back is one of the two registrations.
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE((kevs[i].ident == static_cast<uintptr_t>(p.r()) &&
                 kevs[i].filter == EVFILT_READ) ||
                (kevs[i].ident == static_cast<uintptr_t>(p.w()) &&
                 kevs[i].filter == EVFILT_WRITE));
    EXPECT_FALSE(kevs[i].flags & EV_ERROR);
  }
  // Neither change was lost: both are still registered.
  EXPECT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DELETE), 0);
  EXPECT_EQ(Apply(kq_, p.w(), EVFILT_WRITE, EV_DELETE), 0);
}

TEST_F(KqueueApiTest, ZeroTimeoutPollsAndTimeoutIsNotCutShort) {
  EXPECT_TRUE(Poll(kq_).empty());
  struct kevent out[1];
  const struct timespec ts = ToTimespec(milliseconds(30));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(kevent(kq_, nullptr, 0, out, 1, &ts), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(30));
}

TEST_F(KqueueApiTest, NoEventlistMeansNoWait) {
  // With nevents == 0 kevent() only applies the changes, even with no
  // timeout at all.
  Pipe p;
  struct kevent change = MakeEvent(p.r(), EVFILT_READ, EV_ADD);
  EXPECT_EQ(kevent(kq_, &change, 1, nullptr, 0, nullptr), 0);
  EXPECT_EQ(kevent(kq_, nullptr, 0, nullptr, 0, nullptr), 0);
}

TEST_F(KqueueApiTest, UdataAndExtAreEchoed) {
  Pipe p;
  p.Put(1);
  int tag = 0;
  struct kevent change = MakeEvent(p.r(), EVFILT_READ, EV_ADD, 0, 0, &tag);
#if defined(__linux__) || defined(__FreeBSD__)
  // FreeBSD passes ext[2] and ext[3] through; kqio echoes all four.
  change.ext[2] = 0x1122334455667788u;
  change.ext[3] = 99;
#ifdef __linux__
  change.ext[0] = 7;
  change.ext[1] = 8;
#endif
#endif
  ASSERT_EQ(Apply(kq_, change), 0);
  auto evs = Wait(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].udata, &tag);
#if defined(__linux__) || defined(__FreeBSD__)
  EXPECT_EQ(evs[0].ext[2], 0x1122334455667788u);
  EXPECT_EQ(evs[0].ext[3], 99u);
#ifdef __linux__
  EXPECT_EQ(evs[0].ext[0], 7u);
  EXPECT_EQ(evs[0].ext[1], 8u);
#endif
#endif
}

TEST(KqueueCloseTest, CloseReleasesEveryInternalDescriptor) {
  const int before = OpenFdCount();
  ASSERT_GE(before, 0);
  Pipe p;
  const int with_pipe = OpenFdCount();
  int kq = kqueue();
  ASSERT_GE(kq, 0);
  p.Put(1);
  // One source of every kind: descriptor, timer, user event; then a blocking
  // wait, which makes the queue create its wake-up descriptor.
  ASSERT_EQ(Apply(kq, p.r(), EVFILT_READ, EV_ADD), 0);
  ASSERT_EQ(Apply(kq, p.w(), EVFILT_WRITE, EV_ADD | EV_CLEAR), 0);
  ASSERT_EQ(Apply(kq, 1, EVFILT_TIMER, EV_ADD, 0, 60000), 0);
  ASSERT_EQ(Apply(kq, 2, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 60000), 0);
  ASSERT_EQ(Apply(kq, 3, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  EXPECT_FALSE(Wait(kq, 4, milliseconds(1)).empty());
  ASSERT_EQ(Apply(kq, p.r(), EVFILT_READ, EV_DELETE), 0);
  ASSERT_EQ(Apply(kq, p.w(), EVFILT_WRITE, EV_DELETE), 0);
  EXPECT_TRUE(Wait(kq, 4, milliseconds(5)).empty());
  EXPECT_EQ(close(kq), 0);
  EXPECT_EQ(OpenFdCount(), with_pipe);
  p.read_end.reset();
  p.write_end.reset();
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(KqueueCloseTest, ManyQueuesOpenAtOnceAreAllReleased) {
  const int before = OpenFdCount();
  std::vector<int> kqs;
  for (int i = 0; i < 50; ++i) {
    int kq = kqueue();
    ASSERT_GE(kq, 0) << strerror(errno);
    ASSERT_EQ(Apply(kq, 1, EVFILT_TIMER, EV_ADD, 0, 60000), 0);
    kqs.push_back(kq);
  }
  for (int kq : kqs) EXPECT_EQ(close(kq), 0);
  EXPECT_EQ(OpenFdCount(), before);
}

// ---------------------------------------------------------------------------
// Errors.

using KqueueErrorTest = KqueueTest;

TEST_F(KqueueErrorTest, BadQueueDescriptorIsEbadf) {
  struct kevent out[1];
  const struct timespec zero = {0, 0};
  errno = 0;
  EXPECT_EQ(kevent(-1, nullptr, 0, out, 1, &zero), -1);
  EXPECT_EQ(errno, EBADF);
  Pipe p;  // open, but not a kqueue
  errno = 0;
  EXPECT_EQ(kevent(p.r(), nullptr, 0, out, 1, &zero), -1);
  EXPECT_EQ(errno, EBADF);
  struct kevent change = MakeEvent(1, EVFILT_USER, EV_ADD);
  errno = 0;
  EXPECT_EQ(kevent(p.w(), &change, 1, nullptr, 0, &zero), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(KqueueErrorTest, ClosedQueueIsEbadfEvenWhenItsNumberIsReused) {
  const int old = kq_;
  ASSERT_EQ(close(kq_), 0);
  kq_ = -1;
  struct kevent out[1];
  const struct timespec zero = {0, 0};
  errno = 0;
  EXPECT_EQ(kevent(old, nullptr, 0, out, 1, &zero), -1);
  EXPECT_EQ(errno, EBADF);
  // The number now names a pipe: still not a kqueue, and no change may be
  // applied to the closed one.
  Pipe p;
  ScopedFd reuse(dup2(p.r(), old) == old ? old : -1);
  ASSERT_EQ(reuse.get(), old);
  struct kevent change = MakeEvent(1, EVFILT_USER, EV_ADD);
  errno = 0;
  EXPECT_EQ(kevent(old, &change, 1, out, 1, &zero), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(KqueueErrorTest, NumberOfAClosedQueueReusedAtOnceIsNotAQueue) {
  // No kevent() call in between lets the implementation notice the close:
  // the number is reused right away and used for changes only.
  Pipe p;
  for (int i = 0; i < 200; ++i) {
    int kq = kqueue();
    ASSERT_GE(kq, 0);
    ASSERT_EQ(close(kq), 0);
    ASSERT_EQ(dup2(p.r(), kq), kq) << strerror(errno);
    ScopedFd reuse(kq);
    struct kevent change = MakeEvent(1, EVFILT_USER, EV_ADD);
    errno = 0;
    ASSERT_EQ(kevent(kq, &change, 1, nullptr, 0, nullptr), -1) << i;
    ASSERT_EQ(errno, EBADF) << i;
  }
}

TEST_F(KqueueErrorTest, UnknownFilterIsEinval) {
  EXPECT_EQ(Apply(kq_, 1, -100, EV_ADD), EINVAL);
  EXPECT_EQ(Apply(kq_, 1, 5, EV_ADD), EINVAL);
}

TEST_F(KqueueErrorTest, EnableWithDisableIsEinval) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD), 0);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ENABLE | EV_DISABLE), EINVAL);
  EXPECT_EQ(Apply(kq_, 2, EVFILT_USER, EV_ADD | EV_ENABLE | EV_DISABLE),
            EINVAL);
  // Nothing was created by the failed change.
  EXPECT_EQ(Apply(kq_, 2, EVFILT_USER, EV_DELETE), ENOENT);
}

TEST_F(KqueueErrorTest, DeleteOfUnknownKnoteIsEnoent) {
  Pipe p;
  EXPECT_EQ(Apply(kq_, 1, EVFILT_USER, EV_DELETE), ENOENT);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_DELETE), ENOENT);
  EXPECT_EQ(Apply(kq_, SIGUSR1, EVFILT_SIGNAL, EV_DELETE), ENOENT);
  EXPECT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_DELETE), ENOENT);
  EXPECT_EQ(Apply(kq_, p.w(), EVFILT_WRITE, EV_DELETE), ENOENT);
  // A knote on the other filter of the same descriptor does not count.
  ASSERT_EQ(Apply(kq_, p.r(), EVFILT_READ, EV_ADD), 0);
  EXPECT_EQ(Apply(kq_, p.r(), EVFILT_WRITE, EV_DELETE), ENOENT);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ENABLE), ENOENT);
}

TEST_F(KqueueErrorTest, ChangesOnClosedDescriptorAreEbadf) {
  int fd;
  {
    Pipe p;
    fd = p.r();
  }
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_ADD), EBADF);
  EXPECT_EQ(Apply(kq_, fd, EVFILT_WRITE, EV_ADD), EBADF);
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_DELETE), EBADF);
  EXPECT_EQ(Apply(kq_, 1u << 30, EVFILT_READ, EV_ADD), EBADF);
  EXPECT_EQ(Apply(kq_, ~uintptr_t{0}, EVFILT_WRITE, EV_ADD), EBADF);
}

TEST_F(KqueueErrorTest, BadSignalNumberIsEinval) {
  EXPECT_EQ(Apply(kq_, 0, EVFILT_SIGNAL, EV_ADD), EINVAL);
  EXPECT_EQ(Apply(kq_, 9999, EVFILT_SIGNAL, EV_ADD), EINVAL);
}

TEST_F(KqueueErrorTest, InvalidTimerIsEinval) {
  EXPECT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, 0, -1), EINVAL);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, NOTE_SECONDS, -5), EINVAL);
  EXPECT_EQ(
      Apply(kq_, 1, EVFILT_TIMER, EV_ADD, NOTE_SECONDS | NOTE_USECONDS, 10),
      EINVAL);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_DELETE), ENOENT);
  // Re-adding an existing timer validates too, and keeps the old one.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, 0, 60000), 0);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_ADD, 0, -1), EINVAL);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_TIMER, EV_DELETE), 0);
}

TEST_F(KqueueErrorTest, NegativeCountsAreEinvalAndWriteNothing) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  struct kevent out[2];
  memset(out, 0x5a, sizeof(out));
  struct kevent sentinel;
  memset(&sentinel, 0x5a, sizeof(sentinel));
  const struct timespec zero = {0, 0};
  errno = 0;
  EXPECT_EQ(kevent(kq_, nullptr, 0, out, -1, &zero), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(memcmp(&out[0], &sentinel, sizeof(sentinel)), 0);
  // A change that comes with the bad count is not applied either.
  struct kevent change = MakeEvent(2, EVFILT_USER, EV_ADD);
  errno = 0;
  EXPECT_EQ(kevent(kq_, &change, 1, out, -1, &zero), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(memcmp(&out[0], &sentinel, sizeof(sentinel)), 0);
#ifdef __linux__
  // kqio also rejects a negative nchanges (FreeBSD treats it as none).
  errno = 0;
  EXPECT_EQ(kevent(kq_, &change, -1, out, 2, &zero), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(memcmp(&out[0], &sentinel, sizeof(sentinel)), 0);
#endif
  EXPECT_EQ(Apply(kq_, 2, EVFILT_USER, EV_DELETE), ENOENT);
  // The triggered event is still there, untouched.
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, 1u);
}

TEST_F(KqueueErrorTest, BadTimeoutIsEinval) {
  struct kevent out[1];
  for (const struct timespec& bad :
       {timespec{0, 1000000000}, timespec{0, -1}, timespec{-1, 0}}) {
    errno = 0;
    EXPECT_EQ(kevent(kq_, nullptr, 0, out, 1, &bad), -1)
        << bad.tv_sec << "s " << bad.tv_nsec << "ns";
    EXPECT_EQ(errno, EINVAL);
  }
  // The largest valid nanosecond count is fine.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD), 0);
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  const struct timespec ok = {0, 999999999};
  EXPECT_EQ(kevent(kq_, nullptr, 0, out, 1, &ok), 1);
}

TEST_F(KqueueErrorTest, WriteFilterOnPipeWithoutReaderIsEpipe) {
  Pipe p;
  p.read_end.reset();
  EXPECT_EQ(Apply(kq_, p.w(), EVFILT_WRITE, EV_ADD), EPIPE);
  EXPECT_EQ(Apply(kq_, p.w(), EVFILT_WRITE, EV_DELETE), ENOENT);
}

#if defined(__linux__) || defined(__FreeBSD__)
TEST_F(KqueueErrorTest, ProgramsCannotAddAioKnotes) {
  EXPECT_EQ(Apply(kq_, 1, EVFILT_AIO, EV_ADD), EPERM);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_AIO, EV_DELETE), ENOENT);
}
#endif

TEST_F(KqueueErrorTest, FailedChangeBecomesErrorEntryAndOthersStillApply) {
  int tags[4];
  struct kevent changes[4];
  EV_SET(&changes[0], 7, EVFILT_USER, EV_DELETE, 0, 0, &tags[0]);
  EV_SET(&changes[1], 8, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, &tags[1]);
  EV_SET(&changes[2], 9, -100, EV_ADD, 0, 0, &tags[2]);
  EV_SET(&changes[3], 8, EVFILT_USER, 0, NOTE_TRIGGER, 0, &tags[3]);
  struct kevent out[4];
  const struct timespec ts = ToTimespec(kSafety);
  ASSERT_EQ(kevent(kq_, changes, 4, out, 4, &ts), 2)
      << "only the error entries come back; no wait";
  EXPECT_TRUE(out[0].flags & EV_ERROR);
  EXPECT_EQ(out[0].data, ENOENT);
  EXPECT_EQ(out[0].ident, 7u);
  EXPECT_EQ(out[0].filter, EVFILT_USER);
  EXPECT_EQ(out[0].udata, &tags[0]);
  EXPECT_TRUE(out[1].flags & EV_ERROR);
  EXPECT_EQ(out[1].data, EINVAL);
  EXPECT_EQ(out[1].ident, 9u);
  EXPECT_EQ(out[1].filter, -100);
  EXPECT_EQ(out[1].udata, &tags[2]);
#ifdef __linux__
  // kqio (like macOS) keeps the input flags; FreeBSD sets just EV_ERROR.
  EXPECT_EQ(out[0].flags, EV_DELETE | EV_ERROR);
  EXPECT_EQ(out[1].flags, EV_ADD | EV_ERROR);
#endif
  // The good changes were applied, in order: the add, then the trigger.
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, 8u);
  EXPECT_EQ(evs[0].udata, &tags[3]);
  EXPECT_FALSE(evs[0].flags & EV_ERROR);
}

TEST_F(KqueueErrorTest, FailedChangeWithoutRoomFailsTheCallAndStops) {
  struct kevent changes[3];
  EV_SET(&changes[0], 1, EVFILT_USER, EV_ADD, 0, 0, nullptr);
  EV_SET(&changes[1], 2, EVFILT_USER, EV_DELETE, 0, 0, nullptr);
  EV_SET(&changes[2], 3, EVFILT_USER, EV_ADD, 0, 0, nullptr);
  const struct timespec zero = {0, 0};
  errno = 0;
  EXPECT_EQ(kevent(kq_, changes, 3, nullptr, 0, &zero), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(Apply(kq_, 1, EVFILT_USER, EV_DELETE), 0) << "applied before";
  EXPECT_EQ(Apply(kq_, 3, EVFILT_USER, EV_DELETE), ENOENT)
      << "not applied after the failure";
}

TEST_F(KqueueErrorTest, ErrorEntriesStopWhenTheEventlistIsFull) {
  struct kevent changes[4];
  EV_SET(&changes[0], 1, EVFILT_USER, EV_DELETE, 0, 0, nullptr);
  EV_SET(&changes[1], 2, EVFILT_USER, EV_ADD, 0, 0, nullptr);
  EV_SET(&changes[2], 0, EVFILT_SIGNAL, EV_ADD, 0, 0, nullptr);
  EV_SET(&changes[3], 4, EVFILT_USER, EV_ADD, 0, 0, nullptr);
  struct kevent out[1];
  const struct timespec zero = {0, 0};
  errno = 0;
  EXPECT_EQ(kevent(kq_, changes, 4, out, 1, &zero), -1);
  EXPECT_EQ(errno, EINVAL) << "the error that found no room";
  EXPECT_TRUE(out[0].flags & EV_ERROR);
  EXPECT_EQ(out[0].data, ENOENT);
  EXPECT_EQ(Apply(kq_, 2, EVFILT_USER, EV_DELETE), 0);
  EXPECT_EQ(Apply(kq_, 4, EVFILT_USER, EV_DELETE), ENOENT);
}

TEST_F(KqueueErrorTest, ReceiptReportsEveryChangeAndDoesNotWait) {
  Pipe p;
  p.Put(1);
  struct kevent changes[3];
  EV_SET(&changes[0], p.r(), EVFILT_READ, EV_ADD | EV_RECEIPT, 0, 0, nullptr);
  EV_SET(&changes[1], 5, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, nullptr);
  EV_SET(&changes[2], 6, EVFILT_USER, EV_DELETE | EV_RECEIPT, 0, 0, nullptr);
  struct kevent out[8];
  const struct timespec ts = ToTimespec(kSafety);
  ASSERT_EQ(kevent(kq_, changes, 3, out, 8, &ts), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(out[i].flags & EV_ERROR) << i;
    EXPECT_EQ(out[i].ident, changes[i].ident) << i;
    EXPECT_EQ(out[i].filter, changes[i].filter) << i;
  }
  EXPECT_EQ(out[0].data, 0);
  EXPECT_EQ(out[1].data, 0);
  EXPECT_EQ(out[2].data, ENOENT);
  // The readable pipe was not reported by that call; it is by the next.
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].filter, EVFILT_READ);
  EXPECT_FALSE(evs[0].flags & EV_ERROR);
}

// ---------------------------------------------------------------------------
// fork(): a kqueue is not inherited.

using KqueueForkTest = KqueueTest;

TEST_F(KqueueForkTest, DescriptorIsNotUsableInTheChild) {
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  const int kq = kq_;
  const int status = RunInChild([kq] {
    struct kevent out[1];
    const struct timespec zero = {0, 0};
    errno = 0;
    if (kevent(kq, nullptr, 0, out, 1, &zero) != -1) return 1;
    if (errno != EBADF) return 2;
    struct kevent change;
    EV_SET(&change, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
    if (kevent(kq, &change, 1, nullptr, 0, &zero) != -1 || errno != EBADF) {
      return 3;
    }
    return 0;
  });
  EXPECT_EQ(status, 0) << "1: kevent worked, 2: wrong errno, 3: changes "
                          "applied, <0: child did not exit";
  // The parent's queue is unaffected.
  ASSERT_EQ(Apply(kq_, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
  auto evs = Poll(kq_);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].ident, 1u);
}

}  // namespace
}  // namespace kqio_test
