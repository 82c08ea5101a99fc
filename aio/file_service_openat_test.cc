// FileService::OpenAt: opening a path beneath a directory without ever
// leaving it, on io_uring (IORING_OP_OPENAT2), on the pool (openat2) and on
// the pool's portable component walk (forced by an open_resolved that says
// ENOSYS).  The same table of paths runs on all three, so the walk is shown
// to answer as openat2 does; then the ladder, deadlines and races.  Every
// test ends with nothing pending and no descriptor left open.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "aio/file_service.h"
#include "aio/testing/aio_test_util.h"
#include "aio/testing/fault_engine.h"
#include "aio/testing/file_service_test_peer.h"
#include "gtest/gtest.h"
#include "io/errno_status.h"

namespace kqio {
namespace aio {
namespace {

using testing::AioTest;
using testing::Captured;
using testing::MakeTempTree;
using testing::ReadAll;
using testing::RemoveTree;
using testing::WriteWholeFile;

enum class Mode { kUring, kPool, kWalk };

std::string ModeName(const ::testing::TestParamInfo<Mode>& info) {
  switch (info.param) {
    case Mode::kUring:
      return "Uring";
    case Mode::kPool:
      return "Pool";
    case Mode::kWalk:
      return "Walk";
  }
  return "?";
}

// A kernel without a resolve-beneath open: the pool walks.
int NoOpenResolved(int, const char*, int, mode_t, uint32_t) {
  errno = ENOSYS;
  return -1;
}

// The tree every test uses:
//   top/secret                      outside the root
//   top/root/file.txt               "hello"
//   top/root/a/b/c                  "nested"
//   top/root/a/b/back -> ../../file.txt   relative, stays inside
//   top/root/in_link -> a/b         relative, stays inside
//   top/root/file_link -> file.txt
//   top/root/etc_link -> /etc       absolute
//   top/root/up -> ../..            relative, climbs out
//   top/root/secret_link -> ../secret
//   top/root/dangling -> ../created_outside   (for O_CREAT)
//   top/root/loop1 -> loop2, loop2 -> loop1
//   top/root/fifo                   a FIFO
class OpenAtTest : public AioTest, public ::testing::WithParamInterface<Mode> {
 public:
  void SetUp() override {
    AioTest::SetUp();
    top_ = MakeTempTree("openat");
    ASSERT_FALSE(top_.empty());
    root_ = top_ + "/root";
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/a").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/a/b").c_str(), 0755), 0);
    WriteWholeFile(top_ + "/secret", "secret");
    WriteWholeFile(root_ + "/file.txt", "hello");
    WriteWholeFile(root_ + "/a/b/c", "nested");
    Link("../../file.txt", "a/b/back");
    Link("a/b", "in_link");
    Link("file.txt", "file_link");
    Link("/etc", "etc_link");
    Link("../..", "up");
    Link("../secret", "secret_link");
    Link("../created_outside", "dangling");
    Link("loop2", "loop1");
    Link("loop1", "loop2");
    ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0600), 0);
    root_fd_ = open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_fd_, 0);
    Make();
    if (GetParam() == Mode::kUring && !IsUringAvailable()) {
      GTEST_SKIP() << "io_uring unavailable here";
    }
  }

  void TearDown() override {
    ExpectNothingLeftOpen();
    AioTest::TearDown();
    if (root_fd_ >= 0) close(root_fd_);
    RemoveTree(top_);
  }

  void Link(const std::string& target, const std::string& name) {
    ASSERT_EQ(symlink(target.c_str(), (root_ + "/" + name).c_str()), 0) << name;
  }

  // A FileService on this test's engine; `wrap` as for FileServiceTestPeer.
  void Make(FileServiceTestPeer::Wrap wrap = nullptr) {
    files_.reset();
    FileServiceOptions o;
    o.engines.fill(GetParam() == Mode::kUring ? EngineKind::kUring
                                              : EngineKind::kPool);
    static const BlockingCalls kWalkCalls = {nullptr, nullptr, NoOpenResolved};
    auto fs = FileServiceTestPeer::Create(
        *service_, *pool_, o, std::move(wrap),
        GetParam() == Mode::kWalk ? &kWalkCalls : nullptr);
    ASSERT_TRUE(fs.ok()) << fs.status();
    files_ = *std::move(fs);
    fd_baseline_ = testing::OpenFdCount();
  }

  absl::StatusOr<File> OpenAt(const std::string& path,
                              OpenAtOptions at = OpenAtOptions(),
                              int flags = O_RDONLY, mode_t mode = 0,
                              int dir_fd = -2) {
    Captured<absl::StatusOr<File>> got;
    files_->OpenAt(dir_fd == -2 ? root_fd_ : dir_fd, path, flags, mode, at,
                   got.Callback());
    EXPECT_EQ(got.calls, 0) << "never inside the call that started it";
    EXPECT_TRUE(RunUntil([&] { return got.done(); }));
    EXPECT_EQ(got.calls, 1) << "exactly one completion";
    if (!got.value.has_value()) {
      return absl::InternalError("no completion");
    }
    return *std::move(got.value);
  }

  // The content of `path` opened beneath the root, or the error's errno
  // ("errno 18") with the message checked.
  std::string Outcome(const std::string& path,
                      OpenAtOptions at = OpenAtOptions(),
                      int flags = O_RDONLY) {
    absl::StatusOr<File> f = OpenAt(path, at, flags);
    if (!f.ok()) {
      EXPECT_TRUE(absl::StrContains(f.status().message(),
                                    absl::StrCat("openat(", path, ")")))
          << f.status();
      return absl::StrCat("errno ", io::StatusErrno(f.status()));
    }
    EXPECT_EQ(f->path(), path.empty() ? "." : path);
    struct stat st;
    EXPECT_EQ(fstat(f->fd(), &st), 0);
    if (S_ISDIR(st.st_mode)) return "<dir>";
    return ReadAll(f->fd());
  }

  static std::string Err(int e) { return absl::StrCat("errno ", e); }

  std::string top_, root_;
  int root_fd_ = -1;
};

