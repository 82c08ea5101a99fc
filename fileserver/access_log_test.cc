#include "fileserver/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace kqio {
namespace fileserver {
namespace {

absl::Time Noon() {
  return absl::FromCivil(absl::CivilSecond(2026, 11, 27, 12, 0, 5),
                         absl::UTCTimeZone());
}

TEST(AccessLogLineTest, CombinedFormat) {
  AccessLogEntry e;
  e.peer = "127.0.0.1";
  e.method = "GET";
  e.target = "/a/b.html?x=1";
  e.version_minor = 1;
  e.referer = "http://example/";
  e.user_agent = "curl/7.88.1";
  e.status = 200;
  e.bytes = 1234;
  std::string out;
  AppendAccessLogLine(e, Noon(), &out);
  EXPECT_EQ(out,
            "127.0.0.1 - - [27/Nov/2026:12:00:05 +0000] \"GET /a/b.html?x=1 "
            "HTTP/1.1\" 200 1234 \"http://example/\" \"curl/7.88.1\"\n");
}

TEST(AccessLogLineTest, UnparsedRequestAndMissingFields) {
  AccessLogEntry e;
  e.peer = "::1";
  e.status = 400;
  e.bytes = 10;
  std::string out;
  AppendAccessLogLine(e, Noon(), &out);
  EXPECT_EQ(out, "::1 - - [27/Nov/2026:12:00:05 +0000] \"-\" 400 10 \"-\" "
                 "\"-\"\n");
}

TEST(AccessLogLineTest, RequestDataCannotForgeLines) {
  AccessLogEntry e;
  e.peer = "127.0.0.1";
  e.method = "GET";
  e.target = "/\"x\\";
  e.user_agent = "evil\n127.0.0.1 - - fake\x7f";
  e.status = 404;
  std::string out;
  AppendAccessLogLine(e, Noon(), &out);
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
  EXPECT_NE(out.find("/\\x22x\\x5C"), std::string::npos) << out;
  EXPECT_NE(out.find("evil\\x0A127.0.0.1 - - fake\\x7F"), std::string::npos)
      << out;
}

// Two workers' logs (two loops, one pool, one sink) writing to one file:
// every line arrives once, whole, and each worker's lines in the order it
// appended them, including those still buffered when the logs are
// destroyed with writer tasks in flight.
TEST(AccessLogTest, LinesArriveWholeAndInOrderPerWorker) {
  const char* dir = getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp",
                                   "/access_log_test.log");
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  ASSERT_GE(fd, 0);
  threadpool::ThreadPoolOptions po;
  po.num_threads = 4;
  auto pool = *threadpool::ThreadPool::Create(po);
  AccessLogSink sink(fd);
  constexpr int kLines = 20000;
  auto worker = [&](int id) {
    auto service = *io::IoService::Create();
    {
      AccessLog log(*service, *pool, sink);
      const std::string agent(200, 'a' + id);  // lines of ~300 bytes
      for (int i = 0; i < kLines; ++i) {
        AccessLogEntry e;
        e.peer = id == 0 ? "10.0.0.0" : "10.0.0.1";
        e.method = "GET";
        const std::string target = absl::StrCat("/", i);
        e.target = target;
        e.user_agent = agent;
        e.status = 200;
        log.Append(e);
        if (i % 1000 == 0) service->Poll();  // let completions run
      }
    }  // destroyed with its last buffer pending, perhaps a writer running
    service->Shutdown();  // waits for pool results posted to it
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  pool.reset();
  close(fd);

  FILE* f = fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::vector<int> next(2, 0);
  char line[1024];
  int total = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    std::string l(line);
    ASSERT_EQ(l.back(), '\n') << "a line was cut: " << l;
    int id = l.rfind("10.0.0.1", 0) == 0 ? 1 : 0;
    ASSERT_TRUE(l.rfind(id == 0 ? "10.0.0.0" : "10.0.0.1", 0) == 0) << l;
    const std::string want = absl::StrCat("\"GET /", next[id], " HTTP/1.1\"");
    ASSERT_NE(l.find(want), std::string::npos) << "worker " << id << ": " << l;
    const std::string agent(200, 'a' + id);
    ASSERT_NE(l.find(agent), std::string::npos) << "interleaved: " << l;
    ++next[id];
    ++total;
  }
  fclose(f);
  EXPECT_EQ(next[0], kLines);
  EXPECT_EQ(next[1], kLines);
  EXPECT_EQ(total, 2 * kLines);
}

}  // namespace
}  // namespace fileserver
}  // namespace kqio
