#include "io/errno_status.h"

#include <errno.h>

#include "gtest/gtest.h"

namespace kqio {
namespace io {
namespace {

TEST(ErrnoStatusTest, ZeroIsOk) { EXPECT_TRUE(ErrnoStatus(0, "open").ok()); }

TEST(ErrnoStatusTest, MessageNamesOperationSubjectAndError) {
  absl::Status s = ErrnoStatus(ENOENT, "open", "www/a.html");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "open(www/a.html): No such file or directory");
  EXPECT_EQ(StatusErrno(s), ENOENT);
}

TEST(ErrnoStatusTest, WithoutSubject) {
  absl::Status s = ErrnoStatus(ECONNREFUSED, "connect");
  EXPECT_EQ(s.message(), "connect: Connection refused");
  EXPECT_EQ(StatusErrno(s), ECONNREFUSED);
}

TEST(ErrnoStatusTest, CodesFollowAbseilsMapping) {
  EXPECT_EQ(ErrnoStatus(EACCES, "open").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(ECANCELED, "read").code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(ErrnoStatus(EMFILE, "accept").code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ErrnoStatusTest, OtherStatusesHaveNoErrno) {
  EXPECT_EQ(StatusErrno(absl::OkStatus()), 0);
  EXPECT_EQ(StatusErrno(absl::InternalError("x")), 0);
  EXPECT_EQ(StatusErrno(WithErrno(absl::CancelledError("closed"), ECANCELED)),
            ECANCELED);
  EXPECT_TRUE(WithErrno(absl::OkStatus(), EIO).ok());
}

TEST(ErrnoStatusTest, UnknownErrnoStillFormats) {
  absl::Status s = ErrnoStatus(123456, "ioctl");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(StatusErrno(s), 123456);
}

}  // namespace
}  // namespace io
}  // namespace kqio
