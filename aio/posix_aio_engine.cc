// The POSIX AIO engine (FreeBSD): aio_read / aio_write / aio_fsync with
// SIGEV_KEVENT, so each finished request is one EVFILT_AIO event on the
// service's own kqueue (ident: the aiocb; udata: our registration).
// aio_return() is always called, exactly once per accepted request, which is
// what frees the kernel's record of it.
//
// Compiled only where SIGEV_KEVENT exists; elsewhere the factory is a stub
// (macOS has no EVFILT_AIO and uses the pool; Linux uses io_uring).  This
// file cannot be built or run on kqio's Linux CI: it is kept deliberately
// small, and every other part of the contract (ladder, exactly-once,
// cancellation) lives in the core, which is tested through the other
// engines and the fault-injecting wrapper.
#include <signal.h>

#include "aio/engine.h"

#if defined(__FreeBSD__) && defined(SIGEV_KEVENT)

#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/event.h>
#include <time.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "io/errno_status.h"

namespace kqio {
namespace aio {
namespace {

// One request in the kernel: the aiocb must stay put until aio_return().
struct Slot {
  struct aiocb cb = {};  // first: the event's ident points here
  std::shared_ptr<Request> req;
};

class PosixAioEngine final : public Engine {
 public:
  explicit PosixAioEngine(io::IoService& service) : service_(service) {}
  ~PosixAioEngine() override;
  absl::Status Init();

  EngineKind kind() const override { return EngineKind::kPosix; }
  Capability Supports(Opcode op) const override {
    switch (op) {
      case Opcode::kRead:
        return {true, "aio_read with SIGEV_KEVENT"};
      case Opcode::kWrite:
        return {true, "aio_write with SIGEV_KEVENT"};
      case Opcode::kFsync:
        return {true, "aio_fsync(O_SYNC) with SIGEV_KEVENT"};
      default:
        return {false, "no POSIX AIO call for this operation"};
    }
  }
  absl::Status Submit(std::shared_ptr<Request> req) override;
  void Cancel(Request& req) override;
  std::string Stats() const override {
    return absl::StrCat("posix: submitted=", submitted_,
                        " in_flight=", slots_.size());
  }

 private:
  void OnEvent(const struct kevent& ev);
  // aio_error + aio_return: the result, or -errno.
  static int64_t Collect(Slot* s) {
    const int err = aio_error(&s->cb);
    const ssize_t r = aio_return(&s->cb);
    return err != 0 ? -int64_t{err} : r;
  }

  io::IoService& service_;
  io::Registration reg_;
  absl::flat_hash_set<Slot*> slots_;  // owned; in the kernel
  uint64_t submitted_ = 0;
};

absl::Status PosixAioEngine::Init() {
  auto reg =
      service_.RegisterHandler([this](const struct kevent& ev) { OnEvent(ev); },
                               io::IoService::KeepAlive::kNo);
  if (!reg.ok()) return reg.status();
  reg_ = *reg;
  return absl::OkStatus();
}

absl::Status PosixAioEngine::Submit(std::shared_ptr<Request> req) {
  if (!Supports(req->opcode).supported) {
    return io::ErrnoStatus(ENOSYS, "aio", OpcodeName(req->opcode));
  }
  auto s = std::make_unique<Slot>();
  s->cb.aio_fildes = req->fd;
  s->cb.aio_offset = static_cast<off_t>(req->offset);
  if (req->opcode != Opcode::kFsync) {
    s->cb.aio_buf = req->iov[0].iov_base;
    s->cb.aio_nbytes = req->iov[0].iov_len;
  }
  s->cb.aio_sigevent.sigev_notify = SIGEV_KEVENT;
  s->cb.aio_sigevent.sigev_notify_kqueue = service_.kqueue_fd();
  s->cb.aio_sigevent.sigev_value.sival_ptr = reg_.udata();
  int r;
  switch (req->opcode) {
    case Opcode::kRead:
      r = aio_read(&s->cb);
      break;
    case Opcode::kWrite:
      r = aio_write(&s->cb);
      break;
    default:
      r = aio_fsync(O_SYNC, &s->cb);
      break;
  }
  // EAGAIN (queue full), ENOSYS (no aio), EOPNOTSUPP (unsafe AIO off for
  // this file system), EINVAL: the core's ladder decides.
  if (r != 0) return io::ErrnoStatus(errno, OpcodeName(req->opcode), "aio");
  req->engine_cookie = reinterpret_cast<uintptr_t>(s.get());
  s->req = std::move(req);
  slots_.insert(s.release());
  ++submitted_;
  return absl::OkStatus();
}

void PosixAioEngine::OnEvent(const struct kevent& ev) {
  Slot* s = reinterpret_cast<Slot*>(ev.ident);
  auto it = slots_.find(s);
  if (it == slots_.end()) return;  // not ours, or already collected
  slots_.erase(it);
  std::unique_ptr<Slot> owned(s);
  const int64_t result = Collect(s);
  ReportDone(std::move(owned->req), result);
}

// The request still completes (ECANCELED or its result) with an event.
void PosixAioEngine::Cancel(Request& req) {
  Slot* s = reinterpret_cast<Slot*>(req.engine_cookie);
  if (slots_.contains(s)) aio_cancel(s->cb.aio_fildes, &s->cb);
}

PosixAioEngine::~PosixAioEngine() {
  service_.Unregister(reg_);  // late events are dropped as stale
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  for (Slot* s : slots_) aio_cancel(s->cb.aio_fildes, &s->cb);
  while (!slots_.empty() && absl::Now() < give_up) {
    for (auto it = slots_.begin(); it != slots_.end();) {
      Slot* s = *it;
      if (aio_error(&s->cb) == EINPROGRESS) {
        ++it;
        continue;
      }
      slots_.erase(it++);
      std::unique_ptr<Slot> owned(s);
      ReportDone(std::move(owned->req), Collect(s));
    }
    if (!slots_.empty()) {
      const struct timespec pause = {0, 10 * 1000 * 1000};
      nanosleep(&pause, nullptr);
    }
  }
  // Still in the kernel after that: leaked, never freed under it.
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewPosixAioEngine(
    io::IoService& service) {
  auto engine = std::make_unique<PosixAioEngine>(service);
  absl::Status status = engine->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace aio
}  // namespace kqio

#else  // no SIGEV_KEVENT: not handled here

namespace kqio {
namespace aio {

absl::StatusOr<std::unique_ptr<Engine>> NewPosixAioEngine(io::IoService&) {
  return absl::UnimplementedError(
      "POSIX AIO: not handled here (needs SIGEV_KEVENT: FreeBSD)");
}

}  // namespace aio
}  // namespace kqio

#endif
