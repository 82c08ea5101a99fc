// The io_uring engine through the FileService: one io_uring_submit per loop
// iteration for everything queued in it, a bounded number of requests in
// the kernel with a bounded user-space backlog behind them, and a ring that
// cannot be created reported as "not available" rather than failing.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "aio/file_service.h"
#include "aio/testing/aio_test_util.h"
#include "aio/testing/file_service_test_peer.h"
#include "gtest/gtest.h"
#include "io/errno_status.h"

namespace kqio {
namespace aio {
namespace {

using testing::AioTest;
using testing::Captured;
using testing::OpenOrDie;
using testing::TempPath;
using testing::WriteWholeFile;

using IoCapture = Captured<absl::StatusOr<IoResult>>;

// A counter from the engine's stats line ("... name=value ...").
long StatOf(const std::string& stats, const std::string& name) {
  const size_t at = stats.find(" " + name + "=");
  if (at == std::string::npos) return -1;
  return std::strtol(stats.c_str() + at + name.size() + 2, nullptr, 10);
}

class UringEngineTest : public AioTest {
 public:
  void Make(FileServiceOptions o = FileServiceOptions()) {
    o.engines.fill(EngineKind::kUring);
    MakeFiles(o);
    fd_baseline_ = testing::OpenFdCount();
  }
  void TearDown() override {
    if (files_ != nullptr) {
      EXPECT_TRUE(
          RunUntil([&] { return FileServiceTestPeer::LiveOps(*files_) == 0; },
                   absl::Seconds(5)));
      EXPECT_EQ(testing::OpenFdCount(), fd_baseline_) << testing::ListFds();
    }
    AioTest::TearDown();
  }
};

TEST_F(UringEngineTest, OneSubmitPerLoopIteration) {
  Make();
  if (!IsUringAvailable()) GTEST_SKIP() << "io_uring is not available here";
  const std::string path = TempPath("batch");
  WriteWholeFile(path, std::string(64 * 1024, 'b'));
  File f = OpenOrDie(this, *files_, path, O_RDONLY);
  const std::string before = files_->EngineStats();
  OpOptions on_ring;  // an explicit engine skips the page-cache fast path
  on_ring.engine = EngineKind::kUring;
  constexpr int kReads = 32;
  std::vector<IoCapture> reads(kReads);
  for (int i = 0; i < kReads; ++i) {
    files_->Read(f, i * 2048, Buffer(2048), reads[i].Callback(), on_ring);
  }
  ASSERT_TRUE(RunUntil([&] {
    for (auto& r : reads) {
      if (!r.done()) return false;
    }
    return true;
  }));
  for (auto& r : reads) {
    EXPECT_EQ(r.calls, 1);
    ASSERT_TRUE(r.value->ok()) << r.value->status();
    EXPECT_EQ((*r.value)->bytes, 2048u);
  }
  const std::string after = files_->EngineStats();
  EXPECT_EQ(StatOf(after, "submit_calls") - StatOf(before, "submit_calls"), 1)
      << after;
  EXPECT_EQ(StatOf(after, "max_batch"), kReads) << after;
  unlink(path.c_str());
}

TEST_F(UringEngineTest, BoundedInFlightAndBacklog) {
  FileServiceOptions o;
  o.uring.max_in_flight = 4;
  o.uring.max_backlog = 4;
  Make(o);
  if (!IsUringAvailable()) GTEST_SKIP() << "io_uring is not available here";
  const std::string fifo_path = TempPath("fifo");
  ASSERT_EQ(mkfifo(fifo_path.c_str(), 0600), 0);
  File fifo = OpenOrDie(this, *files_, fifo_path, O_RDWR);
  // Reads on an empty FIFO wait in the kernel: 4 there, 4 in the backlog,
  // and the ninth is refused.
  std::vector<IoCapture> reads(9);
  for (auto& r : reads) files_->Read(fifo, 0, Buffer(8), r.Callback());
  EXPECT_EQ(reads[8].calls, 0) << "refusals are deferred too";
  ASSERT_TRUE(RunUntil([&] { return reads[8].done(); }));
  EXPECT_TRUE(absl::IsResourceExhausted(reads[8].value->status()))
      << reads[8].value->status();
  for (int i = 0; i < 3; ++i) service_->Poll();
  const std::string stats = files_->EngineStats();
  EXPECT_EQ(StatOf(stats, "in_flight"), 4) << stats;
  EXPECT_EQ(StatOf(stats, "max_backlog"), 4) << stats;
  for (int i = 0; i < 8; ++i) EXPECT_FALSE(reads[i].done());

  // Data for one read: the backlog moves up as the kernel finishes.
  ASSERT_EQ(write(fifo.fd(), "12345678", 8), 8);
  ASSERT_TRUE(RunUntil([&] {
    int done = 0;
    for (int i = 0; i < 8; ++i) done += reads[i].done();
    return done == 1;
  }));
  Captured<absl::Status> closed;
  files_->Close(fifo, closed.Callback());
  ASSERT_TRUE(RunUntil([&] { return closed.done(); }));
  EXPECT_TRUE(closed.value->ok()) << *closed.value;
  int ok = 0, cancelled = 0;
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(reads[i].calls, 1);
    if (reads[i].value->ok()) {
      ++ok;
      EXPECT_EQ((*reads[i].value)->data(), "12345678");
    } else if (absl::IsCancelled(reads[i].value->status())) {
      ++cancelled;
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(cancelled, 7);
  unlink(fifo_path.c_str());
}

TEST_F(UringEngineTest, ARingThatCannotBeCreatedIsReportedNotFatal) {
  FileServiceOptions o;
  o.uring.entries = 1u << 20;  // beyond IORING_MAX_ENTRIES: EINVAL
  o.uring.max_in_flight = 16;
  Make(o);
  const CapabilityReport report = files_->Capabilities();
  EXPECT_TRUE(absl::StrContains(report.engines[0], "io_uring_queue_init"))
      << report.ToString();
  for (const auto& c : report.classes) {
    EXPECT_EQ(c.engine, EngineKind::kPool) << report.ToString();
    EXPECT_TRUE(absl::StrContains(c.why, "pool: uring")) << c.why;
  }
  // Everything still works, on the pool, each operation a counted fallback.
  const std::string path = TempPath("nouring");
  WriteWholeFile(path, "still works");
  File f = OpenOrDie(this, *files_, path, O_RDONLY);
  IoCapture r;
  OpOptions explicit_engine;
  explicit_engine.engine = EngineKind::kUring;
  files_->Read(f, 0, Buffer(32), r.Callback(), explicit_engine);
  ASSERT_TRUE(RunUntil([&] { return r.done(); }));
  ASSERT_TRUE(r.value->ok()) << r.value->status();
  EXPECT_EQ((*r.value)->data(), "still works");
  EXPECT_EQ(files_->metrics().of(FileOpClass::kRead).fallbacks, 1u);
  unlink(path.c_str());
}

}  // namespace
}  // namespace aio
}  // namespace kqio
