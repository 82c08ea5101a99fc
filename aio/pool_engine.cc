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
//
// kOpenAt with resolve bits uses the kernel's own resolve-beneath open
// (Linux openat2, FreeBSD O_RESOLVE_BENEATH), probed once at creation; where
// there is none (ENOSYS, or EPERM from a seccomp filter that does not know
// openat2) it walks the path itself: see WalkBeneath below.
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/openat2.h>
#include <sys/syscall.h>
#endif

#include <algorithm>
#include <cstdint>
#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aio/engine.h"
#include "io/errno_status.h"

namespace kqio {
namespace aio {
namespace {

using threadpool::Lane;

Lane LaneFor(Opcode op) {
  // A whole-file read holds its worker for the data, up to
  // read_file_max_bytes: the data lane's cap, not the opens'.
  if (op == Opcode::kReadWhole) return Lane::kData;
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

// --- Opening beneath a directory.

bool TakesMode(int flags) {
  if ((flags & O_CREAT) != 0) return true;
#ifdef O_TMPFILE
  if ((flags & O_TMPFILE) == O_TMPFILE) return true;
#endif
  return false;
}

#if defined(__linux__) && defined(SYS_openat2)
constexpr const char* kNativeResolve = "openat2(RESOLVE_BENEATH)";
#elif defined(O_RESOLVE_BENEATH)
constexpr const char* kNativeResolve = "openat(O_RESOLVE_BENEATH)";
#else
constexpr const char* kNativeResolve = nullptr;
#endif

// BlockingCalls::open_resolved's real call.
int NativeOpenResolved(int dir_fd, const char* path, int flags, mode_t mode,
                       uint32_t resolve) {
#if defined(__linux__) && defined(SYS_openat2)
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(static_cast<unsigned>(flags));
  // openat2 refuses a mode without O_CREAT/O_TMPFILE (open ignores it).
  how.mode = TakesMode(flags) ? mode : 0;
  if ((resolve & kResolveBeneath) != 0) {
    how.resolve |= RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  }
  if ((resolve & kResolveNoSymlinks) != 0) how.resolve |= RESOLVE_NO_SYMLINKS;
  return static_cast<int>(
      syscall(SYS_openat2, dir_fd, path, &how, sizeof(how)));
#elif defined(O_RESOLVE_BENEATH)
  // FreeBSD 13+.  Not compiled on kqio's Linux CI: kept to the one call.
  // There is no "no symlinks at all" flag: that case takes the walk.
  if ((resolve & kResolveNoSymlinks) != 0) {
    errno = ENOSYS;
    return -1;
  }
  const int fd = openat(
      dir_fd, path,
      flags | ((resolve & kResolveBeneath) != 0 ? O_RESOLVE_BENEATH : 0), mode);
#ifdef ENOTCAPABLE
  // FreeBSD says ENOTCAPABLE for an escape; callers get Linux's EXDEV.
  if (fd < 0 && errno == ENOTCAPABLE) errno = EXDEV;
#endif
  return fd;
#else
  (void)dir_fd, (void)path, (void)flags, (void)mode, (void)resolve;
  errno = ENOSYS;
  return -1;
#endif
}

// How the walk opens a directory it only passes through: no read
// permission needed where the system has a search-only open.
#if defined(O_PATH)
constexpr int kPassThrough = O_PATH;
#elif defined(O_SEARCH)
constexpr int kPassThrough = O_SEARCH;
#else
constexpr int kPassThrough = O_RDONLY;
#endif
constexpr int kDirFlags = kPassThrough | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// Linux's limit on symlinks followed in one lookup.
constexpr int kMaxSymlinks = 40;

int RetryOpenAt(int dir_fd, const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = openat(dir_fd, path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Puts the components of `path` in front of `todo`.  An empty component
// ("a//b", "a/") becomes ".", so that whatever precedes it must be a
// directory ("file/" is ENOTDIR, as for the kernel).
void PushFront(const std::string& path, std::deque<std::string>* todo) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part.empty()) part = ".";
    if (!(part == "." && !parts.empty() && parts.back() == ".")) {
      parts.push_back(std::move(part));
    }
    start = end + 1;
  }
  todo->insert(todo->begin(), parts.begin(), parts.end());
}

// The directories a walk has entered, closed at its end.
class DirStack final {
 public:
  explicit DirStack(int base) : base_(base) {}
  DirStack(const DirStack&) = delete;
  DirStack& operator=(const DirStack&) = delete;
  ~DirStack() { Clear(); }

