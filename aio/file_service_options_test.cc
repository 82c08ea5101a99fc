// The page-cache fast path (hits complete without an engine; misses and
// partial hits go to the engine for the rest; an explicit engine or the
// option turns it off) and the capability report.
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "aio/file_service.h"
#include "aio/testing/aio_test_util.h"
#include "aio/testing/file_service_test_peer.h"
#include "gtest/gtest.h"

namespace kqio {
namespace aio {
namespace {

using testing::AioTest;
using testing::Captured;
using testing::OpenOrDie;
using testing::TempPath;
using testing::WriteWholeFile;

using IoCapture = Captured<absl::StatusOr<IoResult>>;

class OptionsTest : public AioTest {
 public:
  void SetUp() override {
    AioTest::SetUp();
    path_ = TempPath("cached");
    for (int i = 0; i < 64 * 1024 + 100; ++i)
      content_.push_back(static_cast<char>('A' + i % 23));
    WriteWholeFile(path_, content_);
  }
  void TearDown() override {
    if (files_ != nullptr) {
      EXPECT_TRUE(
          RunUntil([&] { return FileServiceTestPeer::LiveOps(*files_) == 0; },
                   absl::Seconds(5)));
    }
    AioTest::TearDown();
    unlink(path_.c_str());
  }
  absl::StatusOr<IoResult> Read(const File& f, uint64_t off, size_t n,
                                OpOptions opts = OpOptions()) {
    IoCapture r;
    files_->Read(f, off, Buffer(n), r.Callback(), opts);
    EXPECT_EQ(r.calls, 0) << "a page-cache hit still completes later";
    EXPECT_TRUE(RunUntil([&] { return r.done(); }));
    EXPECT_EQ(r.calls, 1);
    return *std::move(r.value);
  }
  uint64_t EngineReads() {
    uint64_t n = 0;
    const FileServiceMetrics m = files_->metrics();
    for (uint64_t s : m.of(FileOpClass::kRead).submitted) n += s;
    return n;
  }
  // True if the page at `off` is not in the page cache.  mincore(), not a
  // RWF_NOWAIT probe: a probe that misses starts read-ahead.
  bool Uncached(uint64_t off) {
    const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    void* map = mmap(nullptr, content_.size(), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return false;
    const long page = sysconf(_SC_PAGESIZE);
    unsigned char resident = 0;
    const int r =
        mincore(static_cast<char*>(map) + (off / page) * page, 1, &resident);
    munmap(map, content_.size());
    why_cached_ =
        absl::StrCat("mincore at ", off, ": ", r == 0 ? (resident & 1) : -1);
    return r == 0 && (resident & 1) == 0;
  }
  // Drops [from, end of file) from the page cache; false if some of it
  // stays (the file system keeps it, or writeback is still running).
  bool Evict(uint64_t from = 0) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      const int fd = open(path_.c_str(), O_RDWR | O_CLOEXEC);
      fdatasync(fd);
      posix_fadvise(fd, static_cast<off_t>(from), 0, POSIX_FADV_DONTNEED);
      close(fd);
      bool all = true;
      for (uint64_t off = from; off < content_.size() && all; off += 4096) {
        all = Uncached(off);
      }
      if (all) return true;
    }
    return false;
  }

  std::string path_;
  std::string content_;
  std::string why_cached_;
};

TEST_F(OptionsTest, CachedReadsCompleteWithoutAnEngine) {
  MakeFiles();
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  auto r = Read(f, 1000, 4096);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data(), content_.substr(1000, 4096));
  auto eof = Read(f, content_.size() - 10, 4096);
  ASSERT_TRUE(eof.ok()) << eof.status();
  EXPECT_EQ(eof->bytes, 10u) << "the tail, from the cache";
  const FileServiceMetrics m = files_->metrics();
  EXPECT_EQ(m.fast_path_hits, 2u) << m.ToString();
  EXPECT_EQ(EngineReads(), 0u);

