// ServerProcess: the real kqio_fileserver binary, run as a child process by
// the end-to-end tests.
//
// Start() spawns the binary from the test's runfiles
// ($TEST_SRCDIR/$TEST_WORKSPACE/fileserver/kqio_fileserver) with the given
// flags, and waits for its start-up line ("kqio_fileserver: serving ... on
// http://ADDR:PORT/ ...") to learn the ephemeral port.  Both of the child's
// output streams go to pipes drained by a reader thread into memory, so the
// child never blocks on a full pipe, and Diagnostics() can show what it
// printed when an assertion fails.
//
// Ownership: the object owns the child.  The destructor SIGKILLs it if it is
// still running and reaps it, so a failed test never leaves a server behind.
//
// Thread-safety: Stdout(), Stderr() and Diagnostics() may be called from any
// thread; the other methods from one thread at a time.
#ifndef KQIO_FILESERVER_TESTING_SERVER_PROCESS_H_
#define KQIO_FILESERVER_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kqio {
namespace fileserver {
namespace testing {

class ServerProcess final {
 public:
  // Generous: under TSan the binary and its first io_uring setup are slow.
  static constexpr absl::Duration kStartTimeout = absl::Seconds(60);

  // Where the binary is in the test's runfiles.
  static std::string BinaryPath();

  // Spawns the binary with `flags` ("--name=value" each); "--port=0" is
  // added unless a --port flag is given.  Does not wait for anything.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Spawn(
      std::vector<std::string> flags);

  // Spawn(), then WaitForServing().  The error carries Diagnostics().
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      std::vector<std::string> flags, absl::Duration timeout = kStartTimeout);

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();

  // Waits until the start-up line has been printed and parses the port
  // from it.  FailedPrecondition if the child closes its output (exits)
  // first, DeadlineExceeded on timeout.
  absl::Status WaitForServing(absl::Duration timeout = kStartTimeout);

  // After WaitForServing(): the port, and the start-up line itself.
  int port() const { return port_; }
  const std::string& serving_line() const { return serving_line_; }

  // Sends `signal` to the child.
  absl::Status Signal(int signal);

  // Waits up to `timeout` for the child to exit and reaps it.  The exit
  // code when it exited; Internal if a signal killed it; DeadlineExceeded
  // if it is still running (it is left running).
  absl::StatusOr<int> Wait(absl::Duration timeout);

  // Whether the child has not been reaped yet.
  bool running() const { return pid_ > 0; }

  std::string Stdout() const;
  std::string Stderr() const;
  // The command line and the last few KiB of both streams, for failures.
  std::string Diagnostics() const;

 private:
  ServerProcess(pid_t pid, std::string command, int stdout_fd, int stderr_fd);
  void ReadOutput(int stdout_fd, int stderr_fd);

  pid_t pid_;
  const std::string command_;
  int port_ = 0;
  std::string serving_line_;
  // The read end of a pipe whose write end the destructor closes to stop
  // the reader thread even if the child's descendants keep its pipes open.
  int stop_read_fd_ = -1;
  int stop_write_fd_ = -1;

  mutable absl::Mutex mu_;
  std::string stdout_ ABSL_GUARDED_BY(mu_);
  std::string stderr_ ABSL_GUARDED_BY(mu_);
  bool output_closed_ ABSL_GUARDED_BY(mu_) = false;  // both streams at EOF

  std::thread reader_;
};

}  // namespace testing
}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_TESTING_SERVER_PROCESS_H_
