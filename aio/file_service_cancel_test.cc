// Contract 2 and exactly-once under cancellation, on the real engines:
// closing a file with reads pending (in the io_uring kernel, queued in a
// pool lane, running on a pool worker), deadlines, shutdown of the service
// with operations in flight, and cancel races.  Every test counts callback
// runs and ends with nothing pending and no descriptor left open.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
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
using DoneCapture = Captured<absl::Status>;

// A pool preadv that blocks until the test opens the gate: a read "running
// on a worker" for as long as the test wants.
struct Gate {
  absl::Mutex mu;
  bool open = false;
  int entered = 0;
};
Gate* gate = nullptr;

ssize_t GatedPreadv(int fd, const struct iovec* iov, int n, off_t off) {
  {
    absl::MutexLock lock(&gate->mu);
    ++gate->entered;
    gate->mu.Await(absl::Condition(&gate->open));
  }
  return ::preadv(fd, iov, n, off);
}

class CancelTest : public AioTest {
 public:
  void ConfigurePool(threadpool::ThreadPoolOptions& po) override {
    po.lanes[threadpool::LaneIndex(threadpool::Lane::kData)].max_running = 1;
  }
  void SetUp() override {
    AioTest::SetUp();
    gate = &gate_;
  }
  void TearDown() override {
    OpenGate();
    ExpectNothingLeftOpen();
    AioTest::TearDown();
    gate = nullptr;
  }

  // A FileService with `engine` for every class and the gated pool preadv.
  void Make(EngineKind engine, bool fast_path = false) {
    FileServiceOptions o;
    o.engines.fill(engine);
    o.page_cache_fast_path = fast_path;
    static const BlockingCalls calls = {GatedPreadv, nullptr};
    auto fs =
        FileServiceTestPeer::Create(*service_, *pool_, o, nullptr, &calls);
    ASSERT_TRUE(fs.ok()) << fs.status();
    files_ = *std::move(fs);
    fd_baseline_ = testing::OpenFdCount();
  }
  bool SkipWithoutUring() {
    if (files_->Capabilities().engines[0] == "uring: available") return false;
    return true;
  }

  void OpenGate() {
    absl::MutexLock lock(&gate_.mu);
    gate_.open = true;
  }
  bool WaitEntered(int n) {
    absl::MutexLock lock(&gate_.mu);
    auto entered = [&]() ABSL_SHARED_LOCKS_REQUIRED(gate_.mu) {
      return gate_.entered >= n;
    };
    return gate_.mu.AwaitWithTimeout(absl::Condition(&entered),
                                     absl::Seconds(10));
  }

  // A FIFO opened read-write (never blocks), where reads wait for data: an
  // io_uring read on it stays in the kernel until cancelled.
  File OpenFifo() {
    const std::string path = TempPath("fifo");
    EXPECT_EQ(mkfifo(path.c_str(), 0600), 0);
    File f = OpenOrDie(this, *files_, path, O_RDWR);
    unlink(path.c_str());
    return f;
  }

  Gate gate_;
};

void ExpectCancelled(const IoCapture& c) {
  EXPECT_EQ(c.calls, 1) << "exactly one completion";
  ASSERT_TRUE(c.value.has_value());
  EXPECT_TRUE(absl::IsCancelled(c.value->status())) << c.value->status();
  EXPECT_EQ(io::StatusErrno(c.value->status()), ECANCELED);
}

TEST_F(CancelTest, CloseCancelsReadsInTheIoUringKernel) {
  Make(EngineKind::kUring);
  if (SkipWithoutUring()) GTEST_SKIP() << "io_uring is not available here";
  File f = OpenFifo();
  IoCapture reads[3];
  for (IoCapture& r : reads) files_->Read(f, 0, Buffer(64), r.Callback());
  // Let the reads reach the kernel, where they wait for data.
  for (int i = 0; i < 3; ++i) service_->Poll();
  for (const IoCapture& r : reads) ASSERT_FALSE(r.done());
  DoneCapture closed;
  files_->Close(f, closed.Callback());
  EXPECT_FALSE(f.is_open());
  ASSERT_TRUE(RunUntil([&] { return closed.done(); }));
  EXPECT_TRUE(closed.value->ok()) << *closed.value;
  for (const IoCapture& r : reads) ExpectCancelled(r);
  const FileServiceMetrics m = files_->metrics();
  EXPECT_EQ(m.of(FileOpClass::kRead).late_completions, 3u)
      << "the kernel's -ECANCELED completions arrived and were discarded";
  EXPECT_NE(files_->EngineStats().find("cancels=3"), std::string::npos)
      << files_->EngineStats();
  EXPECT_EQ(service_->metrics().op(io::OpClass::kFileRead).cancelled, 3u);
}

