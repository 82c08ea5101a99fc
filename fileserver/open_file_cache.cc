#include "fileserver/open_file_cache.h"

#include <errno.h>
#include <fcntl.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fileserver/http_response.h"
#include "io/errno_status.h"

namespace kqio {
namespace fileserver {
namespace {

// The server's view of an open's error (see Lookup() in the header).  The
// message and the errno are kept; only the code changes.
absl::Status Classify(const absl::Status& s) {
  const int err = io::StatusErrno(s);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return io::WithErrno(absl::NotFoundError(s.message()), err);
    case EACCES:
    case EXDEV:  // a symlink leading out of the root
    case ELOOP:  // a symlink where none may be (or a loop of them)
    case ENXIO:  // a socket
      return io::WithErrno(absl::PermissionDeniedError(s.message()), err);
    default:
      return s;
  }
}

bool Cacheable(const absl::Status& s) {
  return absl::IsNotFound(s) || absl::IsPermissionDenied(s);
}

int64_t Nanoseconds(const struct timespec& ts) {
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

OpenFileCache::OpenFileCache(io::IoService& service, aio::FileService& files,
                             int root_fd, OpenFileCacheOptions o)
    : service_(service),
      files_(files),
      root_fd_(root_fd),
      options_(o),
      alive_(std::make_shared<OpenFileCache*>(this)) {}

OpenFileCache::~OpenFileCache() {
  *alive_ = nullptr;
  // Opens still in flight complete into nothing: the File in their result
  // is closed by aio as it is dropped.
  for (auto& [key, p] : pending_) {
    absl::Status cancelled = io::WithErrno(
        absl::CancelledError(absl::StrCat(
            "open(", key, "): cancelled: the open file cache was destroyed")),
        ECANCELED);
    for (Callback& cb : p->waiters) {
      service_.Post(
          [cb = std::move(cb), cancelled]() mutable { cb(Result(cancelled)); });
    }
  }
}

void OpenFileCache::Lookup(const std::string& relpath, Callback cb) {
  auto it = index_.find(relpath);
  if (it != index_.end()) {
    Entry& e = *it->second;
    if (now_() < e.expires) {
      stats_.hits.Add();
      lru_.splice(lru_.begin(), lru_, it->second);
      service_.Post([cb = std::move(cb), value = e.value]() mutable {
        cb(std::move(value));
      });
      return;
    }
    // Stale: re-opened below.  Responses holding the old CachedFile keep
    // it (and its descriptor) until they finish.
    stats_.expired.Add();
    lru_.erase(it->second);
    index_.erase(it);
    SetEntriesGauge();
  }
  auto pending = pending_.find(relpath);
  if (pending != pending_.end()) {
    stats_.coalesced.Add();
    pending->second->waiters.push_back(std::move(cb));
    return;
  }
  stats_.misses.Add();
  auto p = std::make_unique<Pending>();
  p->key = relpath;
  p->started = now_();
  p->waiters.push_back(std::move(cb));
  Pending& ref = *p;
  pending_.emplace(relpath, std::move(p));
  Start(ref);
}

// A Pending lives in pending_ until Finish(), which only its own chain of
// callbacks calls, so the reference they capture stays valid while the
// cache does.
void OpenFileCache::Start(Pending& p) {
  aio::OpenAtOptions at;
  at.beneath = true;
  at.no_symlinks = options_.no_symlinks;
  // O_NOCTTY: a terminal device in the tree must not become ours.
  files_.OpenAt(root_fd_, p.key, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0, at,
                [alive = alive_, p = &p](absl::StatusOr<aio::File> f) {
                  if (*alive != nullptr) (*alive)->OnOpened(*p, std::move(f));
                });
}

void OpenFileCache::OnOpened(Pending& p, absl::StatusOr<aio::File> file) {
  if (!file.ok()) {
    Finish(p, Classify(file.status()));
    return;
  }
  p.file = *std::move(file);
  files_.Fstat(p.file,
               [alive = alive_, p = &p](absl::StatusOr<struct stat> st) {
                 if (*alive != nullptr) (*alive)->OnStat(*p, std::move(st));
               });
}

void OpenFileCache::OnStat(Pending& p, absl::StatusOr<struct stat> st) {
  if (!st.ok()) {
    Finish(p, Classify(st.status()));
    return;
  }
  if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) {
    // Opened without blocking thanks to O_NONBLOCK, and closed unused.
    Finish(p, io::WithErrno(absl::PermissionDeniedError(absl::StrCat(
                                "open(", p.key,
                                "): neither a regular file nor a directory")),
                            EACCES));
    return;
  }
  auto cached = std::make_shared<CachedFile>();
  cached->file = std::move(p.file);
  cached->st = *st;
  const int64_t mtime_ns = Nanoseconds(st->st_mtim);
  cached->etag = MakeETag(static_cast<uint64_t>(st->st_ino),
                          static_cast<uint64_t>(st->st_size), mtime_ns);
  cached->mtime = absl::FromUnixNanos(mtime_ns);
  Finish(p, std::shared_ptr<const CachedFile>(std::move(cached)));
}

void OpenFileCache::Finish(Pending& p, Result value) {
  auto node = pending_.extract(p.key);
  std::unique_ptr<Pending> owned = std::move(node.mapped());
  // Counted from the open's start: what it saw may be that old.
  const absl::Time expires = owned->started + options_.ttl;
  if (options_.max_entries > 0 &&
      (value.ok() || (options_.cache_errors && Cacheable(value.status())))) {
    if (!value.ok()) stats_.errors_cached.Add();
    Insert(owned->key, value, expires);
  }
  // Last: a waiter may start lookups, or destroy the cache.
  std::vector<Callback> waiters = std::move(owned->waiters);
  owned.reset();
  for (size_t i = 0; i + 1 < waiters.size(); ++i) waiters[i](value);
  if (!waiters.empty()) waiters.back()(std::move(value));
}

void OpenFileCache::Insert(const std::string& key, const Result& value,
                           absl::Time expires) {
  lru_.push_front(Entry{key, value, expires});
  index_[key] = lru_.begin();
  while (lru_.size() > options_.max_entries) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
    stats_.evictions.Add();
  }
  SetEntriesGauge();
}

void OpenFileCache::SetEntriesGauge() {
  io::ServiceCounters::Counter& c = stats_.entries;
  c.Add(lru_.size() - c.Get());  // modular: also when the cache shrank
}

OpenFileCacheStats OpenFileCache::stats() const {
  OpenFileCacheStats s;
  s.hits = stats_.hits.Get();
  s.misses = stats_.misses.Get();
  s.coalesced = stats_.coalesced.Get();
  s.evictions = stats_.evictions.Get();
  s.expired = stats_.expired.Get();
  s.errors_cached = stats_.errors_cached.Get();
  s.entries = stats_.entries.Get();
  return s;
}

}  // namespace fileserver
}  // namespace kqio
