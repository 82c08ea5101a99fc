// Every operation on every engine available here (io_uring, the pool): the
// results a caller sees, the error paths, short reads at end of file, offsets
// past 4 GiB, vectored I/O and ReadFile.  Each run proves the operation was
// served by the engine under test, completed exactly once, and left nothing
// pending or open.
#include "aio/file_service.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "aio/testing/aio_test_util.h"
#include "aio/testing/file_service_test_peer.h"
#include "gtest/gtest.h"
#include "io/errno_status.h"

namespace kqio {
namespace aio {
namespace {

using testing::AioTest;
using testing::Captured;
using testing::TempDir;
using testing::TempPath;
using testing::WriteWholeFile;

class EngineTest : public AioTest,
                   public ::testing::WithParamInterface<EngineKind> {
 public:
  void SetUp() override {
    AioTest::SetUp();
    FileServiceOptions o;
    o.engines.fill(GetParam());
    o.page_cache_fast_path = false;  // every read goes to the engine
    MakeFiles(o);
    // The kqueue closes some of its own descriptors lazily, so descriptors
    // are counted from here, with the service running.
    fd_baseline_ = testing::OpenFdCount();
    if (GetParam() == EngineKind::kUring && !IsUringAvailable()) {
      GTEST_SKIP() << "io_uring is not available here:\n"
                   << files_->Capabilities().ToString();
    }
  }

  void TearDown() override {
    ExpectNothingLeftOpen();
    AioTest::TearDown();
  }

  // Starts an operation with a capturing callback, runs the loop until it
  // completes, and checks it completed exactly once (also after draining).
  template <typename T, typename StartFn>
  T Await(StartFn start) {
    Captured<T> got;
    start(got.Callback());
    EXPECT_TRUE(RunUntil([&] { return got.done(); }));
    Drain();
    EXPECT_EQ(got.calls, 1) << "exactly one completion";
    if (!got.value.has_value()) return T(absl::InternalError("no completion"));
    return *std::move(got.value);
  }

  absl::StatusOr<File> Open(const std::string& path, int flags) {
    return Await<absl::StatusOr<File>>(
        [&](auto cb) { files_->Open(path, flags, 0644, std::move(cb)); });
  }
  absl::StatusOr<IoResult> Read(const File& f, uint64_t off, size_t n) {
    return Await<absl::StatusOr<IoResult>>(
        [&](auto cb) { files_->Read(f, off, Buffer(n), std::move(cb)); });
  }
  absl::StatusOr<IoResult> Write(const File& f, uint64_t off,
                                 const std::string& data) {
    return Await<absl::StatusOr<IoResult>>([&](auto cb) {
      files_->Write(f, off, Buffer::CopyOf(data), std::move(cb));
    });
  }
  absl::StatusOr<struct stat> Fstat(const File& f) {
    return Await<absl::StatusOr<struct stat>>(
        [&](auto cb) { files_->Fstat(f, std::move(cb)); });
  }
  absl::StatusOr<struct stat> Stat(const std::string& path) {
    return Await<absl::StatusOr<struct stat>>(
        [&](auto cb) { files_->Stat(path, std::move(cb)); });
  }
  absl::Status Close(File& f) {
    return Await<absl::Status>(
        [&](auto cb) { files_->Close(f, std::move(cb)); });
  }
  absl::StatusOr<IoResult> ReadFile(const std::string& path) {
    return Await<absl::StatusOr<IoResult>>(
        [&](auto cb) { files_->ReadFile(path, std::move(cb)); });
  }

  // The class was served by the engine under test, with no fallback.
  void ExpectServedByEngine(FileOpClass c) {
    const FileServiceMetrics m = files_->metrics();
    EXPECT_GT(m.of(c).submitted[static_cast<size_t>(GetParam())], 0u)
        << FileOpClassName(c) << "\n"
        << m.ToString();
    EXPECT_EQ(m.of(c).fallbacks, 0u) << FileOpClassName(c);
  }
};

TEST_P(EngineTest, EveryOperationRoundTrips) {
  const std::string path = TempPath("roundtrip");
  auto f = Open(path, O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->is_open());
  EXPECT_EQ(f->path(), path);

  auto w = Write(*f, 0, "hello, world");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->bytes, 12u);
  EXPECT_EQ(w->buffer.size(), 12u) << "the buffer comes back";

