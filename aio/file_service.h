// aio::FileService: asynchronous file operations on an io::IoService.
//
//   auto files = aio::FileService::Create(*service, *pool);  // once per loop
//   (*files)->Open("www/index.html", O_RDONLY, 0,
//       [&](absl::StatusOr<aio::File> f) {
//         if (!f.ok()) return Log(f.status());  // "open(www/index.html): No
//         such..." file = *std::move(f);
//         (*files)->Read(file, 0, aio::Buffer(4096),
//             [](absl::StatusOr<aio::IoResult> r) { ...r->data()... });
//       });
//
// Operations: Open and OpenAt (relative to a directory, optionally never
// leaving it), Stat / Fstat, Read / Write (and ReadV / WriteV) at an
// offset, Fsync / Fdatasync, Close, and ReadFile (open + read to the end +
// close as one operation).  Each takes a callback that runs exactly once, on
// the loop thread, never inside the call that started the operation
// (ARCHITECTURE.md contract 1), with an absl::StatusOr of the result.
// Errors carry the operation, the path and the errno
// ("read(data/x.bin): Bad file descriptor"; io::StatusErrno() gives EBADF).
//
// Opening beneath a directory.  OpenAt(dir_fd, path, ..., OpenAtOptions)
// resolves `path` so that it cannot leave dir_fd: ".." above it, absolute
// paths and symlinks leading out are refused with EXDEV (kResolveBeneath in
// aio/engine.h); with no_symlinks every symlink is refused with ELOOP.  On
// io_uring it is IORING_OP_OPENAT2; on the pool openat2(2) (Linux),
// openat(O_RESOLVE_BENEATH) (FreeBSD), or, where the kernel has neither, a
// component-by-component walk that is never looser (pool_engine.cc).  It is
// an open in every other respect: class kOpen, the same ladder, the same
// cancellation rules.
//
// Engines.  Each operation class (open, stat, read, write, fsync, close) is
// served by one engine, chosen at creation (FileServiceOptions::engines,
// kAuto by default: io_uring on Linux, POSIX AIO on FreeBSD for reads,
// writes and fsync, the thread pool otherwise) and reported by
// Capabilities(), with the reason.  The fallback ladder (contract 4): when
// an engine refuses an operation (EAGAIN, ENOSYS, EOPNOTSUPP or EINVAL at
// submission, or an opcode it does not support), that operation runs on the
// pool instead, never as a blocking call on the loop; ENOSYS and EOPNOTSUPP
// are remembered for the operation class, so later operations go straight to
// the pool.  Every fallback is counted (metrics()).  An error the kernel
// returns for a request it did run (EINVAL for a misaligned O_DIRECT read,
// say) is the operation's result, not a fallback.
//
// Page-cache fast path (Linux).  A read first tries preadv2(RWF_NOWAIT) on
// the loop thread: a full hit completes (still deferred) with no thread hop
// and no ring round trip; a miss (EAGAIN) or a partial hit goes to the
// engine for the rest (a read that stops short inside a page stopped at the
// end of the file, and is complete).  Reads larger than fast_path_max_bytes,
// reads with an explicit engine in OpOptions, and files or kernels that reject
// RWF_NOWAIT skip it.
//
// Buffers (aio/buffer.h).  Reads and writes take Buffers by value and give
// them back in the successful result.  On an error, a cancellation or a
// missed deadline the caller gets only the status: the engine may still use
// the memory, so the operation keeps the Buffer until the engine's real
// completion arrives, then frees it.  Short reads are results (bytes <
// size), 0 bytes means end of file; a short write is a result too.
//
// Files, closing and cancellation (contract 2).  A File owns its descriptor.
// Close() completes every operation still pending on the file with
// absl::CancelledError (io_uring requests are cancelled in the kernel where
// it can; otherwise their completions are discarded when they arrive), waits
// until no engine still uses the descriptor, then closes it on an engine;
// its callback reports the close.  Destroying an open File does the same
// without a callback.  An Open whose caller already got Cancelled or
// DeadlineExceeded has its descriptor closed when it completes.
//
// Deadlines.  OpOptions::deadline: on expiry the caller gets
// DeadlineExceeded; the engine is asked to cancel, and the operation's memory
// is released when its real completion arrives.
//
// Lifetimes.  Create the FileService after its IoService and ThreadPool and
// destroy it before them.  Destroying it completes every pending operation
// with Cancelled (posted to the service), and waits for requests the kernel
// still holds (io_uring); pool work still running finishes and its result is
// dropped.  Files that outlive the FileService close their descriptor
// synchronously when destroyed.  Operations started after the IoService was
// shut down are dropped like closures posted then (their callback is
// destroyed without running).
//
// Thread-safety.  metrics() is thread-safe.  Everything else, and File, is
// for the loop thread only (or the thread that will run the loop, while no
// thread runs it), like IoService's own registrations.
#ifndef KQIO_AIO_FILE_SERVICE_H_
#define KQIO_AIO_FILE_SERVICE_H_

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "aio/buffer.h"
#include "aio/engine.h"
#include "io/io_service.h"
#include "io/service_metrics.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace aio {

