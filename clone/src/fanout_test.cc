// The fan-out run's bookkeeping on its own: the join window, the bounded queues, dropping
// the receiver that holds the others back (and only that one), receivers that leave.
#include "fanout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>

namespace replboot::clone::fanout {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Kind = Run::Item::Kind;

// A chunk of `size` payload bytes in a frame with room for `capacity` (default: just them).
std::shared_ptr<Chunk> MakeChunk(size_t size, size_t capacity = 0) {
  auto chunk = std::make_shared<Chunk>();
  chunk->frame.assign(kFrameHeaderSize + std::max(size, capacity) + kTagSize, 'x');
  chunk->size = size;
  return chunk;
}
// What a MakeChunk(1000) costs a queue.
const size_t kMem = kFrameHeaderSize + 1000 + kTagSize;

Limits Small(size_t buffer, milliseconds grace = milliseconds(200)) {
  Limits limits;
  limits.buffer_bytes = buffer;
  limits.grace = grace;
  limits.max_receivers = 4;
  return limits;
}

// Starts `run` with these receivers joined and the window closed.
void Started(Run& run, std::initializer_list<const char*> names) {
  for (const char* name : names) ASSERT_TRUE(run.Join(name, std::string(name) + ":1"));
  run.CloseJoiningAt(Clock::now(), {});
  StreamHeader header;
  header.flavour = "mariadb";
  run.Start(header);
}

// Takes receiver i's HEADER.
void TakeHeader(Run& run, size_t i) {
  auto item = run.Next(i, milliseconds(1000));
  ASSERT_EQ(item.kind, Kind::kHeader);
}

TEST(ChunkPoolTest, ReleasedChunksAreReusedAndAtMostKeepWait) {
  ChunkPool pool(100, 2);
  auto a = pool.Take();
  auto b = pool.Take();
  auto c = pool.Take();
  EXPECT_EQ(a->frame.size(), 100u);
  a->size = 42;
  a.reset();
  b.reset();
  c.reset();
  EXPECT_EQ(pool.idle(), 2u) << "more than `keep` idle chunks kept";
  auto again = pool.Take();
  EXPECT_EQ(again->size, 0u);
  EXPECT_EQ(pool.idle(), 1u);
  // A chunk may outlive its pool (a slow sender still holds it when the run ends).
  std::shared_ptr<Chunk> survivor;
  {
    ChunkPool gone(10, 1);
    survivor = gone.Take();
  }
  survivor.reset();
}

TEST(FanoutRunTest, WindowCollectsReceiversThenClosesAndEachGetsItsHeaderWithTheRun) {
  fanout::Run run(7, Small(1 << 20));
  ASSERT_TRUE(run.Join("mysql-1", "10.0.0.1:40000"));
  std::thread late([&] {
    std::this_thread::sleep_for(milliseconds(100));
    EXPECT_TRUE(run.Join("mysql-2", "10.0.0.2:40000"));
  });
  const auto start = Clock::now();
  EXPECT_EQ(run.CloseJoiningAt(start + milliseconds(400), {}), 2u);
  EXPECT_GE(Clock::now() - start, milliseconds(380));
  late.join();
  EXPECT_FALSE(run.joining());
  EXPECT_FALSE(run.Join("mysql-3", "10.0.0.3:40000")) << "joined after the window closed";

  StreamHeader header;
  header.flavour = "mariadb";
  header.estimated_bytes = 123;
  run.Start(header);
  EXPECT_FALSE(run.sole_receiver());
  for (size_t i = 0; i < 2; ++i) {
    auto item = run.Next(i, milliseconds(1000));
    ASSERT_EQ(item.kind, Kind::kHeader);
    auto decoded = DecodeStreamHeader(item.payload);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->run_id, 7u);
    EXPECT_EQ(decoded->run_receivers, 2u);
    EXPECT_EQ(decoded->estimated_bytes, 123u);
  }
  auto status = run.Status();
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[0].name, "mysql-1");
  EXPECT_EQ(status[1].state, "streaming");
}

