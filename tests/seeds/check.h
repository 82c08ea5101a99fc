/*
 * The seed programs are C, as in the documents kqio grew from
 * (../shared/seeds/), so that they prove <sys/event.h> serves C programs
 * unchanged.  CHECK stays active under NDEBUG, unlike assert().
 */
#ifndef KQIO_TESTS_SEEDS_CHECK_H_
#define KQIO_TESTS_SEEDS_CHECK_H_

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                      \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: CHECK(%s) failed (errno %d: %s)\n",        \
              __FILE__, __LINE__, #cond, errno, strerror(errno));        \
      exit(1);                                                           \
    }                                                                    \
  } while (0)

/* Every wait in these programs is bounded, so that a bug fails the test
 * instead of hanging it. */
static const struct timespec kSafetyTimeout = {5, 0};

#endif /* KQIO_TESTS_SEEDS_CHECK_H_ */
