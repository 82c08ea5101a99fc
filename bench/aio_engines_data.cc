// bench/aio_engines_data.h.
#include "bench/aio_engines_data.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kqio {
namespace bench {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const char* p, size_t n,
                      const std::string& path) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Errno("write(" + path + ")");
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

// Reads `path` through the page cache (to make it hot), or drops its clean
// pages (to make it cold).
void ReadThrough(const std::string& path, std::vector<char>& buf) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  while (read(fd, buf.data(), buf.size()) > 0) {
  }
  close(fd);
}

void Evict(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

// O_DIRECT open and one aligned 4 KiB read.
bool DirectWorks(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return false;
  void* p = nullptr;
  bool ok = false;
  if (posix_memalign(&p, 4096, 4096) == 0) {
    ok = pread(fd, p, 4096, 0) == 4096;
    std::free(p);
  }
  close(fd);
  return ok;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TestData>> TestData::Create(
    const DataOptions& options) {
  std::unique_ptr<TestData> t(new TestData());
  t->keep_ = options.keep;
  std::string dir = absl::StrCat(options.dir, "/kqio_aio_engines.", getpid());
  if (mkdir(dir.c_str(), 0700) != 0) return Errno("mkdir(" + dir + ")");
  t->dir_ = dir;
  if (options.existing_file.empty()) {
    t->data_.big_path = dir + "/big";
    t->owns_big_ = true;
    absl::Status s = t->WriteBig(options.file_bytes);
    if (!s.ok()) return s;
  } else {
    struct stat st;
    if (stat(options.existing_file.c_str(), &st) != 0) {
      return Errno("stat(" + options.existing_file + ")");
    }
    if (st.st_size < (128 << 10)) {
      return absl::InvalidArgumentError(options.existing_file +
                                        ": smaller than 128 KiB");
    }
    t->data_.big_path = options.existing_file;
    t->data_.big_bytes = static_cast<uint64_t>(st.st_size);
  }
  if (options.small_files > 0) {
    absl::Status s = t->WriteSmall(options.small_files);
    if (!s.ok()) return s;
  }
  t->data_.direct_ok = DirectWorks(t->data_.big_path);
  return t;
}

absl::Status TestData::WriteBig(uint64_t bytes) {
  const std::string& path = data_.big_path;
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open(" + path + ")");
  std::vector<char> chunk(1 << 20);
  for (size_t i = 0; i < chunk.size(); ++i) {
    chunk[i] = static_cast<char>(i * 7 + i / 4096);
  }
  absl::Status s;
  for (uint64_t done = 0; done < bytes && s.ok(); done += chunk.size()) {
    s = WriteAll(fd, chunk.data(), chunk.size(), path);
  }
  if (s.ok() && fdatasync(fd) != 0) s = Errno("fdatasync(" + path + ")");
  close(fd);
  data_.big_bytes = bytes / chunk.size() * chunk.size();
  return s;
}

absl::Status TestData::WriteSmall(int count) {
  const std::string sub = dir_ + "/small";
  if (mkdir(sub.c_str(), 0700) != 0) return Errno("mkdir(" + sub + ")");
  std::vector<char> chunk(64 << 10, 'k');
  uint64_t state = 12345;
  for (int i = 0; i < count; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const size_t size = 1024 + (state >> 33) % (63 * 1024 + 1);
    const std::string path = absl::StrFormat("%s/f%05d", sub, i);
    const int fd =
        open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Errno("open(" + path + ")");
    data_.small_paths.push_back(path);
    absl::Status s = WriteAll(fd, chunk.data(), size, path);
    close(fd);
    if (!s.ok()) return s;
    data_.small_bytes += size;
  }
  // One flush of the file system for all of them.
  const int dfd = open(sub.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    syncfs(dfd);
    close(dfd);
  }
  return absl::OkStatus();
}

TestData::~TestData() {
  if (keep_ || dir_.empty()) return;
  for (const std::string& p : data_.small_paths) unlink(p.c_str());
  rmdir((dir_ + "/small").c_str());
  if (owns_big_) unlink(data_.big_path.c_str());
  rmdir(dir_.c_str());
}

std::string TestData::Describe() const {
  return absl::StrFormat(
      "data: %s (%.0f MiB), %d small files (%.0f MiB) in %s; cold cells: %s",
      data_.big_path, data_.big_bytes / 1048576.0,
      static_cast<int>(data_.small_paths.size()), data_.small_bytes / 1048576.0,
      dir_,
      data_.direct_ok ? "O_DIRECT (big file), fadvise(DONTNEED) (small files)"
                      : "fadvise(DONTNEED) (O_DIRECT not available)");
}

void TestData::Prepare(Workload workload, Cache cache) {
  std::vector<char> buf(1 << 20);
  if (workload == Workload::kSmallFiles) {
    for (const std::string& p : data_.small_paths) {
      if (cache == Cache::kHot) {
        ReadThrough(p, buf);
      } else {
        Evict(p);
      }
    }
    return;
  }
  if (cache == Cache::kHot) {
    ReadThrough(data_.big_path, buf);
  } else if (!data_.direct_ok) {
    Evict(data_.big_path);
  }
}

}  // namespace bench
}  // namespace kqio
