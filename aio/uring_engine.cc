// The io_uring engine (Linux).  Elsewhere its factory is a stub.
//
// Requests become SQEs in one ring per engine.  Submission is batched: the
// first request queued in a loop iteration posts one flush closure, which
// the loop runs after the iteration's events, so everything queued before it
// goes to the kernel in one io_uring_submit().  Completions come back
// through the ring's eventfd, which kqio_aio_watch() turns into EVFILT_AIO
// events on the service's kqueue: the loop sees one kind of AIO completion
// on every platform, and the handler reaps every CQE there is.  A flush also
// reaps at once, since the kernel completes page-cache hits inside
// io_uring_submit().
//
// At most max_in_flight requests are in the kernel; the rest wait in a
// bounded FIFO in user space (beyond it: ResourceExhausted), so the
// completion queue (twice the submission queue) can never overflow, cancel
// requests included.  Each request in the kernel owns a slot; the slot index
// and a generation form the SQE's user_data, and the slot holds the
// request's shared_ptr (keeping buffers alive) and, for stat, the statx
// buffer the kernel fills (for openat, the open_how it reads).
//
// Availability is probed, never assumed: a ring that cannot be created
// (EPERM under seccomp, ENOSYS, ENOMEM from memlock limits) makes the
// factory fail with the reason, and each opcode is checked with
// IORING_REGISTER_PROBE.
#include "aio/engine.h"

#if defined(__linux__)

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/openat2.h>
#include <sys/event.h>
#include <sys/eventfd.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "io/errno_status.h"
#include "io/kqueue_ext.h"

