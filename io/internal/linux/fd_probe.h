// Questions the Linux kqueue asks the kernel about a watched descriptor to
// fill in `data` and `fflags` the way FreeBSD does: bytes readable, pending
// connections, free space for writes, the pending socket error.
#ifndef KQIO_IO_INTERNAL_LINUX_FD_PROBE_H_
#define KQIO_IO_INTERNAL_LINUX_FD_PROBE_H_

#include <cstdint>

#include "io/internal/linux/knote.h"

namespace kqio::kq_internal {

// Classifies `fd` with fstat(); returns 0 or an errno (EBADF).
int ProbeKind(int fd, FdEntry& entry);

// Bytes that a read would return now; for a listening socket, the number of
// connections waiting in its accept queue.  May reclassify a socket as
// listening (a socket registered before listen() becomes one later).
int64_t ReadableBytes(int fd, FdEntry& entry);

// Free space in the send buffer (sockets) or pipe; 0 where it has no meaning.
int64_t WritableSpace(int fd, const FdEntry& entry);

// The pending socket error (SO_ERROR, which clears it in the kernel), or 0.
int TakeSocketError(int fd);

// For non-pollable descriptors: distance from the file offset to the end of
// the file, and whether `fd` still names the file that was registered.
int64_t BytesToEndOfFile(int fd);
bool SameFile(int fd, const FdEntry& entry);

}  // namespace kqio::kq_internal

#endif  // KQIO_IO_INTERNAL_LINUX_FD_PROBE_H_
