#include "net/internal/send_file_op.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"
#include "net/internal/platform.h"
#include "net/internal/socket_util.h"

namespace kqio {
namespace net {
namespace internal {
namespace {

bool NoKernelPath(int err) {
  return err == ENOSYS || err == EINVAL || err == EOPNOTSUPP ||
         err == ENOTSUP;
}

absl::Status FileEnded(int64_t offset) {
  return absl::OutOfRangeError(
      absl::StrCat("SendFile: the file ended at offset ", offset,
                   " before the requested length"));
}

// On a pool worker: up to `n` bytes of `fd` from `offset` (fewer only at the
// end of the file).
absl::StatusOr<std::string> ReadChunk(int fd, int64_t offset, size_t n) {
  std::string buf(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = pread(fd, &buf[got], n - got,
                            static_cast<off_t>(offset) + static_cast<off_t>(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return io::ErrnoStatus(errno, "pread", absl::StrCat("fd ", fd));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  buf.resize(got);
  return buf;
}

}  // namespace

SendFileOp::SendFileOp(SocketCore* owner, int file_fd, int64_t offset,
                       size_t length, const SendFileOptions& options,
                       IoCallback cb)
    : SocketOp(io::OpClass::kSendfile),
      owner_(owner),
      file_fd_(file_fd),
      offset_(offset),
      remaining_(length),
      options_(options),
      kernel_(options.use_kernel),
      cb_(std::move(cb)) {}

void SendFileOp::Detach() {
  if (wait_ == nullptr) return;
  wait_->op = nullptr;
  wait_.reset();
  task_.Cancel();  // its completion, if it still runs, finds no operation
  task_ = threadpool::TaskHandle();
}

SocketOp::Progress SendFileOp::Perform(int fd) {
  for (;;) {
    if (!pending_error_.ok()) {
      status_ = std::move(pending_error_);
      return Progress::kDone;
    }
    if (wait_ != nullptr) return Progress::kWaiting;
    if (header_pos_ < options_.header.size()) {
      const Progress p = SendHeader(fd);
      if (p != Progress::kDone || !status_.ok()) return p;
      continue;
    }
    if (buffer_pos_ < buffer_.size()) {
      const Progress p = SendBuffered(fd);
      if (p != Progress::kDone || !status_.ok()) return p;
      continue;
    }
    if (remaining_ == 0) {
      status_ = absl::OkStatus();
      return Progress::kDone;
    }
    if (!kernel_) {
      if (!StartPoolRead()) continue;  // reports pending_error_
      return Progress::kWaiting;
    }
    const bool avoid_disk =
        options_.pool != nullptr && KernelSendFileCanAvoidDisk();
    const SendFileResult r =
        KernelSendFile(fd, file_fd_, offset_, remaining_, avoid_disk);
    offset_ += static_cast<int64_t>(r.sent);
    remaining_ -= std::min(remaining_, r.sent);
    bytes_ += r.sent;
    switch (r.error) {
      case 0:
        if (r.sent == 0) {
          status_ = FileEnded(offset_);
          return Progress::kDone;
        }
        continue;
      case EAGAIN:
        return Progress::kWouldBlock;
      case EBUSY:  // FreeBSD, not cached: this chunk comes from the pool
        if (!StartPoolRead()) continue;
        return Progress::kWaiting;
      default:
        if (NoKernelPath(r.error) && options_.pool != nullptr) {
          kernel_ = false;
          continue;
        }
        status_ = NoKernelPath(r.error)
                      ? io::WithErrno(
                            absl::FailedPreconditionError(absl::StrCat(
                                "SendFile(", Describe(fd),
                                "): no kernel sendfile for this file and no "
                                "thread pool for the read+write fallback")),
                            r.error)
                      : io::ErrnoStatus(r.error, "sendfile", Describe(fd));
        return Progress::kDone;
    }
  }
}

SocketOp::Progress SendFileOp::SendHeader(int fd) {
  int flags = NoSigPipeFlags();
#if defined(MSG_MORE)
  if (remaining_ > 0) flags |= MSG_MORE;  // the file's bytes follow
#endif
  const absl::string_view h = options_.header;
  while (header_pos_ < h.size()) {
    const ssize_t n =
        send(fd, h.data() + header_pos_, h.size() - header_pos_, flags);
    if (n >= 0) {
      header_pos_ += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Progress::kWouldBlock;
    status_ = io::ErrnoStatus(errno, "write", Describe(fd));
    return Progress::kDone;
  }
  status_ = absl::OkStatus();
  return Progress::kDone;
}

SocketOp::Progress SendFileOp::SendBuffered(int fd) {
  while (buffer_pos_ < buffer_.size()) {
    const ssize_t n = send(fd, buffer_.data() + buffer_pos_,
                           buffer_.size() - buffer_pos_, NoSigPipeFlags());
    if (n >= 0) {
      buffer_pos_ += static_cast<size_t>(n);
      bytes_ += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Progress::kWouldBlock;
    status_ = io::ErrnoStatus(errno, "write", Describe(fd));
    return Progress::kDone;
  }
  buffer_.clear();
  buffer_.shrink_to_fit();  // an idle connection keeps no chunk
  buffer_pos_ = 0;
  status_ = absl::OkStatus();
  return Progress::kDone;
}

bool SendFileOp::StartPoolRead() {
  if (options_.pool == nullptr) {
    // FreeBSD's EBUSY without a pool cannot happen (SF_NODISKIO is only
    // asked for with one); the fallback without a pool is reported above.
    pending_error_ = absl::FailedPreconditionError(
        "SendFile: the read+write fallback needs a thread pool");
    return false;
  }
  const size_t n = std::min(remaining_, std::max<size_t>(1, options_.chunk_size));
  auto wait = std::make_shared<Wait>(Wait{this});
  absl::StatusOr<threadpool::TaskHandle> task = options_.pool->Submit(
      threadpool::Lane::kData, owner_->service(),
      [fd = file_fd_, offset = offset_, n]() { return ReadChunk(fd, offset, n); },
      [wait](absl::StatusOr<std::string> chunk) {
        if (wait->op != nullptr) wait->op->OnChunk(std::move(chunk));
      });
  if (!task.ok()) {
    pending_error_ = task.status();
    return false;
  }
  wait_ = std::move(wait);
  task_ = *task;
  return true;
}

void SendFileOp::OnChunk(absl::StatusOr<std::string> chunk) {
  wait_->op = nullptr;
  wait_.reset();
  task_ = threadpool::TaskHandle();
  if (!chunk.ok()) {
    pending_error_ = chunk.status();
  } else if (chunk->empty()) {
    pending_error_ = FileEnded(offset_);
  } else {
    offset_ += static_cast<int64_t>(chunk->size());
    remaining_ -= std::min(remaining_, chunk->size());
    buffer_ = *std::move(chunk);
    buffer_pos_ = 0;
  }
  owner_->OnOpReady();  // may complete and destroy this operation
}

}  // namespace internal
}  // namespace net
}  // namespace kqio
