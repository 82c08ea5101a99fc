// FileService's public operations: each builds an internal::Op (a Request
// plus what the caller gets back) and hands it to the core (Start), and
// File, the handle that owns a descriptor.  Also the page-cache fast path.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aio/file_service.h"
#include "aio/internal/op.h"
#include "io/errno_status.h"

namespace kqio {
namespace aio {

using internal::FileState;
using internal::Op;

namespace {

// FileService::Finisher, which is private.
using Finisher = absl::AnyInvocable<void(absl::Status, Op&)>;

io::OpClass MetricOf(Opcode op) {
  if (op == Opcode::kReadWhole) return io::OpClass::kFileReadWhole;
  switch (ClassOf(op)) {
    case FileOpClass::kOpen:
      return io::OpClass::kFileOpen;
    case FileOpClass::kStat:
      return io::OpClass::kFileStat;
    case FileOpClass::kRead:
      return io::OpClass::kFileRead;
    case FileOpClass::kWrite:
      return io::OpClass::kFileWrite;
    case FileOpClass::kFsync:
      return io::OpClass::kFileFsync;
    case FileOpClass::kClose:
      return io::OpClass::kFileClose;
  }
  return io::OpClass::kFileRead;
}

}  // namespace

// ---------------------------------------------------------------------------
// File.

File::File(std::shared_ptr<FileState> state) : state_(std::move(state)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    Release();
    state_ = std::move(other.state_);
  }
  return *this;
}

File::~File() { Release(); }

// Closes asynchronously through the service, which first completes what is
// pending on the file with Cancelled; with the service gone, closes here.
void File::Release() {
  std::shared_ptr<FileState> state = std::move(state_);
  if (state == nullptr || state->fd < 0 || state->closing) return;
  FileService* service = *state->service;
  if (service != nullptr) {
    service->CloseState(std::move(state), nullptr, OpOptions());
  } else {
    close(state->fd);
    state->fd = -1;
  }
}

bool File::is_open() const {
  return state_ != nullptr && state_->fd >= 0 && !state_->closing;
}

int File::fd() const { return is_open() ? state_->fd : -1; }

const std::string& File::path() const {
  static const std::string* const kNone = new std::string();
  return state_ != nullptr ? state_->path : *kNone;
}

// ---------------------------------------------------------------------------
// Building operations.

std::shared_ptr<Op> FileService::NewOp(Opcode opcode, const OpOptions& opts,
                                       Finisher finish) {
  auto op = std::make_shared<Op>(this);
  op->opcode = opcode;
  op->op_class = ClassOf(opcode);
  op->metric = MetricOf(opcode);
  op->requested = opts.engine;
  op->deadline = opts.deadline;
  op->finish = std::move(finish);
  op->sink = this;
  return op;
}

bool FileService::BindFile(const std::shared_ptr<Op>& op, const File& file) {
  const std::shared_ptr<FileState>& state = file.state_;
  if (state == nullptr || state->fd < 0 || state->closing) {
    op->path_storage = state != nullptr ? state->path : "closed file";
    Start(op, io::ErrnoStatus(EBADF, OpcodeName(op->opcode), op->path_storage));
    return false;
  }
  op->file = state;
  op->fd = state->fd;
  return true;
}

void FileService::Open(std::string path, int flags, mode_t mode,
                       OpenCallback cb, OpOptions opts) {
  auto op = NewOp(Opcode::kOpen, opts,
                  [cb = std::move(cb)](absl::Status s, Op& o) mutable {
                    if (!s.ok()) return cb(std::move(s));
                    cb(File(std::move(o.opened)));
                  });
  op->path_storage = std::move(path);
  op->path = op->path_storage.c_str();
  op->flags = flags;
  op->mode = mode;
  Start(std::move(op));
}

void FileService::OpenAt(int dir_fd, std::string path, int flags, mode_t mode,
                         OpenAtOptions at, OpenCallback cb, OpOptions opts) {
  auto op = NewOp(Opcode::kOpenAt, opts,
                  [cb = std::move(cb)](absl::Status s, Op& o) mutable {
                    if (!s.ok()) return cb(std::move(s));
                    cb(File(std::move(o.opened)));
                  });
  // openat2 has no AT_EMPTY_PATH: the directory itself is ".".
  op->path_storage = path.empty() ? std::string(".") : std::move(path);
  op->path = op->path_storage.c_str();
  op->flags = flags;
  op->mode = mode;
  op->resolve = (at.beneath ? kResolveBeneath : 0) |
                (at.no_symlinks ? kResolveNoSymlinks : 0);
  if (dir_fd != AT_FDCWD) {
    // The operation's own reference to the directory (see the header): one
    // fcntl on the loop, which never waits for a disk.
    op->owned_dir_fd = dir_fd >= 0 ? fcntl(dir_fd, F_DUPFD_CLOEXEC, 0) : -1;
    if (op->owned_dir_fd < 0) {
      const int err = dir_fd >= 0 ? errno : EBADF;
      Start(op, io::ErrnoStatus(err, "openat", op->path_storage));
      return;
    }
    op->dir_fd = op->owned_dir_fd;
  }
  Start(std::move(op));
}

namespace {

Finisher StatFinisher(FileService::StatCallback cb) {
  return [cb = std::move(cb)](absl::Status s, Op& o) mutable {
    if (!s.ok()) return cb(std::move(s));
    cb(o.st);
  };
}

Finisher DoneFinisher(FileService::DoneCallback cb) {
  return
      [cb = std::move(cb)](absl::Status s, Op&) mutable { cb(std::move(s)); };
}

}  // namespace

void FileService::Stat(std::string path, StatCallback cb, OpOptions opts) {
  auto op = NewOp(Opcode::kStat, opts, StatFinisher(std::move(cb)));
  op->path_storage = std::move(path);
  op->path = op->path_storage.c_str();
  op->stat_out = &op->st;
  Start(std::move(op));
}

void FileService::Fstat(const File& file, StatCallback cb, OpOptions opts) {
  auto op = NewOp(Opcode::kFstat, opts, StatFinisher(std::move(cb)));
  if (!BindFile(op, file)) return;
  op->stat_out = &op->st;
  Start(std::move(op));
}

void FileService::StartIo(Opcode opcode, const File& file, uint64_t offset,
                          absl::InlinedVector<Buffer, 1> buffers,
                          size_t first_pos, size_t first_len,
                          const OpOptions& opts, Finisher finish) {
  auto op = NewOp(opcode, opts, std::move(finish));
  op->buffers = std::move(buffers);
  if (!BindFile(op, file)) return;
  if (op->buffers.size() > IOV_MAX) {
    Start(op, io::ErrnoStatus(EINVAL, OpcodeName(opcode), file.path()));
    return;
  }
  op->iovs.resize(op->buffers.size());
  for (size_t i = 0; i < op->buffers.size(); ++i) {
    op->iovs[i] = {op->buffers[i].data(), op->buffers[i].size()};
  }
  if (opcode == Opcode::kRead || opcode == Opcode::kWrite) {
    op->iovs[0] = {op->buffers[0].data() + first_pos, first_len};
  }
  op->offset = offset;
  op->iov = op->iovs.data();
  op->iovcnt = static_cast<int>(op->iovs.size());
  Start(std::move(op));
}

namespace {

Finisher IoFinisher(FileService::IoCallback cb) {
  return [cb = std::move(cb)](absl::Status s, Op& o) mutable {
    if (!s.ok()) return cb(std::move(s));
    cb(IoResult{std::move(o.buffers[0]), static_cast<size_t>(o.result)});
  };
}

Finisher IoVecFinisher(FileService::IoVecCallback cb) {
  return [cb = std::move(cb)](absl::Status s, Op& o) mutable {
    if (!s.ok()) return cb(std::move(s));
    std::vector<Buffer> buffers(std::make_move_iterator(o.buffers.begin()),
                                std::make_move_iterator(o.buffers.end()));
    cb(IoVecResult{std::move(buffers), static_cast<size_t>(o.result)});
  };
}

absl::InlinedVector<Buffer, 1> One(Buffer b) {
  // Sized, then assigned: push_back trips a GCC -O1 maybe-uninitialized
  // false alarm inside InlinedVector.
  absl::InlinedVector<Buffer, 1> v(1);
  v[0] = std::move(b);
  return v;
}

absl::InlinedVector<Buffer, 1> Many(std::vector<Buffer> buffers) {
  return absl::InlinedVector<Buffer, 1>(
      std::make_move_iterator(buffers.begin()),
      std::make_move_iterator(buffers.end()));
}

}  // namespace

void FileService::Read(const File& file, uint64_t offset, Buffer buffer,
                       IoCallback cb, OpOptions opts) {
  const size_t n = buffer.size();
  StartIo(Opcode::kRead, file, offset, One(std::move(buffer)), 0, n, opts,
          IoFinisher(std::move(cb)));
}

void FileService::Write(const File& file, uint64_t offset, Buffer buffer,
                        IoCallback cb, OpOptions opts) {
  const size_t n = buffer.size();
  StartIo(Opcode::kWrite, file, offset, One(std::move(buffer)), 0, n, opts,
          IoFinisher(std::move(cb)));
}

void FileService::ReadV(const File& file, uint64_t offset,
                        std::vector<Buffer> buffers, IoVecCallback cb,
                        OpOptions opts) {
  StartIo(Opcode::kReadv, file, offset, Many(std::move(buffers)), 0, 0, opts,
          IoVecFinisher(std::move(cb)));
}

void FileService::WriteV(const File& file, uint64_t offset,
                         std::vector<Buffer> buffers, IoVecCallback cb,
                         OpOptions opts) {
  StartIo(Opcode::kWritev, file, offset, Many(std::move(buffers)), 0, 0, opts,
          IoVecFinisher(std::move(cb)));
}

void FileService::Fsync(const File& file, DoneCallback cb, OpOptions opts) {
  auto op = NewOp(Opcode::kFsync, opts, DoneFinisher(std::move(cb)));
  if (!BindFile(op, file)) return;
  Start(std::move(op));
}

void FileService::Fdatasync(const File& file, DoneCallback cb, OpOptions opts) {
  auto op = NewOp(Opcode::kFdatasync, opts, DoneFinisher(std::move(cb)));
  if (!BindFile(op, file)) return;
  Start(std::move(op));
}

void FileService::Close(File& file, DoneCallback cb, OpOptions opts) {
  CloseState(std::move(file.state_), std::move(cb), opts);
}

// Contract 2: everything pending on the file completes with Cancelled now;
// the descriptor is closed once no engine holds a request naming it (the
// core parks the close until then).  `cb` null: ~File, nobody to tell.
void FileService::CloseState(std::shared_ptr<FileState> state, DoneCallback cb,
                             const OpOptions& opts) {
  auto op = NewOp(Opcode::kClose, opts,
                  cb != nullptr ? DoneFinisher(std::move(cb)) : Finisher());
  if (state == nullptr || state->fd < 0 || state->closing) {
    op->path_storage = state != nullptr ? state->path : "closed file";
    if (op->finish)
      Start(op, io::ErrnoStatus(EBADF, "close", op->path_storage));
    return;
  }
  state->closing = true;
  while (state->pending_head != nullptr) {
    Op& pending = *state->pending_head;
    Finish(pending,
           io::WithErrno(absl::CancelledError(absl::StrCat(
                             OpcodeName(pending.opcode), "(", state->path,
                             "): cancelled: the file was closed")),
                         ECANCELED));
  }
  op->file = state;
  op->fd = state->fd;
  op->owned_fd = state->fd;
  state->fd = -1;
  op->internal = op->finish == nullptr;
  Start(std::move(op));
}

// ---------------------------------------------------------------------------
// The page-cache fast path.

// True if `o` completed from the page cache.  A partial hit leaves the rest
// of the read in `o` for an engine.
bool FileService::TryFastPath(Op& o) {
  if (!fast_path_ok_ ||
      (o.opcode != Opcode::kRead && o.opcode != Opcode::kReadv) ||
      o.requested != EngineKind::kAuto || !o.file->nowait_ok) {
    return false;
  }
  if (!o.file->nowait_checked) {
    o.file->nowait_checked = true;
#ifdef O_DIRECT
    // RWF_NOWAIT does not make an O_DIRECT read non-blocking: the kernel
    // goes to the disk on the loop thread (contract 4).  One fcntl per file.
    const int fl = fcntl(o.fd, F_GETFL);
    if (fl >= 0 && (fl & O_DIRECT) != 0) o.file->nowait_ok = false;
#endif
    if (!o.file->nowait_ok) return false;
  }
  size_t total = 0;
  for (int i = 0; i < o.iovcnt; ++i) total += o.iov[i].iov_len;
  if (total == 0 || total > options_.fast_path_max_bytes) return false;
  const int64_t r = nowait_read_(o.fd, o.iov, o.iovcnt, o.offset);
  o.fast_tried = r >= 0 || r == -EAGAIN;
  if (r < 0) {
    if (r == -ENOSYS) {
      fast_path_ok_ = false;
      fast_path_why_ = "off: preadv2(RWF_NOWAIT) returned ENOSYS";
    } else if (r == -EOPNOTSUPP || r == -EINVAL) {
      o.file->nowait_ok = false;  // this file system, or O_DIRECT
    }
    counters_.fast_path_misses.Add();
    return false;
  }
  // The page cache fills whole pages, so a RWF_NOWAIT read that stops short
  // in the middle of a page stopped at the end of the file: a complete
  // result.  One that stops on a page boundary may have reached a page that
  // is not cached: the engine reads the rest (and finds the end of the file
  // itself if that is what it was).
  const uint64_t end = o.offset + static_cast<uint64_t>(r);
  if (r == 0 || static_cast<size_t>(r) == total || end % page_size_ != 0) {
    counters_.fast_path_hits.Add();
    o.result = r;
    Finish(o, absl::OkStatus());
    return true;
  }
  counters_.fast_path_partial.Add();
  o.fast_bytes = static_cast<size_t>(r);
  o.offset += static_cast<uint64_t>(r);
  size_t skip = static_cast<size_t>(r);
  size_t first = static_cast<size_t>(o.iov - o.iovs.data());
  while (skip >= o.iovs[first].iov_len) skip -= o.iovs[first++].iov_len;
  o.iovs[first].iov_base = static_cast<char*>(o.iovs[first].iov_base) + skip;
  o.iovs[first].iov_len -= skip;
  o.iov = &o.iovs[first];
  o.iovcnt = static_cast<int>(o.iovs.size() - first);
  return false;
}

}  // namespace aio
}  // namespace kqio
