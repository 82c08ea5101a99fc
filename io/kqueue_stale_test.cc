// Conformance tests for closed and reused descriptors.  On FreeBSD close()
// removes every knote of the descriptor, so a registration never outlives
// its file: no event, and no udata, of an old registration may ever be
// returned once the descriptor is closed, even when its number is reused at
// once by another file.  Every test puts the new file on the old number with
// dup2() so that the reuse is certain.
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "io/kqueue_test_util.h"

namespace kqio_test {
namespace {

// Moves `from` onto the number `to` (closing what was there); the caller
// then owns `to`.  The new file may already have been given that number.
void MoveOnto(ScopedFd* from, int to) {
  if (from->get() == to) {
    from->release();
    return;
  }
  ASSERT_EQ(dup2(from->get(), to), to);
  from->reset();
}

class KqueueStaleTest : public KqueueTest {
 protected:
  int old_tag_ = 0;  // udata of every registration on the old file
  int new_tag_ = 0;

  // Registers each of `filters` on `fd` for the old file.
  void RegisterOld(int fd, std::initializer_list<short> filters) {
    for (short filter : filters) {
      ASSERT_EQ(Apply(kq_, fd, filter, EV_ADD, 0, 0, &old_tag_), 0) << filter;
    }
  }

  void ExpectNoOldEvent(const std::vector<struct kevent>& evs) {
    for (const struct kevent& ev : evs) {
      EXPECT_NE(ev.udata, &old_tag_)
          << "stale event: ident " << ev.ident << " filter " << ev.filter;
    }
  }

  // Polls: no event at all (so none of the old file either).
  void ExpectNoEvent() {
    const std::vector<struct kevent> evs = Poll(kq_);
    ExpectNoOldEvent(evs);
    EXPECT_TRUE(evs.empty());
  }
};

// A new socket on the number of a closed one: its peer, kept open (so that
// no EOF makes it readable), has written `data` to it.
struct ReusedSocket {
  ScopedFd fd;
  ScopedFd peer;
};
ReusedSocket ReuseWithSocket(int fd, const std::string& data = "") {
  SocketPair t;
  if (!data.empty()) {
    EXPECT_EQ(write(t.b.get(), data.data(), data.size()),
              static_cast<ssize_t>(data.size()));
  }
  MoveOnto(&t.a, fd);
  return {ScopedFd(fd), std::move(t.b)};
}

// A regular file holding "hello", read from its start; unlinked already.
ScopedFd HelloFile() {
  const std::string dir = MakeTempDir();
  EXPECT_FALSE(dir.empty());
  const std::string path = dir + "/f";
  ScopedFd file(open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600));
  EXPECT_GE(file.get(), 0);
  EXPECT_EQ(unlink(path.c_str()), 0);
  EXPECT_EQ(rmdir(dir.c_str()), 0);
  EXPECT_EQ(write(file.get(), "hello", 5), 5);
  EXPECT_EQ(lseek(file.get(), 0, SEEK_SET), 0);
  return file;
}

// Closes the even pairs' `a` and puts a readable socket on each number.
std::vector<ReusedSocket> ReuseEvenPairs(std::vector<SocketPair>& pairs) {
  std::vector<ReusedSocket> reused;
  for (size_t i = 0; i < pairs.size(); i += 2) {
    const int fd = pairs[i].a.get();
    pairs[i].a.reset();
    reused.push_back(ReuseWithSocket(fd, "w"));
  }
  return reused;
}

TEST_F(KqueueStaleTest, ClosedWithPendingReadinessIsNotReported) {
  SocketPair s;
  const int fd = s.a.get();
  RegisterOld(fd, {EVFILT_READ, EVFILT_WRITE});
  ASSERT_EQ(write(s.b.get(), "x", 1), 1);
  s.a.reset();
  ExpectNoEvent();
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_DELETE), EBADF);
  EXPECT_EQ(Apply(kq_, fd, EVFILT_WRITE, EV_DELETE), EBADF);
}

TEST_F(KqueueStaleTest, ReusedNumberWithoutRegistrationIsSilent) {
  SocketPair s;
  const int fd = s.a.get();
  RegisterOld(fd, {EVFILT_READ, EVFILT_WRITE});
  s.a.reset();
  ReusedSocket reused = ReuseWithSocket(fd, "y");  // readable and writable
  ExpectNoEvent();
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_DELETE), ENOENT);
  EXPECT_EQ(Apply(kq_, fd, EVFILT_WRITE, EV_DELETE), ENOENT);
}

