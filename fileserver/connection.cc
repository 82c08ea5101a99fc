// Connection: reading, parsing, the request/response cycle and closing.
// The responses themselves are in connection_respond.cc.
#include "fileserver/connection.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "fileserver/worker.h"

namespace kqio {
namespace fileserver {
namespace {

constexpr size_t kInitialInputBytes = 4096;

// The most a request head can occupy in the input buffer: the parser fails
// (414 or 431) before more is needed.
size_t MaxInputBytes(const ParserOptions& o) {
  return o.max_target_bytes + o.max_header_bytes + HttpParser::kMaxMethodBytes +
         64 + 2 * HttpParser::kMaxLeadingEmptyLines;
}

}  // namespace

Connection::Connection(Worker& worker,
                       std::unique_ptr<net::StreamSocket> socket)
    : worker_(worker),
      socket_(std::move(socket)),
      in_(kInitialInputBytes),
      parser_(worker.options().parser) {
  if (worker_.access_log() != nullptr) {
    auto peer = socket_->peer_address();
    peer_ = peer.ok() ? peer->ToString() : "-";
    // "127.0.0.1:5555" -> "127.0.0.1"; "[::1]:5555" -> "::1".
    size_t colon = peer_.rfind(':');
    if (colon != std::string::npos && peer_ != "-") peer_.resize(colon);
    if (!peer_.empty() && peer_.front() == '[') {
      peer_ = peer_.substr(1, peer_.size() - 2);
    }
  }
}

Connection::~Connection() {
  if (timer_armed_) worker_.service().Cancel(timer_);
}

void Connection::Start() {
  SetDeadline(worker_.options().header_timeout);
  head_started_ = true;
  ReadMore();
}

void Connection::Reject() {
  keep_alive_ = false;
  state_ = State::kResponding;
  RespondError(503, /*close=*/true);
}

void Connection::BeginShutdown() {
  shutting_down_ = true;
  if (state_ == State::kReading && in_len_ == 0) Close();
}

void Connection::Abort() { Close(); }

// --- Input.

void Connection::ReadMore() {
  if (read_pending_ || state_ == State::kClosed) return;
  if (in_len_ == in_.size()) {
    size_t max = MaxInputBytes(worker_.options().parser);
    if (in_.size() >= max && discard_ == 0) {
      // The parser should have refused the head already; be safe.
      state_ = State::kResponding;
      RespondError(431, /*close=*/true);
      return;
    }
    if (discard_ > 0) {
      in_len_ = 0;  // body bytes only: nothing to keep
    } else {
      in_.resize(std::min(max, in_.size() * 2));
    }
  }
  read_pending_ = true;
  socket_->Read(
      absl::MakeSpan(in_.data() + in_len_, in_.size() - in_len_),
      [self = shared_from_this()](absl::Status status, size_t bytes) {
        self->OnRead(std::move(status), bytes);
      });
}

void Connection::OnRead(absl::Status status, size_t bytes) {
  read_pending_ = false;
  if (state_ == State::kClosed) return;
  if (!status.ok() || bytes == 0) {
    // The peer left (EOF, reset).  A half-closed peer could still read a
    // response, but one that closes mid-head does not expect one.
    Close();
    return;
  }
  in_len_ += bytes;
  if (state_ == State::kLingering) {
    in_len_ = 0;  // drained and dropped
    ReadMore();
    return;
  }
  ProcessInput();
}

void Connection::ProcessInput() {
  while (state_ == State::kReading) {
    if (discard_ > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(discard_, in_len_));
      std::memmove(in_.data(), in_.data() + n, in_len_ - n);
      in_len_ -= n;
      discard_ -= n;
      if (discard_ > 0) {
        // The announced body must arrive in time too, or a client could
        // hold the connection by announcing one and sending nothing.
        if (!head_started_) {
          head_started_ = true;
          SetDeadline(worker_.options().header_timeout);
        }
        ReadMore();
        return;
      }
    }
    if (in_len_ == 0) {
      if (shutting_down_) {
        Close();
        return;
      }
      if (!head_started_) SetDeadline(worker_.options().keepalive_timeout);
      ReadMore();
      return;
    }
    ParseResult r = parser_.Parse(absl::string_view(in_.data(), in_len_));
    switch (r.kind) {
      case ParseResult::Kind::kIncomplete:
        // The header deadline runs from the request's first byte (or from
        // the connection's start), not from each read: a client sending a
        // byte at a time gains nothing.
        if (!head_started_) {
          head_started_ = true;
          SetDeadline(worker_.options().header_timeout);
        }
        ReadMore();
        return;
      case ParseResult::Kind::kError:
        state_ = State::kResponding;
        request_ = nullptr;
        RespondError(r.status, /*close=*/true);
        return;
      case ParseResult::Kind::kComplete:
        request_bytes_ = r.consumed;
        HandleRequest(parser_.request());
        return;
    }
  }
}

void Connection::HandleRequest(const HttpRequest& request) {
  state_ = State::kResponding;
  ClearDeadline();
  request_ = &request;
  worker_.counters().requests.Add();
  head_only_ = request.method == "HEAD";
  // A chunked body is not decoded: answer, then close.
  keep_alive_ = request.keep_alive && !request.is_chunked && !shutting_down_;
  discard_ = request.is_chunked ? 0 : request.content_length;
  // A client waiting for "100 Continue" before sending its body would wait
  // for a response that comes first anyway; answer, then close rather than
  // read a body that may never come.
  if (discard_ > 0 &&
      absl::EqualsIgnoreCase(request.Header("Expect"), "100-continue")) {
    keep_alive_ = false;
    discard_ = 0;
  }
  status_ = 0;
  file_.reset();
  served_name_.clear();

  if (request.method != "GET" && !head_only_) {
    RespondError(405, /*close=*/!keep_alive_);
    return;
  }
  TargetOptions target_options;
  target_options.allow_dot_files = worker_.options().dot_files;
  absl::StatusOr<TargetPath> target =
      ParseTarget(request.target, target_options);
  if (!target.ok()) {
    // 400 is a malformed request: close.  403 (a dot-file) is not.
    int status = HttpStatusFromStatus(target.status());
    RespondError(status, /*close=*/status == 400 || !keep_alive_);
    return;
  }
  target_ = *std::move(target);
  const std::string& metrics = worker_.options().metrics_path;
  if (!metrics.empty() && target_.raw_path == metrics) {
    ServeMetrics();
    return;
  }
  conditional_ = ReadConditionalFields(request, &if_match_scratch_,
                                       &if_none_match_scratch_);
  worker_.cache().Lookup(
      target_.path,
      [self = shared_from_this()](
          absl::StatusOr<std::shared_ptr<const CachedFile>> file) {
        self->OnLookup(std::move(file));
      });
}

void Connection::FinishResponse() {
  if (state_ == State::kClosed) return;
  LogAccess();
  bytes_sent_ = 0;
  status_ = 0;
  file_.reset();
  request_ = nullptr;
  if (!keep_alive_ || shutting_down_) {
    StartLinger();
    return;
  }
  // Drop the head; the parser starts afresh on what follows.
  std::memmove(in_.data(), in_.data() + request_bytes_,
               in_len_ - request_bytes_);
  in_len_ -= request_bytes_;
  request_bytes_ = 0;
  state_ = State::kReading;
  head_started_ = false;
  ProcessInput();
}

// After the last response: send FIN, then read and drop whatever the
// client still sends, until its EOF or linger_timeout, so that a client
// that pipelined more requests gets its response instead of a reset.
void Connection::StartLinger() {
  state_ = State::kLingering;
  in_len_ = 0;
  if (!socket_->ShutdownWrite().ok()) {
    Close();
    return;
  }
  SetDeadline(worker_.options().linger_timeout);
  ReadMore();
}

void Connection::Close() {
  if (state_ == State::kClosed) return;
  // A response cut short (send error, timeout, shutdown) is logged too.
  if (state_ == State::kResponding) LogAccess();
  state_ = State::kClosed;
  ClearDeadline();
  if (timer_armed_) {
    worker_.service().Cancel(timer_);
    timer_armed_ = false;
  }
  socket_->Close();
  file_.reset();
  worker_.counters().connections_closed.Add();
  worker_.Remove(this);  // may drop the last reference but one: a callback's
}

// --- Timer.

// The timer fires at timer_due_ and then compares the deadline: moving the
// deadline later costs nothing; moving it earlier than timer_due_ re-arms.
void Connection::SetDeadline(absl::Duration d) {
  deadline_ = io::MonoClock::now() + absl::ToChronoNanoseconds(d);
  if (timer_armed_) {
    if (timer_due_ <= deadline_) return;
    worker_.service().Cancel(timer_);
  }
  ArmTimer(d);
}

void Connection::ArmTimer(absl::Duration d) {
  timer_armed_ = true;
  timer_due_ = deadline_;
  std::weak_ptr<Connection> weak = weak_from_this();
  timer_ = worker_.service().RunAfter(d, [weak] {
    if (auto self = weak.lock()) self->OnTimer();
  });
}

void Connection::OnTimer() {
  timer_armed_ = false;
  if (state_ == State::kClosed || deadline_ == io::MonoTime::max()) return;
  auto now = io::MonoClock::now();
  if (now < deadline_) {
    ArmTimer(absl::FromChrono(deadline_ - now));
    return;
  }
  OnDeadline();
}

void Connection::OnDeadline() {
  deadline_ = io::MonoTime::max();
  WorkerCounters& c = worker_.counters();
  switch (state_) {
    case State::kReading:
      if (in_len_ > 0 && discard_ == 0) {
        // A partial head: slowloris, or a very slow client.
        c.header_timeouts.Add();
        state_ = State::kResponding;
        request_ = nullptr;
        RespondError(408, /*close=*/true);
      } else {
        (head_started_ ? c.header_timeouts : c.keepalive_timeouts).Add();
        Close();
      }
      return;
    case State::kResponding:
      c.send_timeouts.Add();
      Close();
      return;
    case State::kLingering:
    case State::kClosed:
      Close();
      return;
  }
}

}  // namespace fileserver
}  // namespace kqio
