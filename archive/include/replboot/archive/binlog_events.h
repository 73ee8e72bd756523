// MariaDB binlog files, read just far enough to cut them at transaction boundaries: the one
// event parser of the binlog archive (the segment checks of binlog_archive.cc, `replboot
// binlog archive-file`, and the point-in-time restore's filter and cut).
//
// A binlog file:
//   offset  size  field
//   0       4     magic fe 'b' 'i' 'n'
//   4       …     events, each with a 19-byte header:
//                   0  4  timestamp (seconds since the epoch, UTC)
//                   4  1  type
//                   5  4  server_id
//                   9  4  event size (header, payload and the checksum)
//                   13 4  end position in the primary's file
//                   17 2  flags
//                 and, when the Format_description event says CRC32, a CRC32 of the event's
//                 other bytes as its last 4 bytes.
// The first event is the Format_description (type 15). A transaction (an "event group") runs
// from its GTID event (type 162: sequence number u64, domain u32, flags u8) to its commit: an
// XID event (16), a Query event of COMMIT / ROLLBACK / XA COMMIT / XA ROLLBACK, an
// XA_prepare event (38) for a prepared XA transaction, or the one event after a GTID event
// flagged standalone (DDL).
//
// Every byte is untrusted: sizes are checked against what is left before anything is read,
// checksums are verified, and errors name the file (or segment) and the offset.
#ifndef REPLBOOT_ARCHIVE_BINLOG_EVENTS_H_
#define REPLBOOT_ARCHIVE_BINLOG_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "replboot/base/status.h"

namespace replboot::archive {

inline constexpr uint8_t kBinlogMagic[4] = {0xfe, 'b', 'i', 'n'};
inline constexpr size_t kBinlogEventHeaderBytes = 19;
inline constexpr size_t kBinlogFlagsOffset = 17;
// LOG_EVENT_BINLOG_IN_USE_F: set in the Format_description of a file still being written.
inline constexpr uint8_t kBinlogInUseFlag = 0x01;

enum BinlogEventType : uint8_t {
  kQueryEvent = 2,
  kStopEvent = 3,
  kRotateEvent = 4,
  kFormatDescriptionEvent = 15,
  kXidEvent = 16,
  kXaPrepareEvent = 38,
  kAnnotateRowsEvent = 160,
  kBinlogCheckpointEvent = 161,
  kGtidEvent = 162,
  kGtidListEvent = 163,
  kStartEncryptionEvent = 164,
};

// One MariaDB GTID, "domain-server-sequence".
struct Gtid {
  uint32_t domain = 0;
  uint32_t server_id = 0;
  uint64_t sequence = 0;
  std::string ToString() const;
  bool operator==(const Gtid&) const = default;
};
// Strict: three decimal numbers (no sign, no leading zeros but "0", in range) joined by '-'.
Result<Gtid> ParseGtid(std::string_view text);

// A position as the chain check and a restore compare it: per domain, the GTID with the
// highest sequence number. Made from a @@gtid_binlog_state (every (domain, server_id) logged)
// or from a @@gtid_current_pos (one per domain) alike.
using GtidPosition = std::map<uint32_t, Gtid>;
// A comma-separated GTID list ("" is the empty position); at most kMaxPositionEntries GTIDs;
// whitespace around entries ignored. kInvalidArgument naming the entry.
inline constexpr size_t kMaxPositionEntries = 4096;
Result<GtidPosition> ParsePosition(std::string_view text);
// "0-100-41,1-101-7", domains in order; "" when empty.
std::string PositionToString(const GtidPosition& position);
// The sum of the sequence numbers: grows by at least one with every transaction of a chain,
// so it orders a history's segments.
uint64_t PositionOrdinal(const GtidPosition& position);
// Every domain of `b` is in `a` at a sequence number at least b's.
bool PositionCovers(const GtidPosition& a, const GtidPosition& b);
// `position` after the transaction `gtid`.
void Advance(GtidPosition& position, const Gtid& gtid);

// A @@gtid_binlog_state: the last sequence number of every (domain, server_id), what a new
// primary's binlog must continue (SET GLOBAL gtid_binlog_state).
using GtidState = std::map<std::pair<uint32_t, uint32_t>, uint64_t>;
Result<GtidState> ParseState(std::string_view text);
std::string StateToString(const GtidState& state);
GtidPosition StatePosition(const GtidState& state);
void Advance(GtidState& state, const Gtid& gtid);

// One transaction of a binlog file: its GTID, its commit time (the GTID event's timestamp),
// and where its bytes are (from its GTID event through its commit event).
struct BinlogTransaction {
  Gtid gtid;
  uint32_t commit_time = 0;
  size_t offset = 0;
  size_t length = 0;
};

struct ParsedBinlog {
  // Bytes 0..format_end: the magic and the Format_description event.
  size_t format_end = 0;
  bool checksums = false;  // CRC32 on every event
  std::vector<BinlogTransaction> transactions;
  // Events outside any transaction besides the Format_description (Gtid_list, checkpoints,
  // Rotate, Stop, …): their types, in order. A segment has none.
  std::vector<uint8_t> outside_events;
  // Bytes after the last whole event (a file still being written, cut mid-event), or after
  // the last whole transaction when it ends inside one. 0 for a complete file.
  size_t incomplete_tail = 0;
  // The offset where the incomplete tail starts.
  size_t complete_end = 0;
  // The Gtid_list event before the first transaction (MariaDB writes one at the start of every
  // binlog file): the @@gtid_binlog_state the file starts from. Empty when there is none.
  bool has_gtid_list = false;
  GtidState gtid_list;
};

// The largest event accepted (MariaDB's max_allowed_packet is at most 1 GiB).
inline constexpr uint32_t kMaxBinlogEventBytes = 1u << 30;

// Parses `file`; `name` goes into every error ("segment …", "binlog file …"). With
// `allow_tail`, bytes after the last whole transaction are reported in incomplete_tail (a
// live file); without, they are kCorruption. An encrypted binlog (Start_encryption) is refused.
Result<ParsedBinlog> ParseBinlog(std::span<const uint8_t> file, std::string_view name,
                                 bool allow_tail = false);

// CRC32 (the binlog's, zlib's polynomial) of `bytes`.
uint32_t BinlogCrc32(std::span<const uint8_t> bytes);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_BINLOG_EVENTS_H_
