// net::StreamSocket: a connected TCP or Unix-domain stream on an IoService.
//
// Get one from StreamSocket::Create() + Connect(), from a StreamListener's
// accept handler, or by Adopt()ing a connected descriptor (a socketpair()
// end).  Every operation completes exactly once, on the loop thread, through
// a posted closure (never inside the call that started it):
//
//   Read(buf, cb)          at least one byte, or OK with 0 bytes at the end
//                          of the stream;
//   ReadExactly(buf, cb)   the whole buffer, or OutOfRange if the stream
//                          ends first (cb gets the bytes read so far);
//   Write(data, cb)        some bytes: completes after the first send that
//                          took any;
//   WriteAll(data, cb)     every byte; WriteVectored() gathers buffers, and
//                          WriteAlls queued back to back share sendmsg()
//                          calls (writev-style gather, up to 64 iovecs);
//   TryWrite(data)         not an operation: what the socket takes now,
//                          returned at once, no callback (uv_try_write);
//   SendFile(fd, off, n)   file bytes through sendfile(2), or read on the
//                          pool and written (SendFileOptions);
//   Connect(peer, t, cb)   with a deadline: DeadlineExceeded when `timeout`
//                          passes; errors keep the errno (ECONNREFUSED...).
//
// Several reads (and several writes) may be pending at once: each direction
// is a FIFO.  Buffers are NOT copied: a buffer must stay valid and untouched
// until its operation completes or the socket is closed (after Close()
// returns, the socket never touches them again).
//
// Back-pressure.  The write queue is bounded by StreamOptions::
// max_write_queue_bytes: a Write/WriteAll that would take the bytes queued
// (and not yet completed) past the bound completes at once with
// ResourceExhausted and writes nothing, unless the queue is empty (one write
// of any size is always accepted).  Producers should wait for completions, or
// watch write_queue_bytes().  SendFile bytes come from the file and are not
// counted.
//
// Errors carry the errno (io::StatusErrno); SIGPIPE is never raised
// (MSG_NOSIGNAL / SO_NOSIGPIPE; around sendfile on Linux it is blocked and
// consumed), so a reset peer gives EPIPE or ECONNRESET.
//
// Closing.  Close() (and the destructor) completes every pending operation
// with CancelledError, from the loop; completions already queued keep their
// own result.  It is safe to Close() or destroy the socket from any of its
// callbacks, and from the callbacks of other sockets.  ShutdownWrite() is a
// half-close: it waits for the queued writes, then sends FIN.
//
// Lifetime and thread-safety: owned by the user (std::unique_ptr); loop
// thread only; must be destroyed before its IoService.  It may outlive the
// service's Shutdown(), which cancels its pending operations; operations
// started after that are dropped with their callbacks unrun (the service
// runs nothing any more, see IoService::Post).
#ifndef KQIO_NET_STREAM_SOCKET_H_
#define KQIO_NET_STREAM_SOCKET_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "io/io_service.h"
#include "net/callbacks.h"
#include "net/internal/socket_core.h"
#include "net/socket_address.h"
#include "net/stream_options.h"

namespace kqio {
namespace net {

class StreamListener;

namespace internal {
// Live connections of one listener; accepted sockets hold it so that the
// count drops when they close, even after the listener is gone.
struct ConnectionCount {
  size_t live = 0;
};
}  // namespace internal

class StreamSocket final : public internal::SocketCore {
 public:
  // A socket with no descriptor yet: Connect() opens one.
  static std::unique_ptr<StreamSocket> Create(io::IoService& service,
                                              StreamOptions options = {});
  // Takes a connected stream socket (closed on failure) and registers it;
  // it is made non-blocking and close-on-exec.  No other descriptor may
  // refer to the same socket (a dup() would keep its knotes alive, see
  // <sys/event.h>).
  static absl::StatusOr<std::unique_ptr<StreamSocket>> Adopt(
      io::IoService& service, int fd, StreamOptions options = {});

  ~StreamSocket() override;

