// Writes the files of an xbstream under a target directory while the bytes arrive.
//
// Safety: the target is opened once; every other open is relative to it, one path
// component at a time with O_NOFOLLOW (directories also O_DIRECTORY), so neither
// a hostile path (the reader already refuses absolute, '..', NUL, '\', over-long)
// nor a symlink planted inside the target can make a write land outside it. Files
// are created O_EXCL (mode 0640), directories 0750.
//
// Durability: success (Commit) means every file and every directory touched has
// been fsynced. Writeback starts as each chunk is verified and each file is fsynced
// after its end, both on a background thread (background_sync.h), so the writes never
// wait for the disk; Commit waits for whatever is still in flight. Payload bytes are
// written before their chunk's checksum is known (see xbstream_reader.h), so after any
// error the target's content is garbage: callers extract into a staging directory and
// wipe it on failure.
//
// Compressed members: with `decompress`, "x.zst" and "x.lz4" (XtraBackup
// --compress) are decompressed as they stream, by libarchive's read filters on a
// worker thread per open file, and written as "x". ".qp" (qpress) and ".xbcrypt"
// (encrypted) members are refused as soon as their first chunk arrives.
#ifndef REPLBOOT_BACKUP_XBSTREAM_EXTRACTOR_H_
#define REPLBOOT_BACKUP_XBSTREAM_EXTRACTOR_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "replboot/backup/xbstream_reader.h"
#include "replboot/base/status.h"

namespace replboot::backup {

struct ExtractOptions {
  Flavour flavour = Flavour::kMariaDB;
  bool decompress = false;
  // Descriptors kept open for files still being written; beyond it the least
  // recently used is closed and reopened later. 0: a quarter of RLIMIT_NOFILE.
  size_t max_open_fds = 0;
  // Start writeback of each chunk as soon as it is verified (sync_file_range), so
  // the final fsyncs find little left to do and dirty memory stays low.
  bool early_writeback = true;
  // Size of each read() (or mapped window) from the source in ExtractStream.
  size_t read_size = 4u << 20;
  // ExtractStream maps a regular-file source instead of reading it (one copy less).
  bool map_regular_files = true;
  // Names the caller keeps for itself at the top of the target (e.g. a commit marker): a
  // member that would create, rename onto or delete one of them, as a file or as a
  // directory, fails the extraction (kCorruption) before anything is written under it, so
  // a stream can never forge the caller's own state.
  std::vector<std::string> reserved_names;
  // Called at every chunk boundary (XbstreamSink::OnChunkEnd), e.g. to record a durable
  // point there (MakeDurable): a resumed clone goes on from such a point.
  std::function<Status(uint64_t stream_offset)> on_chunk_end;
  // Called right before a rename or delete chunk changes the target: such a change cannot be
  // replayed from an earlier point, so whoever records durable points drops the last one.
  std::function<Status()> before_irreversible;
};

// A file between its first chunk and its 'E', at a durable point (MakeDurable): its bytes up
// to written_end are on disk; logical_end is its size once a sparse tail is set.
struct PartialFile {
  std::string path;  // as the stream names it (normalized)
  uint64_t written_end = 0;
  uint64_t logical_end = 0;
};

// The journal of the names a stream made in the target (MakeDurable returns what was added
// since the last call): what a resumed extraction keeps, everything else there being from
// after its durable point. Each record: kind u8 ('C' created, 'R' renamed, 'D' deleted),
// path length u16 LE, path, and for 'R' new-path length u16 LE and new path.
inline constexpr uint8_t kJournalCreate = 'C';
inline constexpr uint8_t kJournalRename = 'R';
inline constexpr uint8_t kJournalDelete = 'D';
void AppendJournal(std::string* journal, uint8_t kind, std::string_view path,
                   std::string_view new_path = {});
// The names a journal leaves in the target, applying its records in order. kCorruption for a
// truncated record, an unknown kind, a path CheckStreamPath refuses, or more than
// `max_names` names (the journal comes from disk: hostile).
Result<std::set<std::string>> ReplayJournal(std::string_view journal, size_t max_names);

class BackgroundSync;
class Decompressor;

class XbstreamExtractor final : public XbstreamSink {
 public:
  struct Stats {
    uint64_t files = 0;              // files completed ('E')
    uint64_t bytes_written = 0;      // after decompression
    uint64_t fsyncs = 0;             // files fsynced (on the background thread)
    double fsync_seconds = 0;        // time those fsyncs took, off the writing thread
    double commit_wait_seconds = 0;  // Commit's wait for the background thread to finish
  };

