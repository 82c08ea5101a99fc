#include "fileserver/server.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aio/file_service.h"
#include "fileserver/worker.h"
#include "io/errno_status.h"

namespace kqio {
namespace fileserver {

FileServer::FileServer(ServerOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<FileServer>> FileServer::Create(
    ServerOptions options) {
  if (options.threads < 1 || options.threads > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be in [1, 1024], not ", options.threads));
  }
  if (options.body_chunk_bytes == 0) {
    return absl::InvalidArgumentError("body_chunk_bytes must be positive");
  }
  std::unique_ptr<FileServer> server(new FileServer(std::move(options)));
  const ServerOptions& o = server->options_;

  char resolved[PATH_MAX];
  if (realpath(o.root.c_str(), resolved) == nullptr) {
    return io::ErrnoStatus(errno, "realpath", o.root);
  }
  server->root_path_ = resolved;
  int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  server->root_fd_ = open(resolved, flags);
  if (server->root_fd_ < 0) return io::ErrnoStatus(errno, "open", resolved);

  if (!o.access_log.empty()) {
    if (o.access_log == "-") {
      server->access_log_fd_ = STDOUT_FILENO;
    } else {
      server->access_log_fd_ =
          open(o.access_log.c_str(),
               O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (server->access_log_fd_ < 0) {
        return io::ErrnoStatus(errno, "open", o.access_log);
      }
      server->own_access_log_fd_ = true;
    }
    server->access_log_sink_ =
        std::make_unique<AccessLogSink>(server->access_log_fd_);
  }

  threadpool::ThreadPoolOptions po;
  po.num_threads = o.pool_threads;
  auto pool = threadpool::ThreadPool::Create(po);
  if (!pool.ok()) return pool.status();
  server->pool_ = *std::move(pool);

  // The first worker binds (port 0: the kernel picks); the others bind the
  // port it got, each with its own SO_REUSEPORT socket.
  net::SocketAddress address = o.address;
  for (int i = 0; i < o.threads; ++i) {
    auto w = Worker::Create(*server, i, address);
    if (!w.ok()) return w.status();
    if (i == 0) address = (*w)->local_address();
    server->workers_.push_back(*std::move(w));
  }
  server->address_ = address;
  return server;
}

FileServer::~FileServer() {
  if (!threads_.empty()) {
    if (shutdown_calls_.load() == 0) Shutdown();
    Wait();
  }
  workers_.clear();  // before the pool they post to
  pool_.reset();     // its access log writes are done after this
  access_log_sink_.reset();
  if (root_fd_ >= 0) close(root_fd_);
  if (own_access_log_fd_) close(access_log_fd_);
}

void FileServer::Start() {
  for (auto& w : workers_) {
    Worker* worker = w.get();
    threads_.emplace_back([worker] { worker->Run(); });
  }
}

void FileServer::Shutdown() {
  if (shutdown_calls_.fetch_add(1) >= 2) return;
  for (auto& w : workers_) w->BeginShutdown();
}

void FileServer::Wait() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool FileServer::Admit() {
  size_t n = connections_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (options_.max_connections == 0 || n <= options_.max_connections) {
    return true;
  }
  connections_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

void FileServer::Release() {
  connections_.fetch_sub(1, std::memory_order_relaxed);
}

void FileServer::WorkerStopped() {
  workers_stopped_.fetch_add(1, std::memory_order_acq_rel);
  workers_.front()->RecheckShutdown();
}

std::string FileServer::StartupLine() const {
  std::string host = address_.ToString();  // "127.0.0.1:80" / "[::1]:80"
  std::vector<std::string> engines;
  if (!workers_.empty()) {
    aio::CapabilityReport r = workers_.front()->files().Capabilities();
    for (const auto& c : r.classes) {
      if (c.op_class == aio::FileOpClass::kWrite ||
          c.op_class == aio::FileOpClass::kFsync) {
        continue;  // the server never writes files
      }
      engines.push_back(absl::StrCat(aio::FileOpClassName(c.op_class), "=",
                                     aio::EngineKindName(c.engine)));
    }
  }
  return absl::StrCat("kqio_fileserver: serving ", root_path_,
                      " on http://", host, "/ threads=", workers_.size(),
                      " engines: ", absl::StrJoin(engines, " "));
}

}  // namespace fileserver
}  // namespace kqio
