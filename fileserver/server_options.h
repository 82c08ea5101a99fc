// What kqio_fileserver is told at start-up (fileserver/main.cc maps the
// command-line flags onto this; tests build it directly).
#ifndef KQIO_FILESERVER_SERVER_OPTIONS_H_
#define KQIO_FILESERVER_SERVER_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "aio/engine.h"
#include "fileserver/http_parser.h"
#include "fileserver/open_file_cache.h"
#include "net/socket_address.h"

namespace kqio {
namespace fileserver {

struct ServerOptions {
  // The directory served.  Opened once at start-up; requests resolve
  // beneath it (openat2 RESOLVE_BENEATH on Linux).
  std::string root = ".";
  // Every loop binds this address with SO_REUSEPORT; port 0 picks one
  // ephemeral port, shared by all loops.
  net::SocketAddress address = net::SocketAddress::Ipv4Loopback(8080);
  int threads = 1;       // loops, one io::IoService each
  int pool_threads = 4;  // the shared thread pool (blocking fallbacks)
  aio::EngineKind file_engine = aio::EngineKind::kAuto;
  // SIGINT and SIGTERM start a graceful shutdown (a second one aborts the
  // responses still running).  The caller blocks them first, in main(),
  // with io::BlockSignals({SIGINT, SIGTERM}).
  bool handle_signals = false;

  // Open connections, all loops together; beyond it a client gets 503 and
  // the connection closes.  0: no limit.
  size_t max_connections = 10000;
  // A request head must be complete this long after its first byte (or
  // after the connection opened): the slowloris bound.
  absl::Duration header_timeout = absl::Seconds(10);
  // An idle keep-alive connection closes after this.
  absl::Duration keepalive_timeout = absl::Seconds(75);
  // A response write (or one sendfile chunk) that has not completed after
  // this long closes the connection.
  absl::Duration send_timeout = absl::Seconds(60);
  // On SIGINT/SIGTERM, in-flight responses get this long to finish.
  absl::Duration shutdown_timeout = absl::Seconds(30);
  // After the last response of a closing connection, unread request bytes
  // are read and dropped for at most this long before close(), so that the
  // client gets the response rather than a reset (nginx's lingering close).
  absl::Duration linger_timeout = absl::Seconds(2);

  ParserOptions parser;
  bool directory_listing = false;
  bool dot_files = false;
  // "" (off) or a path such as "/-/metrics" answered with the counters in
  // Prometheus' text format.
  std::string metrics_path;
  // "" (off), "-" (stdout) or a file appended to; combined log format.
  std::string access_log;

  OpenFileCacheOptions open_file_cache;
  // Bodies at least this long go out with sendfile(2) when their pages are
  // cached; shorter ones (and uncached ranges) are read through aio/ and
  // written from memory.
  uint64_t sendfile_min_bytes = 64 * 1024;
  // Bytes per sendfile(2) or aio read while sending a large body; the send
  // timeout applies to each.  Each chunk is one operation of the loop, so
  // this bounds how long one download holds it (nginx's sendfile_max_chunk).
  size_t body_chunk_bytes = 256 * 1024;
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_SERVER_OPTIONS_H_
