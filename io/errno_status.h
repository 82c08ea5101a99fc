// errno -> absl::Status, in one place (STYLE.md habit 5).
//
// Every kqio error that comes from a system call goes through ErrnoStatus(),
// so that messages read the same everywhere ("open(www/a.html): No such
// file or directory") and the errno itself survives as a payload: a caller
// that must branch on EAGAIN versus ENOSYS (the AIO fallback ladder) or
// print the errno asks StatusErrno() instead of parsing text.
//
// Thread-safe (pure functions; strerror_r is used, never strerror).
#ifndef KQIO_IO_ERRNO_STATUS_H_
#define KQIO_IO_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kqio {
namespace io {

// A Status whose code is absl::ErrnoToStatusCode(err) and whose message is
// "<op>(<subject>): <strerror>", or "<op>: <strerror>" when `subject` is
// empty.  `op` names the call ("open", "connect"), `subject` what it was
// applied to (a path, an address, "fd 7").  err == 0 gives OkStatus().
absl::Status ErrnoStatus(int err, absl::string_view op,
                         absl::string_view subject = {});

// The errno carried by a Status made by ErrnoStatus(), or 0 if it has none
// (OK, or an error made elsewhere).
int StatusErrno(const absl::Status& status);

// Adds an errno payload to any Status (used for errors that are not the
// result of a system call but must still answer StatusErrno(), e.g. a
// cancellation reported as ECANCELED).
absl::Status WithErrno(absl::Status status, int err);

}  // namespace io
}  // namespace kqio

#endif  // KQIO_IO_ERRNO_STATUS_H_
