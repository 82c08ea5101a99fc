#include "net/stream_socket.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"
#include "net/internal/platform.h"
#include "net/internal/send_file_op.h"
#include "net/internal/socket_util.h"
#include "net/internal/stream_ops.h"

namespace kqio {
namespace net {

using internal::SocketOp;
using internal::WriteOp;

class StreamSocket::ConnectOp final : public SocketOp {
 public:
  ConnectOp(const SocketAddress& peer, ConnectCallback cb)
      : SocketOp(io::OpClass::kConnect), peer_(peer), cb_(std::move(cb)) {}
  Progress Perform(int) override { return Progress::kWaiting; }
  void Finish() override { cb_(std::move(status_)); }
  const SocketAddress& peer() const { return peer_; }

 private:
  const SocketAddress peer_;
  ConnectCallback cb_;
};

StreamSocket::StreamSocket(io::IoService& service, StreamOptions options)
    : SocketCore(service),
      max_write_queue_bytes_(options.max_write_queue_bytes) {
  short_read_drains_ = true;  // until EV_EOF; see SocketCore::RunQueue
}

std::unique_ptr<StreamSocket> StreamSocket::Create(io::IoService& service,
                                                   StreamOptions options) {
  return std::unique_ptr<StreamSocket>(new StreamSocket(service, options));
}

absl::StatusOr<std::unique_ptr<StreamSocket>> StreamSocket::Adopt(
    io::IoService& service, int fd, StreamOptions options) {
  if (fd < 0) return absl::InvalidArgumentError("Adopt: negative descriptor");
  if (internal::PrepareSocket(fd) != 0) {
    const int err = errno;
    close(fd);
    return io::ErrnoStatus(err, "Adopt", absl::StrCat("fd ", fd));
  }
  std::unique_ptr<StreamSocket> s(new StreamSocket(service, options));
  absl::Status st = s->Attach(fd, /*watch_write=*/true);
  if (!st.ok()) return st;
  return s;
}

StreamSocket::~StreamSocket() { Close(); }

void StreamSocket::Close() {
  const absl::Status why = internal::CancelledStatus("net: socket closed");
  if (connect_op_ != nullptr) EndConnect(why);  // closes the socket too
  CloseCore(why);
  if (connection_count_ != nullptr) {
    --connection_count_->live;
    connection_count_.reset();
  }
  write_shut_ = false;
  shutdown_pending_ = false;
}

void StreamSocket::FailAll(const absl::Status& why) {
  write_queue_bytes_ = 0;
  SocketCore::FailAll(why);
}

void StreamSocket::Abort() {
  service_->Cancel(connect_timer_);
  connect_timer_ = io::TimerId();
  if (connect_op_ != nullptr) {
    CompleteWith(std::move(connect_op_),
                 internal::CancelledStatus("net: service shut down"));
  }
  SocketCore::Abort();
}

// ---------------------------------------------------------------------------
// Connect.

void StreamSocket::Connect(const SocketAddress& peer, absl::Duration timeout,
                           ConnectCallback cb) {
  auto op = std::make_unique<ConnectOp>(peer, std::move(cb));
  if (fd_ >= 0 || connect_op_ != nullptr) {
    Reject(std::move(op), absl::FailedPreconditionError(
                              "Connect: the socket is already open"));
    return;
  }
  if (!peer.is_ip() && peer.family() != AF_UNIX) {
    Reject(std::move(op), absl::InvalidArgumentError(
                              "Connect: not an IPv4, IPv6 or Unix address"));
    return;
  }
  op->set_start(service_->RecordOpStarted(io::OpClass::kConnect));
  const int fd = internal::OpenSocket(peer.family(), SOCK_STREAM, 0);
  if (fd < 0) {
    CompleteWith(std::move(op),
                 io::ErrnoStatus(errno, "socket", peer.ToString()));
    return;
  }
  // Not retried on EINTR: the connect goes on in the background, as after
  // EINPROGRESS.
  const int rc = ::connect(fd, peer.data(), peer.size());
  const int err = rc == 0 ? 0 : errno;
  if (rc != 0 && err != EINPROGRESS && err != EINTR) {
    close(fd);
    CompleteWith(std::move(op), io::ErrnoStatus(err, "connect", peer.ToString()));
    return;
  }
  // Registered after connect() started: a socket that is not connecting
  // yet could report a spurious hang-up.
  absl::Status st = Attach(fd, /*watch_write=*/true);
  if (!st.ok()) {
    CompleteWith(std::move(op), std::move(st));
    return;
  }
  if (!tracked() && !service_->Track(this)) {
    CloseCore(internal::CancelledStatus("net: service shut down"));
    CompleteWith(std::move(op), internal::CancelledStatus("net: service shut down"));
    return;
  }
  connect_op_ = std::move(op);
  if (rc == 0) {
    EndConnect(absl::OkStatus());  // Unix sockets may connect at once
    return;
  }
  if (timeout != absl::InfiniteDuration()) {
    connect_timer_ = service_->RunAfter(timeout, [this] { OnConnectTimeout(); });
  }
}

void StreamSocket::FinishConnect(const struct kevent& ev) {
  const int err = internal::ConnectError(fd_, ev);
  if (err == 0) {
    SocketAddress peer;
    socklen_t len = SocketAddress::capacity();
    if (getpeername(fd_, peer.mutable_data(), &len) != 0 && errno == ENOTCONN) {
      return;  // not a connect event after all: keep waiting
    }
    EndConnect(absl::OkStatus());
    return;
  }
  EndConnect(io::ErrnoStatus(err, "connect", connect_op_->peer().ToString()));
}

void StreamSocket::OnConnectTimeout() {
  connect_timer_ = io::TimerId();
  if (connect_op_ == nullptr) return;
  EndConnect(io::WithErrno(
      absl::DeadlineExceededError(absl::StrCat(
          "connect(", connect_op_->peer().ToString(), "): timed out")),
      ETIMEDOUT));
}

void StreamSocket::EndConnect(absl::Status status) {
  service_->Cancel(connect_timer_);
  connect_timer_ = io::TimerId();
  std::unique_ptr<ConnectOp> op = std::move(connect_op_);
  const bool ok = status.ok();
  CompleteWith(std::move(op), status);
  if (!ok) {
    CloseCore(status);
    return;
  }
  RunReads();
  RunWrites();
}

// ---------------------------------------------------------------------------
// Reads.

void StreamSocket::Read(absl::Span<char> buffer, IoCallback cb) {
  auto op = std::make_unique<internal::ReadOp>(buffer, false, std::move(cb));
  if (buffer.empty()) {
    Reject(std::move(op), absl::InvalidArgumentError("Read: empty buffer"));
    return;
  }
  if (Enqueue(read_q_, std::move(op))) RunReads();
}

void StreamSocket::ReadExactly(absl::Span<char> buffer, IoCallback cb) {
  auto op = std::make_unique<internal::ReadOp>(buffer, true, std::move(cb));
  if (buffer.empty()) {
    Reject(std::move(op),
           absl::InvalidArgumentError("ReadExactly: empty buffer"));
    return;
  }
  if (Enqueue(read_q_, std::move(op))) RunReads();
}

void StreamSocket::RunReads() {
  if (connect_op_ != nullptr) return;  // reads wait for the connection
  RunQueue(read_q_, readable_);
}

// ---------------------------------------------------------------------------
// Writes.

void StreamSocket::Write(absl::string_view data, IoCallback cb) {
  StartWrite(std::make_unique<WriteOp>(data, /*all=*/false, std::move(cb)));
}

void StreamSocket::WriteAll(absl::string_view data, IoCallback cb) {
  StartWrite(std::make_unique<WriteOp>(data, /*all=*/true, std::move(cb)));
}

void StreamSocket::WriteVectored(
    absl::Span<const absl::string_view> buffers, IoCallback cb) {
  StartWrite(std::make_unique<WriteOp>(buffers, /*all=*/true, std::move(cb)));
}

absl::StatusOr<size_t> StreamSocket::TryWrite(absl::string_view data) {
  if (fd_ < 0 || connect_op_ != nullptr) {
    return io::WithErrno(
        absl::FailedPreconditionError("TryWrite: the socket is not connected"),
        ENOTCONN);
  }
  if (write_shut_) {
    return io::WithErrno(absl::FailedPreconditionError(
                             "TryWrite: the write side is shut down"),
                         EPIPE);
  }
  if (!writable_ || !write_q_.empty() || data.empty()) return 0;
  struct iovec iov;
  iov.iov_base = const_cast<char*>(data.data());
  iov.iov_len = data.size();
  const ssize_t r = internal::SendIov(fd_, &iov, 1);
  if (r >= 0) return static_cast<size_t>(r);
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    writable_ = false;
    return 0;
  }
  return io::ErrnoStatus(errno, "TryWrite", internal::Describe(fd_));
}

void StreamSocket::StartWrite(std::unique_ptr<WriteOp> op) {
  const size_t size = op->size();
  if (write_shut_ && fd_ >= 0) {
    Reject(std::move(op),
           io::WithErrno(absl::FailedPreconditionError(
                             "Write: the write side is shut down"),
                         EPIPE));
    return;
  }
  if (!write_q_.empty() && write_queue_bytes_ + size > max_write_queue_bytes_) {
    Reject(std::move(op),
           absl::ResourceExhaustedError(absl::StrCat(
               "Write: ", write_queue_bytes_, " bytes already queued, limit ",
               max_write_queue_bytes_)));
    return;
  }
  if (!Enqueue(write_q_, std::move(op))) return;
  write_queue_bytes_ += size;
  RunWrites();
}

void StreamSocket::SendFile(int file_fd, int64_t offset, size_t length,
                            IoCallback cb, const SendFileOptions& options) {
  auto op = std::make_unique<internal::SendFileOp>(this, file_fd, offset,
                                                   length, options,
                                                   std::move(cb));
  if (file_fd < 0 || offset < 0) {
    Reject(std::move(op), absl::InvalidArgumentError(
                              "SendFile: bad file descriptor or offset"));
    return;
  }
  if (write_shut_ && fd_ >= 0) {
    Reject(std::move(op), absl::FailedPreconditionError(
                              "SendFile: the write side is shut down"));
    return;
  }
  if (Enqueue(write_q_, std::move(op))) RunWrites();
}

void StreamSocket::RunWrites() {
  if (connect_op_ != nullptr) return;  // writes wait for the connection
  while (writable_ && fd_ >= 0 && !write_q_.empty()) {
    if (write_q_.front()->AsGatherWrite() != nullptr) {
      if (!GatherWrite()) writable_ = false;
      continue;
    }
    const SocketOp::Progress p = write_q_.front()->Perform(fd_);
    if (p == SocketOp::Progress::kWouldBlock) {
      writable_ = false;
    } else if (p == SocketOp::Progress::kWaiting) {
      break;
    } else {
      CompleteHeadWrite();
    }
  }
  if (write_q_.empty() && shutdown_pending_ && fd_ >= 0) {
    shutdown_pending_ = false;
    (void)DoShutdownWrite();  // ENOTCONN only: the peer is gone already
  }
  UpdateTracking();
}

void StreamSocket::CompleteHeadWrite() {
  std::unique_ptr<SocketOp> op = write_q_.PopFront();
  write_queue_bytes_ -= std::min(write_queue_bytes_, op->queue_bytes());
  Complete(std::move(op));
}

bool StreamSocket::GatherWrite() {
  struct iovec iov[WriteOp::kMaxIov];
  int n = 0;
  for (SocketOp* op = write_q_.front(); op != nullptr && n < WriteOp::kMaxIov;
       op = op->next()) {
    WriteOp* w = op->AsGatherWrite();
    if (w == nullptr) break;
    n += w->FillIov(iov + n, WriteOp::kMaxIov - n);
  }
  size_t left = 0;
  if (n > 0) {
    const ssize_t r = internal::SendIov(fd_, iov, n);
    if (r <= 0) {
      if (r == 0 || errno == EAGAIN || errno == EWOULDBLOCK) return false;
      write_q_.front()->AsGatherWrite()->Fail(errno, fd_);
      CompleteHeadWrite();
      return true;
    }
    left = static_cast<size_t>(r);
  }
  // Hand the bytes to the WriteAlls in order, completing the finished ones.
  for (;;) {
    WriteOp* w = write_q_.front()->AsGatherWrite();
    left = w->Advance(left);
    if (!w->finished()) break;
    CompleteHeadWrite();
    if (left == 0 || write_q_.empty() ||
        write_q_.front()->AsGatherWrite() == nullptr) {
      break;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// Events, shutdown and options.

void StreamSocket::OnEvent(const struct kevent& ev) {
  if (ev.filter == EVFILT_READ) {
    readable_ = true;
    if (ev.flags & EV_EOF) short_read_drains_ = false;
    RunReads();
  } else if (ev.filter == EVFILT_WRITE) {
    writable_ = true;
    if (connect_op_ != nullptr) {
      FinishConnect(ev);
    } else {
      RunWrites();
    }
  }
}

absl::Status StreamSocket::ShutdownWrite() {
  if (fd_ < 0) return internal::NotOpenStatus("ShutdownWrite");
  if (connect_op_ != nullptr) {
    return absl::FailedPreconditionError("ShutdownWrite: still connecting");
  }
  if (write_shut_) return absl::OkStatus();
  write_shut_ = true;
  if (!write_q_.empty()) {
    shutdown_pending_ = true;
    return absl::OkStatus();
  }
  return DoShutdownWrite();
}

absl::Status StreamSocket::DoShutdownWrite() {
  if (shutdown(fd_, SHUT_WR) != 0) {
    return io::ErrnoStatus(errno, "shutdown", internal::Describe(fd_));
  }
  return absl::OkStatus();
}

absl::Status StreamSocket::SetNoDelay(bool on) {
  return internal::SetIntOption(fd_, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0,
                                "TCP_NODELAY");
}

absl::Status StreamSocket::SetKeepAlive(bool on, absl::Duration idle) {
  absl::Status st = internal::SetIntOption(fd_, SOL_SOCKET, SO_KEEPALIVE,
                                           on ? 1 : 0, "SO_KEEPALIVE");
  if (!st.ok() || !on || idle <= absl::ZeroDuration()) return st;
  const int secs = static_cast<int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(idle)));
#if defined(TCP_KEEPIDLE)
  return internal::SetIntOption(fd_, IPPROTO_TCP, TCP_KEEPIDLE, secs,
                                "TCP_KEEPIDLE");
#elif defined(TCP_KEEPALIVE)  // macOS
  return internal::SetIntOption(fd_, IPPROTO_TCP, TCP_KEEPALIVE, secs,
                                "TCP_KEEPALIVE");
#else
  (void)secs;
  return st;
#endif
}

absl::Status StreamSocket::SetSendBufferSize(int bytes) {
  return internal::SetIntOption(fd_, SOL_SOCKET, SO_SNDBUF, bytes, "SO_SNDBUF");
}

absl::Status StreamSocket::SetReceiveBufferSize(int bytes) {
  return internal::SetIntOption(fd_, SOL_SOCKET, SO_RCVBUF, bytes, "SO_RCVBUF");
}

absl::StatusOr<SocketAddress> StreamSocket::local_address() const {
  if (fd_ < 0) return internal::NotOpenStatus("local_address");
  return internal::LocalAddress(fd_);
}

absl::StatusOr<SocketAddress> StreamSocket::peer_address() const {
  if (fd_ < 0) return internal::NotOpenStatus("peer_address");
  return internal::PeerAddress(fd_);
}

}  // namespace net
}  // namespace kqio
