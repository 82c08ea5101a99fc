// HttpClient: a small blocking HTTP/1.1 client for the file server's
// end-to-end tests, deliberately independent of the server's own parser
// and of kqio's loop, so a bug shared by both cannot hide itself.
//
// It speaks raw bytes: Send() writes exactly what the test wrote (malformed
// requests, pipelined batches, one byte at a time), and ReadResponse() reads
// one response: status line, fields, and a body framed by Content-Length or
// by the connection closing (none for HEAD, 1xx, 204 and 304).  Every wait is
// bounded by poll() with the client's timeout, which measures time without
// progress, so a 100 MiB body may take as long as it needs while a stalled
// server fails the test instead of hanging it.
//
// Errors (absl::Status codes a test may branch on):
//   Unavailable       connect() refused (nothing listens on the port);
//   OutOfRange        the peer closed (FIN or RST) before sending a byte of
//                     the response: "the server closed the connection";
//   DataLoss          the peer closed mid-response, or sent a malformed one;
//   DeadlineExceeded  nothing arrived for timeout();
//   Internal          any other system call failure.
//
// Thread-safety: none; one client per thread.  Owns its socket.
#ifndef KQIO_FILESERVER_TESTING_HTTP_CLIENT_H_
#define KQIO_FILESERVER_TESTING_HTTP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kqio {
namespace fileserver {
namespace testing {

struct HttpResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // as received
  std::string body;         // empty when ReadOptions::body_sink took it
  uint64_t body_bytes = 0;  // body length, stored or not

  // The first field named `name` (case-insensitive), or "" if none.
  std::string Header(absl::string_view name) const;
  bool HasHeader(absl::string_view name) const;
  int HeaderCount(absl::string_view name) const;
  // "Connection: close" was sent.
  bool Closes() const;
};

struct ReadOptions {
  // The request was HEAD: the response has no body whatever its fields say.
  bool head = false;
  // When set, body bytes go here as they arrive instead of into `body`
  // (large files).  May block or sleep: that is how a test reads slowly.
  std::function<void(absl::string_view)> body_sink;
};

struct ConnectOptions {
  // SO_RCVBUF, set before connect() so the advertised window is small too
  // (0: the kernel's default).  A small buffer makes the server wait on the
  // client, for slow-reader tests.
  int receive_buffer = 0;
};

class HttpClient final {
 public:
  // Under TSan a loaded server can pause for seconds; nothing in these tests
  // legitimately waits this long.
  static constexpr absl::Duration kDefaultTimeout = absl::Seconds(30);

  // `address` is a numeric IPv4 or IPv6 address.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Connect(
      const std::string& address, int port,
      const ConnectOptions& options = ConnectOptions());

  // A request head: "METHOD TARGET HTTP/1.1", "Host: 127.0.0.1", then
  // `extra_headers` (each line ending in "\r\n"), then the empty line.
  static std::string Request(absl::string_view method, absl::string_view target,
                             absl::string_view extra_headers = "");

  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  ~HttpClient();

  // How long any one wait may last without progress.
  void set_timeout(absl::Duration timeout) { timeout_ = timeout; }
  absl::Duration timeout() const { return timeout_; }

  // Writes all of `bytes`.
  absl::Status Send(absl::string_view bytes);

  // Reads one response (see ReadOptions).
  absl::StatusOr<HttpResponse> ReadResponse(const ReadOptions& options = {});

  // Reads one response per entry of `is_head`, in order (pipelining).
  absl::StatusOr<std::vector<HttpResponse>> ReadResponses(
      const std::vector<bool>& is_head);

  // Send(Request(method, target, extra_headers)) then ReadResponse().
  absl::StatusOr<HttpResponse> RoundTrip(absl::string_view method,
                                         absl::string_view target,
                                         absl::string_view extra_headers = "");
  absl::StatusOr<HttpResponse> Get(absl::string_view target,
                                   absl::string_view extra_headers = "") {
    return RoundTrip("GET", target, extra_headers);
  }

  // OK once the peer has closed (FIN or RST) with no bytes left unread;
  // FailedPrecondition if bytes arrive instead (they are kept);
  // DeadlineExceeded after `timeout`.
  absl::Status WaitForClose(absl::Duration timeout);

  // Whether any response bytes arrive within `timeout` (they are kept for
  // the next ReadResponse()).  False on timeout; an error if the peer
  // closed first (OutOfRange) or on failure.
  absl::StatusOr<bool> WaitForData(absl::Duration timeout);

  // Closes the socket now (the destructor does it otherwise).
  void Close();

  int fd() const { return fd_; }

 private:
  explicit HttpClient(int fd) : fd_(fd) {}

  // Appends what arrives to buffer_.  Returns the bytes read: 0 at EOF or
  // reset (eof_ set), or an error (DeadlineExceeded after `timeout`).
  absl::StatusOr<size_t> Fill(absl::Duration timeout);

  int fd_;
  absl::Duration timeout_ = kDefaultTimeout;
  std::string buffer_;  // received, not yet consumed
  bool eof_ = false;
};

}  // namespace testing
}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_TESTING_HTTP_CLIENT_H_
