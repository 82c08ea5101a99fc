#include "bench/mutex_mode.h"

#include <stdio.h>
#include <stdlib.h>

#include "absl/synchronization/mutex.h"

namespace kqio {
namespace bench {

void UseReleaseMutexMode() {
  const char* keep = getenv("KQIO_BENCH_DEADLOCK_DETECTION");
  if (keep != nullptr && keep[0] == '1') {
    fprintf(stderr, "absl::Mutex deadlock detection: on (Abseil's default)\n");
    return;
  }
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  fprintf(stderr,
          "absl::Mutex deadlock detection: off, as in a release build "
          "(KQIO_BENCH_DEADLOCK_DETECTION=1 keeps it)\n");
}

}  // namespace bench
}  // namespace kqio
