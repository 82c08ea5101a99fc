#include "aio/buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace kqio {
namespace aio {

Buffer::Buffer(size_t size, size_t alignment) : size_(size) {
  if (size == 0) return;
  void* p = nullptr;
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  if (posix_memalign(&p, alignment, size) != 0) throw std::bad_alloc();
  data_.reset(static_cast<char*>(p));
}

Buffer Buffer::CopyOf(absl::string_view bytes) {
  Buffer b(bytes.size());
  if (!bytes.empty()) std::memcpy(b.data(), bytes.data(), bytes.size());
  return b;
}

void Buffer::Resize(size_t size, size_t keep) {
  Buffer moved(size);
  if (keep > 0) std::memcpy(moved.data(), data(), keep);
  *this = std::move(moved);
}

}  // namespace aio
}  // namespace kqio