TEST(FanoutRunTest, AFullRunStartsBeforeItsWindowEnds) {
  Limits limits = Small(1 << 20);
  limits.max_receivers = 2;
  fanout::Run run(1, limits);
  ASSERT_TRUE(run.Join("a", "a:1"));
  ASSERT_TRUE(run.Join("b", "b:1"));
  EXPECT_FALSE(run.Join("c", "c:1"));
  const auto start = Clock::now();
  EXPECT_EQ(run.CloseJoiningAt(start + milliseconds(5000), {}), 2u);
  EXPECT_LT(Clock::now() - start, milliseconds(1000));
}

TEST(FanoutRunTest, StopEndsTheWindow) {
  fanout::Run run(1, Small(1 << 20));
  ASSERT_TRUE(run.Join("a", "a:1"));
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds(100));
    stop.request_stop();
  });
  const auto start = Clock::now();
  run.CloseJoiningAt(start + milliseconds(10000), stop.get_token());
  EXPECT_LT(Clock::now() - start, milliseconds(2000));
  stopper.join();
}

// A lone receiver is never dropped: a full queue only makes the producer wait (the tool is
// paced to it, as without fan-out).
TEST(FanoutRunTest, QueueIsBoundedAndALoneReceiverOnlySlowsTheProducer) {
  fanout::Run run(1, Small(3 * kMem, milliseconds(50)));
  Started(run, {"a"});
  EXPECT_TRUE(run.sole_receiver());
  TakeHeader(run, 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(run.Publish(MakeChunk(1000), {}, nullptr));
  EXPECT_EQ(run.Status()[0].queued_bytes, 3 * kMem);
  std::vector<BackupReceiverStatus> dropped;
  auto fourth =
      std::async(std::launch::async, [&] { return run.Publish(MakeChunk(1000), {}, &dropped); });
  EXPECT_EQ(fourth.wait_for(milliseconds(400)), std::future_status::timeout)
      << "published past the receiver's buffer";
  auto item = run.Next(0, milliseconds(1000));
  ASSERT_EQ(item.kind, Kind::kData);
  EXPECT_EQ(item.chunk->size, 1000u);
  EXPECT_TRUE(fourth.get());
  EXPECT_TRUE(dropped.empty());
  EXPECT_EQ(run.Status()[0].queued_bytes, 3 * kMem);
}

// The bound is on memory: a short read still holds its whole frame.
TEST(FanoutRunTest, AShortReadCostsItsWholeFrame) {
  fanout::Run run(1, Small(2 * kMem, milliseconds(50)));
  Started(run, {"a"});
  ASSERT_TRUE(run.Publish(MakeChunk(10, 1000), {}, nullptr));
  ASSERT_TRUE(run.Publish(MakeChunk(10, 1000), {}, nullptr));
  EXPECT_EQ(run.Status()[0].queued_bytes, 2 * kMem);
  std::stop_source stop;
  auto third = std::async(std::launch::async, [&] {
    return run.Publish(MakeChunk(10, 1000), stop.get_token(), nullptr);
  });
  EXPECT_EQ(third.wait_for(milliseconds(300)), std::future_status::timeout)
      << "twenty payload bytes filled a buffer of two frames, yet a third was queued";
  stop.request_stop();
  EXPECT_FALSE(third.get());
}

// A chunk bigger than the whole buffer still passes an empty queue (else nothing would).
TEST(FanoutRunTest, AChunkBiggerThanTheBufferPassesAnEmptyQueue) {
  fanout::Run run(1, Small(100));
  Started(run, {"a"});
  ASSERT_TRUE(run.Publish(MakeChunk(1000), {}, nullptr));
  EXPECT_EQ(run.Status()[0].queued_bytes, kMem);
}

TEST(FanoutRunTest, SlowReceiverHoldingTheOthersBackIsDroppedAndTheRestGoOn) {
  fanout::Run run(3, Small(2 * kMem, milliseconds(200)));
  Started(run, {"fast", "slow"});
  TakeHeader(run, 0);
  TakeHeader(run, 1);
  // "fast" takes everything at once; "slow" takes nothing.
  std::atomic<bool> done{false};
  std::atomic<uint64_t> fast_bytes{0};
  std::thread fast([&] {
    while (!done) {
      auto item = run.Next(0, milliseconds(50));
      if (item.kind == Kind::kData) {
        fast_bytes += item.chunk->size;
        run.Sent(0, item.chunk->size, item.chunk->size);
      }
      if (item.kind == Kind::kTrailer) break;
    }
  });
  std::vector<BackupReceiverStatus> dropped;
  const auto start = Clock::now();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(run.Publish(MakeChunk(1000), {}, &dropped));
  const auto elapsed = Clock::now() - start;
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].name, "slow");
  EXPECT_NE(dropped[0].reason.find("full while fast waited for data for 200 ms of the last 10000 ms"),
            std::string::npos)
      << dropped[0].reason;
  // Held back for the grace, not longer (generous bound for a loaded machine).
  EXPECT_GE(elapsed, milliseconds(190));
  EXPECT_LT(elapsed, milliseconds(3000));
  StreamTrailer trailer;
  trailer.exit_code = 0;
  trailer.last_line = "completed OK!";
  run.Finish(trailer);
  fast.join();
  done = true;
  EXPECT_EQ(fast_bytes.load(), 20'000u);

  auto status = run.Status();
  EXPECT_EQ(status[1].state, "dropped");
  EXPECT_EQ(status[1].queued_bytes, 0u) << "a dropped receiver's queue is freed at once";
  // Its sender ends it with an ERROR that says why, once.
  auto item = run.Next(1, milliseconds(100));
  ASSERT_EQ(item.kind, Kind::kError);
  EXPECT_EQ(item.error.code, "dropped");
  EXPECT_NE(item.error.message.find("dropped from shared backup run 3"), std::string::npos)
      << item.error.message;
  EXPECT_EQ(run.Next(1, milliseconds(50)).kind, Kind::kNone);
  EXPECT_EQ(run.live(), 1u);
}