INSTANTIATE_TEST_SUITE_P(Engines, OpenAtTest,
                         ::testing::Values(Mode::kUring, Mode::kPool,
                                           Mode::kWalk),
                         ModeName);

TEST_P(OpenAtTest, OpensFilesAndDirectoriesBeneathTheRoot) {
  EXPECT_EQ(Outcome("file.txt"), "hello");
  EXPECT_EQ(Outcome("a/b/c"), "nested");
  EXPECT_EQ(Outcome("a//b/./c"), "nested");
  EXPECT_EQ(Outcome("a/../file.txt"), "hello") << "\"..\" inside the root";
  EXPECT_EQ(Outcome("a/b/"), "<dir>");
  EXPECT_EQ(Outcome("a/.."), "<dir>");
  // "" and "." are the root itself.
  for (const char* self : {"", "."}) {
    absl::StatusOr<File> f = OpenAt(self);
    ASSERT_TRUE(f.ok()) << f.status();
    struct stat got, want;
    ASSERT_EQ(fstat(f->fd(), &got), 0);
    ASSERT_EQ(stat(root_.c_str(), &want), 0);
    EXPECT_EQ(got.st_ino, want.st_ino);
    EXPECT_EQ(got.st_dev, want.st_dev);
    EXPECT_NE(fcntl(f->fd(), F_GETFD) & FD_CLOEXEC, 0) << "O_CLOEXEC added";
  }
}

