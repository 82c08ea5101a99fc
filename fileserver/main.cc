// kqio_fileserver: serves a directory over HTTP/1.1.
//
//   ./bazelw run //:fileserver -- --root=/srv/www --port=8080
//
// Prints one line once it listens; SIGINT or SIGTERM stops it gracefully
// (a second one aborts the responses still running); exit status 0 after a
// clean stop, 1 when it cannot start.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aio/engine.h"
#include "fileserver/server.h"
#include "io/io_service.h"
#include "net/socket_address.h"

ABSL_FLAG(std::string, root, ".", "Directory to serve.");
ABSL_FLAG(std::string, address, "127.0.0.1",
          "Address to bind (\"::1\", \"0.0.0.0\", \"::\"...).");
ABSL_FLAG(int, port, 8080, "TCP port; 0 picks a free one.");
ABSL_FLAG(int, threads, 0, "Event loops (threads); 0: one per core.");
ABSL_FLAG(int, pool_threads, 4,
          "Threads of the pool that runs blocking fallbacks.");
ABSL_FLAG(std::string, file_engine, "auto",
          "File I/O engine: auto, uring, posix or pool.");
ABSL_FLAG(int, max_connections, 10000,
          "Open connections beyond which clients get 503; 0: no limit.");
ABSL_FLAG(absl::Duration, header_timeout, absl::Seconds(10),
          "Time allowed for a request head to arrive (slowloris bound).");
ABSL_FLAG(absl::Duration, keepalive_timeout, absl::Seconds(75),
          "Idle keep-alive connections close after this.");
ABSL_FLAG(absl::Duration, send_timeout, absl::Seconds(60),
          "A response write (or body chunk) not done in this long closes "
          "the connection.");
ABSL_FLAG(absl::Duration, shutdown_timeout, absl::Seconds(30),
          "On SIGINT/SIGTERM, time given to in-flight responses.");
ABSL_FLAG(int, max_header_bytes, 16 * 1024,
          "Request header section limit (431 beyond it).");
ABSL_FLAG(int, max_target_bytes, 8 * 1024,
          "Request target limit (414 beyond it).");
ABSL_FLAG(bool, directory_listing, false,
          "List directories that have no index.html.");
ABSL_FLAG(bool, dot_files, false, "Serve names starting with '.'.");
ABSL_FLAG(std::string, metrics_path, "",
          "Path answered with Prometheus metrics, e.g. /-/metrics; empty: "
          "off.");
ABSL_FLAG(std::string, access_log, "",
          "Access log file, \"-\" for stdout; empty: off.");
ABSL_FLAG(int, open_file_cache_entries, 1024,
          "Open file descriptors cached per loop; 0: no cache.");
ABSL_FLAG(absl::Duration, open_file_cache_ttl, absl::Seconds(5),
          "Cached descriptors are re-opened after this.");
ABSL_FLAG(int64_t, sendfile_min_bytes, 64 * 1024,
          "Bodies at least this long go out with sendfile when cached.");
ABSL_FLAG(int64_t, body_chunk_bytes, 256 * 1024,
          "Large bodies go out in chunks of this many bytes (one sendfile or "
          "aio read each), so one download cannot hold the loop.");

