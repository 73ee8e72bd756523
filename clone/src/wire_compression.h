// Compression on the wire (protocol.h, "Compression on the wire"): the donor's compressor of
// one chunk into one zstd frame, the receiver's bounded streaming decompressor of one ZDATA
// payload, and `auto`'s rule (which level the next window gets). Internal to clone/.
#ifndef REPLBOOT_CLONE_WIRE_COMPRESSION_H_
#define REPLBOOT_CLONE_WIRE_COMPRESSION_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/clone/protocol.h"

namespace replboot::clone {

// One chunk (at most kMaxFrameContent bytes) into one zstd frame (its content size in the
// frame header, window at most 2^kMaxWindowLog). Not thread-safe: one per producer.
class ChunkCompressor {
 public:
  // kInternal when zstd cannot make a context.
  static Result<ChunkCompressor> Create();
  ChunkCompressor(ChunkCompressor&&) noexcept;
  ChunkCompressor& operator=(ChunkCompressor&&) noexcept;
  ~ChunkCompressor();
  // Compresses `in` at `level` into `out`; the frame's size, or 0 when it would not be
  // smaller than `in` (or not fit `out`): then the chunk goes as a plain DATA frame.
  Result<size_t> Compress(int level, std::span<const uint8_t> in, std::span<uint8_t> out);

 private:
  explicit ChunkCompressor(void* ctx) : ctx_(ctx) {}
  void* ctx_ = nullptr;  // ZSTD_CCtx
};

// The receiver's side: each ZDATA payload, after its tag was checked, decompressed streaming
// into at most kMaxFrameContent bytes. Not thread-safe: one per stream.
class FrameDecompressor {
 public:
  // kInternal when zstd cannot make a context.
  static Result<FrameDecompressor> Create();
  FrameDecompressor(FrameDecompressor&&) noexcept;
  FrameDecompressor& operator=(FrameDecompressor&&) noexcept;
  ~FrameDecompressor();
  // Replaces `*out` with what `payload` decompresses to. kCorruption, naming ZDATA frame
  // `index`: an empty payload; "decompresses past N bytes" as soon as the output would pass
  // kMaxFrameContent (nothing more is produced or allocated); "ends inside a zstd frame"
  // (truncated); zstd's own error (a bad header, a window above 2^kMaxWindowLog, a wrong
  // checksum, a dictionary). `out`'s capacity is reused and grows to kMaxFrameContent at most.
  Status Decompress(std::span<const uint8_t> payload, uint64_t index, std::vector<uint8_t>* out);

 private:
  explicit FrameDecompressor(void* ctx) : ctx_(ctx) {}
  void* ctx_ = nullptr;  // ZSTD_DCtx
};

// `auto` (protocol.h): the level of the next window, from what the last one measured. The
// donor's producer reads the tool's output, compresses it and hands it to the receivers'
// queues; what it waited for says what sets the pace:
//   - blocked: waiting for room in a receiver's queue (the bytes leave slower than they are
//     made): the link or the receiver sets the pace.
//   - receiver_limited: the part of the senders' time TCP was held by the receiver's window
//     (TCP_INFO tcpi_rwnd_limited, the slowest receiver): the receiver does not read
//     (its disk or CPU), not the link.
//   - compressing: the producer's own compression.
// Link-bound (blocked ≥ kUpBlocked of the window, and under half of it receiver-limited):
// a level up (off → 1 → 3): the same link carries more stream bytes. Compressor-bound (blocked
// under kDownBlocked while compressing took ≥ kDownCompressing): a level down (3 → 1 → off):
// the tool makes bytes faster than zstd takes them. Receiver-bound (receiver_limited ≥ half
// the window): a level down: decompression would only load that receiver more. Otherwise
// (the tool sets the pace) the level stays: it neither helps nor costs the pace.
struct WindowMeasure {
  std::chrono::steady_clock::duration elapsed{};
  std::chrono::steady_clock::duration blocked{};
  std::chrono::steady_clock::duration compressing{};
  std::chrono::steady_clock::duration receiver_limited{};
};
inline constexpr double kUpBlocked = 0.25;
inline constexpr double kDownBlocked = 0.05;
inline constexpr double kDownCompressing = 0.6;
// The window: at least this long (and at least kAutoWindowChunks chunks), so one slow read
// does not flip the level.
inline constexpr std::chrono::milliseconds kAutoWindow{1'000};
inline constexpr int kAutoWindowChunks = 8;
inline constexpr int kAutoHoldWindows = 10;
struct AutoDecision {
  int level = 0;       // 0 = off
  std::string reason;  // "link-bound", "compressor-bound", "receiver-bound", "" (unchanged)
};
class AutoLevel {
 public:
  explicit AutoLevel(int max_level) : max_level_(max_level) {}
  int level() const { return level_; }
  // The level for the next window, from what this one measured.
  AutoDecision Next(const WindowMeasure& m);

 private:
  int max_level_;
  int level_ = 0;
  int barred_level_ = -1;  // not tried again while hold_ > 0
  int hold_ = 0;
};

// What a donor grants a run (backup_server.h, ServerOptions::cpus): one mode for every
// receiver of it. mode "off" | "zstd" | "auto", level as StreamHeader's, and why none.
struct Grant {
  std::string mode = "off";
  int level = 0;
  std::string reason;  // why off, when off
};
Grant DecideGrant(const std::vector<CompressRequest>& asked, int64_t cpus, int64_t parallel);

// What TCP_INFO says about a connection so far (cumulative microseconds): how long it was
// busy sending and how long of it the receiver's window held it. nullopt when the kernel
// does not tell (not TCP, too old a kernel).
struct TcpLimits {
  uint64_t busy_us = 0;
  uint64_t rwnd_limited_us = 0;
};
std::optional<TcpLimits> ReadTcpLimits(int fd);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_WIRE_COMPRESSION_H_