TEST_F(KqueueStaleTest, ReusedNumberRegisteredWithTheOtherFilter) {
  SocketPair s;
  const int fd = s.a.get();
  RegisterOld(fd, {EVFILT_READ});
  ASSERT_EQ(write(s.b.get(), "x", 1), 1);
  s.a.reset();
  // The new socket is readable too.
  ReusedSocket reused = ReuseWithSocket(fd, "yy");
  ASSERT_EQ(Apply(kq_, fd, EVFILT_WRITE, EV_ADD, 0, 0, &new_tag_), 0);
  auto evs = Poll(kq_);
  ExpectNoOldEvent(evs);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].filter, EVFILT_WRITE);
  EXPECT_EQ(evs[0].udata, &new_tag_);
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_DELETE), ENOENT)
      << "the old read registration went with the old file";
}

TEST_F(KqueueStaleTest, ReusedNumberRegisteredWithTheSameFilter) {
  SocketPair s;
  const int fd = s.a.get();
  ASSERT_EQ(Apply(kq_, fd, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, &old_tag_), 0);
  RegisterOld(fd, {EVFILT_WRITE});
  s.a.reset();
  ReusedSocket reused = ReuseWithSocket(fd, "yyy");
  ASSERT_EQ(Apply(kq_, fd, EVFILT_READ, EV_ADD, 0, 0, &new_tag_), 0);
  auto evs = Poll(kq_);
  ExpectNoOldEvent(evs);
  ASSERT_EQ(evs.size(), 1u) << "the old write knote is gone";
  EXPECT_EQ(evs[0].filter, EVFILT_READ);
  EXPECT_EQ(evs[0].udata, &new_tag_);
  EXPECT_EQ(evs[0].data, 3);
  EXPECT_FALSE(Flags(evs[0]) & EV_CLEAR) << "a new knote, not the old one";
  EXPECT_EQ(Poll(kq_).size(), 1u) << "level-triggered";
}

TEST_F(KqueueStaleTest, EventLeftFromAnEarlierCallIsDroppedAfterReuse) {
  // One readiness change of one descriptor activates both of its knotes;
  // with room for one event, the other stays queued inside the kqueue.
  SocketPair s;
  const int fd = s.a.get();
  RegisterOld(fd, {EVFILT_READ, EVFILT_WRITE});
  ASSERT_EQ(write(s.b.get(), "x", 1), 1);
  auto evs = Poll(kq_, 1);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].udata, &old_tag_);
  s.a.reset();
  ReusedSocket reused = ReuseWithSocket(fd, "yy");
  ExpectNoEvent();
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_DELETE), ENOENT);
}

TEST_F(KqueueStaleTest, ReusedNumberNamingARegularFile) {
  SocketPair s;
  const int fd = s.a.get();
  RegisterOld(fd, {EVFILT_READ});
  s.a.reset();
  ScopedFd file = HelloFile();
  ASSERT_GE(file.get(), 0);
  MoveOnto(&file, fd);
  ScopedFd reused(fd);
  // Another filter first, then the same one: both are new registrations.
  ASSERT_EQ(Apply(kq_, fd, EVFILT_WRITE, EV_ADD, 0, 0, &new_tag_), 0);
  ASSERT_EQ(Apply(kq_, fd, EVFILT_READ, EV_ADD, 0, 0, &new_tag_), 0);
  auto evs = Poll(kq_);
  ExpectNoOldEvent(evs);
  ASSERT_EQ(evs.size(), 2u);
  EXPECT_EQ(CountOf(evs, fd, EVFILT_READ), 1);
  EXPECT_EQ(CountOf(evs, fd, EVFILT_WRITE), 1);
  for (const struct kevent& ev : evs) {
    if (ev.filter == EVFILT_READ) {
      EXPECT_EQ(ev.data, 5);
    }
  }
}

TEST_F(KqueueStaleTest, ReusedNumberOfARegularFileNamingASocket) {
  ScopedFd file = HelloFile();
  ASSERT_GE(file.get(), 0);
  const int fd = file.get();
  RegisterOld(fd, {EVFILT_READ, EVFILT_WRITE});
  ASSERT_EQ(Poll(kq_).size(), 2u);
  file.reset();
  ReusedSocket reused = ReuseWithSocket(fd);  // writable, not readable
  ExpectNoEvent();
  ASSERT_EQ(Apply(kq_, fd, EVFILT_READ, EV_ADD, 0, 0, &new_tag_), 0);
  EXPECT_TRUE(Poll(kq_).empty()) << "the socket has nothing to read";
  EXPECT_EQ(Apply(kq_, fd, EVFILT_WRITE, EV_DELETE), ENOENT);
}

