// Streaming decompression of one .zst/.lz4 member of an xbstream.
//
// libarchive's read API pulls its input through a callback and cannot be paused
// when the input runs dry, while the xbstream reader pushes bytes as they come off
// the wire. So each compressed member gets a worker thread that runs libarchive
// (raw format + zstd/lz4 filter) and blocks in the read callback on a small
// bounded queue (base/bounded_queue.h); Push() blocks when the queue is full. Memory per
// member is bounded by kMaxQueuedBytes plus libarchive's own buffers.
#ifndef REPLBOOT_BACKUP_XBSTREAM_DECOMPRESSOR_H_
#define REPLBOOT_BACKUP_XBSTREAM_DECOMPRESSOR_H_

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "replboot/base/bounded_queue.h"
#include "replboot/base/status.h"

struct archive;  // libarchive

namespace replboot::backup {

enum class Codec { kZstd, kLz4 };

class Decompressor {
 public:
  static constexpr size_t kMaxQueuedBytes = 8u << 20;

  // Writes the decompressed bytes of `name` (for errors) to `out_fd` from offset 0.
  // The descriptor must stay open until Finish() or the destructor returns.
  Decompressor(int out_fd, std::string name, Codec codec);
  ~Decompressor();  // stops the worker; any output so far is garbage
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Queues compressed bytes (copied). Returns the worker's error once it has one.
  Status Push(std::span<const uint8_t> data);
  // End of input: waits for the worker; fails if the data was not a complete
  // zstd/lz4 stream. Returns the number of bytes written through `*written`.
  Status Finish(uint64_t* written);

 private:
  void Run();
  static long ReadCallback(::archive* a, void* self, const void** buffer);  // NOLINT

  Status TrailingData() const;

  int out_fd_;
  std::string name_;
  Codec codec_;
  BoundedByteQueue queue_{kMaxQueuedBytes};
  std::mutex mu_;  // guards the worker's results below
  Status worker_status_;
  uint64_t output_bytes_ = 0;
  size_t unread_bytes_ = 0;  // queued when the compressed stream had ended
  // Worker only: the block libarchive is reading from (it stays counted in the
  // queue until the next read callback), and whether Run() already popped it.
  std::vector<uint8_t> current_;
  bool current_unread_ = false;
  std::thread worker_;
};

}  // namespace replboot::backup

#endif  // REPLBOOT_BACKUP_XBSTREAM_DECOMPRESSOR_H_
