// The fallback ladder (contract 4), its counting, and exactly-once delivery,
// proven with FaultEngine posing as io_uring: submissions refused with each
// ladder errno, refusals after acceptance, kernel errors that are the
// caller's, EINTR, short reads, requests stuck "in the kernel", and full
// pool lanes.  The fault engine wraps the real io_uring engine when there is
// one here, else a pool engine; the faults do not depend on which.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
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
using testing::OpenOrDie;
using testing::TempPath;
using testing::WriteWholeFile;

using IoCapture = Captured<absl::StatusOr<IoResult>>;
using DoneCapture = Captured<absl::Status>;
constexpr size_t kUring = static_cast<size_t>(EngineKind::kUring);
constexpr size_t kPool = static_cast<size_t>(EngineKind::kPool);

class LadderTest : public AioTest {
 public:
  void SetUp() override {
    AioTest::SetUp();
    path_ = TempPath("ladder");
    WriteWholeFile(path_, "abcdefghijklmnopqrstuvwxyz0123");
  }
  void TearDown() override {
    if (files_ != nullptr) {
      if (fault_ != nullptr && fault_->held() > 0) fault_->ReleaseHeld();
      EXPECT_TRUE(
          RunUntil([&] { return FileServiceTestPeer::LiveOps(*files_) == 0; },
                   absl::Seconds(5)))
          << "operations left pending";
      EXPECT_EQ(testing::OpenFdCount(), fd_baseline_) << testing::ListFds();
    }
    fault_ = nullptr;
    AioTest::TearDown();
    unlink(path_.c_str());
  }

  // A fresh FileService whose io_uring slot is a FaultEngine.  `setup` runs
  // on the fault engine before the service probes it.
  void Make(std::function<void(FaultEngine&)> setup = nullptr,
            FileServiceOptions o = FileServiceOptions(),
            const BlockingCalls* calls = nullptr) {
    if (files_ != nullptr) files_.reset();
    fault_ = nullptr;
    o.page_cache_fast_path = false;
    auto fs = FileServiceTestPeer::Create(
        *service_, *pool_, o,
        [&](EngineKind kind,
            std::unique_ptr<Engine> e) -> std::unique_ptr<Engine> {
          if (kind != EngineKind::kUring) return e;
          if (e == nullptr) e = NewPoolEngine(*service_, *pool_);
          auto fault =
              std::make_unique<FaultEngine>(kind, std::move(e), *service_);
          fault_ = fault.get();
          if (setup) setup(*fault);
          return fault;
        },
        calls);
    ASSERT_TRUE(fs.ok()) << fs.status();
    files_ = *std::move(fs);
    fd_baseline_ = testing::OpenFdCount();
  }

  template <typename T, typename StartFn>
  T Await(StartFn start) {
    Captured<T> got;
    start(got.Callback());
    EXPECT_EQ(got.calls, 0) << "never inside the call that started it";
    EXPECT_TRUE(RunUntil([&] { return got.done(); }));
    Drain();
    EXPECT_EQ(got.calls, 1) << "exactly one completion";
    if (!got.value.has_value()) return T(absl::InternalError("no completion"));
    return *std::move(got.value);
  }
  absl::StatusOr<IoResult> Read(const File& f, uint64_t off, size_t n) {
    return Await<absl::StatusOr<IoResult>>(
        [&](auto cb) { files_->Read(f, off, Buffer(n), std::move(cb)); });
  }
  FileServiceMetrics::PerClass ReadCounts() {
    return files_->metrics().of(FileOpClass::kRead);
  }

  std::string path_;
  FaultEngine* fault_ = nullptr;
};

