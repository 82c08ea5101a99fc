#include "net/stream_listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "io/errno_status.h"
#include "net/internal/platform.h"
#include "net/internal/socket_util.h"

namespace kqio {
namespace net {
namespace {

// The spare descriptor that lets a listener out of descriptors still accept
// (and close) one connection.
int OpenReserve() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

// Errors of accept() that concern one connection, not the listener: the
// connection is gone or the network hiccupped.  Linux passes pending network
// errors of the new connection through accept(2).
bool IsTransient(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // Linux: a firewall rule refused the connection
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENOPROTOOPT:
    case EOPNOTSUPP:
    case ETIMEDOUT:
#if defined(ENONET)
    case ENONET:
#endif
      return true;
    default:
      return false;
  }
}

bool IsExhaustion(int err) {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

absl::Status SetUp(int fd, const SocketAddress& a,
                   const ListenerOptions& options) {
  if (!a.is_ip()) return absl::OkStatus();
  const std::string where = a.ToString();
  if (options.reuse_address) {
    absl::Status st =
        internal::SetIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
    if (!st.ok()) return st;
  }
  if (options.reuse_port) {
#if defined(SO_REUSEPORT)
    absl::Status st =
        internal::SetIntOption(fd, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
    if (!st.ok()) return st;
#else
    return absl::UnimplementedError("SO_REUSEPORT is not available here");
#endif
  }
  if (a.family() == AF_INET6) {
    return internal::SetIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                                  options.dual_stack ? 0 : 1, "IPV6_V6ONLY");
  }
  return absl::OkStatus();
}

}  // namespace

// Descriptors accepted in one batch, on their way to the handler.  Those not
// handed over (the listener closed, or the service dropped the delivery
// closure at shutdown) are closed here, and leave the connection count.
class StreamListener::AcceptedBatch final {
 public:
  AcceptedBatch(std::vector<int> fds,
                std::shared_ptr<internal::ConnectionCount> count,
                io::MonoTime accepted_at)
      : fds_(std::move(fds)),
        count_(std::move(count)),
        accepted_at_(accepted_at) {}
  AcceptedBatch(AcceptedBatch&& other) noexcept
      : fds_(std::move(other.fds_)),
        next_(other.next_),
        count_(std::move(other.count_)),
        accepted_at_(other.accepted_at_) {
    other.fds_.clear();
    other.next_ = 0;
  }
  AcceptedBatch& operator=(AcceptedBatch&&) = delete;
  AcceptedBatch(const AcceptedBatch&) = delete;
  ~AcceptedBatch() {
    while (!empty()) DropNext();
  }

  bool empty() const { return next_ >= fds_.size(); }
  int TakeNext() { return fds_[next_++]; }
  void DropNext() {
    close(fds_[next_++]);
    --count_->live;
  }
  internal::ConnectionCount& count() { return *count_; }
  const std::shared_ptr<internal::ConnectionCount>& count_ptr() const {
    return count_;
  }
  io::MonoTime accepted_at() const { return accepted_at_; }

