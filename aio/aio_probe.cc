// aio_probe: prints which mechanism serves each file operation class on this
// machine, and why, including OpenAt's resolve-beneath open (openat2, or the
// pool's component walk) (ARCHITECTURE.md contract 9: capabilities are
// reported, never assumed).
//
//   ./bazelw run //aio:aio_probe
#include <cstdio>

#include "aio/file_service.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

int main() {
  using namespace kqio;  // NOLINT: a ten-line tool
  auto service = io::IoService::Create();
  if (!service.ok()) {
    std::fprintf(stderr, "aio_probe: %s\n",
                 service.status().ToString().c_str());
    return 1;
  }
  auto pool = threadpool::ThreadPool::Create(threadpool::ThreadPoolOptions());
  if (!pool.ok()) {
    std::fprintf(stderr, "aio_probe: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  auto files = aio::FileService::Create(**service, **pool);
  if (!files.ok()) {
    std::fprintf(stderr, "aio_probe: %s\n", files.status().ToString().c_str());
    return 1;
  }
  std::fputs((*files)->Capabilities().ToString().c_str(), stdout);
  return 0;
}