TEST_F(CancelTest, CloseCancelsReadsQueuedAndRunningOnThePool) {
  Make(EngineKind::kPool);
  const std::string path = TempPath("pooled");
  WriteWholeFile(path, std::string(4096, 'a'));
  File f = OpenOrDie(this, *files_, path, O_RDONLY);
  // The data lane runs one task: the first read blocks inside preadv, the
  // second waits in the lane's queue.
  IoCapture running, queued;
  files_->Read(f, 0, Buffer(4096), running.Callback());
  files_->Read(f, 0, Buffer(4096), queued.Callback());
  ASSERT_TRUE(WaitEntered(1));
  DoneCapture closed;
  files_->Close(f, closed.Callback());
  ASSERT_TRUE(RunUntil([&] { return running.done() && queued.done(); }));
  ExpectCancelled(running);
  ExpectCancelled(queued);
  // The descriptor stays open while the worker still reads from it.
  for (int i = 0; i < 5; ++i) service_->Poll();
  EXPECT_FALSE(closed.done()) << "closed while a worker still used the fd";
  EXPECT_EQ(testing::OpenFdCount(), fd_baseline_ + 1);
  // The worker finishes, writing into the buffer the operation kept alive
  // (ASan would report a use-after-free otherwise); then the close runs.
  OpenGate();
  ASSERT_TRUE(RunUntil([&] { return closed.done(); }));
  EXPECT_TRUE(closed.value->ok()) << *closed.value;
  {
    absl::MutexLock lock(&gate_.mu);
    EXPECT_EQ(gate_.entered, 1) << "the queued read never ran";
  }
  EXPECT_EQ(files_->metrics().of(FileOpClass::kRead).late_completions, 2u);
  unlink(path.c_str());
}

TEST_F(CancelTest, DeadlineOnIoUringRead) {
  Make(EngineKind::kUring);
  if (SkipWithoutUring()) GTEST_SKIP() << "io_uring is not available here";
  File f = OpenFifo();
  IoCapture r;
  OpOptions opts;
  opts.deadline = absl::Now() + absl::Milliseconds(30);
  files_->Read(f, 0, Buffer(64), r.Callback(), opts);
  ASSERT_TRUE(RunUntil([&] { return r.done(); }));
  ASSERT_TRUE(absl::IsDeadlineExceeded(r.value->status())) << r.value->status();
  EXPECT_EQ(r.calls, 1);
  // The kernel request is cancelled; its completion is discarded.
  ASSERT_TRUE(RunUntil([&] {
    return files_->metrics().of(FileOpClass::kRead).late_completions == 1;
  }));
  EXPECT_EQ(r.calls, 1);
  EXPECT_EQ(files_->metrics().deadlines_expired, 1u);
  DoneCapture closed;
  files_->Close(f, closed.Callback());
  ASSERT_TRUE(RunUntil([&] { return closed.done(); }));
}

TEST_F(CancelTest, DeadlineOnARunningPoolReadKeepsTheBuffer) {
  Make(EngineKind::kPool);
  const std::string path = TempPath("slow");
  WriteWholeFile(path, std::string(100, 'z'));
  File f = OpenOrDie(this, *files_, path, O_RDONLY);
  IoCapture r;
  OpOptions opts;
  opts.deadline = absl::Now() + absl::Milliseconds(20);
  files_->Read(f, 0, Buffer(100), r.Callback(), opts);
  ASSERT_TRUE(WaitEntered(1));
  ASSERT_TRUE(RunUntil([&] { return r.done(); }));
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.value->status())) << r.value->status();
  OpenGate();  // the worker now writes into the buffer
  ASSERT_TRUE(RunUntil([&] {
    return files_->metrics().of(FileOpClass::kRead).late_completions == 1;
  }));
  EXPECT_EQ(r.calls, 1);
  unlink(path.c_str());
}