  // An explicit engine skips the fast path.
  OpOptions pool;
  pool.engine = EngineKind::kPool;
  ASSERT_TRUE(Read(f, 0, 4096, pool).ok());
  EXPECT_EQ(files_->metrics().fast_path_hits, 2u);
  EXPECT_EQ(files_->metrics()
                .of(FileOpClass::kRead)
                .submitted[static_cast<size_t>(EngineKind::kPool)],
            1u);
}

// RWF_NOWAIT does not keep an O_DIRECT read off the disk: such files skip
// the fast path (contract 4), whatever the read's outcome on the engine.
TEST_F(OptionsTest, ODirectFilesSkipTheFastPath) {
  MakeFiles();
  Captured<absl::StatusOr<File>> got;
  files_->Open(path_, O_RDONLY | O_DIRECT, 0, got.Callback());
  ASSERT_TRUE(RunUntil([&] { return got.done(); }));
  if (!got.value->ok()) {
    GTEST_SKIP() << "no O_DIRECT here: " << got.value->status();
  }
  File f = **std::move(got.value);
  (void)Read(f, 0, 4096);  // may fail (unaligned buffer): not the point
  const FileServiceMetrics m = files_->metrics();
  EXPECT_EQ(m.fast_path_hits + m.fast_path_misses + m.fast_path_partial, 0u)
      << m.ToString();
  EXPECT_EQ(EngineReads(), 1u);
}

TEST_F(OptionsTest, TheOptionTurnsItOff) {
  FileServiceOptions o;
  o.page_cache_fast_path = false;
  MakeFiles(o);
  EXPECT_TRUE(absl::StartsWith(files_->Capabilities().fast_path, "off"));
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  ASSERT_TRUE(Read(f, 0, 4096).ok());
  EXPECT_EQ(files_->metrics().fast_path_hits, 0u);
  EXPECT_EQ(EngineReads(), 1u);
}

TEST_F(OptionsTest, ARealMissGoesToTheEngine) {
  MakeFiles();
  if (!Evict()) GTEST_SKIP() << "cannot evict the file here: " << why_cached_;
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  auto miss = Read(f, 32 * 1024, 4096);
  ASSERT_TRUE(miss.ok()) << miss.status();
  EXPECT_EQ(miss->data(), content_.substr(32 * 1024, 4096));
  if (files_->metrics().fast_path_hits == 1) {
    GTEST_SKIP() << "something cached the page between eviction and read; "
                    "FakeNoWaitRead tests cover the logic";
  }
  EXPECT_EQ(files_->metrics().fast_path_misses, 1u);
  EXPECT_EQ(EngineReads(), 1u);
}

// The fast path's logic, independent of what the page cache holds: a fake
// preadv2(RWF_NOWAIT) decides what is "cached".
enum class Cache {
  kMiss,
  kFirstPage,
  kShortMidPage,
  kNotSupported,
  kNoSyscall
};
Cache fake_cache = Cache::kMiss;
std::atomic<int> fake_calls{0};
int64_t ReadAtMost(int fd, const struct iovec* iov, int iovcnt, uint64_t offset,
                   size_t limit) {
  std::vector<struct iovec> v(iov, iov + iovcnt);
  for (struct iovec& e : v) {
    e.iov_len = std::min(e.iov_len, limit);
    limit -= e.iov_len;
  }
  return preadv(fd, v.data(), iovcnt, static_cast<off_t>(offset));
}
int64_t FakeNoWaitRead(int fd, const struct iovec* iov, int iovcnt,
                       uint64_t offset) {
  ++fake_calls;
  switch (fake_cache) {
    case Cache::kMiss:
      return -EAGAIN;
    case Cache::kNotSupported:
      return -EOPNOTSUPP;
    case Cache::kNoSyscall:
      return -ENOSYS;
    case Cache::kFirstPage:  // the first page is cached, the next is not
      return ReadAtMost(fd, iov, iovcnt, offset, 4096);
    case Cache::kShortMidPage:  // as at the end of a file
      return ReadAtMost(fd, iov, iovcnt, offset, 100);
  }
  return -EINVAL;
}

class FastPathLogicTest : public OptionsTest {
 public:
  void Make(Cache cache) {
    fake_cache = cache;
    fake_calls = 0;
    auto fs =
        FileServiceTestPeer::Create(*service_, *pool_, FileServiceOptions(),
                                    nullptr, nullptr, FakeNoWaitRead);
    ASSERT_TRUE(fs.ok()) << fs.status();
    files_ = *std::move(fs);
  }
};

TEST_F(FastPathLogicTest, MissGoesToTheEngine) {
  Make(Cache::kMiss);
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  auto r = Read(f, 8192, 4096);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data(), content_.substr(8192, 4096));
  EXPECT_EQ(files_->metrics().fast_path_misses, 1u);
  EXPECT_EQ(EngineReads(), 1u);
}

