#include "fileserver/worker.h"

#include <signal.h>

#include <utility>

#include "fileserver/connection.h"
#include "fileserver/server.h"

namespace kqio {
namespace fileserver {

WorkerCounters::Counter& WorkerCounters::response(int status) {
  for (size_t i = 0; i + 1 < kCountedStatuses.size(); ++i) {
    if (kCountedStatuses[i] == status) return responses[i];
  }
  return responses[kCountedStatuses.size() - 1];
}

Worker::Worker(FileServer& server, int index)
    : server_(server), index_(index), root_fd_(server.root_fd()) {}

Worker::~Worker() { Teardown(); }

absl::StatusOr<std::unique_ptr<Worker>> Worker::Create(
    FileServer& server, int index, const net::SocketAddress& address) {
  std::unique_ptr<Worker> w(new Worker(server, index));
  absl::Status s = w->Init(address);
  if (!s.ok()) return s;
  return w;
}

absl::Status Worker::Init(const net::SocketAddress& address) {
  const ServerOptions& o = server_.options();
  auto service = io::IoService::Create();
  if (!service.ok()) return service.status();
  service_ = *std::move(service);

  aio::FileServiceOptions fo;
  fo.engines.fill(o.file_engine);
  auto files = aio::FileService::Create(*service_, server_.pool(), fo);
  if (!files.ok()) return files.status();
  files_ = *std::move(files);
  cache_ = std::make_unique<OpenFileCache>(*service_, *files_, root_fd_,
                                           o.open_file_cache);
  if (server_.access_log_sink() != nullptr) {
    access_log_ = std::make_unique<AccessLog>(*service_, server_.pool(),
                                              *server_.access_log_sink());
  }

  net::ListenerOptions lo;
  lo.reuse_port = true;
  lo.backlog = 4096;
  auto listener = net::StreamListener::Listen(*service_, address, lo);
  if (!listener.ok()) return listener.status();
  listener_ = *std::move(listener);
  local_address_ = listener_->local_addresses().front();
  absl::Status s = listener_->StartAccepting(
      [this](absl::StatusOr<std::unique_ptr<net::StreamSocket>> conn) {
        OnAccept(std::move(conn));
      });
  if (!s.ok()) return s;

  if (o.handle_signals && index_ == 0) {
    for (int signo : {SIGINT, SIGTERM}) {
      s = service_->OnSignal(
          signo, [this](int) { server_.Shutdown(); },
          io::IoService::KeepAlive::kNo);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

const ServerOptions& Worker::options() const { return server_.options(); }
threadpool::ThreadPool& Worker::pool() { return server_.pool(); }
std::string Worker::MetricsText() const { return server_.MetricsText(); }

void Worker::OnAccept(
    absl::StatusOr<std::unique_ptr<net::StreamSocket>> conn) {
  if (!conn.ok()) return;  // the listener closed (shutdown) or broke
  counters_.connections_accepted.Add();
  (void)(*conn)->SetNoDelay(true);
  auto c = std::make_shared<Connection>(*this, *std::move(conn));
  connections_.emplace(c.get(), c);
  open_connections_.store(connections_.size(), std::memory_order_relaxed);
  if (shutting_down_) {
    c->Abort();
    return;
  }
  if (!server_.Admit()) {
    counters_.connections_rejected.Add();
    if (rejecting_ >= kMaxRejecting) {
      c->Abort();  // a flood: close without a word rather than pile up
      return;
    }
    ++rejecting_;
    c->set_rejected();
    c->Reject();
    return;
  }
  c->set_admitted();
  c->Start();
}

void Worker::Remove(Connection* connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end()) return;
  connections_.erase(it);
  open_connections_.store(connections_.size(), std::memory_order_relaxed);
  if (connection->admitted()) server_.Release();
  if (connection->rejected()) --rejecting_;
  MaybeFinishShutdown();
}

void Worker::BeginShutdown() {
  service_->Post([this] {
    if (torn_down_) return;
    if (!shutting_down_) {
      StartShutdown();
      return;
    }
    // A second request: abort what is still running.
    std::vector<std::shared_ptr<Connection>> all;
    for (auto& [ptr, c] : connections_) all.push_back(c);
    for (auto& c : all) c->Abort();
    MaybeFinishShutdown();
  });
}

void Worker::StartShutdown() {
  shutting_down_ = true;
  if (listener_ != nullptr) listener_->Close();
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [ptr, c] : connections_) all.push_back(c);
  for (auto& c : all) c->BeginShutdown();
  shutdown_timer_ =
      service_->RunAfter(server_.options().shutdown_timeout, [this] {
        std::vector<std::shared_ptr<Connection>> left;
        for (auto& [ptr, c] : connections_) left.push_back(c);
        for (auto& c : left) c->Abort();
        if (stopping_) return;
        stopping_ = true;
        service_->Stop();
        if (index_ != 0) server_.WorkerStopped();
      });
  MaybeFinishShutdown();
}

// Worker 0 stops last: it alone handles SIGINT/SIGTERM, and a second
// signal must still be read (to abort) while another worker finishes a
// download.  The others report to it when they stop.
void Worker::MaybeFinishShutdown() {
  if (!shutting_down_ || !connections_.empty() || stopping_) return;
  if (index_ == 0 && !server_.OthersStopped()) return;
  stopping_ = true;
  service_->Cancel(shutdown_timer_);
  if (access_log_ != nullptr) access_log_->Flush();
  service_->Stop();
  if (index_ != 0) server_.WorkerStopped();
}

void Worker::RecheckShutdown() {
  service_->Post([this] {
    if (!torn_down_) MaybeFinishShutdown();
  });
}

void Worker::Run() { service_->Run(); }

void Worker::Teardown() {
  if (service_ == nullptr) return;
  torn_down_ = true;
  // Connections first (their sockets and files), then what they used.
  std::vector<std::shared_ptr<Connection>> all;
  for (auto& [ptr, c] : connections_) all.push_back(c);
  for (auto& c : all) c->Abort();
  all.clear();
  connections_.clear();
  listener_.reset();
  // Callbacks still queued hold connections; running them now (Cancelled
  // or late results, ignored by closed connections) releases them while
  // the cache and the file service still exist.
  service_->Restart();
  service_->Poll();
  access_log_.reset();
  cache_.reset();
  files_.reset();
  service_->Shutdown();
  service_.reset();
}

}  // namespace fileserver
}  // namespace kqio
