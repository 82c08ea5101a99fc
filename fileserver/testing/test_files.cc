#include "fileserver/testing/test_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kqio {
namespace fileserver {
namespace testing {
namespace {

absl::Status ErrnoError(absl::string_view op, absl::string_view path) {
  return absl::InternalError(absl::StrCat(op, " ", path, ": ", strerror(errno)));
}

// SplitMix64's output function: consecutive inputs give unrelated words, so
// a block sent at the wrong offset never matches by accident.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

absl::Status WriteAll(int fd, const char* data, size_t size,
                      const std::string& path) {
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError("write", path);
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix) {
  const char* base = getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp",
                                  "/", prefix, "XXXXXX");
  if (mkdtemp(&tmpl[0]) == nullptr) return ErrnoError("mkdtemp", tmpl);
  char resolved[PATH_MAX];
  if (realpath(tmpl.c_str(), resolved) == nullptr) {
    return ErrnoError("realpath", tmpl);
  }
  return std::string(resolved);
}

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open", path);
  absl::Status status = WriteAll(fd, contents.data(), contents.size(), path);
  if (close(fd) != 0 && status.ok()) status = ErrnoError("close", path);
  return status;
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0) return ErrnoError("mkdir", path);
  return absl::OkStatus();
}

absl::Status MakeSymlink(const std::string& target, const std::string& path) {
  if (symlink(target.c_str(), path.c_str()) != 0) {
    return ErrnoError(absl::StrCat("symlink ", target, " at"), path);
  }
  return absl::OkStatus();
}

char PatternByte(uint64_t offset) {
  return static_cast<char>(Mix(offset / 8) >> (8 * (offset % 8)));
}

absl::Status WritePatternFile(const std::string& path, uint64_t size) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open", path);
  constexpr size_t kBlock = 1 << 20;  // a multiple of 8: blocks stay aligned
  std::vector<char> block(kBlock);
  absl::Status status;
  for (uint64_t offset = 0; offset < size && status.ok(); offset += kBlock) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kBlock, size - offset));
    for (size_t word = 0; word < kBlock / 8; ++word) {
      uint64_t x = Mix(offset / 8 + word);
      for (int b = 0; b < 8; ++b) block[word * 8 + b] = static_cast<char>(x >> (8 * b));
    }
    status = WriteAll(fd, block.data(), n, path);
  }
  if (close(fd) != 0 && status.ok()) status = ErrnoError("close", path);
  return status;
}

PatternVerifier::PatternVerifier(uint64_t start_offset) : start_(start_offset) {}

void PatternVerifier::Feed(absl::string_view bytes) {
  if (!mismatch_) {
    uint64_t offset = start_ + bytes_;
    size_t i = 0;
    // Byte by byte up to a word boundary, then a word at a time.
    for (; i < bytes.size() && (offset + i) % 8 != 0; ++i) {
      if (bytes[i] != PatternByte(offset + i)) break;
    }
    if (i < bytes.size() && (offset + i) % 8 == 0) {
      for (; i + 8 <= bytes.size(); i += 8) {
        uint64_t x = Mix((offset + i) / 8);
        bool same = true;
        for (int b = 0; b < 8; ++b) {
          same &= bytes[i + b] == static_cast<char>(x >> (8 * b));
        }
        if (!same) break;
      }
      for (; i < bytes.size(); ++i) {
        if (bytes[i] != PatternByte(offset + i)) break;
      }
    }
    if (i < bytes.size()) {
      mismatch_ = true;
      first_mismatch_ = offset + i;
    }
  }
  bytes_ += bytes.size();
}

absl::Status PatternVerifier::Check(uint64_t expected_bytes) const {
  if (mismatch_) {
    return absl::DataLossError(
        absl::StrCat("body differs from the file at offset ", first_mismatch_));
  }
  if (bytes_ != expected_bytes) {
    return absl::DataLossError(absl::StrCat("body has ", bytes_,
                                            " bytes, expected ", expected_bytes));
  }
  return absl::OkStatus();
}

}  // namespace testing
}  // namespace fileserver
}  // namespace kqio
