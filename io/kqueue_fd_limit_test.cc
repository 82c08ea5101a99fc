// Conformance tests for many kqueues and for a full descriptor table: queues
// created and closed from several threads, as many queues as a lowered
// RLIMIT_NOFILE allows (kqueue() then fails with EMFILE and nothing leaks),
// and a queue made before the table filled keeps waiting, waking and firing
// timers.  A binary of its own (split from kqueue_thread_test.cc), so no
// other test shares the process while RLIMIT_NOFILE is lowered.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/event.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "io/kqueue_test_util.h"

namespace kqio_test {
namespace {

using std::chrono::milliseconds;

TEST(KqueueManyQueuesTest, CreateAndCloseConcurrently) {
  const int before = OpenFdCount();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        int kq = kqueue();
        if (kq < 0) {
          ++errors;
          continue;
        }
        if (Apply(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR) != 0 ||
            Apply(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER) != 0 ||
            Poll(kq).size() != 1) {
          ++errors;
        }
        if (close(kq) != 0) ++errors;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(OpenFdCount(), before);
}

// Lowers RLIMIT_NOFILE for the scope of a test.
class ScopedFdLimit final {
 public:
  explicit ScopedFdLimit(rlim_t soft) {
    ok_ = getrlimit(RLIMIT_NOFILE, &old_) == 0;
    struct rlimit low = old_;
    low.rlim_cur = soft;
    ok_ = ok_ && soft <= old_.rlim_max && setrlimit(RLIMIT_NOFILE, &low) == 0;
  }
  ScopedFdLimit(const ScopedFdLimit&) = delete;
  ScopedFdLimit& operator=(const ScopedFdLimit&) = delete;
  ~ScopedFdLimit() {
    if (ok_) setrlimit(RLIMIT_NOFILE, &old_);
  }
  bool ok() const { return ok_; }

 private:
  struct rlimit old_;
  bool ok_ = false;
};

int HighestOpenFd() {
  int highest = -1;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) highest = fd;
  }
  return highest;
}

// Creates queues (each with a timer) until kqueue() fails; returns them.
std::vector<int> CreateUntilFailure(int* err) {
  std::vector<int> kqs;
  for (int i = 0; i < 1000; ++i) {
    int kq = kqueue();
    if (kq < 0) {
      *err = errno;
      return kqs;
    }
    kqs.push_back(kq);
  }
  *err = 0;
  return kqs;
}

TEST(KqueueManyQueuesTest, ManyQueuesUnderALowDescriptorLimit) {
  constexpr int kLimit = 64;
  const int before = OpenFdCount();
  if (HighestOpenFd() >= kLimit / 2) {
    GTEST_SKIP() << "descriptor " << HighestOpenFd()
                 << " is already open; a limit of " << kLimit
                 << " would leave too little room to test";
  }
  {
    ScopedFdLimit limit(kLimit);
    ASSERT_TRUE(limit.ok()) << strerror(errno);
    // Far more queues than the limit allows at once, each with internal
    // descriptors of every kind (epoll set, pipe, wake-up eventfd, timerfd).
    for (int i = 0; i < 1000; ++i) {
      int kq = kqueue();
      ASSERT_GE(kq, 0) << "iteration " << i << ": " << strerror(errno);
      ASSERT_EQ(Apply(kq, 1, EVFILT_TIMER, EV_ADD, 0, 60000), 0) << i;
      ASSERT_EQ(Apply(kq, 2, EVFILT_USER, EV_ADD | EV_CLEAR), 0) << i;
      ASSERT_TRUE(Wait(kq, 1, milliseconds(1)).empty()) << i;
      ASSERT_EQ(close(kq), 0);
    }
    // Up to the limit...
    int err = 0;
    std::vector<int> kqs = CreateUntilFailure(&err);
    EXPECT_EQ(err, EMFILE);
    EXPECT_GE(kqs.size(), 3u);
    const size_t most = kqs.size();
    for (int kq : kqs) ASSERT_EQ(close(kq), 0);
    // ...and, once they are closed, up to the limit again: closing released
    // every internal descriptor in time for the next kqueue().
    kqs = CreateUntilFailure(&err);
    EXPECT_EQ(err, EMFILE);
    EXPECT_EQ(kqs.size(), most);
    for (int kq : kqs) ASSERT_EQ(close(kq), 0);
    int kq = kqueue();
    ASSERT_GE(kq, 0) << strerror(errno);
    ASSERT_EQ(Apply(kq, 1, EVFILT_USER, EV_ADD), 0);
    ASSERT_EQ(Apply(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER), 0);
    EXPECT_EQ(Poll(kq).size(), 1u);
    ASSERT_EQ(close(kq), 0);
  }
  EXPECT_EQ(OpenFdCount(), before);
}

