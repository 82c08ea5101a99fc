// aio::Engine: the one seam between the file core and a mechanism that runs
// file system calls asynchronously.
//
// The core (aio/file_service.cc) owns every operation and all policy: which
// engine serves an operation class, the fallback ladder, deadlines,
// cancellation, exactly-once delivery to the user.  An engine only
// translates a neutral Request into its mechanism and reports the raw
// outcome back (STYLE.md habit 1: backends translate, the core dispatches).
// There is one file per engine, each defining the same factory shape:
//
//   uring_engine.cc      io_uring (Linux); completions reach the loop as
//                        EVFILT_AIO events through kqio_aio_watch().
//   posix_aio_engine.cc  aio_read/aio_write/aio_fsync with SIGEV_KEVENT
//                        (FreeBSD); EVFILT_AIO from the kernel.
//   pool_engine.cc       blocking calls on the thread pool (everywhere),
//                        with the portable resolve-beneath walk.
//
// Where a mechanism does not exist, its factory is a stub that returns
// Unimplemented with the reason, and the core falls back (libuv's habit).
//
// The contract every engine keeps:
//   - Submit() either accepts the request (OK) or refuses it (an error;
//     nothing was started and nothing will be reported).  A refusal carrying
//     an errno (io::StatusErrno) is what the ladder looks at: EAGAIN,
//     ENOSYS, EOPNOTSUPP and EINVAL send the operation to the pool.  Other
//     refusals (ResourceExhausted for a full queue) go to the caller.
//   - An accepted request gets exactly one report, on the loop thread, never
//     inside Submit() or Cancel(): ReportDone(req, result) with the system
//     call's result (>= 0: bytes, descriptor or 0; < 0: -errno), or
//     ReportRefused(req, errno) when the engine found out only after
//     accepting that it could not run the request at all (nothing happened,
//     so the core may run it elsewhere).
//   - The engine keeps its shared_ptr<Request> until it reports: the memory
//     the request points to (buffers, path, stat) stays valid while the
//     kernel or a worker may touch it.  Destroying an engine waits for (or
//     deliberately leaks) what the kernel still holds; it never frees memory
//     a request in flight may write.
//   - Cancel() is best effort and may do nothing; the request still gets its
//     one report (perhaps -ECANCELED, perhaps the real result).
//
// Thread-safety: engines are used from the loop thread only.  A request's
// fields before `sink` are constant while an engine holds it and may be read
// by other threads (pool workers); the rest is loop-thread state.
#ifndef KQIO_AIO_ENGINE_H_
#define KQIO_AIO_ENGINE_H_

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "aio/buffer.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace aio {

// Which mechanism runs an operation.  kAuto: the best one this platform
// reports (io_uring, then POSIX AIO, then the pool).
enum class EngineKind : uint8_t { kAuto = 0, kUring, kPosix, kPool };
inline constexpr int kNumEngineKinds = 4;
const char* EngineKindName(EngineKind kind);  // "auto", "uring", ...

// The operation classes engines are chosen for, and that the ladder
// remembers failures of.  Vectored forms belong to kRead/kWrite, fstat to
// kStat, fdatasync to kFsync.
enum class FileOpClass : uint8_t {
  kOpen = 0,
  kStat,
  kRead,
  kWrite,
  kFsync,
  kClose
};
inline constexpr int kNumFileOpClasses = 6;
const char* FileOpClassName(FileOpClass c);  // "open", "stat", ...

