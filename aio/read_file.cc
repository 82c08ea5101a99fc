// FileService::ReadFile: open + fstat + read (until the size fstat gave, or
// end of file) + close, as one operation built on the public ones, so that
// every step goes through the engines, the ladder and the fast path.
// The steps count in their own io::OpClass (file_open, file_stat, ...); the
// whole counts once more as io::OpClass::kFileReadWhole, started here and
// done with the caller's answer.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
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
  // Files of unknown size (st_size 0, e.g. /proc) are read in chunks that
  // double from this.
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
  bool size_known = false;

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
    if (S_ISDIR(st->st_mode)) {
      return Done(io::ErrnoStatus(EISDIR, "read_file", path));
    }
    const uint64_t size = static_cast<uint64_t>(st->st_size);
    if (size > max_bytes) {
      return Done(absl::FailedPreconditionError(absl::StrCat(
          "read_file(", path, "): ", size,
          " bytes is more than read_file_max_bytes (", max_bytes, ")")));
    }
    size_known = size > 0;
    buffer = Buffer(size_known ? static_cast<size_t>(size)
                               : std::min(kFirstChunk, max_bytes));
    if (buffer.empty()) return Done(IoResult{std::move(buffer), 0});
    ReadMore();
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
    buffer = std::move(op.buffers[0]);
    const size_t n = static_cast<size_t>(op.result);
    done += n;
    if (n == 0 || (size_known && done == buffer.size())) {
      return Done(IoResult{std::move(buffer), done});
    }
    if (done == buffer.size()) {  // unknown size, buffer full: grow
      if (buffer.size() >= max_bytes) {
        return Done(absl::FailedPreconditionError(absl::StrCat(
            "read_file(", path, "): more than read_file_max_bytes (", max_bytes,
            ")")));
      }
      Buffer bigger(std::min(buffer.size() * 2, max_bytes));
      std::memcpy(bigger.data(), buffer.data(), done);
      buffer = std::move(bigger);
    }
    ReadMore();  // a short read: the rest
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

void FileService::ReadFile(std::string path, IoCallback cb, OpOptions opts) {
  auto job = std::make_shared<internal::ReadFileJob>();
  job->service = token_;
  job->io = &service_;
  job->start = service_.RecordOpStarted(io::OpClass::kFileReadWhole);
  job->path = path;
  job->opts = opts;
  job->cb = std::move(cb);
  job->max_bytes = options_.read_file_max_bytes;
  Open(
      std::move(path), O_RDONLY, 0,
      [job](absl::StatusOr<File> f) { job->OnOpen(std::move(f)); }, opts);
}

}  // namespace aio
}  // namespace kqio
