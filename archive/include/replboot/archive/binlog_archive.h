// The binlog archive in an object store: segments (binlog/segment.h) sealed, named by their
// GTID range and times, listed in chain order without reading them, opened authenticated.
//
//   binlogs/<history>/<start ordinal:020>-<end ordinal:020>_<first time>-<last time>_
//       <transactions>_<first gtid>_<last gtid>_<start position>_<end position>.seg
//
// (one key; ordinals are PositionOrdinal of the positions, so keys sort in chain order; times
// are the first and last commit's seconds since the epoch; a position is written with '.'
// between its per-domain GTIDs, "empty" when it has none; every field strictly decimal, so a
// listing is enough to check the chain and pick what a restore needs: a day at one segment per
// 5 s is ~17k keys, a few list pages, and no download).
//
// A stored segment (an object as object.h seals it, under a subkey of the backup key of its
// own, with the AAD naming the cluster, the history and the whole key name, so a segment
// cannot be renamed, moved to another history or range, or planted from another cluster):
//   plaintext  offset  size  field
//              0       4     magic "RBSG" (replboot binlog segment)
//              4       1     version (1)
//              5       4     n, bytes of the metadata, little-endian (at most 64 KiB)
//              9       n     metadata, JSON: history, cluster, the full start and end
//                            @@gtid_binlog_state, GTIDs, times, transactions, server_id, version
//              9+n     …     the binlog file (kBinlogMagic, Format_description, the transactions)
// Opening checks the metadata against the key, and the binlog's events (framing, CRC32, whole
// transactions, their count, first and last GTID and commit times) against the metadata.
#ifndef REPLBOOT_ARCHIVE_BINLOG_ARCHIVE_H_
#define REPLBOOT_ARCHIVE_BINLOG_ARCHIVE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/binlog/file.h"
#include "replboot/binlog/gtid.h"
#include "replboot/binlog/segment.h"
#include "replboot/archive/keys.h"
#include "replboot/base/status.h"
#include "replboot/store/object_store.h"

namespace replboot::archive {

// The binlog module's types, which the archive's interfaces take (binlog/ is the one parser of
// binlog events and GTIDs).
using binlog::BinlogSegment;
using binlog::Gtid;
using binlog::GtidPosition;
using binlog::GtidState;

inline constexpr std::string_view kBinlogsPrefix = "binlogs/";
inline constexpr std::string_view kSegmentSuffix = ".seg";
// A segment's binlog is at most this long (the archiver cuts before; a transaction larger than
// this cannot be archived and is reported by the archiver).
inline constexpr uint64_t kMaxSegmentBinlogBytes = 64ull << 20;
inline constexpr uint64_t kMaxSegmentMetaBytes = 64ull << 10;
// S3 keys are at most 1024 bytes; positions of many domains would not fit.
inline constexpr size_t kMaxSegmentKeyChars = 1000;

// What List() knows from the key without downloading the segment. start_state / end_state are
// POSITIONS here (per domain the GTID with the highest sequence number, "0-100-41,1-101-7"),
// which is what the chain check compares and what a replication connection starts from; the
// full @@gtid_binlog_state is in the sealed metadata (BinlogSegment after Open).
struct SegmentInfo {
  std::string key, history, start_state, end_state, first_gtid, last_gtid;
  int64_t first_commit_time = 0, last_commit_time = 0;
  uint64_t transactions = 0, stored_bytes = 0;
  uint64_t start_ordinal = 0, end_ordinal = 0;

  bool operator==(const SegmentInfo&) const = default;
};

// "binlogs/<history>/"
std::string SegmentsPrefix(std::string_view history);
// The key of `segment` (validated as Put validates it). kInvalidArgument naming the defect.
Result<SegmentInfo> SegmentInfoOf(const BinlogSegment& segment);
// Strict parse of a key of the layout (any prefix other than binlogs/<valid history>/, any
// field out of its form, start ordinal ≥ end ordinal, a GTID outside its range: nullopt).
std::optional<SegmentInfo> ParseSegmentKey(std::string_view key);

class BinlogArchive {
 public:
  // `store` must outlive this. `cluster_id` is bound into every segment's AAD.
  BinlogArchive(store::ObjectStore& store, BackupKey key, std::string cluster_id);

  // Seals and uploads with PutIfAbsent, then reads it back and opens it. A segment already
  // there under the same key (a retry) is ok when it opens as this segment's range; one there
  // that does not open (a torn or foreign object) is replaced. kInvalidArgument for a segment
  // that breaks the contract (its binlog does not parse into whole transactions matching its
  // fields, over kMaxSegmentBinlogBytes, a range that does not add up).
  Result<SegmentInfo> Put(const BinlogSegment& segment);
  // The segments of `history` in chain order (start ordinal, then end ordinal). Keys under the
  // prefix that are not of the layout are skipped and counted in ignored_keys().
  Result<std::vector<SegmentInfo>> List(const std::string& history);
  // The last segment of `history` in chain order (the highest end ordinal); nullopt when none.
  Result<std::optional<SegmentInfo>> Newest(const std::string& history);
  // Downloads (bounded), authenticates, decompresses and checks `info`'s segment.
  // kCorruption "binlog segment <key>: …" naming the defect; kNotFound when it is gone.
  Result<BinlogSegment> Open(const SegmentInfo& info);
  // Removes a segment (retention).
  Status Delete(const SegmentInfo& info);

  size_t ignored_keys() const { return ignored_keys_; }
  const std::string& cluster_id() const { return cluster_id_; }

 private:
  store::ObjectStore& store_;
  BackupKey key_;  // the segment subkey of the backup key
  std::string cluster_id_;
  size_t ignored_keys_ = 0;
};

// Cuts a binlog file (a server's binlog, e.g. mariadb-bin.000042) into segments of whole
// transactions of at most `max_segment_bytes` of binlog each (a transaction larger alone is
// kInvalidArgument: it cannot be archived), for `replboot binlog archive-file`. The file's
// state at its start is its Gtid_list event's (kCorruption when it has none). Transactions
// `skip` already covers (a previous run's archive) are left out; the first segment then starts
// after them. With `allow_tail`, an incomplete last transaction (the active binlog) is left out.
struct CutOptions {
  std::string history;
  std::string server_version;
  uint64_t max_segment_bytes = 16ull << 20;
  GtidPosition skip;
  bool allow_tail = true;
};
Result<std::vector<BinlogSegment>> CutBinlogFile(std::span<const uint8_t> file,
                                                 std::string_view name, const CutOptions& options);

// Test and fuzz support: the sealed bytes of `segment` as Put stores them under `info.key`,
// and the open of stored bytes as Open does it (no store).
Result<std::vector<uint8_t>> SealSegment(const BackupKey& backup_key, std::string_view cluster_id,
                                         const SegmentInfo& info, const BinlogSegment& segment);
Result<BinlogSegment> OpenSegment(const BackupKey& backup_key, std::string_view cluster_id,
                                  const SegmentInfo& info, std::span<const uint8_t> stored);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_BINLOG_ARCHIVE_H_