namespace {

using kqio::fileserver::FileServer;
using kqio::fileserver::ServerOptions;

// `bazel run` starts programs in their runfiles tree and says where the
// user was in BUILD_WORKING_DIRECTORY: relative paths are taken from there,
// so that `./bazelw run //:fileserver` serves the directory it is run in.
std::string FromUserDirectory(std::string path) {
  const char* dir = getenv("BUILD_WORKING_DIRECTORY");
  if (dir == nullptr || *dir == '\0' || path.empty() || path[0] == '/' ||
      path == "-") {
    return path;
  }
  return absl::StrCat(dir, "/", path);
}

absl::StatusOr<ServerOptions> OptionsFromFlags() {
  ServerOptions o;
  o.root = FromUserDirectory(absl::GetFlag(FLAGS_root));
  int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--port: ", port));
  }
  auto address = kqio::net::SocketAddress::Parse(
      absl::GetFlag(FLAGS_address), static_cast<uint16_t>(port));
  if (!address.ok()) return address.status();
  o.address = *address;
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) {
    threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
  }
  o.threads = threads;
  o.pool_threads = absl::GetFlag(FLAGS_pool_threads);
  const std::string engine = absl::GetFlag(FLAGS_file_engine);
  if (engine == "auto") {
    o.file_engine = kqio::aio::EngineKind::kAuto;
  } else if (engine == "uring") {
    o.file_engine = kqio::aio::EngineKind::kUring;
  } else if (engine == "posix") {
    o.file_engine = kqio::aio::EngineKind::kPosix;
  } else if (engine == "pool") {
    o.file_engine = kqio::aio::EngineKind::kPool;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--file_engine: \"", engine,
                     "\" is not auto, uring, posix or pool"));
  }
  int max_conn = absl::GetFlag(FLAGS_max_connections);
  int header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  int target_bytes = absl::GetFlag(FLAGS_max_target_bytes);
  int cache_entries = absl::GetFlag(FLAGS_open_file_cache_entries);
  int64_t sendfile_min = absl::GetFlag(FLAGS_sendfile_min_bytes);
  int64_t body_chunk = absl::GetFlag(FLAGS_body_chunk_bytes);
  if (max_conn < 0 || header_bytes <= 0 || target_bytes <= 0 ||
      cache_entries < 0 || sendfile_min < 0 || o.pool_threads <= 0 ||
      body_chunk <= 0) {
    return absl::InvalidArgumentError(
        "limits must be positive (--max_connections, --open_file_cache_"
        "entries and --sendfile_min_bytes may be 0)");
  }
  o.max_connections = static_cast<size_t>(max_conn);
  o.header_timeout = absl::GetFlag(FLAGS_header_timeout);
  o.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  o.send_timeout = absl::GetFlag(FLAGS_send_timeout);
  o.shutdown_timeout = absl::GetFlag(FLAGS_shutdown_timeout);
  for (absl::Duration d : {o.header_timeout, o.keepalive_timeout,
                           o.send_timeout}) {
    if (d <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError("timeouts must be positive");
    }
  }
  o.parser.max_header_bytes = static_cast<size_t>(header_bytes);
  o.parser.max_target_bytes = static_cast<size_t>(target_bytes);
  o.directory_listing = absl::GetFlag(FLAGS_directory_listing);
  o.dot_files = absl::GetFlag(FLAGS_dot_files);
  o.metrics_path = absl::GetFlag(FLAGS_metrics_path);
  if (!o.metrics_path.empty() && o.metrics_path.front() != '/') {
    return absl::InvalidArgumentError("--metrics_path must start with '/'");
  }
  o.access_log = FromUserDirectory(absl::GetFlag(FLAGS_access_log));
  o.open_file_cache.max_entries = static_cast<size_t>(cache_entries);
  o.open_file_cache.ttl = absl::GetFlag(FLAGS_open_file_cache_ttl);
  o.sendfile_min_bytes = static_cast<uint64_t>(sendfile_min);
  o.body_chunk_bytes = static_cast<size_t>(body_chunk);
  o.handle_signals = true;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves a directory over HTTP/1.1 on kqio.\n"
      "  kqio_fileserver --root=DIR [--port=8080] [--address=127.0.0.1]");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil is built without NDEBUG: its Mutex deadlock detector
  // takes a global lock on every acquisition.  The server's locks are
  // simple and tested; do not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Before any thread: the loops take these through EVFILT_SIGNAL.
  if (absl::Status s = kqio::io::BlockSignals({SIGINT, SIGTERM, SIGPIPE});
      !s.ok()) {
    std::cerr << "kqio_fileserver: " << s << "\n";
    return 1;
  }
  absl::StatusOr<ServerOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    std::cerr << "kqio_fileserver: " << options.status().message() << "\n";
    return 1;
  }
  auto server = FileServer::Create(*std::move(options));
  if (!server.ok()) {
    std::cerr << "kqio_fileserver: " << server.status().message() << "\n";
    return 1;
  }
  std::cout << (*server)->StartupLine() << std::endl;
  (*server)->Start();
  (*server)->Wait();
  std::cout << "kqio_fileserver: stopped" << std::endl;
  return 0;
}