TEST_P(OpenAtTest, RefusesEveryWayOut) {
  EXPECT_EQ(Outcome("../secret"), Err(EXDEV));
  EXPECT_EQ(Outcome("a/../../secret"), Err(EXDEV));
  EXPECT_EQ(Outcome(".."), Err(EXDEV));
  EXPECT_EQ(Outcome("/etc/passwd"), Err(EXDEV));
  EXPECT_EQ(Outcome(top_ + "/secret"), Err(EXDEV)) << "absolute, even here";
  EXPECT_EQ(Outcome("etc_link/passwd"), Err(EXDEV));
  EXPECT_EQ(Outcome("etc_link"), Err(EXDEV));
  EXPECT_EQ(Outcome("up/secret"), Err(EXDEV));
  EXPECT_EQ(Outcome("up"), Err(EXDEV));
  EXPECT_EQ(Outcome("secret_link"), Err(EXDEV));
  EXPECT_EQ(Outcome("in_link/../../../secret"), Err(EXDEV));
  // Under no_symlinks, a link is refused before it could lead anywhere.
  OpenAtOptions strict;
  strict.no_symlinks = true;
  EXPECT_EQ(Outcome("etc_link/passwd", strict), Err(ELOOP));
  EXPECT_EQ(Outcome("../secret", strict), Err(EXDEV));
}

TEST_P(OpenAtTest, CreatingThroughAnEscapingLinkCreatesNothing) {
  absl::StatusOr<File> f =
      OpenAt("dangling", OpenAtOptions(), O_WRONLY | O_CREAT, 0600);
  EXPECT_EQ(io::StatusErrno(f.status()), EXDEV) << f.status();
  struct stat st;
  EXPECT_NE(lstat((top_ + "/created_outside").c_str(), &st), 0);
}

