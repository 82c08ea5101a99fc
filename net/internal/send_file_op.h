// StreamSocket::SendFile as a queued write operation.
//
// Three ways to move file bytes to the socket, chosen per chunk:
//  - the kernel (sendfile(2)), straight from the page cache;
//  - on FreeBSD with a pool, sendfile(SF_NODISKIO): when the range is not
//    cached the call answers EBUSY instead of waiting for the disk, and the
//    chunk is read on the pool's data lane and sent from memory, after
//    which the kernel path resumes (contract 4: no disk wait on the loop);
//  - where there is no kernel path (or options.use_kernel is false): pread()
//    on the pool's data lane, send() from the buffer, chunk after chunk.
// Linux's sendfile(2) has no way to avoid waiting for the disk; on Linux the
// kernel path is used as is (it blocks the loop only on a page-cache miss).
//
// Pool work never refers to the operation: it reads into a buffer that it
// returns.  Its completion finds the operation through a shared `Wait`
// record that Detach() (close, shutdown) clears, and then does nothing.
#ifndef KQIO_NET_INTERNAL_SEND_FILE_OP_H_
#define KQIO_NET_INTERNAL_SEND_FILE_OP_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "net/callbacks.h"
#include "net/internal/socket_core.h"
#include "net/stream_options.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace net {
namespace internal {

class SendFileOp final : public SocketOp {
 public:
  SendFileOp(SocketCore* owner, int file_fd, int64_t offset, size_t length,
             const SendFileOptions& options, IoCallback cb);
  ~SendFileOp() override { Detach(); }

  Progress Perform(int fd) override;
  void Finish() override { cb_(std::move(status_), bytes_); }
  void Detach() override;

 private:
  struct Wait {
    SendFileOp* op;
  };

  // Starts reading the next chunk on the pool.  False (with pending_error_
  // set) if it cannot.
  bool StartPoolRead();
  void OnChunk(absl::StatusOr<std::string> chunk);
  // Sends buffer_ from buffer_pos_.
  Progress SendBuffered(int fd);
  // Sends options_.header from header_pos_.
  Progress SendHeader(int fd);

  SocketCore* const owner_;
  const int file_fd_;
  int64_t offset_;    // next file byte not yet handed to the kernel or read
  size_t remaining_;  // of the requested length, from offset_
  const SendFileOptions options_;
  bool kernel_ = true;  // false once the kernel path is ruled out
  std::string buffer_;  // a chunk read on the pool, being sent
  size_t buffer_pos_ = 0;
  size_t header_pos_ = 0;  // of options_.header, sent
  std::shared_ptr<Wait> wait_;  // set while a pool read is in flight
  threadpool::TaskHandle task_;
  absl::Status pending_error_;  // from the pool, reported at the next run
  IoCallback cb_;
};

}  // namespace internal
}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_INTERNAL_SEND_FILE_OP_H_
