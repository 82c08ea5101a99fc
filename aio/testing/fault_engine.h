// aio::FaultEngine (test-only): an engine that wraps another and injects
// faults into the requests submitted to it, to prove the core's fallback
// ladder, its counting and its exactly-once delivery without needing a
// kernel that misbehaves.
//
//   FaultEngine posing as io_uring, over a real engine:
//     auto fault = std::make_unique<FaultEngine>(EngineKind::kUring,
//                                                std::move(real), service);
//     fault->Push(FaultEngine::SubmitError(ENOSYS));   // next submission
//     fault->Push(FaultEngine::ShortRead(10));         // the one after
//
// Faults apply to submissions in order (optionally only to one opcode);
// when none is left a request passes through to the wrapped engine.
//   SubmitError(e)   Submit() refuses with errno e (nothing is reported).
//   RefuseLater(e)   accepted, then reported refused with e (ReportRefused).
//   CompleteWith(r)  accepted, then reported done with r (e.g. -EINTR,
//                    -EINVAL) without running (a close still closes: Linux
//                    releases the descriptor whatever close() returns).
//   ShortRead(n)     runs on the wrapped engine with at most n bytes.
//   Hold()           accepted and kept, like a request stuck in the kernel,
//                    until ReleaseHeld() runs it or CompleteHeld() completes
//                    it (writing into its buffers first, so that a buffer
//                    freed too early is a use-after-free under ASan).
// Reports are always deferred (posted), as the engine contract requires.
// Loop thread only.
#ifndef KQIO_AIO_TESTING_FAULT_ENGINE_H_
#define KQIO_AIO_TESTING_FAULT_ENGINE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "aio/engine.h"
#include "io/io_service.h"

namespace kqio {
namespace aio {

class FaultEngine final : public Engine, private CompletionSink {
 public:
  enum class Action {
    kSubmitError,
    kRefuseLater,
    kCompleteWith,
    kShortRead,
    kHold
  };
  struct Fault {
    Action action;
    int64_t value = 0;           // errno, result or byte count
    std::optional<Opcode> only;  // applies to this opcode only
  };
  static Fault SubmitError(int err) { return {Action::kSubmitError, err, {}}; }
  static Fault RefuseLater(int err) { return {Action::kRefuseLater, err, {}}; }
  static Fault CompleteWith(int64_t r) {
    return {Action::kCompleteWith, r, {}};
  }
  static Fault ShortRead(size_t n) {
    return {Action::kShortRead, static_cast<int64_t>(n), {}};
  }
  static Fault Hold() { return {Action::kHold, 0, {}}; }

  // `inner` must not be null.  Reports `kind` as its own.
  FaultEngine(EngineKind kind, std::unique_ptr<Engine> inner,
              io::IoService& service);
  ~FaultEngine() override;

  void Push(Fault fault) { faults_.push_back(fault); }
  size_t faults_left() const { return faults_.size(); }
  // Makes Supports() say no for `op` (an "unsupported opcode").
  void SetUnsupported(Opcode op) { unsupported_[static_cast<int>(op)] = true; }

  // Held requests: run them on the wrapped engine now, or complete them with
  // `result` after filling their buffers with `fill`.
  size_t held() const { return held_.size(); }
  void ReleaseHeld();
  void CompleteHeld(int64_t result, char fill = 'x');

  int submits() const { return submits_; }    // Submit() calls
  int accepted() const { return accepted_; }  // of which accepted
  int cancels() const { return cancels_; }    // Cancel() calls
  int in_flight() const { return static_cast<int>(entries_.size()); }

  EngineKind kind() const override { return kind_; }
  Capability Supports(Opcode op) const override;
  absl::Status Submit(std::shared_ptr<Request> req) override;
  void Cancel(Request& req) override;
  std::string Stats() const override;

 private:
  struct Child;
  struct Entry {
    std::shared_ptr<Request> parent;
    std::shared_ptr<Child> child;  // null while held or self-reported
  };
  absl::Status Forward(Entry& e, size_t max_bytes);
  void OnEngineDone(std::shared_ptr<Request> req, int64_t result) override;
  void OnEngineRefused(std::shared_ptr<Request> req, int err) override;
  std::shared_ptr<Request> Take(Request* parent);

  const EngineKind kind_;
  std::unique_ptr<Engine> inner_;
  io::IoService& service_;
  std::deque<Fault> faults_;
  bool unsupported_[kNumOpcodes] = {};
  absl::flat_hash_map<Request*, Entry> entries_;  // accepted, not reported
  std::vector<Request*> held_;
  int submits_ = 0, accepted_ = 0, cancels_ = 0;
  // Lets posted reports outlive the engine.
  std::shared_ptr<FaultEngine*> alive_ = std::make_shared<FaultEngine*>(this);
};

}  // namespace aio
}  // namespace kqio

#endif  // KQIO_AIO_TESTING_FAULT_ENGINE_H_
