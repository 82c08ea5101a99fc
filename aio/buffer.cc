#include "aio/buffer.h"

#include <cstdlib>
#include <cstring>
#include <new>

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

}  // namespace aio
}  // namespace kqio