class FileService;
class FileServiceTestPeer;

namespace internal {
struct FileState;
struct Op;
struct ReadFileJob;
}  // namespace internal

// Per-operation options.
struct OpOptions {
  // An explicit engine for this operation (the ladder still applies if it
  // refuses); kAuto: the service's choice for the operation class.
  EngineKind engine = EngineKind::kAuto;
  // On expiry the caller gets DeadlineExceeded (see the top of the file).
  absl::Time deadline = absl::InfiniteFuture();
};

// A read's or write's outcome: the caller's buffer, back, and the byte count.
struct IoResult {
  Buffer buffer;
  size_t bytes = 0;
  absl::string_view data() const { return buffer.view(bytes); }
};

struct IoVecResult {
  std::vector<Buffer> buffers;
  size_t bytes = 0;  // in buffer order
};

// How OpenAt resolves its path (see "Opening beneath a directory" above).
struct OpenAtOptions {
  // Resolve `path` beneath `dir_fd` only: ".." past it, absolute paths and
  // symlinks (absolute, or relative ones that climb out) are refused (Linux
  // openat2 RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS; FreeBSD
  // O_RESOLVE_BENEATH; elsewhere a component walk).  Errors keep the errno
  // (EXDEV, ELOOP...).
  bool beneath = true;
  // Refuse every symlink on the way (RESOLVE_NO_SYMLINKS), not only
  // escaping ones.
  bool no_symlinks = false;
};

// An open file.  Move-only; loop thread only.  See "Files, closing and
// cancellation" above.
class File final {
 public:
  File() = default;
  File(File&& other) noexcept = default;
  // Closes the file this one held, as the destructor does.
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  bool is_open() const;
  int fd() const;  // -1 unless open
  const std::string& path() const;

 private:
  friend class FileService;
  friend struct internal::ReadFileJob;
  explicit File(std::shared_ptr<internal::FileState> state);
  void Release();

  std::shared_ptr<internal::FileState> state_;
};

struct FileServiceOptions {
  // Engine per operation class, indexed by FileOpClass.
  std::array<EngineKind, kNumFileOpClasses> engines = {
      EngineKind::kAuto, EngineKind::kAuto, EngineKind::kAuto,
      EngineKind::kAuto, EngineKind::kAuto, EngineKind::kAuto};
  bool page_cache_fast_path = true;
  size_t fast_path_max_bytes = 1 << 20;
  UringEngineOptions uring;
  // ReadFile refuses (FailedPrecondition) files larger than this.
  size_t read_file_max_bytes = size_t{256} << 20;
  // An engine completion with EINTR re-runs the operation this many times.
  int max_eintr_retries = 16;
};

