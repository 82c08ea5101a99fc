// The completion callbacks of net/.  Every operation of a socket ends in
// exactly one call of its callback, on the loop thread, never inside the call
// that started it (ARCHITECTURE.md contract 1).
#ifndef KQIO_NET_CALLBACKS_H_
#define KQIO_NET_CALLBACKS_H_

#include <cstddef>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace kqio {
namespace net {

class SocketAddress;

// Reads and writes: the status, and the bytes transferred before it (also on
// error: a WriteAll cut short by a reset reports how much the kernel took).
using IoCallback = absl::AnyInvocable<void(absl::Status status, size_t bytes)>;

// Connect: OK once connected.
using ConnectCallback = absl::AnyInvocable<void(absl::Status status)>;

// UdpSocket::ReceiveFrom: the datagram's size and sender.
using ReceiveCallback = absl::AnyInvocable<void(
    absl::Status status, size_t bytes, const SocketAddress& from)>;

}  // namespace net
}  // namespace kqio

#endif  // KQIO_NET_CALLBACKS_H_
