// Whether a file range is in the page cache, asked without blocking: how
// the server picks sendfile(2) (cached: zero-copy, and it will not wait for
// the disk) or an aio/ read (not cached: the disk wait happens in the
// kernel's queue or on the pool, never on the loop).
//
// Platform code, one function: Linux probes the range's last byte with
// preadv2(RWF_NOWAIT) (readahead fills ranges front to back, so a cached
// last page almost always means a cached range; a wrong guess costs one
// short sendfile wait, not a wrong answer).  FreeBSD's net/ SendFile uses
// SF_NODISKIO and hands disk waits to the pool itself, so there every range
// counts as cached; so does macOS, which has no non-blocking probe (its
// sendfile may wait for the disk: a documented limit).
#ifndef KQIO_FILESERVER_PAGE_CACHE_H_
#define KQIO_FILESERVER_PAGE_CACHE_H_

#include <cstddef>
#include <cstdint>

namespace kqio {
namespace fileserver {

// True if [offset, offset + length) of `fd` can be sent without waiting
// for the disk, as far as the platform can tell.  Never blocks.
bool PagesCached(int fd, uint64_t offset, size_t length);

}  // namespace fileserver
}  // namespace kqio

#endif  // KQIO_FILESERVER_PAGE_CACHE_H_
