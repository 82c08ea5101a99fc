// OpenFileCache on a real IoService and FileService: hits, misses and
// coalescing (counted, and checked against the opens aio really ran), TTL
// expiry on an injected clock picking up a replaced file, the LRU bound,
// cached and uncached errors, what is refused (FIFO without blocking, a
// socket, symlink escapes), and destruction with lookups in flight.  Every
// test ends with no descriptor under its root left open.
#include "fileserver/open_file_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "aio/file_service.h"
#include "aio/testing/aio_test_util.h"
#include "fileserver/http_response.h"
#include "gtest/gtest.h"
#include "io/errno_status.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace fileserver {

// The cache's clock, for tests.
class OpenFileCacheTestPeer final {
 public:
  static void SetClock(OpenFileCache& cache, absl::Time* now) {
    cache.now_ = [now] { return *now; };
  }
};

namespace {

using aio::testing::MakeTempTree;
using aio::testing::ReadAll;
using aio::testing::RemoveTree;
using aio::testing::WriteWholeFile;
using Result = absl::StatusOr<std::shared_ptr<const CachedFile>>;
using Capture = aio::testing::Captured<Result>;

// A FileService (aio::testing::AioTest) and this tree, with `root_fd_` open
// on root (O_PATH):
//   top/secret                      outside the root
//   top/root/{a,b,c,d}              files holding their own names
//   top/root/dir/index.html
//   top/root/escape -> ../secret, absolute -> /etc/passwd, to_a -> a
//   top/root/fifo                   a FIFO
class OpenFileCacheTest : public aio::testing::AioTest {
 protected:
  void SetUp() override {
    AioTest::SetUp();
    MakeFiles();
    top_ = MakeTempTree("open_file_cache");
    ASSERT_FALSE(top_.empty());
    root_ = top_ + "/root";
    ASSERT_EQ(mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((root_ + "/dir").c_str(), 0755), 0);
    WriteWholeFile(top_ + "/secret", "secret");
    for (const char* name : {"a", "b", "c", "d"}) {
      WriteWholeFile(root_ + "/" + name, name);
    }
    WriteWholeFile(root_ + "/dir/index.html", "<p>index</p>");
    ASSERT_EQ(symlink("../secret", (root_ + "/escape").c_str()), 0);
    ASSERT_EQ(symlink("/etc/passwd", (root_ + "/absolute").c_str()), 0);
    ASSERT_EQ(symlink("a", (root_ + "/to_a").c_str()), 0);
    ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0644), 0);
    root_fd_ = open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_fd_, 0);
  }

  void TearDown() override {
    cache_.reset();
    if (service_ != nullptr) DrainUntilClosed();
    EXPECT_EQ(FdsUnderRoot(), 0) << "descriptors left open under the root";
    AioTest::TearDown();
    if (root_fd_ >= 0) close(root_fd_);
    RemoveTree(top_);
  }

  void MakeCache(OpenFileCacheOptions o = OpenFileCacheOptions()) {
    cache_.reset();
    cache_ = std::make_unique<OpenFileCache>(*service_, *files_, root_fd_, o);
    OpenFileCacheTestPeer::SetClock(*cache_, &now_);
  }

  // Runs the loop until every capture in `got` has been called.
  bool RunUntilAllCalled(const std::vector<Capture>& got) {
    return RunUntil([&] {
      for (const Capture& c : got) {
        if (c.calls == 0) return false;
      }
      return true;
    });
  }

  // Until the loop is idle and nothing under the root is open any more
  // (closes go through aio, off the loop).
  void DrainUntilClosed() {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      if (service_->Poll() > 0) continue;
      if (FdsUnderRoot() == 0) break;
      absl::SleepFor(absl::Milliseconds(1));
    }
  }

  Result Lookup(const std::string& path) {
    Capture got;
    cache_->Lookup(path, got.Callback());
    EXPECT_EQ(got.calls, 0) << "never inside Lookup()";
    EXPECT_TRUE(RunUntil([&] { return got.calls > 0; })) << path;
    EXPECT_EQ(got.calls, 1);
    if (!got.value.has_value()) return absl::InternalError("no completion");
    return *std::move(got.value);
  }

  // Opens aio has run for this cache (every engine, every fallback).
  uint64_t OpensSubmitted() const {
    const aio::FileServiceMetrics m = files_->metrics();
    uint64_t n = 0;
    for (uint64_t s : m.of(aio::FileOpClass::kOpen).submitted) n += s;
    return n;
  }

  // Descriptors of this process that name something under the root.
  int FdsUnderRoot() const {
    int n = 0;
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) return -1;
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[PATH_MAX] = {};
      const std::string link = absl::StrCat("/proc/self/fd/", e->d_name);
      if (readlink(link.c_str(), target, sizeof(target) - 1) > 0 &&
          absl::StartsWith(target, root_ + "/")) {
        ++n;
      }
    }
    closedir(d);
    return n;
  }

  std::unique_ptr<OpenFileCache> cache_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  std::string top_, root_;
  int root_fd_ = -1;
};


