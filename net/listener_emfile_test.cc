// Contract 7: EMFILE does not spin.  With the descriptor table full (a
// lowered RLIMIT_NOFILE), a listener with pending connections backs off on a
// timer, counts each exhaustion, sheds a connection with its spare
// descriptor (if it has one), and accepts again once descriptors are free.
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "io/io_service.h"
#include "net/internal/test_util.h"
#include "net/socket_address.h"
#include "net/stream_listener.h"

namespace kqio {
namespace net {
namespace {

using testing::Connections;
using testing::ListenAndCollect;
using testing::NewService;
using testing::RawClientSocket;
using testing::RunFor;
using testing::RunUntil;

// Lowers the soft RLIMIT_NOFILE just above the descriptors in use and fills
// the table; undoes both when destroyed.  The service must have blocked in
// kevent() once before (RunFor): kqio's Linux kqueue creates its wakeup
// eventfd at the first blocking wait, and under EMFILE that would fail.
class FullDescriptorTable final {
 public:
  FullDescriptorTable() {
    EXPECT_EQ(getrlimit(RLIMIT_NOFILE, &saved_), 0);
    int highest = 0;
    for (int fd = 0; fd < 4096; ++fd) {
      if (fcntl(fd, F_GETFD) != -1) highest = fd;
    }
    struct rlimit lowered = saved_;
    lowered.rlim_cur = static_cast<rlim_t>(highest + 16);
    EXPECT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);
    for (;;) {
      const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        EXPECT_EQ(errno, EMFILE);
        break;
      }
      fillers_.push_back(fd);
    }
  }
  ~FullDescriptorTable() { Release(); }
  FullDescriptorTable(const FullDescriptorTable&) = delete;
  FullDescriptorTable& operator=(const FullDescriptorTable&) = delete;

  void Release() {
    for (int fd : fillers_) close(fd);
    fillers_.clear();
    setrlimit(RLIMIT_NOFILE, &saved_);
  }

 private:
  struct rlimit saved_ = {};
  std::vector<int> fillers_;
};

void ConnectTo(int fd, const SocketAddress& to) {
  ASSERT_EQ(connect(fd, to.data(), to.size()), 0) << errno;
}

// A loopback listener accepting into `conns`, backing off for 50 ms at a
// time, with a spare descriptor or without.
std::unique_ptr<StreamListener> ListenWithBackoff(io::IoService& service,
                                                  Connections& conns,
                                                  bool reserve_descriptor) {
  ListenerOptions options;
  options.backoff = absl::Milliseconds(50);
  options.reserve_descriptor = reserve_descriptor;
  return ListenAndCollect(service, conns, options);
}

TEST(ListenerEmfileTest, BacksOffShedsWithTheSpareAndResumes) {
  auto service = NewService();
  Connections conns;
  std::unique_ptr<StreamListener> l =
      ListenWithBackoff(*service, conns, /*reserve_descriptor=*/true);
  ASSERT_NE(l, nullptr);
  const SocketAddress addr = l->local_addresses()[0];
  // Client sockets need descriptors too: make them before the table fills.
  const int shed_client = RawClientSocket();
  const int later_client = RawClientSocket();
  RunFor(*service, absl::Milliseconds(5));  // see FullDescriptorTable
  {
    FullDescriptorTable full;
    ConnectTo(shed_client, addr);  // the handshake needs no descriptor
    const uint64_t iterations_before = service->metrics().loop_iterations;
    RunFor(*service, absl::Milliseconds(300));
    const ListenerStats& stats = l->stats();
    EXPECT_GE(stats.descriptor_exhaustion, 1u);
    EXPECT_EQ(stats.shed, 1u);  // the one pending connection, told at once
    EXPECT_GE(stats.backoffs, 1u);
    // One pause per back-off interval at most: never a busy loop.
    EXPECT_LE(stats.backoffs, 300 / 50 + 2u);
    EXPECT_LE(service->metrics().loop_iterations - iterations_before, 50u);
    EXPECT_TRUE(conns.empty());
  }  // descriptors free again
  char byte;
  const ssize_t n = read(shed_client, &byte, 1);
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << n << " " << errno;
  ConnectTo(later_client, addr);
  ASSERT_TRUE(RunUntil(*service, [&] { return conns.size() == 1; }));
  EXPECT_TRUE(l->is_open());
  close(shed_client);
  close(later_client);
}

TEST(ListenerEmfileTest, WithoutASpareTheConnectionWaitsAndIsAcceptedLater) {
  auto service = NewService();
  Connections conns;
  std::unique_ptr<StreamListener> l =
      ListenWithBackoff(*service, conns, /*reserve_descriptor=*/false);
  ASSERT_NE(l, nullptr);
  const SocketAddress addr = l->local_addresses()[0];
  const int client = RawClientSocket();
  uint64_t exhaustion = 0;
  RunFor(*service, absl::Milliseconds(5));  // see FullDescriptorTable
  {
    FullDescriptorTable full;
    ConnectTo(client, addr);
    RunFor(*service, absl::Milliseconds(200));
    exhaustion = l->stats().descriptor_exhaustion;
    EXPECT_GE(exhaustion, 1u);
    EXPECT_LE(exhaustion, 200 / 50 + 2u);
    EXPECT_EQ(l->stats().shed, 0u);
    EXPECT_TRUE(conns.empty());
  }
  // The same connection, still in the backlog, is accepted after the pause.
  ASSERT_TRUE(RunUntil(*service, [&] { return conns.size() == 1; }));
  ASSERT_TRUE(testing::WriteFully(client, "still here"));
  char buf[10];
  bool got = false;
  conns[0]->ReadExactly(absl::MakeSpan(buf), [&](absl::Status s, size_t) {
    EXPECT_TRUE(s.ok());
    got = true;
  });
  ASSERT_TRUE(RunUntil(*service, [&] { return got; }));
  EXPECT_EQ(std::string(buf, 10), "still here");
  close(client);
}

}  // namespace
}  // namespace net
}  // namespace kqio
