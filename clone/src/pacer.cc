#include "pacer.h"

#include <algorithm>

namespace replboot::clone {

namespace {
constexpr auto kBurst = std::chrono::milliseconds(100);
constexpr size_t kMinChunk = 4096;
}  // namespace

Pacer::Pacer(int64_t bytes_per_second)
    : seconds_per_byte_(1.0 / static_cast<double>(std::max<int64_t>(bytes_per_second, 1))),
      burst_(std::chrono::duration_cast<Clock::duration>(kBurst)),
      bytes_per_second_(std::max<int64_t>(bytes_per_second, 1)) {}

size_t Pacer::ChunkBytes(size_t max_chunk) const {
  const auto tenth = static_cast<size_t>(bytes_per_second_ / 10);
  return std::min(max_chunk, std::max(tenth, kMinChunk));
}

Pacer::Clock::time_point Pacer::Reserve(size_t bytes, Clock::time_point now) {
  if (!started_) {
    // The first byte starts the schedule: time before it (the tool starting) earns nothing.
    due_ = now;
    started_ = true;
  }
  // Ahead of schedule by more than the burst: wait until only the burst is left.
  const Clock::time_point send_at = std::max(now, due_ - burst_);
  // A source that fell behind the schedule restarts it from the send: no credit beyond the burst.
  due_ = std::max(due_, send_at) +
         std::chrono::duration_cast<Clock::duration>(
             std::chrono::duration<double>(static_cast<double>(bytes) * seconds_per_byte_));
  return send_at;
}

}  // namespace replboot::clone
