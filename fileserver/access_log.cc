#include "fileserver/access_log.h"

#include <unistd.h>

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

AccessLog::AccessLog(io::IoService& service, threadpool::ThreadPool& pool,
                     int fd)
    : service_(service),
      pool_(pool),
      fd_(fd),
      self_(std::make_shared<AccessLog*>(this)) {}

AccessLog::~AccessLog() {
  *self_ = nullptr;
  if (flush_timer_armed_) service_.Cancel(flush_timer_);
  // A write still in flight on the pool finishes on its own; ours may then
  // interleave at a line boundary only, since each is whole lines.
  if (!buffer_.empty()) (void)WriteFully(fd_, buffer_);
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
  if (writing_ || buffer_.empty()) return;
  writing_ = true;
  auto data = std::make_shared<std::string>();
  data->swap(buffer_);
  int fd = fd_;
  std::weak_ptr<AccessLog*> weak = self_;
  auto submitted = pool_.Submit(
      threadpool::Lane::kGeneral, service_,
      [fd, data] { (void)WriteFully(fd, *data); },
      [weak](absl::Status) {
        auto self = weak.lock();
        if (self != nullptr && *self != nullptr) (*self)->WriteDone();
      });
  if (!submitted.ok()) {
    // The pool is full or shut down: write here rather than lose lines.
    (void)WriteFully(fd_, *data);
    writing_ = false;
  }
}

void AccessLog::WriteDone() {
  writing_ = false;
  if (buffer_.size() >= kFlushBytes) Flush();
}

}  // namespace fileserver
}  // namespace kqio
