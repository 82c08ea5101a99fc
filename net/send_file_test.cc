// StreamSocket::SendFile: a file larger than the socket buffers arrives whole
// (checksum), through the kernel and through the pool's read+write fallback;
// ranges, short files, ordering with writes, resets and closing while the
// pool reads.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "io/errno_status.h"
#include "io/io_service.h"
#include "net/internal/test_util.h"
#include "net/stream_socket.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace net {
namespace {

using testing::NewService;
using testing::RunUntil;

constexpr size_t kFileSize = 8 << 20;  // larger than any loopback buffer here

// A file of pseudo-random bytes in the test's temporary directory.
class TestFile final {
 public:
  explicit TestFile(size_t size) {
    const char* dir = getenv("TEST_TMPDIR");
    std::string tmpl = std::string(dir != nullptr ? dir : "/tmp") + "/sendfileXXXXXX";
    fd_ = mkstemp(&tmpl[0]);
    EXPECT_GE(fd_, 0);
    unlink(tmpl.c_str());
    contents_.resize(size);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < size; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      contents_[i] = static_cast<char>(x);
    }
    EXPECT_TRUE(testing::WriteFully(fd_, contents_));
  }
  ~TestFile() { close(fd_); }
  int fd() const { return fd_; }
  const std::string& contents() const { return contents_; }

 private:
  int fd_ = -1;
  std::string contents_;
};

struct Received {
  std::string data;
  bool eof = false;
};

// Reads `b` until EOF into `out`.
void ReadToEnd(StreamSocket& b, std::vector<char>& buf, Received& out) {
  b.Read(absl::MakeSpan(buf), [&b, &buf, &out](absl::Status s, size_t n) {
    ASSERT_TRUE(s.ok()) << s;
    if (n == 0) {
      out.eof = true;
      return;
    }
    out.data.append(buf.data(), n);
    ReadToEnd(b, buf, out);
  });
}

std::unique_ptr<threadpool::ThreadPool> NewPool(int data_running = 2) {
  threadpool::ThreadPoolOptions options;
  options.num_threads = 2;
  options.lanes[threadpool::LaneIndex(threadpool::Lane::kData)].max_running =
      data_running;
  auto pool = threadpool::ThreadPool::Create(options);
  EXPECT_TRUE(pool.ok());
  return *std::move(pool);
}

void SendWholeFile(const SendFileOptions& options) {
  TestFile file(kFileSize);
  auto service = NewService();
  auto pair = testing::TcpStreamPair(*service);
  ASSERT_TRUE(pair.a->SetSendBufferSize(64 * 1024).ok());
  std::vector<char> buf(64 * 1024);
  Received got;
  ReadToEnd(*pair.b, buf, got);
  bool done = false;
  absl::Status status;
  size_t bytes = 0;
  pair.a->SendFile(file.fd(), 0, kFileSize, [&](absl::Status s, size_t n) {
    status = s;
    bytes = n;
    done = true;
    pair.a->Close();
  }, options);
  ASSERT_TRUE(RunUntil(*service, [&] { return done && got.eof; }));
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(bytes, kFileSize);
  ASSERT_EQ(got.data.size(), kFileSize);
  EXPECT_EQ(testing::Fnv1a(got.data.data(), got.data.size()),
            testing::Fnv1a(file.contents().data(), kFileSize));
  EXPECT_EQ(service->metrics().op(io::OpClass::kSendfile).completed, 1u);
}

TEST(SendFileTest, KernelPathSendsAFileLargerThanTheSocketBuffer) {
  SendWholeFile(SendFileOptions());
}

TEST(SendFileTest, PoolFallbackSendsAFileLargerThanTheSocketBuffer) {
  auto pool = NewPool();
  SendFileOptions options;
  options.pool = pool.get();
  options.use_kernel = false;
  options.chunk_size = 100 * 1000;  // not a divisor of the file size
  SendWholeFile(options);
}

TEST(SendFileTest, RangesShortFilesAndOrderWithWrites) {
  TestFile file(100 * 1000);
  auto pool = NewPool();
  for (bool kernel : {true, false}) {
    SCOPED_TRACE(kernel ? "kernel" : "fallback");
    SendFileOptions options;
    options.pool = pool.get();
    options.use_kernel = kernel;
    auto service = NewService();
    auto pair = testing::TcpStreamPair(*service);
    std::vector<char> buf(64 * 1024);
    Received got;
    ReadToEnd(*pair.b, buf, got);
    int completions = 0;
    absl::Status range_status, short_status;
    size_t short_bytes = 0;
    pair.a->WriteAll("head|", [&](absl::Status s, size_t) { EXPECT_TRUE(s.ok()); ++completions; });
    pair.a->SendFile(file.fd(), 1000, 5000, [&](absl::Status s, size_t n) {
      range_status = s;
      EXPECT_EQ(n, 5000u);
      ++completions;
    }, options);
    pair.a->WriteAll("|mid|", [&](absl::Status s, size_t) { EXPECT_TRUE(s.ok()); ++completions; });
    // Asks for more than the file has: OutOfRange after what there was.
    pair.a->SendFile(file.fd(), 90 * 1000, 20 * 1000, [&](absl::Status s, size_t n) {
      short_status = s;
      short_bytes = n;
      ++completions;
      pair.a->Close();
    }, options);
    ASSERT_TRUE(RunUntil(*service, [&] { return completions == 4 && got.eof; }));
    EXPECT_TRUE(range_status.ok()) << range_status;
    EXPECT_TRUE(absl::IsOutOfRange(short_status)) << short_status;
    EXPECT_EQ(short_bytes, 10u * 1000);
    const std::string& c = file.contents();
    EXPECT_EQ(got.data, "head|" + c.substr(1000, 5000) + "|mid|" + c.substr(90 * 1000));
  }
}

