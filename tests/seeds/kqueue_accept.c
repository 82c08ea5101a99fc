/*
 * Replays "kqueue-accept.c" from seeds/001: a listening socket registered for
 * EVFILT_READ and EVFILT_WRITE with EV_CLEAR after listen(); the first event
 * is the READ event of an incoming connection (a listening socket is never
 * writable), and accept() succeeds.  The port is ephemeral instead of 64000,
 * and the client is this same process.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/seeds/check.h"

struct context {
  int sk;
  int accepted;
  void (*rhandler)(struct context *obj);
};

static void accept_handler(struct context *obj) {
  int csock = accept(obj->sk, NULL, 0);
  CHECK(csock != -1);
  obj->accepted++;
  close(csock);
}

int main(void) {
  int kq = kqueue();
  CHECK(kq != -1);

  struct context obj = {0};
  obj.rhandler = accept_handler;
  obj.sk = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(obj.sk != -1);
  CHECK(fcntl(obj.sk, F_SETFL, O_NONBLOCK) == 0);
  int val = 1;
  setsockopt(obj.sk, SOL_SOCKET, SO_REUSEADDR, &val, 4);

  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(0 == bind(obj.sk, (struct sockaddr *)&addr, sizeof(addr)));
  CHECK(0 == listen(obj.sk, 0));
  socklen_t len = sizeof(addr);
  CHECK(0 == getsockname(obj.sk, (struct sockaddr *)&addr, &len));

  struct kevent events[2];
  EV_SET(&events[0], obj.sk, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, &obj);
  EV_SET(&events[1], obj.sk, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, &obj);
  CHECK(0 == kevent(kq, events, 2, NULL, 0, NULL));

  /* Nothing is ready before a client arrives. */
  struct timespec zero = {0, 0};
  CHECK(0 == kevent(kq, NULL, 0, events, 2, &zero));

  int client = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(client != -1);
  CHECK(0 == connect(client, (struct sockaddr *)&addr, sizeof(addr)));

  int n = kevent(kq, NULL, 0, events, 1, &kSafetyTimeout);
  CHECK(n == 1);
  struct context *o = events[0].udata;
  CHECK(o == &obj);
  CHECK(events[0].filter == EVFILT_READ);
  CHECK(events[0].ident == (uintptr_t)obj.sk);
  CHECK(events[0].data == 1); /* one connection waiting */
  o->rhandler(o);
  CHECK(obj.accepted == 1);

  /* EV_CLEAR: the accepted connection is gone and nothing new arrived. */
  CHECK(0 == kevent(kq, NULL, 0, events, 2, &zero));

  close(client);
  close(obj.sk);
  close(kq);
  return 0;
}
