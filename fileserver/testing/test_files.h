// Files for the file server's end-to-end tests: a scratch root under
// $TEST_TMPDIR, and large files whose every byte a client can check without
// holding a copy.
//
// Pattern files hold a deterministic byte sequence (byte i depends only on
// i), so a response body, or any range of one, is verified as it streams in
// with PatternVerifier: a wrong, missing, duplicated or reordered block is
// found at its offset.
//
// Free functions are thread-safe.  PatternVerifier is not (one per body).
#ifndef KQIO_FILESERVER_TESTING_TEST_FILES_H_
#define KQIO_FILESERVER_TESTING_TEST_FILES_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kqio {
namespace fileserver {
namespace testing {

// A new empty directory under $TEST_TMPDIR (or /tmp), named after `prefix`.
// Its absolute path, with symlinks resolved, as the server prints its root.
absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix);

// Creates or truncates `path` with `contents`.
absl::Status WriteFile(const std::string& path, absl::string_view contents);

absl::Status MakeDir(const std::string& path);

// A symlink at `path` whose text is `target` (relative or absolute).
absl::Status MakeSymlink(const std::string& target, const std::string& path);

// Byte `offset` of every pattern file.
char PatternByte(uint64_t offset);

// Writes `size` pattern bytes to `path`: real blocks, not a sparse file, so
// the server's reads and sendfile go through the page cache as for any file.
absl::Status WritePatternFile(const std::string& path, uint64_t size);

// Checks bytes as they arrive against the pattern, starting at a file
// offset (a range's first byte).  Remembers the first mismatch.
class PatternVerifier final {
 public:
  explicit PatternVerifier(uint64_t start_offset = 0);

  // The next bytes of the body.
  void Feed(absl::string_view bytes);

  // Bytes fed so far.
  uint64_t bytes() const { return bytes_; }
  // OK if every byte matched and exactly `expected_bytes` were fed.
  absl::Status Check(uint64_t expected_bytes) const;

 private:
  const uint64_t start_;
  uint64_t bytes_ = 0;
  bool mismatch_ = false;
  uint64_t first_mismatch_ = 0;  // file offset
};

}  // namespace testing
}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_TESTING_TEST_FILES_H_