// What one request asks an engine to do.
enum class Opcode : uint8_t {
  kOpen,       // open(path, flags | O_CLOEXEC, mode) -> descriptor
  kOpenAt,     // openat(dir_fd, path, ...) resolved as `resolve` asks
  kStat,       // stat(path, stat_out) -> 0
  kFstat,      // fstat(fd, stat_out) -> 0
  kRead,       // pread(fd, iov[0], offset) -> bytes; iovcnt == 1
  kReadv,      // preadv(fd, iov, iovcnt, offset) -> bytes
  kWrite,      // pwrite(fd, iov[0], offset) -> bytes; iovcnt == 1
  kWritev,     // pwritev(fd, iov, iovcnt, offset) -> bytes
  kFsync,      // fsync(fd) -> 0
  kFdatasync,  // fdatasync(fd) -> 0
  kClose,      // close(fd) -> 0; the engine owns fd once it accepts
  // open(path, O_RDONLY) + fstat + read to the end + close in one go, into
  // *read_out (allocated by the engine) -> bytes; -EISDIR for a directory,
  // -EFBIG past read_max.  The pool's ReadFile: one task where the steps
  // would be three hand-offs.  No other engine has it.  With
  // read_probe_cache and BlockingCalls::nowait_preadv the first read tries
  // the page cache alone and says in read_cache_missed whether it had
  // everything.
  kReadWhole,
};
inline constexpr int kNumOpcodes = 12;
const char* OpcodeName(Opcode op);  // "open", "openat", "fstat", "readv", ...
FileOpClass ClassOf(Opcode op);
// kOpen and kOpenAt: their result is a descriptor someone must close.
inline bool IsOpen(Opcode op) {
  return op == Opcode::kOpen || op == Opcode::kOpenAt;
}

// Request::resolve bits (kOpenAt), named after Linux openat2's RESOLVE_*.
// kResolveBeneath: `path` must not leave dir_fd: an absolute path, ".."
// above it or a symlink leading out (absolute, or relative and climbing) is
// refused with EXDEV; magic links (/proc/self/fd/N) are refused too.
inline constexpr uint32_t kResolveBeneath = 1u << 0;
// kResolveNoSymlinks: any symlink on the way is refused with ELOOP.
inline constexpr uint32_t kResolveNoSymlinks = 1u << 1;

class CompletionSink;

// The blocking calls the pool engine makes for reads and writes, and for
// kOpenAt with resolve bits; tests replace them (e.g. to return EINTR, or
// ENOSYS to force the portable walk).  Null members mean the real call.
struct BlockingCalls {
  ssize_t (*preadv)(int, const struct iovec*, int, off_t) = nullptr;
  ssize_t (*pwritev)(int, const struct iovec*, int, off_t) = nullptr;
  // The kernel's resolve-beneath open (Linux: openat2(2) with RESOLVE_*
  // from `resolve`; FreeBSD: openat with O_RESOLVE_BENEATH; elsewhere it
  // fails with ENOSYS).  A descriptor, or -1 with errno; ENOSYS sends the
  // pool to the portable component walk (pool_engine.cc).
  int (*open_resolved)(int dir_fd, const char* path, int flags, mode_t mode,
                       uint32_t resolve) = nullptr;
  // preadv2(RWF_NOWAIT) or a stand-in (aio/internal/nowait_read.h): bytes
  // from the page cache, or -EAGAIN.  Called on pool workers.  Null:
  // kReadWhole does not ask.
  int64_t (*nowait_preadv)(int fd, const struct iovec* iov, int iovcnt,
                           uint64_t offset) = nullptr;
};

// One request, built by the core.  Owned through shared_ptr by the core's
// operation and by the engine holding it.
struct Request {
  Request() = default;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  // Closes owned_dir_fd.
  virtual ~Request();

