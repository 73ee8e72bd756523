#include "replboot/base/bounded_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace replboot {
namespace {

std::vector<uint8_t> Block(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

// Long enough for a thread that could proceed to have done so on a loaded
// machine; only ever used to show that something did *not* happen.
void Pause() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

TEST(BoundedByteQueueTest, KeepsOrderAndBlocksAsPushed) {
  BoundedByteQueue q(1 << 20);
  ASSERT_TRUE(q.Push(Block(3, 1)));
  ASSERT_TRUE(q.Push(Block(5, 2)));
  q.EndInput();
  std::vector<uint8_t> b;
  ASSERT_TRUE(q.Pop(&b));
  EXPECT_EQ(b, Block(3, 1));
  ASSERT_TRUE(q.Pop(&b));
  EXPECT_EQ(b, Block(5, 2));
  EXPECT_TRUE(q.ended());  // the input ended and every block was popped
  EXPECT_FALSE(q.Pop(&b));
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(q.ended());
  EXPECT_FALSE(q.closed());
}

TEST(BoundedByteQueueTest, EmptyPushQueuesNothing) {
  BoundedByteQueue q(16);
  ASSERT_TRUE(q.Push({}));
  EXPECT_EQ(q.held_bytes(), 0u);
  q.EndInput();
  std::vector<uint8_t> b;
  EXPECT_FALSE(q.Pop(&b));  // no empty block: an empty read would mean "end" to a reader
}

TEST(BoundedByteQueueTest, ThePoppedBlockCountsUntilTheNextPop) {
  BoundedByteQueue q(100);
  ASSERT_TRUE(q.Push(Block(60, 1)));
  std::vector<uint8_t> b;
  ASSERT_TRUE(q.Pop(&b));
  EXPECT_EQ(q.held_bytes(), 60u);
  ASSERT_TRUE(q.Push(Block(40, 2)));  // exactly at the cap
  EXPECT_EQ(q.held_bytes(), 100u);
  ASSERT_TRUE(q.Pop(&b));
  EXPECT_EQ(q.held_bytes(), 40u);
  q.EndInput();
  EXPECT_FALSE(q.Pop(&b));
  EXPECT_EQ(q.held_bytes(), 0u);
}

TEST(BoundedByteQueueTest, PushWaitsForRoomUntilTheConsumerMovesOn) {
  BoundedByteQueue q(100);
  ASSERT_TRUE(q.Push(Block(60, 1)));
  std::vector<uint8_t> b;
  ASSERT_TRUE(q.Pop(&b));  // held by the consumer: still 60 of 100
  std::atomic<bool> pushed = false;
  std::thread producer([&] {
    EXPECT_TRUE(q.Push(Block(41, 2)));
    pushed = true;
  });
  Pause();
  EXPECT_FALSE(pushed) << "a push past the cap went through";
  std::thread consumer([&] {
    std::vector<uint8_t> next;
    EXPECT_TRUE(q.Pop(&next));  // releases the first block, then gets the second
    EXPECT_EQ(next, Block(41, 2));
  });
  producer.join();
  consumer.join();
  EXPECT_TRUE(pushed);
}

TEST(BoundedByteQueueTest, ABlockLargerThanTheCapGoesIntoAnEmptyQueue) {
  BoundedByteQueue q(16);
  ASSERT_TRUE(q.Push(Block(1000, 1)));
  std::vector<uint8_t> b;
  ASSERT_TRUE(q.Pop(&b));
  std::thread consumer([&] {
    std::vector<uint8_t> next;
    EXPECT_TRUE(q.Pop(&next));
    EXPECT_EQ(next.size(), 1000u);
  });
  ASSERT_TRUE(q.Push(Block(1000, 2)));  // waits for the first one's release
  consumer.join();
}

TEST(BoundedByteQueueTest, PopWaitsForABlockOrTheEnd) {
  BoundedByteQueue q(16);
  std::atomic<int> popped = 0;
  std::thread consumer([&] {
    std::vector<uint8_t> b;
    while (q.Pop(&b)) ++popped;
  });
  Pause();
  EXPECT_EQ(popped, 0);
  ASSERT_TRUE(q.Push(Block(4, 1)));
  q.EndInput();
  consumer.join();
  EXPECT_EQ(popped, 1);
  EXPECT_TRUE(q.ended());
}

TEST(BoundedByteQueueTest, CloseWakesAWaitingProducerAndDropsTheQueue) {
  BoundedByteQueue q(10);
  ASSERT_TRUE(q.Push(Block(8, 1)));
  std::atomic<bool> returned = false;
  bool result = true;
  std::thread producer([&] {
    result = q.Push(Block(8, 2));
    returned = true;
  });
  Pause();
  EXPECT_FALSE(returned);
  EXPECT_EQ(q.Close(), 8u);  // the block nobody popped
  producer.join();
  EXPECT_FALSE(result);
  EXPECT_TRUE(q.closed());
  EXPECT_EQ(q.held_bytes(), 0u);
  EXPECT_FALSE(q.Push(Block(1, 3)));
  std::vector<uint8_t> b;
  EXPECT_FALSE(q.Pop(&b));
}

TEST(BoundedByteQueueTest, CloseWakesAWaitingConsumer) {
  BoundedByteQueue q(10);
  bool result = true;
  std::thread consumer([&] {
    std::vector<uint8_t> b;
    result = q.Pop(&b);
  });
  Pause();
  EXPECT_EQ(q.Close(), 0u);
  consumer.join();
  EXPECT_FALSE(result);
  EXPECT_FALSE(q.ended());  // closed, not ended: the input never said it was complete
}

TEST(BoundedByteQueueTest, CloseDoesNotCountTheConsumersBlockAsUnread) {
  BoundedByteQueue q(100);
  ASSERT_TRUE(q.Push(Block(10, 1)));
  ASSERT_TRUE(q.Push(Block(20, 2)));
  std::vector<uint8_t> b;
  ASSERT_TRUE(q.Pop(&b));
  EXPECT_EQ(q.Close(), 20u);
  EXPECT_FALSE(q.Pop(&b));
}

TEST(BoundedByteQueueTest, StreamsEveryByteInOrderWithinTheCap) {
  constexpr size_t kCap = 4096;
  BoundedByteQueue q(kCap);
  std::vector<uint8_t> sent;
  std::vector<uint8_t> got;
  std::atomic<bool> over_cap = false;
  std::thread consumer([&] {
    std::vector<uint8_t> b;
    while (q.Pop(&b)) {
      // Oversized blocks (up to 2 * kCap below) travel alone.
      if (q.held_bytes() > kCap && q.held_bytes() != b.size()) over_cap = true;
      got.insert(got.end(), b.begin(), b.end());
    }
  });
  std::mt19937 rng(42);
  for (int i = 0; i < 2000; ++i) {
    auto block = Block(rng() % (2 * kCap) + (i % 3 == 0 ? 0 : 1), static_cast<uint8_t>(i));
    sent.insert(sent.end(), block.begin(), block.end());
    ASSERT_TRUE(q.Push(block));
  }
  q.EndInput();
  consumer.join();
  EXPECT_EQ(got, sent);
  EXPECT_FALSE(over_cap);
}

TEST(BoundedByteQueueTest, PushOwnedMovesTheBlockAndHandsBackTheConsumersLast) {
  BoundedByteQueue q(1 << 20);
  std::vector<uint8_t> a = Block(100, 1);
  a.reserve(4096);
  const uint8_t* first = a.data();
  ASSERT_TRUE(q.PushOwned(&a));
  EXPECT_EQ(a.capacity(), 0u);  // no spare yet
  EXPECT_EQ(q.held_bytes(), 4096u);  // counted by the memory it holds, not its size
  std::vector<uint8_t> got;
  ASSERT_TRUE(q.Pop(&got));
  EXPECT_EQ(got.data(), first);  // the producer's own buffer: not copied
  EXPECT_EQ(got, Block(100, 1));
  std::vector<uint8_t> b = Block(50, 2);
  ASSERT_TRUE(q.PushOwned(&b));
  EXPECT_EQ(b.capacity(), 0u);  // the consumer still works on the first block
  ASSERT_TRUE(q.Pop(&got));     // done with the first: it becomes the spare
  EXPECT_EQ(got, Block(50, 2));
  EXPECT_EQ(q.held_bytes(), 50u);  // the spare is not counted
  std::vector<uint8_t> c = Block(10, 3);
  ASSERT_TRUE(q.PushOwned(&c));
  EXPECT_EQ(c.data(), first);  // back to the producer, capacity kept
  EXPECT_EQ(c.capacity(), 4096u);
  std::vector<uint8_t> empty;
  ASSERT_TRUE(q.PushOwned(&empty));  // queues nothing
  q.EndInput();
  ASSERT_TRUE(q.Pop(&got));
  EXPECT_EQ(got, Block(10, 3));
  EXPECT_FALSE(q.Pop(&got));
  EXPECT_EQ(q.Close(), 0u);
  std::vector<uint8_t> d = Block(5, 4);
  EXPECT_FALSE(q.PushOwned(&d));
  EXPECT_EQ(d, Block(5, 4));  // refused: left as it was
}

// A producer that fills whatever buffer it is handed (allocating only when it gets none)
// streams through a handful of buffers: the queued ones within the cap, the consumer's, the
// spare and its own.
TEST(BoundedByteQueueTest, PushOwnedStreamsThroughAFixedSetOfBuffers) {
  constexpr size_t kBlock = 1024;
  constexpr size_t kCap = 4 * kBlock;
  BoundedByteQueue q(kCap);
  std::vector<uint8_t> sent;
  std::vector<uint8_t> got;
  std::atomic<bool> over_cap = false;
  std::thread consumer([&] {
    std::vector<uint8_t> b;
    while (q.Pop(&b)) {
      if (q.held_bytes() > kCap) over_cap = true;
      got.insert(got.end(), b.begin(), b.end());
      if (b.size() % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  std::mt19937 rng(7);
  std::vector<uint8_t> buffer;
  int allocations = 0;
  for (int i = 0; i < 3000; ++i) {
    if (buffer.capacity() == 0) {
      buffer.reserve(kBlock);
      ++allocations;
    }
    buffer.resize(rng() % kBlock + 1);
    for (size_t j = 0; j < buffer.size(); ++j) buffer[j] = static_cast<uint8_t>(i + j * 7);
    sent.insert(sent.end(), buffer.begin(), buffer.end());
    ASSERT_TRUE(q.PushOwned(&buffer));
  }
  q.EndInput();
  consumer.join();
  EXPECT_EQ(got, sent);
  EXPECT_FALSE(over_cap);
  EXPECT_LE(allocations, static_cast<int>(kCap / kBlock) + 2);
}

}  // namespace
}  // namespace replboot