// The old rule's blind spot: a receiver that takes one chunk just before each grace runs out
// never stays full unbroken for the grace, yet paces the whole run. The time is added up.
TEST(FanoutRunTest, AReceiverTakingOneChunkJustBeforeEachGraceIsDroppedWithinTheWindow) {
  Limits limits = Small(2 * kMem, milliseconds(400));
  limits.slow_window = milliseconds(2'000);
  fanout::Run run(4, limits);
  Started(run, {"fast", "dribble"});
  TakeHeader(run, 0);
  TakeHeader(run, 1);
  std::atomic<bool> done{false};
  std::thread fast([&] {
    while (!done) {
      auto item = run.Next(0, milliseconds(20));
      if (item.kind == Kind::kTrailer) break;
    }
  });
  std::thread dribble([&] {
    while (!done) {
      std::this_thread::sleep_for(milliseconds(300));  // under the 400 ms grace each time
      auto item = run.Next(1, milliseconds(10));
      if (item.kind == Kind::kError || item.kind == Kind::kTrailer) break;
    }
  });
  std::vector<BackupReceiverStatus> dropped;
  const auto start = Clock::now();
  for (int i = 0; i < 40 && dropped.empty(); ++i) ASSERT_TRUE(run.Publish(MakeChunk(1000), {}, &dropped));
  const auto elapsed = Clock::now() - start;
  ASSERT_EQ(dropped.size(), 1u) << "never dropped: its spells were each under the grace";
  EXPECT_EQ(dropped[0].name, "dribble");
  EXPECT_NE(dropped[0].reason.find("under 80% of the others' pace"), std::string::npos)
      << dropped[0].reason;
  EXPECT_LT(elapsed, milliseconds(2'000)) << "within the window (about 400 ms of holding)";
  StreamTrailer trailer;
  trailer.exit_code = 0;
  trailer.last_line = "completed OK!";
  run.Finish(trailer);
  done = true;
  fast.join();
  dribble.join();
}

// All receivers slow (a shared link): none holds another back, so none is dropped.
TEST(FanoutRunTest, NobodyIsDroppedWhenEveryReceiverIsFull) {
  fanout::Run run(1, Small(kMem, milliseconds(100)));
  Started(run, {"a", "b"});
  ASSERT_TRUE(run.Publish(MakeChunk(1000), {}, nullptr));
  std::stop_source stop;
  std::vector<BackupReceiverStatus> dropped;
  auto blocked = std::async(
      std::launch::async, [&] { return run.Publish(MakeChunk(1000), stop.get_token(), &dropped); });
  EXPECT_EQ(blocked.wait_for(milliseconds(500)), std::future_status::timeout);
  EXPECT_EQ(run.live(), 2u);
  stop.request_stop();
  EXPECT_FALSE(blocked.get());
  EXPECT_TRUE(dropped.empty());
}

TEST(FanoutRunTest, AReceiverThatLeftIsNotWaitedForAndTheLastOneEndsTheRun) {
  fanout::Run run(1, Small(kMem));
  Started(run, {"a", "b"});
  ASSERT_TRUE(run.Publish(MakeChunk(1000), {}, nullptr));
  run.Gone(1, "client went away");
  EXPECT_EQ(run.Status()[1].queued_bytes, 0u);
  // "a" is full, "b" gone: a publish waits for "a" alone and never drops it.
  auto next =
      std::async(std::launch::async, [&] { return run.Publish(MakeChunk(1000), {}, nullptr); });
  EXPECT_EQ(next.wait_for(milliseconds(300)), std::future_status::timeout);
  TakeHeader(run, 0);
  ASSERT_EQ(run.Next(0, milliseconds(500)).kind, Kind::kData);
  EXPECT_TRUE(next.get());
  run.Gone(0, "client went away");
  EXPECT_EQ(run.live(), 0u);
  EXPECT_FALSE(run.Publish(MakeChunk(1000), {}, nullptr)) << "no receiver left: kill the tool";
  auto status = run.Status();
  EXPECT_EQ(status[1].state, "gone");
  EXPECT_EQ(status[1].reason, "client went away");
}

TEST(FanoutRunTest, TrailerComesAfterTheQueueAndAFailureReachesEveryone) {
  fanout::Run run(1, Small(10'000));
  Started(run, {"a"});
  TakeHeader(run, 0);
  ASSERT_TRUE(run.Publish(MakeChunk(10), {}, nullptr));
  StreamTrailer trailer;
  trailer.exit_code = 0;
  trailer.last_line = "[00] completed OK!";
  trailer.bytes = 10;
  run.Finish(trailer);
  EXPECT_EQ(run.Next(0, milliseconds(100)).kind, Kind::kData);
  auto end = run.Next(0, milliseconds(100));
  ASSERT_EQ(end.kind, Kind::kTrailer);
  EXPECT_TRUE(end.trailer_ok);
  run.Done(0);
  EXPECT_EQ(run.Status()[0].state, "done");

  fanout::Run failed(2, Small(10'000));
  ASSERT_TRUE(failed.Join("a", "a:1"));
  ASSERT_TRUE(failed.Join("b", "b:1"));
  failed.CloseJoiningAt(Clock::now(), {});
  failed.Fail("cannot query the local server: gone");
  for (size_t i = 0; i < 2; ++i) {
    auto item = failed.Next(i, milliseconds(100));
    ASSERT_EQ(item.kind, Kind::kError);
    EXPECT_EQ(item.error.code, "backup_failed");
    EXPECT_EQ(item.error.message, "cannot query the local server: gone");
  }
  EXPECT_EQ(failed.live(), 0u);
}

}  // namespace
}  // namespace replboot::clone::fanout
