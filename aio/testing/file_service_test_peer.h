// Test-only access to a FileService's insides (LevelDB's habit: test knobs go
// through a friend, not public setters).
#ifndef KQIO_AIO_TESTING_FILE_SERVICE_TEST_PEER_H_
#define KQIO_AIO_TESTING_FILE_SERVICE_TEST_PEER_H_

#include <memory>
#include <utility>

#include "aio/engine.h"
#include "aio/file_service.h"

namespace kqio {
namespace aio {

class FileServiceTestPeer final {
 public:
  using Wrap = absl::AnyInvocable<std::unique_ptr<Engine>(
      EngineKind kind, std::unique_ptr<Engine> engine)>;

  // FileService::Create, with `wrap` applied to every engine as it is made
  // (it gets null for an engine not available here, and may return one),
  // and the pool engine's blocking calls and the fast path's preadv2
  // replaced by `calls` and `nowait_read` if given (`nowait_read` also runs
  // on pool workers, for ReadFile's pool task: it must be thread-safe).
  static absl::StatusOr<std::unique_ptr<FileService>> Create(
      io::IoService& service, threadpool::ThreadPool& pool,
      FileServiceOptions options, Wrap wrap,
      const BlockingCalls* calls = nullptr,
      int64_t (*nowait_read)(int, const struct iovec*, int,
                             uint64_t) = nullptr) {
    FileService::TestHooks hooks;
    hooks.wrap_engine = std::move(wrap);
    hooks.pool_calls = calls;
    hooks.nowait_read = nowait_read;
    return FileService::CreateWithHooks(service, pool, std::move(options),
                                        std::move(hooks));
  }

  static Engine* engine(const FileService& fs, EngineKind kind) {
    return fs.engine(kind);
  }

  // Operations the core still knows: owed to a caller or held by an engine.
  static size_t LiveOps(const FileService& fs);
};

}  // namespace aio
}  // namespace kqio

#endif  // KQIO_AIO_TESTING_FILE_SERVICE_TEST_PEER_H_