  EXPECT_TRUE(Await<absl::Status>([&](auto cb) {
                files_->Fsync(*f, std::move(cb));
              }).ok());
  EXPECT_TRUE(Await<absl::Status>([&](auto cb) {
                files_->Fdatasync(*f, std::move(cb));
              }).ok());

  auto fst = Fstat(*f);
  ASSERT_TRUE(fst.ok()) << fst.status();
  EXPECT_EQ(fst->st_size, 12);
  EXPECT_TRUE(S_ISREG(fst->st_mode));
  auto st = Stat(path);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->st_size, 12);
  EXPECT_EQ(st->st_ino, fst->st_ino);

  auto r = Read(*f, 0, 12);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data(), "hello, world");
  auto tail = Read(*f, 7, 100);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(tail->bytes, 5u) << "a short read at end of file is a result";
  EXPECT_EQ(tail->data(), "world");
  auto eof = Read(*f, 1000, 16);
  ASSERT_TRUE(eof.ok()) << eof.status();
  EXPECT_EQ(eof->bytes, 0u);

  EXPECT_TRUE(Close(*f).ok());
  EXPECT_FALSE(f->is_open());
  EXPECT_EQ(f->fd(), -1);

  for (FileOpClass c :
       {FileOpClass::kOpen, FileOpClass::kStat, FileOpClass::kRead,
        FileOpClass::kWrite, FileOpClass::kFsync, FileOpClass::kClose}) {
    ExpectServedByEngine(c);
  }
  const io::Metrics sm = service_->metrics();
  EXPECT_EQ(sm.op(io::OpClass::kFileRead).completed, 3u);
  EXPECT_EQ(sm.op(io::OpClass::kFileWrite).completed, 1u);
  EXPECT_EQ(sm.op(io::OpClass::kFileStat).completed, 2u);
  EXPECT_EQ(sm.op(io::OpClass::kFileFsync).completed, 2u);
  EXPECT_EQ(sm.op(io::OpClass::kFileClose).completed, 1u);
  unlink(path.c_str());
}

TEST_P(EngineTest, VectoredReadAndWrite) {
  const std::string path = TempPath("vectored");
  auto f = Open(path, O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<Buffer> out;
  for (const char* s : {"abc", "defg", "hi"}) out.push_back(Buffer::CopyOf(s));
  auto w = Await<absl::StatusOr<IoVecResult>>(
      [&](auto cb) { files_->WriteV(*f, 5, std::move(out), std::move(cb)); });
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->bytes, 9u);
  EXPECT_EQ(w->buffers.size(), 3u);

  std::vector<Buffer> in;
  for (int i = 0; i < 3; ++i) in.push_back(Buffer(4));
  auto r = Await<absl::StatusOr<IoVecResult>>(
      [&](auto cb) { files_->ReadV(*f, 5, std::move(in), std::move(cb)); });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->bytes, 9u) << "short at end of file";
  ASSERT_EQ(r->buffers.size(), 3u);
  EXPECT_EQ(r->buffers[0].view(), "abcd");
  EXPECT_EQ(r->buffers[1].view(), "efgh");
  EXPECT_EQ(r->buffers[2].view(1), "i");
  EXPECT_TRUE(Close(*f).ok());
  ExpectServedByEngine(FileOpClass::kRead);
  ExpectServedByEngine(FileOpClass::kWrite);
  unlink(path.c_str());
}

TEST_P(EngineTest, OffsetsPastFourGiBOnASparseFile) {
  const std::string path = TempPath("sparse");
  auto f = Open(path, O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_TRUE(f.ok()) << f.status();
  const uint64_t size = uint64_t{6} << 30;
  if (ftruncate(f->fd(), static_cast<off_t>(size)) != 0) {
    GTEST_SKIP() << "no sparse 6 GiB file here: " << strerror(errno);
  }
  const uint64_t far = (uint64_t{5} << 30) + 123;
  auto w = Write(*f, far, "far away");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->bytes, 8u);
  auto r = Read(*f, far - 2, 12);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->bytes, 12u);
  EXPECT_EQ(r->data(), std::string("\0\0far away\0\0", 12));
  auto end = Read(*f, size - 4, 16);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->bytes, 4u);
  auto st = Fstat(*f);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(static_cast<uint64_t>(st->st_size), size);
  EXPECT_TRUE(Close(*f).ok());
  unlink(path.c_str());
}

