// FileService::ReadFile: open + read to the end of the file + close, as one
// operation, by one of two routes.
//
// One pool task (Opcode::kReadWhole: open, fstat, read, close on one
// worker) is one hand-off where the steps take three: with the page cache
// hot, 1.6-1.8x libuv's files per second (libuv's uv_fs_* chain takes four)
// and the loop thread free, where the io_uring steps keep the loop thread
// busy (opens and cached reads run inline in io_uring_enter and on the fast
// path) and reach 1.2-1.4x.  With the page cache cold the steps win (1.4-1.7x
// against 0.8-1.0x): io_uring keeps every file's read at the disk, where
// the pool keeps one per worker.
//
// So the route is:
//  - the pool task where the pool serves opens (engine kPool, or kAuto
//    without io_uring, as on macOS);
//  - the steps where the caller or the options name another engine;
//  - under kAuto with io_uring serving opens, whichever suits the page
//    cache: a moving average of how many recent files were wholly cached
//    (the pool task's first read asks the page cache alone,
//    BlockingCalls::nowait_preadv; the steps' first read is the fast
//    path's, and a step's read is capped to the fast path's limit for it)
//    picks the pool task above one half, the steps below.  Both routes
//    report, so the choice follows the workload either way; without the
//    fast path nothing reports and the pool task stays.  An engine named
//    for any step's class in FileServiceOptions::engines keeps the steps.
//
// The steps are built on the public operations, so that every step goes
// through the engines, the ladder and the fast path.  They do not ask for
// the size first: the first read takes up to 64 KiB and a second one (at
// the end of the file: answered at once, by the page-cache fast path on
// Linux) confirms the end.  Only a file that fills the first chunk is
// fstat()ed, to size the buffer for the rest.  Small files save the fstat
// step, which io_uring always hands to a kernel worker thread
// (IORING_OP_STATX has no non-blocking path).
//
// The steps count in their own io::OpClass (file_open, file_read, ...); the
// whole counts once more as io::OpClass::kFileReadWhole, started here and
// done with the caller's answer.  The pool task counts only as the whole.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "aio/file_service.h"
#include "aio/internal/op.h"
#include "io/errno_status.h"
#include "io/io_service.h"
#include "io/service_metrics.h"

namespace kqio {
namespace aio {
namespace internal {

// One ReadFile in progress.  Each step's callback holds the job; the job
// calls its caller exactly once (Done).  Loop thread only.
struct ReadFileJob final : std::enable_shared_from_this<ReadFileJob> {
  // The first read's size; files of unknown size (st_size 0, e.g. /proc)
  // grow from there by doubling.
  static constexpr size_t kFirstChunk = 64 * 1024;

  std::shared_ptr<FileService*> service;
  // For the kFileReadWhole count.  Outlives the job's last step: every
  // step's callback runs on this service's loop, or in the FileService's
  // destructor, which runs before the IoService's.
  io::IoService* io = nullptr;
  io::MonoTime start;
  std::string path;
  OpOptions opts;
  FileService::IoCallback cb;
  size_t max_bytes = 0;
  File file;
  Buffer buffer;
  size_t done = 0;
  // Under the adaptive route (see the top): whether the reads that asked
  // the page cache found everything there, reported once at the end.
  bool adaptive = false;
  bool cache_known = false;
  bool all_cached = true;
  // The first read's size cap: the fast path's limit on the adaptive route,
  // so that the first read asks the page cache.
  size_t first_max = SIZE_MAX;
  bool stat_asked = false;  // fstat() once the first chunk came back full
  bool size_known = false;  // fstat() gave a size above the first chunk

  // Null if the service was destroyed since the last step.
  FileService* Service() {
    FileService* fs = *service;
    if (fs == nullptr) {
      Done(io::WithErrno(
          absl::CancelledError(absl::StrCat(
              "read_file(", path, "): cancelled: file service destroyed")),
          ECANCELED));
    }
    return fs;
  }

  void OnOpen(absl::StatusOr<File> f) {
    if (!f.ok()) return Done(f.status());
    file = *std::move(f);
    // A directory fails the read with EISDIR; a file over max_bytes fails
    // once fstat says so, or (size unknown) once max_bytes + 1 are read.
    buffer = Buffer(std::min({kFirstChunk, Room(), first_max}));
    ReadMore();
  }

  void AskSize() {
    stat_asked = true;
    FileService* fs = Service();
    if (fs == nullptr) return;
    fs->Fstat(
        file,
        [self = shared_from_this()](absl::StatusOr<struct stat> st) {
          self->OnStat(std::move(st));
        },
        opts);
  }

  void OnStat(absl::StatusOr<struct stat> st) {
    if (!st.ok()) return Done(st.status());
    const uint64_t size = static_cast<uint64_t>(st->st_size);
    if (size > max_bytes) return TooBig(absl::StrCat(size, " bytes is "));
    if (size > done) {
      size_known = true;
      buffer.Resize(static_cast<size_t>(size), done);
      return ReadMore();
    }
    if (size > 0) return Finish();  // all of it, as fstat says
    GrowOrRefuse();                 // st_size 0 (/proc): read on
  }

  void ReadMore() {
    FileService* fs = Service();
    if (fs == nullptr) return;
    const size_t len = buffer.size() - done;
    // Sized, then assigned: push_back trips a GCC -O1 maybe-uninitialized
    // false alarm inside InlinedVector.
    absl::InlinedVector<Buffer, 1> one(1);
    one[0] = std::move(buffer);
    fs->StartIo(Opcode::kRead, file, done, std::move(one), done, len, opts,
                [self = shared_from_this()](absl::Status s, Op& op) {
                  self->OnRead(std::move(s), op);
                });
  }

