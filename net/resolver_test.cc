#include "net/resolver.h"

#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "io/io_service.h"
#include "net/internal/test_util.h"
#include "threadpool/thread_pool.h"

namespace kqio {
namespace net {
namespace {

using testing::NewService;
using testing::RunUntil;

using Addresses = absl::StatusOr<std::vector<SocketAddress>>;

std::unique_ptr<threadpool::ThreadPool> NewPool() {
  threadpool::ThreadPoolOptions options;
  options.num_threads = 1;
  options.lanes[threadpool::LaneIndex(threadpool::Lane::kGeneral)].max_running = 1;
  auto pool = threadpool::ThreadPool::Create(options);
  EXPECT_TRUE(pool.ok());
  return *std::move(pool);
}

TEST(ResolverTest, ResolvesNamesAndNumbersOnThePool) {
  auto service = NewService();
  auto pool = NewPool();
  Resolver resolver(*service, *pool);
  ResolveOptions options;
  options.address_config = false;
  Addresses local, numeric;
  bool local_done = false, numeric_done = false;
  ASSERT_TRUE(resolver.Resolve("localhost", 80, options, [&](Addresses a) {
    local = std::move(a);
    local_done = true;
  }).ok());
  options.numeric_host = true;
  ASSERT_TRUE(resolver.Resolve("::1", 443, options, [&](Addresses a) {
    numeric = std::move(a);
    numeric_done = true;
  }).ok());
  EXPECT_FALSE(local_done);  // never inside the call
  ASSERT_TRUE(RunUntil(*service, [&] { return local_done && numeric_done; }));
  ASSERT_TRUE(local.ok()) << local.status();
  bool loopback = false;
  for (const SocketAddress& a : *local) {
    EXPECT_EQ(a.port(), 80);
    loopback = loopback || a == SocketAddress::Ipv4Loopback(80) ||
               a == SocketAddress::Ipv6Loopback(80);
  }
  EXPECT_TRUE(loopback);
  ASSERT_TRUE(numeric.ok()) << numeric.status();
  ASSERT_EQ(numeric->size(), 1u);
  EXPECT_EQ((*numeric)[0], SocketAddress::Ipv6Loopback(443));
  EXPECT_EQ(service->metrics().op(io::OpClass::kResolve).completed, 2u);
}

TEST(ResolverTest, ErrorsAreStatuses) {
  auto service = NewService();
  auto pool = NewPool();
  Resolver resolver(*service, *pool);
  ResolveOptions options;
  options.numeric_host = true;  // never asks a name server
  Addresses r;
  bool done = false;
  ASSERT_TRUE(resolver.Resolve("not-a-number", 1, options, [&](Addresses a) {
    r = std::move(a);
    done = true;
  }).ok());
  ASSERT_TRUE(RunUntil(*service, [&] { return done; }));
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("not-a-number"), std::string::npos);
}

TEST(ResolverTest, CancelBeforeItRunsGivesCancelled) {
  auto service = NewService();
  auto pool = NewPool();
  Resolver resolver(*service, *pool);
  // Hold the only general-lane worker so that the lookup waits in its queue.
  absl::Notification blocked, release;
  ASSERT_TRUE(pool->Submit(threadpool::Lane::kGeneral, *service,
                           [&] {
                             blocked.Notify();
                             release.WaitForNotification();
                           },
                           [](absl::Status) {})
                  .ok());
  blocked.WaitForNotification();
  Addresses r;
  int calls = 0;
  auto handle = resolver.Resolve("localhost", 1, {}, [&](Addresses a) {
    r = std::move(a);
    ++calls;
  });
  ASSERT_TRUE(handle.ok());
  EXPECT_TRUE(handle->Cancel());
  release.Notify();
  ASSERT_TRUE(RunUntil(*service, [&] { return calls == 1; }));
  EXPECT_TRUE(absl::IsCancelled(r.status())) << r.status();
  EXPECT_FALSE(handle->Cancel());
  testing::RunFor(*service, absl::Milliseconds(10));
  EXPECT_EQ(calls, 1);
  pool->Shutdown(threadpool::ThreadPool::Mode::kDrain);
  service->Poll();
}

}  // namespace
}  // namespace net
}  // namespace kqio