 private:
  std::vector<int> fds_;
  size_t next_ = 0;
  std::shared_ptr<internal::ConnectionCount> count_;
  io::MonoTime accepted_at_;  // IoService::OpNow() at the accept
};

StreamListener::StreamListener(io::IoService& service,
                               const ListenerOptions& options)
    : service_(&service),
      options_(options),
      shared_(std::make_shared<Shared>()),
      count_(std::make_shared<internal::ConnectionCount>()) {
  shared_->listener = this;
  if (options_.reserve_descriptor) reserve_fd_ = OpenReserve();
}

StreamListener::~StreamListener() { Close(); }

absl::StatusOr<std::unique_ptr<StreamListener>> StreamListener::Listen(
    io::IoService& service, absl::Span<const SocketAddress> addresses,
    const ListenerOptions& options) {
  if (addresses.empty()) {
    return absl::InvalidArgumentError("Listen: no address");
  }
  std::unique_ptr<StreamListener> l(new StreamListener(service, options));
  uint16_t chosen_port = 0;
  for (SocketAddress a : addresses) {
    if (!a.is_ip() && a.family() != AF_UNIX) {
      return absl::InvalidArgumentError(
          absl::StrCat("Listen: unsupported address ", a.ToString()));
    }
    if (a.is_ip() && a.port() == 0 && chosen_port != 0) {
      a = a.WithPort(chosen_port);
    }
    const std::string where = a.ToString();
    const int fd = internal::OpenSocket(a.family(), SOCK_STREAM, 0);
    if (fd < 0) return io::ErrnoStatus(errno, "socket", where);
    absl::Status st = SetUp(fd, a, options);
    if (!st.ok()) {
      close(fd);
      return st;
    }
    if (bind(fd, a.data(), a.size()) != 0) {
      const int err = errno;
      close(fd);
      return io::ErrnoStatus(err, "bind", where);
    }
    // A path we bound is ours to unlink (an abstract name has no file).
    std::string path = a.unix_path();
    if (!path.empty() && path[0] == '\0') path.clear();
    // Contract 6: listen() first, then register (in AddEndpoint).
    if (listen(fd, options.backlog) != 0) {
      const int err = errno;
      close(fd);
      if (!path.empty()) unlink(path.c_str());
      return io::ErrnoStatus(err, "listen", where);
    }
    if (a.is_ip() && a.port() == 0 && chosen_port == 0) {
      absl::StatusOr<SocketAddress> bound = internal::LocalAddress(fd);
      if (bound.ok()) chosen_port = bound->port();
    }
    st = l->AddEndpoint(fd, path);
    if (!st.ok()) {
      close(fd);
      if (!path.empty()) unlink(path.c_str());
      return st;
    }
  }
  return l;
}

absl::StatusOr<std::unique_ptr<StreamListener>> StreamListener::Adopt(
    io::IoService& service, int fd, const ListenerOptions& options) {
  int listening = 0;
  socklen_t len = sizeof(listening);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0) {
    return io::ErrnoStatus(errno, "getsockopt SO_ACCEPTCONN",
                           absl::StrCat("fd ", fd));
  }
  if (listening == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "StreamListener::Adopt: fd ", fd,
        " is not listening; a socket must be registered with the kqueue "
        "only after listen() (ARCHITECTURE.md contract 6)"));
  }
  if (internal::PrepareSocket(fd) != 0) {
    return io::ErrnoStatus(errno, "Adopt", absl::StrCat("fd ", fd));
  }
  std::unique_ptr<StreamListener> l(new StreamListener(service, options));
  absl::Status st = l->AddEndpoint(fd, "");
  if (!st.ok()) return st;
  return l;
}

absl::Status StreamListener::AddEndpoint(int fd, std::string unix_path) {
  const size_t index = endpoints_.size();
  absl::StatusOr<io::Registration> r = internal::RegisterSocket(
      *service_, fd, /*watch_write=*/false,
      [this, index](const struct kevent&) {
        endpoints_[index].readable = true;
        AcceptBatch();
      });
  if (!r.ok()) return r.status();
  Endpoint e;
  e.fd = fd;
  e.reg = *r;
  e.unix_path = std::move(unix_path);
  endpoints_.push_back(std::move(e));
  return absl::OkStatus();
}

std::vector<SocketAddress> StreamListener::local_addresses() const {
  std::vector<SocketAddress> out;
  for (const Endpoint& e : endpoints_) {
    absl::StatusOr<SocketAddress> a = internal::LocalAddress(e.fd);
    out.push_back(a.ok() ? *a : SocketAddress());
  }
  return out;
}

absl::Status StreamListener::StartAccepting(AcceptHandler handler) {
  if (endpoints_.empty()) {
    return absl::FailedPreconditionError("StartAccepting: listener is closed");
  }
  if (accepting_ || shared_->finished) {
    return absl::FailedPreconditionError("StartAccepting: already started");
  }
  if (handler == nullptr) {
    return absl::InvalidArgumentError("StartAccepting: null handler");
  }
  if (!service_->Track(this)) {
    return absl::FailedPreconditionError("StartAccepting: service shut down");
  }
  shared_->handler = std::move(handler);
  accepting_ = true;
  // Edges may have come before: EV_CLEAR will not repeat them.
  for (Endpoint& e : endpoints_) e.readable = true;
  AcceptBatch();
  return absl::OkStatus();
}