TEST_F(CancelTest, ShutdownWithOperationsInFlight) {
  Make(EngineKind::kAuto);
  const bool uring = !SkipWithoutUring();
  const std::string path = TempPath("shutdown");
  WriteWholeFile(path, std::string(10, 'q'));
  File pooled = OpenOrDie(this, *files_, path, O_RDONLY);
  File fifo = uring ? OpenFifo() : File();
  IoCapture on_worker, kernel;
  Captured<absl::StatusOr<File>> opening;
  OpOptions pool_opts;
  pool_opts.engine = EngineKind::kPool;
  // The gate opens once the caller has heard Cancelled: the service's
  // Shutdown() waits for results still coming from the pool.
  absl::Notification heard;
  std::thread opener([&] {
    heard.WaitForNotificationWithTimeout(absl::Seconds(20));
    OpenGate();
  });
  files_->Read(
      pooled, 0, Buffer(10),
      [&](absl::StatusOr<IoResult> r) {
        on_worker.Callback()(std::move(r));
        heard.Notify();
      },
      pool_opts);
  if (uring) files_->Read(fifo, 0, Buffer(10), kernel.Callback());
  files_->Open(path, O_RDONLY, 0, opening.Callback());
  ASSERT_TRUE(WaitEntered(1));
  service_->Poll();
  // The service ends while a worker reads, the kernel waits on the FIFO and
  // an open is in flight: each caller hears Cancelled exactly once.
  service_->Shutdown();
  opener.join();
  ExpectCancelled(on_worker);
  if (uring) ExpectCancelled(kernel);
  EXPECT_EQ(opening.calls, 1);
  // The open may have won the race; if it did, its File closes itself.
  pooled = File();
  fifo = File();
  opening.value.reset();
  files_.reset();  // waits for the kernel; closes what completed late
  pool_.reset();
  EXPECT_EQ(testing::OpenFdCount(), fd_baseline_) << testing::ListFds();
  unlink(path.c_str());
}

TEST_F(CancelTest, OpenAndCloseRacesLeakNothing) {
  OpenGate();  // pool reads run freely here
  for (EngineKind engine : {EngineKind::kUring, EngineKind::kPool}) {
    Make(engine, /*fast_path=*/true);
    const std::string path = TempPath("race");
    WriteWholeFile(path, std::string(8192, 'r'));
    constexpr int kRounds = 100;
    std::vector<Captured<absl::StatusOr<File>>> opens(kRounds);
    std::vector<File> kept;
    for (int i = 0; i < kRounds; ++i) {
      OpOptions opts;
      // Deadlines from "already passed" to "around the open's own time";
      // the second half is generous, so that some opens surely win.
      opts.deadline =
          absl::Now() +
          (i < kRounds / 2 ? absl::Microseconds(i * 40) : absl::Seconds(10));
      files_->Open(path, O_RDONLY, 0, opens[i].Callback(), opts);
      if (i % 2 == 0) service_->Poll();
    }
    ASSERT_TRUE(RunUntil([&] {
      for (auto& o : opens) {
        if (!o.done()) return false;
      }
      return true;
    }));
    int ok = 0;
    for (auto& o : opens) {
      EXPECT_EQ(o.calls, 1);
      if (o.value->ok()) {
        ++ok;
        kept.push_back(**std::move(o.value));
      } else {
        EXPECT_TRUE(absl::IsDeadlineExceeded(o.value->status()))
            << o.value->status();
      }
    }
    // Reads racing with closes: each read completes once, OK or Cancelled.
    // The first read may complete from the page cache; the second, with an
    // explicit engine, always goes to the engine.
    OpOptions on_engine;
    on_engine.engine = engine;
    std::vector<IoCapture> reads(kept.size() * 2);
    std::vector<DoneCapture> closes(kept.size());
    for (size_t i = 0; i < kept.size(); ++i) {
      files_->Read(kept[i], 0, Buffer(4096), reads[2 * i].Callback());
      files_->Read(kept[i], 4096, Buffer(4096), reads[2 * i + 1].Callback(),
                   on_engine);
      if (i % 2 == 0) service_->Poll();
      files_->Close(kept[i], closes[i].Callback());
    }
    ASSERT_TRUE(RunUntil([&] {
      for (auto& c : closes) {
        if (!c.done()) return false;
      }
      return FileServiceTestPeer::LiveOps(*files_) == 0;
    }));
    for (auto& r : reads) {
      EXPECT_EQ(r.calls, 1);
      EXPECT_TRUE(r.value->ok() || absl::IsCancelled(r.value->status()))
          << r.value->status();
    }
    for (auto& c : closes) EXPECT_TRUE(c.value->ok()) << *c.value;
    const FileServiceMetrics m = files_->metrics();
    EXPECT_GT(ok, 0) << EngineKindName(engine)
                     << ": no open won the race: the test proves little\n"
                     << m.ToString() << files_->EngineStats();
    EXPECT_EQ(testing::OpenFdCount(), fd_baseline_)
        << EngineKindName(engine) << " ok=" << ok << "\n"
        << m.ToString() << testing::ListFds();
    files_.reset();
    unlink(path.c_str());
  }
}

}  // namespace
}  // namespace aio
}  // namespace kqio