TEST_F(OpenFileCacheTest, AMissOpensAHitDoesNot) {
  MakeCache();
  Result first = Lookup("a");
  ASSERT_TRUE(first.ok()) << first.status();
  const CachedFile& f = **first;
  EXPECT_TRUE(f.is_regular());
  EXPECT_FALSE(f.is_directory());
  EXPECT_EQ(ReadAll(f.fd()), "a");
  EXPECT_EQ(f.st.st_size, 1);
  EXPECT_EQ(f.etag, MakeETag(f.st.st_ino, 1,
                             int64_t{f.st.st_mtim.tv_sec} * 1000000000 +
                                 f.st.st_mtim.tv_nsec));
  EXPECT_EQ(f.mtime, absl::TimeFromTimespec(f.st.st_mtim));
  const int flags = fcntl(f.fd(), F_GETFL);
  EXPECT_EQ(flags & O_ACCMODE, O_RDONLY);
  EXPECT_NE(flags & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(f.fd(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(OpensSubmitted(), 1u);

  Result second = Lookup("a");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->get(), first->get()) << "the same shared entry";
  EXPECT_EQ(OpensSubmitted(), 1u) << "a hit opens nothing";
  const OpenFileCacheStats s = cache_->stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.entries, 1u);
}

TEST_F(OpenFileCacheTest, TheRootAndDirectories) {
  MakeCache();
  Result root = Lookup("");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_TRUE((*root)->is_directory());
  struct stat want;
  ASSERT_EQ(stat(root_.c_str(), &want), 0);
  EXPECT_EQ((*root)->st.st_ino, want.st_ino);
  Result dir = Lookup("dir");
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_TRUE((*dir)->is_directory());
  Result index = Lookup("dir/index.html");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(ReadAll((*index)->fd()), "<p>index</p>");
}

TEST_F(OpenFileCacheTest, ConcurrentLookupsShareOneOpen) {
  MakeCache();
  std::vector<Capture> got(5);
  for (Capture& c : got) cache_->Lookup("b", c.Callback());
  for (Capture& c : got) EXPECT_EQ(c.calls, 0);
  ASSERT_TRUE(RunUntilAllCalled(got));
  for (Capture& c : got) {
    EXPECT_EQ(c.calls, 1);
    ASSERT_TRUE(c.value->ok()) << c.value->status();
    EXPECT_EQ(c.value->value().get(), got[0].value->value().get());
  }
  EXPECT_EQ(OpensSubmitted(), 1u);
  const OpenFileCacheStats s = cache_->stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.coalesced, 4u);
  EXPECT_EQ(s.hits, 0u);
}

TEST_F(OpenFileCacheTest, AnExpiredEntryIsReopenedAndPicksUpAReplacedFile) {
  OpenFileCacheOptions o;
  o.ttl = absl::Seconds(5);
  MakeCache(o);
  Result old_file = Lookup("c");
  ASSERT_TRUE(old_file.ok()) << old_file.status();
  // Replaced the way deployments do it: a new file renamed over the old.
  WriteWholeFile(root_ + "/c.new", "new c");
  ASSERT_EQ(rename((root_ + "/c.new").c_str(), (root_ + "/c").c_str()), 0);

  now_ += absl::Seconds(4);
  Result cached = Lookup("c");
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->get(), old_file->get()) << "within the ttl: cached";

  now_ += absl::Seconds(2);
  Result fresh = Lookup("c");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_NE(fresh->get(), old_file->get());
  EXPECT_NE((*fresh)->st.st_ino, (*old_file)->st.st_ino);
  EXPECT_NE((*fresh)->etag, (*old_file)->etag);
  EXPECT_EQ(ReadAll((*fresh)->fd()), "new c");
  // Whoever still holds the old entry still reads the old file.
  EXPECT_EQ(ReadAll((*old_file)->fd()), "c");
  const OpenFileCacheStats s = cache_->stats();
  EXPECT_EQ(s.expired, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.entries, 1u);
}

