// One backup run shared by several receivers (issue 12): the donor reads the backup tool's
// output once and hands every chunk to every receiver of the run. Each receiver keeps its own
// authenticated session (its own stream key and frame counter, so its own tags), its own
// HEADER and its own TRAILER: on the wire nothing tells a receiver of a shared run from a lone
// one, and the replica's side is unchanged. Internal to clone/; BackupServer drives it.
//
//   Join (while the run is joining) ... Start(header) | Fail(why)
//   producer: Publish(chunk) ... Finish(trailer)
//   sender i: Next(i) → HEADER, DATA..., TRAILER (or ERROR when dropped / failed)
//
// Bounded memory: a receiver's queue holds chunks of at most `buffer_bytes` of memory (a
// chunk's whole frame counts, however short the read that filled it; one chunk more when the
// queue was empty, so a chunk bigger than the buffer still passes). Every receiver gets every
// chunk, so the queues are suffixes of one sequence and share their chunks: together they
// hold no more than the longest one. Add per receiver the chunk its sender is writing and,
// unless it is the run's only receiver, its own tagged copy; and the few idle chunks of the
// producer's ChunkPool (4). With 1 MiB chunks a run holds at most about buffer_bytes + 2 MiB
// per receiver + 5 MiB: 21 MiB for four receivers with the default 8 MiB buffer.
//
// A slow receiver: Publish() waits while any receiver's queue is full, which paces the tool
// to the slowest receiver (what a lone receiver gets today). A receiver holds the others back
// while its queue is full and another receiver's is empty (that one waits for data the slow
// one keeps from it). One that, within the last `slow_window`, held the others back for
// `grace` in total is dropped: its queue is freed at once, and its sender ends it with an
// ERROR (code "dropped") naming why after the frame it is writing. The time is added up, not
// taken unbroken, so a receiver that takes one chunk just before each grace runs out is
// dropped as surely as one that takes nothing. In rates: while it holds them, the others
// take nothing, so it is dropped when its average rate over the window falls below
// (1 - grace / slow_window) of what the others could take: half, by default (5 s of 10 s).
// When every receiver is slow (a shared link), none holds another back and none is dropped. A receiver
// whose sender fails (the client left, a write timed out) is Gone() and no longer waited for.
// Publish() returns false when no receiver is left: then the tool is killed.
//
// Threads: one producer, one sender per receiver, any status reader; all thread-safe.
#ifndef REPLBOOT_CLONE_FANOUT_H_
#define REPLBOOT_CLONE_FANOUT_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/clone/backup_server.h"
#include "replboot/clone/protocol.h"

namespace replboot::clone::fanout {

// One read from the tool, laid out as a DATA frame so a lone receiver sends it in place.
struct Chunk {
  std::vector<uint8_t> frame;  // kFrameHeaderSize bytes of room, the payload, kTagSize of room
  size_t size = 0;             // payload bytes
  // kData, or kZData when the payload is the tool's bytes as one zstd frame (protocol.h);
  // stream_bytes is what the tool wrote for it (size, for kData).
  FrameType type = FrameType::kData;
  size_t stream_bytes = 0;
  // What it holds in memory, which the queues' bound counts: a short read still costs its
  // whole frame.
  size_t memory() const { return frame.size(); }
};

// Frames to refill: a chunk whose last holder lets go comes back here (at most `keep` of
// them wait), so the producer reuses memory instead of allocating a frame per read. The pool's
// mutex orders the last reader's use of a chunk before its refill.
class ChunkPool {
 public:
  ChunkPool(size_t frame_bytes, size_t keep);
  // A chunk with a frame of frame_bytes (payload size 0); back to the pool when released.
  std::shared_ptr<Chunk> Take();
  size_t idle() const;  // chunks waiting to be refilled

