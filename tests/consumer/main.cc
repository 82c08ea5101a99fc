// Uses kqio the way a service would: <sys/event.h> from @kqio//io:kqueue,
// Abseil from the service's own @com_google_absl.
#include <sys/event.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "absl/container/node_hash_set.h"
#include "absl/strings/str_format.h"

namespace {

int Fail(const char* what) {
  absl::FPrintF(stderr, "consumer: %s failed: %s\n", what, std::strerror(errno));
  return 1;
}

}  // namespace

int main() {
  const int kq = kqueue();
  if (kq < 0) return Fail("kqueue()");

  int marker = 0;
  struct kevent change;
  EV_SET(&change, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, &marker);
  if (kevent(kq, &change, 1, nullptr, 0, nullptr) != 0) return Fail("EV_ADD");
  EV_SET(&change, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, &marker);
  if (kevent(kq, &change, 1, nullptr, 0, nullptr) != 0) return Fail("NOTE_TRIGGER");

  struct kevent event;
  const struct timespec timeout = {1, 0};
  const int n = kevent(kq, nullptr, 0, &event, 1, &timeout);
  if (n < 0) return Fail("kevent wait");
  if (n != 1) {
    absl::FPrintF(stderr, "consumer: expected 1 event within 1s, got %d\n", n);
    return 1;
  }

  absl::node_hash_set<uintptr_t> seen = {event.ident};
  if (!seen.contains(1) || event.filter != EVFILT_USER ||
      event.udata != &marker || (event.flags & EV_ERROR) != 0) {
    absl::FPrintF(stderr, "consumer: wrong event ident=%u filter=%d flags=%#x\n",
                  event.ident, event.filter, event.flags);
    return 1;
  }
  if (close(kq) != 0) return Fail("close(kq)");

  absl::PrintF("consumer ok\n");
  return 0;
}