  int top() const { return fds_.empty() ? base_ : fds_.back(); }
  bool empty() const { return fds_.empty(); }
  void Push(int fd) { fds_.push_back(fd); }
  void Pop() {
    close(fds_.back());
    fds_.pop_back();
  }
  void Clear() {
    while (!fds_.empty()) Pop();
  }

 private:
  const int base_;
  std::vector<int> fds_;
};

// The portable resolve-beneath open, for kernels without one.  The rules
// (never looser than openat2; stricter where noted):
//  - `path` is walked one component at a time from dir_fd.  Each directory
//    passed through is opened relative to the previous one with
//    O_NOFOLLOW | O_DIRECTORY (and O_PATH or O_SEARCH where the system has
//    one; elsewhere O_RDONLY, so a directory must also be readable:
//    stricter); the last component with the caller's flags | O_NOFOLLOW.
//  - kResolveBeneath: an absolute path is EXDEV, and ".." is lexical: it
//    goes back to the directory the walk came from, never past dir_fd
//    (EXDEV); the kernel's ".." is never used, so a directory moved
//    elsewhere meanwhile cannot lead the walk out through its new parent.
//  - A symlink anywhere (found by O_NOFOLLOW failing, then confirmed with
//    fstatat) is refused with ELOOP under kResolveNoSymlinks.  Otherwise its
//    target is read and walked in its place by the same rules, from the
//    directory holding it: an absolute target is EXDEV, a relative one that
//    climbs above dir_fd is EXDEV, and more than 40 links is ELOOP.  A link
//    that is not an ordinary symlink ("pipe:[...]" magic links) is walked
//    as a name too, so it stays beneath dir_fd.  With O_NOFOLLOW in the
//    caller's flags a final symlink is ELOOP, as for open().
//  - The kernel never follows a link for the walk (O_NOFOLLOW everywhere,
//    so no magic link either) and never resolves ".." for it: a directory
//    renamed out of the tree while the walk is inside it still leads only
//    to its own contents, which the walk reached beneath dir_fd.  (openat2,
//    which resolves ".." itself, answers EAGAIN in that race instead.)
int64_t WalkBeneath(int dir_fd, const char* path, int flags, mode_t mode,
                    uint32_t resolve) {
  const bool beneath = (resolve & kResolveBeneath) != 0;
  const bool no_symlinks = (resolve & kResolveNoSymlinks) != 0;
  if (path[0] == '/' && beneath) return -EXDEV;
  int root_fd = -1;  // for an absolute path or link without kResolveBeneath
  auto restart_at_root = [&]() -> int {
    if (root_fd < 0) root_fd = RetryOpenAt(AT_FDCWD, "/", kDirFlags, 0);
    return root_fd < 0 ? -errno : 0;
  };
  struct RootCloser {
    int* fd;
    ~RootCloser() {
      if (*fd >= 0) close(*fd);
    }
  } root_closer{&root_fd};
  std::unique_ptr<DirStack> dirs = std::make_unique<DirStack>(dir_fd);
  std::deque<std::string> todo;
  PushFront(path[0] == '/' ? std::string(path + 1) : std::string(path), &todo);
  if (path[0] == '/') {
    if (int r = restart_at_root(); r < 0) return r;
    dirs = std::make_unique<DirStack>(root_fd);
  }
  int links = 0;
  while (!todo.empty()) {
    const std::string name = std::move(todo.front());
    todo.pop_front();
    if (name == ".") continue;
    if (name == "..") {
      if (!dirs->empty()) {
        dirs->Pop();
        continue;
      }
      if (beneath) return -EXDEV;
      const int up = RetryOpenAt(dirs->top(), "..", kDirFlags, 0);
      if (up < 0) return -errno;
      dirs->Push(up);
      continue;
    }
    const bool last = todo.empty();
    const int final_flags = flags | O_NOFOLLOW | O_CLOEXEC;
    const int fd =
        last ? RetryOpenAt(dirs->top(), name.c_str(), final_flags, mode)
             : RetryOpenAt(dirs->top(), name.c_str(), kDirFlags, 0);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
#ifdef O_PATH
      // O_PATH | O_NOFOLLOW opens a symlink itself instead of failing.
      struct stat st;
      if (last && (flags & (O_PATH | O_NOFOLLOW)) == O_PATH &&
          fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
        close(fd);
        err = ELOOP;
      }
#endif
      if (err == 0) {
        if (last) return fd;
        dirs->Push(fd);
        continue;
      }
    }
    // O_NOFOLLOW on a symlink: ELOOP (FreeBSD: EMLINK); with O_DIRECTORY,
    // ENOTDIR.  Anything else, or a caller's own O_NOFOLLOW, is the answer.
    if ((err != ELOOP && err != ENOTDIR && err != EMLINK) ||
        (last && (flags & O_NOFOLLOW) != 0)) {
      return -err;
    }
    struct stat st;
    if (fstatat(dirs->top(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISLNK(st.st_mode)) {
      return -err;
    }
    if (no_symlinks || ++links > kMaxSymlinks) return -ELOOP;
    std::string target(PATH_MAX, '\0');
    const ssize_t n =
        readlinkat(dirs->top(), name.c_str(), &target[0], target.size());
    if (n < 0) return -errno;
    if (static_cast<size_t>(n) >= target.size()) return -ENAMETOOLONG;
    if (n == 0) return -ENOENT;
    target.resize(static_cast<size_t>(n));
    if (target[0] == '/') {
      if (beneath) return -EXDEV;
      if (int r = restart_at_root(); r < 0) return r;
      dirs = std::make_unique<DirStack>(root_fd);
      target.erase(0, 1);
    }
    PushFront(target, &todo);
  }
  // The path ended in "." or "..": open the directory reached.
  const int fd = RetryOpenAt(dirs->top(), ".", flags | O_CLOEXEC, mode);
  return fd < 0 ? -errno : fd;
}

// openat2 answers EAGAIN when a rename raced with a ".." it checked: try
// again a few times before giving up with it.
constexpr int kResolveRaceRetries = 8;

int64_t OpenAt(const Request& req, const BlockingCalls& calls,
               bool native_resolve) {
  const int flags = req.flags | O_CLOEXEC;
  if (req.resolve == 0) {
    return Retrying(
        [&] { return openat(req.dir_fd, req.path, flags, req.mode); });
  }
  if (native_resolve) {
    int64_t r;
    int races = 0;
    do {
      r = Retrying([&] {
        return calls.open_resolved(req.dir_fd, req.path, flags, req.mode,
                                   req.resolve);
      });
    } while (r == -EAGAIN && ++races < kResolveRaceRetries);
    if (r != -ENOSYS) return r;
  }
  return WalkBeneath(req.dir_fd, req.path, flags, req.mode, req.resolve);
}

// kReadWhole, on one worker: open, fstat, then read the size fstat gave (or,
// when it gave 0 as /proc does, until read() says 0), close.  The result
// goes in a buffer of its size, unless that is more than half of what it
// holds.
int64_t ReadWhole(Request& req, const BlockingCalls& calls) {
  constexpr size_t kUnknownSizeChunk = 64 * 1024;
  const int64_t fd = Retrying(
      [&] { return open(req.path, O_RDONLY | O_CLOEXEC, 0); });
  if (fd < 0) return fd;
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{static_cast<int>(fd)};
  struct stat st;
  if (fstat(closer.fd, &st) != 0) return -errno;
  if (S_ISDIR(st.st_mode)) return -EISDIR;
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > req.read_max) return -EFBIG;
  // Of unknown size, one byte past the limit is room enough to tell.
  const size_t room =
      req.read_max == SIZE_MAX ? SIZE_MAX : req.read_max + 1;
  Buffer buffer(size > 0 ? static_cast<size_t>(size)
                         : std::min(kUnknownSizeChunk, room));
  size_t done = 0;
  if (size > 0 && req.read_probe_cache && calls.nowait_preadv != nullptr) {
    // The page cache alone first: anything short of the size fstat gave
    // means part of the file was on the disk (or EAGAIN: none of it).  The
    // service's ReadFile steers by this (read_file.cc); the blocking reads
    // below fetch the rest either way.
    struct iovec iov = {buffer.data(), buffer.size()};
    const int64_t n = calls.nowait_preadv(closer.fd, &iov, 1, 0);
    if (n >= 0) done = static_cast<size_t>(n);
    req.read_cache_missed =
        n == -EAGAIN || (n >= 0 && static_cast<uint64_t>(n) < size);
  }
  for (;;) {
    if (done == buffer.size()) {
      if (size > 0) break;  // all that fstat said
      if (done > req.read_max) return -EFBIG;
      buffer.Resize(std::min(buffer.size() * 2, room), done);
    }
    struct iovec iov = {buffer.data() + done, buffer.size() - done};
    const int64_t n = Retrying([&] {
      return calls.preadv(closer.fd, &iov, 1, static_cast<off_t>(done));
    });
    if (n < 0) return n;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  if (done <= buffer.size() / 2) buffer.Resize(done, done);
  *req.read_out = std::move(buffer);
  return static_cast<int64_t>(done);
}

int64_t Execute(Request& req, const BlockingCalls& calls,
                bool native_resolve) {
  switch (req.opcode) {
    case Opcode::kOpen:
      return Retrying(
          [&] { return open(req.path, req.flags | O_CLOEXEC, req.mode); });
    case Opcode::kOpenAt:
      return OpenAt(req, calls, native_resolve);
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
    case Opcode::kReadWhole:
      return ReadWhole(req, calls);
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
    if (calls_.open_resolved == nullptr) {
      calls_.open_resolved = NativeOpenResolved;
    }
    ProbeOpenResolved();
  }

  EngineKind kind() const override { return EngineKind::kPool; }

  Capability Supports(Opcode op) const override {
    std::string why = absl::StrCat("thread pool, ",
                                   threadpool::LaneName(LaneFor(op)), " lane");
    if (op == Opcode::kOpenAt) absl::StrAppend(&why, ", ", resolve_why_);
    return {true, std::move(why)};
  }

  absl::Status Submit(std::shared_ptr<Request> req) override {
    Request* r = req.get();
    const Opcode opcode = req->opcode;
    // The completion: the pool reports Cancelled only for work that never
    // ran or whose result the cleanup hook below already released.
    auto done = [req = std::move(req)](absl::StatusOr<int64_t> result) mutable {
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
      // `r` lives as long as `done`, which the task holds until after the
      // work has returned.
      r->pool_calls = calls_;
      r->pool_native_resolve = native_resolve_;
      handle = pool_.Submit(
          LaneFor(opcode), service_,
          [r]() -> int64_t {
            return Execute(*r, r->pool_calls, r->pool_native_resolve);
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
    if (IsOpen(req.opcode) || req.opcode == Opcode::kClose) return;
    if (req.pool_task.Cancel()) ++cancelled_;
  }

  std::string Stats() const override {
    return absl::StrCat("pool: submitted=", submitted_,
                        " cancel_requests=", cancelled_);
  }

 private:
  // Is there a kernel resolve-beneath open?  Asked with a descriptor that
  // cannot be valid, so the call touches no file system: EBADF means the
  // call exists; ENOSYS (or EPERM from a seccomp filter that predates
  // openat2) means it does not, and the walk serves.  Runs once, on the
  // loop thread, at creation.
  void ProbeOpenResolved() {
    errno = 0;
    const int fd = calls_.open_resolved(-1, "kqio-probe", O_RDONLY | O_CLOEXEC,
                                        0, kResolveBeneath);
    const int err = errno;
    if (fd >= 0) close(fd);
    native_resolve_ = fd >= 0 || (err != ENOSYS && err != EPERM);
    if (native_resolve_) {
      resolve_why_ =
          kNativeResolve != nullptr ? kNativeResolve : "resolve-beneath open";
    } else if (kNativeResolve == nullptr) {
      resolve_why_ = "component walk (no resolve-beneath open here)";
    } else {
      resolve_why_ = absl::StrCat(
          "component walk (",
          io::ErrnoStatus(err, kNativeResolve, "probe").message(), ")");
    }
  }

  io::IoService& service_;
  threadpool::ThreadPool& pool_;
  BlockingCalls calls_;
  bool native_resolve_ = false;
  std::string resolve_why_;
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
