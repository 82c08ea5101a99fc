// The few socket calls that differ between Linux and the BSDs, behind one
// interface (STYLE.md habit 3).  platform_linux.cc and platform_bsd.cc define
// the same functions in the same order; each compiles to nothing elsewhere.
//
// Every function returns -1 (or an error code) with errno set like the system
// call it wraps, and is thread-safe as that call is.  Nothing here blocks on
// disk except where noted.
#ifndef KQIO_NET_INTERNAL_PLATFORM_H_
#define KQIO_NET_INTERNAL_PLATFORM_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace kqio {
namespace net {
namespace internal {

// socket() whose descriptor is non-blocking and close-on-exec, and never
// raises SIGPIPE where the platform has a per-socket switch (SO_NOSIGPIPE).
int OpenSocket(int family, int type, int protocol);

// accept() returning a descriptor set up like OpenSocket's: accept4() with
// SOCK_NONBLOCK | SOCK_CLOEXEC where it exists, accept() + fcntl() elsewhere.
int AcceptSocket(int listen_fd, struct sockaddr* addr, socklen_t* len);

// Sets up a descriptor the caller did not create (Adopt): non-blocking,
// close-on-exec, SO_NOSIGPIPE.  0 or -1.
int PrepareSocket(int fd);

// Flags for send()/sendmsg() so that writing to a reset connection returns
// EPIPE instead of killing the process: MSG_NOSIGNAL where it exists (the
// BSDs rely on SO_NOSIGPIPE, set above).
int NoSigPipeFlags();

// One kernel file-to-socket copy of up to `length` bytes of `file_fd` from
// `offset` into the non-blocking socket `sock_fd`.
struct SendFileResult {
  size_t sent = 0;  // bytes the kernel took, even when `error` != 0
  // 0: done or the file ended (sent == 0 then means end of file);
  // EAGAIN: the socket is full;
  // EBUSY: `no_disk_io` was asked and the data is not in memory (FreeBSD's
  //        SF_NODISKIO): warm the range on the pool, then call again;
  // ENOSYS / EINVAL / EOPNOTSUPP: no kernel path for this pair (use the
  //        read + write fallback); anything else: a real error.
  int error = 0;
};
// Linux: sendfile(2), which may wait for the disk (there is no non-blocking
// variant); SIGPIPE is blocked around the call and a pending one consumed.
// FreeBSD: sendfile(2) with SF_NODISKIO when `no_disk_io`.  macOS: sendfile(2)
// (it does not wait for the disk per call in a way we can avoid).  Others:
// ENOSYS.
SendFileResult KernelSendFile(int sock_fd, int file_fd, int64_t offset,
                              size_t length, bool no_disk_io);
// Whether KernelSendFile(no_disk_io = true) can answer EBUSY instead of
// waiting for the disk (FreeBSD only).
bool KernelSendFileCanAvoidDisk();

}  // namespace internal
}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_INTERNAL_PLATFORM_H_
