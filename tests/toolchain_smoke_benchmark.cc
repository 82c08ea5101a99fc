// Keeps @com_github_google_benchmark building; run by hand:
//   ./bazelw run -c opt //tests:toolchain_smoke_benchmark
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"

namespace {

void BM_StrCat(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    std::string s = absl::StrCat("fd", i++, ":", state.range(0));
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_StrCat)->Arg(1)->Arg(1 << 20);

}  // namespace