TEST_F(LadderTest, EveryLadderErrnoAtSubmissionRunsTheOperationOnThePool) {
  for (int err : {EAGAIN, ENOSYS, EOPNOTSUPP, EINVAL}) {
    SCOPED_TRACE(strerror(err));
    Make();
    File f = OpenOrDie(this, *files_, path_, O_RDONLY);
    FaultEngine::Fault fault = FaultEngine::SubmitError(err);
    fault.only = Opcode::kRead;
    fault_->Push(fault);
    auto r = Read(f, 0, 5);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->data(), "abcde");
    EXPECT_EQ(ReadCounts().fallbacks, 1u);
    EXPECT_EQ(ReadCounts().submitted[kPool], 1u);
    EXPECT_EQ(ReadCounts().submitted[kUring], 0u);

    // Persistent errnos are remembered: the next read skips the engine.
    const int submits = fault_->submits();
    auto again = Read(f, 5, 5);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->data(), "fghij");
    const CapabilityReport report = files_->Capabilities();
    const auto& read_choice =
        report.classes[static_cast<size_t>(FileOpClass::kRead)];
    if (IsPersistentErrno(err)) {
      EXPECT_EQ(fault_->submits(), submits) << "remembered: not asked again";
      EXPECT_EQ(ReadCounts().fallbacks, 2u) << "a skip is a counted fallback";
      EXPECT_EQ(read_choice.engine, EngineKind::kPool);
      EXPECT_TRUE(absl::StrContains(read_choice.why, "remembered"))
          << read_choice.why;
    } else {
      EXPECT_EQ(fault_->submits(), submits + 1) << "transient: tried again";
      EXPECT_EQ(ReadCounts().submitted[kUring], 1u);
      EXPECT_EQ(read_choice.engine, EngineKind::kUring);
    }
    // Other classes are not affected.
    EXPECT_EQ(report.classes[static_cast<size_t>(FileOpClass::kOpen)].engine,
              EngineKind::kUring);
  }
}

TEST_F(LadderTest, RefusalAfterAcceptanceFallsBackToo) {
  for (int err : {EAGAIN, EOPNOTSUPP}) {
    SCOPED_TRACE(strerror(err));
    Make();
    File f = OpenOrDie(this, *files_, path_, O_RDONLY);
    FaultEngine::Fault fault = FaultEngine::RefuseLater(err);
    fault.only = Opcode::kRead;
    fault_->Push(fault);
    auto r = Read(f, 26, 10);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->data(), "0123");
    EXPECT_EQ(ReadCounts().fallbacks, 1u);
    EXPECT_EQ(ReadCounts().submitted[kPool], 1u);
    const CapabilityReport report = files_->Capabilities();
    const auto& choice =
        report.classes[static_cast<size_t>(FileOpClass::kRead)];
    EXPECT_EQ(choice.engine,
              IsPersistentErrno(err) ? EngineKind::kPool : EngineKind::kUring);
  }
}

TEST_F(LadderTest, OtherSubmissionErrorsAreTheCallers) {
  Make();
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  FaultEngine::Fault fault = FaultEngine::SubmitError(EBADF);
  fault.only = Opcode::kRead;
  fault_->Push(fault);
  auto r = Read(f, 0, 5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(io::StatusErrno(r.status()), EBADF) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "read(" + path_ + ")"))
      << r.status();
  EXPECT_EQ(ReadCounts().fallbacks, 0u);
  EXPECT_EQ(ReadCounts().submitted[kPool], 0u);
}

TEST_F(LadderTest, EinvalFromARequestThatRanIsNotAFallback) {
  Make();
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  FaultEngine::Fault fault = FaultEngine::CompleteWith(-EINVAL);
  fault.only = Opcode::kRead;
  fault_->Push(fault);
  auto r = Read(f, 0, 5);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_EQ(ReadCounts().fallbacks, 0u);
  EXPECT_EQ(ReadCounts().submitted[kPool], 0u);
  EXPECT_EQ(files_->Capabilities()
                .classes[static_cast<size_t>(FileOpClass::kRead)]
                .engine,
            EngineKind::kUring);
}

