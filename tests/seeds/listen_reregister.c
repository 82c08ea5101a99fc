/*
 * Replays the system-call sequence of seeds/000 (asio on FreeBSD): the
 * socket is registered for EVFILT_READ|EVFILT_WRITE with EV_CLEAR *before*
 * bind() and listen(), then registered again after listen() and FIONBIO.  On
 * FreeBSD without the fix the knote keeps the data-socket filter and the
 * listener never reports connections; kqio must report the connection.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/event.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/seeds/check.h"

int main(void) {
  int kq = kqueue();
  CHECK(kq != -1);
  int sock = socket(PF_INET, SOCK_STREAM, 6);
  CHECK(sock != -1);

  struct kevent ev[2];
  EV_SET(&ev[0], sock, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, NULL);
  EV_SET(&ev[1], sock, EVFILT_WRITE, EV_ADD | EV_CLEAR, 0, 0, NULL);

  int opt = 1;
#ifdef SO_NOSIGPIPE
  setsockopt(sock, SOL_SOCKET, SO_NOSIGPIPE, &opt, sizeof(opt));
#endif
  CHECK(kevent(kq, ev, 2, NULL, 0, NULL) == 0);

  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &opt, sizeof(opt));
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(bind(sock, (struct sockaddr *)&addr, sizeof(addr)) == 0);
  CHECK(listen(sock, 0x80) == 0);
  CHECK(ioctl(sock, FIONBIO, &opt) == 0);
  CHECK(kevent(kq, ev, 2, NULL, 0, NULL) == 0);

  socklen_t len = sizeof(addr);
  CHECK(getsockname(sock, (struct sockaddr *)&addr, &len) == 0);

  /* An unconnected socket may report writability on some systems; drain
   * whatever is there before the client arrives, then expect the accept. */
  struct timespec zero = {0, 0};
  struct kevent out[32];
  int n = kevent(kq, NULL, 0, out, 32, &zero);
  for (int i = 0; i < n; ++i) CHECK(out[i].filter != EVFILT_READ);

  int client = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(client != -1);
  CHECK(connect(client, (struct sockaddr *)&addr, sizeof(addr)) == 0);

  int got_read = 0;
  while (!got_read) {
    n = kevent(kq, NULL, 0, out, 32, &kSafetyTimeout);
    CHECK(n > 0); /* the listener must not be deaf (seeds/000) */
    for (int i = 0; i < n; ++i) {
      if (out[i].ident == (uintptr_t)sock && out[i].filter == EVFILT_READ) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        int fd = accept(sock, (struct sockaddr *)&peer, &plen);
        CHECK(fd != -1);
        close(fd);
        got_read = 1;
      }
    }
  }
  close(client);
  close(sock);
  close(kq);
  return 0;
}