  // --- What to do: set before Submit(), constant while an engine holds it.
  Opcode opcode = Opcode::kRead;
  int fd = -1;
  const char* path = nullptr;  // NUL-terminated (kOpen, kOpenAt, kStat)
  int flags = 0;               // kOpen, kOpenAt
  mode_t mode = 0;             // kOpen, kOpenAt
  // kOpenAt: the directory `path` is relative to (AT_FDCWD, or
  // owned_dir_fd: the core's duplicate of the caller's descriptor, which the
  // request owns, so that an engine still resolving after its caller was
  // told Cancelled never names a descriptor the caller has closed).
  int dir_fd = AT_FDCWD;
  int owned_dir_fd = -1;
  uint32_t resolve = 0;  // kOpenAt: kResolve* bits
  uint64_t offset = 0;
  const struct iovec* iov = nullptr;
  int iovcnt = 0;
  struct stat* stat_out = nullptr;  // kStat, kFstat: filled by the engine
  Buffer* read_out = nullptr;       // kReadWhole: set by the engine
  size_t read_max = 0;              // kReadWhole: the most bytes to read
  bool read_probe_cache = false;    // kReadWhole: ask the page cache first
  bool read_cache_missed = false;   // kReadWhole: set by the engine

  // --- Loop-thread state.
  // Where ReportDone/ReportRefused deliver; null once the core is gone (the
  // report then only releases what the request produced: see ReportDone).
  CompletionSink* sink = nullptr;
  // For the engine holding the request, e.g. its io_uring slot.
  uint64_t engine_cookie = 0;
  threadpool::TaskHandle pool_task;  // the pool engine's, for Cancel()
  // The pool engine's calls, copied in at submission, so that its work
  // names nothing but the request (which the task keeps alive) and needs
  // no allocation of its own.
  BlockingCalls pool_calls;
  bool pool_native_resolve = false;
};

// The core's side of the contract above.  Loop thread only.
class CompletionSink {
 public:
  virtual void OnEngineDone(std::shared_ptr<Request> req, int64_t result) = 0;
  virtual void OnEngineRefused(std::shared_ptr<Request> req, int err) = 0;

 protected:
  ~CompletionSink() = default;
};

// How engines report.  With no sink (the core was destroyed first) they
// clean up instead: a descriptor an open produced, or one a refused close
// still owns, is closed.
void ReportDone(std::shared_ptr<Request> req, int64_t result);
void ReportRefused(std::shared_ptr<Request> req, int err);

// True for the errnos that send a refused submission down the ladder to the
// pool; Persistent for those the core remembers per operation class.
bool IsLadderErrno(int err);
bool IsPersistentErrno(int err);

// One line of the capability report: can the engine run an opcode, and why.
struct Capability {
  bool supported = false;
  std::string why;  // e.g. "IORING_OP_OPENAT supported"
};

class Engine {
 public:
  Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  virtual ~Engine() = default;

  virtual EngineKind kind() const = 0;
  virtual Capability Supports(Opcode op) const = 0;
  // See the contract at the top of this file.
  virtual absl::Status Submit(std::shared_ptr<Request> req) = 0;
  virtual void Cancel(Request& req) = 0;
  // The engine's own counters, one line, for reports and benchmarks.
  virtual std::string Stats() const { return std::string(); }
};

// --- Factories, one per engine file.

struct UringEngineOptions {
  unsigned entries = 256;      // submission queue size (completion queue: 2x)
  size_t max_in_flight = 256;  // requests in the kernel at once (<= entries)
  size_t max_backlog = 4096;   // more wait in user space; beyond: refused
                               // with ResourceExhausted
};
// Unavailable (Unimplemented / the errno of io_uring_queue_init, e.g. EPERM
// under seccomp, ENOSYS, ENOMEM for memlock limits): the status says why.
absl::StatusOr<std::unique_ptr<Engine>> NewUringEngine(
    io::IoService& service, const UringEngineOptions& options);

// FreeBSD only (SIGEV_KEVENT); Unimplemented elsewhere.
absl::StatusOr<std::unique_ptr<Engine>> NewPosixAioEngine(
    io::IoService& service);

// `calls` (optional) must outlive the engine and its requests.
std::unique_ptr<Engine> NewPoolEngine(io::IoService& service,
                                      threadpool::ThreadPool& pool,
                                      const BlockingCalls* calls = nullptr);

}  // namespace aio
}  // namespace kqio

#endif  // KQIO_AIO_ENGINE_H_
