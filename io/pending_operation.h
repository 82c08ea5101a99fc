// io::PendingOperation: an operation in flight that an IoService can abort.
//
// aio/ and net/ operations derive from it and register with
// IoService::Track() when they start and IoService::Untrack() when they
// complete.  That gives the two contracts that need a list of everything in
// flight: "closing aborts" (a socket or file aborts its own operations) and
// shutdown (the service aborts all of them).  The list is intrusive (the
// links live here), so Track/Untrack are O(1) and allocate nothing.
//
// Contract for Abort(): the service (or the owner) calls it at most once per
// Track(), on the loop thread, after the operation has been untracked.  It
// must arrange exactly one completion of the operation with
// absl::CancelledError, delivered through the completion queue
// (IoService::Post), never by calling the user's callback inline.  Buffers
// the kernel or the pool still uses stay owned until they are done with
// them; that is the operation's business, not the service's.
//
// Lifetime: destroying a tracked operation untracks it.  Not thread-safe: the
// loop thread only, like the service methods that use it.
#ifndef KQIO_IO_PENDING_OPERATION_H_
#define KQIO_IO_PENDING_OPERATION_H_

namespace kqio {
namespace io {

class IoService;

class PendingOperation {
 public:
  PendingOperation(const PendingOperation&) = delete;
  PendingOperation& operator=(const PendingOperation&) = delete;

  // See the contract above.
  virtual void Abort() = 0;

  bool tracked() const { return service_ != nullptr; }

 protected:
  PendingOperation() = default;
  virtual ~PendingOperation();  // untracks; defined in io_service.cc

 private:
  friend class IoService;
  IoService* service_ = nullptr;
  PendingOperation* prev_ = nullptr;
  PendingOperation* next_ = nullptr;
};

}  // namespace io
}  // namespace kqio

#endif  // KQIO_IO_PENDING_OPERATION_H_
