// What a FileService reports: the capability report (which engine serves
// each operation class, and why) and its counters.
#include <string>

#include "absl/strings/str_cat.h"
#include "aio/file_service.h"

namespace kqio {
namespace aio {

std::string CapabilityReport::ToString() const {
  std::string out = "operation classes:\n";
  for (const Choice& c : classes) {
    absl::StrAppend(&out, "  ", FileOpClassName(c.op_class), ": ",
                    EngineKindName(c.engine), " (", c.why, ")\n");
  }
  absl::StrAppend(&out, "  openat: ", EngineKindName(openat.engine), " (",
                  openat.why, ")\n");
  absl::StrAppend(&out, "engines:\n");
  for (const std::string& e : engines) absl::StrAppend(&out, "  ", e, "\n");
  absl::StrAppend(&out, "page-cache fast path: ", fast_path, "\n");
  absl::StrAppend(&out, "read_file: ", read_file, "\n");
  return out;
}

std::string FileServiceMetrics::ToString() const {
  std::string out;
  for (int c = 0; c < kNumFileOpClasses; ++c) {
    const PerClass& p = classes[c];
    uint64_t any = p.fallbacks + p.eintr_retries + p.late_completions;
    for (uint64_t n : p.submitted) any += n;
    if (any == 0) continue;
    absl::StrAppend(&out, FileOpClassName(static_cast<FileOpClass>(c)), ":");
    for (int k = 1; k < kNumEngineKinds; ++k) {
      if (p.submitted[k] != 0) {
        absl::StrAppend(&out, " ", EngineKindName(static_cast<EngineKind>(k)),
                        "=", p.submitted[k]);
      }
    }
    absl::StrAppend(&out, " fallbacks=", p.fallbacks,
                    " eintr_retries=", p.eintr_retries,
                    " late=", p.late_completions, "\n");
  }
  absl::StrAppend(&out, "fast_path: hits=", fast_path_hits,
                  " partial=", fast_path_partial, " misses=", fast_path_misses,
                  "\ndeadlines_expired=", deadlines_expired,
                  " orphan_fds_closed=", orphan_fds_closed,
                  "\nread_file: tasks=", read_file_tasks,
                  " steps=", read_file_steps, "\n");
  return out;
}

CapabilityReport FileService::Capabilities() const {
  CapabilityReport r;
  for (int c = 0; c < kNumFileOpClasses; ++c) {
    r.classes[c] = choice_[c];
    if (broken_[c] & (1u << static_cast<unsigned>(choice_[c].engine))) {
      r.classes[c].engine = EngineKind::kPool;
      r.classes[c].why = absl::StrCat("pool: ", broken_why_[c]);
    }
  }
  r.openat = openat_choice_;
  const uint8_t open_broken = broken_[static_cast<size_t>(FileOpClass::kOpen)];
  if (open_broken & (1u << static_cast<unsigned>(openat_choice_.engine))) {
    r.openat.engine = EngineKind::kPool;
    r.openat.why = absl::StrCat(
        "pool: ", broken_why_[static_cast<size_t>(FileOpClass::kOpen)], "; ",
        engines_[static_cast<size_t>(EngineKind::kPool)]
            ->Supports(Opcode::kOpenAt)
            .why);
  }
  for (int k = 1; k < kNumEngineKinds; ++k) {
    r.engines.push_back(absl::StrCat(EngineKindName(static_cast<EngineKind>(k)),
                                     ": ", engine_status_[k]));
  }
  r.fast_path = fast_path_why_;
  if (read_file_can_adapt_) {
    r.read_file = fast_path_ok_
                      ? "by the page cache: one pool task per file while "
                        "recent files were cached, steps through io_uring "
                        "while they were not"
                      : "one pool task per file (no fast path to tell a "
                        "cold page cache)";
  } else if (r.classes[static_cast<size_t>(FileOpClass::kOpen)].engine ==
             EngineKind::kPool) {
    r.read_file = "one pool task per file (open, fstat, read, close)";
  } else {
    r.read_file =
        "steps through the engines of open, read, stat and close (named by "
        "the options)";
  }
  return r;
}

FileServiceMetrics FileService::metrics() const {
  FileServiceMetrics m;
  for (int c = 0; c < kNumFileOpClasses; ++c) {
    const Counters::PerClass& from = counters_.classes[c];
    FileServiceMetrics::PerClass& to = m.classes[c];
    for (int k = 0; k < kNumEngineKinds; ++k)
      to.submitted[k] = from.submitted[k].Get();
    to.fallbacks = from.fallbacks.Get();
    to.eintr_retries = from.eintr_retries.Get();
    to.late_completions = from.late_completions.Get();
  }
  m.fast_path_hits = counters_.fast_path_hits.Get();
  m.fast_path_partial = counters_.fast_path_partial.Get();
  m.fast_path_misses = counters_.fast_path_misses.Get();
  m.deadlines_expired = counters_.deadlines_expired.Get();
  m.orphan_fds_closed = counters_.orphan_fds_closed.Get();
  m.read_file_tasks = counters_.read_file_tasks.Get();
  m.read_file_steps = counters_.read_file_steps.Get();
  return m;
}

std::string FileService::EngineStats() const {
  std::string out;
  for (const auto& e : engines_) {
    if (e != nullptr) absl::StrAppend(&out, e->Stats(), "\n");
  }
  return out;
}

}  // namespace aio
}  // namespace kqio
