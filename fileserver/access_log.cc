#include "fileserver/access_log.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace kqio {
namespace fileserver {
namespace {

constexpr size_t kFlushBytes = 64 * 1024;
constexpr size_t kMaxBehindBytes = 8 << 20;
constexpr absl::Duration kFlushDelay = absl::Seconds(1);

void AppendEscaped(absl::string_view s, std::string* out) {
  if (s.empty()) {
    out->push_back('-');
    return;
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out->append("\\x");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

// Writes all of `data` to `fd`; false on an error other than EINTR.
bool WriteFully(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

void AppendAccessLogLine(const AccessLogEntry& e, absl::Time now,
                         std::string* out) {
  AppendEscaped(e.peer, out);
  out->append(" - - [");
  out->append(absl::FormatTime("%d/%b/%Y:%H:%M:%S +0000", now,
                               absl::UTCTimeZone()));
  out->append("] \"");
  if (e.method.empty()) {
    out->push_back('-');
  } else {
    AppendEscaped(e.method, out);
    out->push_back(' ');
    AppendEscaped(e.target, out);
    absl::StrAppend(out, " HTTP/1.", e.version_minor);
  }
  absl::StrAppend(out, "\" ", e.status, " ", e.bytes, " \"");
  AppendEscaped(e.referer, out);
  out->append("\" \"");
  AppendEscaped(e.user_agent, out);
  out->append("\"\n");
}

void AccessLogSink::Write(absl::string_view data) {
  absl::MutexLock lock(&mu_);
  (void)WriteFully(fd_, data);
}

AccessLog::AccessLog(io::IoService& service, threadpool::ThreadPool& pool,
                     AccessLogSink& sink)
    : service_(service),
      pool_(pool),
      sink_(sink),
      handoff_(std::make_shared<Handoff>()),
      self_(std::make_shared<AccessLog*>(this)) {}

AccessLog::~AccessLog() {
  *self_ = nullptr;
  if (flush_timer_armed_) service_.Cancel(flush_timer_);
  if (buffer_.empty()) return;
  {
    absl::MutexLock lock(&handoff_->mu);
    handoff_->data.append(buffer_);
    // A running writer takes it, after what it already had: in order.
    if (handoff_->writer_running) return;
    handoff_->writer_running = true;
  }
  Drain(*handoff_, sink_);
}

void AccessLog::Append(const AccessLogEntry& e) {
  if (buffer_.size() > kMaxBehindBytes) {
    ++dropped_;
    return;
  }
  AppendAccessLogLine(e, absl::Now(), &buffer_);
  if (buffer_.size() >= kFlushBytes) {
    Flush();
  } else if (!flush_timer_armed_) {
    flush_timer_armed_ = true;
    std::weak_ptr<AccessLog*> weak = self_;
    flush_timer_ = service_.RunAfter(kFlushDelay, [weak] {
      auto self = weak.lock();
      if (self == nullptr || *self == nullptr) return;
      (*self)->flush_timer_armed_ = false;
      (*self)->Flush();
    });
  }
}

void AccessLog::Flush() {
  if (buffer_.empty()) return;
  {
    absl::MutexLock lock(&handoff_->mu);
    if (handoff_->data.size() > kMaxBehindBytes) {
      // The log is far behind: drop this buffer's lines.
      dropped_ += static_cast<uint64_t>(
          std::count(buffer_.begin(), buffer_.end(), '\n'));
      buffer_.clear();
      return;
    }
    handoff_->data.append(buffer_);
    buffer_.clear();
    if (handoff_->writer_running) return;  // it will take these too
    handoff_->writer_running = true;
  }
  std::shared_ptr<Handoff> h = handoff_;
  AccessLogSink* sink = &sink_;
  auto submitted = pool_.Submit(
      threadpool::Lane::kGeneral, service_, [h, sink] { Drain(*h, *sink); },
      [](absl::Status) {});
  // The pool is full or shut down: write here rather than lose lines.
  if (!submitted.ok()) Drain(*handoff_, sink_);
}

void AccessLog::Drain(Handoff& h, AccessLogSink& sink) {
  for (;;) {
    std::string data;
    {
      absl::MutexLock lock(&h.mu);
      if (h.data.empty()) {
        h.writer_running = false;
        return;
      }
      data.swap(h.data);
    }
    sink.Write(data);
  }
}

}  // namespace fileserver
}  // namespace kqio
