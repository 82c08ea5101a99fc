// Exercises each external library through its canonical Bazel label, so a
// broken mapping in third_party/ shows up here rather than in kqio's tests.

#include <liburing.h>
#include <uv.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(AbseilTest, StringsAndFormat) {
  EXPECT_EQ(absl::StrCat("kq", 10, "o"), "kq10o");
  EXPECT_EQ(absl::StrFormat("%s=%04d", "fd", 7), "fd=0007");
}

absl::StatusOr<int> ParsePositive(int value) {
  if (value <= 0) return absl::InvalidArgumentError("not positive");
  return value;
}

TEST(AbseilTest, StatusOr) {
  ASSERT_TRUE(ParsePositive(3).ok());
  EXPECT_EQ(*ParsePositive(3), 3);
  absl::StatusOr<int> bad = ParsePositive(-1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("positive"));
}

// A handoff through Mutex + CondVar, which is what TSan must understand
// when Abseil is built from source (--config=tsan).
TEST(AbseilTest, MutexAndCondVarAcrossThreads) {
  absl::Mutex mu;
  absl::CondVar cv;
  int stage = 0;
  std::vector<int> seen;

  std::thread worker([&] {
    absl::MutexLock lock(&mu);
    while (stage != 1) cv.Wait(&mu);
    seen.push_back(1);
    stage = 2;
    cv.Signal();
  });
  {
    absl::MutexLock lock(&mu);
    seen.push_back(0);
    stage = 1;
    cv.Signal();
    while (stage != 2) cv.Wait(&mu);
    seen.push_back(2);
  }
  worker.join();
  EXPECT_THAT(seen, ElementsAre(0, 1, 2));
}

TEST(AbseilTest, FlatHashMap) {
  absl::flat_hash_map<int, std::string> fds;
  for (int i = 0; i < 100; ++i) fds[i] = absl::StrCat("fd", i);
  EXPECT_EQ(fds.size(), 100u);
  EXPECT_EQ(fds.at(42), "fd42");
  EXPECT_FALSE(fds.contains(100));
}

TEST(AbseilTest, Time) {
  const absl::Time start = absl::Now();
  absl::SleepFor(absl::Milliseconds(5));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(5));
  EXPECT_EQ(absl::ToInt64Milliseconds(absl::Seconds(2)), 2000);
  EXPECT_EQ(absl::FormatTime("%Y", absl::FromUnixSeconds(0), absl::UTCTimeZone()),
            "1970");
}

TEST(GoogleMockTest, Matchers) {
  std::vector<int> v = {3, 1, 2};
  EXPECT_THAT(v, ::testing::UnorderedElementsAre(1, 2, 3));
  EXPECT_THAT(v, ::testing::Contains(::testing::Gt(2)));
}

// True when nothing on this host is known to block io_uring: the kernel knob
// (Linux >= 6.6) says enabled and no seccomp filter (as containers use) is on.
bool IoUringExpectedToWork() {
  std::ifstream knob("/proc/sys/kernel/io_uring_disabled");
  int disabled = -1;
  if (!(knob >> disabled) || disabled != 0) return false;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Seccomp:", 0) == 0) return std::stoi(line.substr(8)) == 0;
  }
  return false;
}

TEST(LiburingTest, QueueInitAndExit) {
  struct io_uring ring;
  const int rc = io_uring_queue_init(8, &ring, 0);
  if (rc == -EPERM || rc == -ENOSYS || rc == -ENOMEM) {
    ASSERT_FALSE(IoUringExpectedToWork())
        << "io_uring_queue_init failed: " << rc;
    GTEST_SKIP() << "io_uring unavailable here: " << rc;
  }
  ASSERT_EQ(rc, 0);

  // A NOP round trip proves the ring really works, not just that it mapped.
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  ASSERT_NE(sqe, nullptr);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data64(sqe, 77);
  ASSERT_EQ(io_uring_submit(&ring), 1);
  struct io_uring_cqe* cqe = nullptr;
  ASSERT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
  EXPECT_EQ(io_uring_cqe_get_data64(cqe), 77u);
  EXPECT_EQ(cqe->res, 0);
  io_uring_cqe_seen(&ring, cqe);
  io_uring_queue_exit(&ring);
}

TEST(LibuvTest, TimerFires) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  uv_timer_t timer;
  ASSERT_EQ(uv_timer_init(&loop, &timer), 0);
  int fired = 0;
  timer.data = &fired;
  ASSERT_EQ(uv_timer_start(
                &timer, [](uv_timer_t* t) { ++*static_cast<int*>(t->data); },
                1, 0),
            0);
  EXPECT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
  EXPECT_EQ(fired, 1);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