namespace kqio {
namespace aio {
namespace {

// user_data of an IORING_OP_ASYNC_CANCEL: its own completion is ignored.
constexpr uint64_t kCancelTag = uint64_t{1} << 63;
// How long the destructor waits for the kernel to finish requests in flight
// before it leaks their memory rather than free what the kernel may write.
constexpr absl::Duration kTeardownWait = absl::Seconds(10);

struct UringOp {
  int op;
  const char* name;
};

UringOp UringOpFor(Opcode op) {
  switch (op) {
    case Opcode::kOpen:
      return {IORING_OP_OPENAT, "IORING_OP_OPENAT"};
    case Opcode::kOpenAt:
      return {IORING_OP_OPENAT2, "IORING_OP_OPENAT2"};
    case Opcode::kStat:
    case Opcode::kFstat:
      return {IORING_OP_STATX, "IORING_OP_STATX"};
    case Opcode::kRead:
      return {IORING_OP_READ, "IORING_OP_READ"};
    case Opcode::kReadv:
      return {IORING_OP_READV, "IORING_OP_READV"};
    case Opcode::kWrite:
      return {IORING_OP_WRITE, "IORING_OP_WRITE"};
    case Opcode::kWritev:
      return {IORING_OP_WRITEV, "IORING_OP_WRITEV"};
    case Opcode::kFsync:
    case Opcode::kFdatasync:
      return {IORING_OP_FSYNC, "IORING_OP_FSYNC"};
    case Opcode::kClose:
      return {IORING_OP_CLOSE, "IORING_OP_CLOSE"};
    case Opcode::kReadWhole:
      break;  // several calls: not one ring opcode
  }
  return {IORING_OP_LAST, nullptr};
}

// CQE results that mean "this ring cannot do that here": nothing happened,
// so the core may run the request elsewhere.  -EINVAL is not one of them: a
// probed opcode answering EINVAL is the operation's own error (a bad offset
// for O_DIRECT, say), and the pool would say the same.  An openat2 that
// raced a rename answers -EAGAIN too; the pool retries it.
bool IsRefusal(int res) {
  return res == -ENOSYS || res == -EOPNOTSUPP || res == -EAGAIN;
}

void StatxToStat(const struct statx& x, struct stat* st) {
  *st = {};
  st->st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
  st->st_ino = x.stx_ino;
  st->st_mode = x.stx_mode;
  st->st_nlink = x.stx_nlink;
  st->st_uid = x.stx_uid;
  st->st_gid = x.stx_gid;
  st->st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
  st->st_size = static_cast<off_t>(x.stx_size);
  st->st_blksize = static_cast<blksize_t>(x.stx_blksize);
  st->st_blocks = static_cast<blkcnt_t>(x.stx_blocks);
  st->st_atim = {x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
  st->st_mtim = {x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
  st->st_ctim = {x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
}

class UringEngine final : public Engine {
 public:
  UringEngine(io::IoService& service, const UringEngineOptions& options)
      : service_(service), options_(options) {}
  ~UringEngine() override;

  // Creates the ring, probes it and attaches its eventfd to the kqueue.
  absl::Status Init();

  EngineKind kind() const override { return EngineKind::kUring; }
  Capability Supports(Opcode op) const override {
    const int i = static_cast<int>(op);
    return {supported_[i] && !broken_, broken_ ? broken_why_ : why_[i]};
  }
  absl::Status Submit(std::shared_ptr<Request> req) override;
  void Cancel(Request& req) override;
  std::string Stats() const override;

 private:
  struct Slot {
    std::shared_ptr<Request> req;  // null: free
    struct statx stx;
    struct open_how how;
    uint32_t generation = 1;
    bool cancel_sent = false;
  };
  static uint64_t Cookie(uint32_t index, uint32_t generation) {
    return uint64_t{generation} << 32 | index;
  }

  bool CanPlace() const {
    return !free_.empty() && io_uring_sq_space_left(&ring_) > 0;
  }
  void Place(std::shared_ptr<Request> req);
  void Refill();
  void ScheduleFlush();
  void Flush();
  void Reap();
  void Break(int err);

  io::IoService& service_;
  const UringEngineOptions options_;
  struct io_uring ring_ = {};
  bool ring_ok_ = false;
  int efd_ = -1;
  io::Registration reg_;
  bool watching_ = false;
  std::array<bool, kNumOpcodes> supported_{};
  std::array<std::string, kNumOpcodes> why_;
  bool has_cancel_ = false;
  bool broken_ = false;
  std::string broken_why_;

  std::vector<Slot> slots_;  // sized once: the kernel holds &slot.stx
  std::vector<uint32_t> free_;
  std::deque<std::shared_ptr<Request>> backlog_;  // cookie 0
  std::deque<uint64_t> unsubmitted_;  // user_data of SQEs not yet submitted
  size_t in_flight_ = 0;              // slots in use
  bool flush_posted_ = false;
  io::TimerId flush_retry_;
  // Lets posted flush closures outlive the engine.
  std::shared_ptr<UringEngine*> alive_ = std::make_shared<UringEngine*>(this);

  // Counters.
  uint64_t submit_calls_ = 0, sqes_submitted_ = 0, max_batch_ = 0;
  uint64_t reaped_ = 0, cancels_sent_ = 0, backlogged_ = 0;
  size_t max_backlog_seen_ = 0;
};

absl::Status UringEngine::Init() {
  if (options_.entries == 0 || options_.max_in_flight == 0) {
    return absl::InvalidArgumentError(
        "io_uring: entries and max_in_flight must be > 0");
  }
  struct io_uring_params params = {};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = 2 * options_.entries;
  int r = io_uring_queue_init_params(options_.entries, &ring_, &params);
  if (r < 0) return io::ErrnoStatus(-r, "io_uring_queue_init");
  ring_ok_ = true;

  struct io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  for (int i = 0; i < kNumOpcodes; ++i) {
    const UringOp u = UringOpFor(static_cast<Opcode>(i));
    if (u.name == nullptr) {
      why_[i] = "several system calls, not one io_uring opcode";
      continue;
    }
    supported_[i] = probe != nullptr && io_uring_opcode_supported(probe, u.op);
    why_[i] = probe == nullptr
                  ? "IORING_REGISTER_PROBE failed (kernel before 5.6)"
                  : absl::StrCat(u.name, supported_[i]
                                             ? " supported"
                                             : " not supported by this kernel");
  }
  has_cancel_ = probe != nullptr &&
                io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
  if (probe != nullptr) io_uring_free_probe(probe);

  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) return io::ErrnoStatus(errno, "io_uring: eventfd");
  r = io_uring_register_eventfd(&ring_, efd_);
  if (r < 0) return io::ErrnoStatus(-r, "io_uring_register_eventfd");
  auto reg = service_.RegisterHandler([this](const struct kevent&) { Reap(); },
                                      io::IoService::KeepAlive::kNo);
  if (!reg.ok()) return reg.status();
  reg_ = *reg;
  struct kevent change;
  EV_SET(&change, static_cast<uintptr_t>(efd_), EVFILT_AIO, EV_ADD, 0, 0,
         reg_.udata());
  if (kqio_aio_watch(service_.kqueue_fd(), efd_, &change) != 0) {
    const int err = errno;
    service_.Unregister(reg_);
    return io::ErrnoStatus(err, "io_uring: kqio_aio_watch");
  }
  watching_ = true;

  const size_t slots =
      std::min<size_t>(options_.max_in_flight, options_.entries);
  slots_.resize(slots);
  free_.reserve(slots);
  for (size_t i = slots; i > 0; --i)
    free_.push_back(static_cast<uint32_t>(i - 1));
  return absl::OkStatus();
}

absl::Status UringEngine::Submit(std::shared_ptr<Request> req) {
  const int i = static_cast<int>(req->opcode);
  if (broken_ || !supported_[i]) {
    return io::ErrnoStatus(ENOSYS, "io_uring", broken_ ? broken_why_ : why_[i]);
  }
  // IORING_OP_READ/WRITE take a 32-bit length.
  if ((req->opcode == Opcode::kRead || req->opcode == Opcode::kWrite) &&
      req->iov[0].iov_len > std::numeric_limits<uint32_t>::max()) {
    return io::ErrnoStatus(EINVAL, "io_uring", "length over 4 GiB");
  }
  // FIFO: nothing overtakes the backlog.
  if (backlog_.empty() && CanPlace()) {
    Place(std::move(req));
    return absl::OkStatus();
  }
  if (backlog_.size() >= options_.max_backlog) {
    return absl::ResourceExhaustedError(
        absl::StrCat("io_uring: ", in_flight_, " requests in flight and ",
                     backlog_.size(), " queued (max_backlog)"));
  }
  req->engine_cookie = 0;
  backlog_.push_back(std::move(req));
  ++backlogged_;
  max_backlog_seen_ = std::max(max_backlog_seen_, backlog_.size());
  return absl::OkStatus();
}

void UringEngine::Place(std::shared_ptr<Request> req) {
  const uint32_t index = free_.back();
  free_.pop_back();
  Slot& s = slots_[index];
  const uint64_t cookie = Cookie(index, s.generation);
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);  // CanPlace() said so
  const Request& r = *req;
  switch (r.opcode) {
    case Opcode::kOpen:
      io_uring_prep_openat(sqe, AT_FDCWD, r.path, r.flags | O_CLOEXEC, r.mode);
      break;
    case Opcode::kOpenAt:
      s.how = {};
      s.how.flags =
          static_cast<uint64_t>(static_cast<unsigned>(r.flags)) | O_CLOEXEC;
      // openat2 refuses a mode without O_CREAT or O_TMPFILE.
      if ((r.flags & O_CREAT) != 0 || (r.flags & O_TMPFILE) == O_TMPFILE) {
        s.how.mode = r.mode;
      }
      if ((r.resolve & kResolveBeneath) != 0) {
        s.how.resolve |= RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
      }
      if ((r.resolve & kResolveNoSymlinks) != 0) {
        s.how.resolve |= RESOLVE_NO_SYMLINKS;
      }
      io_uring_prep_openat2(sqe, r.dir_fd, r.path, &s.how);
      break;
    case Opcode::kStat:
      io_uring_prep_statx(sqe, AT_FDCWD, r.path, 0, STATX_BASIC_STATS, &s.stx);
      break;
    case Opcode::kFstat:
      io_uring_prep_statx(sqe, r.fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS,
                          &s.stx);
      break;
    case Opcode::kRead:
      io_uring_prep_read(sqe, r.fd, r.iov[0].iov_base,
                         static_cast<unsigned>(r.iov[0].iov_len), r.offset);
      break;
    case Opcode::kReadv:
      io_uring_prep_readv(sqe, r.fd, r.iov, static_cast<unsigned>(r.iovcnt),
                          r.offset);
      break;
    case Opcode::kWrite:
      io_uring_prep_write(sqe, r.fd, r.iov[0].iov_base,
                          static_cast<unsigned>(r.iov[0].iov_len), r.offset);
      break;
    case Opcode::kWritev:
      io_uring_prep_writev(sqe, r.fd, r.iov, static_cast<unsigned>(r.iovcnt),
                           r.offset);
      break;
    case Opcode::kFsync:
      io_uring_prep_fsync(sqe, r.fd, 0);
      break;
    case Opcode::kFdatasync:
      io_uring_prep_fsync(sqe, r.fd, IORING_FSYNC_DATASYNC);
      break;
    case Opcode::kClose:
      io_uring_prep_close(sqe, r.fd);
      break;
    case Opcode::kReadWhole:
      break;  // never supported (UringOpFor): Submit() refused it
  }
  io_uring_sqe_set_data64(sqe, cookie);
  req->engine_cookie = cookie;
  s.req = std::move(req);
  s.cancel_sent = false;
  ++in_flight_;
  unsubmitted_.push_back(cookie);
  ScheduleFlush();
}

void UringEngine::Refill() {
  while (!backlog_.empty() && !broken_ && CanPlace()) {
    std::shared_ptr<Request> req = std::move(backlog_.front());
    backlog_.pop_front();
    Place(std::move(req));
  }
}

void UringEngine::ScheduleFlush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  service_.Post([alive = alive_] {
    if (*alive != nullptr) (*alive)->Flush();
  });
}

void UringEngine::Flush() {
  flush_posted_ = false;
  if (unsubmitted_.empty() || broken_) return;
  const int r = io_uring_submit(&ring_);
  if (r >= 0) {
    ++submit_calls_;
    sqes_submitted_ += static_cast<uint64_t>(r);
    max_batch_ = std::max<uint64_t>(max_batch_, static_cast<uint64_t>(r));
    const size_t n =
        std::min<size_t>(static_cast<size_t>(r), unsubmitted_.size());
    unsubmitted_.erase(unsubmitted_.begin(), unsubmitted_.begin() + n);
    // The kernel stops at an SQE it cannot even read (posting its error as a
    // CQE); the rest stay in the ring for the next call.
    if (!unsubmitted_.empty()) ScheduleFlush();
  } else if (r == -EINTR || r == -EBUSY) {
    ScheduleFlush();  // after the reap below has made room
  } else if (r == -EAGAIN || r == -ENOMEM) {
    // The kernel is short of memory for requests: retry soon, not in a spin.
    flush_posted_ = true;
    flush_retry_ = service_.RunAfter(absl::Milliseconds(1), [alive = alive_] {
      if (*alive != nullptr) (*alive)->Flush();
    });
  } else {
    Break(-r);
  }
  Reap();
}

// The ring cannot submit any more.  Requests it never took are refused (so
// the core runs them on the pool); those already in the kernel still
// complete through the eventfd.
void UringEngine::Break(int err) {
  broken_ = true;
  broken_why_ = absl::StrCat("io_uring_submit failed: ",
                             io::ErrnoStatus(err, "io_uring_submit").message());
  std::vector<std::shared_ptr<Request>> refused;
  for (uint64_t cookie : unsubmitted_) {
    if (cookie & kCancelTag) continue;
    Slot& s = slots_[static_cast<uint32_t>(cookie)];
    refused.push_back(std::move(s.req));
    --in_flight_;  // the slot is not reused: Place() is never called again
  }
  unsubmitted_.clear();
  for (auto& req : backlog_) refused.push_back(std::move(req));
  backlog_.clear();
  for (auto& req : refused) {
    service_.Post([req = std::move(req)]() mutable {
      ReportRefused(std::move(req), ENOSYS);
    });
  }
}

void UringEngine::Reap() {
  struct Done {
    std::shared_ptr<Request> req;
    int res;
  };
  absl::InlinedVector<Done, 32> done;
  unsigned head;
  unsigned seen = 0;
  struct io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    const uint64_t cookie = io_uring_cqe_get_data64(cqe);
    if (cookie & kCancelTag) continue;
    const uint32_t index = static_cast<uint32_t>(cookie);
    if (index >= slots_.size()) continue;
    Slot& s = slots_[index];
    if (s.req == nullptr || Cookie(index, s.generation) != cookie) continue;
    if ((s.req->opcode == Opcode::kStat || s.req->opcode == Opcode::kFstat) &&
        cqe->res >= 0) {
      StatxToStat(s.stx, s.req->stat_out);
    }
    done.push_back({std::move(s.req), cqe->res});
    ++s.generation;
    if (s.generation == 0) s.generation = 1;  // cookie 0 means "backlog"
    free_.push_back(index);
    --in_flight_;
  }
  io_uring_cq_advance(&ring_, seen);
  reaped_ += done.size();
  Refill();
  // Reports last: the core may submit or cancel from inside them.
  for (Done& d : done) {
    if (IsRefusal(d.res)) {
      ReportRefused(std::move(d.req), -d.res);
    } else {
      ReportDone(std::move(d.req), d.res);
    }
  }
}

void UringEngine::Cancel(Request& req) {
  const uint64_t cookie = req.engine_cookie;
  if (cookie == 0) {
    // Still in user space: take it out and report it, deferred.
    auto it = std::find_if(backlog_.begin(), backlog_.end(),
                           [&](const auto& r) { return r.get() == &req; });
    if (it == backlog_.end()) return;
    std::shared_ptr<Request> owned = std::move(*it);
    backlog_.erase(it);
    service_.Post([owned = std::move(owned)]() mutable {
      ReportRefused(std::move(owned), ECANCELED);
    });
    return;
  }
  if (req.opcode == Opcode::kClose || !has_cancel_ || broken_) return;
  const uint32_t index = static_cast<uint32_t>(cookie);
  if (index >= slots_.size()) return;
  Slot& s = slots_[index];
  if (s.req.get() != &req || s.cancel_sent) return;
  if (io_uring_sq_space_left(&ring_) == 0) return;  // best effort
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  io_uring_prep_cancel64(sqe, cookie, 0);
  io_uring_sqe_set_data64(sqe, kCancelTag | cookie);
  s.cancel_sent = true;
  ++cancels_sent_;
  unsubmitted_.push_back(kCancelTag | cookie);
  ScheduleFlush();
}

std::string UringEngine::Stats() const {
  return absl::StrCat(
      "uring: submit_calls=", submit_calls_, " sqes=", sqes_submitted_,
      " max_batch=", max_batch_, " reaped=", reaped_, " in_flight=", in_flight_,
      " backlogged=", backlogged_, " max_backlog=", max_backlog_seen_,
      " cancels=", cancels_sent_);
}

UringEngine::~UringEngine() {
  *alive_ = nullptr;
  service_.Cancel(flush_retry_);
  // Requests still in user space never reached the kernel.
  std::deque<std::shared_ptr<Request>> backlog = std::move(backlog_);
  backlog_.clear();
  for (auto& req : backlog) ReportRefused(std::move(req), ECANCELED);
  if (ring_ok_) {
    // Ask the kernel to give up on what it holds, then wait for every
    // completion: the requests' memory is freed only when the kernel is done.
    if (!broken_) {
      for (Slot& s : slots_) {
        if (s.req != nullptr) Cancel(*s.req);
      }
      io_uring_submit(&ring_);
      unsubmitted_.clear();
    }
    const absl::Time give_up = absl::Now() + kTeardownWait;
    while (in_flight_ > 0 && absl::Now() < give_up) {
      struct io_uring_cqe* cqe = nullptr;
      struct __kernel_timespec ts = {0, 100 * 1000 * 1000};
      io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
      Reap();
    }
    if (in_flight_ > 0) {
      // The kernel still holds some: leak them (and the statx buffers)
      // rather than free memory it may write.
      new std::vector<Slot>(std::move(slots_));
    }
  }
  if (watching_) {
    const int kq = service_.kqueue_fd();
    if (kq >= 0) {
      struct kevent change;
      EV_SET(&change, static_cast<uintptr_t>(efd_), EVFILT_AIO, EV_DELETE, 0, 0,
             nullptr);
      kqio_aio_watch(kq, efd_, &change);
    }
    service_.Unregister(reg_);
  }
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (efd_ >= 0) close(efd_);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewUringEngine(
    io::IoService& service, const UringEngineOptions& options) {
  auto engine = std::make_unique<UringEngine>(service, options);
  absl::Status status = engine->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<Engine>(std::move(engine));
}

}  // namespace aio
}  // namespace kqio

#else  // !__linux__

namespace kqio {
namespace aio {

absl::StatusOr<std::unique_ptr<Engine>> NewUringEngine(
    io::IoService&, const UringEngineOptions&) {
  return absl::UnimplementedError("io_uring: not handled here (Linux only)");
}

}  // namespace aio
}  // namespace kqio

#endif  // __linux__
