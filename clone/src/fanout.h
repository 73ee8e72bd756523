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
// Bounded memory: a receiver's queue holds at most `buffer_bytes` (one chunk more when the
// queue was empty, so a chunk bigger than the buffer still passes). The queues share the
// chunks, so a run holds at most buffer_bytes + one chunk per receiver (the one its sender is
// writing), whatever the number of receivers; the sender copies a chunk into a frame of its
// own (one more chunk each) unless it is the run's only receiver.
//
// A slow receiver: Publish() waits while any receiver's queue is full, which paces the tool
// to the slowest receiver (what a lone receiver gets today). But a receiver whose queue stays
// full for longer than `grace` while another receiver's queue is empty (that one waits for
// data the slow one holds back) is dropped: its queue is freed at once, and its sender ends
// it with an ERROR (code "dropped") naming why after the frame it is writing. When every
// receiver is slow (a shared link), none holds another back and none is dropped. A receiver
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
};

struct Limits {
  size_t buffer_bytes = 8u << 20;
  std::chrono::milliseconds grace{5'000};
  size_t max_receivers = 8;
};

class Run {
 public:
  Run(uint64_t id, Limits limits);
  uint64_t id() const { return id_; }

  // --- joining ---
  // A new receiver while the run is joining and has room; nullopt otherwise (the caller
  // starts another run or answers busy).
  std::optional<size_t> Join(std::string name, std::string peer);
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
  void Sent(size_t i, size_t bytes);
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
    std::deque<std::shared_ptr<Chunk>> queue;
    size_t queued_bytes = 0;
    bool header_sent = false;
    bool trailer_sent = false;
    bool error_sent = false;
    // Since when this receiver's full queue keeps another receiver waiting (see above).
    std::optional<std::chrono::steady_clock::time_point> holding_since;
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
  std::vector<Receiver> receivers_;
};

}  // namespace replboot::clone::fanout

#endif  // REPLBOOT_CLONE_FANOUT_H_