TEST_F(KqueueStaleTest, DeleteAfterCloseIsEbadfAndAfterReuseEnoent) {
  SocketPair s;
  const int fd = s.a.get();
  RegisterOld(fd, {EVFILT_READ, EVFILT_WRITE});
  s.a.reset();
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_DELETE), EBADF);
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_ENABLE), EBADF);
  ReusedSocket reused = ReuseWithSocket(fd);
  EXPECT_EQ(Apply(kq_, fd, EVFILT_WRITE, EV_DELETE), ENOENT);
  EXPECT_EQ(Apply(kq_, fd, EVFILT_READ, EV_DISABLE), ENOENT);
  EXPECT_TRUE(Poll(kq_).empty());
}

TEST_F(KqueueStaleTest, ClosedDuringABatchOfManyDescriptors) {
  // Many ready descriptors, fetched a few at a time; half of them are closed
  // (and their numbers reused) between calls.  Every event returned must
  // belong to an open, registered descriptor.
  constexpr int kPairs = 16;
  std::vector<SocketPair> pairs(kPairs);
  std::vector<int> tags(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_EQ(Apply(kq_, pairs[i].a.get(), EVFILT_READ, EV_ADD, 0, 0, &tags[i]),
              0);
    ASSERT_EQ(
        Apply(kq_, pairs[i].a.get(), EVFILT_WRITE, EV_ADD, 0, 0, &tags[i]), 0);
    ASSERT_EQ(write(pairs[i].b.get(), "z", 1), 1);
  }
  ASSERT_EQ(Poll(kq_, 3).size(), 3u);
  const std::vector<ReusedSocket> reused = ReuseEvenPairs(pairs);
  for (int round = 0; round < 8; ++round) {
    for (const struct kevent& ev : Poll(kq_, 5)) {
      const int i = static_cast<int>(static_cast<int*>(ev.udata) - &tags[0]);
      ASSERT_TRUE(i >= 0 && i < kPairs);
      EXPECT_EQ(i % 2, 1) << "event of closed descriptor " << ev.ident;
      EXPECT_EQ(ev.ident, static_cast<uintptr_t>(pairs[i].a.get()));
    }
  }
}

TEST_F(KqueueStaleTest, ReadKnotesLeftFromAnEarlierCallAfterReuse) {
  // As above with read filters only, the commonest registration.  Events
  // left in the queue must be dropped for the closed descriptors and kept
  // for the others.  User events queued first take the room of the first
  // call, so that read events it fetched are left over.
  constexpr int kPairs = 16;
  constexpr int kUser = 3;
  std::vector<SocketPair> pairs(kPairs);
  std::vector<int> tags(kPairs);
  for (int i = 0; i < kUser; ++i) {
    ASSERT_EQ(Apply(kq_, 100 + i, EVFILT_USER, EV_ADD | EV_CLEAR, NOTE_TRIGGER),
              0);
  }
  for (int i = 0; i < kPairs; ++i) {
    ASSERT_EQ(Apply(kq_, pairs[i].a.get(), EVFILT_READ, EV_ADD, 0, 0, &tags[i]),
              0);
    ASSERT_EQ(write(pairs[i].b.get(), "z", 1), 1);
  }
  auto first = Poll(kq_, kUser + 4);
  ASSERT_EQ(first.size(), static_cast<size_t>(kUser + 4));
  for (int i = 0; i < kUser; ++i) {
    ASSERT_EQ(CountOf(first, 100 + i, EVFILT_USER), 1) << "returned first";
  }
  const std::vector<ReusedSocket> reused = ReuseEvenPairs(pairs);
  std::vector<int> seen(kPairs);
  for (int round = 0; round < 8; ++round) {
    for (const struct kevent& ev : Poll(kq_, 5)) {
      const int i = static_cast<int>(static_cast<int*>(ev.udata) - &tags[0]);
      ASSERT_TRUE(i >= 0 && i < kPairs);
      EXPECT_EQ(i % 2, 1) << "event of closed descriptor " << ev.ident;
      EXPECT_EQ(ev.ident, static_cast<uintptr_t>(pairs[i].a.get()));
      EXPECT_EQ(ev.data, 1);
      ++seen[i];
    }
  }
  for (int i = 1; i < kPairs; i += 2) {
    EXPECT_GE(seen[i], 1) << "level-triggered knote " << i << " was lost";
  }
}

}  // namespace
}  // namespace kqio_test
