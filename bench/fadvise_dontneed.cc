// Drops files from the page cache, or says how much of them is in it: the
// "cold" half of bench/fileserver_vs_nginx.sh's mixed workload.
//
//   fadvise_dontneed FILE...             fdatasync + POSIX_FADV_DONTNEED each
//   fadvise_dontneed --resident FILE...  prints "RESIDENT_PCT TOTAL_MIB"
//
// Dirty pages cannot be dropped, so a freshly written file is flushed first.
// --resident asks mincore(2) about a read-only mapping of each file; it
// neither reads the data nor pulls it into the cache.  The tool exists so the
// script needs no python3 on a fresh Debian; it takes no kqio code.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

void PrintErrno(const char* operation, const char* path) {
  std::fprintf(stderr, "fadvise_dontneed: %s %s: %s\n", operation, path,
               std::strerror(errno));
}

// Flushes `path` and asks the kernel to drop its cached pages.
bool DropFromCache(const char* path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    PrintErrno("open", path);
    return false;
  }
  bool ok = true;
  if (fdatasync(fd) != 0) {
    PrintErrno("fdatasync", path);
    ok = false;
  }
  // posix_fadvise returns the error instead of setting errno.
  int rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (rc != 0) {
    errno = rc;
    PrintErrno("posix_fadvise", path);
    ok = false;
  }
  close(fd);
  return ok;
}

// Adds the resident and total page counts of `path` to the two totals.
bool CountResident(const char* path, long page_size, unsigned long long* resident,
                   unsigned long long* total) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    PrintErrno("open", path);
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    PrintErrno("fstat", path);
    close(fd);
    return false;
  }
  if (st.st_size == 0) {
    close(fd);
    return true;
  }
  size_t length = static_cast<size_t>(st.st_size);
  void* map = mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);  // The mapping keeps the file.
  if (map == MAP_FAILED) {
    PrintErrno("mmap", path);
    return false;
  }
  size_t pages = (length + page_size - 1) / page_size;
  std::vector<unsigned char> vec(pages);
  bool ok = mincore(map, length, vec.data()) == 0;
  if (!ok) {
    PrintErrno("mincore", path);
  } else {
    for (unsigned char v : vec) *resident += v & 1;
    *total += pages;
  }
  munmap(map, length);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  bool report = argc > 1 && std::strcmp(argv[1], "--resident") == 0;
  int first = report ? 2 : 1;
  if (first >= argc) {
    std::fprintf(stderr, "usage: %s [--resident] FILE...\n", argv[0]);
    return 2;
  }
  long page_size = sysconf(_SC_PAGESIZE);
  unsigned long long resident = 0;
  unsigned long long total = 0;
  bool ok = true;
  for (int i = first; i < argc; ++i) {
    ok &= report ? CountResident(argv[i], page_size, &resident, &total)
                 : DropFromCache(argv[i]);
  }
  if (report) {
    double pct = total == 0 ? 0.0 : 100.0 * resident / total;
    std::printf("%.1f %.0f\n", pct,
                static_cast<double>(total) * page_size / (1 << 20));
  }
  return ok ? 0 : 1;
}