TEST_F(FastPathLogicTest, PartialHitOnAPageBoundaryLeavesTheRestToTheEngine) {
  Make(Cache::kFirstPage);
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  auto r = Read(f, 0, 20000);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes, 20000u);
  EXPECT_EQ(r->data(), content_.substr(0, 20000));
  EXPECT_EQ(files_->metrics().fast_path_partial, 1u);
  EXPECT_EQ(EngineReads(), 1u);
  // Vectored: the rest starts inside the second buffer.
  std::vector<Buffer> bufs;
  bufs.push_back(Buffer(3000));
  bufs.push_back(Buffer(3000));
  bufs.push_back(Buffer(3000));
  Captured<absl::StatusOr<IoVecResult>> rv;
  files_->ReadV(f, 0, std::move(bufs), rv.Callback());
  ASSERT_TRUE(RunUntil([&] { return rv.done(); }));
  ASSERT_TRUE(rv.value->ok()) << rv.value->status();
  const IoVecResult& v = **rv.value;
  EXPECT_EQ(v.bytes, 9000u);
  EXPECT_EQ(std::string(v.buffers[0].view()) +
                std::string(v.buffers[1].view()) +
                std::string(v.buffers[2].view()),
            content_.substr(0, 9000));
  EXPECT_EQ(files_->metrics().fast_path_partial, 2u);
}

TEST_F(FastPathLogicTest, AShortReadInsideAPageIsTheEndOfTheFile) {
  Make(Cache::kShortMidPage);
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  auto r = Read(f, 0, 4096);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes, 100u);
  EXPECT_EQ(files_->metrics().fast_path_hits, 1u);
  EXPECT_EQ(EngineReads(), 0u);
}

TEST_F(FastPathLogicTest, RejectionsTurnItOffForTheFileOrEverywhere) {
  Make(Cache::kNotSupported);
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  ASSERT_TRUE(Read(f, 0, 10).ok());
  ASSERT_TRUE(Read(f, 0, 10).ok());
  EXPECT_EQ(fake_calls, 1) << "not asked again for this file";
  EXPECT_EQ(EngineReads(), 2u);
  File g = OpenOrDie(this, *files_, path_, O_RDONLY);
  ASSERT_TRUE(Read(g, 0, 10).ok());
  EXPECT_EQ(fake_calls, 2) << "another file is asked";

  Make(Cache::kNoSyscall);
  File h = OpenOrDie(this, *files_, path_, O_RDONLY);
  ASSERT_TRUE(Read(h, 0, 10).ok());
  ASSERT_TRUE(Read(h, 0, 10).ok());
  EXPECT_EQ(fake_calls, 1);
  EXPECT_TRUE(absl::StrContains(files_->Capabilities().fast_path, "ENOSYS"))
      << files_->Capabilities().fast_path;
}

TEST_F(OptionsTest, CapabilityReportNamesAMechanismAndAReasonPerClass) {
  MakeFiles();
  const CapabilityReport auto_report = files_->Capabilities();
  for (const auto& c : auto_report.classes) {
    EXPECT_FALSE(c.why.empty()) << FileOpClassName(c.op_class);
    EXPECT_TRUE(absl::StartsWith(c.why, EngineKindName(c.engine))) << c.why;
  }
  EXPECT_EQ(auto_report.engines.size(), 3u);
  EXPECT_TRUE(
      absl::StrContains(auto_report.ToString(), "page-cache fast path"));

  FileServiceOptions o;
  o.engines.fill(EngineKind::kPool);
  MakeFiles(o);
  for (const auto& c : files_->Capabilities().classes) {
    EXPECT_EQ(c.engine, EngineKind::kPool);
    EXPECT_EQ(c.why, "pool: chosen by the options");
  }
  EXPECT_TRUE(absl::StrContains(files_->Capabilities().engines[0],
                                "not requested by the options"));
}

