// A push parser for the xbstream format written by `mariabackup --stream=xbstream`
// and `xtrabackup --stream=xbstream`: bytes in (Feed), events out (XbstreamSink).
// It never reads by itself, so an Asio socket, a file, a test and a fuzzer all
// drive it the same way, and its memory is bounded whatever the stream holds:
// payloads are passed on in the pieces they arrive in, never buffered.
//
// Chunk layout (all integers little-endian; /work/shared/reference, section 1):
//
//   off  size  field
//   0    8     magic "XBSTCK01"
//   8    1     flags   (0x01 ignorable, 0x02 rewrite [MariaDB])
//   9    1     type    (ASCII letter)
//   10   4     path length N (u32, N <= 511)
//   14   N     path (no terminator)
//   then, by type:
//   'P' payload         u64 length L, u64 file offset, u32 crc32(payload), L bytes
//   'E' end of file     nothing
//   'S' sparse [MySQL]  u32 map entries M, u64 L, u64 offset, u32 crc32(map+payload),
//                       M x (u32 skip, u32 len), L bytes
//   'S' seek [MariaDB]  u64 absolute file offset
//   'R' rename [MariaDB] u32 new-path length K, K bytes of new path
//   'D' delete [MariaDB] nothing
//
// The letter 'S' means different things in the two flavours, so the caller says
// which one it reads. The stream format is the server flavour's (replboot::Flavour) rather than
// a concept of its own: each flavour has exactly one backup tool (mariabackup for MariaDB,
// xtrabackup for MySQL and Percona Server) and a clone never crosses flavours, so "which tool
// wrote this stream" and "which server the stream is for" are one answer. The checksum precedes the payload, so a payload's bytes are
// delivered *before* they are verified (OnPayloadEnd confirms them): a sink that
// writes as it goes must treat any later error as fatal for everything it wrote,
// which suits backups, where a stream is all-or-nothing.
#ifndef REPLBOOT_BACKUP_XBSTREAM_READER_H_
#define REPLBOOT_BACKUP_XBSTREAM_READER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"

namespace replboot::backup {

inline constexpr char kXbstreamMagic[] = "XBSTCK01";
inline constexpr size_t kXbstreamMagicSize = 8;
inline constexpr uint8_t kChunkFlagIgnorable = 0x01;
inline constexpr uint8_t kChunkFlagRewrite = 0x02;  // MariaDB only
// The reference readers reject N >= FN_REFLEN (512).
inline constexpr size_t kMaxPathLength = 511;
// Largest file offset we accept (off_t range).
inline constexpr uint64_t kMaxFileOffset = static_cast<uint64_t>(INT64_MAX);

enum class ChunkType {
  kPayload,  // 'P'
  kEof,      // 'E'
  kSparse,   // 'S' in a MySQL/Percona stream
  kSeek,     // 'S' in a MariaDB stream
  kRename,   // 'R' (MariaDB)
  kDelete,   // 'D' (MariaDB)
};

// One decoded chunk header. The views point into the reader and are valid only
// during the sink call that receives the header.
struct ChunkHeader {
  ChunkType type = ChunkType::kPayload;
  char type_byte = 0;
  uint8_t flags = 0;
  uint64_t stream_offset = 0;  // where the chunk's magic starts in the stream
  std::string_view path;
  std::string_view new_path;  // kRename only
  uint64_t offset = 0;        // payload: file offset of the first byte; seek: target
  uint64_t length = 0;        // payload bytes in the chunk
  uint32_t checksum = 0;      // as stored
  // File offset just past this chunk's data (offset + length + sum of sparse skips).
  uint64_t end_offset = 0;