 private:
  struct State {
    std::mutex mu;
    std::vector<std::unique_ptr<Chunk>> free;
    size_t keep = 0;
  };
  size_t frame_bytes_;
  std::shared_ptr<State> state_;  // shared with the chunks' deleters: they may outlive the pool
};

struct Limits {
  size_t buffer_bytes = 8u << 20;
  std::chrono::milliseconds grace{5'000};         // held back in total, within:
  std::chrono::milliseconds slow_window{10'000};  // (at least grace)
  size_t max_receivers = 8;
};

class Run {
 public:
  Run(uint64_t id, Limits limits);
  uint64_t id() const { return id_; }

  // --- joining ---
  // A new receiver while the run is joining and has room; nullopt otherwise (the caller
  // starts another run or answers busy).
  // `compress` is what its HELLO asked (the producer grants one mode for the whole run).
  std::optional<size_t> Join(std::string name, std::string peer, CompressRequest compress = {});
  // What each receiver that joined asked for, in join order.
  std::vector<CompressRequest> CompressRequests() const;
  // The run's grant ("off", "zstd:1", "auto:3"), shown in every receiver's status.
  void SetCompression(const std::string& grant);
  // Waits until `deadline`, until the run is full, or until stop; then no one joins any more.
  // Returns the receivers that joined.
  size_t CloseJoiningAt(std::chrono::steady_clock::time_point deadline, std::stop_token stop);
  size_t receivers() const;
  bool joining() const;

  // --- producer ---
  // Every receiver still there gets a HEADER with `header` (run_id and run_receivers set).
  void Start(StreamHeader header);
  // Every receiver still there gets ERROR backup_failed with `message` (before Start(): the
  // header could not be made; after: the run was aborted).
  void Fail(std::string message);
  // Queues `chunk` for every receiver still there, waiting while one is full (dropping one
  // that holds the others back past the grace; `dropped` gets each one dropped, for the
  // caller's log). False when no receiver is left or on stop.
  bool Publish(std::shared_ptr<Chunk> chunk, const std::stop_token& stop,
               std::vector<BackupReceiverStatus>* dropped);
  // Every receiver still there gets the TRAILER after its queue.
  void Finish(const StreamTrailer& trailer);
  // The receivers still being served (waiting, streaming).
  size_t live() const;

  // --- sender of receiver i ---
  struct Item {
    enum class Kind { kNone, kHeader, kData, kTrailer, kError };
    Kind kind = Kind::kNone;
    std::shared_ptr<Chunk> chunk;  // kData
    std::string payload;           // kHeader, kTrailer: the frame's payload
    ErrorMessage error;            // kError
    bool trailer_ok = false;       // kTrailer: the tool said "completed OK!"
  };
  // The next thing to send, waiting at most `wait` (kNone then: check the socket and stop).
  Item Next(size_t i, std::chrono::milliseconds wait);
  // The sole receiver may send chunks in place (nobody else reads them).
  bool sole_receiver() const;
  // `bytes` of the stream sent to receiver i as `wire_bytes` of DATA/ZDATA payload.
  void Sent(size_t i, size_t bytes, size_t wire_bytes);
  // The sender's TCP_INFO of receiver i so far (cumulative), for `auto` (wire_compression.h).
  void ReportLink(size_t i, uint64_t rwnd_limited_us);
  // The largest rwnd-limited time (cumulative µs) any live receiver reported; the producer
  // takes its growth over a window.
  uint64_t MaxRwndLimited() const;
  // The sender gave up on receiver i (`reason`: the client left, a write failed).
  void Gone(size_t i, std::string reason);
  // Receiver i got the whole stream and the trailer.
  void Done(size_t i);

  // --- status ---
  std::vector<BackupReceiverStatus> Status() const;

 private:
  enum class Phase { kJoining, kWaitingStart, kStreaming, kFinished, kFailed };
  struct Receiver {
    BackupReceiverStatus status;
    CompressRequest compress;
    uint64_t rwnd_limited_us = 0;
    std::deque<std::shared_ptr<Chunk>> queue;
    size_t queued_bytes = 0;
    bool header_sent = false;
    bool trailer_sent = false;
    bool error_sent = false;
    // Since when this receiver's full queue keeps another receiver waiting (see above), and
    // the earlier spells of it that end within the slow window.
    std::optional<std::chrono::steady_clock::time_point> holding_since;
    std::deque<std::pair<std::chrono::steady_clock::time_point,
                         std::chrono::steady_clock::time_point>>
        held;
    // The time it held the others back within the window that ends at `now`.
    std::chrono::steady_clock::duration HeldWithin(std::chrono::steady_clock::time_point now,
                                                   std::chrono::milliseconds window);
    void StopHolding(std::chrono::steady_clock::time_point now);
    bool Live() const;
  };
  void DropLocked(Receiver& r, std::string reason);

  const uint64_t id_;
  const Limits limits_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Phase phase_ = Phase::kJoining;
  size_t started_with_ = 0;
  StreamHeader header_;
  std::string failure_;
  StreamTrailer trailer_;
  // A deque: a receiver's sender keeps a reference across waits while others join.
  std::deque<Receiver> receivers_;
};

}  // namespace replboot::clone::fanout

#endif  // REPLBOOT_CLONE_FANOUT_H_
