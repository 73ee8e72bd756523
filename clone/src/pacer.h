// Holds a byte stream to a rate: the donor's `backup.bandwidth_limit`.
//
// A virtual schedule (GCRA): every byte is due 1/rate after the one before it, and a send may
// run ahead of its due time by at most `burst` (100 ms of the rate). Credit never builds up
// beyond that burst, so a stream whose source paused (the backup tool starting, or copying a
// file's first pages) goes on at the rate afterwards, not in a catch-up flood that would put the
// bytes the pause did not send onto the network at once. Over any stretch of a run, the bytes
// sent stay within rate × time + one burst + one chunk: what makes the limit hold within a few
// per cent over a clone of seconds, where pacing from the run's start exceeded it by the whole
// of the tool's start-up.
#ifndef REPLBOOT_CLONE_PACER_H_
#define REPLBOOT_CLONE_PACER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace replboot::clone {

class Pacer {
 public:
  using Clock = std::chrono::steady_clock;

  // bytes_per_second > 0.
  explicit Pacer(int64_t bytes_per_second);

  // The most bytes to read for one send: a tenth of a second of the rate (at least 4 KiB), at
  // most `max_chunk`, so that one send never exceeds the burst.
  size_t ChunkBytes(size_t max_chunk) const;

  // When `bytes` (read at `now`) may be sent; the caller sleeps until then. Records them as sent
  // at that time.
  Clock::time_point Reserve(size_t bytes, Clock::time_point now);

 private:
  double seconds_per_byte_;
  Clock::duration burst_;
  int64_t bytes_per_second_;
  Clock::time_point due_{};  // when the next byte is due; in the past while the source is slow
  bool started_ = false;
};

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_PACER_H_
