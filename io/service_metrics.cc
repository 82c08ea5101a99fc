#include "io/service_metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kqio {
namespace io {

const char* OpClassName(OpClass c) {
  switch (c) {
    case OpClass::kPost: return "post";
    case OpClass::kTimer: return "timer";
    case OpClass::kSignal: return "signal";
    case OpClass::kFdEvent: return "fd_event";
    case OpClass::kPool: return "pool";
    case OpClass::kFileOpen: return "file_open";
    case OpClass::kFileStat: return "file_stat";
    case OpClass::kFileRead: return "file_read";
    case OpClass::kFileWrite: return "file_write";
    case OpClass::kFileFsync: return "file_fsync";
    case OpClass::kFileClose: return "file_close";
    case OpClass::kFileReadWhole: return "file_read_whole";
    case OpClass::kResolve: return "resolve";
    case OpClass::kAccept: return "accept";
    case OpClass::kConnect: return "connect";
    case OpClass::kRead: return "read";
    case OpClass::kWrite: return "write";
    case OpClass::kSendfile: return "sendfile";
    case OpClass::kCount: break;
  }
  return "?";
}

void ServiceCounters::OpStarted(OpClass c, uint64_t n) {
  at(c).started.fetch_add(n, std::memory_order_relaxed);
}

void ServiceCounters::OpDone(OpClass c, const absl::Status& status) {
  PerOp& op = at(c);
  if (status.ok()) {
    op.completed.fetch_add(1, std::memory_order_relaxed);
  } else if (absl::IsCancelled(status)) {
    op.cancelled.fetch_add(1, std::memory_order_relaxed);
  } else {
    op.failed.fetch_add(1, std::memory_order_relaxed);
  }
}

void ServiceCounters::OpDone(OpClass c, const absl::Status& status,
                             absl::Duration latency) {
  OpDone(c, status);
  RecordLatency(c, latency);
}

void ServiceCounters::RecordLatency(OpClass c, absl::Duration latency) {
  at(c).latency.Record(latency);
}

Metrics ServiceCounters::Snapshot() const {
  Metrics m;
  m.loop_iterations = loop_iterations.Get();
  m.kevent_blocking = kevent_blocking.Get();
  m.kevent_polling = kevent_polling.Get();
  m.events = events.Get();
  m.stale_events_dropped = stale_events_dropped.Get();
  m.posts_local = posts_local.Get();
  m.posts_cross_thread = posts_cross_thread.Get();
  m.posts_rejected = posts_rejected.Get();
  m.wakeups_sent = wakeups_sent.Get();
  m.loop_spins = loop_spins.Get();
  m.loop_spin_hits = loop_spin_hits.Get();
  m.loop_naps = loop_naps.Get();
  m.loop_naps_empty = loop_naps_empty.Get();
  m.loop_naps_long = loop_naps_long.Get();
  m.completions_run = completions_run.Get();
  m.timers_started = timers_started.Get();
  m.timers_fired = timers_fired.Get();
  m.timers_cancelled = timers_cancelled.Get();
  m.timers_dropped = timers_dropped.Get();
  for (size_t i = 0; i < kNumOpClasses; ++i) {
    const PerOp& op = ops_[i];
    m.ops[i].started = op.started.load(std::memory_order_relaxed);
    m.ops[i].completed = op.completed.load(std::memory_order_relaxed);
    m.ops[i].failed = op.failed.load(std::memory_order_relaxed);
    m.ops[i].cancelled = op.cancelled.load(std::memory_order_relaxed);
    m.ops[i].latency = op.latency.Read();
  }
  OpMetrics& post = m.ops[static_cast<size_t>(OpClass::kPost)];
  post.started += m.posts_local + m.posts_cross_thread;
  post.completed += m.completions_run;
  OpMetrics& timer = m.ops[static_cast<size_t>(OpClass::kTimer)];
  timer.started += m.timers_started;
  timer.completed += m.timers_fired;
  timer.cancelled += m.timers_cancelled + m.timers_dropped;
  OpMetrics& fd = m.ops[static_cast<size_t>(OpClass::kFdEvent)];
  fd.started += events_dispatched.Get();
  fd.completed += events_dispatched.Get();
  OpMetrics& sig = m.ops[static_cast<size_t>(OpClass::kSignal)];
  sig.started += signal_deliveries.Get();
  sig.completed += signal_deliveries.Get();
  return m;
}

std::string Metrics::ToString() const {
  std::string s = absl::StrCat(
      "loop: iterations=", loop_iterations, " kevent(blocking)=",
      kevent_blocking, " kevent(polling)=", kevent_polling, " events=", events,
      " stale_dropped=", stale_events_dropped, " spins=", loop_spins,
      " (hits ", loop_spin_hits, ") naps=", loop_naps, " (empty ",
      loop_naps_empty, ", long ", loop_naps_long, ")\n", "posts: local=",
      posts_local, " cross_thread=", posts_cross_thread,
      " rejected=", posts_rejected, " wakeups_sent=", wakeups_sent,
      " run=", completions_run, "\n", "timers: started=", timers_started,
      " fired=", timers_fired, " cancelled=", timers_cancelled,
      " dropped=", timers_dropped, " pending=", timers_pending, "\n",
      "registrations=", registrations,
      " tracked_operations=", tracked_operations, "\n");
  for (size_t i = 0; i < kNumOpClasses; ++i) {
    const OpMetrics& op = ops[i];
    if (op.started == 0 && op.completed == 0 && op.failed == 0 &&
        op.cancelled == 0 && op.latency.count == 0) {
      continue;
    }
    absl::StrAppendFormat(&s, "  %-10s started=%d ok=%d failed=%d cancelled=%d",
                          OpClassName(static_cast<OpClass>(i)), op.started,
                          op.completed, op.failed, op.cancelled);
    if (op.latency.count > 0) absl::StrAppend(&s, " ", op.latency.ToString());
    absl::StrAppend(&s, "\n");
  }
  return s;
}

}  // namespace io
}  // namespace kqio