  // `target_dir` must exist (it is normally an empty staging directory).
  static Result<std::unique_ptr<XbstreamExtractor>> Create(const std::string& target_dir,
                                                           const ExtractOptions& options);
  ~XbstreamExtractor() override;
  XbstreamExtractor(const XbstreamExtractor&) = delete;
  XbstreamExtractor& operator=(const XbstreamExtractor&) = delete;

  Status OnPayloadBegin(const ChunkHeader& chunk) override;
  Status OnPayload(const ChunkHeader& chunk, uint64_t file_offset,
                   std::span<const uint8_t> data) override;
  Status OnPayloadEnd(const ChunkHeader& chunk) override;
  Status OnEof(const ChunkHeader& chunk) override;
  Status OnSeek(const ChunkHeader& chunk) override;
  Status OnRename(const ChunkHeader& chunk) override;
  Status OnDelete(const ChunkHeader& chunk) override;
  Status OnChunkEnd(uint64_t stream_offset) override;

  // Call once the reader's Finish() succeeded: fsyncs every file and directory.
  // Fails if any file is still open (the reader reports those first).
  Status Commit();

  const Stats& stats() const { return stats_; }

  // A durable point at the current chunk boundary: waits for every queued fsync, fsyncs the
  // files still open (their bytes so far) and every directory changed, and returns the open
  // files' state and the journal records added since the last call. After it returns, what
  // the stream wrote up to here survives a crash. Not for decompressing extractions.
  Status MakeDurable(std::vector<PartialFile>* open, std::string* journal);
  // Before the first chunk of a resumed extraction: the files open at the durable point are
  // opened again (they must exist, as regular files) and cut back to written_end, so the
  // bytes written after that point (unverified, or verified but not durable) are gone.
  Status ResumeFiles(const std::vector<PartialFile>& files);

 private:
  // fsync of every directory whose entries changed (created files, subdirectories, renames).
  Status SyncDirtyDirs();
  struct OpenFile {
    int fd = -1;            // -1 while evicted (closed to stay under the fd budget)
    dev_t dev = 0;
    ino_t ino = 0;
    std::string out_path;   // path written (without .zst/.lz4 when decompressing)
    uint64_t written_end = 0;
    uint64_t logical_end = 0;
    uint64_t last_use = 0;
    std::unique_ptr<Decompressor> decompressor;
  };

  using FileMap = std::unordered_map<std::string, OpenFile>;

  XbstreamExtractor(int root_fd, std::string root, const ExtractOptions& options);

  Result<OpenFile*> Open(const ChunkHeader& chunk, bool truncate);
  Result<OpenFile*> Find(const ChunkHeader& chunk);
  // The entry of the file `chunk` names, opened first when it is not open yet.
  Result<FileMap::iterator> FindOrOpen(const ChunkHeader& chunk, bool truncate);
  Status EnsureFd(std::string_view path, OpenFile& file);
  Status EvictIfNeeded();
  Result<int> OpenDirectory(std::string_view dir, bool create);
  Result<int> OpenParent(std::string_view path, bool create, std::string* leaf);
  // kCorruption when `path`'s first component (after "." and empty ones) is reserved.
  Status CheckReserved(std::string_view path, std::string_view what) const;
  Status QueueSync(int fd, const std::string& path);
  void MarkDirty(std::string_view path);

  int root_fd_;
  std::string root_;
  ExtractOptions options_;
  size_t fd_budget_ = 0;
  uint64_t use_clock_ = 0;
  size_t open_fds_ = 0;
  FileMap files_;
  // Writeback and the fsync of every file past its 'E'; its descriptors count against
  // fd_budget_.
  std::unique_ptr<BackgroundSync> sync_;
  // Directories (relative, "" = target) whose entries changed: fsynced by Commit.
  std::set<std::string> dirty_dirs_;
  std::string journal_;  // records since the last MakeDurable
  Stats stats_;
};

struct ExtractResult {
  XbstreamReader::Stats reader;
  XbstreamExtractor::Stats extractor;
  uint64_t stream_bytes = 0;
};

// Reads `fd` to its end and extracts it into `target_dir`: the whole of
// `replboot xbstream extract`. `source_name` names the input in errors.
Result<ExtractResult> ExtractStream(int fd, std::string_view source_name,
                                    const std::string& target_dir, const ExtractOptions& options);

}  // namespace replboot::backup

#endif  // REPLBOOT_BACKUP_XBSTREAM_EXTRACTOR_H_