void StreamListener::AcceptBatch() {
  if (!accepting_ || paused_ || endpoints_.empty()) return;
  size_t budget = std::max<size_t>(1, options_.accept_budget);
  std::vector<int> batch;
  const size_t n = endpoints_.size();
  bool out_of_budget = false;
  for (size_t k = 0; k < n && accepting_ && !paused_ && !out_of_budget; ++k) {
    Endpoint& e = endpoints_[(next_endpoint_ + k) % n];
    while (e.readable && accepting_ && !paused_) {
      if (budget == 0) {
        out_of_budget = true;
        break;
      }
      --budget;
      const int fd = internal::AcceptSocket(e.fd, nullptr, nullptr);
      if (fd < 0) {
        const int err = errno;
        if (err == EAGAIN || err == EWOULDBLOCK) {
          e.readable = false;
        } else if (IsTransient(err)) {
          ++stats_.transient_errors;
        } else if (IsExhaustion(err)) {
          PauseAfterExhaustion(e);
        } else {
          const std::string where = internal::Describe(e.fd);
          Finish(io::ErrnoStatus(err, "accept", where));
        }
        continue;
      }
      ++stats_.accepted;
      service_->RecordOpStarted(io::OpClass::kAccept);
      if (options_.max_connections > 0 &&
          count_->live >= options_.max_connections) {
        close(fd);  // the client reads EOF
        ++stats_.refused_over_limit;
        service_->RecordOpDone(
            io::OpClass::kAccept, service_->OpNow(),
            absl::ResourceExhaustedError("connection limit reached"));
        continue;
      }
      ++count_->live;
      batch.push_back(fd);
    }
  }
  next_endpoint_ = (next_endpoint_ + 1) % n;
  if (!batch.empty()) {
    service_->Post([shared = shared_,
                    accepted = AcceptedBatch(std::move(batch), count_,
                                             service_->OpNow())]() mutable {
      Deliver(shared, accepted);
    });
  }
  if (out_of_budget && accepting_ && !paused_ && !continuation_posted_) {
    // Let other I/O run, then go on draining the backlog (EV_CLEAR will
    // not report it again).  A zero-delay timer, not a Post: timers run
    // after the next kevent(), while the loop may run closures posted now
    // in a further pass of this iteration (Options::completion_rounds).
    continuation_posted_ = true;
    service_->RunAfter(absl::ZeroDuration(), [shared = shared_] {
      StreamListener* l = shared->listener;
      if (l == nullptr) return;
      l->continuation_posted_ = false;
      l->AcceptBatch();
    });
  }
}

void StreamListener::Deliver(const std::shared_ptr<Shared>& shared,
                             AcceptedBatch& batch) {
  while (!batch.empty()) {
    StreamListener* l = shared->listener;
    if (l == nullptr || shared->finished) {
      batch.DropNext();  // closed, perhaps by the handler a moment ago
      continue;
    }
    std::unique_ptr<StreamSocket> s(
        new StreamSocket(*l->service_, l->options_.stream_options));
    absl::Status st = s->Attach(batch.TakeNext(), /*watch_write=*/true);
    if (!st.ok()) {  // Attach closed the descriptor
      --batch.count().live;
      l->service_->RecordOpDone(io::OpClass::kAccept, batch.accepted_at(), st);
      continue;
    }
    s->connection_count_ = batch.count_ptr();
    l->service_->RecordOpDone(io::OpClass::kAccept, batch.accepted_at(),
                              absl::OkStatus());
    shared->handler(std::move(s));  // may destroy the listener
  }
}

void StreamListener::PauseAfterExhaustion(Endpoint& e) {
  ++stats_.descriptor_exhaustion;
  if (reserve_fd_ >= 0) {
    close(reserve_fd_);
    reserve_fd_ = -1;
    const int fd = internal::AcceptSocket(e.fd, nullptr, nullptr);
    if (fd >= 0) {
      close(fd);
      ++stats_.shed;
    }
    reserve_fd_ = OpenReserve();  // may fail: retried on Resume()
  }
  paused_ = true;
  ++stats_.backoffs;
  backoff_timer_ = service_->RunAfter(options_.backoff, [this] {
    backoff_timer_ = io::TimerId();
    Resume();
  });
}

void StreamListener::Resume() {
  paused_ = false;
  if (reserve_fd_ < 0 && options_.reserve_descriptor) {
    reserve_fd_ = OpenReserve();
  }
  for (Endpoint& e : endpoints_) e.readable = true;
  AcceptBatch();
}

void StreamListener::Finish(absl::Status status) {
  accepting_ = false;
  paused_ = false;
  service_->Cancel(backoff_timer_);
  backoff_timer_ = io::TimerId();
  if (tracked()) service_->Untrack(this);
  if (shared_->handler == nullptr || shared_->finished) return;
  shared_->finished = true;
  service_->Post([shared = shared_, status = std::move(status)]() mutable {
    AcceptHandler handler = std::move(shared->handler);
    shared->handler = nullptr;
    handler(std::move(status));
  });
}

void StreamListener::Close() {
  for (Endpoint& e : endpoints_) {
    service_->Unregister(e.reg);
    close(e.fd);
    if (options_.unlink_on_close && !e.unix_path.empty()) {
      unlink(e.unix_path.c_str());
    }
  }
  endpoints_.clear();
  if (reserve_fd_ >= 0) {
    close(reserve_fd_);
    reserve_fd_ = -1;
  }
  shared_->listener = nullptr;
  Finish(internal::CancelledStatus("net: listener closed"));
}

void StreamListener::Abort() {
  // Untracked by the service already; Finish() will not touch the list.
  Finish(internal::CancelledStatus("net: service shut down"));
}

}  // namespace net
}  // namespace kqio
