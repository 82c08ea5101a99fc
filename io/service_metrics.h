// What an io::IoService counts, and the operation classes its users count
// through it.
//
// Two halves.  `Metrics` is a plain snapshot (copyable, printable) returned by
// IoService::metrics().  `ServiceCounters` is the live set of counters inside
// a service: relaxed atomics, so that any thread may take a snapshot while the
// loop runs.  Counters only the loop thread writes use a load+store
// increment (no locked instruction on the hot path); counters several threads
// write use fetch_add.  A snapshot is consistent per counter, not across
// counters.
//
// Operation classes: every asynchronous operation of kqio belongs to one
// OpClass.  aio/ and net/ record theirs with IoService::RecordOpStarted()
// and RecordOpDone(), which count started / completed / failed / cancelled
// and the latency from start to the completion callback.  To add a class,
// add an enumerator before kCount and its name in OpClassName().
#ifndef KQIO_IO_SERVICE_METRICS_H_
#define KQIO_IO_SERVICE_METRICS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "threadpool/latency_histogram.h"

namespace kqio {
namespace io {

// The clock of every latency and timer deadline in io/: monotonic.
using MonoClock = std::chrono::steady_clock;
using MonoTime = MonoClock::time_point;

// The first four are filled by the service itself (see Snapshot()):
//   kPost     started = posts accepted, completed = closures run; latency =
//             time in the queue, measured on a sample of posts.
//   kTimer    started = timers added, completed = callbacks run (a periodic
//             timer completes once per tick), cancelled = Cancel() that
//             prevented a run + timers dropped at shutdown; latency =
//             lateness of the callback past its deadline.
//   kSignal   signal callbacks run; no latency.
//   kFdEvent  events dispatched to registrations; no latency.
// The rest are recorded by aio/ and net/ through IoService::RecordOp*.
enum class OpClass : uint8_t {
  kPost,
  kTimer,
  kSignal,
  kFdEvent,
  kPool,  // generic work on the thread pool
  kFileOpen,
  kFileStat,
  kFileRead,
  kFileWrite,
  kFileFsync,
  kFileClose,
  // FileService::ReadFile as one operation (open + fstat + read + close),
  // counted besides its steps, which count in their own classes.
  kFileReadWhole,
  kResolve,
  kAccept,
  kConnect,
  kRead,
  kWrite,
  kSendfile,
  kCount,  // not a class: the number of classes
};
inline constexpr size_t kNumOpClasses = static_cast<size_t>(OpClass::kCount);

// "post", "timer", "file_read", ...
const char* OpClassName(OpClass c);

struct OpMetrics {
  uint64_t started = 0;
  uint64_t completed = 0;  // completed with an OK status
  uint64_t failed = 0;     // completed with an error other than Cancelled
  uint64_t cancelled = 0;  // completed with absl::CancelledError
  threadpool::LatencyHistogram::Snapshot latency;
};

struct Metrics {
  uint64_t loop_iterations = 0;
  uint64_t kevent_blocking = 0;  // kevent() calls that could sleep
  uint64_t kevent_polling = 0;   // kevent() calls with a zero timeout
  uint64_t events = 0;           // events returned by kevent(), wakeups included
  uint64_t stale_events_dropped = 0;
  uint64_t posts_local = 0;         // Post() from the loop thread
  uint64_t posts_cross_thread = 0;  // Post() from any other thread
  uint64_t posts_rejected = 0;      // Post() after Shutdown(): destroyed, not run
  uint64_t wakeups_sent = 0;        // EVFILT_USER NOTE_TRIGGERs
  uint64_t loop_spins = 0;      // waits for pool results before sleeping
  uint64_t loop_spin_hits = 0;  // ... that a Post() ended (no sleep)
  uint64_t loop_naps = 0;       // naps while pool results were due
  uint64_t loop_naps_empty = 0;  // ... that brought nothing (naps off)
  uint64_t loop_naps_long = 0;   // ... that brought 7/8 of what was due+
  uint64_t completions_run = 0;     // posted closures run
  uint64_t timers_started = 0;
  uint64_t timers_fired = 0;  // callbacks run (each tick of a periodic timer)
  uint64_t timers_cancelled = 0;  // Cancel() calls that prevented a run
  uint64_t timers_dropped = 0;    // destroyed unrun by Shutdown()
  // Gauges at the time of the snapshot.
  uint64_t timers_pending = 0;
  uint64_t registrations = 0;
  uint64_t tracked_operations = 0;
  std::array<OpMetrics, kNumOpClasses> ops{};

  const OpMetrics& op(OpClass c) const { return ops[static_cast<size_t>(c)]; }
  // Multi-line, human-readable; operation classes never started are left out.
  std::string ToString() const;
};

// The live counters of one service.  Thread-safe as described above.
class ServiceCounters final {
 public:
  // Incremented by one writer at a time (the loop thread, or under a lock).
  class Counter final {
   public:
    void Add(uint64_t n = 1) {
      v_.store(v_.load(std::memory_order_relaxed) + n,
               std::memory_order_relaxed);
    }
    uint64_t Get() const { return v_.load(std::memory_order_relaxed); }

   private:
    std::atomic<uint64_t> v_{0};
  };

  ServiceCounters() = default;
  ServiceCounters(const ServiceCounters&) = delete;
  ServiceCounters& operator=(const ServiceCounters&) = delete;

  // Any thread.
  void OpStarted(OpClass c, uint64_t n = 1);
  void OpDone(OpClass c, const absl::Status& status);
  void OpDone(OpClass c, const absl::Status& status, absl::Duration latency);
  void RecordLatency(OpClass c, absl::Duration latency);

  // Everything but the gauges.  The kPost, kTimer, kFdEvent and kSignal
  // classes are filled from the loop's own counters (posts, timers, events
  // dispatched, signal callbacks) rather than counted twice.
  Metrics Snapshot() const;

  Counter loop_iterations, kevent_blocking, kevent_polling, events,
      stale_events_dropped, posts_local, completions_run, timers_started,
      timers_fired, timers_cancelled, timers_dropped, events_dispatched,
      signal_deliveries, loop_spins, loop_spin_hits, loop_naps,
      loop_naps_empty, loop_naps_long;
  // Written under IoService::mu_.
  Counter posts_cross_thread, posts_rejected, wakeups_sent;

 private:
  struct PerOp {
    std::atomic<uint64_t> started{0}, completed{0}, failed{0}, cancelled{0};
    threadpool::LatencyHistogram latency;
  };
  PerOp& at(OpClass c) { return ops_[static_cast<size_t>(c)]; }

  std::array<PerOp, kNumOpClasses> ops_;
};

}  // namespace io
}  // namespace kqio

#endif  // KQIO_IO_SERVICE_METRICS_H_
