// net::internal::SocketCore: what StreamSocket and UdpSocket share: one
// descriptor, registered once, and two queues of operations waiting on it.
//
// The readiness model (ARCHITECTURE.md contracts 2, 3 and 8).  A socket is
// registered ONCE, when it gets its descriptor, with EVFILT_READ and (unless
// it is a listener) EVFILT_WRITE, both EV_CLEAR, under a single slot of the
// service (RegisterHandler + one kevent() with both changes): no knote is
// added or removed per operation.  Each event sets `readable_` or
// `writable_`; an operation runs its system call while the flag is set and
// clears it only when the kernel answers EAGAIN, so under EV_CLEAR every
// edge is drained.  Operations started while the flag is set try the call
// at once (and post their completion), so a busy connection costs no event.
//
// Completions are posted (IoService::Post), never called inline, and the
// posted closure owns the finished operation: it refers to nothing in the
// socket, so the socket may be destroyed while completions are queued.
// User callbacks therefore never run inside an event handler, and an event
// handler never calls user code.
//
// Closing: the slot is released first (a later event of the same batch is
// then stale and dropped by the service, contract 3), then the descriptor
// is closed (which removes its knotes), then every queued operation is
// completed with CancelledError (contract 2).  A completion that was already
// posted keeps its own result.
//
// Keep-alive: the slot does not keep IoService::Run() going; a socket is
// Track()ed with the service exactly while it has operations pending, so
// pending operations keep the loop running, idle sockets do not, and the
// service's Shutdown() aborts pending operations through Abort().
//
// Thread-safety: loop thread only, like the service methods it uses.  The
// service must outlive the socket.
#ifndef KQIO_NET_INTERNAL_SOCKET_CORE_H_
#define KQIO_NET_INTERNAL_SOCKET_CORE_H_

#include <sys/event.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "io/io_service.h"
#include "io/pending_operation.h"
#include "io/service_metrics.h"

namespace kqio {
namespace net {
namespace internal {

class WriteOp;
class SendFileOp;

// One operation waiting on a socket.  Owned by the socket's queue while it
// waits, then by the closure that delivers its completion; the socket never
// refers to it once it has left the queue.
class SocketOp {
 public:
  enum class Progress : uint8_t {
    kDone,        // finished: status_ and bytes_ are final
    kWouldBlock,  // the socket answered EAGAIN: wait for its next event
    kWaiting,     // waiting on something else (the pool), not the socket
  };

  explicit SocketOp(io::OpClass op_class)
      : op_class_(op_class) {}
  virtual ~SocketOp() = default;
  SocketOp(const SocketOp&) = delete;
  SocketOp& operator=(const SocketOp&) = delete;

  // Loop thread, from the socket: as much of the operation as `fd` allows
  // right now.  Never calls user code.
  virtual Progress Perform(int fd) = 0;
  // From the completion closure: the user's callback, with the result.
  virtual void Finish() = 0;
  // Taken off the queue unfinished (close, shutdown): stop waiting on
  // anything else.  Called at most once, before Finish().
  virtual void Detach() {}
  // A WriteAll that may share one sendmsg() with its neighbours.
  virtual WriteOp* AsGatherWrite() { return nullptr; }
  // What the operation counts against a write queue's bound.
  virtual size_t queue_bytes() const { return 0; }

  void set_status(absl::Status status) { status_ = std::move(status); }
  const absl::Status& status() const { return status_; }
  size_t bytes() const { return bytes_; }
  io::OpClass op_class() const { return op_class_; }
  io::MonoTime start() const { return start_; }
  // IoService::RecordOpStarted()'s time, set when the socket takes it.
  void set_start(io::MonoTime start) { start_ = start; }
  SocketOp* next() const { return next_; }
  // Done after a read that returned fewer bytes than it asked for: the
  // socket's receive queue was empty at that moment (see RunQueue).
  bool drained() const { return drained_; }

 protected:
  absl::Status status_;
  size_t bytes_ = 0;
  bool drained_ = false;

 private:
  friend class OpQueue;
  SocketOp* next_ = nullptr;
  const io::OpClass op_class_;
  io::MonoTime start_;
};

// An intrusive FIFO that owns its operations.
class OpQueue final {
 public:
  OpQueue() = default;
  OpQueue(const OpQueue&) = delete;
  OpQueue& operator=(const OpQueue&) = delete;
  ~OpQueue();

  bool empty() const { return head_ == nullptr; }
  SocketOp* front() const { return head_; }
  void PushBack(std::unique_ptr<SocketOp> op);
  std::unique_ptr<SocketOp> PopFront();

 private:
  SocketOp* head_ = nullptr;
  SocketOp* tail_ = nullptr;
};

class SocketCore : public io::PendingOperation {
 public:
  SocketCore(const SocketCore&) = delete;
  SocketCore& operator=(const SocketCore&) = delete;

  io::IoService& service() const { return *service_; }
  // The descriptor, or -1.  For socket options kqio does not wrap; do not
  // close it or read from it behind the socket's back.
  int native_handle() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }

 protected:
  explicit SocketCore(io::IoService& service) : service_(&service) {}
  // The derived class must have closed the socket (its destructor calls
  // Close(), which ends in CloseCore()).
  ~SocketCore() override;

  // Takes ownership of `fd` (closed on failure) and registers it once, as
  // described above.
  absl::Status Attach(int fd, bool watch_write);
  // Releases the slot, closes the descriptor and completes every queued
  // operation with `why`.  No-op on a closed socket.
  void CloseCore(const absl::Status& why);
  // Completes every queued operation with `why`; the socket stays open.
  virtual void FailAll(const absl::Status& why);

  // Starts `op` on queue `q`: counts it, and completes it at once with an
  // error if the socket is closed or the service shut down.  Returns false
  // in that case.  The caller then runs the queue.
  bool Enqueue(OpQueue& q, std::unique_ptr<SocketOp> op);
  // Starts `op` only to fail it with `status` (bad arguments and the like).
  void Reject(std::unique_ptr<SocketOp> op, absl::Status status);
  // Posts the completion of a finished operation.
  void Complete(std::unique_ptr<SocketOp> op);
  void CompleteWith(std::unique_ptr<SocketOp> op, absl::Status status);
  // Runs the operations of `q` in order while `ready`; EAGAIN clears it,
  // and so does a drained() read when short_read_drains_: under EV_CLEAR
  // the next byte to arrive raises a new event, so the read() that would
  // only answer EAGAIN is skipped (one system call per message saved; nginx
  // does the same with EPOLLRDHUP).  Not after EV_EOF: the end of the
  // stream raises no further event.
  void RunQueue(OpQueue& q, bool& ready);
  // Tracks the socket with the service exactly while HasPendingWork().
  void UpdateTracking();
  virtual bool HasPendingWork() const {
    return !read_q_.empty() || !write_q_.empty();
  }

  // One event of the registration (EVFILT_READ or EVFILT_WRITE).
  virtual void OnEvent(const struct kevent& ev) = 0;
  // An operation that waited on something else (kWaiting) may go on.
  virtual void OnOpReady() {}
  // io::PendingOperation: the service is shutting down.  Fails every
  // pending operation with Cancelled; the descriptor stays open.
  void Abort() override;

  io::IoService* const service_;
  int fd_ = -1;
  io::Registration reg_;
  OpQueue read_q_;
  OpQueue write_q_;
  bool readable_ = false;
  bool writable_ = false;
  bool short_read_drains_ = false;  // stream sockets, until EV_EOF

 private:
  friend class SendFileOp;  // calls OnOpReady() when the pool is done
};

}  // namespace internal
}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_INTERNAL_SOCKET_CORE_H_