// Which engine serves each operation class, and why.
struct CapabilityReport {
  struct Choice {
    FileOpClass op_class = FileOpClass::kOpen;
    EngineKind engine = EngineKind::kPool;
    std::string why;  // "uring: IORING_OP_OPENAT supported"
  };
  std::array<Choice, kNumFileOpClasses> classes;
  // OpenAt (class kOpen, but an opcode of its own that an engine may lack).
  Choice openat;
  // One line per engine: "uring: available", "posix: not handled here ...".
  std::vector<std::string> engines;
  std::string fast_path;  // "on: preadv2(RWF_NOWAIT) ..." or "off: ..."
  // How ReadFile (with kAuto) is served: "one pool task per file ...",
  // "steps ...", or "by the page cache: ..." (see FileService::ReadFile).
  std::string read_file;
  std::string ToString() const;
};

// Counters of one FileService.  Per-operation started/completed/failed/
// cancelled counts and latencies are in the IoService's metrics
// (io::OpClass::kFileOpen ... kFileClose).
struct FileServiceMetrics {
  struct PerClass {
    // Submissions each engine accepted, indexed by EngineKind.
    std::array<uint64_t, kNumEngineKinds> submitted{};
    uint64_t fallbacks = 0;         // sent down the ladder to the pool
    uint64_t eintr_retries = 0;     // re-run after an EINTR completion
    uint64_t late_completions = 0;  // arrived after Cancelled/DeadlineExceeded
  };
  std::array<PerClass, kNumFileOpClasses> classes{};
  uint64_t fast_path_hits = 0;     // reads served whole by RWF_NOWAIT
  uint64_t fast_path_partial = 0;  // part served, the rest by an engine
  uint64_t fast_path_misses = 0;   // EAGAIN (or rejected): all by an engine
  uint64_t deadlines_expired = 0;
  uint64_t orphan_fds_closed = 0;  // opens that succeeded after their cancel
  // ReadFile calls served as one pool task, and as steps (see ReadFile).
  uint64_t read_file_tasks = 0;
  uint64_t read_file_steps = 0;

  const PerClass& of(FileOpClass c) const {
    return classes[static_cast<size_t>(c)];
  }
  std::string ToString() const;
};

class FileService final : private CompletionSink {
 public:
  using OpenCallback = absl::AnyInvocable<void(absl::StatusOr<File>)>;
  using StatCallback = absl::AnyInvocable<void(absl::StatusOr<struct stat>)>;
  using IoCallback = absl::AnyInvocable<void(absl::StatusOr<IoResult>)>;
  using IoVecCallback = absl::AnyInvocable<void(absl::StatusOr<IoVecResult>)>;
  using DoneCallback = absl::AnyInvocable<void(absl::Status)>;

  // Probes the engines; an engine that is not available is reported, never
  // an error.  Fails only if the options are invalid.
  static absl::StatusOr<std::unique_ptr<FileService>> Create(
      io::IoService& service, threadpool::ThreadPool& pool,
      FileServiceOptions options = FileServiceOptions());
  ~FileService();

  FileService(const FileService&) = delete;
  FileService& operator=(const FileService&) = delete;

