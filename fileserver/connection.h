// Connection: one HTTP/1.1 client of the file server, on its worker's loop.
//
// A connection serves one request at a time, in order: it reads until the
// parser has a complete head, answers it (the file's body through
// sendfile(2) or an aio/ read), then parses what is already buffered (a
// pipelined request) before reading again.  It does not read while it
// answers, so pipelined requests wait in the socket buffer and the
// responses go out in request order.
//
// Timeouts, one timer per connection with a lazily moved deadline (no
// timer cancel/re-add per request):
//   - header_timeout: from the connection's start, or from the first byte
//     of a request, until its head is complete (slowloris); a partial head
//     gets 408 and the connection closes;
//   - keepalive_timeout: between requests, with nothing buffered;
//   - send_timeout: per response write or body chunk;
//   - linger_timeout: draining unread input before close().
//
// Lifetime: shared_ptr, held by the worker while open and by every pending
// callback; a callback that finds the connection closed does nothing.
// Loop thread only.
#ifndef KQIO_FILESERVER_CONNECTION_H_
#define KQIO_FILESERVER_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "aio/buffer.h"
#include "fileserver/http_conditional.h"
#include "fileserver/http_parser.h"
#include "fileserver/http_response.h"
#include "fileserver/http_target.h"
#include "fileserver/open_file_cache.h"
#include "io/io_service.h"
#include "io/service_metrics.h"
#include "net/stream_socket.h"

namespace kqio {
namespace fileserver {

class Worker;

class Connection final : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Worker& worker, std::unique_ptr<net::StreamSocket> socket);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts reading the first request.
  void Start();
  // Over the connection limit: answers 503 and closes.
  void Reject();
  // Graceful shutdown: an idle connection closes now; a busy one closes
  // after its current response.
  void BeginShutdown();
  // Closes now, abandoning any response.
  void Abort();

  // Whether the connection counts against the server's limit.
  void set_admitted() { admitted_ = true; }
  bool admitted() const { return admitted_; }
  // Over the limit: answering 503 (Reject()).
  void set_rejected() { rejected_ = true; }
  bool rejected() const { return rejected_; }

 private:
  enum class State { kReading, kResponding, kLingering, kClosed };

  // --- Input (connection.cc).
  void ReadMore();
  void OnRead(absl::Status status, size_t bytes);
  // Parses what is buffered: answers a complete request, or reads more.
  void ProcessInput();
  void HandleRequest(const HttpRequest& request);
  // The current response is sent: drops its request, goes on or closes.
  void FinishResponse();
  void StartLinger();
  void Close();

  // --- Timer.
  void SetDeadline(absl::Duration d);
  void ClearDeadline() { deadline_ = io::MonoTime::max(); }
  void ArmTimer(absl::Duration d);
  void OnTimer();
  void OnDeadline();

  // --- Responses (connection_respond.cc).
  void OnLookup(absl::StatusOr<std::shared_ptr<const CachedFile>> file);
  void OnIndexLookup(absl::StatusOr<std::shared_ptr<const CachedFile>> file);
  void ServeFile(std::shared_ptr<const CachedFile> file);
  void ServeDirectoryListing();
  void ServeMetrics();
  void Redirect(std::string location);
  // A canned error page; `close`: the connection closes after it.
  void RespondError(int status, bool close);
  void RespondError(const absl::Status& status);
  // Sends out_ (and `body` after it, if any), then FinishResponse().
  void SendHead(absl::string_view body = {});
  void SendBodyChunk();
  void OnBodyRead(absl::StatusOr<aio::IoResult> result);
  void OnBodySent(absl::Status status, size_t head_bytes, size_t body_bytes);
  ResponseHead BaseHead(int status);
  void LogAccess();

  Worker& worker_;
  std::unique_ptr<net::StreamSocket> socket_;
  State state_ = State::kReading;
  bool shutting_down_ = false;
  bool admitted_ = false;
  bool rejected_ = false;

  // Input: bytes received and not yet consumed, [0, in_len_).
  std::vector<char> in_;
  size_t in_len_ = 0;
  uint64_t discard_ = 0;  // body bytes of the last request still to drop
  bool read_pending_ = false;
  bool head_started_ = false;  // the header deadline of this request is set
  HttpParser parser_;

  // The request being answered (views into in_, valid while kResponding).
  const HttpRequest* request_ = nullptr;
  size_t request_bytes_ = 0;  // head length in in_
  bool head_only_ = false;    // HEAD
  bool keep_alive_ = true;
  TargetPath target_;
  // Set when the file served is not the target itself (a directory's
  // index.html): its Content-Type comes from this name.
  std::string served_name_;
  std::string if_match_scratch_, if_none_match_scratch_;
  ConditionalRequest conditional_;

  // The response being sent.
  int status_ = 0;
  std::string out_;  // head (and canned body); stable while written
  std::shared_ptr<const CachedFile> file_;
  uint64_t body_offset_ = 0;     // next file byte to send
  uint64_t body_remaining_ = 0;  // file bytes still to send
  uint64_t bytes_sent_ = 0;      // this response, head included
  bool head_pending_ = false;    // out_ goes with the next body chunk
  aio::Buffer body_buffer_;      // reused across responses
  std::string listing_;          // a directory listing or metrics page

  // The one timer.
  io::MonoTime deadline_ = io::MonoTime::max();
  io::TimerId timer_;
  io::MonoTime timer_due_;
  bool timer_armed_ = false;

  std::string peer_;  // for the access log, when enabled
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_CONNECTION_H_