TEST_F(LadderTest, EintrCompletionsAreRetried) {
  FileServiceOptions o;
  o.max_eintr_retries = 2;
  Make(nullptr, o);
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  FaultEngine::Fault eintr = FaultEngine::CompleteWith(-EINTR);
  eintr.only = Opcode::kRead;
  fault_->Push(eintr);
  fault_->Push(eintr);
  auto r = Read(f, 0, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data(), "abc");
  EXPECT_EQ(ReadCounts().eintr_retries, 2u);
  // Past the limit the caller sees EINTR.
  for (int i = 0; i < 3; ++i) fault_->Push(eintr);
  auto failed = Read(f, 0, 3);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(io::StatusErrno(failed.status()), EINTR) << failed.status();
}

ssize_t (*real_preadv)(int, const struct iovec*, int, off_t) = ::preadv;
std::atomic<int> interrupted_calls{0};
ssize_t InterruptedThrice(int fd, const struct iovec* iov, int n, off_t off) {
  if (interrupted_calls.fetch_add(1) < 3) {
    errno = EINTR;
    return -1;
  }
  return real_preadv(fd, iov, n, off);
}

TEST_F(LadderTest, PoolRetriesEintrFromPread) {
  interrupted_calls = 0;
  static const BlockingCalls calls = {InterruptedThrice, nullptr};
  FileServiceOptions o;
  o.engines.fill(EngineKind::kPool);
  Make(nullptr, o, &calls);
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  auto r = Read(f, 0, 4);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data(), "abcd");
  EXPECT_EQ(interrupted_calls.load(), 4);
  EXPECT_EQ(ReadCounts().eintr_retries, 0u) << "retried inside the pool work";
}

TEST_F(LadderTest, ShortReadsAreResultsAndReadFileCompletesThem) {
  Make();
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  FaultEngine::Fault short_read = FaultEngine::ShortRead(3);
  short_read.only = Opcode::kRead;
  fault_->Push(short_read);
  auto r = Read(f, 0, 10);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes, 3u);
  EXPECT_EQ(r->data(), "abc");

  // ReadFile's steps (an engine named: not its pool task) read on.
  short_read.value = 7;
  for (int i = 0; i < 4; ++i) fault_->Push(short_read);
  OpOptions steps;
  steps.engine = EngineKind::kUring;
  auto whole = Await<absl::StatusOr<IoResult>>(
      [&](auto cb) { files_->ReadFile(path_, std::move(cb), steps); });
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->data(), "abcdefghijklmnopqrstuvwxyz0123");
  EXPECT_EQ(fault_->faults_left(), 0u);
}

TEST_F(LadderTest, UnsupportedOpcodesGoToThePool) {
  Make([](FaultEngine& e) {
    e.SetUnsupported(Opcode::kReadv);
    e.SetUnsupported(Opcode::kOpen);
  });
  const CapabilityReport report = files_->Capabilities();
  const auto& open = report.classes[static_cast<size_t>(FileOpClass::kOpen)];
  EXPECT_EQ(open.engine, EngineKind::kPool);
  EXPECT_TRUE(absl::StrContains(open.why, "unsupported (fault injection)"))
      << open.why;
  EXPECT_EQ(report.classes[static_cast<size_t>(FileOpClass::kRead)].engine,
            EngineKind::kUring);

  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  std::vector<Buffer> bufs;
  bufs.push_back(Buffer(2));
  bufs.push_back(Buffer(2));
  auto rv = Await<absl::StatusOr<IoVecResult>>(
      [&](auto cb) { files_->ReadV(f, 0, std::move(bufs), std::move(cb)); });
  ASSERT_TRUE(rv.ok()) << rv.status();
  EXPECT_EQ(rv->bytes, 4u);
  EXPECT_EQ(ReadCounts().submitted[kPool], 1u);
  EXPECT_EQ(ReadCounts().fallbacks, 1u);
  // Not remembered: a plain read still goes to the engine.
  ASSERT_TRUE(Read(f, 0, 1).ok());
  EXPECT_EQ(ReadCounts().submitted[kUring], 1u);
}

