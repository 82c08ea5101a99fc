// Options of net::StreamSocket and its SendFile (see stream_socket.h).
#ifndef KQIO_NET_STREAM_OPTIONS_H_
#define KQIO_NET_STREAM_OPTIONS_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace kqio {
namespace threadpool {
class ThreadPool;
}  // namespace threadpool

namespace net {

struct StreamOptions {
  // Bytes of Write/WriteAll operations that may be queued and not completed
  // before a new one is refused with ResourceExhausted (one write of any
  // size is accepted into an empty queue).  See "Back-pressure" in
  // stream_socket.h.
  size_t max_write_queue_bytes = 4 << 20;
};

// How StreamSocket::SendFile moves file bytes (net/internal/send_file_op.h
// has the details).
struct SendFileOptions {
  // For the read + write fallback, and for FreeBSD's SF_NODISKIO disk
  // waits.  Without a pool, SendFile fails with FailedPrecondition where the
  // kernel cannot do the copy.  Must outlive the operation.
  threadpool::ThreadPool* pool = nullptr;
  // false: always read on the pool's data lane and write from memory (what
  // a TLS layer, for one, needs).
  bool use_kernel = true;
  // Bytes read per pool task.
  size_t chunk_size = 256 * 1024;
  // Bytes sent before the file's, as part of the same operation (an HTTP
  // response head).  Not copied: must stay valid until the completion.
  // On Linux they go out with MSG_MORE, so that the head and the start of
  // the file share segments (nginx's tcp_nopush, without two setsockopt
  // calls).  The completion's byte count covers the file bytes only.
  absl::string_view header;
};

}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_STREAM_OPTIONS_H_
