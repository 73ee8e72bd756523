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
// Resume (protocol.h, "Why resume"; Limits::resume_window > 0): the run keeps its newest
// output in memory (backlog_bytes of chunks, which exist anyway a little longer), and each
// receiver's sender records the frames it sent with their resume chain. A receiver whose
// sender fails (it left, a write timed out: Gone) is *detached* instead of gone, for
// resume_window: the run opens a spool (Spool: a 0600 file in a private dir beside the
// donor's datadir) with the backlog and appends every later chunk to it, so the tool keeps
// running at its own pace (its redo copy must keep up). A resume that proves a frame the
// receiver was sent (Resume) makes it a *spooled* receiver: its sender reads the spool from
// that frame on, up to the trailer; what it has sent, less a backlog, is punched out of the
// file. Bounds: the spool's disk use is at most spool_bytes (records punched behind every
// spooled reader's backlog); when the next chunk would pass it, a spooled reader is waited
// for (like a full queue), and with none the detached receivers are given up and the spool
// deleted (a later resume is refused: a full clone). A window that closes gives its
// receiver up; the spool goes when no detached or spooled receiver is left, at the latest
// when the run ends. At most max_spools runs of a server hold a spool at once (a detach
// beyond that is an ordinary gone receiver). A dropped (slow) receiver is never kept, nor one
// whose write missed its frame deadline (a trickle reader).
//
// Threads: one producer, one sender per receiver, any status reader; all thread-safe.
#ifndef REPLBOOT_CLONE_FANOUT_H_
#define REPLBOOT_CLONE_FANOUT_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/files.h"
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
  uint64_t offset = 0;  // the stream offset of its first byte (of stream_bytes, not payload)
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

// The spool of a run whose receiver went away (see "Resume" above): the run's frames appended
// in stream order, each a record the resumed sender reads back as one frame of the same type
// (DATA, or ZDATA when the run was granted compression: the spool holds what the run sent, so
// nothing is compressed twice and the disk holds the compressed bytes). Records are found and
// released by stream offsets (the bytes the tool wrote), their disk use counts the payloads.
// Not thread-safe: the run's mutex guards it, but for Read (pread of a record that cannot be
// punched while it is read).
inline constexpr char kSpoolDirPrefix[] = ".replboot-resume-spool-";
class Spool {
 public:
  // A private dir (files::OwnedTempDir, 0700, swept at the next start when the donor was
  // killed) under `parent` with one 0600 file.
  static Result<std::unique_ptr<Spool>> Create(const std::string& parent, uint64_t cap_bytes);
  ~Spool();
  // The chunk's payload as the record at chunk.offset (which must be end()); kUnavailable
  // when it would take the disk use past the cap.
  Status Append(const Chunk& chunk);
  bool Fits(size_t bytes) const { return usage_ + bytes <= cap_; }
  // The record that starts at stream `offset`: its file position, payload size, the stream
  // bytes it carries and its frame type.
  struct Record {
    uint64_t pos = 0;
    uint32_t size = 0;
    uint32_t stream_bytes = 0;
    FrameType type = FrameType::kData;
  };
  std::optional<Record> Find(uint64_t offset) const;
  // The stream offset just past the last record (where the next one starts), and the first.
  uint64_t end() const { return end_; }
  uint64_t begin() const { return recs_.empty() ? end_ : recs_.begin()->first; }
  uint64_t usage() const { return usage_; }
  // Reads the record at stream `offset` into `chunk` (frame in a DATA frame's layout, resized
  // as needed; size, stream_bytes, type and offset set).
  Status Read(uint64_t offset, const Record& record, Chunk* chunk) const;
  // Frees the records whose stream bytes end at or before `offset` (punched out of the file).
  void Release(uint64_t offset);
  const std::string& path() const { return path_; }

 private:
  Spool(files::OwnedTempDir dir, int fd, std::string path, uint64_t cap)
      : dir_(std::move(dir)), fd_(fd), path_(std::move(path)), cap_(cap) {}
  files::OwnedTempDir dir_;
  int fd_ = -1;
  std::string path_;
  uint64_t cap_ = 0;
  uint64_t file_end_ = 0;
  uint64_t usage_ = 0;
  uint64_t end_ = 0;
  std::map<uint64_t, Record> recs_;  // by stream offset
};

// How often a receiver records a durable point for a stream of about `estimated_bytes`
// (1/64 of it, 2 to 16 MiB: a drop costs at most that plus what was in flight), and what the
// run keeps in memory to resend: that plus 24 MiB (the receiver's 8 MiB queue, both ends'
// socket buffers, the frame being unpacked).
uint64_t CheckpointBytesFor(uint64_t estimated_bytes);
inline constexpr size_t kBacklogSlack = 24u << 20;