TEST_P(OpenAtTest, CreatesBeneathTheRootWithTheMode) {
  const mode_t mask = umask(0);
  umask(mask);
  absl::StatusOr<File> f =
      OpenAt("a/new.txt", OpenAtOptions(), O_WRONLY | O_CREAT | O_EXCL, 0640);
  ASSERT_TRUE(f.ok()) << f.status();
  struct stat st;
  ASSERT_EQ(stat((root_ + "/a/new.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640 & ~mask);
  // A mode without O_CREAT is ignored (openat2 itself would say EINVAL).
  EXPECT_EQ(Outcome("file.txt"), "hello");
  absl::StatusOr<File> again =
      OpenAt("a/new.txt", OpenAtOptions(), O_RDONLY, 0644);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST_P(OpenAtTest, InTreeSymlinksFollowUnlessNoSymlinks) {
  EXPECT_EQ(Outcome("in_link/c"), "nested");
  EXPECT_EQ(Outcome("file_link"), "hello");
  EXPECT_EQ(Outcome("a/b/back"), "hello") << "climbs, but stays inside";
  OpenAtOptions strict;
  strict.no_symlinks = true;
  EXPECT_EQ(Outcome("in_link/c", strict), Err(ELOOP));
  EXPECT_EQ(Outcome("file_link", strict), Err(ELOOP));
  EXPECT_EQ(Outcome("a/b/back", strict), Err(ELOOP));
  EXPECT_EQ(Outcome("a/b/c", strict), "nested");
  // The caller's own O_NOFOLLOW refuses a final link, as open() does.
  EXPECT_EQ(Outcome("file_link", OpenAtOptions(), O_RDONLY | O_NOFOLLOW),
            Err(ELOOP));
  // O_PATH follows a final link unless O_NOFOLLOW says otherwise.
  absl::StatusOr<File> f = OpenAt("file_link", OpenAtOptions(), O_PATH);
  ASSERT_TRUE(f.ok()) << f.status();
  struct stat st;
  ASSERT_EQ(fstat(f->fd(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_P(OpenAtTest, ErrorsKeepTheirErrno) {
  EXPECT_EQ(Outcome("nope"), Err(ENOENT));
  EXPECT_EQ(Outcome("a/nope/c"), Err(ENOENT));
  EXPECT_EQ(Outcome("file.txt/x"), Err(ENOTDIR));
  EXPECT_EQ(Outcome("file.txt/"), Err(ENOTDIR));
  EXPECT_EQ(Outcome("loop1"), Err(ELOOP));
  absl::StatusOr<File> f = OpenAt("nope");
  EXPECT_TRUE(absl::IsNotFound(f.status())) << f.status();
  // A bad directory descriptor, and a file where a directory should be.
  f = OpenAt("x", OpenAtOptions(), O_RDONLY, 0, /*dir_fd=*/-5);
  EXPECT_EQ(io::StatusErrno(f.status()), EBADF) << f.status();
  const int file_fd = open((root_ + "/file.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(file_fd, 0);
  f = OpenAt("x", OpenAtOptions(), O_RDONLY, 0, file_fd);
  close(file_fd);
  EXPECT_EQ(io::StatusErrno(f.status()), ENOTDIR) << f.status();
}

TEST_P(OpenAtTest, WithoutBeneathItIsAPlainOpenat) {
  OpenAtOptions loose;
  loose.beneath = false;
  EXPECT_EQ(Outcome("../secret", loose), "secret");
  EXPECT_EQ(Outcome("secret_link", loose), "secret");
  EXPECT_EQ(Outcome(top_ + "/secret", loose), "secret");
  // no_symlinks alone: anywhere, but never through a link.
  loose.no_symlinks = true;
  EXPECT_EQ(Outcome(top_ + "/secret", loose), "secret");
  EXPECT_EQ(Outcome("../root/a/../file.txt", loose), "hello");
  EXPECT_EQ(Outcome("secret_link", loose), Err(ELOOP));
  EXPECT_EQ(Outcome(root_ + "/in_link/c", loose), Err(ELOOP));
  // AT_FDCWD works as the directory too.
  Captured<absl::StatusOr<File>> got;
  files_->OpenAt(AT_FDCWD, root_ + "/file.txt", O_RDONLY, 0, loose,
                 got.Callback());
  ASSERT_TRUE(RunUntil([&] { return got.done(); }));
  EXPECT_TRUE(got.value->ok()) << got.value->status();
}

TEST_P(OpenAtTest, TheDirectoryMayBeClosedRightAfterTheCall) {
  const int dir = open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  Captured<absl::StatusOr<File>> got;
  files_->OpenAt(dir, "a/b/c", O_RDONLY, 0, OpenAtOptions(), got.Callback());
  close(dir);
  // Whatever takes the number now is not what the open resolves against.
  const int other = open(top_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_TRUE(RunUntil([&] { return got.done(); }));
  close(other);
  ASSERT_TRUE(got.value->ok()) << got.value->status();
  EXPECT_EQ(ReadAll((*got.value)->fd()), "nested");
}

TEST_P(OpenAtTest, ServedByTheEngineItsClassNames) {
  ASSERT_EQ(Outcome("file.txt"), "hello");
  const FileServiceMetrics::PerClass m =
      files_->metrics().of(FileOpClass::kOpen);
  const CapabilityReport report = files_->Capabilities();
  if (GetParam() == Mode::kUring) {
    EXPECT_EQ(m.submitted[static_cast<size_t>(EngineKind::kUring)], 1u);
    EXPECT_EQ(m.fallbacks, 0u);
    EXPECT_EQ(report.openat.engine, EngineKind::kUring);
    EXPECT_TRUE(absl::StrContains(report.openat.why, "IORING_OP_OPENAT2"))
        << report.openat.why;
  } else {
    EXPECT_EQ(m.submitted[static_cast<size_t>(EngineKind::kPool)], 1u);
    EXPECT_EQ(report.openat.engine, EngineKind::kPool);
    EXPECT_EQ(absl::StrContains(report.openat.why, "component walk"),
              GetParam() == Mode::kWalk)
        << report.openat.why;
  }
  EXPECT_TRUE(absl::StrContains(report.ToString(), "  openat: "))
      << report.ToString();
}

// A FIFO's reader blocks in open() until a writer comes: on the pool it is
// an open "stuck" on a worker for as long as the test wants.  (io_uring
// opens a FIFO without waiting, so only the pool is tested this way.)
TEST_P(OpenAtTest, AnOpenThatCompletesAfterItsDeadlineIsClosed) {
  if (GetParam() == Mode::kUring) GTEST_SKIP() << "pool only";
  Captured<absl::StatusOr<File>> got;
  OpOptions opts;
  opts.deadline = absl::Now() + absl::Milliseconds(20);
  files_->OpenAt(root_fd_, "fifo", O_RDONLY, 0, OpenAtOptions(), got.Callback(),
                 opts);
  ASSERT_TRUE(RunUntil([&] { return got.done(); }));
  EXPECT_TRUE(absl::IsDeadlineExceeded(got.value->status()))
      << got.value->status();
  // Now a writer: the open on the worker succeeds, too late.  A
  // non-blocking writer is refused (ENXIO) until the worker's reader is
  // waiting in open(), which may not be yet on a loaded machine.
  int writer = -1;
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (writer < 0 && absl::Now() < give_up) {
    writer = open((root_ + "/fifo").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (writer < 0 && errno != ENXIO) break;
    if (writer < 0) absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_GE(writer, 0) << strerror(errno);
  ASSERT_TRUE(RunUntil([&] {
    return files_->metrics().orphan_fds_closed == 1 &&
           FileServiceTestPeer::LiveOps(*files_) == 0;
  }));
  close(writer);
  EXPECT_EQ(got.calls, 1);
  EXPECT_EQ(files_->metrics().of(FileOpClass::kOpen).late_completions, 1u);
}

// Deadlines from "already passed" to "about the open's own time" race the
// opens; each completes once and nothing leaks (neither a late descriptor
// nor the operation's copy of the directory descriptor).
TEST_P(OpenAtTest, DeadlineRacesLeakNothing) {
  constexpr int kRounds = 100;
  std::vector<Captured<absl::StatusOr<File>>> opens(kRounds);
  for (int i = 0; i < kRounds; ++i) {
    OpOptions opts;
    opts.deadline = absl::Now() + (i < kRounds / 2 ? absl::Microseconds(i * 40)
                                                   : absl::Seconds(10));
    files_->OpenAt(root_fd_, i % 3 == 0 ? "in_link/c" : "a/b/c", O_RDONLY, 0,
                   OpenAtOptions(), opens[i].Callback(), opts);
    if (i % 2 == 0) service_->Poll();
  }
  ASSERT_TRUE(RunUntil([&] {
    for (auto& o : opens) {
      if (!o.done()) return false;
    }
    return FileServiceTestPeer::LiveOps(*files_) == 0;
  }));
  int ok = 0;
  for (auto& o : opens) {
    EXPECT_EQ(o.calls, 1);
    if (o.value->ok()) {
      ++ok;
      EXPECT_EQ(ReadAll((*o.value)->fd()), "nested");
    } else {
      EXPECT_TRUE(absl::IsDeadlineExceeded(o.value->status()))
          << o.value->status();
    }
  }
  EXPECT_GE(ok, kRounds / 2);
  opens.clear();
  ASSERT_TRUE(
      RunUntil([&] { return FileServiceTestPeer::LiveOps(*files_) == 0; }));
  EXPECT_EQ(testing::OpenFdCount(), fd_baseline_) << testing::ListFds();
}

TEST_P(OpenAtTest, ShutdownWithOpensInFlight) {
  std::vector<Captured<absl::StatusOr<File>>> opens(8);
  for (auto& o : opens) {
    files_->OpenAt(root_fd_, "a/b/c", O_RDONLY, 0, OpenAtOptions(),
                   o.Callback());
  }
  service_->Shutdown();
  for (auto& o : opens) {
    EXPECT_EQ(o.calls, 1);
    ASSERT_TRUE(o.value.has_value());
    EXPECT_TRUE(absl::IsCancelled(o.value->status())) << o.value->status();
  }
  opens.clear();
  files_.reset();  // waits for the kernel; closes what completed late
  pool_.reset();
  EXPECT_EQ(testing::OpenFdCount(), fd_baseline_) << testing::ListFds();
}

// Differential: random paths over the tree's names, links and dot
// segments, opened by openat2 and by the walk.  The walk may be stricter
// than openat2, never looser; in this tree it gives the same answers.
TEST_P(OpenAtTest, TheWalkAnswersAsOpenat2) {
  if (GetParam() != Mode::kWalk) GTEST_SKIP() << "walk only";
  auto pool = FileServiceTestPeer::Create(
      *service_, *pool_,
      [] {
        FileServiceOptions o;
        o.engines.fill(EngineKind::kPool);
        return o;
      }(),
      nullptr);
  ASSERT_TRUE(pool.ok()) << pool.status();
  ASSERT_FALSE(absl::StrContains((*pool)->Capabilities().openat.why, "walk"));
  const char* const kParts[] = {
      "a",       "b",      "c",           "..",       ".",    "",
      "in_link", "up",     "etc_link",    "file.txt", "back", "file_link",
      "loop1",   "secret", "secret_link", "root"};
  // The outcome, as "errno N" or "dev:ino".
  auto outcome = [&](FileService& fs, const std::string& path,
                     OpenAtOptions at) {
    Captured<absl::StatusOr<File>> got;
    fs.OpenAt(root_fd_, path, O_RDONLY, 0, at, got.Callback());
    EXPECT_TRUE(RunUntil([&] { return got.done(); }));
    if (!got.value->ok()) {
      return absl::StrCat("errno ", io::StatusErrno(got.value->status()));
    }
    struct stat st;
    EXPECT_EQ(fstat((*got.value)->fd(), &st), 0);
    return absl::StrCat(st.st_dev, ":", st.st_ino);
  };
  uint32_t seed = 12345;
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 16) & 0x7fff;
  };
  int successes = 0, refusals = 0;
  for (int i = 0; i < 400; ++i) {
    std::string path;
    const int n = 1 + static_cast<int>(next() % 5);
    for (int k = 0; k < n; ++k) {
      if (k > 0) path += "/";
      path += kParts[next() % (sizeof(kParts) / sizeof(kParts[0]))];
    }
    OpenAtOptions at;
    at.no_symlinks = next() % 4 == 0;
    const std::string want = outcome(**pool, path, at);
    const std::string got = outcome(*files_, path, at);
    EXPECT_EQ(got, want) << path << (at.no_symlinks ? " (no_symlinks)" : "");
    ++(absl::StartsWith(want, "errno") ? refusals : successes);
  }
  EXPECT_GT(successes, 20);
  EXPECT_GT(refusals, 20);
  pool->reset();
  ASSERT_TRUE(
      RunUntil([&] { return FileServiceTestPeer::LiveOps(*files_) == 0; }));
}

// An engine that refuses openat at submission sends it to the pool, which
// still resolves beneath the root; ENOSYS is remembered for the class.
TEST_P(OpenAtTest, ARefusedOpenatFallsBackToThePoolStillBeneath) {
  if (GetParam() != Mode::kUring) GTEST_SKIP() << "io_uring only";
  FaultEngine* fault = nullptr;
  Make([&](EngineKind kind, std::unique_ptr<Engine> e) {
    if (kind != EngineKind::kUring || e == nullptr) return e;
    auto f = std::make_unique<FaultEngine>(kind, std::move(e), *service_);
    fault = f.get();
    return std::unique_ptr<Engine>(std::move(f));
  });
  ASSERT_NE(fault, nullptr);
  FaultEngine::Fault refuse = FaultEngine::SubmitError(ENOSYS);
  refuse.only = Opcode::kOpenAt;
  fault->Push(refuse);
  EXPECT_EQ(Outcome("up/secret"), Err(EXDEV));
  EXPECT_EQ(fault->faults_left(), 0u);
  EXPECT_EQ(Outcome("a/b/c"), "nested");
  const FileServiceMetrics::PerClass m =
      files_->metrics().of(FileOpClass::kOpen);
  EXPECT_EQ(m.submitted[static_cast<size_t>(EngineKind::kPool)], 2u);
  EXPECT_EQ(m.fallbacks, 2u) << "the refusal, then the remembered class";
  EXPECT_EQ(files_->Capabilities().openat.engine, EngineKind::kPool);
}

}  // namespace
}  // namespace aio
}  // namespace kqio
