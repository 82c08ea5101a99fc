// The file core: engine choice, the fallback ladder, and the life of an
// operation.  The public methods that build operations are in file_ops.cc,
// the reports in file_service_report.cc.
//
// The life of an internal::Op, all on the loop thread:
//   Start     tracked by the IoService (so Shutdown aborts it), linked into
//             the live list (which holds a reference) and into its file's
//             pending list; the deadline timer is armed; then the page-cache
//             fast path, or Dispatch.
//   Dispatch  the class's engine (or the per-op override) unless it cannot
//             run the opcode or was remembered broken; a refusal with a
//             ladder errno goes to the pool (Fallback); any other refusal is
//             the caller's error (SubmissionFailed).
//   Finish    decides the caller's completion exactly once: untracks,
//             unlinks from the file, posts the callback.  An error while an
//             engine still holds the request (cancel, deadline) asks the
//             engine to cancel; the request, and the memory it points to,
//             stay alive until the engine reports.
//   Completed the engine's report: EINTR re-runs it; a late result is
//             released (an Open's descriptor closed); otherwise Finish.
//   Release   once the caller's completion is decided and no engine holds
//             it, the op leaves the live list.
// A close is special: it waits ("parked") until no engine holds a request
// naming the descriptor, and it always runs, whatever its caller wants.
#include "aio/file_service.h"

#include <errno.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "aio/internal/nowait_read.h"
#include "aio/internal/op.h"
#include "io/errno_status.h"

