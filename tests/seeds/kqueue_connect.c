/*
 * Replays "kqueue-connect.c" from seeds/001: a non-blocking connect whose
 * result arrives as an EVFILT_WRITE event (EV_EOF with the error in fflags
 * when it fails), then an HTTP request written and the response read with
 * EV_CLEAR registrations.  A small server thread stands in for the web
 * server; a closed port provides the failure.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/seeds/check.h"

static int kq;
static int quit;
static struct sockaddr_in server_addr;
static char response[4096];
static int response_len;

struct context {
  int sk;
  void (*rhandler)(struct context *obj);
  void (*whandler)(struct context *obj);
  int data_offset;
  int connect_errno;
};

static void obj_write(struct context *obj);
static void obj_read(struct context *obj);

static void obj_prepare(struct context *obj) {
  obj->sk = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  CHECK(obj->sk != -1);
  int val = 1;
  CHECK(0 == setsockopt(obj->sk, IPPROTO_TCP, TCP_NODELAY, (char *)&val,
                        sizeof(int)));
  struct kevent events[2];
  EV_SET(&events[0], obj->sk, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, obj);
  EV_SET(&events[1], obj->sk, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, obj);
  CHECK(0 == kevent(kq, events, 2, NULL, 0, NULL));
}

static void obj_connect(struct context *obj) {
  if (obj->whandler == NULL) {
    int r = connect(obj->sk, (struct sockaddr *)&server_addr,
                    sizeof(struct sockaddr_in));
    if (r == 0) {
      /* connected at once */
    } else if (errno == EINPROGRESS) {
      obj->whandler = obj_connect;
      return;
    } else {
      CHECK(0);
    }
  } else {
    obj->connect_errno = errno; /* set from EV_EOF/fflags by the loop */
    obj->whandler = NULL;
    if (errno != 0) {
      quit = 1;
      return;
    }
  }
  obj_write(obj);
}

static void obj_write(struct context *obj) {
  const char data[] =
      "GET / HTTP/1.1\r\nHost: hostname\r\nConnection: close\r\n\r\n";
  int r = send(obj->sk, data + obj->data_offset,
               sizeof(data) - 1 - obj->data_offset, 0);
  if (r > 0) {
    obj->data_offset += r;
    if (obj->data_offset != (int)sizeof(data) - 1) {
      obj_write(obj);
      return;
    }
    obj->whandler = NULL;
  } else if (r < 0 && errno == EAGAIN) {
    obj->whandler = obj_write;
    return;
  } else {
    CHECK(0);
  }
  obj_read(obj);
}

static void obj_read(struct context *obj) {
  char data[64 * 1024];
  int r = recv(obj->sk, data, sizeof(data), 0);
  if (r > 0) {
    CHECK(response_len + r < (int)sizeof(response));
    memcpy(response + response_len, data, r);
    response_len += r;
    obj_read(obj);
    return;
  } else if (r == 0) {
    /* the server has finished sending */
  } else if (r < 0 && errno == EAGAIN) {
    obj->rhandler = obj_read;
    return;
  } else {
    CHECK(0);
  }
  quit = 1;
}

/* The event loop of kqueue-connect.c, bounded. */
static void run_loop(void) {
  quit = 0;
  while (!quit) {
    struct kevent events[1];
    int n = kevent(kq, NULL, 0, events, 1, &kSafetyTimeout);
    if (n < 0 && errno == EINTR) continue;
    CHECK(n > 0);
    for (int i = 0; i != n; i++) {
      struct context *o = events[i].udata;
      errno = 0;
      if (events[i].flags & EV_EOF) errno = (int)events[i].fflags;
      if (events[i].filter == EVFILT_READ && o->rhandler != NULL)
        o->rhandler(o);
      if (events[i].filter == EVFILT_WRITE && o->whandler != NULL)
        o->whandler(o);
    }
  }
}

static void *serve_one(void *arg) {
  int ls = *(int *)arg;
  int c = accept(ls, NULL, NULL);
  CHECK(c != -1);
  char buf[1024];
  int got = 0;
  while (got < 4 || memcmp(buf + got - 4, "\r\n\r\n", 4) != 0) {
    int r = recv(c, buf + got, sizeof(buf) - got, 0);
    CHECK(r > 0);
    got += r;
  }
  const char reply[] =
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
  CHECK(send(c, reply, sizeof(reply) - 1, 0) == (int)sizeof(reply) - 1);
  close(c);
  return NULL;
}

static int listen_loopback(void) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(ls != -1);
  memset(&server_addr, 0, sizeof(server_addr));
  server_addr.sin_family = AF_INET;
  server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(0 == bind(ls, (struct sockaddr *)&server_addr, sizeof(server_addr)));
  socklen_t len = sizeof(server_addr);
  CHECK(0 == getsockname(ls, (struct sockaddr *)&server_addr, &len));
  return ls;
}

int main(void) {
  kq = kqueue();
  CHECK(kq != -1);

  /* Success: connect, send the request, read the whole response. */
  int ls = listen_loopback();
  CHECK(0 == listen(ls, 8));
  pthread_t server;
  CHECK(0 == pthread_create(&server, NULL, serve_one, &ls));
  struct context obj = {0};
  obj_prepare(&obj);
  obj_connect(&obj);
  run_loop();
  CHECK(pthread_join(server, NULL) == 0);
  CHECK(obj.connect_errno == 0);
  CHECK(response_len > 0);
  CHECK(strstr(response, "200 OK") != NULL);
  CHECK(memcmp(response + response_len - 5, "hello", 5) == 0);
  close(obj.sk);

  /* Failure: nobody listens on the port; the write filter reports EV_EOF
   * with ECONNREFUSED in fflags, exactly what a blocking connect returns. */
  close(ls);
  ls = listen_loopback(); /* bound, never listening: connections refused */
  struct context refused = {0};
  obj_prepare(&refused);
  obj_connect(&refused);
  if (refused.whandler != NULL) run_loop();
  CHECK(refused.connect_errno == ECONNREFUSED);
  close(refused.sk);
  close(ls);
  close(kq);
  return 0;
}
