// The peers of //bench:aio_engines_benchmark, doing what the kqio runners
// do (aio_engines_kqio.cc), each in its own process (the driver forks; see
// aio_engines.h):
//
//   libuv      uv_fs_read on libuv's thread pool (UV_THREADPOOL_SIZE =
//              threads, read once per process); small files as the chain
//              uv_fs_open -> uv_fs_fstat -> uv_fs_read -> uv_fs_close
//   posix-aio  glibc's aio_read on one descriptor (aio_init: `threads`
//              threads), completions found with aio_suspend; glibc queues a
//              descriptor's requests behind one another, which is the point
#include <aio.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bench/aio_engines.h"

namespace kqio {
namespace bench {
namespace {

using Clock = Recorder::Clock;

struct AlignedFree {
  void operator()(char* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<char, AlignedFree>;

AlignedBuffer AllocAligned(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, bytes) != 0) std::abort();
  return AlignedBuffer(static_cast<char*>(p));
}

int OpenBig(const Cell& cell, const Data& data) {
  int flags = O_RDONLY | O_CLOEXEC;
  if (cell.cache == Cache::kCold && data.direct_ok) flags |= O_DIRECT;
  return open(data.big_path.c_str(), flags);
}

// --- libuv ------------------------------------------------------------------

// One in-flight read or small-file chain; req.data points back at it.
struct UvSlot {
  uv_fs_t req;
  struct UvRun* run = nullptr;
  AlignedBuffer buffer;
  size_t capacity = 0;
  Clock::time_point started;
  uv_file file = -1;  // small files: the open descriptor
  size_t size = 0;    // small files: st_size
};

struct UvRun {
  explicit UvRun(const Limits& limits) : recorder(limits) {}
  uv_loop_t loop;
  Recorder recorder;
  uv_file fd = -1;
  size_t block = 0;
  std::unique_ptr<OffsetGenerator> offsets;
  const std::vector<std::string>* paths = nullptr;
  size_t next_path = 0;
};

void UvIssueRead(UvSlot* slot);
void UvIssueSmall(UvSlot* slot);

void UvOnRead(uv_fs_t* req) {
  UvSlot* slot = static_cast<UvSlot*>(req->data);
  const ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  if (result < 0) {
    slot->run->recorder.Fail(absl::StrCat("uv_fs_read: ", uv_strerror(result)));
    return;
  }
  if (static_cast<size_t>(result) != slot->run->block) {
    slot->run->recorder.Fail(absl::StrCat("short read: ", result));
  }
  slot->run->recorder.Done(slot->started, static_cast<uint64_t>(result));
  UvIssueRead(slot);
}

void UvIssueRead(UvSlot* slot) {
  UvRun* run = slot->run;
  if (!run->recorder.MayStart()) return;
  slot->started = Clock::now();
  uv_buf_t buf =
      uv_buf_init(slot->buffer.get(), static_cast<unsigned>(run->block));
  const int rc =
      uv_fs_read(&run->loop, &slot->req, run->fd, &buf, 1,
                 static_cast<int64_t>(run->offsets->Next()), &UvOnRead);
  if (rc < 0) run->recorder.Fail(absl::StrCat("uv_fs_read: ", uv_strerror(rc)));
}

void UvSmallFailed(UvSlot* slot, const char* what, ssize_t result) {
  slot->run->recorder.Fail(absl::StrCat(what, ": ", uv_strerror(result)));
}

void UvOnClose(uv_fs_t* req) {
  UvSlot* slot = static_cast<UvSlot*>(req->data);
  const ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  if (result < 0) return UvSmallFailed(slot, "uv_fs_close", result);
  slot->run->recorder.Done(slot->started, slot->size);
  UvIssueSmall(slot);
}

void UvOnSmallRead(uv_fs_t* req) {
  UvSlot* slot = static_cast<UvSlot*>(req->data);
  const ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  if (result < 0) return UvSmallFailed(slot, "uv_fs_read", result);
  if (static_cast<size_t>(result) != slot->size) {
    slot->run->recorder.Fail(absl::StrCat("short read: ", result));
  }
  uv_fs_close(&slot->run->loop, &slot->req, slot->file, &UvOnClose);
}

void UvOnFstat(uv_fs_t* req) {
  UvSlot* slot = static_cast<UvSlot*>(req->data);
  const ssize_t result = req->result;
  slot->size = static_cast<size_t>(req->statbuf.st_size);
  uv_fs_req_cleanup(req);
  if (result < 0) return UvSmallFailed(slot, "uv_fs_fstat", result);
  if (slot->size > slot->capacity) {
    slot->buffer = AllocAligned(slot->size);
    slot->capacity = slot->size;
  }
  uv_buf_t buf =
      uv_buf_init(slot->buffer.get(), static_cast<unsigned>(slot->size));
  uv_fs_read(&slot->run->loop, &slot->req, slot->file, &buf, 1, 0,
             &UvOnSmallRead);
}

void UvOnOpen(uv_fs_t* req) {
  UvSlot* slot = static_cast<UvSlot*>(req->data);
  const ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  if (result < 0) return UvSmallFailed(slot, "uv_fs_open", result);
  slot->file = static_cast<uv_file>(result);
  uv_fs_fstat(&slot->run->loop, &slot->req, slot->file, &UvOnFstat);
}

void UvIssueSmall(UvSlot* slot) {
  UvRun* run = slot->run;
  if (run->paths->empty() || !run->recorder.MayStart()) return;
  const std::string& path = (*run->paths)[run->next_path];
  run->next_path = (run->next_path + 1) % run->paths->size();
  slot->started = Clock::now();
  const int rc = uv_fs_open(&run->loop, &slot->req, path.c_str(),
                            O_RDONLY | O_CLOEXEC, 0, &UvOnOpen);
  if (rc < 0) run->recorder.Fail(absl::StrCat("uv_fs_open: ", uv_strerror(rc)));
}

// --- POSIX AIO --------------------------------------------------------------

Measurement RunAioReads(int fd, const Cell& cell, const Data& data,
                        const Limits& limits) {
  const size_t block = BlockSize(cell.workload);
  OffsetGenerator offsets(cell.workload, data.big_bytes, limits.seed);
  Recorder recorder(limits);
  struct Slot {
    struct aiocb cb;
    AlignedBuffer buffer;
    Clock::time_point started;
    bool busy = false;
  };
  std::vector<Slot> slots(static_cast<size_t>(cell.qd));
  auto issue = [&](Slot& s) {
    if (!recorder.MayStart()) return;
    std::memset(&s.cb, 0, sizeof(s.cb));
    s.cb.aio_fildes = fd;
    s.cb.aio_buf = s.buffer.get();
    s.cb.aio_nbytes = block;
    s.cb.aio_offset = static_cast<off_t>(offsets.Next());
    s.cb.aio_sigevent.sigev_notify = SIGEV_NONE;
    s.started = Clock::now();
    if (aio_read(&s.cb) != 0) {
      recorder.Fail(absl::StrCat("aio_read: ", std::strerror(errno)));
      return;
    }
    s.busy = true;
  };
  for (Slot& s : slots) {
    s.buffer = AllocAligned(block);
    issue(s);
  }
  std::vector<const struct aiocb*> waiting;
  for (;;) {
    waiting.clear();
    for (Slot& s : slots) {
      if (s.busy) waiting.push_back(&s.cb);
    }
    if (waiting.empty()) break;
    if (aio_suspend(waiting.data(), static_cast<int>(waiting.size()),
                    nullptr) != 0 &&
        errno != EINTR) {
      recorder.Fail(absl::StrCat("aio_suspend: ", std::strerror(errno)));
      break;  // the process exits after the cell; nothing to unwind
    }
    for (Slot& s : slots) {
      if (!s.busy || aio_error(&s.cb) == EINPROGRESS) continue;
      s.busy = false;
      const ssize_t n = aio_return(&s.cb);
      if (n < 0) {
        recorder.Fail(absl::StrCat("aio_read: ", std::strerror(errno)));
        continue;
      }
      if (static_cast<size_t>(n) != block) {
        recorder.Fail(absl::StrCat("short read: ", n));
      }
      recorder.Done(s.started, static_cast<uint64_t>(n));
      issue(s);
    }
  }
  return recorder.Finish();
}

}  // namespace

std::string LibuvVersion() { return uv_version_string(); }

absl::StatusOr<Measurement> RunLibuv(const Cell& cell, const Data& data,
                                     const Limits& limits) {
  // Before libuv's pool first starts; this process is a fresh child.
  setenv("UV_THREADPOOL_SIZE", std::to_string(cell.threads).c_str(), 1);
  UvRun run(limits);
  if (uv_loop_init(&run.loop) != 0) {
    return absl::InternalError("uv_loop_init failed");
  }
  const bool small = cell.workload == Workload::kSmallFiles;
  if (small) {
    run.paths = &data.small_paths;
  } else {
    run.fd = OpenBig(cell, data);
    if (run.fd < 0) {
      return absl::InternalError(
          absl::StrCat("open(", data.big_path, "): ", std::strerror(errno)));
    }
    run.block = BlockSize(cell.workload);
    run.offsets = std::make_unique<OffsetGenerator>(
        cell.workload, data.big_bytes, limits.seed);
  }
  std::vector<std::unique_ptr<UvSlot>> slots;
  for (int i = 0; i < cell.qd; ++i) {
    auto slot = std::make_unique<UvSlot>();
    slot->run = &run;
    slot->req.data = slot.get();  // libuv leaves `data` alone
    slot->capacity = small ? 64 * 1024 : run.block;
    slot->buffer = AllocAligned(slot->capacity);
    slots.push_back(std::move(slot));
  }
  for (auto& slot : slots) {
    if (small) {
      UvIssueSmall(slot.get());
    } else {
      UvIssueRead(slot.get());
    }
  }
  uv_run(&run.loop, UV_RUN_DEFAULT);  // returns when no request is left
  Measurement m = run.recorder.Finish();
  uv_loop_close(&run.loop);
  if (run.fd >= 0) close(run.fd);
  return m;
}

absl::StatusOr<Measurement> RunPosixAio(const Cell& cell, const Data& data,
                                        const Limits& limits) {
  if (cell.workload == Workload::kSmallFiles) {
    return absl::UnimplementedError("posix-aio: reads of one file only");
  }
  struct aioinit init;
  std::memset(&init, 0, sizeof(init));
  init.aio_threads = cell.threads;
  init.aio_num = cell.qd;
  aio_init(&init);
  const int fd = OpenBig(cell, data);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("open(", data.big_path, "): ", std::strerror(errno)));
  }
  Measurement m = RunAioReads(fd, cell, data, limits);
  close(fd);
  return m;
}

}  // namespace bench
}  // namespace kqio