// options.header goes out first, in the same operation, on both paths; a
// header larger than the socket buffer is resumed; bytes counts the file's.
TEST(SendFileTest, HeaderPrecedesTheFileBytes) {
  TestFile file(300 * 1000);
  auto pool = NewPool();
  const std::string small = "HTTP/1.1 200 OK\r\n\r\n";
  const std::string big(512 * 1024, 'h');
  for (bool kernel : {true, false}) {
    for (const std::string* header : {&small, &big}) {
      SCOPED_TRACE(std::string(kernel ? "kernel" : "fallback") + " header " +
                   std::to_string(header->size()));
      SendFileOptions options;
      options.pool = pool.get();
      options.use_kernel = kernel;
      options.header = *header;
      auto service = NewService();
      auto pair = testing::TcpStreamPair(*service);
      ASSERT_TRUE(pair.a->SetSendBufferSize(64 * 1024).ok());
      std::vector<char> buf(64 * 1024);
      Received got;
      ReadToEnd(*pair.b, buf, got);
      absl::Status status;
      size_t bytes = 0;
      bool done = false;
      pair.a->SendFile(file.fd(), 7, 250 * 1000, [&](absl::Status s, size_t n) {
        status = s;
        bytes = n;
        done = true;
      }, options);
      // A zero-length file range still sends the header.
      pair.a->SendFile(file.fd(), 0, 0, [&](absl::Status s, size_t n) {
        EXPECT_TRUE(s.ok()) << s;
        EXPECT_EQ(n, 0u);
        pair.a->Close();
      }, options);
      ASSERT_TRUE(RunUntil(*service, [&] { return done && got.eof; }));
      ASSERT_TRUE(status.ok()) << status;
      EXPECT_EQ(bytes, 250u * 1000);
      ASSERT_EQ(got.data.size(), 2 * header->size() + 250 * 1000);
      EXPECT_TRUE(got.data == *header + file.contents().substr(7, 250 * 1000) +
                                  *header);
    }
  }
}

TEST(SendFileTest, ClosingWhileThePoolReadsCancelsAndTheLateReadIsIgnored) {
  TestFile file(1 << 20);
  auto pool = NewPool(/*data_running=*/1);
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  // Hold the data lane so that the SendFile's first read waits in its queue.
  absl::Notification release, blocked;
  auto blocker = pool->Submit(
      threadpool::Lane::kData, *service,
      [&] {
        blocked.Notify();
        release.WaitForNotification();
      },
      [](absl::Status) {});
  ASSERT_TRUE(blocker.ok());
  blocked.WaitForNotification();
  SendFileOptions options;
  options.pool = pool.get();
  options.use_kernel = false;
  bool done = false;
  absl::Status status;
  sp.stream->SendFile(file.fd(), 0, 1 << 20, [&](absl::Status s, size_t) {
    status = s;
    done = true;
  }, options);
  testing::RunFor(*service, absl::Milliseconds(10));
  EXPECT_FALSE(done);
  sp.stream.reset();  // the operation is gone; the pool still holds its task
  ASSERT_TRUE(RunUntil(*service, [&] { return done; }));
  EXPECT_TRUE(absl::IsCancelled(status)) << status;
  release.Notify();
  testing::RunFor(*service, absl::Milliseconds(20));  // the blocker completes
  pool->Shutdown(threadpool::ThreadPool::Mode::kDrain);
  service->Poll();
  close(sp.peer);
}

TEST(SendFileTest, SendFileToAResetPeerFailsWithoutSigpipe) {
  TestFile file(kFileSize);
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  struct linger lg = {1, 0};
  ASSERT_EQ(setsockopt(sp.peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(sp.peer);  // RST
  testing::RunFor(*service, absl::Milliseconds(10));
  for (int i = 0; i < 2; ++i) {  // the first may meet ECONNRESET, then EPIPE
    bool done = false;
    absl::Status status;
    sp.stream->SendFile(file.fd(), 0, kFileSize, [&](absl::Status s, size_t) {
      status = s;
      done = true;
    });
    ASSERT_TRUE(RunUntil(*service, [&] { return done; }));
    const int err = io::StatusErrno(status);
    EXPECT_TRUE(err == EPIPE || err == ECONNRESET) << status;
  }
}

TEST(SendFileTest, WithoutAPoolTheFallbackIsAnError) {
  TestFile file(1000);
  auto service = NewService();
  auto sp = testing::TcpStreamAndPeer(*service);
  SendFileOptions options;
  options.use_kernel = false;  // and no pool
  bool done = false;
  absl::Status status;
  sp.stream->SendFile(file.fd(), 0, 1000, [&](absl::Status s, size_t) {
    status = s;
    done = true;
  }, options);
  ASSERT_TRUE(RunUntil(*service, [&] { return done; }));
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  close(sp.peer);
}

}  // namespace
}  // namespace net
}  // namespace kqio
