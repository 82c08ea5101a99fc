// ReadFile's route under kAuto (read_file.cc): the pool task while the files
// are cached, the steps while they are not, back again whatever the files'
// size and the fast path's limit; an engine named by the caller or the
// options keeps the steps.  A FaultEngine (without faults) poses as io_uring
// so that opens are never the pool's, with or without io_uring here; a
// stand-in preadv2(RWF_NOWAIT) says whether the page cache is hot.
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "aio/file_service.h"
#include "aio/testing/aio_test_util.h"
#include "aio/testing/fault_engine.h"
#include "aio/testing/file_service_test_peer.h"
#include "gtest/gtest.h"

namespace kqio {
namespace aio {
namespace {

using testing::AioTest;
using testing::Captured;
using testing::TempPath;
using testing::WriteWholeFile;

// Everything is cached, or nothing is (EAGAIN).  Runs on the loop (the fast
// path) and on pool workers (the pool task's first read).
std::atomic<bool> hot{true};
int64_t StandIn(int fd, const struct iovec* iov, int iovcnt, uint64_t off) {
  if (!hot.load()) return -EAGAIN;
  const ssize_t n = preadv(fd, iov, iovcnt, static_cast<off_t>(off));
  return n < 0 ? -int64_t{errno} : n;
}

class RouteTest : public AioTest {
 public:
  void TearDown() override {
    ExpectNothingLeftOpen();
    AioTest::TearDown();
    if (!path_.empty()) unlink(path_.c_str());
  }

  void Make(FileServiceOptions o, const std::string& content) {
    path_ = TempPath("route");
    WriteWholeFile(path_, content);
    o.page_cache_fast_path = true;
    auto fs = FileServiceTestPeer::Create(
        *service_, *pool_, o,
        [&](EngineKind kind, std::unique_ptr<Engine> e)
            -> std::unique_ptr<Engine> {
          if (kind != EngineKind::kUring) return e;
          if (e == nullptr) e = NewPoolEngine(*service_, *pool_);
          return std::make_unique<FaultEngine>(kind, std::move(e), *service_);
        },
        nullptr, StandIn);
    ASSERT_TRUE(fs.ok()) << fs.status();
    files_ = *std::move(fs);
    fd_baseline_ = testing::OpenFdCount();
  }

  // Where there is no RWF_NOWAIT the fast path is off, nothing reports, and
  // ReadFile keeps to the pool task: the route tests have nothing to see.
  bool FastPathOn() const {
    return absl::StartsWith(files_->Capabilities().fast_path, "on");
  }

  void ReadOnce(size_t want, OpOptions opts = OpOptions()) {
    Captured<absl::StatusOr<IoResult>> got;
    files_->ReadFile(path_, got.Callback(), opts);
    ASSERT_TRUE(RunUntil([&] { return got.done(); }));
    ASSERT_TRUE(got.value->ok()) << got.value->status();
    EXPECT_EQ((*got.value)->bytes, want);
  }

  // Cold for 40 files (the steps take over), then hot for 40: the pool task
  // must be back by the end.
  void ColdThenHot(size_t size) {
    hot = true;
    hot = false;
    for (int i = 0; i < 40; ++i) ReadOnce(size);
    ASSERT_GT(files_->metrics().read_file_steps, 0u) << "never left the pool";
    hot = true;
    for (int i = 0; i < 40; ++i) ReadOnce(size);
    const uint64_t tasks = files_->metrics().read_file_tasks;
    ReadOnce(size);
    EXPECT_EQ(files_->metrics().read_file_tasks, tasks + 1)
        << "stuck on the steps although every file is cached\n"
        << files_->metrics().ToString();
  }

