// A bounded queue of byte blocks between one producer thread and one consumer
// thread: the stream hand-off behind a pipelined extraction (clone/) and a
// streaming decompressor (backup/).
//
// Blocks keep the producer's batching: each Push() becomes one block, handed to
// the consumer as it was pushed, never split or merged. Push() copies the
// producer's borrowed bytes once, after there is room; Pop() moves the block out,
// so a byte is copied once on its way through.
//
// The cap bounds what sits between the two threads: the queued blocks plus the
// one the consumer holds, which counts until its next Pop() (or Close()), since
// a consumer usually works on a block in place (writes it, or lends it to
// libarchive until the next read callback).
//
// A producer that fills its own buffers (e.g. reads a socket into them) hands them over
// with PushOwned() instead: no copy, and the buffer the consumer finished with comes back
// to be filled again, so a steady stream allocates nothing and touches no new pages.
// Blocks count by capacity(), the memory they hold (equal to size() for Push()).
#ifndef REPLBOOT_BASE_BOUNDED_QUEUE_H_
#define REPLBOOT_BASE_BOUNDED_QUEUE_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <vector>

namespace replboot {

class BoundedByteQueue {
 public:
  // `max_bytes` is the cap; a single block larger than it is still accepted
  // when nothing else is held, so no Push() can wait forever.
  explicit BoundedByteQueue(size_t max_bytes) : max_bytes_(max_bytes) {}
  BoundedByteQueue(const BoundedByteQueue&) = delete;
  BoundedByteQueue& operator=(const BoundedByteQueue&) = delete;

  // Producer: queues a copy of `bytes` as one block, first waiting while the
  // queue holds bytes and this block would take it past the cap. False, with
  // nothing queued, once Close() was called (also while waiting). An empty span
  // queues nothing and returns true: the consumer never sees an empty block.
  bool Push(std::span<const uint8_t> bytes);

  // Producer: queues `*block` itself, waiting for room as Push() does, and leaves in
  // `*block` a buffer the consumer finished with (contents unspecified, size and capacity
  // kept, so refilling it allocates nothing), or an empty vector when there is none. Once
  // this is used, blocks the consumer is done with are kept for it instead of freed. The
  // producer only needs a new buffer when none is spare, i.e. when every other one is
  // queued or the consumer's, which the cap bounds: with buffers of one capacity C there
  // are never more than cap / C + 2 of them. False, with `*block` left as it was, once
  // Close() was called; an empty block queues nothing and returns true.
  bool PushOwned(std::vector<uint8_t>* block);

  // Producer: no more blocks. Pop() hands out what is queued, then returns false.
  void EndInput();

  // Consumer: replaces `*block` (releasing the previous block's bytes from the
  // cap) with the next block, waiting for one. False, leaving `*block` empty,
  // once the input ended and every block was popped (ended() is then true), or
  // once Close() was called (closed()).
  bool Pop(std::vector<uint8_t>* block);

  // Either side: stops the hand-off. Waiters wake; Push() and Pop() return false
  // from now on. Queued blocks are dropped; returns how many bytes they held
  // (bytes the consumer never got, e.g. data after the end of a stream).
  size_t Close();

  // The input ended and every block was popped (not dropped by Close()).
  bool ended() const;
  bool closed() const;
  // Bytes counted against the cap: the capacity of the queued blocks plus the block the
  // consumer holds.
  size_t held_bytes() const;

 private:
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable ready_;  // a block, the end, or Close(): for the consumer
  std::condition_variable space_;  // room, or Close(): for the producer
  std::deque<std::vector<uint8_t>> blocks_;
  size_t held_ = 0;     // queued bytes + in_hand_
  size_t in_hand_ = 0;  // size of the consumer's last popped block
  bool input_ended_ = false;
  bool closed_ = false;
  bool recycling_ = false;  // PushOwned() was used: keep the blocks the consumer is done with
  std::vector<std::vector<uint8_t>> spares_;  // those blocks, for the producer
};

}  // namespace replboot

#endif  // REPLBOOT_BASE_BOUNDED_QUEUE_H_
