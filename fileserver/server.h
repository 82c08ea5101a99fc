// FileServer: kqio's static HTTP/1.1 file server, as a library (main.cc is
// its command line; tests may run it in-process).
//
//   ServerOptions o;
//   o.root = "/srv/www";
//   o.address = net::SocketAddress::Ipv4Loopback(0);
//   o.threads = 2;
//   auto server = FileServer::Create(o);   // binds; errors name the cause
//   std::cout << (*server)->StartupLine() << std::endl;
//   (*server)->Start();                     // one thread per loop
//   ...
//   (*server)->Shutdown();                  // graceful; any thread
//   (*server)->Wait();
//
// Structure: one Worker per thread, each with its own io::IoService,
// aio::FileService, open-file cache and SO_REUSEPORT listener (the kernel
// spreads connections over them); one shared threadpool::ThreadPool for the
// blocking fallbacks, directory listings and the access log.  The
// connection limit is global (an atomic count over all workers).
//
// Thread-safety: Shutdown(), Admit/Release, MetricsText() and the const
// accessors are thread-safe; Create/Start/Wait are for the owning thread.
#ifndef KQIO_FILESERVER_SERVER_H_
#define KQIO_FILESERVER_SERVER_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fileserver/access_log.h"
#include "fileserver/server_options.h"
#include "net/socket_address.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace fileserver {

class Worker;

class FileServer final {
 public:
  // Opens the root, creates the pool and the workers, binds every
  // listener.  Errors: the root (NotFound, not a directory), the address
  // (in use, not local), an invalid option.
  static absl::StatusOr<std::unique_ptr<FileServer>> Create(
      ServerOptions options);
  // Shuts down and waits if still running.
  ~FileServer();
  FileServer(const FileServer&) = delete;
  FileServer& operator=(const FileServer&) = delete;

  // Starts one thread per worker.
  void Start();
  // Graceful: stop accepting, finish in-flight responses (up to
  // shutdown_timeout), then stop.  A second call aborts what is still
  // running.  Any thread; idempotent after the second.
  void Shutdown();
  // Until every worker has stopped.
  void Wait();

  // "kqio_fileserver: serving /srv/www on http://127.0.0.1:8080/ threads=2
  //  engines: open=uring stat=uring read=uring close=uring"
  std::string StartupLine() const;
  // The bound address (the real port when options().address had port 0).
  const net::SocketAddress& address() const { return address_; }
  const ServerOptions& options() const { return options_; }
  const std::string& root_path() const { return root_path_; }
  int root_fd() const { return root_fd_; }
  // Null when the access log is off.
  AccessLogSink* access_log_sink() { return access_log_sink_.get(); }
  threadpool::ThreadPool& pool() { return *pool_; }

  // The connection limit: true if one more connection may be served.
  bool Admit();
  void Release();
  // Shutdown bookkeeping (workers, any thread): every worker but the first
  // reports its stop; the first stops once all others have.
  void WorkerStopped();
  bool OthersStopped() const {
    return workers_stopped_.load(std::memory_order_acquire) + 1 >=
           workers_.size();
  }
  // Every worker's counters in Prometheus' text format (version 0.0.4).
  std::string MetricsText() const;

 private:
  explicit FileServer(ServerOptions options);

  const ServerOptions options_;
  std::string root_path_;  // absolute
  int root_fd_ = -1;
  int access_log_fd_ = -1;
  bool own_access_log_fd_ = false;
  std::unique_ptr<AccessLogSink> access_log_sink_;
  std::unique_ptr<threadpool::ThreadPool> pool_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  net::SocketAddress address_;
  std::atomic<size_t> connections_{0};
  std::atomic<int> shutdown_calls_{0};
  std::atomic<size_t> workers_stopped_{0};
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_SERVER_H_
