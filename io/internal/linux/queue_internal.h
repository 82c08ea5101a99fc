// Definitions shared by the files of the Linux queue: queue.cc (the wait),
// queue_filters.cc (the changes), queue_events.cc (what is returned) and
// queue_signals.cc: how an epoll registration names what it belongs to.
#ifndef KQIO_IO_INTERNAL_LINUX_QUEUE_INTERNAL_H_
#define KQIO_IO_INTERNAL_LINUX_QUEUE_INTERNAL_H_

#include <time.h>

#include <cstdint>

namespace kqio::kq_internal {

// epoll_data layout: [tag:2][generation:30][index:32].  The generation makes
// an event fetched for an earlier occupant of the same index harmless.
inline constexpr uint64_t kTagFd = 0;    // index: descriptor, gen: FdEntry::gen
inline constexpr uint64_t kTagSlot = 1;  // index: slot, gen: slot generation
inline constexpr uint64_t kTagControl = 2;  // index: a kControl* value
inline constexpr uint32_t kControlWake = 0;  // wake eventfd (also the hub's)
inline constexpr uint32_t kControlHangup = 1;  // the hangup pipe's read end
inline constexpr uint32_t kControlSignal = 2;  // SignalHub's signalfd
inline constexpr uint32_t kControlKq = 4;  // the user's kqueue descriptor
inline constexpr uint32_t kGenMask = 0x3fffffff;

inline uint64_t Cookie(uint64_t tag, uint32_t gen, uint32_t index) {
  return (tag << 62) | (uint64_t{gen & kGenMask} << 32) | index;
}

inline struct timespec ToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  return ts;
}

}  // namespace kqio::kq_internal

#endif  // KQIO_IO_INTERNAL_LINUX_QUEUE_INTERNAL_H_
