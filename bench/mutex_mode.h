// What every kqio benchmark does first: run absl::Mutex as a release build
// of Abseil would.
//
// Debian's libabsl is built without NDEBUG, so every absl::Mutex::Lock also
// runs Abseil's deadlock detector, which updates a process-wide lock graph
// under a global spinlock (~65 ns per lock, and a lock shared by every loop).
// That is a property of the distribution's build, not of kqio, so the
// benchmarks switch it off and say so; KQIO_BENCH_DEADLOCK_DETECTION=1 keeps
// Abseil's default, to see the difference.
#ifndef KQIO_BENCH_MUTEX_MODE_H_
#define KQIO_BENCH_MUTEX_MODE_H_

namespace kqio {
namespace bench {

// Call at the start of main(), before any thread starts.  Prints one line
// to stderr saying which mode is in force.
void UseReleaseMutexMode();

}  // namespace bench
}  // namespace kqio

#endif  // KQIO_BENCH_MUTEX_MODE_H_
