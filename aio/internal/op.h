// Internal to aio/: the core's record of one operation, and the shared state
// of an open file.  Loop thread only; see aio/file_service.cc for how the
// core moves an Op through its life.
#ifndef KQIO_AIO_INTERNAL_OP_H_
#define KQIO_AIO_INTERNAL_OP_H_

#include <sys/stat.h>
#include <sys/uio.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "aio/buffer.h"
#include "aio/engine.h"
#include "io/pending_operation.h"
#include "io/service_metrics.h"
#include "io/timer_queue.h"

namespace kqio {
namespace aio {

class FileService;

namespace internal {

struct Op;

// What a File holds; shared with the operations started on it, so that the
// descriptor outlives every request that names it.
struct FileState {
  FileState(int fd, std::string path, std::shared_ptr<FileService*> service)
      : fd(fd), path(std::move(path)), service(std::move(service)) {}
  FileState(const FileState&) = delete;
  FileState& operator=(const FileState&) = delete;
  // Closes a descriptor nobody took over: only on teardown paths (an Open
  // result whose callback never ran), so a blocking close() is acceptable.
  ~FileState();

  int fd;  // -1 once a close took it
  const std::string path;
  std::shared_ptr<FileService*> service;  // *service is null once it is gone
  int busy = 0;                // requests naming fd that an engine still holds
  bool closing = false;        // Close() or ~File() ran
  bool nowait_ok = true;       // preadv2(RWF_NOWAIT) not rejected for this file
  bool nowait_checked = false; // O_DIRECT looked for (TryFastPath)
  Op* pending_head = nullptr;  // operations still owed to their callers
  std::shared_ptr<Op> close_op;  // the close, waiting for busy == 0
};

struct Op final : Request, io::PendingOperation {
  explicit Op(FileService* owner) : owner(owner) {}
  ~Op() override;
  // IoService::Shutdown: complete with Cancelled.
  void Abort() override;

  absl::string_view subject() const {
    if (file != nullptr) return file->path;
    return path_storage;
  }

  FileService* const owner;
  // Membership of the service's list of live operations holds `live_ref`.
  std::shared_ptr<Op> live_ref;
  Op* live_prev = nullptr;
  Op* live_next = nullptr;
  // Membership of file->pending_head while owed to the caller.
  Op* file_prev = nullptr;
  Op* file_next = nullptr;
  bool in_file_list = false;
  std::shared_ptr<FileState> file;  // operations on an open file

  FileOpClass op_class = FileOpClass::kRead;
  io::OpClass metric = io::OpClass::kFileRead;
  io::MonoTime start;
  EngineKind requested = EngineKind::kAuto;
  absl::Time deadline = absl::InfiniteFuture();
  Engine* engine = nullptr;  // the engine holding it (while engine_busy)
  bool engine_busy = false;
  bool holds_fd = false;   // counted in file->busy
  bool user_done = false;  // the caller's completion is decided
  bool internal = false;   // no caller: a close the core runs itself
  bool parked = false;     // a close waiting for busy == 0 or a retry
  int eintr_retries = 0;
  io::TimerId timer;        // the deadline
  io::TimerId retry_timer;  // a close the pool could not take yet

  // What the request points into.
  std::string path_storage;
  // Inline for the common single-buffer read or write: no allocation.
  absl::InlinedVector<Buffer, 1> buffers;
  absl::InlinedVector<struct iovec, 1> iovs;
  struct stat st = {};
  Buffer whole;           // kReadWhole's result (read_out)
  size_t fast_bytes = 0;  // read by the page-cache fast path already
  bool fast_tried = false;  // the page cache answered the fast path
  int64_t result = 0;     // bytes (fast path included), or 0
  std::shared_ptr<FileState> opened;  // an Open's result
  int owned_fd = -1;  // a close's descriptor until an engine accepts it

  absl::AnyInvocable<void(absl::Status, Op&)> finish;
  absl::Status final_status;  // what `finish` gets, from Finish() to its call
};

}  // namespace internal
}  // namespace aio
}  // namespace kqio

#endif  // KQIO_AIO_INTERNAL_OP_H_
