/*
 * Replays seeds/002 ("Handling TCP connections with kqueue"): listeners on
 * every address getaddrinfo() returns for the loopback name (IPv4 and IPv6),
 * told apart in the loop by udata; a Unix-domain listener in the same queue;
 * a fixed-size connection pool that refuses connections when full; EV_EOF
 * on disconnect handled with EV_DELETE and close().  The clients are
 * non-blocking sockets of this same process, driven between loop turns.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/seeds/check.h"

#define NUSERS 10
#define MAXSOCK 8

struct uc {
  int uc_fd;
  char *uc_addr;
} users[NUSERS];

static int conn_index(int fd) {
  for (int uidx = 0; uidx < NUSERS; uidx++)
    if (users[uidx].uc_fd == fd) return uidx;
  return -1;
}

static int conn_add(int fd) {
  if (fd < 1) return -1;
  int uidx = conn_index(0);
  if (uidx == -1) return -1;
  users[uidx].uc_fd = fd;
  users[uidx].uc_addr = 0;
  return 0;
}

static int conn_delete(int fd) {
  if (fd < 1) return -1;
  int uidx = conn_index(fd);
  if (uidx == -1) return -1;
  users[uidx].uc_fd = 0;
  users[uidx].uc_addr = NULL;
  return close(fd);
}

static int conn_count(void) {
  int n = 0;
  for (int i = 0; i < NUSERS; i++) n += users[i].uc_fd != 0;
  return n;
}

static void send_msg(int s, const char *message, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, message);
  int len = vsnprintf(buf, sizeof(buf), message, ap);
  va_end(ap);
  CHECK(send(s, buf, len, 0) == len);
}

static int messages_received;
static int refused;

static void recv_msg(int s) {
  char buf[256];
  ssize_t bytes_read = recv(s, buf, sizeof(buf), 0);
  if (bytes_read > 0) messages_received++;
}

static int kq;
static int listeners[MAXSOCK];
static int nlisteners;

/* One turn of watch_loop() from the seed; returns the events handled. */
static int watch_once(void) {
  struct kevent evSet;
  struct kevent evList[32];
  struct sockaddr_storage addr;
  socklen_t socklen = sizeof(addr);
  struct timespec timeout = {0, 200 * 1000000};
  int nev = kevent(kq, NULL, 0, evList, 32, &timeout);
  CHECK(nev >= 0);
  for (int i = 0; i < nev; i++) {
    int fd = (int)evList[i].ident;
    int is_listener = evList[i].udata == (void *)listeners;
    if ((evList[i].flags & EV_EOF) && !is_listener) {
      EV_SET(&evSet, fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
      CHECK(kevent(kq, &evSet, 1, NULL, 0, NULL) != -1);
      CHECK(conn_delete(fd) == 0);
    } else if (is_listener) {
      int c = accept(fd, (struct sockaddr *)&addr, &socklen);
      CHECK(c != -1);
      if (conn_add(c) == 0) {
        EV_SET(&evSet, c, EVFILT_READ, EV_ADD, 0, 0, NULL);
        CHECK(kevent(kq, &evSet, 1, NULL, 0, NULL) != -1);
        send_msg(c, "welcome!\n");
      } else {
        refused++;
        close(c);
      }
    } else if (evList[i].filter == EVFILT_READ) {
      recv_msg(fd);
    }
  }
  return nev;
}

static void watch_until(int (*done)(void)) {
  for (int turns = 0; !done(); turns++) {
    CHECK(turns < 200); /* bounded: 200 turns of at most 200 ms */
    watch_once();
  }
}

static int want_conns, want_refused, want_messages;
static int reached(void) {
  return conn_count() == want_conns && refused == want_refused &&
         messages_received == want_messages;
}

/* Connects a blocking client (loopback connects complete on the backlog). */
static int client_to(const struct sockaddr *sa, socklen_t len) {
  int c = socket(sa->sa_family, SOCK_STREAM, 0);
  CHECK(c != -1);
  CHECK(connect(c, sa, len) == 0);
  return c;
}

static void read_welcome(int c) {
  char buf[32];
  struct timeval tv = {5, 0};
  setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ssize_t r = recv(c, buf, sizeof(buf), 0);
  CHECK(r == 9 && memcmp(buf, "welcome!\n", 9) == 0);
}

int main(void) {
  kq = kqueue();
  CHECK(kq != -1);

  /* Bind every address the loopback name has, IPv6 sorted first on Linux. */
  struct addrinfo hints, *ai0, *ai;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = PF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  struct sockaddr_storage bound[MAXSOCK];
  socklen_t bound_len[MAXSOCK];
  const char *names[] = {"127.0.0.1", "::1"};
  for (int k = 0; k < 2; k++) {
    int error = getaddrinfo(names[k], "0", &hints, &ai0);
    CHECK(error == 0);
    for (ai = ai0; ai && nlisteners < MAXSOCK; ai = ai->ai_next) {
      int s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
      if (s < 0) continue;
      if (bind(s, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(s); /* e.g. no IPv6 on this host */
        continue;
      }
      CHECK(listen(s, 5) == 0);
      bound_len[nlisteners] = sizeof(bound[0]);
      CHECK(getsockname(s, (struct sockaddr *)&bound[nlisteners],
                        &bound_len[nlisteners]) == 0);
      listeners[nlisteners++] = s;
    }
    freeaddrinfo(ai0);
  }
  CHECK(nlisteners >= 1);

  /* A Unix-domain listener in the same queue. */
  struct sockaddr_un sun;
  int local_s = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(local_s != -1);
  memset(&sun, 0, sizeof(struct sockaddr_un));
  sun.sun_family = AF_UNIX;
  /* TEST_TMPDIR under Bazel is longer than sun_path (108 bytes on Linux,
   * 104 on the BSDs), so the socket lives in a short private directory. */
  char dir[] = "/tmp/kqio-seed-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/local.s", dir);
  CHECK(bind(local_s, (struct sockaddr *)&sun, SUN_LEN(&sun)) == 0);
  CHECK(listen(local_s, 5) == 0);
  bound_len[nlisteners] = SUN_LEN(&sun);
  memcpy(&bound[nlisteners], &sun, sizeof(sun));
  listeners[nlisteners++] = local_s;

  /* One registration per listener, all with the same udata. */
  struct kevent evSet;
  for (int i = 0; i < nlisteners; i++) {
    EV_SET(&evSet, listeners[i], EVFILT_READ, EV_ADD, 0, 0,
           (void *)listeners);
    CHECK(kevent(kq, &evSet, 1, NULL, 0, NULL) == 0);
  }

  /* Fill the pool from every listener in turn, then two more. */
  int clients[NUSERS + 2];
  for (int i = 0; i < NUSERS + 2; i++) {
    int l = i % nlisteners;
    clients[i] = client_to((struct sockaddr *)&bound[l], bound_len[l]);
  }
  want_conns = NUSERS;
  want_refused = 2;
  want_messages = 0;
  watch_until(reached);
  for (int i = 0; i < NUSERS; i++) read_welcome(clients[i]);
  for (int i = NUSERS; i < NUSERS + 2; i++) {
    char buf[16];
    CHECK(recv(clients[i], buf, sizeof(buf), 0) <= 0); /* refused: closed */
    close(clients[i]);
  }

  /* Every connected client talks once. */
  for (int i = 0; i < NUSERS; i++) CHECK(send(clients[i], "hi", 2, 0) == 2);
  want_messages = NUSERS;
  watch_until(reached);

  /* Every client leaves: EV_EOF, EV_DELETE, conn_delete; the pool empties
   * and takes a new connection again. */
  for (int i = 0; i < NUSERS; i++) close(clients[i]);
  want_conns = 0;
  watch_until(reached);
  int again = client_to((struct sockaddr *)&bound[0], bound_len[0]);
  want_conns = 1;
  watch_until(reached);
  read_welcome(again);
  close(again);
  want_conns = 0;
  watch_until(reached);

  for (int i = 0; i < nlisteners; i++) close(listeners[i]);
  unlink(sun.sun_path);
  rmdir(dir);
  close(kq);
  return 0;
}