struct Limits {
  size_t buffer_bytes = 8u << 20;
  std::chrono::milliseconds grace{5'000};         // held back in total, within:
  std::chrono::milliseconds slow_window{10'000};  // (at least grace)
  size_t max_receivers = 8;
  // Resume (see above); 0 = off: a receiver that goes away is gone.
  std::chrono::milliseconds resume_window{0};
  // Both set by Start() from the header's estimate (CheckpointBytesFor).
  uint64_t checkpoint_bytes = 0;  // told to each receiver in its HEADER
  size_t backlog_bytes = 0;
  uint64_t spool_bytes = 0;
  std::string spool_parent;
  std::shared_ptr<std::atomic<int>> spools;  // the server's spools now (max_spools at most)
  int max_spools = 2;
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
    bool own_chunk = false;        // kData read from the spool for this receiver alone
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
  // The same, for a DATA or ZDATA frame whose stream bytes start at `offset` and whose resume
  // chain was `before` when it was sent.
  void Sent(size_t i, uint64_t offset, size_t bytes, size_t wire_bytes, const ResumeChain& before);
  // The sender gave up on receiver i (`reason`: the client left, a write failed). With resume
  // on, one that got its HEADER and not its TRAILER is detached instead (true), kept for
  // resume_window, unless `resumable` is false (it missed a frame's deadline: too slow, not
  // cut off, and a kept run would hold the donor's slot for it).
  bool Gone(size_t i, std::string reason, bool resumable = true);
  ResumeId resume_id(size_t i) const;

  // --- resume ---
  struct Resumed {
    size_t index = 0;
    ResumeChain chain{};  // the chain before the first frame it is sent again
  };
  // The detached receiver `request` names, if this run holds it at that frame with that chain:
  // it becomes a spooled receiver sent from request.frame_offset on (its sender sends a HEADER
  // with resumed_from and the run's grant first). `asked` is the resume HELLO's compression
  // request, which the run's grant must answer (CheckGrant: the spooled frames are as the run
  // made them). Otherwise nullopt and `*why` says why ("" when this run never had that
  // receiver).
  std::optional<Resumed> Resume(const ResumeRequest& request, const CompressRequest& asked,
                                const std::string& name, const std::string& peer,
                                std::string* why);
  // Gives up detached receivers whose window closed, and the spool when nobody needs it.
  void Tick();
  struct ResumeStats {
    uint64_t detached = 0;
    uint64_t resumed = 0;
    uint64_t resent_bytes = 0;
    uint64_t spool_bytes = 0;
  };
  ResumeStats resume_stats() const;
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
    // Resume: its stream's id, the frames sent to it (the newest backlog_bytes of them) with
    // the chain before each, how far it was sent, and while detached, until when it is kept;
    // once resumed, the next offset it is sent from the spool.
    ResumeId resume_id{};
    struct SentFrame {
      uint64_t offset = 0;
      uint64_t size = 0;
      ResumeChain before{};
    };
    std::deque<SentFrame> sent;
    uint64_t sent_end = 0;
    std::optional<std::chrono::steady_clock::time_point> detached_until;
    bool spooled = false;
    uint64_t cursor = 0;
    uint64_t resumed_from = 0;
    uint64_t session_wire = 0;      // wire bytes sent over its current session
    bool Kept() const;  // Live(), or detached
    // The time it held the others back within the window that ends at `now`.
    std::chrono::steady_clock::duration HeldWithin(std::chrono::steady_clock::time_point now,
                                                   std::chrono::milliseconds window);
    void StopHolding(std::chrono::steady_clock::time_point now);
    bool Live() const;
  };
  void DropLocked(Receiver& r, std::string reason);
  void GiveUpLocked(Receiver& r, std::string reason);
  void CloseSpoolIfUnusedLocked();
  void ReleaseSpoolLocked();

  const uint64_t id_;
  Limits limits_;  // checkpoint_bytes and backlog_bytes are set by Start()
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Phase phase_ = Phase::kJoining;
  size_t started_with_ = 0;
  StreamHeader header_;
  std::string failure_;
  StreamTrailer trailer_;
  // A deque: a receiver's sender keeps a reference across waits while others join.
  std::deque<Receiver> receivers_;
  // Resume: the newest output, the spool once a receiver was detached, and the counts.
  std::deque<std::shared_ptr<Chunk>> backlog_;
  size_t backlog_held_ = 0;
  uint64_t published_end_ = 0;
  std::shared_ptr<Spool> spool_;  // shared with a spooled sender's read in progress
  ResumeStats resume_stats_;
};

}  // namespace replboot::clone::fanout

#endif  // REPLBOOT_CLONE_FANOUT_H_
