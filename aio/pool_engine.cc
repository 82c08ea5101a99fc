// The thread-pool engine: every opcode, on every platform, as a blocking call
// on one of the pool's lanes (metadata: open, stat, close; data: reads and
// writes; sync: fsync).  The bottom rung of the fallback ladder, so it never
// refuses an opcode; it refuses a submission only when the pool does (a full
// lane: ResourceExhausted; a pool shut down: FailedPrecondition).
//
// The work reads the request's fields on a worker; the request stays alive
// because the work and the completion both hold it.  The pool delivers the
// completion only after the work has returned, so a report always means the
// worker is done with the request's memory and descriptor.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "aio/engine.h"

namespace kqio {
namespace aio {
namespace {

using threadpool::Lane;

Lane LaneFor(Opcode op) {
  switch (ClassOf(op)) {
    case FileOpClass::kRead:
    case FileOpClass::kWrite:
      return Lane::kData;
    case FileOpClass::kFsync:
      return Lane::kSync;
    default:
      return Lane::kMetadata;
  }
}

// The descriptor of a close, owned by the close work from its acceptance by
// the pool: a task destroyed without running (its completion refused by a
// service already shut down) still closes it.  Shared, so that a refused
// submission can take the descriptor back before anything closes it.
class FdOwner final {
 public:
  explicit FdOwner(int fd) : fd_(fd) {}
  FdOwner(const FdOwner&) = delete;
  FdOwner& operator=(const FdOwner&) = delete;
  ~FdOwner() {
    const int fd = take();
    if (fd >= 0) close(fd);
  }
  int take() { return fd_.exchange(-1, std::memory_order_acq_rel); }

 private:
  std::atomic<int> fd_;
};

// -errno for a failed call, else its result.
int64_t Result(int64_t r) { return r < 0 ? -int64_t{errno} : r; }

// Retries a call interrupted by a signal (never close: Linux releases the
// descriptor even when close() reports EINTR).
template <typename Call>
int64_t Retrying(Call call) {
  int64_t r;
  do {
    r = Result(call());
  } while (r == -EINTR);
  return r;
}

int64_t Execute(const Request& req, const BlockingCalls& calls) {
  switch (req.opcode) {
    case Opcode::kOpen:
      return Retrying(
          [&] { return open(req.path, req.flags | O_CLOEXEC, req.mode); });
    case Opcode::kStat:
      return Retrying([&] { return stat(req.path, req.stat_out); });
    case Opcode::kFstat:
      return Retrying([&] { return fstat(req.fd, req.stat_out); });
    case Opcode::kRead:
    case Opcode::kReadv:
      return Retrying([&] {
        return calls.preadv(req.fd, req.iov, req.iovcnt,
                            static_cast<off_t>(req.offset));
      });
    case Opcode::kWrite:
    case Opcode::kWritev:
      return Retrying([&] {
        return calls.pwritev(req.fd, req.iov, req.iovcnt,
                             static_cast<off_t>(req.offset));
      });
    case Opcode::kFsync:
      return Retrying([&] { return fsync(req.fd); });
    case Opcode::kFdatasync:
      return Retrying([&] { return fdatasync(req.fd); });
    case Opcode::kClose:
      break;  // see Submit
  }
  return -EINVAL;
}

class PoolEngine final : public Engine {
 public:
  PoolEngine(io::IoService& service, threadpool::ThreadPool& pool,
             const BlockingCalls* calls)
      : service_(service), pool_(pool) {
    if (calls != nullptr) calls_ = *calls;
    if (calls_.preadv == nullptr) calls_.preadv = ::preadv;
    if (calls_.pwritev == nullptr) calls_.pwritev = ::pwritev;
  }

  EngineKind kind() const override { return EngineKind::kPool; }

  Capability Supports(Opcode op) const override {
    return {true, absl::StrCat("thread pool, ",
                               threadpool::LaneName(LaneFor(op)), " lane")};
  }

  absl::Status Submit(std::shared_ptr<Request> req) override {
    Request* r = req.get();
    const Opcode opcode = req->opcode;
    // The completion: the pool reports Cancelled only for work that never
    // ran or whose result the cleanup hook below already released.
    auto done = [req](absl::StatusOr<int64_t> result) mutable {
      ReportDone(std::move(req), result.ok() ? *result : -ECANCELED);
    };
    absl::StatusOr<threadpool::TaskHandle> handle;
    if (opcode == Opcode::kClose) {
      auto owner = std::make_shared<FdOwner>(r->fd);
      handle = pool_.Submit(
          LaneFor(opcode), service_,
          [owner]() -> int64_t { return Result(close(owner->take())); },
          std::move(done));
      if (!handle.ok()) owner->take();  // still the caller's
    } else {
      handle = pool_.Submit(
          LaneFor(opcode), service_,
          [req = std::move(req), calls = calls_]() -> int64_t {
            return Execute(*req, calls);
          },
          std::move(done));
    }
    if (!handle.ok()) return handle.status();
    r->pool_task = *std::move(handle);
    ++submitted_;
    return absl::OkStatus();
  }

  // Queued work never runs; running work finishes and reports -ECANCELED.
  // Opens and closes are left to finish: a cancelled open's descriptor then
  // comes back through the normal report and the core closes it on the
  // pool (a cleanup hook could run close() on the loop thread), and a close
  // must happen whatever the caller wants.
  void Cancel(Request& req) override {
    if (req.opcode == Opcode::kOpen || req.opcode == Opcode::kClose) return;
    if (req.pool_task.Cancel()) ++cancelled_;
  }

  std::string Stats() const override {
    return absl::StrCat("pool: submitted=", submitted_,
                        " cancel_requests=", cancelled_);
  }

 private:
  io::IoService& service_;
  threadpool::ThreadPool& pool_;
  BlockingCalls calls_;
  uint64_t submitted_ = 0;
  uint64_t cancelled_ = 0;
};

}  // namespace

std::unique_ptr<Engine> NewPoolEngine(io::IoService& service,
                                      threadpool::ThreadPool& pool,
                                      const BlockingCalls* calls) {
  return std::make_unique<PoolEngine>(service, pool, calls);
}

}  // namespace aio
}  // namespace kqio
