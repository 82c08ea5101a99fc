// threadpool::Executor: the one thing the pool knows about an event loop.
//
// The pool runs blocking work on its own threads and hands each result back
// to the loop that asked for it by posting a closure to that loop's
// Executor.  io::IoService implements this interface; tests use a trivial
// one.  Keeping the seam this small is what lets the pool know nothing of
// io/ (ARCHITECTURE.md: "a done hook that the service gives it").
#ifndef KQIO_THREADPOOL_EXECUTOR_H_
#define KQIO_THREADPOOL_EXECUTOR_H_

#include "absl/functional/any_invocable.h"

namespace kqio {
namespace threadpool {

class Executor {
 public:
  virtual ~Executor() = default;

  // Queues `fn` to run later on the executor's own thread, in the order of
  // Post() calls.  Thread-safe.  Never runs `fn` inside the call.  An
  // executor that is shutting down still runs (or destroys) every closure it
  // accepted; it never drops one silently.
  virtual void Post(absl::AnyInvocable<void()> fn) = 0;
};

}  // namespace threadpool
}  // namespace kqio

#endif  // KQIO_THREADPOOL_EXECUTOR_H_
