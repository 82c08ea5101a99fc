// AccessLog: one worker's access log, in the combined log format (Apache's
// and nginx's default), written off the loop.
//
// Lines are appended to a buffer; the buffer goes to the log on the thread
// pool (so a slow disk or a full pipe never stalls the loop) when it reaches
// 64 KiB or one second after its first line (nginx's "buffer=64k
// flush=1s").  One writer task per worker at a time, draining whatever the
// loop handed over, keeps the worker's lines in order; an AccessLogSink
// shared by the workers serialises their writes, so lines never interleave
// even on a pipe.  If the log falls more than 8 MiB behind, lines are
// dropped and counted rather than memory grown.  The destructor hands over
// what is left: the running writer task takes it, or, if none runs, it is
// written there and then.
//
// Loop thread only.  Destroy before the IoService and the pool.
#ifndef KQIO_FILESERVER_ACCESS_LOG_H_
#define KQIO_FILESERVER_ACCESS_LOG_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
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

// Where every worker's lines go: one descriptor (not owned) and the lock
// that keeps whole buffers from interleaving.  Thread-safe.
class AccessLogSink final {
 public:
  explicit AccessLogSink(int fd) : fd_(fd) {}
  void Write(absl::string_view data) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  const int fd_;
};

class AccessLog final {
 public:
  // `sink` must outlive the pool's tasks (the server owns it).
  AccessLog(io::IoService& service, threadpool::ThreadPool& pool,
            AccessLogSink& sink);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void Append(const AccessLogEntry& e);
  // Starts writing what is buffered, unless a write is in flight (it then
  // follows that one).
  void Flush();
  uint64_t dropped_lines() const { return dropped_; }

 private:
  // What the loop hands to the writer task.
  struct Handoff {
    absl::Mutex mu;
    std::string data ABSL_GUARDED_BY(mu);
    bool writer_running ABSL_GUARDED_BY(mu) = false;
  };
  // The writer task's body: writes `h`'s data until none is left.
  static void Drain(Handoff& h, AccessLogSink& sink);

  io::IoService& service_;
  threadpool::ThreadPool& pool_;
  AccessLogSink& sink_;
  std::string buffer_;
  bool flush_timer_armed_ = false;
  io::TimerId flush_timer_;
  uint64_t dropped_ = 0;
  std::shared_ptr<Handoff> handoff_;
  // Cleared by the destructor; the flush timer checks it.
  std::shared_ptr<AccessLog*> self_;
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_ACCESS_LOG_H_
