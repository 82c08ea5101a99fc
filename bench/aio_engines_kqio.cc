// kqio's side of //bench:aio_engines_benchmark: one IoService, ThreadPool and
// FileService per cell, created and destroyed here (so that between cells
// the process has no thread but the driver's; see aio_engines.h).
//
//   kqio-uring  every operation with OpOptions::engine = kUring: the
//               io_uring engine, the page-cache fast path skipped
//   kqio-pool   OpOptions::engine = kPool: the thread pool (`threads`
//               workers, data and metadata lanes as wide as the pool)
//   kqio-auto   the FileService's defaults (io_uring here, with the
//               preadv2(RWF_NOWAIT) fast path on the loop thread)
#include <fcntl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "aio/file_service.h"
#include "bench/aio_engines.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace bench {
namespace {

using Clock = Recorder::Clock;

// The loop, the pool and the file service of one cell.  Destroyed in
// reverse order of creation (FileService first, as its header asks).
struct KqioStack {
  std::unique_ptr<io::IoService> service;
  std::unique_ptr<threadpool::ThreadPool> pool;
  std::unique_ptr<aio::FileService> files;
  aio::OpOptions opts;

  ~KqioStack() {
    files.reset();
    pool.reset();
    service.reset();
  }
};

absl::Status MakeStack(const Cell& cell, KqioStack& s) {
  auto service = io::IoService::Create();
  if (!service.ok()) return service.status();
  s.service = *std::move(service);
  threadpool::ThreadPoolOptions po;
  // io_uring cells need a pool only for what the ring cannot do; one worker.
  const int threads = cell.threads > 0 ? cell.threads : 1;
  po.num_threads = threads;
  // Every queued operation of the cell fits: qd is at most a few hundred.
  po.lanes[threadpool::LaneIndex(threadpool::Lane::kMetadata)] = {threads,
                                                                  1 << 16};
  po.lanes[threadpool::LaneIndex(threadpool::Lane::kData)] = {threads, 1 << 16};
  auto pool = threadpool::ThreadPool::Create(po);
  if (!pool.ok()) return pool.status();
  s.pool = *std::move(pool);
  aio::FileServiceOptions fo;
  fo.uring.entries = 256;
  fo.uring.max_in_flight = 256;
  auto files = aio::FileService::Create(*s.service, *s.pool, fo);
  if (!files.ok()) return files.status();
  s.files = *std::move(files);
  if (cell.engine == kKqioUring) {
    s.opts.engine = aio::EngineKind::kUring;
    const aio::CapabilityReport report = s.files->Capabilities();
    const auto& read =
        report.classes[static_cast<size_t>(aio::FileOpClass::kRead)];
    if (read.engine != aio::EngineKind::kUring) {
      return absl::UnavailableError(
          absl::StrCat("io_uring does not serve reads here: ", read.why));
    }
  } else if (cell.engine == kKqioPool) {
    s.opts.engine = aio::EngineKind::kPool;
  } else if (cell.engine != kKqioAuto) {
    return absl::InvalidArgumentError("not a kqio engine: " + cell.engine);
  }
  return absl::OkStatus();
}

// Random or sequential block reads of one file, `qd` in flight.
class ReadRun final {
 public:
  ReadRun(const Cell& cell, const Data& data, const Limits& limits,
          KqioStack& stack)
      : stack_(stack),
        block_(BlockSize(cell.workload)),
        offsets_(cell.workload, data.big_bytes, limits.seed),
        recorder_(limits) {}

  Measurement Run(const aio::File& file, int qd) {
    file_ = &file;
    for (int i = 0; i < qd; ++i) {
      spare_.push_back(aio::Buffer::Aligned(block_, 4096));
    }
    for (int i = 0; i < qd; ++i) Issue();
    while (in_flight_ > 0) stack_.service->RunOnce();
    return recorder_.Finish();
  }

 private:
  void Issue() {
    if (spare_.empty() || !recorder_.MayStart()) return;
    aio::Buffer buffer = std::move(spare_.back());
    spare_.pop_back();
    ++in_flight_;
    const Clock::time_point started = Clock::now();
    stack_.files->Read(
        *file_, offsets_.Next(), std::move(buffer),
        [this, started](absl::StatusOr<aio::IoResult> r) {
          --in_flight_;
          if (!r.ok()) {
            recorder_.Fail(r.status().ToString());
            return;
          }
          if (r->bytes != block_) {
            recorder_.Fail(absl::StrCat("short read: ", r->bytes));
          }
          recorder_.Done(started, r->bytes);
          spare_.push_back(std::move(r->buffer));
          Issue();
        },
        stack_.opts);
  }

  KqioStack& stack_;
  const size_t block_;
  OffsetGenerator offsets_;
  Recorder recorder_;
  const aio::File* file_ = nullptr;
  std::vector<aio::Buffer> spare_;
  int in_flight_ = 0;
};

// ReadFile (open + fstat + read + close as one operation) over the small
// files in order, wrapping, `qd` files in flight.
class SmallFilesRun final {
 public:
  SmallFilesRun(const Data& data, const Limits& limits, KqioStack& stack)
      : stack_(stack), paths_(data.small_paths), recorder_(limits) {}