TEST_F(OpenFileCacheTest, TheLeastRecentlyUsedEntryIsEvicted) {
  OpenFileCacheOptions o;
  o.max_entries = 2;
  MakeCache(o);
  Result a = Lookup("a");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(Lookup("b").ok());
  ASSERT_TRUE(Lookup("a").ok());  // a is now the most recent
  ASSERT_TRUE(Lookup("c").ok());  // evicts b
  OpenFileCacheStats s = cache_->stats();
  EXPECT_EQ(s.evictions, 1u);
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.hits, 1u);
  const uint64_t opens = OpensSubmitted();
  ASSERT_TRUE(Lookup("a").ok());
  EXPECT_EQ(OpensSubmitted(), opens) << "a stayed";
  ASSERT_TRUE(Lookup("b").ok());
  EXPECT_EQ(OpensSubmitted(), opens + 1) << "b was evicted";
  s = cache_->stats();
  EXPECT_EQ(s.evictions, 2u);  // c went for b
  EXPECT_EQ(s.entries, 2u);
  // An evicted entry's holder keeps a working descriptor.
  ASSERT_TRUE(Lookup("d").ok());  // evicts a
  EXPECT_EQ(ReadAll((*a)->fd()), "a");
}

TEST_F(OpenFileCacheTest, WithNoEntriesEveryLookupOpensButStillCoalesces) {
  OpenFileCacheOptions o;
  o.max_entries = 0;
  MakeCache(o);
  ASSERT_TRUE(Lookup("a").ok());
  ASSERT_TRUE(Lookup("a").ok());
  EXPECT_EQ(OpensSubmitted(), 2u);
  Capture x, y;
  cache_->Lookup("b", x.Callback());
  cache_->Lookup("b", y.Callback());
  ASSERT_TRUE(RunUntil([&] { return x.calls > 0 && y.calls > 0; }));
  EXPECT_EQ(OpensSubmitted(), 3u);
  const OpenFileCacheStats s = cache_->stats();
  EXPECT_EQ(s.hits, 0u);
  EXPECT_EQ(s.misses, 3u);
  EXPECT_EQ(s.coalesced, 1u);
  EXPECT_EQ(s.entries, 0u);
}

TEST_F(OpenFileCacheTest, NotFoundIsCachedForTheTtl) {
  MakeCache();
  Result missing = Lookup("later");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_EQ(io::StatusErrno(missing.status()), ENOENT);
  WriteWholeFile(root_ + "/later", "here now");
  missing = Lookup("later");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << "cached";
  EXPECT_EQ(OpensSubmitted(), 1u);
  now_ += absl::Seconds(6);
  Result found = Lookup("later");
  ASSERT_TRUE(found.ok()) << found.status();
  const OpenFileCacheStats s = cache_->stats();
  EXPECT_EQ(s.errors_cached, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.expired, 1u);
}

TEST_F(OpenFileCacheTest, ErrorsAreNotCachedWhenAskedNotTo) {
  OpenFileCacheOptions o;
  o.cache_errors = false;
  MakeCache(o);
  EXPECT_TRUE(absl::IsNotFound(Lookup("later").status()));
  WriteWholeFile(root_ + "/later", "here now");
  Result found = Lookup("later");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(cache_->stats().errors_cached, 0u);
}

TEST_F(OpenFileCacheTest, HowErrorsAreAnswered) {
  MakeCache();
  Result r = Lookup("a/x");  // ENOTDIR
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_EQ(io::StatusErrno(r.status()), ENOTDIR);
  for (const char* escape :
       {"escape", "absolute", "../secret", "/etc/passwd"}) {
    r = Lookup(escape);
    EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << escape << r.status();
    EXPECT_EQ(io::StatusErrno(r.status()), EXDEV) << escape;
  }
  // An in-tree symlink is served unless no_symlinks.
  r = Lookup("to_a");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadAll((*r)->fd()), "a");
  OpenFileCacheOptions o;
  o.no_symlinks = true;
  MakeCache(o);
  r = Lookup("to_a");
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_EQ(io::StatusErrno(r.status()), ELOOP);
  if (geteuid() != 0) {  // root reads anything
    WriteWholeFile(root_ + "/private", "x");
    ASSERT_EQ(chmod((root_ + "/private").c_str(), 0), 0);
    r = Lookup("private");
    EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
    EXPECT_EQ(io::StatusErrno(r.status()), EACCES);
  }
}