  // Opens a socket of peer's family (IPv4, IPv6, Unix) and connects it.
  // `timeout`: absl::InfiniteDuration() for none.  Operations started
  // while connecting wait for it and fail with its error.  A failed or
  // timed-out connect closes the socket; Connect() may be called again.
  // FailedPrecondition if the socket is already open.
  void Connect(const SocketAddress& peer, absl::Duration timeout,
               ConnectCallback cb);

  void Read(absl::Span<char> buffer, IoCallback cb);
  void ReadExactly(absl::Span<char> buffer, IoCallback cb);
  // Bytes to write are string_views (so that a literal does not bring its
  // NUL along); they are not copied.
  void Write(absl::string_view data, IoCallback cb);
  void WriteAll(absl::string_view data, IoCallback cb);
  // WriteAll of several buffers, in order, as one operation.
  void WriteVectored(absl::Span<const absl::string_view> buffers,
                     IoCallback cb);
  // Sends what the socket takes right now, in this call: the bytes taken,
  // 0 if it takes none (send buffer full, or writes are queued ahead: the
  // byte order is kept), or the error (send()'s errno, FailedPrecondition
  // if the socket is not connected or its write side is shut down).  No
  // callback, nothing retained; write the rest with Write/WriteAll.  An
  // echo that answers from its read callback this way saves a completion
  // per message (libuv's uv_try_write does the same).
  absl::StatusOr<size_t> TryWrite(absl::string_view data);
  // Sends `length` bytes of `file_fd` from `offset` (the file offset is not
  // used or moved).  OutOfRange if the file is shorter.  `file_fd` must stay
  // open until the completion.
  void SendFile(int file_fd, int64_t offset, size_t length, IoCallback cb,
                const SendFileOptions& options = {});

  // Half-close: no more writes (they fail with FailedPrecondition); FIN is
  // sent once the queued writes are done.  Reading goes on.
  absl::Status ShutdownWrite();
  // See "Closing" above.  Idempotent.
  void Close();

  absl::Status SetNoDelay(bool on);
  // SO_KEEPALIVE, and on platforms that have it TCP_KEEPIDLE (`idle`, when
  // positive, rounded to seconds).
  absl::Status SetKeepAlive(bool on, absl::Duration idle = absl::ZeroDuration());
  absl::Status SetSendBufferSize(int bytes);
  absl::Status SetReceiveBufferSize(int bytes);
  absl::StatusOr<SocketAddress> local_address() const;
  absl::StatusOr<SocketAddress> peer_address() const;

  bool is_connected() const { return fd_ >= 0 && connect_op_ == nullptr; }
  // Bytes of the Write/WriteAll operations queued and not completed.
  size_t write_queue_bytes() const { return write_queue_bytes_; }

 private:
  friend class StreamListener;
  class ConnectOp;

  StreamSocket(io::IoService& service, StreamOptions options);

  void StartWrite(std::unique_ptr<internal::WriteOp> op);
  void OnEvent(const struct kevent& ev) override;
  void OnOpReady() override { RunWrites(); }
  void FailAll(const absl::Status& why) override;
  bool HasPendingWork() const override {
    return SocketCore::HasPendingWork() || connect_op_ != nullptr;
  }
  void Abort() override;

  void RunReads();
  void RunWrites();
  // One gathered sendmsg() for the WriteAlls at the head of the queue,
  // completing those it finished.  False on EAGAIN.
  bool GatherWrite();
  void CompleteHeadWrite();
  void FinishConnect(const struct kevent& ev);
  void OnConnectTimeout();
  // Completes the pending connect with `status` (not OK: closes the socket
  // and fails the queued operations with it too).
  void EndConnect(absl::Status status);
  absl::Status DoShutdownWrite();

  std::unique_ptr<ConnectOp> connect_op_;
  io::TimerId connect_timer_;
  size_t write_queue_bytes_ = 0;
  const size_t max_write_queue_bytes_;
  std::shared_ptr<internal::ConnectionCount> connection_count_;
  bool write_shut_ = false;        // ShutdownWrite() called
  bool shutdown_pending_ = false;  // FIN waits for the queued writes
};

using TcpStream = StreamSocket;
using UnixStream = StreamSocket;

}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_STREAM_SOCKET_H_
