#include "fileserver/testing/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kqio {
namespace fileserver {
namespace testing {
namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kReadChunk = 64 * 1024;

absl::Status ErrnoError(absl::string_view op, int error) {
  return absl::InternalError(absl::StrCat(op, ": ", strerror(error)));
}

int PollMillis(absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) return 0;
  int64_t ms = absl::ToInt64Milliseconds(timeout + absl::Microseconds(999));
  return static_cast<int>(std::min<int64_t>(ms, 1 << 30));
}

// Waits for `events` on `fd`.  OK, DeadlineExceeded, or Internal.
absl::Status PollFor(int fd, int16_t events, absl::Duration timeout,
                     absl::string_view what) {
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    pollfd p = {fd, events, 0};
    int r = poll(&p, 1, PollMillis(deadline - absl::Now()));
    if (r > 0) return absl::OkStatus();
    if (r < 0 && errno != EINTR) return ErrnoError("poll", errno);
    if (r == 0 && absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "nothing happened within ", absl::FormatDuration(timeout), " while ",
          what));
    }
  }
}

bool IsStatusWithoutBody(int status) {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

}  // namespace

std::string HttpResponse::Header(absl::string_view name) const {
  for (const auto& field : headers) {
    if (absl::EqualsIgnoreCase(field.first, name)) return field.second;
  }
  return "";
}

bool HttpResponse::HasHeader(absl::string_view name) const {
  return HeaderCount(name) > 0;
}

int HttpResponse::HeaderCount(absl::string_view name) const {
  int count = 0;
  for (const auto& field : headers) {
    count += absl::EqualsIgnoreCase(field.first, name) ? 1 : 0;
  }
  return count;
}

bool HttpResponse::Closes() const {
  for (const auto& field : headers) {
    if (!absl::EqualsIgnoreCase(field.first, "Connection")) continue;
    for (absl::string_view option : absl::StrSplit(field.second, ',')) {
      if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(option), "close")) {
        return true;
      }
    }
  }
  return false;
}

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Connect(
    const std::string& address, int port, const ConnectOptions& options) {
  sockaddr_storage storage = {};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(*v4);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof(*v6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("not an address: ", address));
  }
  int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket", errno);
  std::unique_ptr<HttpClient> client(new HttpClient(fd));
  int one = 1;
  // Small writes (one byte at a time for slowloris) go out as written.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (options.receive_buffer > 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options.receive_buffer,
                 sizeof(options.receive_buffer)) != 0) {
    return ErrnoError("setsockopt(SO_RCVBUF)", errno);
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    int error = errno;
    if (error != EINPROGRESS) {
      if (error == ECONNREFUSED) {
        return absl::UnavailableError(
            absl::StrCat("connect to port ", port, ": ", strerror(error)));
      }
      return ErrnoError("connect", error);
    }
    absl::Status ready = PollFor(fd, POLLOUT, client->timeout_, "connecting");
    if (!ready.ok()) return ready;
    socklen_t size = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
      return ErrnoError("getsockopt(SO_ERROR)", errno);
    }
    if (error == ECONNREFUSED) {
      return absl::UnavailableError(
          absl::StrCat("connect to port ", port, ": ", strerror(error)));
    }
    if (error != 0) return ErrnoError("connect", error);
  }
  return client;
}

std::string HttpClient::Request(absl::string_view method,
                                absl::string_view target,
                                absl::string_view extra_headers) {
  return absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                      extra_headers, "\r\n");
}

HttpClient::~HttpClient() { Close(); }

void HttpClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