namespace kqio {
namespace aio {

using internal::FileState;
using internal::Op;

namespace {

size_t Index(FileOpClass c) { return static_cast<size_t>(c); }
size_t Index(EngineKind k) { return static_cast<size_t>(k); }
uint8_t Bit(EngineKind k) { return static_cast<uint8_t>(1u << Index(k)); }

// The opcode that decides whether an engine serves a class.
Opcode PrimaryOpcode(FileOpClass c) {
  switch (c) {
    case FileOpClass::kOpen:
      return Opcode::kOpen;
    case FileOpClass::kStat:
      return Opcode::kStat;
    case FileOpClass::kRead:
      return Opcode::kRead;
    case FileOpClass::kWrite:
      return Opcode::kWrite;
    case FileOpClass::kFsync:
      return Opcode::kFsync;
    case FileOpClass::kClose:
      return Opcode::kClose;
  }
  return Opcode::kRead;
}

absl::Status Annotated(const Op& op, const absl::Status& s) {
  absl::Status out(s.code(), absl::StrCat(OpcodeName(op.opcode), "(",
                                          op.subject(), "): ", s.message()));
  return io::WithErrno(std::move(out), io::StatusErrno(s));
}

absl::Status CancelledStatus(const Op& op, absl::string_view why) {
  return io::WithErrno(
      absl::CancelledError(
          absl::StrCat(OpcodeName(op.opcode), "(", op.subject(), "): ", why)),
      ECANCELED);
}

}  // namespace

namespace internal {

FileState::~FileState() {
  if (fd >= 0) close(fd);
}

Op::~Op() {
  if (owned_fd >= 0)
    close(owned_fd);  // teardown only: see FileService::~FileService
}

void Op::Abort() { owner->Finish(*this, CancelledStatus(*this, "cancelled")); }

}  // namespace internal

// ---------------------------------------------------------------------------
// Creation and destruction.

absl::StatusOr<std::unique_ptr<FileService>> FileService::Create(
    io::IoService& service, threadpool::ThreadPool& pool,
    FileServiceOptions options) {
  return CreateWithHooks(service, pool, std::move(options), TestHooks());
}

absl::StatusOr<std::unique_ptr<FileService>> FileService::CreateWithHooks(
    io::IoService& service, threadpool::ThreadPool& pool,
    FileServiceOptions options, TestHooks hooks) {
  if (options.max_eintr_retries < 0) {
    return absl::InvalidArgumentError("aio: max_eintr_retries must be >= 0");
  }
  if (options.uring.entries == 0 || options.uring.max_in_flight == 0) {
    return absl::InvalidArgumentError(
        "aio: uring.entries and uring.max_in_flight must be > 0");
  }
  for (EngineKind k : options.engines) {
    if (Index(k) >= kNumEngineKinds) {
      return absl::InvalidArgumentError("aio: unknown engine kind");
    }
  }
  std::unique_ptr<FileService> fs(new FileService(service, std::move(options)));
  fs->SetUpEngines(pool, hooks);
  return fs;
}

FileService::FileService(io::IoService& service, FileServiceOptions options)
    : service_(service),
      options_(std::move(options)),
      token_(std::make_shared<FileService*>(this)) {}

void FileService::SetUpEngines(threadpool::ThreadPool& pool, TestHooks& hooks) {
  nowait_read_ =
      hooks.nowait_read != nullptr ? hooks.nowait_read : internal::NoWaitRead;
  if (!options_.page_cache_fast_path) {
    fast_path_why_ = "off: disabled by the options";
  } else if (!internal::HaveNoWaitRead()) {
    fast_path_why_ = "off: no preadv2(RWF_NOWAIT) here (not handled here)";
  } else {
    fast_path_ok_ = true;
    const long page = sysconf(_SC_PAGESIZE);
    if (page > 0) page_size_ = static_cast<uint64_t>(page);
    fast_path_why_ =
        absl::StrCat("on: preadv2(RWF_NOWAIT) on the loop for reads up to ",
                     options_.fast_path_max_bytes, " bytes");
  }
  // ReadFile's pool task asks the page cache first, where the fast path may,
  // to tell ReadFile whether the files it reads are cached (read_file.cc).
  if (hooks.pool_calls != nullptr) pool_calls_ = *hooks.pool_calls;
  if (fast_path_ok_) pool_calls_.nowait_preadv = nowait_read_;
  bool want[kNumEngineKinds] = {};
  for (EngineKind k : options_.engines) {
    if (k == EngineKind::kAuto) {
      want[Index(EngineKind::kUring)] = want[Index(EngineKind::kPosix)] = true;
    } else {
      want[Index(k)] = true;
    }
  }
  auto install = [&](EngineKind kind,
                     absl::StatusOr<std::unique_ptr<Engine>> made) {
    std::unique_ptr<Engine> e;
    if (made.ok()) {
      e = *std::move(made);
    } else {
      engine_status_[Index(kind)] = std::string(made.status().message());
    }
    if (hooks.wrap_engine) e = hooks.wrap_engine(kind, std::move(e));
    if (e != nullptr) {
      engine_status_[Index(kind)] = "available";
      for (int i = 0; i < kNumOpcodes; ++i) {
        can_[Index(kind)][i] = e->Supports(static_cast<Opcode>(i)).supported;
      }
    }
    engines_[Index(kind)] = std::move(e);
  };
  // Even an operation forced to the pool may name another engine per call,
  // and tests may install one, so unrequested engines are simply not made.
  auto not_requested = [](EngineKind k) {
    return absl::StatusOr<std::unique_ptr<Engine>>(absl::UnimplementedError(
        absl::StrCat(EngineKindName(k), ": not requested by the options")));
  };
  install(EngineKind::kUring, want[Index(EngineKind::kUring)]
                                  ? NewUringEngine(service_, options_.uring)
                                  : not_requested(EngineKind::kUring));
  install(EngineKind::kPosix, want[Index(EngineKind::kPosix)]
                                  ? NewPosixAioEngine(service_)
                                  : not_requested(EngineKind::kPosix));
  install(EngineKind::kPool, NewPoolEngine(service_, pool, &pool_calls_));
  if (engine(EngineKind::kPool) == nullptr) {  // a test hook may not remove it
    install(EngineKind::kPool, NewPoolEngine(service_, pool, &pool_calls_));
  }

  for (int c = 0; c < kNumFileOpClasses; ++c) {
    const FileOpClass cls = static_cast<FileOpClass>(c);
    const Opcode primary = PrimaryOpcode(cls);
    const EngineKind want_kind = options_.engines[c];
    std::vector<EngineKind> candidates;
    if (want_kind == EngineKind::kAuto) {
      candidates = {EngineKind::kUring, EngineKind::kPosix};
    } else if (want_kind != EngineKind::kPool) {
      candidates = {want_kind};
    }
    CapabilityReport::Choice& choice = choice_[c];
    choice.op_class = cls;
    std::vector<std::string> why_not;
    for (EngineKind k : candidates) {
      Engine* e = engine(k);
      if (e != nullptr && can_[Index(k)][static_cast<size_t>(primary)]) {
        choice.engine = k;
        choice.why =
            absl::StrCat(EngineKindName(k), ": ", e->Supports(primary).why);
        break;
      }
      why_not.push_back(e == nullptr
                            ? absl::StrCat(EngineKindName(k), " unavailable (",
                                           engine_status_[Index(k)], ")")
                            : absl::StrCat(EngineKindName(k), ": ",
                                           e->Supports(primary).why));
    }
    if (choice.why.empty()) {
      choice.engine = EngineKind::kPool;
      choice.why = want_kind == EngineKind::kPool
                       ? "pool: chosen by the options"
                       : absl::StrCat("pool: ", absl::StrJoin(why_not, "; "));
    }
  }

  // OpenAt follows its class's engine when that engine has the opcode
  // (Dispatch sends it to the pool otherwise).
  const size_t open_at = static_cast<size_t>(Opcode::kOpenAt);
  const CapabilityReport::Choice& open_choice =
      choice_[Index(FileOpClass::kOpen)];
  openat_choice_.op_class = FileOpClass::kOpen;
  Engine* const open_engine = engine(open_choice.engine);
  if (open_choice.engine != EngineKind::kPool &&
      can_[Index(open_choice.engine)][open_at]) {
    openat_choice_.engine = open_choice.engine;
    openat_choice_.why =
        absl::StrCat(EngineKindName(open_choice.engine), ": ",
                     open_engine->Supports(Opcode::kOpenAt).why);
  } else {
    openat_choice_.engine = EngineKind::kPool;
    openat_choice_.why = absl::StrCat(
        "pool: ",
        open_choice.engine == EngineKind::kPool
            ? std::string(absl::StripPrefix(open_choice.why, "pool: "))
            : absl::StrCat(EngineKindName(open_choice.engine), ": ",
                           open_engine->Supports(Opcode::kOpenAt).why),
        "; ", engine(EngineKind::kPool)->Supports(Opcode::kOpenAt).why);
  }
  read_file_can_adapt_ = ReadFileCanAdapt();
}

FileService::~FileService() {
  *token_ = nullptr;
  std::vector<std::shared_ptr<Op>> all;
  for (Op* o = live_head_; o != nullptr; o = o->live_next) {
    all.push_back(o->live_ref);
  }
  // Everything still owed to a caller completes with Cancelled (posted).
  for (auto& op : all) {
    if (!op->user_done) {
      Finish(*op, CancelledStatus(*op, "file service destroyed"));
    }
  }
  // Requests engines still hold become orphans: their reports only release
  // what they produced.  A close that no engine took closes here, blocking:
  // nothing else is left to run it.
  for (auto& op : all) {
    op->sink = nullptr;
    service_.Cancel(op->retry_timer);
    if (op->engine_busy) {
      op->engine->Cancel(*op);
    } else if (op->owned_fd >= 0) {
      close(op->owned_fd);
      op->owned_fd = -1;
    }
    // Break reference cycles: a parked close and its file; a pool task whose
    // completion was dropped (the service shut down) and its request.
    if (op->file != nullptr) op->file->close_op.reset();
    op->pool_task = threadpool::TaskHandle();
  }
  // io_uring first: its destructor waits for the kernel.
  engines_[Index(EngineKind::kUring)].reset();
  engines_[Index(EngineKind::kPosix)].reset();
  engines_[Index(EngineKind::kPool)].reset();
  for (auto& op : all) {
    op->live_prev = op->live_next = nullptr;
    op->live_ref.reset();
  }
  live_head_ = nullptr;
}

// ---------------------------------------------------------------------------
// The life of an operation.

void FileService::Start(std::shared_ptr<Op> op, absl::Status early) {
  Op& o = *op;
  if (!o.internal && !service_.Track(&o)) {
    return;  // the service is shut down: dropped, like a Post() now would be
  }
  o.live_ref = op;
  o.live_next = live_head_;
  if (live_head_ != nullptr) live_head_->live_prev = &o;
  live_head_ = &o;
  if (o.internal) {
    o.user_done = true;
  } else {
    if (o.file != nullptr && !o.file->closing) {
      o.file_next = o.file->pending_head;
      if (o.file_next != nullptr) o.file_next->file_prev = &o;
      o.file->pending_head = &o;
      o.in_file_list = true;
    }
    o.start = service_.RecordOpStarted(o.metric);
    if (!early.ok()) {
      Finish(o, std::move(early));
      return;
    }
    if (o.deadline != absl::InfiniteFuture()) {
      if (o.deadline <= absl::Now()) {
        counters_.deadlines_expired.Add();
        Finish(o, io::WithErrno(absl::DeadlineExceededError(absl::StrCat(
                                    OpcodeName(o.opcode), "(", o.subject(),
                                    "): deadline exceeded")),
                                ETIMEDOUT));
        return;
      }
      o.timer = service_.RunAt(o.deadline, [this, p = &o] {
        p->timer = io::TimerId();
        counters_.deadlines_expired.Add();
        Finish(*p, io::WithErrno(absl::DeadlineExceededError(absl::StrCat(
                                     OpcodeName(p->opcode), "(", p->subject(),
                                     "): deadline exceeded")),
                                 ETIMEDOUT));
      });
    }
  }
  if (TryFastPath(o)) return;
  if (o.opcode == Opcode::kClose && o.file != nullptr && o.file->busy > 0) {
    o.parked = true;
    o.file->close_op = std::move(op);
    return;
  }
  Dispatch(std::move(op));
}

void FileService::Dispatch(std::shared_ptr<Op> op) {
  Op& o = *op;
  o.parked = false;
  const size_t cls = Index(o.op_class);
  const EngineKind kind =
      o.requested != EngineKind::kAuto ? o.requested : choice_[cls].engine;
  Engine* const pool = engine(EngineKind::kPool);
  Engine* e = pool;
  if (kind != EngineKind::kPool) {
    e = engine(kind);
    if (e == nullptr || (broken_[cls] & Bit(kind)) != 0 ||
        !can_[Index(kind)][static_cast<size_t>(o.opcode)]) {
      // Unavailable, remembered broken, or an opcode it lacks: straight to
      // the pool, and counted.
      counters_.classes[cls].fallbacks.Add();
      e = pool;
    }
  }
  absl::Status s = SubmitTo(e, op);
  if (s.ok()) return;
  const int err = io::StatusErrno(s);
  if (e != pool && IsLadderErrno(err)) {
    Fallback(o, e, err);
    s = SubmitTo(pool, op);
    if (s.ok()) return;
  }
  SubmissionFailed(std::move(op), std::move(s));
}

absl::Status FileService::SubmitTo(Engine* e, const std::shared_ptr<Op>& op) {
  Op& o = *op;
  absl::Status s = e->Submit(op);
  if (!s.ok()) return s;
  o.engine = e;
  o.engine_busy = true;
  if (o.file != nullptr && o.opcode != Opcode::kClose) {
    ++o.file->busy;
    o.holds_fd = true;
  }
  if (o.opcode == Opcode::kClose) o.owned_fd = -1;  // the engine's now
  counters_.classes[Index(o.op_class)].submitted[Index(e->kind())].Add();
  return absl::OkStatus();
}

// `from` refused `op` with a ladder errno: counted, and remembered for the
// class if it will not change (ENOSYS, EOPNOTSUPP).
void FileService::Fallback(Op& o, Engine* from, int err) {
  const size_t cls = Index(o.op_class);
  counters_.classes[cls].fallbacks.Add();
  if (IsPersistentErrno(err)) {
    broken_[cls] |= Bit(from->kind());
    broken_why_[cls] = absl::StrCat(
        EngineKindName(from->kind()), " refused ", OpcodeName(o.opcode), ": ",
        io::ErrnoStatus(err, "submit").message(), " (remembered)");
  }
}

void FileService::SubmissionFailed(std::shared_ptr<Op> op, absl::Status s) {
  Op& o = *op;
  if (o.opcode == Opcode::kClose) {
    // The descriptor must go.  A full pool lane drains: try again shortly.
    // A pool that is shut down never will: close here, blocking, as the
    // last resort (only while tearing down).
    if (absl::IsResourceExhausted(s)) {
      o.parked = true;
      o.retry_timer = service_.RunAfter(absl::Milliseconds(1), [this, p = &o] {
        p->retry_timer = io::TimerId();
        Dispatch(p->live_ref);
      });
      if (o.retry_timer.valid()) return;
      o.parked = false;
    }
    const int fd = o.owned_fd;
    o.owned_fd = -1;
    Completed(o, close(fd) == 0 ? 0 : -int64_t{errno});
    return;
  }
  Finish(o, Annotated(o, s));
  MaybeRelease(o);
}

void FileService::Finish(Op& o, absl::Status status) {
  if (o.user_done) return;
  o.user_done = true;
  service_.Untrack(&o);
  service_.Cancel(o.timer);
  o.timer = io::TimerId();
  if (o.in_file_list) {
    (o.file_prev != nullptr ? o.file_prev->file_next : o.file->pending_head) =
        o.file_next;
    if (o.file_next != nullptr) o.file_next->file_prev = o.file_prev;
    o.file_prev = o.file_next = nullptr;
    o.in_file_list = false;
  }
  service_.RecordOpDone(o.metric, o.start, status);
  const bool failed = !status.ok();
  // The status waits in the op, so that the closure holds one pointer and
  // needs no allocation of its own.
  o.final_status = std::move(status);
  service_.Post([op = o.live_ref]() {
    auto finish = std::move(op->finish);
    if (finish) finish(std::move(op->final_status), *op);
  });
  // Cancelled or late: let the engine give up early if it can.  The request
  // and its memory stay alive until the engine reports.
  if (failed && o.engine_busy) o.engine->Cancel(o);
  MaybeRelease(o);
}

void FileService::EngineReleased(Op& o) {
  o.engine_busy = false;
  if (o.holds_fd) {
    o.holds_fd = false;
    --o.file->busy;
  }
}

void FileService::Completed(Op& o, int64_t result) {
  if (result == -EINTR && o.opcode != Opcode::kClose && !o.user_done &&
      o.eintr_retries < options_.max_eintr_retries) {
    ++o.eintr_retries;
    counters_.classes[Index(o.op_class)].eintr_retries.Add();
    Dispatch(o.live_ref);
    return;
  }
  if (o.user_done) {
    if (!o.internal)
      counters_.classes[Index(o.op_class)].late_completions.Add();
    if (IsOpen(o.opcode) && result >= 0) {
      counters_.orphan_fds_closed.Add();
      CloseOrphan(static_cast<int>(result));
    }
    MaybeRelease(o);
    return;
  }
  // Linux releases the descriptor even when close() says EINTR.
  if (o.opcode == Opcode::kClose && result == -EINTR) result = 0;
  if (result < 0) {
    Finish(o, io::ErrnoStatus(static_cast<int>(-result), OpcodeName(o.opcode),
                              o.subject()));
    return;
  }
  o.result = result + static_cast<int64_t>(o.fast_bytes);
  if (IsOpen(o.opcode)) {
    o.opened = std::make_shared<FileState>(static_cast<int>(result),
                                           o.path_storage, token_);
  }
  Finish(o, absl::OkStatus());
}

void FileService::MaybeRelease(Op& o) {
  if (!o.user_done || o.engine_busy || o.parked || o.live_ref == nullptr) {
    return;
  }
  (o.live_prev != nullptr ? o.live_prev->live_next : live_head_) = o.live_next;
  if (o.live_next != nullptr) o.live_next->live_prev = o.live_prev;
  o.live_prev = o.live_next = nullptr;
  std::shared_ptr<Op> last = std::move(o.live_ref);  // may destroy `o`
}

void FileService::MaybeStartClose(FileState& state) {
  if (state.busy > 0 || state.close_op == nullptr) return;
  Dispatch(std::move(state.close_op));
}

// A descriptor nobody wants (an Open that completed after its caller got
// Cancelled or DeadlineExceeded): closed on an engine, never on the loop.
void FileService::CloseOrphan(int fd) {
  auto op = std::make_shared<Op>(this);
  op->opcode = Opcode::kClose;
  op->op_class = FileOpClass::kClose;
  op->metric = io::OpClass::kFileClose;
  op->fd = fd;
  op->owned_fd = fd;
  op->internal = true;
  op->sink = this;
  Start(std::move(op));
}

void FileService::OnEngineDone(std::shared_ptr<Request> req, int64_t result) {
  std::shared_ptr<Op> op = std::static_pointer_cast<Op>(std::move(req));
  EngineReleased(*op);
  Completed(*op, result);
  if (op->file != nullptr) MaybeStartClose(*op->file);
}

void FileService::OnEngineRefused(std::shared_ptr<Request> req, int err) {
  std::shared_ptr<Op> op = std::static_pointer_cast<Op>(std::move(req));
  Op& o = *op;
  Engine* const from = o.engine;
  Engine* const pool = engine(EngineKind::kPool);
  EngineReleased(o);
  // A refused close still owns its descriptor, and must run somewhere.
  if (o.opcode == Opcode::kClose) o.owned_fd = o.fd;
  if (from != pool && (IsLadderErrno(err) || o.opcode == Opcode::kClose)) {
    if (!o.user_done || o.opcode == Opcode::kClose) {
      Fallback(o, from, err);
      absl::Status s = SubmitTo(pool, op);
      if (!s.ok()) SubmissionFailed(op, std::move(s));
    } else {
      MaybeRelease(o);  // nobody wants it any more, and it never ran
    }
  } else {
    Completed(o, -int64_t{err});
  }
  if (o.file != nullptr) MaybeStartClose(*o.file);
}

}  // namespace aio
}  // namespace kqio
