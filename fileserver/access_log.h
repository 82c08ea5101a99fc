// AccessLog: one worker's access log, in the combined log format (Apache's
// and nginx's default), written off the loop.
//
// Lines are appended to a buffer; the buffer goes to the log with one
// write(2) on the thread pool (so a slow disk or a full pipe never stalls
// the loop), at most one write in flight per worker to keep the order, when
// it reaches 64 KiB or one second after its first line (nginx's
// "buffer=64k flush=1s").  If the log falls more than 8 MiB behind, lines
// are dropped and counted rather than memory grown.  Several workers share
// the descriptor (O_APPEND), each writing whole lines.
//
// Loop thread only.  Destroy before the IoService and the pool; the
// destructor writes what is left synchronously.
#ifndef KQIO_FILESERVER_ACCESS_LOG_H_
#define KQIO_FILESERVER_ACCESS_LOG_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace fileserver {

struct AccessLogEntry {
  absl::string_view peer;    // "127.0.0.1"
  absl::string_view method;  // "" when the request did not parse
  absl::string_view target;
  int version_minor = 1;
  absl::string_view referer;
  absl::string_view user_agent;
  int status = 0;
  uint64_t bytes = 0;  // sent, head included (nginx's $bytes_sent)
};

// Appends `e` as one combined-format line to `*out`.  Quotes, backslashes
// and control bytes in request data are written as \xHH.
void AppendAccessLogLine(const AccessLogEntry& e, absl::Time now,
                         std::string* out);

class AccessLog final {
 public:
  // `fd`: shared, not owned (the server opens the file, or uses stdout).
  AccessLog(io::IoService& service, threadpool::ThreadPool& pool, int fd);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void Append(const AccessLogEntry& e);
  // Starts writing what is buffered, unless a write is in flight (it then
  // follows that one).
  void Flush();
  uint64_t dropped_lines() const { return dropped_; }

 private:
  void WriteDone();

  io::IoService& service_;
  threadpool::ThreadPool& pool_;
  const int fd_;
  std::string buffer_;
  bool writing_ = false;
  bool flush_timer_armed_ = false;
  io::TimerId flush_timer_;
  uint64_t dropped_ = 0;
  // Cleared by the destructor; the pool's completion checks it.
  std::shared_ptr<AccessLog*> self_;
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_ACCESS_LOG_H_
