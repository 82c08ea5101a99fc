// The README's IoService example, compiled and run so that it stays true.
// Keep the block between the markers identical to the README.
#include <cstdio>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "io/io_service.h"
#include "threadpool/thread_pool.h"

namespace {

int Example() {
  using namespace kqio;
  // README example begins
  auto service = io::IoService::Create().value();      // one kqueue, one loop
  auto pool = threadpool::ThreadPool::Create({}).value();  // blocking work

  service->Post([] { std::puts("posted: runs on the loop thread"); });
  service->RunAfter(absl::Milliseconds(10), [] { std::puts("timer fired"); });
  auto task = pool->Submit(
      threadpool::Lane::kGeneral, *service,
      [] { return 6 * 7; },                       // on a worker thread
      [](absl::StatusOr<int> answer) {            // back on the loop thread
        std::printf("pool says %d\n", answer.value());
      });
  if (!task.ok()) return 1;                     // lane full: ResourceExhausted
  service->Run();                               // returns when all three ran
  // README example ends
  const io::Metrics m = service->metrics();
  return m.completions_run >= 2 && m.timers_fired == 1 ? 0 : 1;
}

}  // namespace

int main() { return Example(); }