  bool rewrite() const { return (flags & kChunkFlagRewrite) != 0; }
};

// Receives the events of one stream. Every call may fail; the reader then stops
// and returns that error (with the chunk's stream offset added) from Feed().
class XbstreamSink {
 public:
  virtual ~XbstreamSink() = default;
  // A 'P' or sparse 'S' chunk begins; its data follows in OnPayload calls.
  virtual Status OnPayloadBegin(const ChunkHeader& chunk) = 0;
  // `data` goes to `file_offset` of chunk.path. Not yet verified (see file comment).
  // For sparse chunks the reader has already applied the map: holes are skipped.
  virtual Status OnPayload(const ChunkHeader& chunk, uint64_t file_offset,
                           std::span<const uint8_t> data) = 0;
  // The whole payload arrived and its checksum matched.
  virtual Status OnPayloadEnd(const ChunkHeader& chunk) = 0;
  virtual Status OnEof(const ChunkHeader& chunk) = 0;
  virtual Status OnSeek(const ChunkHeader& chunk) = 0;
  virtual Status OnRename(const ChunkHeader& chunk) = 0;
  virtual Status OnDelete(const ChunkHeader& chunk) = 0;
  // The chunk that ends at `stream_offset` is done (its sink calls returned, its checksum
  // matched): the stream is at a chunk boundary, where a reader can be resumed (ResumeAt).
  virtual Status OnChunkEnd(uint64_t stream_offset) {
    (void)stream_offset;
    return Status::Ok();
  }
};

// Reference 1.4: no empty path, no leading '/', no '.' or '..' component, no
// empty component, no '\' or NUL, at most 511 bytes. kCorruption otherwise.
Status CheckStreamPath(std::string_view path);

class XbstreamReader {
 public:
  struct Options {
    Flavour flavour = Flavour::kMariaDB;
    // Files between their first chunk and their 'E' (each costs a map entry here and
    // usually a descriptor in the sink). Real backups have a handful at a time.
    size_t max_open_files = 100000;
    // A sparse map is the only part of a chunk that is buffered: cap it.
    uint32_t max_sparse_entries = 1u << 20;
  };

  struct Stats {
    uint64_t chunks = 0;
    uint64_t payload_bytes = 0;
    uint64_t files_completed = 0;  // 'E' chunks
  };

  // `sink` must outlive the reader.
  XbstreamReader(const Options& options, XbstreamSink* sink);

  // Consumes all `n` bytes. After the first error every later call returns it again.
  Status Feed(const uint8_t* data, size_t n);
  Status Feed(std::span<const uint8_t> data) { return Feed(data.data(), data.size()); }

  // The byte stream ended. Succeeds only on a chunk boundary, when at least one
  // chunk was read, and when every file that was started also got its 'E' (the
  // error lists the ones that did not).
  Status Finish();

  uint64_t stream_offset() const { return stream_offset_; }
  const Stats& stats() const { return stats_; }

  // Files started and not yet ended, each with the file offset its next chunk must start at:
  // with stream_offset() at a chunk boundary, all a reader needs to go on from there.
  using OpenFiles = std::unordered_map<std::string, uint64_t>;
  const OpenFiles& open_files() const { return open_files_; }
  // Makes a fresh reader go on from a chunk boundary of an earlier reader of the same stream
  // (a resumed clone): its stream offset and open files, as that reader had them there.
  // kInvalidArgument when this reader has been fed already; kCorruption for a path the reader
  // would refuse, an offset out of range or more files than max_open_files (the values come
  // from a file on disk: hostile).
  Status ResumeAt(uint64_t stream_offset, OpenFiles open_files);

 private:
  enum class State { kFixedHeader, kVarHeader, kSparseMap, kPayload, kFailed };

  Status OnFixedHeader();
  Status OnVarHeader();
  Status OnSparseMap();
  Status BeginPayload();
  Status ConsumePayload(const uint8_t*& data, size_t& n);
  Status EndPayload();
  Status EndChunk();
  Status Fail(Status status);
  Status SinkError(const Status& status) const;
  std::string Where() const;

  Options options_;
  XbstreamSink* sink_;
  State state_ = State::kFixedHeader;
  Status failure_;
  uint64_t stream_offset_ = 0;  // bytes consumed so far

  // Header bytes of the current chunk (at most 14 + 511 + 24 + 4 + 511).
  std::vector<uint8_t> header_;
  size_t header_want_ = 0;  // header_ is complete at this size
  bool rename_len_known_ = false;
  ChunkHeader chunk_;
  std::string path_;
  std::string new_path_;

  // Sparse map, then payload progress.
  std::vector<uint8_t> sparse_map_;
  size_t sparse_entries_ = 0;
  size_t sparse_index_ = 0;        // current map entry
  uint64_t sparse_left_ = 0;       // bytes left in the current entry
  uint64_t payload_left_ = 0;
  uint64_t file_offset_ = 0;       // where the next payload byte goes
  uint32_t crc_ = 0;

  // Files started and not yet ended: path -> next expected offset.
  std::unordered_map<std::string, uint64_t> open_files_;
  Stats stats_;
};

}  // namespace replboot::backup

#endif  // REPLBOOT_BACKUP_XBSTREAM_READER_H_