TEST_F(OpenFileCacheTest, AFifoOrASocketIsRefusedWithoutBlocking) {
  // On every engine: io_uring never waits for a FIFO's writer anyway, the
  // pool would (a worker stuck in open() until a writer comes) without
  // O_NONBLOCK.
  for (aio::EngineKind engine :
       {aio::EngineKind::kAuto, aio::EngineKind::kPool}) {
    SCOPED_TRACE(aio::EngineKindName(engine));
    cache_.reset();
    DrainUntilClosed();
    aio::FileServiceOptions fo;
    fo.engines.fill(engine);
    auto files = aio::FileService::Create(*service_, *pool_, fo);
    ASSERT_TRUE(files.ok()) << files.status();
    files_ = *std::move(files);
    MakeCache();
    Capture fifo;
    cache_->Lookup("fifo", fifo.Callback());
    if (!RunUntil([&] { return fifo.calls > 0; }, absl::Seconds(5))) {
      ADD_FAILURE() << "the open blocked";
      // Free the worker, so that the test can end.
      const int w =
          open((root_ + "/fifo").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      RunUntil([&] { return fifo.calls > 0; });
      if (w >= 0) close(w);
    }
    ASSERT_TRUE(fifo.value.has_value());
    EXPECT_TRUE(absl::IsPermissionDenied(fifo.value->status()))
        << fifo.value->status();

    const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    struct sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    // Through the root's descriptor: TEST_TMPDIR is longer than sun_path.
    const std::string path = absl::StrCat("/proc/self/fd/", root_fd_, "/sock");
    ASSERT_LT(path.size(), sizeof(addr.sun_path));
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(bind(s, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)),
              0);
    Result r = Lookup("sock");
    close(s);
    unlink((root_ + "/sock").c_str());
    EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
    EXPECT_EQ(cache_->stats().errors_cached, 2u);
  }
}

TEST_F(OpenFileCacheTest, DestroyingTheCacheCancelsLookupsInFlight) {
  MakeCache();
  ASSERT_TRUE(Lookup("d").ok());  // one entry cached as well
  std::vector<Capture> got(4);
  cache_->Lookup("a", got[0].Callback());
  cache_->Lookup("a", got[1].Callback());
  cache_->Lookup("b", got[2].Callback());
  cache_->Lookup("missing", got[3].Callback());
  service_->Poll();  // let the opens start, perhaps finish some
  cache_.reset();
  for (Capture& c : got) EXPECT_LE(c.calls, 1);
  ASSERT_TRUE(RunUntilAllCalled(got));
  for (Capture& c : got) {
    EXPECT_EQ(c.calls, 1);
    // Finished before the cache went, or cancelled by its going.
    EXPECT_TRUE(c.value->ok() || absl::IsCancelled(c.value->status()) ||
                absl::IsNotFound(c.value->status()))
        << c.value->status();
  }
  EXPECT_TRUE(absl::IsCancelled(got[0].value->status()) || got[0].value->ok());
  got.clear();
  Drain();  // late opens are closed through aio
}

TEST_F(OpenFileCacheTest, DestroyedBeforeTheLoopRunsEveryLookupIsCancelled) {
  MakeCache();
  std::vector<Capture> got(3);
  cache_->Lookup("a", got[0].Callback());
  cache_->Lookup("a", got[1].Callback());
  cache_->Lookup("dir", got[2].Callback());
  cache_.reset();
  for (Capture& c : got) EXPECT_EQ(c.calls, 0) << "posted, not inline";
  ASSERT_TRUE(RunUntilAllCalled(got));
  for (Capture& c : got) {
    EXPECT_EQ(c.calls, 1);
    EXPECT_TRUE(absl::IsCancelled(c.value->status())) << c.value->status();
  }
}

TEST_F(OpenFileCacheTest, AWaiterMayDestroyTheCache) {
  MakeCache();
  Capture second;
  bool first_ran = false;
  cache_->Lookup("a", [&](Result r) {
    first_ran = true;
    EXPECT_TRUE(r.ok()) << r.status();
    cache_.reset();
  });
  cache_->Lookup("a", second.Callback());
  ASSERT_TRUE(RunUntil([&] { return first_ran && second.calls > 0; }));
  EXPECT_EQ(second.calls, 1);
  EXPECT_TRUE(second.value->ok()) << second.value->status();
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