  // O_CLOEXEC is always added.
  void Open(std::string path, int flags, mode_t mode, OpenCallback cb,
            OpOptions opts = OpOptions());
  // Like Open(), relative to `dir_fd` (AT_FDCWD, or a directory descriptor,
  // O_PATH is fine) and resolved as `at` says.  "" or "." opens dir_fd's
  // directory.  Errors: op "openat", the path as subject, errno kept.
  // `dir_fd` need only be valid during this call: the operation works on a
  // duplicate of it (so an engine still resolving after the caller heard
  // Cancelled or DeadlineExceeded never names a descriptor the caller has
  // since closed or reused).
  void OpenAt(int dir_fd, std::string path, int flags, mode_t mode,
              OpenAtOptions at, OpenCallback cb, OpOptions opts = OpOptions());
  void Stat(std::string path, StatCallback cb, OpOptions opts = OpOptions());
  void Fstat(const File& file, StatCallback cb, OpOptions opts = OpOptions());
  // Up to buffer.size() bytes at `offset`.
  void Read(const File& file, uint64_t offset, Buffer buffer, IoCallback cb,
            OpOptions opts = OpOptions());
  void Write(const File& file, uint64_t offset, Buffer buffer, IoCallback cb,
             OpOptions opts = OpOptions());
  // At most IOV_MAX buffers.
  void ReadV(const File& file, uint64_t offset, std::vector<Buffer> buffers,
             IoVecCallback cb, OpOptions opts = OpOptions());
  void WriteV(const File& file, uint64_t offset, std::vector<Buffer> buffers,
              IoVecCallback cb, OpOptions opts = OpOptions());
  void Fsync(const File& file, DoneCallback cb, OpOptions opts = OpOptions());
  void Fdatasync(const File& file, DoneCallback cb,
                 OpOptions opts = OpOptions());
  // Leaves `file` closed (is_open() false) at once; see the top of the file.
  void Close(File& file, DoneCallback cb, OpOptions opts = OpOptions());
  // The whole regular file, read through this service's engines.  The
  // deadline and engine in `opts` apply to every step.  Where the pool
  // serves opens (engine kPool, or kAuto without io_uring) the steps are one
  // pool task (open, fstat, read, close: Opcode::kReadWhole).  Under kAuto
  // with io_uring serving opens, the pool task while recent files were in
  // the page cache, the io_uring steps while they were not (read_file.cc).
  // FileServiceMetrics::read_file_tasks/_steps count the two routes.
  void ReadFile(std::string path, IoCallback cb, OpOptions opts = OpOptions());

  CapabilityReport Capabilities() const;
  FileServiceMetrics metrics() const;
  // One line per engine with its own counters (batching, in flight, ...).
  std::string EngineStats() const;

 private:
  friend class File;
  friend class FileServiceTestPeer;
  friend struct internal::Op;
  friend struct internal::ReadFileJob;

  // What tests may change (through FileServiceTestPeer): wrap or replace an
  // engine as it is created (`engine` is null when unavailable), and the
  // pool engine's blocking calls.
  struct TestHooks {
    absl::AnyInvocable<std::unique_ptr<Engine>(EngineKind kind,
                                               std::unique_ptr<Engine> engine)>
        wrap_engine;
    const BlockingCalls* pool_calls = nullptr;
    // The page-cache fast path's preadv2(RWF_NOWAIT) (internal/nowait_read.h),
    // also ReadFile's pool task's (on pool workers: must be thread-safe).
    int64_t (*nowait_read)(int fd, const struct iovec* iov, int iovcnt,
                           uint64_t offset) = nullptr;
  };
  static absl::StatusOr<std::unique_ptr<FileService>> CreateWithHooks(
      io::IoService& service, threadpool::ThreadPool& pool,
      FileServiceOptions options, TestHooks hooks);

  FileService(io::IoService& service, FileServiceOptions options);
  void SetUpEngines(threadpool::ThreadPool& pool, TestHooks& hooks);

  // --- Operations (file_ops.cc).
  using Finisher = absl::AnyInvocable<void(absl::Status, internal::Op&)>;
  std::shared_ptr<internal::Op> NewOp(Opcode opcode, const OpOptions& opts,
                                      Finisher finish);
  // Binds `op` to an open `file`, or starts it failed with EBADF.
  bool BindFile(const std::shared_ptr<internal::Op>& op, const File& file);
  // Reads or writes `buffers` at `offset`; for a single buffer, only
  // [first_pos, first_pos + first_len) of it (ReadFile's continuation).
  void StartIo(Opcode opcode, const File& file, uint64_t offset,
               absl::InlinedVector<Buffer, 1> buffers, size_t first_pos,
               size_t first_len, const OpOptions& opts, Finisher finish);
  bool TryFastPath(internal::Op& op);
  // --- ReadFile's route (read_file.cc).
  static constexpr uint32_t kReadFileHotScale = 1024;
  bool ReadFileCanAdapt() const;
  void NoteReadFileCache(bool cached);
  void CloseState(std::shared_ptr<internal::FileState> state, DoneCallback cb,
                  const OpOptions& opts);