TEST_F(LadderTest, CloseWaitsForARequestStuckInTheKernel) {
  Make();
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);
  FaultEngine::Fault hold = FaultEngine::Hold();
  hold.only = Opcode::kRead;
  fault_->Push(hold);
  IoCapture read;
  files_->Read(f, 0, Buffer(16), read.Callback());
  service_->Poll();
  ASSERT_EQ(fault_->held(), 1u);
  DoneCapture closed;
  files_->Close(f, closed.Callback());
  ASSERT_TRUE(RunUntil([&] { return read.done(); }));
  EXPECT_TRUE(absl::IsCancelled(read.value->status())) << read.value->status();
  EXPECT_GE(fault_->cancels(), 1);
  for (int i = 0; i < 5; ++i) service_->Poll();
  EXPECT_FALSE(closed.done()) << "the descriptor is still named by a request";
  // The "kernel" finishes, writing into the buffer (kept alive: ASan checks).
  fault_->CompleteHeld(16, 'x');
  ASSERT_TRUE(RunUntil([&] { return closed.done(); }));
  EXPECT_TRUE(closed.value->ok()) << *closed.value;
  EXPECT_EQ(read.calls, 1);
  EXPECT_EQ(ReadCounts().late_completions, 1u);
}

TEST_F(LadderTest, AnOpenThatCompletesAfterItsDeadlineIsClosed) {
  Make();
  FaultEngine::Fault hold = FaultEngine::Hold();
  hold.only = Opcode::kOpen;
  fault_->Push(hold);
  Captured<absl::StatusOr<File>> opened;
  OpOptions opts;
  opts.deadline = absl::Now() + absl::Milliseconds(20);
  files_->Open(path_, O_RDONLY, 0, opened.Callback(), opts);
  ASSERT_TRUE(RunUntil([&] { return opened.done(); }));
  EXPECT_TRUE(absl::IsDeadlineExceeded(opened.value->status()))
      << opened.value->status();
  fault_->ReleaseHeld();  // the open now really happens
  ASSERT_TRUE(RunUntil([&] {
    return files_->metrics().orphan_fds_closed == 1 &&
           FileServiceTestPeer::LiveOps(*files_) == 0;
  }));
  EXPECT_EQ(opened.calls, 1);
  EXPECT_EQ(testing::OpenFdCount(), fd_baseline_) << "the late fd was closed";
}

// Every operation class under every kind of fault completes exactly once,
// never inline, with the expected outcome.
TEST_F(LadderTest, ExactlyOnceUnderEveryFault) {
  struct Case {
    const char* name;
    FaultEngine::Fault fault;
    bool ok;
  };
  const std::vector<Case> cases = {
      {"submit EAGAIN", FaultEngine::SubmitError(EAGAIN), true},
      {"submit ENOSYS", FaultEngine::SubmitError(ENOSYS), true},
      {"submit EOPNOTSUPP", FaultEngine::SubmitError(EOPNOTSUPP), true},
      {"submit EINVAL", FaultEngine::SubmitError(EINVAL), true},
      {"refused later EAGAIN", FaultEngine::RefuseLater(EAGAIN), true},
      {"refused later ENOSYS", FaultEngine::RefuseLater(ENOSYS), true},
      {"kernel EIO", FaultEngine::CompleteWith(-EIO), false},
      {"EINTR once", FaultEngine::CompleteWith(-EINTR), true},
  };
  for (const Case& c : cases) {
    for (Opcode op :
         {Opcode::kOpen, Opcode::kStat, Opcode::kFstat, Opcode::kRead,
          Opcode::kWrite, Opcode::kFsync, Opcode::kClose}) {
      SCOPED_TRACE(std::string(c.name) + " on " + OpcodeName(op));
      Make();
      File f = OpenOrDie(this, *files_, path_, O_RDWR);
      FaultEngine::Fault fault = c.fault;
      fault.only = op;
      fault_->Push(fault);
      absl::Status status;
      switch (op) {
        case Opcode::kOpen:
          status = Await<absl::StatusOr<File>>([&](auto cb) {
                     files_->Open(path_, O_RDONLY, 0, std::move(cb));
                   }).status();
          break;
        case Opcode::kStat:
          status = Await<absl::StatusOr<struct stat>>([&](auto cb) {
                     files_->Stat(path_, std::move(cb));
                   }).status();
          break;
        case Opcode::kFstat:
          status = Await<absl::StatusOr<struct stat>>([&](auto cb) {
                     files_->Fstat(f, std::move(cb));
                   }).status();
          break;
        case Opcode::kRead:
          status = Read(f, 0, 4).status();
          break;
        case Opcode::kWrite:
          status = Await<absl::StatusOr<IoResult>>([&](auto cb) {
                     files_->Write(f, 0, Buffer::CopyOf("a"), std::move(cb));
                   }).status();
          break;
        case Opcode::kFsync:
          status = Await<absl::Status>(
              [&](auto cb) { files_->Fsync(f, std::move(cb)); });
          break;
        default:
          status = Await<absl::Status>(
              [&](auto cb) { files_->Close(f, std::move(cb)); });
          break;
      }
      EXPECT_EQ(status.ok(), c.ok) << status;
      EXPECT_EQ(fault_->faults_left(), 0u) << "the fault was exercised";
      f = File();
      ASSERT_TRUE(
          RunUntil([&] { return FileServiceTestPeer::LiveOps(*files_) == 0; }));
      EXPECT_EQ(testing::OpenFdCount(), fd_baseline_) << testing::ListFds();
    }
  }
}

