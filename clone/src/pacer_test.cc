#include "pacer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace replboot::clone {
namespace {

using Clock = Pacer::Clock;
using std::chrono::duration;
using std::chrono::milliseconds;

double Seconds(Clock::duration d) { return duration<double>(d).count(); }

struct Send {
  Clock::time_point at;
  size_t bytes;
};

// A source that always has `chunk` bytes ready from `from` on, for `how_long` of simulated time.
std::vector<Send> RunEagerSource(Pacer& pacer, size_t chunk, Clock::time_point from,
                                 Clock::duration how_long) {
  std::vector<Send> sends;
  Clock::time_point now = from;
  while (now < from + how_long) {
    const Clock::time_point at = pacer.Reserve(chunk, now);
    sends.push_back({at, chunk});
    now = at;  // the caller slept until then, then read the next chunk at once
  }
  return sends;
}

// The most bytes sent within any window of `window` (the sends' times sorted as they come).
uint64_t MostBytesInAnyWindow(const std::vector<Send>& sends, Clock::duration window) {
  uint64_t best = 0;
  uint64_t in = 0;
  size_t first = 0;
  for (size_t i = 0; i < sends.size(); ++i) {
    in += sends[i].bytes;
    while (sends[i].at - sends[first].at >= window) in -= sends[first++].bytes;
    best = std::max(best, in);
  }
  return best;
}

TEST(PacerTest, AnEagerSourceIsHeldToTheRateWithinOnePerCent) {
  const int64_t rate = 20'000'000;
  Pacer pacer(rate);
  const size_t chunk = pacer.ChunkBytes(1 << 20);
  EXPECT_EQ(chunk, size_t{1} << 20);  // a tenth of a second is 2 MB: the frame bounds it
  const Clock::time_point t0 = Clock::now();
  auto sends = RunEagerSource(pacer, chunk, t0, std::chrono::seconds(10));
  uint64_t total = 0;
  for (const auto& s : sends) total += s.bytes;
  // From the first send to the last one's end (the last chunk is due a chunk's time later).
  const double seconds = Seconds(sends.back().at - sends.front().at) +
                         static_cast<double>(chunk) / static_cast<double>(rate);
  const double measured = static_cast<double>(total) / seconds;
  EXPECT_NEAR(measured / static_cast<double>(rate), 1.0, 0.01) << measured;
}

TEST(PacerTest, ASourceThatPausedDoesNotCatchUpInAFlood) {
  const int64_t rate = 10'000'000;
  Pacer pacer(rate);
  const size_t chunk = pacer.ChunkBytes(1 << 20);
  const Clock::time_point t0 = Clock::now();
  auto before = RunEagerSource(pacer, chunk, t0, std::chrono::seconds(2));
  // The tool goes quiet for 5 s (a large file's first pages, a lock), then has everything ready.
  const Clock::time_point resume = before.back().at + std::chrono::seconds(5);
  auto after = RunEagerSource(pacer, chunk, resume, std::chrono::seconds(3));
  // Within any second after the pause: the rate plus at most the 100 ms burst and one chunk.
  const uint64_t most = MostBytesInAnyWindow(after, std::chrono::seconds(1));
  EXPECT_LE(most, static_cast<uint64_t>(rate) + static_cast<uint64_t>(rate / 10) + chunk);
  // Pacing from the run's start would have sent the 5 s it missed at once: 50 MB.
  EXPECT_LT(most, static_cast<uint64_t>(rate) * 2);
}

TEST(PacerTest, TheToolsStartUpEarnsNoCredit) {
  const int64_t rate = 10'000'000;
  Pacer pacer(rate);
  const size_t chunk = pacer.ChunkBytes(1 << 20);
  // The first byte comes 3 s after the run started: the schedule starts with it.
  const Clock::time_point first = Clock::now() + std::chrono::seconds(3);
  auto sends = RunEagerSource(pacer, chunk, first, std::chrono::seconds(2));
  EXPECT_LE(MostBytesInAnyWindow(sends, std::chrono::seconds(1)),
            static_cast<uint64_t>(rate) + static_cast<uint64_t>(rate / 10) + chunk);
}

TEST(PacerTest, ASlowSourceIsNeverHeldBack) {
  Pacer pacer(100'000'000);
  Clock::time_point now = Clock::now();
  for (int i = 0; i < 100; ++i) {
    // 64 KiB every 10 ms is 6.5 MB/s, far under the limit: each send goes when it is read.
    EXPECT_EQ(pacer.Reserve(64 << 10, now), now);
    now += milliseconds(10);
  }
}

TEST(PacerTest, ChunksStayWithinTheBurstAndTheFrame) {
  EXPECT_EQ(Pacer(1'000).ChunkBytes(1 << 20), 4096u);  // at least 4 KiB
  EXPECT_EQ(Pacer(50'000'000).ChunkBytes(1 << 20), 1u << 20);  // at most the frame
  EXPECT_EQ(Pacer(5'000'000).ChunkBytes(1 << 20), 500'000u);
}

}  // namespace
}  // namespace replboot::clone
