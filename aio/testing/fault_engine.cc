#include "aio/testing/fault_engine.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "aio/internal/op.h"
#include "aio/testing/file_service_test_peer.h"
#include "io/errno_status.h"

namespace kqio {
namespace aio {

size_t FileServiceTestPeer::LiveOps(const FileService& fs) {
  size_t n = 0;
  for (const internal::Op* o = fs.live_head_; o != nullptr; o = o->live_next)
    ++n;
  return n;
}

// What the wrapped engine runs: a copy of the parent request (same memory),
// perhaps with fewer bytes.
struct FaultEngine::Child final : Request {
  Request* parent = nullptr;
  std::vector<struct iovec> iovs;
};

FaultEngine::FaultEngine(EngineKind kind, std::unique_ptr<Engine> inner,
                         io::IoService& service)
    : kind_(kind), inner_(std::move(inner)), service_(service) {}

FaultEngine::~FaultEngine() {
  *alive_ = nullptr;
  // Children still in the wrapped engine become orphans; the wrapped engine
  // waits for the kernel before the parents' memory goes (entries_ last).
  for (auto& [ptr, e] : entries_) {
    if (e.child != nullptr) e.child->sink = nullptr;
  }
  inner_.reset();
  for (auto& [ptr, e] : entries_) {
    if (e.child == nullptr) ReportRefused(std::move(e.parent), ECANCELED);
  }
}

Capability FaultEngine::Supports(Opcode op) const {
  if (unsupported_[static_cast<int>(op)]) {
    return {false, "unsupported (fault injection)"};
  }
  Capability c = inner_->Supports(op);
  c.why = absl::StrCat("fault injection over ", EngineKindName(inner_->kind()),
                       ": ", c.why);
  return c;
}

absl::Status FaultEngine::Submit(std::shared_ptr<Request> req) {
  ++submits_;
  std::optional<Fault> fault;
  auto it = std::find_if(faults_.begin(), faults_.end(), [&](const Fault& f) {
    return !f.only.has_value() || *f.only == req->opcode;
  });
  if (it != faults_.end()) {
    fault = *it;
    faults_.erase(it);
  }
  if (fault.has_value() && fault->action == Action::kSubmitError) {
    return io::ErrnoStatus(static_cast<int>(fault->value), "fault", "submit");
  }
  Request* const ptr = req.get();
  Entry& e = entries_[ptr];
  e.parent = std::move(req);
  if (!fault.has_value() || fault->action == Action::kShortRead) {
    const size_t max = fault.has_value() ? static_cast<size_t>(fault->value)
                                         : std::numeric_limits<size_t>::max();
    absl::Status s = Forward(e, max);
    if (!s.ok()) {
      entries_.erase(ptr);
      return s;
    }
  } else if (fault->action == Action::kHold) {
    held_.push_back(ptr);
  } else {
    const bool refuse = fault->action == Action::kRefuseLater;
    // Linux releases a descriptor whatever close() returns: a faked close
    // result still closes it, or the test would leak it.
    if (!refuse && ptr->opcode == Opcode::kClose) close(ptr->fd);
    const int64_t value = fault->value;
    service_.Post([alive = alive_, ptr, refuse, value] {
      FaultEngine* self = *alive;
      if (self == nullptr) return;
      std::shared_ptr<Request> parent = self->Take(ptr);
      if (parent == nullptr) return;
      if (refuse) {
        ReportRefused(std::move(parent), static_cast<int>(value));
      } else {
        ReportDone(std::move(parent), value);
      }
    });
  }
  ++accepted_;
  return absl::OkStatus();
}

absl::Status FaultEngine::Forward(Entry& e, size_t max_bytes) {
  const Request& p = *e.parent;
  auto child = std::make_shared<Child>();
  child->opcode = p.opcode;
  child->fd = p.fd;
  child->path = p.path;
  child->dir_fd = p.dir_fd;
  child->resolve = p.resolve;
  child->flags = p.flags;
  child->mode = p.mode;
  child->offset = p.offset;
  child->stat_out = p.stat_out;
  child->iovs.assign(p.iov, p.iov + p.iovcnt);
  for (struct iovec& v : child->iovs) {
    v.iov_len = std::min(v.iov_len, max_bytes);
    max_bytes -= v.iov_len;
  }
  child->iov = child->iovs.data();
  child->iovcnt = p.iovcnt;
  child->sink = this;
  child->parent = e.parent.get();
  absl::Status s = inner_->Submit(child);
  if (s.ok()) e.child = std::move(child);
  return s;
}

std::shared_ptr<Request> FaultEngine::Take(Request* parent) {
  auto it = entries_.find(parent);
  if (it == entries_.end()) return nullptr;
  std::shared_ptr<Request> p = std::move(it->second.parent);
  entries_.erase(it);
  held_.erase(std::remove(held_.begin(), held_.end(), parent), held_.end());
  return p;
}

void FaultEngine::OnEngineDone(std::shared_ptr<Request> req, int64_t result) {
  std::shared_ptr<Request> parent =
      Take(static_cast<Child*>(req.get())->parent);
  if (parent != nullptr) ReportDone(std::move(parent), result);
}

void FaultEngine::OnEngineRefused(std::shared_ptr<Request> req, int err) {
  std::shared_ptr<Request> parent =
      Take(static_cast<Child*>(req.get())->parent);
  if (parent != nullptr) ReportRefused(std::move(parent), err);
}

void FaultEngine::Cancel(Request& req) {
  ++cancels_;
  auto it = entries_.find(&req);
  if (it != entries_.end() && it->second.child != nullptr) {
    inner_->Cancel(*it->second.child);
  }
  // Held requests are "stuck in the kernel": a cancel does nothing.
}

void FaultEngine::ReleaseHeld() {
  std::vector<Request*> held = std::move(held_);
  held_.clear();
  for (Request* ptr : held) {
    Entry& e = entries_[ptr];
    absl::Status s = Forward(e, std::numeric_limits<size_t>::max());
    if (!s.ok()) {
      service_.Post([alive = alive_, ptr] {
        if (*alive == nullptr) return;
        std::shared_ptr<Request> parent = (*alive)->Take(ptr);
        if (parent != nullptr) ReportRefused(std::move(parent), EAGAIN);
      });
    }
  }
}

void FaultEngine::CompleteHeld(int64_t result, char fill) {
  std::vector<Request*> held = std::move(held_);
  held_.clear();
  for (Request* ptr : held) {
    const Request& p = *entries_[ptr].parent;
    // The "kernel" writes into the buffers now: freed memory would be a
    // use-after-free that ASan reports.
    for (int i = 0; i < p.iovcnt; ++i) {
      std::memset(p.iov[i].iov_base, fill, p.iov[i].iov_len);
    }
    service_.Post([alive = alive_, ptr, result] {
      if (*alive == nullptr) return;
      std::shared_ptr<Request> parent = (*alive)->Take(ptr);
      if (parent != nullptr) ReportDone(std::move(parent), result);
    });
  }
}

std::string FaultEngine::Stats() const {
  return absl::StrCat("fault(", EngineKindName(kind_), "): submits=", submits_,
                      " accepted=", accepted_, " cancels=", cancels_,
                      " held=", held_.size(), "; ", inner_->Stats());
}

}  // namespace aio
}  // namespace kqio
