// Worker: one loop of the file server.  Owns an io::IoService, the
// aio::FileService and OpenFileCache on it, a SO_REUSEPORT listener and the
// connections that listener accepted; one thread runs it (FileServer
// starts the threads).
//
// Shutdown, in the loop: BeginShutdown() closes the listener, tells every
// connection to finish its current response and close (idle ones close at
// once) and arms the shutdown deadline; when the last connection is gone,
// or at the deadline (remaining connections are aborted), the loop stops.
// Run() then tears everything down in dependency order and returns.
//
// Thread-safety: BeginShutdown() and counters() may be called from any
// thread; everything else is for the worker's loop thread (or for the
// creating thread before Run()).
#ifndef KQIO_FILESERVER_WORKER_H_
#define KQIO_FILESERVER_WORKER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "aio/file_service.h"
#include "fileserver/access_log.h"
#include "fileserver/http_response.h"
#include "fileserver/open_file_cache.h"
#include "fileserver/server_options.h"
#include "io/io_service.h"
#include "io/service_metrics.h"
#include "net/stream_listener.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace fileserver {

class Connection;
class FileServer;

// The statuses the server sends, for per-status counters.
inline constexpr std::array<int, 19> kCountedStatuses = {
    200, 206, 301, 304, 400, 403, 404, 405, 408, 412,
    413, 414, 416, 431, 500, 501, 503, 505, 0 /* any other */};

// Written by the worker's loop thread only; read by any thread (metrics).
struct WorkerCounters {
  using Counter = io::ServiceCounters::Counter;
  Counter connections_accepted, connections_rejected, connections_closed,
      requests, bytes_sent, header_timeouts, keepalive_timeouts,
      send_timeouts, sendfile_chunks, read_chunks, truncated_bodies;
  std::array<Counter, kCountedStatuses.size()> responses;
  Counter& response(int status);
};

class Worker final {
 public:
  // Binds `address` with SO_REUSEPORT (FileServer gives every worker the
  // first one's port) and sets up the loop; nothing runs until Run().
  static absl::StatusOr<std::unique_ptr<Worker>> Create(
      FileServer& server, int index, const net::SocketAddress& address);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The thread body: accepts and serves until shut down.
  void Run();
  // Any thread.
  void BeginShutdown();
  // Any thread: worker 0 checks again whether it may stop (another worker
  // stopped).
  void RecheckShutdown();

  // --- For connections (loop thread).
  const ServerOptions& options() const;
  io::IoService& service() { return *service_; }
  aio::FileService& files() { return *files_; }
  OpenFileCache& cache() { return *cache_; }
  threadpool::ThreadPool& pool();
  ResponseWriter& writer() { return writer_; }
  AccessLog* access_log() { return access_log_.get(); }
  WorkerCounters& counters() { return counters_; }
  const WorkerCounters& counters() const { return counters_; }
  bool shutting_down() const { return shutting_down_; }
  // The whole server's metrics page (all workers).
  std::string MetricsText() const;
  // A connection is done: drops the worker's reference.
  void Remove(Connection* connection);

  // --- Any thread.
  const io::IoService& service() const { return *service_; }
  const aio::FileService& files() const { return *files_; }
  OpenFileCacheStats cache_stats() const { return cache_->stats(); }
  net::SocketAddress local_address() const { return local_address_; }
  size_t open_connections() const {
    return open_connections_.load(std::memory_order_relaxed);
  }

 private:
  Worker(FileServer& server, int index);
  absl::Status Init(const net::SocketAddress& address);
  void OnAccept(absl::StatusOr<std::unique_ptr<net::StreamSocket>> conn);
  void StartShutdown();
  void MaybeFinishShutdown();
  void Teardown();

  FileServer& server_;
  const int index_;
  int root_fd_ = -1;  // the server's; not owned
  std::unique_ptr<io::IoService> service_;
  std::unique_ptr<aio::FileService> files_;
  std::unique_ptr<OpenFileCache> cache_;
  std::unique_ptr<net::StreamListener> listener_;
  std::unique_ptr<AccessLog> access_log_;
  ResponseWriter writer_;
  absl::flat_hash_map<Connection*, std::shared_ptr<Connection>> connections_;
  std::atomic<size_t> open_connections_{0};
  net::SocketAddress local_address_;
  bool shutting_down_ = false;
  bool stopping_ = false;  // Stop() called for the shutdown
  bool torn_down_ = false;
  // Connections answering 503 right now; beyond kMaxRejecting, excess
  // connections are closed without a response.
  static constexpr size_t kMaxRejecting = 64;
  size_t rejecting_ = 0;
  io::TimerId shutdown_timer_;
  WorkerCounters counters_;
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_WORKER_H_