// Opens descriptors until the table is full (EMFILE); returns them.
std::vector<ScopedFd> FillDescriptorTable() {
  std::vector<ScopedFd> fds;
  for (int i = 0; i < 65536; ++i) {
    const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      EXPECT_EQ(errno, EMFILE) << strerror(errno);
      break;
    }
    fds.emplace_back(fd);
  }
  return fds;
}

// A queue made while descriptors were available keeps working once the
// table is full: waiting (blocking, with a timeout), being woken from
// another thread and timers need no new descriptor.  Only a change that
// needs one of its own fails, with EMFILE as its error.
TEST(KqueueDescriptorLimitTest, FullTableLeavesAnExistingQueueWorking) {
  const int before = OpenFdCount();
  const int kq = kqueue();
  ASSERT_GE(kq, 0) << strerror(errno);
  ASSERT_EQ(Apply(kq, 1, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 20), 0);
  ASSERT_EQ(Apply(kq, 2, EVFILT_USER, EV_ADD | EV_CLEAR), 0);
  ASSERT_EQ(Apply(kq, 3, EVFILT_TIMER, EV_ADD, NOTE_MSECONDS, 5), 0);
  {
    ScopedFdLimit limit(static_cast<rlim_t>(HighestOpenFd()) + 8);
    ASSERT_TRUE(limit.ok()) << strerror(errno);
    // Closed before the limit is restored, even when an assertion fails.
    const std::vector<ScopedFd> filler = FillDescriptorTable();
    ASSERT_FALSE(filler.empty());
    // kqueue() needs descriptors: it is what reports the full table.
    errno = 0;
    EXPECT_EQ(kqueue(), -1);
    EXPECT_EQ(errno, EMFILE);
    std::vector<struct kevent> evs(4);

#ifdef __linux__
    // kqio gives each timer a timerfd: adding one now fails, as an EV_ERROR
    // entry when there is room for it, otherwise as the call's error.
    struct kevent change;
    EV_SET(&change, 4, EVFILT_TIMER, EV_ADD, 0, 10, nullptr);
    const struct timespec zero = {0, 0};
    ASSERT_EQ(kevent(kq, &change, 1, evs.data(), 4, &zero), 1);
    EXPECT_TRUE(evs[0].flags & EV_ERROR);
    EXPECT_EQ(evs[0].data, EMFILE);
    EXPECT_EQ(evs[0].ident, 4u);
    errno = 0;
    EXPECT_EQ(kevent(kq, &change, 1, nullptr, 0, &zero), -1);
    EXPECT_EQ(errno, EMFILE);
    EXPECT_EQ(Apply(kq, 4, EVFILT_TIMER, EV_DELETE), ENOENT);
#endif

    // The first wait that blocks (nothing is ready yet).
    struct kevent ev;
    ASSERT_TRUE(WaitFor(kq, 1, EVFILT_TIMER, &ev));
    EXPECT_EQ(ev.data, 1);
    // A periodic timer keeps firing.
    ASSERT_TRUE(WaitFor(kq, 3, EVFILT_TIMER, &ev));
    EXPECT_GE(ev.data, 1);
    ASSERT_EQ(Apply(kq, 3, EVFILT_TIMER, EV_DELETE), 0);
    // A wait that times out.
    const struct timespec brief = {0, 2000000};
    EXPECT_EQ(kevent(kq, nullptr, 0, evs.data(), 4, &brief), 0)
        << strerror(errno);
    // A trigger from another thread, most likely while this one waits.
    std::thread worker([kq] {
      std::this_thread::sleep_for(milliseconds(2));
      EXPECT_EQ(Apply(kq, 2, EVFILT_USER, 0, NOTE_TRIGGER), 0);
    });
    const bool woken = WaitFor(kq, 2, EVFILT_USER, &ev);
    worker.join();
    EXPECT_TRUE(woken);
  }
  // With room again, the same change succeeds.
  EXPECT_EQ(Apply(kq, 4, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1), 0);
  struct kevent ev;
  EXPECT_TRUE(WaitFor(kq, 4, EVFILT_TIMER, &ev));
  ASSERT_EQ(close(kq), 0);
  EXPECT_EQ(OpenFdCount(), before);
}

}  // namespace
}  // namespace kqio_test