  Measurement Run(int qd) {
    for (int i = 0; i < qd; ++i) Issue();
    while (in_flight_ > 0) stack_.service->RunOnce();
    return recorder_.Finish();
  }

 private:
  void Issue() {
    if (paths_.empty() || !recorder_.MayStart()) return;
    const std::string& path = paths_[next_];
    next_ = (next_ + 1) % paths_.size();
    ++in_flight_;
    const Clock::time_point started = Clock::now();
    stack_.files->ReadFile(
        path,
        [this, started](absl::StatusOr<aio::IoResult> r) {
          --in_flight_;
          if (!r.ok()) {
            recorder_.Fail(r.status().ToString());
            return;
          }
          recorder_.Done(started, r->bytes);
          Issue();
        },
        stack_.opts);
  }

  KqioStack& stack_;
  const std::vector<std::string>& paths_;
  Recorder recorder_;
  size_t next_ = 0;
  int in_flight_ = 0;
};

// How the loop waited for the pool's results (IoService::Options::nap_us,
// spin_before_sleep_us).
std::string LoopNote(const io::IoService& service) {
  const io::Metrics m = service.metrics();
  return absl::StrCat("; loop: naps ", m.loop_naps, " (empty ",
                      m.loop_naps_empty, ", long ", m.loop_naps_long,
                      ") spins ", m.loop_spins, " (hits ", m.loop_spin_hits,
                      ") wakeups ", m.wakeups_sent);
}

// Which path served the reads: the page-cache fast path (whole / partial
// hits), or the engines; with `steps`, also which engines served the opens,
// fstats and closes (small files).
std::string ReadNote(const aio::FileService& files, bool steps) {
  const aio::FileServiceMetrics m = files.metrics();
  auto served = [&](aio::FileOpClass c) {
    const auto& pc = m.of(c);
    return absl::StrCat(
        "uring ", pc.submitted[static_cast<size_t>(aio::EngineKind::kUring)],
        " pool ", pc.submitted[static_cast<size_t>(aio::EngineKind::kPool)]);
  };
  std::string note = absl::StrCat(
      "reads: fast path ", m.fast_path_hits, "+", m.fast_path_partial, " ",
      served(aio::FileOpClass::kRead), " fallbacks ",
      m.of(aio::FileOpClass::kRead).fallbacks);
  if (steps) {
    for (aio::FileOpClass c : {aio::FileOpClass::kOpen, aio::FileOpClass::kStat,
                               aio::FileOpClass::kClose}) {
      absl::StrAppend(&note, "; ", aio::FileOpClassName(c), ": ", served(c));
    }
  }
  return note;
}

}  // namespace

std::string KqioCapabilities() {
  Cell cell;
  cell.engine = kKqioAuto;
  KqioStack stack;
  absl::Status made = MakeStack(cell, stack);
  if (!made.ok()) return "kqio: " + made.ToString() + "\n";
  return stack.files->Capabilities().ToString();
}

absl::StatusOr<Measurement> RunKqio(const Cell& cell, const Data& data,
                                    const Limits& limits) {
  KqioStack stack;
  absl::Status made = MakeStack(cell, stack);
  if (!made.ok()) return made;
  if (cell.workload == Workload::kSmallFiles) {
    SmallFilesRun run(data, limits, stack);
    Measurement m = run.Run(cell.qd);
    m.note = ReadNote(*stack.files, /*steps=*/true) + LoopNote(*stack.service);
    return m;
  }
  int flags = O_RDONLY;
  if (cell.cache == Cache::kCold && data.direct_ok) flags |= O_DIRECT;
  absl::StatusOr<aio::File> file = absl::UnknownError("not opened");
  bool opened = false;
  stack.files->Open(
      data.big_path, flags, 0,
      [&](absl::StatusOr<aio::File> f) {
        file = std::move(f);
        opened = true;
      },
      stack.opts);
  while (!opened) stack.service->RunOnce();
  if (!file.ok()) return file.status();
  Measurement m;
  {
    ReadRun run(cell, data, limits, stack);
    m = run.Run(*file, cell.qd);
  }
  m.note = ReadNote(*stack.files, /*steps=*/false) + LoopNote(*stack.service);
  if (cell.engine == kKqioPool && m.seconds > 0) {
    // How much of the workers' time went into the reads themselves: near
    // 100% means the pool added nothing between one read and the next, and
    // what remains is the device.
    const threadpool::LaneMetrics data_lane =
        stack.pool->Metrics().lanes[threadpool::LaneIndex(
            threadpool::Lane::kData)];
    // run is sampled (ThreadPoolOptions::latency_sample_every): its mean
    // times the tasks that ran.
    const double busy = absl::ToDoubleSeconds(data_lane.run.Mean()) *
                        static_cast<double>(data_lane.completed) /
                        (m.seconds * cell.threads);
    absl::StrAppend(&m.note, "; workers in preadv ",
                    absl::StrFormat("%.0f%%", 100 * busy));
  }
  bool closed = false;
  stack.files->Close(*file, [&](absl::Status) { closed = true; });
  while (!closed) stack.service->RunOnce();
  return m;
}

}  // namespace bench
}  // namespace kqio
