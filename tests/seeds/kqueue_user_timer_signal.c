/*
 * Replays "kqueue-user.c", "kqueue-timer.c" (periodic and EV_ONESHOT) and
 * "kqueue-signal.c" from seeds/001, in that order, in one program.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/event.h>
#include <time.h>
#include <unistd.h>

#include "tests/seeds/check.h"

struct context {
  void (*handler)(struct context *obj);
  int calls;
};

static void count_handler(struct context *obj) { obj->calls++; }

static int kq;
static struct context user_event_obj;

/* kqueue-user.c triggers from the same thread; a worker thread is what kqio
 * itself does, so trigger from one. */
static void *trigger_user_event(void *arg) {
  (void)arg;
  struct kevent events[1];
  EV_SET(&events[0], 1234, EVFILT_USER, 0, NOTE_TRIGGER, 0, &user_event_obj);
  CHECK(0 == kevent(kq, events, 1, NULL, 0, NULL));
  return NULL;
}

static void user_event(void) {
  user_event_obj.handler = count_handler;
  struct kevent events[1];
  EV_SET(&events[0], 1234, EVFILT_USER, EV_ADD | EV_ENABLE | EV_CLEAR, 0, 0,
         NULL);
  CHECK(0 == kevent(kq, events, 1, NULL, 0, NULL));

  pthread_t worker;
  CHECK(0 == pthread_create(&worker, NULL, trigger_user_event, NULL));
  int n = kevent(kq, NULL, 0, events, 1, &kSafetyTimeout);
  CHECK(n == 1);
  CHECK(events[0].filter == EVFILT_USER);
  CHECK(events[0].ident == 1234);
  struct context *o = events[0].udata; /* the trigger's udata comes back */
  CHECK(o == &user_event_obj);
  o->handler(o);
  CHECK(pthread_join(worker, NULL) == 0);
  CHECK(user_event_obj.calls == 1);

  /* EV_CLEAR: it does not signal again until triggered again. */
  struct timespec zero = {0, 0};
  CHECK(0 == kevent(kq, NULL, 0, events, 1, &zero));
}

static void timers(void) {
  struct context obj = {count_handler, 0};
  int period_ms = 20;
  struct kevent events[1];
  EV_SET(&events[0], 1234, EVFILT_TIMER, EV_ADD | EV_ENABLE, 0, period_ms,
         &obj);
  CHECK(0 == kevent(kq, events, 1, NULL, 0, NULL));
  int64_t expirations = 0;
  while (obj.calls < 3) {
    int n = kevent(kq, NULL, 0, events, 1, &kSafetyTimeout);
    CHECK(n == 1);
    CHECK(events[0].filter == EVFILT_TIMER);
    CHECK(events[0].data >= 1);
    expirations += events[0].data;
    struct context *o = events[0].udata;
    o->handler(o);
  }
  CHECK(expirations >= 3);
  EV_SET(&events[0], 1234, EVFILT_TIMER, EV_DELETE, 0, 0, NULL);
  CHECK(0 == kevent(kq, events, 1, NULL, 0, NULL));

  /* One-shot: fires once, then the registration is gone. */
  obj.calls = 0;
  EV_SET(&events[0], 1234, EVFILT_TIMER, EV_ADD | EV_ENABLE | EV_ONESHOT, 0,
         period_ms, &obj);
  CHECK(0 == kevent(kq, events, 1, NULL, 0, NULL));
  CHECK(1 == kevent(kq, NULL, 0, events, 1, &kSafetyTimeout));
  CHECK(events[0].data == 1);
  ((struct context *)events[0].udata)->handler(events[0].udata);
  struct timespec later = {0, 3 * period_ms * 1000000};
  CHECK(0 == kevent(kq, NULL, 0, events, 1, &later));
  EV_SET(&events[0], 1234, EVFILT_TIMER, EV_DELETE, 0, 0, NULL);
  CHECK(-1 == kevent(kq, events, 1, NULL, 0, NULL) && errno == ENOENT);
  CHECK(obj.calls == 1);
}

static void signals(void) {
  struct context obj = {count_handler, 0};
  int sig = SIGUSR1;
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, sig);
  sigprocmask(SIG_BLOCK, &mask, NULL);

  struct kevent events[1];
  EV_SET(&events[0], sig, EVFILT_SIGNAL, EV_ADD | EV_ENABLE, 0, 0, &obj);
  CHECK(0 == kevent(kq, events, 1, NULL, 0, NULL));
  CHECK(0 == kill(getpid(), sig));
  int n = kevent(kq, NULL, 0, events, 1, &kSafetyTimeout);
  CHECK(n > 0);
  CHECK(events[0].filter == EVFILT_SIGNAL);
  CHECK((int)events[0].ident == SIGUSR1);
  CHECK(events[0].data == 1);
  struct context *o = events[0].udata;
  o->handler(o);
  CHECK(obj.calls == 1);
}

int main(void) {
  kq = kqueue();
  CHECK(kq != -1);
  user_event();
  timers();
  signals();
  CHECK(close(kq) == 0);
  return 0;
}