absl::Status HttpClient::Send(absl::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      absl::Status ready = PollFor(fd_, POLLOUT, timeout_, "sending");
      if (!ready.ok()) return ready;
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET) {
      return absl::OutOfRangeError(
          absl::StrCat("the server closed the connection: ", strerror(errno)));
    }
    return ErrnoError("send", errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> HttpClient::Fill(absl::Duration timeout) {
  if (eof_) return 0;
  char chunk[kReadChunk];
  for (;;) {
    ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
    if (n == 0 || errno == ECONNRESET) {
      eof_ = true;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return ErrnoError("recv", errno);
    absl::Status ready = PollFor(fd_, POLLIN, timeout, "reading a response");
    if (!ready.ok()) return ready;
  }
}

absl::StatusOr<HttpResponse> HttpClient::ReadResponse(
    const ReadOptions& options) {
  // The head.
  size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (buffer_.size() > kMaxHead) {
      return absl::DataLossError("a response head over 64 KiB");
    }
    absl::StatusOr<size_t> n = Fill(timeout_);
    if (!n.ok()) return n.status();
    if (*n == 0) {
      if (buffer_.empty()) {
        return absl::OutOfRangeError("the server closed the connection");
      }
      return absl::DataLossError(absl::StrCat(
          "the server closed the connection within a response head: \"",
          absl::CEscape(buffer_), "\""));
    }
  }
  std::string head = buffer_.substr(0, head_end);
  buffer_.erase(0, head_end + 4);

  HttpResponse response;
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  std::vector<absl::string_view> status_line =
      absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (status_line.size() < 2 || !absl::StartsWith(status_line[0], "HTTP/1.") ||
      status_line[1].size() != 3 ||
      !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::DataLossError(
        absl::StrCat("a malformed status line: \"", absl::CEscape(lines[0]), "\""));
  }
  response.version = std::string(status_line[0]);
  if (status_line.size() == 3) response.reason = std::string(status_line[2]);
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::DataLossError(
          absl::StrCat("a malformed field line: \"", absl::CEscape(lines[i]), "\""));
    }
    response.headers.emplace_back(
        std::string(lines[i].substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }

  // The body's framing.
  if (options.head || IsStatusWithoutBody(response.status)) return response;
  bool until_close = false;
  uint64_t length = 0;
  if (response.HasHeader("Transfer-Encoding")) {
    return absl::DataLossError("Transfer-Encoding in a response: not expected");
  }
  if (response.HeaderCount("Content-Length") > 1) {
    return absl::DataLossError("several Content-Length fields");
  }
  if (response.HasHeader("Content-Length")) {
    std::string value = response.Header("Content-Length");
    if (value.empty() || !absl::c_all_of(value, absl::ascii_isdigit) ||
        !absl::SimpleAtoi(value, &length)) {
      return absl::DataLossError(absl::StrCat("Content-Length: ", value));
    }
  } else {
    until_close = true;
  }

  // The body.
  auto take = [&](size_t n) {
    if (options.body_sink) {
      options.body_sink(absl::string_view(buffer_.data(), n));
    } else {
      response.body.append(buffer_, 0, n);
    }
    buffer_.erase(0, n);
    response.body_bytes += n;
  };
  for (;;) {
    uint64_t wanted = until_close ? buffer_.size() : length - response.body_bytes;
    take(static_cast<size_t>(std::min<uint64_t>(wanted, buffer_.size())));
    if (!until_close && response.body_bytes == length) return response;
    absl::StatusOr<size_t> n = Fill(timeout_);
    if (!n.ok()) {
      return absl::Status(n.status().code(),
                          absl::StrCat(n.status().message(), " after ",
                                       response.body_bytes, " body bytes"));
    }
    if (*n == 0) {
      if (until_close) return response;
      return absl::DataLossError(absl::StrCat(
          "the server closed the connection after ", response.body_bytes,
          " of ", length, " body bytes"));
    }
  }
}

absl::StatusOr<std::vector<HttpResponse>> HttpClient::ReadResponses(
    const std::vector<bool>& is_head) {
  std::vector<HttpResponse> responses;
  for (bool head : is_head) {
    ReadOptions options;
    options.head = head;
    absl::StatusOr<HttpResponse> response = ReadResponse(options);
    if (!response.ok()) {
      return absl::Status(response.status().code(),
                          absl::StrCat("response ", responses.size() + 1, ": ",
                                       response.status().message()));
    }
    responses.push_back(*std::move(response));
  }
  return responses;
}

absl::StatusOr<HttpResponse> HttpClient::RoundTrip(
    absl::string_view method, absl::string_view target,
    absl::string_view extra_headers) {
  absl::Status sent = Send(Request(method, target, extra_headers));
  if (!sent.ok()) return sent;
  ReadOptions options;
  options.head = method == "HEAD";
  return ReadResponse(options);
}

absl::Status HttpClient::WaitForClose(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (buffer_.empty()) {
    absl::StatusOr<size_t> n = Fill(deadline - absl::Now());
    if (!n.ok()) return n.status();
    if (*n == 0) return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "bytes arrived instead of the close: \"",
      absl::CEscape(buffer_.substr(0, 200)), "\""));
}

absl::StatusOr<bool> HttpClient::WaitForData(absl::Duration timeout) {
  if (!buffer_.empty()) return true;
  absl::StatusOr<size_t> n = Fill(timeout);
  if (absl::IsDeadlineExceeded(n.status())) return false;
  if (!n.ok()) return n.status();
  if (*n == 0) return absl::OutOfRangeError("the server closed the connection");
  return true;
}

}  // namespace testing
}  // namespace fileserver
}  // namespace kqio