TEST_F(LadderTest, AFullPoolLaneIsResourceExhaustedDeferred) {
  // Replace the pool: one data worker, a queue of one.
  pool_.reset();
  threadpool::ThreadPoolOptions po;
  po.num_threads = 2;
  po.lanes[threadpool::LaneIndex(threadpool::Lane::kData)] = {1, 1};
  po.lanes[threadpool::LaneIndex(threadpool::Lane::kMetadata)] = {1, 1};
  pool_ = *threadpool::ThreadPool::Create(po);
  FileServiceOptions o;
  o.engines.fill(EngineKind::kPool);
  Make(nullptr, o);
  File f = OpenOrDie(this, *files_, path_, O_RDONLY);

  absl::Notification release;
  // Occupies the lane's one worker, and returns once it runs: until then
  // the task itself would fill the queue of one.
  auto block = [&](threadpool::Lane lane) {
    auto started = std::make_shared<absl::Notification>();
    ASSERT_TRUE(pool_
                    ->Submit(
                        lane, *service_,
                        [&release, started] {
                          started->Notify();
                          release.WaitForNotification();
                        },
                        [](absl::Status) {})
                    .ok());
    started->WaitForNotification();
  };
  block(threadpool::Lane::kData);  // runs
  IoCapture queued, refused;
  files_->Read(f, 0, Buffer(4), queued.Callback());   // waits in the queue
  files_->Read(f, 0, Buffer(4), refused.Callback());  // lane full
  EXPECT_EQ(refused.calls, 0) << "not inline, even when refused";
  ASSERT_TRUE(RunUntil([&] { return refused.done(); }));
  EXPECT_TRUE(absl::IsResourceExhausted(refused.value->status()))
      << refused.value->status();
  EXPECT_TRUE(absl::StrContains(refused.value->status().message(),
                                "read(" + path_ + ")"));

  // A close that finds the metadata lane full is retried, not dropped.
  block(threadpool::Lane::kMetadata);  // runs
  Captured<absl::StatusOr<struct stat>> stat_queued;
  files_->Stat(path_, stat_queued.Callback());  // fills the metadata queue
  DoneCapture closed;
  files_->Close(f, closed.Callback());
  for (int i = 0; i < 5; ++i) service_->Poll();
  EXPECT_FALSE(closed.done());
  release.Notify();
  ASSERT_TRUE(RunUntil([&] { return closed.done() && queued.done(); }));
  EXPECT_TRUE(closed.value->ok()) << *closed.value;
  EXPECT_EQ(queued.calls, 1);
  EXPECT_EQ(refused.calls, 1);
}

}  // namespace
}  // namespace aio
}  // namespace kqio
