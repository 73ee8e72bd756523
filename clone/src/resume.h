// The receiver's side of a resumed clone (protocol.h, "Why resume"): the durable point it
// records in its staging dir, and what it does with that dir before it asks a donor for the
// rest. Internal to clone/.
//
//   <staging>/replboot-resume.json    the durable point (ResumeState), written atomically
//                                     (temp file, fsync, rename, fsync of the dir), 0600
//   <staging>/replboot-resume.files   the journal of the names the stream made (create,
//                                     rename, delete: backup/xbstream_extractor.h), appended
//                                     and fsynced before each state; the state says how many
//                                     of its bytes count
//
// Both names are reserved (base/datadir_files.h): a stream can never plant or change them.
// A durable point only counts bytes whose files are synced: the extractor waits for every
// queued fsync, fsyncs the files still open and every changed directory (MakeDurable), then
// the journal, then the state. A rename or delete chunk removes the state first (it cannot be
// replayed from an earlier point) and the next chunk boundary records a new one. The state
// goes as soon as the stream is whole, before --prepare changes the files: a staging dir
// holding it is always one that a resumed stream can go on from.
//
// Everything read back from staging is hostile (a disk, another process, a half-written
// file): parsed strictly (exact keys and types, bounds before allocation), and any doubt
// means a full clone, never a guess.
#ifndef REPLBOOT_CLONE_RESUME_H_
#define REPLBOOT_CLONE_RESUME_H_

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/backup/xbstream_extractor.h"
#include "replboot/backup/xbstream_reader.h"
#include "replboot/base/datadir_files.h"
#include "replboot/base/status.h"
#include "replboot/clone/protocol.h"

namespace replboot::clone {

inline constexpr std::string_view kResumeStateName = datadir_files::kResumeState;
inline constexpr std::string_view kResumeJournalName = datadir_files::kResumeJournal;
// Bounds on what is read back: the state file, the journal, the files open at a durable
// point, the names a journal may leave.
inline constexpr size_t kMaxResumeStateBytes = 4u << 20;
inline constexpr uint64_t kMaxJournalBytes = 64u << 20;
inline constexpr size_t kMaxResumeOpenFiles = 4096;
inline constexpr size_t kMaxJournalNames = 1u << 20;
// The receiver's bounds on the donor's checkpoint_bytes (HEADER): 0 (a donor without resume)
// means no durable points at all.
inline constexpr uint64_t kMinCheckpointBytes = 1u << 20;
inline constexpr uint64_t kMaxCheckpointBytes = 256u << 20;

struct ResumeOpenFile {
  std::string path;
  uint64_t next = 0;     // the reader's next expected file offset
  uint64_t written = 0;  // bytes durable
  uint64_t logical = 0;  // size once a sparse tail is set
};

struct ResumeState {
  std::string donor;      // address:port of the stream (for logs: the resume may go elsewhere)
  std::string header;     // the donor's HEADER payload, as received at the start
  uint64_t run_id = 0;
  ResumeId resume_id{};
  uint64_t offset = 0;        // the durable point: a chunk boundary of the stream
  uint64_t frame_offset = 0;  // the first byte of the DATA frame it lies in (<= offset)
  ResumeChain chain{};        // the resume chain before that frame
  uint64_t journal_bytes = 0;
  uint64_t checkpoint_bytes = 0;
  std::vector<ResumeOpenFile> open_files;
};
std::string EncodeResumeState(const ResumeState& state);
// Strict: a JSON object with exactly the keys EncodeResumeState writes, of their types;
// offsets in range (frame_offset <= offset < frame_offset + kMaxDataPayload, written <=
// logical, paths CheckStreamPath accepts, at most kMaxResumeOpenFiles files, no path twice),
// the header a valid HEADER with the same resume_id. kCorruption naming what is wrong.
Result<ResumeState> ParseResumeState(std::string_view text);

// The frames a receiver took, for its durable points: which frame a chunk boundary lies in and
// the resume chain before it. The receiving thread adds frames, the unpacking thread looks them
// up; both in stream order.
class FrameLog {
 public:
  struct Frame {
    uint64_t offset = 0;
    uint64_t size = 0;
    ResumeChain before{};
    ResumeChain after{};
  };
  void Add(const Frame& frame);
  // The frame `offset` lies in (offset == the last frame's end: the next frame, chain after);
  // frames wholly before it are forgotten. nullopt when it is not covered.
  std::optional<std::pair<uint64_t, ResumeChain>> Locate(uint64_t offset);

 private:
  std::mutex mu_;
  std::deque<Frame> frames_;
};

// Reads and checks the durable point of `staging` and puts the dir back to it: every regular
// file the journal does not leave is removed (the stream makes it again), the journal is cut
// to the bytes the state counts. The files open at that point are cut back by the extractor
// (ResumeFiles). Fails (the caller discards the dir and clones afresh) when the state or the
// journal does not parse, a file it counts is missing or not a regular file, or the dir holds
// anything but directories and regular files.
Result<ResumeState> LoadResumePoint(const std::string& staging);

// Whether `staging` holds a durable point at all (a regular file named kResumeStateName).
bool HasResumePoint(const std::string& staging);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_RESUME_H_
