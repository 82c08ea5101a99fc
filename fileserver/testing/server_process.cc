#include "fileserver/testing/server_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

extern char** environ;

namespace kqio {
namespace fileserver {
namespace testing {
namespace {

constexpr absl::string_view kServingPrefix = "kqio_fileserver: serving";
constexpr size_t kDiagnosticsTail = 4096;

absl::Status ErrnoError(absl::string_view op, int error) {
  return absl::InternalError(absl::StrCat(op, ": ", strerror(error)));
}

// The first complete line of `out` that starts with kServingPrefix, or "".
absl::string_view FindServingLine(absl::string_view out) {
  while (!out.empty()) {
    size_t eol = out.find('\n');
    if (eol == absl::string_view::npos) return "";
    absl::string_view line = out.substr(0, eol);
    if (absl::StartsWith(line, kServingPrefix)) return line;
    out.remove_prefix(eol + 1);
  }
  return "";
}

// The port of the first "http://HOST:PORT/" in `line` (HOST may be
// "[::1]"), or 0.
int ParsePort(absl::string_view line) {
  size_t url = line.find("http://");
  if (url == absl::string_view::npos) return 0;
  absl::string_view rest = line.substr(url);
  rest = rest.substr(0, rest.find(' '));
  if (!absl::EndsWith(rest, "/")) return 0;
  rest.remove_suffix(1);
  size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos) return 0;
  int port = 0;
  if (!absl::SimpleAtoi(rest.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return 0;
  }
  return port;
}

std::string Tail(const std::string& s) {
  if (s.size() <= kDiagnosticsTail) return s;
  return absl::StrCat("[...]", s.substr(s.size() - kDiagnosticsTail));
}

}  // namespace

std::string ServerProcess::BinaryPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/",
                      workspace != nullptr ? workspace : "kqio",
                      "/fileserver/kqio_fileserver");
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Spawn(
    std::vector<std::string> flags) {
  bool has_port = false;
  for (const std::string& flag : flags) {
    has_port |= absl::StartsWith(flag, "--port=");
  }
  if (!has_port) flags.push_back("--port=0");
  std::vector<std::string> args = {BinaryPath()};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(&arg[0]);
  argv.push_back(nullptr);

  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return ErrnoError("pipe2", errno);
  if (pipe2(err, O_CLOEXEC) != 0) {
    int error = errno;
    close(out[0]);
    close(out[1]);
    return ErrnoError("pipe2", error);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  pid_t pid = 0;
  int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  if (error != 0) {
    close(out[0]);
    close(err[0]);
    return ErrnoError(absl::StrCat("posix_spawn ", args[0]), error);
  }
  return std::unique_ptr<ServerProcess>(
      new ServerProcess(pid, absl::StrJoin(args, " "), out[0], err[0]));
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    std::vector<std::string> flags, absl::Duration timeout) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = Spawn(std::move(flags));
  if (!server.ok()) return server.status();
  absl::Status status = (*server)->WaitForServing(timeout);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat(status.message(), "\n",
                                                    (*server)->Diagnostics()));
  }
  return server;
}

ServerProcess::ServerProcess(pid_t pid, std::string command, int stdout_fd,
                             int stderr_fd)
    : pid_(pid), command_(std::move(command)) {
  int stop[2];
  if (pipe2(stop, O_CLOEXEC) == 0) {
    stop_read_fd_ = stop[0];
    stop_write_fd_ = stop[1];
  }
  reader_ = std::thread([this, stdout_fd, stderr_fd] {
    ReadOutput(stdout_fd, stderr_fd);
  });
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (stop_write_fd_ >= 0) close(stop_write_fd_);
  reader_.join();
  if (stop_read_fd_ >= 0) close(stop_read_fd_);
}

void ServerProcess::ReadOutput(int stdout_fd, int stderr_fd) {
  int fds[2] = {stdout_fd, stderr_fd};
  char buffer[16384];
  while (fds[0] >= 0 || fds[1] >= 0) {
    pollfd polls[3] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0},
                       {stop_read_fd_, POLLIN, 0}};
    if (poll(polls, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (polls[2].revents != 0) break;  // the destructor: stop now
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || polls[i].revents == 0) continue;
      ssize_t n = read(fds[i], buffer, sizeof(buffer));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        close(fds[i]);
        fds[i] = -1;
        continue;
      }
      absl::MutexLock lock(&mu_);
      (i == 0 ? stdout_ : stderr_).append(buffer, static_cast<size_t>(n));
    }
  }
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  absl::MutexLock lock(&mu_);
  output_closed_ = true;
}

absl::Status ServerProcess::WaitForServing(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return output_closed_ || !FindServingLine(stdout_).empty();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  absl::string_view line = FindServingLine(stdout_);
  if (line.empty()) {
    if (output_closed_) {
      return absl::FailedPreconditionError(
          "the server closed its output (exited?) before its start-up line");
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "no start-up line within ", absl::FormatDuration(timeout)));
  }
  port_ = ParsePort(line);
  serving_line_ = std::string(line);
  if (port_ == 0) {
    return absl::InternalError(
        absl::StrCat("no http://HOST:PORT/ in the start-up line: ", line));
  }
  return absl::OkStatus();
}

absl::Status ServerProcess::Signal(int signal) {
  if (pid_ <= 0) return absl::FailedPreconditionError("the server has exited");
  if (kill(pid_, signal) != 0) return ErrnoError("kill", errno);
  return absl::OkStatus();
}

absl::StatusOr<int> ServerProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("already reaped");
  // Polling: a child's exit has no descriptor to wait on portably, and a
  // few milliseconds of latency do not matter here.
  absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError("waitpid", errno);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return absl::InternalError(absl::StrCat(
          "the server was killed by signal ", WTERMSIG(status), " (",
          strsignal(WTERMSIG(status)), ")"));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the server still runs after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

std::string ServerProcess::Stdout() const {
  absl::MutexLock lock(&mu_);
  return stdout_;
}

std::string ServerProcess::Stderr() const {
  absl::MutexLock lock(&mu_);
  return stderr_;
}

std::string ServerProcess::Diagnostics() const {
  absl::MutexLock lock(&mu_);
  return absl::StrCat("command: ", command_, "\n--- server stdout ---\n",
                      Tail(stdout_), "\n--- server stderr ---\n", Tail(stderr_),
                      "\n---");
}

}  // namespace testing
}  // namespace fileserver
}  // namespace kqio