  // --- The core (file_service.cc).
  // `early`: an error found before starting (EBADF on a closed File): the
  // operation is counted and completes with it, deferred like any other.
  void Start(std::shared_ptr<internal::Op> op,
             absl::Status early = absl::OkStatus());
  void Dispatch(std::shared_ptr<internal::Op> op);
  absl::Status SubmitTo(Engine* engine,
                        const std::shared_ptr<internal::Op>& op);
  void Fallback(internal::Op& op, Engine* from, int err);
  void SubmissionFailed(std::shared_ptr<internal::Op> op, absl::Status status);
  void Finish(internal::Op& op, absl::Status status);
  void Completed(internal::Op& op, int64_t result);
  void EngineReleased(internal::Op& op);
  void MaybeRelease(internal::Op& op);
  void MaybeStartClose(internal::FileState& state);
  void CloseOrphan(int fd);
  void OnEngineDone(std::shared_ptr<Request> req, int64_t result) override;
  void OnEngineRefused(std::shared_ptr<Request> req, int err) override;
  Engine* engine(EngineKind kind) const {
    return engines_[static_cast<size_t>(kind)].get();
  }

  io::IoService& service_;
  const FileServiceOptions options_;
  // Null where not available; [kPool] always set.  Indexed by EngineKind.
  std::array<std::unique_ptr<Engine>, kNumEngineKinds> engines_;
  std::array<std::string, kNumEngineKinds> engine_status_;
  // Static per-opcode support of each engine, from Supports() at creation.
  std::array<std::array<bool, kNumOpcodes>, kNumEngineKinds> can_{};
  // The engine serving each class, and why; and OpenAt's.
  std::array<CapabilityReport::Choice, kNumFileOpClasses> choice_;
  CapabilityReport::Choice openat_choice_;
  // Engines that refused with ENOSYS/EOPNOTSUPP, per class (bit per kind).
  std::array<uint8_t, kNumFileOpClasses> broken_{};
  std::array<std::string, kNumFileOpClasses> broken_why_;
  bool fast_path_ok_ = false;
  std::string fast_path_why_;
  uint64_t page_size_ = 4096;
  int64_t (*nowait_read_)(int, const struct iovec*, int, uint64_t) = nullptr;
  // The pool engine's blocking calls (test hooks, nowait_preadv).
  BlockingCalls pool_calls_;
  // ReadFile's route under kAuto (read_file.cc): a moving average of how
  // many of the files it read were wholly in the page cache, out of
  // kReadFileHotScale.
  uint32_t read_file_hot_ = kReadFileHotScale;
  // ReadFileCanAdapt(), at creation: kAuto ReadFiles follow the average.
  bool read_file_can_adapt_ = false;
  // Every operation the core still knows (owed to its caller or held by an
  // engine), holding a reference: an intrusive list through internal::Op.
  internal::Op* live_head_ = nullptr;
  // Cleared on destruction; Files and ReadFile jobs check it.
  std::shared_ptr<FileService*> token_;

  struct Counters {
    struct PerClass {
      std::array<io::ServiceCounters::Counter, kNumEngineKinds> submitted;
      io::ServiceCounters::Counter fallbacks, eintr_retries, late_completions;
    };
    std::array<PerClass, kNumFileOpClasses> classes;
    io::ServiceCounters::Counter fast_path_hits, fast_path_partial,
        fast_path_misses, deadlines_expired, orphan_fds_closed,
        read_file_tasks, read_file_steps;
  };
  Counters counters_;
};

}  // namespace aio
}  // namespace kqio

#endif  // KQIO_AIO_FILE_SERVICE_H_