TEST_F(OptionsTest, InvalidOptionsAreRejected) {
  FileServiceOptions o;
  o.max_eintr_retries = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(
      FileService::Create(*service_, *pool_, o).status()));
  FileServiceOptions u;
  u.uring.max_in_flight = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(
      FileService::Create(*service_, *pool_, u).status()));
}

TEST_F(OptionsTest, ReadFileRefusesFilesOverTheLimit) {
  FileServiceOptions o;
  o.read_file_max_bytes = 1000;
  MakeFiles(o);
  Captured<absl::StatusOr<IoResult>> r;
  files_->ReadFile(path_, r.Callback());
  ASSERT_TRUE(RunUntil([&] { return r.done(); }));
  EXPECT_TRUE(absl::IsFailedPrecondition(r.value->status()))
      << r.value->status();
  Captured<absl::StatusOr<IoResult>> proc;
  files_->ReadFile("/proc/self/maps", proc.Callback());
  ASSERT_TRUE(RunUntil([&] { return proc.done(); }));
  EXPECT_EQ(proc.calls, 1);
}

// ReadFile's steps read before they ask for the size, and its pool task
// sizes from fstat: either way the sizes around the first 64 KiB chunk and
// around the limit come back whole, or refused, exactly.
class ReadFileBoundaryTest : public OptionsTest,
                             public ::testing::WithParamInterface<EngineKind> {
};
INSTANTIATE_TEST_SUITE_P(Engines, ReadFileBoundaryTest,
                         ::testing::Values(EngineKind::kAuto,
                                           EngineKind::kPool));

TEST_P(ReadFileBoundaryTest, SizesAroundTheChunkAndTheLimit) {
  OpOptions opts;
  opts.engine = GetParam();
  auto read_file = [&](const std::string& path) {
    Captured<absl::StatusOr<IoResult>> r;
    files_->ReadFile(path, r.Callback(), opts);
    EXPECT_TRUE(RunUntil([&] { return r.done(); }));
    EXPECT_EQ(r.calls, 1);
    return *std::move(r.value);
  };
  auto content = [](size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 19);
    return s;
  };
  const std::string p = TempPath("boundary");
  FileServiceOptions o;
  o.read_file_max_bytes = 200 * 1024;
  MakeFiles(o);
  for (size_t n : {size_t{1}, size_t{65535}, size_t{65536}, size_t{65537},
                   size_t{131072}, size_t{200 * 1024}}) {
    WriteWholeFile(p, content(n));
    absl::StatusOr<IoResult> r = read_file(p);
    ASSERT_TRUE(r.ok()) << n << ": " << r.status();
    EXPECT_EQ(r->bytes, n);
    EXPECT_TRUE(r->data() == content(n)) << n;
  }
  WriteWholeFile(p, content(200 * 1024 + 1));
  EXPECT_TRUE(absl::IsFailedPrecondition(read_file(p).status()));

  // A limit below the first chunk.
  files_.reset();
  o.read_file_max_bytes = 1000;
  MakeFiles(o);
  WriteWholeFile(p, content(1000));
  absl::StatusOr<IoResult> at_limit = read_file(p);
  ASSERT_TRUE(at_limit.ok()) << at_limit.status();
  EXPECT_EQ(at_limit->bytes, 1000u);
  WriteWholeFile(p, content(1001));
  EXPECT_TRUE(absl::IsFailedPrecondition(read_file(p).status()));

  // A limit of 0 takes empty files only.
  files_.reset();
  o.read_file_max_bytes = 0;
  MakeFiles(o);
  WriteWholeFile(p, "");
  absl::StatusOr<IoResult> empty = read_file(p);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->bytes, 0u);
  WriteWholeFile(p, "x");
  EXPECT_TRUE(absl::IsFailedPrecondition(read_file(p).status()));
  unlink(p.c_str());
}

}  // namespace
}  // namespace aio
}  // namespace kqio