  std::string path_;
};

TEST_F(RouteTest, FollowsThePageCache) {
  hot = true;
  const std::string content = "abcdefghijklmnopqrstuvwxyz0123";
  Make(FileServiceOptions(), content);
  if (!FastPathOn()) GTEST_SKIP() << files_->Capabilities().fast_path;
  EXPECT_TRUE(absl::StartsWith(files_->Capabilities().read_file,
                               "by the page cache"))
      << files_->Capabilities().ToString();
  uint64_t tasks = 0, steps = 0;
  // Reads the file `n` times; true if the last `tail` went by `route`.
  auto read_files = [&](int n, int tail, const uint64_t& route) {
    uint64_t before_tail = 0;
    for (int i = 0; i < n; ++i) {
      if (i == n - tail) before_tail = route;
      Captured<absl::StatusOr<IoResult>> got;
      files_->ReadFile(path_, got.Callback());
      EXPECT_TRUE(RunUntil([&] { return got.done(); }));
      EXPECT_EQ(got.calls, 1);
      EXPECT_TRUE(got.value->ok() && (*got.value)->data() == content)
          << got.value->status();
      const FileServiceMetrics m = files_->metrics();
      EXPECT_EQ(m.read_file_tasks + m.read_file_steps, tasks + steps + 1);
      tasks = m.read_file_tasks;
      steps = m.read_file_steps;
    }
    return route - before_tail == static_cast<uint64_t>(tail);
  };
  // Cached: one pool task each.
  EXPECT_TRUE(read_files(5, 5, tasks));
  EXPECT_EQ(steps, 0u);
  // Not cached: the pool tasks report misses, and the steps take over
  // within about eleven files (and stay: their fast path misses too).
  hot = false;
  EXPECT_TRUE(read_files(30, 10, steps));
  EXPECT_GT(tasks, 5u) << "the switch is not instant";
  const FileServiceMetrics cold = files_->metrics();
  EXPECT_GT(cold.fast_path_misses, 0u);
  EXPECT_GT(cold.of(FileOpClass::kRead)
                .submitted[static_cast<size_t>(EngineKind::kUring)],
            0u);
  // Cached again: the steps' fast-path hits bring the pool task back.
  hot = true;
  EXPECT_TRUE(read_files(30, 10, tasks));
  // An engine named by the caller keeps to the steps.
  OpOptions pinned;
  pinned.engine = EngineKind::kUring;
  ReadOnce(content.size(), pinned);
  EXPECT_EQ(files_->metrics().read_file_tasks, tasks);
  EXPECT_EQ(files_->metrics().read_file_steps, steps + 1);
}

// A cached file whose size is a multiple of the page size: the fast path
// reads it all but stops on a page boundary short of the 64 KiB chunk, so
// an engine is asked for the rest (EOF), and OnRead counts a miss.
TEST_F(RouteTest, PageMultipleFileComesBackToThePoolTask) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  Make(FileServiceOptions(), std::string(page, 'p'));
  if (!FastPathOn()) GTEST_SKIP() << files_->Capabilities().fast_path;
  ColdThenHot(page);
}

// fast_path_max_bytes below the 64 KiB first chunk: the steps' first read
// never tries the fast path, so the steps never report at all.
TEST_F(RouteTest, SmallFastPathLimitComesBackToThePoolTask) {
  FileServiceOptions o;
  o.fast_path_max_bytes = 16 * 1024;
  Make(o, "abcdefghijklmnopqrstuvwxyz0123");
  if (!FastPathOn()) GTEST_SKIP() << files_->Capabilities().fast_path;
  ColdThenHot(30);
}

// The options name an engine for a step's class: ReadFile's steps must go
// there, not to the pool task.
TEST_F(RouteTest, AnEngineNamedForAStepKeepsTheSteps) {
  for (FileOpClass c : {FileOpClass::kOpen, FileOpClass::kStat,
                        FileOpClass::kRead, FileOpClass::kClose}) {
    SCOPED_TRACE(FileOpClassName(c));
    FileServiceOptions o;
    o.engines[static_cast<size_t>(c)] = EngineKind::kUring;
    files_.reset();
    Make(o, "abcdefghijklmnopqrstuvwxyz0123");
    EXPECT_TRUE(absl::StartsWith(files_->Capabilities().read_file, "steps"))
        << files_->Capabilities().ToString();
    ReadOnce(30);
    EXPECT_EQ(files_->metrics().read_file_tasks, 0u);
    EXPECT_EQ(files_->metrics().read_file_steps, 1u);
  }
}

}  // namespace
}  // namespace aio
}  // namespace kqio
