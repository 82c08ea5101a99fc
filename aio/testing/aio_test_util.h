// Test helpers for aio/: a fixture owning a service, a pool and a
// FileService, bounded loop runs, callback capture that counts calls (to
// prove exactly-once), and small file utilities.
#ifndef KQIO_AIO_TESTING_AIO_TEST_UTIL_H_
#define KQIO_AIO_TESTING_AIO_TEST_UTIL_H_

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "aio/file_service.h"
#include "aio/testing/file_service_test_peer.h"
#include "gtest/gtest.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace aio {
namespace testing {

// Records every call of a callback: the last value and how many calls.
template <typename T>
struct Captured {
  int calls = 0;
  std::optional<T> value;
  bool done() const { return calls > 0; }
  // The callback; `this` must outlive it.
  auto Callback() {
    return [this](T v) {
      ++calls;
      value.emplace(std::move(v));
    };
  }
};

// Descriptors of this process that name a file system path (the files and
// directories operations open).  Anonymous ones (epoll, eventfd, io_uring,
// pipes) belong to the loop and the kqueue emulation, which creates some
// lazily, so they are not counted.
inline int OpenFdCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[512] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    if (readlink(link.c_str(), target, sizeof(target) - 1) > 0 &&
        target[0] == '/') {
      ++n;
    }
  }
  closedir(d);
  return n - 1;  // the directory being read
}

// "fd -> target" lines, for failure messages.
inline std::string ListFds() {
  std::string out;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n < 0) n = 0;
    out += std::string(e->d_name) + " -> " + std::string(target, n) + "\n";
  }
  closedir(d);
  return out;
}

inline std::string TempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

// A fresh path under the test's temporary directory.
inline std::string TempPath(const std::string& name) {
  static int counter = 0;
  return absl::StrCat(TempDir(), "/", name, ".", getpid(), ".", ++counter);
}

inline void WriteWholeFile(const std::string& path, const std::string& data) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(write(fd, data.data(), data.size()),
            static_cast<ssize_t>(data.size()));
  close(fd);
}

// A new directory under the test's temporary directory, by its real path
// (no symlink in it, so that paths under it compare as the kernel prints
// them); empty on failure, which is reported.
inline std::string MakeTempTree(const std::string& name) {
  const std::string top = TempPath(name);
  char real[PATH_MAX];
  if (mkdir(top.c_str(), 0755) != 0 || realpath(top.c_str(), real) == nullptr) {
    ADD_FAILURE() << "cannot create " << top;
    return std::string();
  }
  return real;
}

// Removes `top` and everything under it, symlinks not followed.
inline void RemoveTree(const std::string& top) {
  if (top.empty()) return;
  nftw(
      top.c_str(),
      [](const char* path, const struct stat*, int, struct FTW*) {
        return remove(path);
      },
      16, FTW_DEPTH | FTW_PHYS);
}

// Up to 256 bytes from the start of `fd` ("<error>" if pread fails).
inline std::string ReadAll(int fd) {
  char buf[256];
  const ssize_t n = pread(fd, buf, sizeof(buf), 0);
  return n < 0 ? std::string("<error>") : std::string(buf, n);
}

class AioTest : public ::testing::Test {
 public:
  void SetUp() override {
    auto service = io::IoService::Create();
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    threadpool::ThreadPoolOptions po;
    po.num_threads = 4;
    ConfigurePool(po);
    auto pool = threadpool::ThreadPool::Create(po);
    ASSERT_TRUE(pool.ok()) << pool.status();
    pool_ = *std::move(pool);
  }

  void TearDown() override {
    files_.reset();
    pool_.reset();
    if (service_ != nullptr) service_->Shutdown();
    service_.reset();
  }

  virtual void ConfigurePool(threadpool::ThreadPoolOptions&) {}

  void MakeFiles(FileServiceOptions options = FileServiceOptions()) {
    auto files = FileService::Create(*service_, *pool_, std::move(options));
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = *std::move(files);
  }

  // Runs the loop until `done()` or `timeout`; returns done().
  bool RunUntil(const std::function<bool()>& done,
                absl::Duration timeout = absl::Seconds(20)) {
    bool timed_out = false;
    io::TimerId t = service_->RunAfter(timeout, [&] { timed_out = true; });
    while (!done() && !timed_out) service_->RunOnce();
    service_->Cancel(t);
    return done();
  }

  // Runs the loop until nothing is left to do (bounded).
  void Drain(absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time give_up = absl::Now() + timeout;
    while (absl::Now() < give_up && service_->Poll() > 0) {
    }
  }

  // For TearDown: every operation finished (closes of dropped Files may
  // still be in flight) and no descriptor open beyond fd_baseline_.
  void ExpectNothingLeftOpen() {
    if (files_ == nullptr) return;
    EXPECT_TRUE(
        RunUntil([&] { return FileServiceTestPeer::LiveOps(*files_) == 0; },
                 absl::Seconds(5)))
        << "operations left pending";
    EXPECT_EQ(OpenFdCount(), fd_baseline_) << "descriptors leaked:\n"
                                           << ListFds();
  }

  bool IsUringAvailable() const {
    return files_->Capabilities().engines[0] == "uring: available";
  }

  std::unique_ptr<io::IoService> service_;
  std::unique_ptr<threadpool::ThreadPool> pool_;
  std::unique_ptr<FileService> files_;
  int fd_baseline_ = 0;  // set by tests that check for leaks
};

// Opens `path` through `files` and runs `t`'s loop until it completes.
inline File OpenOrDie(AioTest* t, FileService& files, const std::string& path,
                      int flags, mode_t mode = 0644,
                      OpOptions opts = OpOptions()) {
  Captured<absl::StatusOr<File>> got;
  files.Open(path, flags, mode, got.Callback(), opts);
  EXPECT_TRUE(t->RunUntil([&] { return got.done(); }));
  EXPECT_EQ(got.calls, 1);
  if (!got.value.has_value() || !got.value->ok()) {
    ADD_FAILURE() << "open " << path << ": "
                  << (got.value ? got.value->status().ToString() : "no result");
    return File();
  }
  return **std::move(got.value);
}

}  // namespace testing
}  // namespace aio
}  // namespace kqio

#endif  // KQIO_AIO_TESTING_AIO_TEST_UTIL_H_
