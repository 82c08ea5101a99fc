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

  // Work accounting, for an executor that must know results are on their
  // way: io::IoService's Run() does not return for lack of work, and its
  // Shutdown() waits, while any are outstanding.  The pool calls
  // WorkStarted() when it accepts a task for this executor (before the task
  // can run) and WorkFinished() on the executor's thread right after that
  // task's completion ran; a refused submission calls both.  Thread-safe.
  // The defaults do nothing.
  virtual void WorkStarted() {}
  virtual void WorkFinished() {}
};

}  // namespace threadpool
}  // namespace kqio

#endif  // KQIO_THREADPOOL_EXECUTOR_H_
