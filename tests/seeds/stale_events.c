/*
 * Replays "Processing stale cached events" from seeds/001: READ and WRITE
 * events for one socket arrive in the same batch; the READ handler closes
 * the socket and turns over the object's safety flag, so the cached WRITE
 * event, whose udata carries the old flag, is skipped.  Then the object is
 * reused for a new socket (which gets the same descriptor number) and the
 * queue must deliver only the new registration's udata.
 */
#include <stdint.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/seeds/check.h"

struct context {
  int sk;
  int peer;
  void (*handler)(struct context *obj);
  int flag;
  int handled;
};

static void handler_func(struct context *obj) {
  obj->handled++;
  /* "the client has sent some invalid data": close and turn the flag */
  close(obj->sk);
  close(obj->peer);
  obj->flag = !obj->flag;
}

static void attach(int kq, struct context *obj) {
  int sv[2];
  CHECK(0 == socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
  obj->sk = sv[0];
  obj->peer = sv[1];
  void *ptr = (void *)((size_t)obj | (size_t)obj->flag);
  struct kevent events[2];
  EV_SET(&events[0], obj->sk, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, ptr);
  EV_SET(&events[1], obj->sk, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, ptr);
  CHECK(0 == kevent(kq, events, 2, NULL, 0, NULL));
  CHECK(1 == write(obj->peer, "x", 1)); /* READ and WRITE both ready */
}

/* One loop iteration of the seed; returns the events fetched. */
static int process(int kq, int *skipped) {
  struct kevent events[8];
  struct timespec timeout = kSafetyTimeout;
  int n = kevent(kq, NULL, 0, events, 8, &timeout);
  CHECK(n >= 0);
  for (int i = 0; i < n; i++) {
    void *ptr = events[i].udata;
    struct context *obj = (void *)((size_t)ptr & ~(size_t)1);
    int flag = (size_t)ptr & 1;
    if (flag != obj->flag) {
      (*skipped)++;
      continue;
    }
    obj->handler(obj);
  }
  return n;
}

int main(void) {
  int kq = kqueue();
  CHECK(kq != -1);
  /* Aligned so that the low bit is free, as the seed assumes. */
  static struct context obj __attribute__((aligned(8)));
  obj.handler = handler_func;
  obj.flag = 0;

  attach(kq, &obj);
  int first_fd = obj.sk;
  int skipped = 0;
  CHECK(process(kq, &skipped) == 2); /* both cached in one batch */
  CHECK(obj.handled == 1);
  CHECK(skipped == 1);

  /* The closed socket's registrations are gone: nothing more arrives. */
  struct kevent out[8];
  struct timespec zero = {0, 0};
  CHECK(0 == kevent(kq, NULL, 0, out, 8, &zero));

  /* Reuse: the new socket gets the same number and the flag is now 1. */
  attach(kq, &obj);
  CHECK(obj.sk == first_fd);
  skipped = 0;
  CHECK(process(kq, &skipped) == 2);
  CHECK(obj.handled == 2);
  CHECK(skipped == 1);

  /* Reuse again, but register only EVFILT_WRITE, with different udata: the
   * old EVFILT_READ registration of the same number must not resurface. */
  int sv[2];
  CHECK(0 == socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
  CHECK(sv[0] == first_fd);
  static int marker;
  struct kevent ev;
  EV_SET(&ev, sv[0], EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, &marker);
  CHECK(0 == kevent(kq, &ev, 1, NULL, 0, NULL));
  CHECK(1 == write(sv[1], "y", 1));
  int n = kevent(kq, NULL, 0, out, 8, &kSafetyTimeout);
  CHECK(n == 1);
  CHECK(out[0].filter == EVFILT_WRITE);
  CHECK(out[0].udata == &marker);
  EV_SET(&ev, sv[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
  CHECK(-1 == kevent(kq, &ev, 1, NULL, 0, NULL) && errno == ENOENT);
  close(sv[0]);
  close(sv[1]);
  close(kq);
  return 0;
}
