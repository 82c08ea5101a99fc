// The process-wide table from kqueue descriptors to Queue objects, and the
// machinery that notices when a program closes one.
//
// kqueue() hands out the write end of a private pipe.  Its read end sits in
// the queue's own epoll set (so a kevent() blocked in another thread wakes up
// when the descriptor is closed) and in the registry's monitor epoll set, in
// which a background thread, with every signal blocked, waits for hangups
// and releases closed queues.  kqueue() itself also collects hangups first,
// so closing and re-creating queues in a loop never runs out of descriptors.
//
// Thread-safety: all methods are thread-safe.  The table is split in shards
// so that loops on different threads do not share a lock.
#ifndef KQIO_IO_INTERNAL_LINUX_REGISTRY_H_
#define KQIO_IO_INTERNAL_LINUX_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "io/internal/linux/queue.h"

namespace kqio::kq_internal {

class Registry final {
 public:
  // The one registry of the process; never destroyed.
  static Registry& Get();

  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // kqueue(): the new descriptor, or -errno.
  int Create();
  // The queue behind `fd`, or null if `fd` is not an open kqueue.
  std::shared_ptr<Queue> Find(int fd);
  // Releases, before returning, every queue whose descriptor is closed.
  void DrainPendingClose();

 private:
  struct Slot {
    std::shared_ptr<Queue> queue;
    uint32_t id = 0;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<int, Slot> queues ABSL_GUARDED_BY(mu);
  };
  // ForkPrepare holds every shard's lock at once, and ThreadSanitizer's
  // deadlock detector follows at most 64 locks held by one thread: keep the
  // total (shards, monitor_mu_, release_mu_) well under that.
  static constexpr int kShards = 32;

  Registry();
  Shard& ShardFor(int fd) { return shards_[static_cast<unsigned>(fd) % kShards]; }
  int EnsureMonitor();
  // Collects hangups from the monitor set, waiting up to `timeout_ms`.
  void Sweep(int timeout_ms);
  // Removes the queue registered as (fd, id), if it is still there.
  void Release(int fd, uint32_t id);
  void MonitorLoop(int epfd);

  static void ForkPrepare();
  static void ForkParent();
  static void ForkChild();

  Shard shards_[kShards];
  // Releases between taking a queue out of its shard and dropping the
  // registry's reference: DrainPendingClose waits for them, since the monitor
  // thread may be in the middle of one.  Lock order: a shard's mu, then this.
  absl::Mutex release_mu_;
  int releasing_ ABSL_GUARDED_BY(release_mu_) = 0;
  absl::Mutex monitor_mu_;
  int monitor_epfd_ ABSL_GUARDED_BY(monitor_mu_) = -1;
  std::atomic<uint32_t> next_id_{1};
};

}  // namespace kqio::kq_internal

#endif  // KQIO_IO_INTERNAL_LINUX_REGISTRY_H_
