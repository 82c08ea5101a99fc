#include "net/internal/socket_core.h"

#include <errno.h>
#include <unistd.h>

#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"
#include "net/internal/socket_util.h"

namespace kqio {
namespace net {
namespace internal {

OpQueue::~OpQueue() {
  while (!empty()) PopFront();
}

void OpQueue::PushBack(std::unique_ptr<SocketOp> op) {
  SocketOp* p = op.release();
  p->next_ = nullptr;
  if (tail_ != nullptr) {
    tail_->next_ = p;
  } else {
    head_ = p;
  }
  tail_ = p;
}

std::unique_ptr<SocketOp> OpQueue::PopFront() {
  SocketOp* p = head_;
  if (p == nullptr) return nullptr;
  head_ = p->next_;
  if (head_ == nullptr) tail_ = nullptr;
  p->next_ = nullptr;
  return std::unique_ptr<SocketOp>(p);
}

SocketCore::~SocketCore() {
  assert(fd_ < 0 && "the derived socket must Close() in its destructor");
  // PendingOperation's destructor untracks us if still tracked.
}

absl::Status SocketCore::Attach(int fd, bool watch_write) {
  absl::StatusOr<io::Registration> r = RegisterSocket(
      *service_, fd, watch_write,
      [this](const struct kevent& ev) { OnEvent(ev); });
  if (!r.ok()) {
    close(fd);
    return r.status();
  }
  fd_ = fd;
  reg_ = *r;
  // Optimistic: the first operation tries its call at once, and the EAGAIN
  // it may get clears the flag (one call, instead of a loop iteration for
  // the registration's first event).
  readable_ = true;
  writable_ = true;
  return absl::OkStatus();
}

void SocketCore::CloseCore(const absl::Status& why) {
  if (fd_ >= 0) {
    // Slot first: an event of this batch still queued for the descriptor
    // is stale from here on.  close() then removes the knotes (no dup()s
    // of socket descriptors are made here, see <sys/event.h>).
    service_->Unregister(reg_);
    reg_ = io::Registration();
    close(fd_);
    fd_ = -1;
    readable_ = false;
    writable_ = false;
  }
  FailAll(why);
}

void SocketCore::FailAll(const absl::Status& why) {
  for (OpQueue* q : {&read_q_, &write_q_}) {
    while (!q->empty()) {
      std::unique_ptr<SocketOp> op = q->PopFront();
      op->Detach();
      CompleteWith(std::move(op), why);
    }
  }
  UpdateTracking();
}

bool SocketCore::Enqueue(OpQueue& q, std::unique_ptr<SocketOp> op) {
  op->set_start(service_->RecordOpStarted(op->op_class()));
  if (fd_ < 0) {
    CompleteWith(std::move(op), NotOpenStatus(io::OpClassName(op->op_class())));
    return false;
  }
  if (!tracked() && !service_->Track(this)) {
    // The service is shut down: Post() will destroy the completion unrun.
    CompleteWith(std::move(op), CancelledStatus("net: service shut down"));
    return false;
  }
  q.PushBack(std::move(op));
  return true;
}

void SocketCore::Reject(std::unique_ptr<SocketOp> op, absl::Status status) {
  op->set_start(service_->RecordOpStarted(op->op_class()));
  CompleteWith(std::move(op), std::move(status));
}

void SocketCore::Complete(std::unique_ptr<SocketOp> op) {
  io::IoService* service = service_;
  service->Post([service, op = std::move(op)]() {
    service->RecordOpDone(op->op_class(), op->start(), op->status());
    op->Finish();
  });
}

void SocketCore::CompleteWith(std::unique_ptr<SocketOp> op,
                              absl::Status status) {
  op->set_status(std::move(status));
  Complete(std::move(op));
}

void SocketCore::RunQueue(OpQueue& q, bool& ready) {
  while (ready && fd_ >= 0 && !q.empty()) {
    switch (q.front()->Perform(fd_)) {
      case SocketOp::Progress::kDone:
        if (q.front()->drained() && short_read_drains_) ready = false;
        Complete(q.PopFront());
        break;
      case SocketOp::Progress::kWouldBlock:
        ready = false;
        break;
      case SocketOp::Progress::kWaiting:
        UpdateTracking();
        return;
    }
  }
  UpdateTracking();
}

void SocketCore::UpdateTracking() {
  const bool busy = HasPendingWork();
  if (busy && !tracked()) {
    service_->Track(this);
  } else if (!busy && tracked()) {
    service_->Untrack(this);
  }
}

void SocketCore::Abort() { FailAll(CancelledStatus("net: service shut down")); }

}  // namespace internal
}  // namespace net
}  // namespace kqio
