// OpenFileCache: open descriptors and their stat, kept between requests
// (nginx's open_file_cache).
//
//   OpenFileCache cache(service, files, root_fd, OpenFileCacheOptions());
//   cache.Lookup(target.path, [](absl::StatusOr<
//                                 std::shared_ptr<const CachedFile>> f) {
//     if (!f.ok()) return RespondError(f.status());   // 403, 404, ...
//     Serve((*f)->fd(), (*f)->st.st_size, (*f)->etag);
//   });
//
// A miss opens the path beneath root_fd with aio::FileService::OpenAt
// (openat2 RESOLVE_BENEATH or its equivalent: no "..", absolute path or
// symlink leads out) and fstats it through aio, so neither ever runs on the
// loop.  Lookups of a path while its open is in flight wait for that open
// ("coalesced") instead of starting another.  Answers are kept, up to
// max_entries in LRU order, for `ttl`: a lookup after that re-opens the
// path, so a replaced file (new inode, new ETag) is picked up within ttl.
// NotFound and PermissionDenied are kept too (cache_errors), so a flood of
// requests for a missing file costs one open per ttl.
//
// Lifetimes.  A CachedFile is shared by the cache and every response using
// it: eviction or expiry only drops the cache's reference, and the
// descriptor is closed (through aio) when the last response lets go.
// root_fd, the IoService and the FileService must outlive the cache.
// Destroying the cache completes lookups still waiting for an open with
// Cancelled (posted to the loop), as everything in kqio does; a late open
// result is closed.
//
// Thread-safety: none; loop thread only (as the FileService it uses).
#ifndef KQIO_FILESERVER_OPEN_FILE_CACHE_H_
#define KQIO_FILESERVER_OPEN_FILE_CACHE_H_

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "aio/file_service.h"
#include "io/io_service.h"
#include "io/service_metrics.h"

namespace kqio {
namespace fileserver {

class OpenFileCacheTestPeer;

struct OpenFileCacheOptions {
  // 0: no caching (every lookup opens, still coalesced).
  size_t max_entries = 1024;
  // An entry older than this is re-opened on its next lookup.
  absl::Duration ttl = absl::Seconds(5);
  // NotFound/PermissionDenied answers are cached for ttl too.
  bool cache_errors = true;
  // aio::OpenAtOptions::no_symlinks: refuse every symlink, not only those
  // leading out of the root.
  bool no_symlinks = false;
};

// One open file (or directory) and its metadata.  Immutable; shared by the
// cache and every response using it, so eviction never closes a descriptor
// a response still sends from.
struct CachedFile {
  // O_RDONLY | O_NONBLOCK (so a FIFO cannot block the open), O_CLOEXEC
  // (and O_NOCTTY).
  aio::File file;
  struct stat st;
  std::string etag;  // MakeETag(st.st_ino, st.st_size, mtime ns)
  absl::Time mtime;
  int fd() const { return file.fd(); }
  bool is_directory() const { return S_ISDIR(st.st_mode); }
  bool is_regular() const { return S_ISREG(st.st_mode); }
};

struct OpenFileCacheStats {
  uint64_t hits = 0;           // answered from the cache (errors included)
  uint64_t misses = 0;         // started an open (expired ones included)
  uint64_t coalesced = 0;      // waited for an open already in flight
  uint64_t evictions = 0;      // dropped to stay within max_entries
  uint64_t expired = 0;        // found older than ttl, re-opened
  uint64_t errors_cached = 0;  // NotFound/PermissionDenied answers kept
  uint64_t entries = 0;        // in the cache now
};

class OpenFileCache final {
 public:
  using Callback = absl::AnyInvocable<void(
      absl::StatusOr<std::shared_ptr<const CachedFile>>)>;

  // root_fd: a directory descriptor (O_PATH | O_DIRECTORY is fine) the
  // caller keeps open; not owned.
  OpenFileCache(io::IoService& service, aio::FileService& files, int root_fd,
                OpenFileCacheOptions o);
  // Pending lookups complete with Cancelled (posted).
  ~OpenFileCache();

  OpenFileCache(const OpenFileCache&) = delete;
  OpenFileCache& operator=(const OpenFileCache&) = delete;

  // relpath: as ParseTarget() returns it ("" = the root).  Concurrent
  // lookups of one path share one open.  Errors: NotFound (ENOENT,
  // ENOTDIR), PermissionDenied (EACCES, and EXDEV/ELOOP: an escape attempt
  // through a symlink; and anything neither a regular file nor a directory:
  // FIFO, socket, device), other errors keep their errno
  // (io::StatusErrno works on all of them).  `cb` runs on the loop, exactly
  // once, never inside Lookup().
  void Lookup(const std::string& relpath, Callback cb);

  // Thread-safe (a metrics page may read another loop's cache).
  OpenFileCacheStats stats() const;

 private:
  friend class OpenFileCacheTestPeer;

  using Result = absl::StatusOr<std::shared_ptr<const CachedFile>>;
  struct Entry {
    std::string key;
    Result value;
    absl::Time expires;
  };
  using Lru = std::list<Entry>;  // most recently used first
  // An open in flight and the lookups waiting for it.
  struct Pending {
    std::string key;
    absl::Time started;
    std::vector<Callback> waiters;
    aio::File file;  // between the open and the fstat
  };

  void Start(Pending& p);
  void OnOpened(Pending& p, absl::StatusOr<aio::File> file);
  void OnStat(Pending& p, absl::StatusOr<struct stat> st);
  // Removes `p`, keeps `value` if it may be kept, and runs the waiters.
  void Finish(Pending& p, Result value);
  void Insert(const std::string& key, const Result& value, absl::Time expires);

  io::IoService& service_;
  aio::FileService& files_;
  const int root_fd_;
  const OpenFileCacheOptions options_;
  absl::AnyInvocable<absl::Time()> now_ = [] { return absl::Now(); };

  Lru lru_;
  absl::flat_hash_map<std::string, Lru::iterator> index_;
  absl::flat_hash_map<std::string, std::unique_ptr<Pending>> pending_;
  void SetEntriesGauge();

  // Written by the loop thread only; read by stats() from any thread.
  struct Counters {
    io::ServiceCounters::Counter hits, misses, coalesced, evictions, expired,
        errors_cached, entries;
  };
  Counters stats_;
  // Cleared by the destructor; aio callbacks check it.
  std::shared_ptr<OpenFileCache*> alive_;
};

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_OPEN_FILE_CACHE_H_