TEST_P(EngineTest, MissingFile) {
  const std::string path = TempDir() + "/no/such/file";
  auto f = Open(path, O_RDONLY);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(absl::IsNotFound(f.status())) << f.status();
  EXPECT_EQ(io::StatusErrno(f.status()), ENOENT);
  EXPECT_TRUE(absl::StrContains(f.status().message(), "open(" + path + ")"))
      << f.status();
  auto st = Stat(path);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(io::StatusErrno(st.status()), ENOENT);
  EXPECT_TRUE(absl::StrContains(st.status().message(), "stat(")) << st.status();
  EXPECT_EQ(io::StatusErrno(ReadFile(path).status()), ENOENT);
  // On the pool, ReadFile is one task, not an open and the rest.
  const bool one_task = GetParam() == EngineKind::kPool;
  EXPECT_TRUE(absl::StartsWith(files_->Capabilities().read_file,
                               one_task ? "one pool task" : "steps"))
      << files_->Capabilities().read_file;
  EXPECT_EQ(service_->metrics().op(io::OpClass::kFileOpen).failed,
            one_task ? 1u : 2u);
}

TEST_P(EngineTest, DirectoryAndNotADirectory) {
  auto dir = Open(TempDir(), O_WRONLY);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(io::StatusErrno(dir.status()), EISDIR) << dir.status();

  const std::string path = TempPath("plain");
  WriteWholeFile(path, "x");
  auto notdir = Open(path, O_RDONLY | O_DIRECTORY);
  ASSERT_FALSE(notdir.ok());
  EXPECT_EQ(io::StatusErrno(notdir.status()), ENOTDIR) << notdir.status();

  auto rf = ReadFile(TempDir());
  ASSERT_FALSE(rf.ok());
  EXPECT_EQ(io::StatusErrno(rf.status()), EISDIR) << rf.status();
  unlink(path.c_str());
}

TEST_P(EngineTest, PermissionDenied) {
  const std::string path = TempPath("secret");
  WriteWholeFile(path, "x");
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  const int probe = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (probe >= 0) {
    close(probe);
    unlink(path.c_str());
    GTEST_SKIP() << "running with CAP_DAC_OVERRIDE (root): mode 000 does not "
                    "deny this process; EBADF/EISDIR/ENOTDIR cover the error "
                    "paths instead";
  }
  auto f = Open(path, O_RDONLY);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(f.status())) << f.status();
  EXPECT_EQ(io::StatusErrno(f.status()), EACCES);
  unlink(path.c_str());
}

TEST_P(EngineTest, KernelBadDescriptorAndClosedFiles) {
  const std::string path = TempPath("readonly");
  WriteWholeFile(path, "data");
  auto f = Open(path, O_RDONLY);
  ASSERT_TRUE(f.ok()) << f.status();
  // The kernel's EBADF: writing to a descriptor opened read-only.
  auto w = Write(*f, 0, "no");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(io::StatusErrno(w.status()), EBADF) << w.status();
  EXPECT_TRUE(absl::StrContains(w.status().message(), "write(" + path + ")"))
      << w.status();
  EXPECT_GT(files_->metrics()
                .of(FileOpClass::kWrite)
                .submitted[static_cast<size_t>(GetParam())],
            0u);

  ASSERT_TRUE(Close(*f).ok());
  // The core's EBADF: the File is closed; nothing reaches an engine.
  const auto before = files_->metrics().of(FileOpClass::kRead).submitted;
  auto r = Read(*f, 0, 4);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(io::StatusErrno(r.status()), EBADF) << r.status();
  EXPECT_EQ(files_->metrics().of(FileOpClass::kRead).submitted, before);
  EXPECT_EQ(io::StatusErrno(Close(*f)), EBADF) << "closing twice";
  File never_opened;
  EXPECT_EQ(io::StatusErrno(Await<absl::Status>(
                [&](auto cb) { files_->Fsync(never_opened, std::move(cb)); })),
            EBADF);
  unlink(path.c_str());
}

