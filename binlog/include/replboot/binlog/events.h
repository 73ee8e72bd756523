// MariaDB binlog events as the primary sends them over a replication connection: the header
// of every event and the bodies of the few the archiver needs to cut the stream at
// transaction boundaries (Format_description, GTID, XID, Query, Rotate, Gtid_list). Every other
// event is carried through as bytes, its header and checksum checked.
//
// Every byte comes from the network: each length is checked against what is there before it is
// used, and a refusal names the event (type, offset in the stream, the primary's log position)
// and what is wrong with it. Nothing is cast from a struct; fields are decoded one by one.
//
// Event layout (binlog v4, every integer little-endian):
//
//   offset  size  field
//        0     4  timestamp   seconds since the epoch (UTC) the event was logged; 0 artificial
//        4     1  type        EventType
//        5     4  server_id   the server that logged it
//        9     4  event_size  the whole event: header + post-header + body + checksum
//       13     4  log_pos     the position after the event in the primary's binlog file
//       17     2  flags       kFlagInUse (FD only), kFlagArtificial, ...
//       19     .  post-header and body
//   size-4     4  CRC-32 of every byte before it (when the Format_description's checksum
//                 algorithm is CRC32)
//
// Format_description (15), the first event of every binlog file:
//   u16 binlog_version (4), char[50] server_version (NUL padded), u32 create_timestamp,
//   u8 header_length (19), u8[n] post_header_length per event type (type t at index t-1),
//   u8 checksum_alg (0 off, 1 CRC32), u32 checksum (present whatever the algorithm).
// GTID (162): u64 seq_no, u32 domain_id, u8 flags2 (kGtidStandalone: no COMMIT/XID follows),
//   then optional fields (commit id, XA xid) that are not read here.
// XID (16): u64 xid: the group's commit.
// Query (2): u32 thread_id, u32 exec_time, u8 db_len, u16 error_code, u16 status_vars_len
//   (the post-header, of FD's length for type 2), status vars, db + NUL, the statement.
// Rotate (4): u64 position, then the next file's name.
// Gtid_list (163): u32 count (low 28 bits) + flags, then count × (u32 domain, u32 server,
//   u64 seq).
#ifndef REPLBOOT_BINLOG_EVENTS_H_
#define REPLBOOT_BINLOG_EVENTS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/status.h"

namespace replboot::binlog {

inline constexpr size_t kHeaderSize = 19;
inline constexpr size_t kChecksumSize = 4;
// The 4 bytes every binlog file starts with.
inline constexpr uint8_t kBinlogMagic[4] = {0xfe, 'b', 'i', 'n'};
// No event is larger than max_allowed_packet can carry (1 GiB at most).
inline constexpr uint32_t kMaxEventSize = 1u << 30;

enum EventType : uint8_t {
  kQueryEvent = 2,
  kStopEvent = 3,
  kRotateEvent = 4,
  kIntvarEvent = 5,
  kRandEvent = 13,
  kUserVarEvent = 14,
  kFormatDescriptionEvent = 15,
  kXidEvent = 16,
  kTableMapEvent = 19,
  kHeartbeatEvent = 27,
  kAnnotateRowsEvent = 160,
  kBinlogCheckpointEvent = 161,
  kGtidEvent = 162,
  kGtidListEvent = 163,
  kStartEncryptionEvent = 164,
  kQueryCompressedEvent = 165,
  kXaPrepareEvent = 38,
};
std::string EventTypeName(uint8_t type);

inline constexpr uint16_t kFlagInUse = 0x0001;       // FD of a binlog file still being written
inline constexpr uint16_t kFlagArtificial = 0x0020;  // made up by the dump thread

// GTID flags2.
inline constexpr uint8_t kGtidStandalone = 0x01;  // DDL or a statement outside BEGIN/COMMIT
inline constexpr uint8_t kGtidGroupCommitId = 0x02;

enum class ChecksumAlg : uint8_t { kOff = 0, kCrc32 = 1 };

struct EventHeader {
  uint32_t timestamp = 0;
  uint8_t type = 0;
  uint32_t server_id = 0;
  uint32_t size = 0;
  uint32_t log_pos = 0;
  uint16_t flags = 0;
};

// The header of `event`, which must be the whole event: its event_size must be its length,
// at least the header (and the checksum when `alg` is CRC32), at most kMaxEventSize.
Result<EventHeader> ParseHeader(std::span<const uint8_t> event, ChecksumAlg alg);
// Checks the trailing CRC-32 (ok when `alg` is kOff).
Status VerifyChecksum(std::span<const uint8_t> event, ChecksumAlg alg);
// The bytes after the header, without the checksum.
std::span<const uint8_t> Body(std::span<const uint8_t> event, ChecksumAlg alg);
// Recomputes the trailing CRC-32 in place (after a flag was changed); no-op for kOff.
void Reseal(std::span<uint8_t> event, ChecksumAlg alg);

struct FormatDescription {
  uint16_t binlog_version = 0;
  std::string server_version;
  uint32_t created = 0;
  std::vector<uint8_t> post_header_lengths;  // index type-1
  ChecksumAlg checksum = ChecksumAlg::kOff;
  // The post-header length of `type` (0 when the FD does not list it).
  uint8_t PostHeaderLength(uint8_t type) const;
};
// Parses and checks a whole Format_description event (binlog v4, header length 19, a known
// checksum algorithm; its own CRC when the algorithm is CRC32).
Result<FormatDescription> ParseFormatDescription(std::span<const uint8_t> event);

struct GtidEvent {
  uint32_t domain = 0;
  uint32_t server_id = 0;  // from the header
  uint64_t seq = 0;
  uint8_t flags = 0;
  uint32_t timestamp = 0;  // from the header: the commit time on the primary (seconds)
  bool standalone() const { return (flags & kGtidStandalone) != 0; }
  std::string ToString() const;  // "domain-server-seq"
};
Result<GtidEvent> ParseGtid(const EventHeader& header, std::span<const uint8_t> body);

struct QueryEvent {
  std::string_view db;
  std::string_view statement;  // views into the event's bytes
};
Result<QueryEvent> ParseQuery(std::span<const uint8_t> body, uint8_t post_header_length);

struct RotateEvent {
  uint64_t position = 0;
  std::string file;
};
Result<RotateEvent> ParseRotate(std::span<const uint8_t> body);

struct GtidListEvent {
  struct Entry {
    uint32_t domain, server_id;
    uint64_t seq;
  };
  std::vector<Entry> entries;
};
Result<GtidListEvent> ParseGtidList(std::span<const uint8_t> body);

// "COMMIT", "ROLLBACK" (any case, surrounding space ignored), or "XA COMMIT …"/"XA ROLLBACK …":
// a Query event that ends an event group.
bool EndsGroup(std::string_view statement);

// Whether the event (`header`, `body` without the checksum) ends the event group `gtid`
// opened: an XID, an XA_prepare, a Query EndsGroup() takes, or, after a standalone GTID (DDL),
// its Query (or Query_compressed) event. The one rule of the cutter and of ParseBinlog.
// kCorruption for a Query event whose body does not parse.
Result<bool> EndsGroupOf(const GtidEvent& gtid, const EventHeader& header,
                         std::span<const uint8_t> body, const FormatDescription& fd);

}  // namespace replboot::binlog

#endif  // REPLBOOT_BINLOG_EVENTS_H_