  void OnRead(absl::Status s, Op& op) {
    if (!s.ok()) return Done(std::move(s));
    if (adaptive && op.fast_tried) {
      // Served by the fast path, or the engine found nothing more (the
      // fast path stops at a page boundary, and a file of whole pages
      // then ends there).
      cache_known = true;
      all_cached &= op.engine == nullptr ||
                    op.result == static_cast<int64_t>(op.fast_bytes);
    }
    buffer = std::move(op.buffers[0]);
    const size_t n = static_cast<size_t>(op.result);
    done += n;
    if (n == 0 || (size_known && done == buffer.size())) return Finish();
    if (done < buffer.size()) return ReadMore();  // to the end of the file
    if (!stat_asked) return AskSize();
    GrowOrRefuse();  // full, and fstat said 0
  }

  void GrowOrRefuse() {
    if (done > max_bytes) return TooBig("");
    buffer.Resize(std::min(buffer.size() * 2, Room()), done);
    ReadMore();
  }

  // The largest buffer for content of unknown size: one byte past the
  // limit tells a file of exactly max_bytes from a longer one.
  size_t Room() const {
    return max_bytes == SIZE_MAX ? SIZE_MAX : max_bytes + 1;
  }

  void TooBig(absl::string_view what) {
    Done(absl::FailedPreconditionError(
        absl::StrCat("read_file(", path, "): ", what,
                     "more than read_file_max_bytes (", max_bytes, ")")));
  }

  // The result, moved to a buffer of its size if the first chunk (64 KiB
  // whatever the file's size) is more than twice that: the copy costs less
  // than the memory a caller keeping many small files would hold.
  void Finish() {
    if (cache_known && *service != nullptr) {
      (*service)->NoteReadFileCache(all_cached);
    }
    if (done <= buffer.size() / 2) buffer.Resize(done, done);
    Done(IoResult{std::move(buffer), done});
  }

  // The file closes asynchronously as `file` is released (File's
  // destructor semantics), after the caller has its answer.
  void Done(absl::StatusOr<IoResult> result) {
    File closing = std::move(file);
    auto callback = std::move(cb);
    io->RecordOpDone(io::OpClass::kFileReadWhole, start, result.status());
    callback(std::move(result));
  }
};

}  // namespace internal

namespace {
constexpr size_t kOpenClass = static_cast<size_t>(FileOpClass::kOpen);
}  // namespace

// Decided once, at creation: the options and the engine serving opens do
// not change afterwards.
bool FileService::ReadFileCanAdapt() const {
  if (choice_[kOpenClass].engine == EngineKind::kPool) return false;
  // An engine the options name for any step keeps the steps.
  for (FileOpClass c : {FileOpClass::kOpen, FileOpClass::kStat,
                        FileOpClass::kRead, FileOpClass::kClose}) {
    if (options_.engines[static_cast<size_t>(c)] != EngineKind::kAuto) {
      return false;
    }
  }
  return true;
}

// An exponential moving average with weight 1/16: about eleven files in a
// row move it across the middle.
void FileService::NoteReadFileCache(bool cached) {
  if (cached) {
    read_file_hot_ += (kReadFileHotScale - read_file_hot_) / 16;
  } else {
    read_file_hot_ -= read_file_hot_ / 16;
  }
}

void FileService::ReadFile(std::string path, IoCallback cb, OpOptions opts) {
  const bool adaptive =
      opts.engine == EngineKind::kAuto && read_file_can_adapt_;
  const EngineKind open_engine =
      opts.engine != EngineKind::kAuto
          ? opts.engine
          : choice_[kOpenClass].engine;
  if (open_engine == EngineKind::kPool ||
      (adaptive && (read_file_hot_ >= kReadFileHotScale / 2 ||
                    !fast_path_ok_))) {
    counters_.read_file_tasks.Add();
    auto op = NewOp(
        Opcode::kReadWhole, opts,
        [cb = std::move(cb), max = options_.read_file_max_bytes,
         token = adaptive ? token_ : nullptr](absl::Status s,
                                              internal::Op& o) mutable {
          if (io::StatusErrno(s) == EFBIG) {
            s = absl::FailedPreconditionError(
                absl::StrCat("read_file(", o.path_storage,
                             "): more than read_file_max_bytes (", max, ")"));
          }
          if (!s.ok()) return cb(std::move(s));
          if (token != nullptr && *token != nullptr) {
            (*token)->NoteReadFileCache(!o.read_cache_missed);
          }
          cb(IoResult{std::move(o.whole), static_cast<size_t>(o.result)});
        });
    op->requested = EngineKind::kPool;  // the only engine with kReadWhole
    op->path_storage = std::move(path);
    op->path = op->path_storage.c_str();
    op->read_out = &op->whole;
    op->read_max = options_.read_file_max_bytes;
    op->read_probe_cache = adaptive;
    Start(std::move(op));
    return;
  }
  counters_.read_file_steps.Add();
  auto job = std::make_shared<internal::ReadFileJob>();
  job->service = token_;
  job->io = &service_;
  job->start = service_.RecordOpStarted(io::OpClass::kFileReadWhole);
  job->path = path;
  job->opts = opts;
  job->cb = std::move(cb);
  job->max_bytes = options_.read_file_max_bytes;
  job->adaptive = adaptive;
  if (adaptive) {
    job->first_max = std::max<size_t>(1, options_.fast_path_max_bytes);
  }
  Open(
      std::move(path), O_RDONLY, 0,
      [job](absl::StatusOr<File> f) { job->OnOpen(std::move(f)); }, opts);
}

}  // namespace aio
}  // namespace kqio
