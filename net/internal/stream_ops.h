// The read and write operations of a StreamSocket (see socket_core.h for
// how operations are queued, run and completed).
#ifndef KQIO_NET_INTERNAL_STREAM_OPS_H_
#define KQIO_NET_INTERNAL_STREAM_OPS_H_

#include <sys/uio.h>

#include <cstddef>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "net/callbacks.h"
#include "net/internal/socket_core.h"

namespace kqio {
namespace net {
namespace internal {

// Read (some: at least one byte, or end of stream) or ReadExactly (the whole
// buffer; OutOfRange if the stream ends first).
class ReadOp final : public SocketOp {
 public:
  ReadOp(absl::Span<char> buffer, bool exactly, IoCallback cb)
      : SocketOp(io::OpClass::kRead),
        buffer_(buffer),
        exactly_(exactly),
        cb_(std::move(cb)) {}

  Progress Perform(int fd) override;
  void Finish() override { cb_(std::move(status_), bytes_); }

 private:
  const absl::Span<char> buffer_;
  const bool exactly_;
  IoCallback cb_;
};

// Write (some: completes after the first call that took bytes) or WriteAll
// (every byte of every buffer, in order).  A WriteAll at the head of the
// queue shares one sendmsg() with the WriteAlls queued behind it.
class WriteOp final : public SocketOp {
 public:
  // The most iovecs one gathered sendmsg() carries.
  static constexpr int kMaxIov = 64;

  WriteOp(absl::Span<const absl::string_view> buffers, bool all,
          IoCallback cb);
  WriteOp(absl::string_view data, bool all, IoCallback cb);

  Progress Perform(int fd) override;
  void Finish() override { cb_(std::move(status_), bytes_); }
  WriteOp* AsGatherWrite() override { return all_ ? this : nullptr; }
  size_t queue_bytes() const override { return size_; }

  // Bytes in the buffers, written or not (what the queue bound counts).
  size_t size() const { return size_; }
  bool finished() const { return next_ == iov_.size(); }
  // Appends up to `max` iovecs of what is left to `iov`; returns how many.
  int FillIov(struct iovec* iov, int max) const;
  // Takes up to `n` bytes the kernel accepted; returns the bytes left over
  // for the operations behind it.
  size_t Advance(size_t n);
  // Records a failure after `bytes_` bytes.
  void Fail(int err, int fd);

 private:
  absl::InlinedVector<struct iovec, 1> iov_;  // what is left from next_ on
  size_t next_ = 0;
  size_t size_ = 0;
  const bool all_;
  IoCallback cb_;
};

// Sends iov[0..n) on `fd` without SIGPIPE; retries EINTR.  The result of
// sendmsg() (errno set on -1).
ssize_t SendIov(int fd, const struct iovec* iov, int n);

}  // namespace internal
}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_INTERNAL_STREAM_OPS_H_
