// The binlog archive's unit: a segment, whole transactions of the primary's binlog cut by the
// archiver (daemon/binlog_archiver) every few seconds or MiB and sealed into the store like a
// backup's objects (compressed, AES-256-GCM, bound to its history and place in the chain).
//
// This header is the contract between the two sides of the archive (it lives in binlog/, the
// lower module, so that the cutter and the store side share it without a cycle):
//   the archiver   reads the primary's binlog over a replication connection, cuts it at
//                  transaction boundaries into BinlogSegment values and hands each to
//                  BinlogArchive::Put, in order;
//   the store side seals, names, lists and opens segments (binlog_archive.cc), checks the
//                  chain for gaps, keeps what retention needs, and replays segments for a
//                  point-in-time restore.
//
// A segment is named by the GTID range it holds, never by the primary's binlog file name (file
// names repeat after a restore or on a new primary), and lives under its history: a
// point-in-time restore starts a new history, whose sequence numbers may repeat the abandoned
// one's, so two histories' segments are never mixed (histories.h).
#ifndef REPLBOOT_BINLOG_SEGMENT_H_
#define REPLBOOT_BINLOG_SEGMENT_H_

#include <cstdint>
#include <string>
#include <vector>

namespace replboot::binlog {

// What the archiver seals. MariaDB GTIDs ("domain-server-sequence"); positions in the
// @@gtid_binlog_state form ("0-100-41,1-101-7", every (domain, server_id) pair logged).
struct BinlogSegment {
  // The history the transactions were logged in (histories.h).
  std::string history;
  // A standalone binlog file that mariadb-binlog and a server's SQL thread both read: the
  // 4-byte magic "\xfe" "bin", the primary's Format_description event, then whole event groups
  // only, each from its GTID event to its commit (XID or COMMIT query event), the events as the
  // primary sent them (their checksums kept). No Rotate, heartbeat or other artificial event.
  std::vector<uint8_t> binlog;
  // The position before the first transaction and after the last: the chain check needs
  // end_state of one segment == start_state of the next (per domain), or a gap is named.
  std::string start_state;
  std::string end_state;
  // The first and the last transaction's GTID.
  std::string first_gtid;
  std::string last_gtid;
  // The first and the last transaction's commit time on the primary (the GTID event's header
  // timestamp, seconds since the epoch, UTC): what a --time target is matched against.
  int64_t first_commit_time = 0;
  int64_t last_commit_time = 0;
  uint64_t transactions = 0;
  // The primary's server_id and version (SELECT VERSION()), for the record.
  uint32_t server_id = 0;
  std::string server_version;
};

}  // namespace replboot::binlog

#endif  // REPLBOOT_BINLOG_SEGMENT_H_
