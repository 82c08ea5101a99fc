#include "net/internal/stream_ops.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"
#include "net/internal/platform.h"
#include "net/internal/socket_util.h"

namespace kqio {
namespace net {
namespace internal {

SocketOp::Progress ReadOp::Perform(int fd) {
  for (;;) {
    const size_t want = buffer_.size() - bytes_;
    const ssize_t n = read(fd, buffer_.data() + bytes_, want);
    if (n > 0) {
      bytes_ += static_cast<size_t>(n);
      if (!exactly_ || bytes_ == buffer_.size()) {
        drained_ = static_cast<size_t>(n) < want;
        status_ = absl::OkStatus();
        return Progress::kDone;
      }
      continue;
    }
    if (n == 0) {  // end of stream
      status_ = exactly_ ? absl::OutOfRangeError(absl::StrCat(
                               "ReadExactly(", Describe(fd),
                               "): stream ended after ", bytes_, " of ",
                               buffer_.size(), " bytes"))
                         : absl::OkStatus();
      return Progress::kDone;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Progress::kWouldBlock;
    status_ = io::ErrnoStatus(errno, "read", Describe(fd));
    return Progress::kDone;
  }
}

WriteOp::WriteOp(absl::Span<const absl::string_view> buffers, bool all,
                 IoCallback cb)
    : SocketOp(io::OpClass::kWrite), all_(all), cb_(std::move(cb)) {
  iov_.reserve(buffers.size());
  for (absl::string_view b : buffers) {
    if (b.empty()) continue;
    iov_.push_back({const_cast<char*>(b.data()), b.size()});
    size_ += b.size();
  }
}

WriteOp::WriteOp(absl::string_view data, bool all, IoCallback cb)
    : SocketOp(io::OpClass::kWrite), all_(all), cb_(std::move(cb)) {
  if (!data.empty()) iov_.push_back({const_cast<char*>(data.data()), data.size()});
  size_ = data.size();
}

int WriteOp::FillIov(struct iovec* iov, int max) const {
  int n = 0;
  for (size_t i = next_; i < iov_.size() && n < max; ++i) iov[n++] = iov_[i];
  return n;
}

size_t WriteOp::Advance(size_t n) {
  while (n > 0 && next_ < iov_.size()) {
    struct iovec& v = iov_[next_];
    const size_t take = std::min(n, v.iov_len);
    v.iov_base = static_cast<char*>(v.iov_base) + take;
    v.iov_len -= take;
    bytes_ += take;
    n -= take;
    if (v.iov_len == 0) ++next_;
  }
  if (finished()) status_ = absl::OkStatus();
  return n;
}

void WriteOp::Fail(int err, int fd) {
  status_ = io::ErrnoStatus(err, "write", Describe(fd));
}

SocketOp::Progress WriteOp::Perform(int fd) {
  // A Write (some) alone: one call that takes bytes completes it.
  struct iovec iov[kMaxIov];
  const int n = FillIov(iov, kMaxIov);
  if (n == 0) {
    status_ = absl::OkStatus();
    return Progress::kDone;
  }
  const ssize_t r = SendIov(fd, iov, n);
  if (r >= 0) {
    Advance(static_cast<size_t>(r));
    status_ = absl::OkStatus();
    return Progress::kDone;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return Progress::kWouldBlock;
  Fail(errno, fd);
  return Progress::kDone;
}

ssize_t SendIov(int fd, const struct iovec* iov, int n) {
  struct msghdr msg = {};
  msg.msg_iov = const_cast<struct iovec*>(iov);
  msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(n);
  ssize_t r;
  do {
    r = sendmsg(fd, &msg, NoSigPipeFlags());
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace internal
}  // namespace net
}  // namespace kqio