TEST_P(EngineTest, ReadFile) {
  const int fds_before = testing::OpenFdCount();
  std::string content;
  for (int i = 0; i < 100000; ++i)
    content.push_back(static_cast<char>('a' + i % 26));
  const std::string path = TempPath("readfile");
  WriteWholeFile(path, content);
  auto r = ReadFile(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes, content.size());
  EXPECT_TRUE(r->data() == content);

  const std::string empty = TempPath("empty");
  WriteWholeFile(empty, "");
  auto e = ReadFile(empty);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->bytes, 0u);

  // st_size 0 but not empty: read in growing chunks to end of file.
  auto proc = ReadFile("/proc/self/status");
  ASSERT_TRUE(proc.ok()) << proc.status();
  EXPECT_TRUE(absl::StrContains(proc->data(), "Name:"));

  // Each ReadFile is one file_read_whole operation, besides its steps.
  const std::string missing = TempPath("missing");
  EXPECT_EQ(io::StatusErrno(ReadFile(missing).status()), ENOENT);
  const io::OpMetrics whole =
      service_->metrics().op(io::OpClass::kFileReadWhole);
  EXPECT_EQ(whole.started, 4u);
  EXPECT_EQ(whole.completed, 3u);
  EXPECT_EQ(whole.failed, 1u);
  EXPECT_EQ(whole.cancelled, 0u);
  EXPECT_EQ(whole.latency.count, 4u);
  // The steps: four opens (one failed), one fstat (only the file larger
  // than the first 64 KiB read needs its size), and the reads: two for the
  // 100,000 bytes (64 KiB, then the size fstat gave), one for the empty
  // file, and for /proc the data and the end of the file.  The descriptors
  // are closed after the answers, asynchronously.
  // On the pool the whole is one task (Opcode::kReadWhole), and there are
  // no steps to count.
  EXPECT_TRUE(RunUntil([&] { return testing::OpenFdCount() == fds_before; }));
  const io::Metrics sm = service_->metrics();
  const bool one_task = GetParam() == EngineKind::kPool;
  EXPECT_TRUE(absl::StartsWith(files_->Capabilities().read_file,
                               one_task ? "one pool task" : "steps"))
      << files_->Capabilities().read_file;
  EXPECT_EQ(sm.op(io::OpClass::kFileOpen).completed, one_task ? 0u : 3u);
  EXPECT_EQ(sm.op(io::OpClass::kFileOpen).failed, one_task ? 0u : 1u);
  EXPECT_EQ(sm.op(io::OpClass::kFileStat).completed, one_task ? 0u : 1u);
  EXPECT_GE(sm.op(io::OpClass::kFileRead).completed, one_task ? 0u : 5u);
  if (one_task) {
    EXPECT_EQ(files_->metrics().of(FileOpClass::kOpen).submitted[static_cast<
                  size_t>(EngineKind::kPool)],
              4u);
  }
  EXPECT_EQ(sm.op(io::OpClass::kFileReadWhole).started, 4u)
      << "the steps are not counted as whole reads";
  EXPECT_STREQ(io::OpClassName(io::OpClass::kFileReadWhole),
               "file_read_whole");
  unlink(path.c_str());
  unlink(empty.c_str());
}

TEST_P(EngineTest, DestroyingAnOpenFileClosesItAsynchronously) {
  const std::string path = TempPath("dropped");
  WriteWholeFile(path, "x");
  const int before = testing::OpenFdCount();
  {
    auto f = Open(path, O_RDONLY);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(testing::OpenFdCount(), before + 1);
  }
  // Closed on an engine, not here: the descriptor goes once the loop runs.
  EXPECT_TRUE(RunUntil([&] { return testing::OpenFdCount() == before; }));
  ExpectServedByEngine(FileOpClass::kClose);
  unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Engines, EngineTest,
                         ::testing::Values(EngineKind::kUring,
                                           EngineKind::kPool),
                         [](const auto& info) {
                           return std::string(EngineKindName(info.param));
                         });

}  // namespace
}  // namespace aio
}  // namespace kqio
