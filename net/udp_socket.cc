#include "net/udp_socket.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"
#include "net/internal/platform.h"
#include "net/internal/socket_util.h"

namespace kqio {
namespace net {
namespace {

using internal::SocketOp;

class SendToOp final : public SocketOp {
 public:
  SendToOp(absl::string_view data, const SocketAddress& to, IoCallback cb)
      : SocketOp(io::OpClass::kWrite), data_(data), to_(to), cb_(std::move(cb)) {}

  Progress Perform(int fd) override {
    for (;;) {
      const ssize_t n = sendto(fd, data_.data(), data_.size(),
                               internal::NoSigPipeFlags(), to_.data(), to_.size());
      if (n >= 0) {
        bytes_ = static_cast<size_t>(n);
        status_ = absl::OkStatus();
        return Progress::kDone;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Progress::kWouldBlock;
      status_ = io::ErrnoStatus(errno, "sendto", to_.ToString());
      return Progress::kDone;
    }
  }
  void Finish() override { cb_(std::move(status_), bytes_); }

 private:
  const absl::string_view data_;
  const SocketAddress to_;
  IoCallback cb_;
};

class ReceiveFromOp final : public SocketOp {
 public:
  ReceiveFromOp(absl::Span<char> buffer, ReceiveCallback cb)
      : SocketOp(io::OpClass::kRead), buffer_(buffer), cb_(std::move(cb)) {}

  Progress Perform(int fd) override {
    for (;;) {
      struct iovec iov = {buffer_.data(), buffer_.size()};
      struct msghdr msg = {};
      msg.msg_name = from_.mutable_data();
      msg.msg_namelen = SocketAddress::capacity();
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      const ssize_t n = recvmsg(fd, &msg, 0);
      if (n >= 0) {
        from_.set_size(msg.msg_namelen);
        bytes_ = static_cast<size_t>(n);
        status_ = (msg.msg_flags & MSG_TRUNC) != 0
                      ? absl::OutOfRangeError(absl::StrCat(
                            "ReceiveFrom(", from_.ToString(),
                            "): datagram larger than the ", buffer_.size(),
                            "-byte buffer, truncated"))
                      : absl::OkStatus();
        return Progress::kDone;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Progress::kWouldBlock;
      status_ = io::ErrnoStatus(errno, "recvmsg", internal::Describe(fd));
      return Progress::kDone;
    }
  }
  void Finish() override { cb_(std::move(status_), bytes_, from_); }

 private:
  const absl::Span<char> buffer_;
  SocketAddress from_;
  ReceiveCallback cb_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<UdpSocket>> UdpSocket::Make(
    io::IoService& service, int family, const SocketAddress* local) {
  if (family != AF_INET && family != AF_INET6) {
    return absl::InvalidArgumentError("UdpSocket: family must be IPv4 or IPv6");
  }
  const std::string where =
      local != nullptr ? local->ToString() : absl::StrCat("family ", family);
  const int fd = internal::OpenSocket(family, SOCK_DGRAM, 0);
  if (fd < 0) return io::ErrnoStatus(errno, "socket", where);
  if (local != nullptr && bind(fd, local->data(), local->size()) != 0) {
    const int err = errno;
    close(fd);
    return io::ErrnoStatus(err, "bind", where);
  }
  std::unique_ptr<UdpSocket> s(new UdpSocket(service));
  absl::Status st = s->Attach(fd, /*watch_write=*/true);
  if (!st.ok()) return st;
  return s;
}

absl::StatusOr<std::unique_ptr<UdpSocket>> UdpSocket::Bind(
    io::IoService& service, const SocketAddress& local) {
  return Make(service, local.family(), &local);
}

absl::StatusOr<std::unique_ptr<UdpSocket>> UdpSocket::Open(
    io::IoService& service, int family) {
  return Make(service, family, nullptr);
}

UdpSocket::~UdpSocket() { Close(); }

void UdpSocket::Close() {
  CloseCore(internal::CancelledStatus("net: socket closed"));
}

void UdpSocket::SendTo(absl::string_view data, const SocketAddress& to,
                       IoCallback cb) {
  if (Enqueue(write_q_, std::make_unique<SendToOp>(data, to, std::move(cb)))) {
    RunQueue(write_q_, writable_);
  }
}

void UdpSocket::ReceiveFrom(absl::Span<char> buffer, ReceiveCallback cb) {
  if (Enqueue(read_q_,
              std::make_unique<ReceiveFromOp>(buffer, std::move(cb)))) {
    RunQueue(read_q_, readable_);
  }
}

void UdpSocket::OnEvent(const struct kevent& ev) {
  if (ev.filter == EVFILT_READ) {
    readable_ = true;
    RunQueue(read_q_, readable_);
  } else if (ev.filter == EVFILT_WRITE) {
    writable_ = true;
    RunQueue(write_q_, writable_);
  }
}

absl::StatusOr<SocketAddress> UdpSocket::local_address() const {
  if (fd_ < 0) return internal::NotOpenStatus("local_address");
  return internal::LocalAddress(fd_);
}

}  // namespace net
}  // namespace kqio
