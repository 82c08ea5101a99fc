#include "aio/engine.h"

#include <errno.h>
#include <unistd.h>

#include <utility>

namespace kqio {
namespace aio {

const char* EngineKindName(EngineKind kind) {
  switch (kind) {
    case EngineKind::kAuto:
      return "auto";
    case EngineKind::kUring:
      return "uring";
    case EngineKind::kPosix:
      return "posix";
    case EngineKind::kPool:
      return "pool";
  }
  return "?";
}

const char* FileOpClassName(FileOpClass c) {
  switch (c) {
    case FileOpClass::kOpen:
      return "open";
    case FileOpClass::kStat:
      return "stat";
    case FileOpClass::kRead:
      return "read";
    case FileOpClass::kWrite:
      return "write";
    case FileOpClass::kFsync:
      return "fsync";
    case FileOpClass::kClose:
      return "close";
  }
  return "?";
}

const char* OpcodeName(Opcode op) {
  switch (op) {
    case Opcode::kOpen:
      return "open";
    case Opcode::kOpenAt:
      return "openat";
    case Opcode::kStat:
      return "stat";
    case Opcode::kFstat:
      return "fstat";
    case Opcode::kRead:
      return "read";
    case Opcode::kReadv:
      return "readv";
    case Opcode::kWrite:
      return "write";
    case Opcode::kWritev:
      return "writev";
    case Opcode::kFsync:
      return "fsync";
    case Opcode::kFdatasync:
      return "fdatasync";
    case Opcode::kClose:
      return "close";
    case Opcode::kReadWhole:
      return "read_whole";
  }
  return "?";
}

FileOpClass ClassOf(Opcode op) {
  switch (op) {
    case Opcode::kOpen:
    case Opcode::kOpenAt:
    case Opcode::kReadWhole:  // chosen and counted as the open it starts with
      return FileOpClass::kOpen;
    case Opcode::kStat:
    case Opcode::kFstat:
      return FileOpClass::kStat;
    case Opcode::kRead:
    case Opcode::kReadv:
      return FileOpClass::kRead;
    case Opcode::kWrite:
    case Opcode::kWritev:
      return FileOpClass::kWrite;
    case Opcode::kFsync:
    case Opcode::kFdatasync:
      return FileOpClass::kFsync;
    case Opcode::kClose:
      return FileOpClass::kClose;
  }
  return FileOpClass::kRead;
}

Request::~Request() {
  if (owned_dir_fd >= 0) close(owned_dir_fd);
}

void ReportDone(std::shared_ptr<Request> req, int64_t result) {
  CompletionSink* sink = req->sink;
  if (sink != nullptr) {
    sink->OnEngineDone(std::move(req), result);
    return;
  }
  // Orphaned: nobody will take the descriptor an open produced.
  if (IsOpen(req->opcode) && result >= 0) {
    close(static_cast<int>(result));
  }
}

void ReportRefused(std::shared_ptr<Request> req, int err) {
  CompletionSink* sink = req->sink;
  if (sink != nullptr) {
    sink->OnEngineRefused(std::move(req), err);
    return;
  }
  // Orphaned: a refused close still owns its descriptor, and no engine is
  // left to take it.  This only happens while tearing down.
  if (req->opcode == Opcode::kClose && req->fd >= 0) close(req->fd);
}

bool IsLadderErrno(int err) {
  return err == EAGAIN || err == ENOSYS || err == EOPNOTSUPP ||
         err == ENOTSUP || err == EINVAL;
}

bool IsPersistentErrno(int err) {
  return err == ENOSYS || err == EOPNOTSUPP || err == ENOTSUP;
}

}  // namespace aio
}  // namespace kqio
