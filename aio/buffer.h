// aio::Buffer: memory that a file operation owns while the kernel or the
// thread pool may still write into it or read from it.
//
// The file API never takes a raw pointer.  A Read or Write is given a Buffer
// by value (moved in); the operation owns it until the engine has really
// finished with it, and hands it back inside the successful result
// (IoResult::buffer).  If the operation fails, is cancelled or misses its
// deadline, the caller gets only the error: the engine may still be using the
// memory, so the Buffer stays with the operation and is released when the
// engine's own completion arrives (contract 2: buffers stay owned until the
// kernel or the pool is done).  Callers that want to reuse memory across
// operations take it back from the result.
//
// A Buffer is a move-only owner of one heap block, aligned to at least
// 64 bytes (Aligned() gives stronger alignment, e.g. 4096 for O_DIRECT).  New
// memory is not initialised.  Not thread-safe; like any value, one owner at a
// time.
#ifndef KQIO_AIO_BUFFER_H_
#define KQIO_AIO_BUFFER_H_

#include <cstddef>
#include <cstdlib>
#include <memory>

#include "absl/strings/string_view.h"

namespace kqio {
namespace aio {

class Buffer final {
 public:
  // An empty buffer (size 0, data() == nullptr).
  Buffer() = default;
  // `size` bytes, uninitialised, 64-byte aligned.  Out of memory: throws
  // std::bad_alloc, like operator new.
  explicit Buffer(size_t size) : Buffer(size, kDefaultAlignment) {}
  // `size` bytes aligned to `alignment` (a power of two, at least
  // sizeof(void*)); uninitialised.
  static Buffer Aligned(size_t size, size_t alignment) {
    return Buffer(size, alignment);
  }
  // A buffer holding a copy of `bytes` (for writes).
  static Buffer CopyOf(absl::string_view bytes);

  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // The first `n` bytes (clamped to size()).
  absl::string_view view(size_t n) const {
    return absl::string_view(data(), n < size_ ? n : size_);
  }
  absl::string_view view() const { return view(size_); }

  // Moves to a new allocation of `size` bytes (default alignment) with the
  // first `keep` bytes copied (keep <= both sizes); the rest uninitialised.
  void Resize(size_t size, size_t keep);

 private:
  static constexpr size_t kDefaultAlignment = 64;
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  Buffer(size_t size, size_t alignment);

  std::unique_ptr<char, Free> data_;
  size_t size_ = 0;
};

}  // namespace aio
}  // namespace kqio

#endif  // KQIO_AIO_BUFFER_H_
