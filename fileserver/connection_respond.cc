// Connection: the responses.  Files (whole, ranges, conditional), index.html
// and listings for directories, redirects, canned errors, the metrics page.
//
// How a body goes out.  A body shorter than sendfile_min_bytes is read
// through aio/ (the page-cache fast path usually serves it on the loop
// with no hand-off) and written together with the head in one gathered
// write.  A longer one goes in chunks of body_chunk_bytes: a chunk whose
// pages the kernel holds goes out with sendfile(2); one that is not cached
// is read through aio/ (io_uring, or the pool) and written from memory, so
// the loop never waits for the disk (Linux's sendfile would block it).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fileserver/connection.h"
#include "fileserver/directory_listing.h"
#include "fileserver/page_cache.h"
#include "fileserver/worker.h"

namespace kqio {
namespace fileserver {
namespace {

absl::Time MtimeOf(const struct stat& st) {
#if defined(__APPLE__)
  return absl::TimeFromTimespec(st.st_mtimespec);
#else
  return absl::TimeFromTimespec(st.st_mtim);
#endif
}

// The entries of the directory open as `dir_fd` (not consumed), sorted by
// name; dot-files only if `dot_files`.  Runs on the pool.
absl::StatusOr<std::vector<DirectoryEntry>> ListDirectory(int dir_fd,
                                                          bool dot_files) {
  // A descriptor of our own: its directory stream position is ours alone.
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::PermissionDeniedError("opendir failed");
  DIR* dir = fdopendir(fd);
  if (dir == nullptr) {
    close(fd);
    return absl::InternalError("fdopendir failed");
  }
  std::vector<DirectoryEntry> entries;
  while (struct dirent* e = readdir(dir)) {
    absl::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    if (name.front() == '.' && !dot_files) continue;
    struct stat st;
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    // Only what the server would serve: regular files and directories.
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) continue;
    DirectoryEntry entry;
    entry.name = std::string(name);
    entry.is_directory = S_ISDIR(st.st_mode);
    entry.size = static_cast<uint64_t>(st.st_size);
    entry.modified = MtimeOf(st);
    entries.push_back(std::move(entry));
  }
  closedir(dir);
  std::sort(entries.begin(), entries.end(),
            [](const DirectoryEntry& a, const DirectoryEntry& b) {
              return a.name < b.name;
            });
  return entries;
}

// A descriptor closed when the last owner lets go, on whatever thread.
struct OwnedFd {
  explicit OwnedFd(int f) : fd(f) {}
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() {
    if (fd >= 0) close(fd);
  }
  const int fd;
};

}  // namespace

ResponseHead Connection::BaseHead(int status) {
  ResponseHead head;
  head.status = status;
  head.close = !keep_alive_;
  head.http10_keep_alive =
      keep_alive_ && request_ != nullptr && request_->version_minor == 0;
  return head;
}

void Connection::OnLookup(
    absl::StatusOr<std::shared_ptr<const CachedFile>> file) {
  if (state_ != State::kResponding) return;
  if (!file.ok()) {
    RespondError(file.status());
    return;
  }
  if ((*file)->is_directory()) {
    if (!target_.is_directory) {
      // "/docs" -> "/docs/", so that relative links in the page work.  The
      // query is kept (as nginx does).  Leading slashes collapse to one:
      // "//docs/" would name another host (an open redirect).
      absl::string_view path = target_.raw_path;
      while (path.size() > 1 && path[1] == '/') path.remove_prefix(1);
      absl::string_view query;
      if (request_ != nullptr) {
        size_t q = request_->target.find('?');
        if (q != absl::string_view::npos) query = request_->target.substr(q);
      }
      Redirect(absl::StrCat(path, "/", query));
      return;
    }
    file_ = *std::move(file);  // kept for a listing
    std::string index = target_.path.empty()
                            ? std::string("index.html")
                            : absl::StrCat(target_.path, "/index.html");
    worker_.cache().Lookup(
        index, [self = shared_from_this()](
                   absl::StatusOr<std::shared_ptr<const CachedFile>> f) {
          self->OnIndexLookup(std::move(f));
        });
    return;
  }
  if (target_.is_directory) {
    RespondError(404, !keep_alive_);  // "/file.txt/": not a directory
    return;
  }
  ServeFile(*std::move(file));
}

void Connection::OnIndexLookup(
    absl::StatusOr<std::shared_ptr<const CachedFile>> file) {
  if (state_ != State::kResponding) return;
  if (file.ok() && (*file)->is_regular()) {
    served_name_ = "index.html";
    ServeFile(*std::move(file));
    return;
  }
  if (!file.ok() && !absl::IsNotFound(file.status())) {
    RespondError(file.status());
    return;
  }
  if (!worker_.options().directory_listing) {
    RespondError(403, !keep_alive_);  // as nginx: no index, no listing
    return;
  }
  ServeDirectoryListing();
}

void Connection::ServeDirectoryListing() {
  // The worker gets a descriptor of its own: file_ (and the cache's entry)
  // may close the original while the listing runs (Close(), eviction), and
  // a cached File must not be destroyed off the loop.
  auto dir = std::make_shared<OwnedFd>(
      fcntl(file_->fd(), F_DUPFD_CLOEXEC, 0));
  if (dir->fd < 0) {
    RespondError(503, !keep_alive_);
    return;
  }
  bool dot_files = worker_.options().dot_files;
  auto submitted = worker_.pool().Submit(
      threadpool::Lane::kMetadata, worker_.service(),
      [dir, dot_files] { return ListDirectory(dir->fd, dot_files); },
      [self = shared_from_this()](
          absl::StatusOr<std::vector<DirectoryEntry>> entries) {
        if (self->state_ != State::kResponding) return;
        if (!entries.ok()) {
          self->RespondError(entries.status());
          return;
        }
        self->listing_.clear();
        AppendDirectoryListing(self->target_.path, *entries, &self->listing_);
        ResponseHead head = self->BaseHead(200);
        head.content_type = "text/html; charset=utf-8";
        head.content_length = self->listing_.size();
        self->out_.clear();
        self->worker_.writer().AppendHead(head, absl::Now(), &self->out_);
        self->status_ = 200;
        self->SendHead(self->head_only_ ? absl::string_view()
                                        : absl::string_view(self->listing_));
      });
  if (!submitted.ok()) RespondError(503, !keep_alive_);
}

void Connection::ServeMetrics() {
  listing_ = worker_.MetricsText();
  ResponseHead head = BaseHead(200);
  head.content_type = "text/plain; version=0.0.4; charset=utf-8";
  head.content_length = listing_.size();
  out_.clear();
  worker_.writer().AppendHead(head, absl::Now(), &out_);
  status_ = 200;
  SendHead(head_only_ ? absl::string_view() : absl::string_view(listing_));
}

void Connection::Redirect(std::string location) {
  listing_ = std::move(location);
  ResponseHead head = BaseHead(301);
  head.location = listing_;
  head.content_length = 0;
  out_.clear();
  worker_.writer().AppendHead(head, absl::Now(), &out_);
  status_ = 301;
  SendHead();
}

void Connection::RespondError(const absl::Status& status) {
  int code = HttpStatusFromStatus(status);
  RespondError(code, code >= 500 || !keep_alive_);
}

void Connection::RespondError(int status, bool close) {
  if (close) keep_alive_ = false;
  ResponseHead head = BaseHead(status);
  out_.clear();
  worker_.writer().AppendCannedResponse(head, head_only_ && request_ != nullptr,
                                        absl::Now(), &out_);
  status_ = status;
  SendHead();
}

void Connection::ServeFile(std::shared_ptr<const CachedFile> file) {
  const uint64_t size = static_cast<uint64_t>(file->st.st_size);
  Representation rep;
  rep.etag = file->etag;
  rep.last_modified = file->mtime;
  rep.size = size;
  const absl::Time now = absl::Now();
  Decision d = EvaluateRequest(conditional_, rep, now);

  ResponseHead head = BaseHead(d.status);
  head.last_modified = file->mtime;
  head.etag = file->etag;
  head.accept_ranges = true;
  status_ = d.status;
  out_.clear();
  switch (d.status) {
    case 200:
    case 206:
      head.content_type = ContentTypeForPath(
          served_name_.empty() ? absl::string_view(target_.path)
                               : absl::string_view(served_name_));
      head.content_length = d.length;
      if (d.status == 206) {
        head.has_content_range = true;
        head.range_first = d.offset;
        head.range_last = d.offset + d.length - 1;
        head.complete_length = size;
      }
      break;
    case 304:
      break;
    case 416:
      head.complete_length = size;
      worker_.writer().AppendCannedResponse(head, head_only_, now, &out_);
      SendHead();
      return;
    default:  // 412
      worker_.writer().AppendCannedResponse(head, head_only_, now, &out_);
      SendHead();
      return;
  }
  worker_.writer().AppendHead(head, now, &out_);
  uint64_t body = (head_only_ || d.status == 304) ? 0 : d.length;
  if (body == 0) {
    SendHead();
    return;
  }
  file_ = std::move(file);
  body_offset_ = d.offset;
  body_remaining_ = body;
  if (body < worker_.options().sendfile_min_bytes) {
    // Small: read it (usually the fast path, on the loop), then one
    // gathered write of head + body.
    // Reused across responses, but never much larger than the body: a read
    // fills the whole buffer (up to the end of the file).
    if (body_buffer_.size() < body || body_buffer_.size() > 2 * body + 4096) {
      body_buffer_ = aio::Buffer(body);
    }
    ClearDeadline();
    worker_.files().Read(
        file_->file, body_offset_, std::move(body_buffer_),
        [self = shared_from_this()](absl::StatusOr<aio::IoResult> r) {
          self->OnBodyRead(std::move(r));
        });
    return;
  }
  // Large: in chunks, the head going out with the first one.
  head_pending_ = true;
  SendBodyChunk();
}

void Connection::SendBodyChunk() {
  if (body_remaining_ == 0) {
    ClearDeadline();
    FinishResponse();
    return;
  }
  const ServerOptions& o = worker_.options();
  const size_t n = static_cast<size_t>(
      std::min<uint64_t>(body_remaining_, o.body_chunk_bytes));
  const absl::string_view head =
      head_pending_ ? absl::string_view(out_) : absl::string_view();
  SetDeadline(o.send_timeout);
  if (PagesCached(file_->fd(), body_offset_, n)) {
    worker_.counters().sendfile_chunks.Add();
    net::SendFileOptions sf;
    sf.pool = &worker_.pool();
    sf.chunk_size = o.body_chunk_bytes;
    sf.header = head;  // out_ is not touched until the completion
    socket_->SendFile(file_->fd(), static_cast<int64_t>(body_offset_), n,
                      [self = shared_from_this(), head_bytes = head.size()](
                          absl::Status s, size_t sent) {
                        self->OnBodySent(std::move(s), head_bytes, sent);
                      },
                      sf);
    return;
  }
  // Not cached: read through aio/ (never a disk wait on the loop), then
  // write from memory.
  worker_.counters().read_chunks.Add();
  if (body_buffer_.size() < n || body_buffer_.size() > 2 * n + 4096) {
    body_buffer_ = aio::Buffer(n);
  }
  worker_.files().Read(
      file_->file, body_offset_, std::move(body_buffer_),
      [self = shared_from_this(), n, head](absl::StatusOr<aio::IoResult> r) {
        if (self->state_ == State::kClosed) return;
        if (!r.ok() || r->bytes < n) {
          // Read error or the file shrank: the promised length cannot be
          // kept, so the connection closes (the client sees a short body).
          self->worker_.counters().truncated_bodies.Add();
          self->Close();
          return;
        }
        self->body_buffer_ = std::move(r->buffer);
        absl::string_view parts[2] = {head, self->body_buffer_.view(n)};
        self->socket_->WriteVectored(
            absl::MakeConstSpan(parts + (head.empty() ? 1 : 0),
                                head.empty() ? 1 : 2),
            [self, head_bytes = head.size()](absl::Status s, size_t sent) {
              self->OnBodySent(std::move(s), head_bytes,
                               sent - std::min(sent, head_bytes));
            });
      });
}

void Connection::OnBodySent(absl::Status status, size_t head_bytes,
                            size_t body_bytes) {
  if (status.ok()) {
    head_pending_ = false;
    bytes_sent_ += head_bytes;
  }
  bytes_sent_ += body_bytes;
  if (state_ == State::kClosed) return;
  if (!status.ok()) {
    if (absl::IsOutOfRange(status)) worker_.counters().truncated_bodies.Add();
    Close();
    return;
  }
  body_offset_ += body_bytes;
  body_remaining_ -= body_bytes;
  SendBodyChunk();
}

void Connection::OnBodyRead(absl::StatusOr<aio::IoResult> result) {
  if (state_ == State::kClosed) return;
  if (!result.ok()) {
    worker_.counters().truncated_bodies.Add();
    // Nothing was sent yet: the client can still get a clean error.
    RespondError(result.status());
    return;
  }
  body_buffer_ = std::move(result->buffer);
  // The buffer may be larger than the body (it is reused): the read may
  // have brought bytes past the range, which are not sent.
  size_t n = static_cast<size_t>(
      std::min<uint64_t>(result->bytes, body_remaining_));
  if (n < body_remaining_) {
    // The file shrank since its stat: send what there is and close.
    worker_.counters().truncated_bodies.Add();
    keep_alive_ = false;
  }
  SendHead(body_buffer_.view(n));
}

void Connection::SendHead(absl::string_view body) {
  if (state_ == State::kClosed) return;
  SetDeadline(worker_.options().send_timeout);
  auto done = [self = shared_from_this()](absl::Status s, size_t n) {
    self->bytes_sent_ += n;
    if (self->state_ == State::kClosed) return;
    if (!s.ok()) {
      self->Close();
      return;
    }
    self->ClearDeadline();
    self->FinishResponse();
  };
  if (body.empty()) {
    socket_->WriteAll(out_, std::move(done));
  } else {
    absl::string_view parts[2] = {out_, body};
    socket_->WriteVectored(parts, std::move(done));
  }
}

void Connection::LogAccess() {
  // 499: the connection closed before a response was chosen (nginx's code
  // for "client closed request").
  if (status_ == 0) status_ = 499;
  worker_.counters().response(status_).Add();
  worker_.counters().bytes_sent.Add(bytes_sent_);
  AccessLog* log = worker_.access_log();
  if (log == nullptr) return;
  AccessLogEntry e;
  e.peer = peer_;
  if (request_ != nullptr) {
    e.method = request_->method;
    e.target = request_->target;
    e.version_minor = request_->version_minor;
    e.referer = request_->Header("Referer");
    e.user_agent = request_->Header("User-Agent");
  }
  e.status = status_;
  e.bytes = bytes_sent_;
  log->Append(e);
}

}  // namespace fileserver
}  // namespace kqio
