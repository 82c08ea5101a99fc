#include "io/errno_status.h"

#include <string.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"

namespace kqio {
namespace io {
namespace {

constexpr absl::string_view kErrnoPayload = "kqio.errno";

// strerror_r comes in two flavours; these overloads take whichever the C
// library declares.
[[maybe_unused]] const char* PickMessage(int rc, const char* buf) {
  return rc == 0 ? buf : "Unknown error";
}
[[maybe_unused]] const char* PickMessage(const char* msg, const char*) {
  return msg;
}

std::string ErrnoText(int err) {
  char buf[128];
  buf[0] = '\0';
  return PickMessage(strerror_r(err, buf, sizeof(buf)), buf);
}

}  // namespace

absl::Status WithErrno(absl::Status status, int err) {
  if (!status.ok() && err != 0) {
    status.SetPayload(kErrnoPayload, absl::Cord(absl::StrCat(err)));
  }
  return status;
}

absl::Status ErrnoStatus(int err, absl::string_view op,
                         absl::string_view subject) {
  if (err == 0) return absl::OkStatus();
  std::string message =
      subject.empty()
          ? absl::StrCat(op, ": ", ErrnoText(err))
          : absl::StrCat(op, "(", subject, "): ", ErrnoText(err));
  return WithErrno(absl::Status(absl::ErrnoToStatusCode(err), message), err);
}

int StatusErrno(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrnoPayload);
  int err = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &err)) {
    return 0;
  }
  return err;
}

}  // namespace io
}  // namespace kqio
