// Cuts the primary's binlog stream into archive segments (binlog/segment.h) at
// transaction boundaries: a push parser (events in, sealed segments out) that the replication
// connection, the tests and the fuzzer drive alike. No I/O and no clock of its own: the caller
// passes the time each event arrived.
//
// An event group is a GTID event and what follows it up to its commit: an XID event, a Query
// COMMIT or ROLLBACK (non-transactional tables), an XA_prepare event or a Query XA COMMIT/XA
// ROLLBACK; for a standalone GTID (DDL) its one Query event. Only whole groups go into a
// segment; a group cut short by a reconnect is dropped and comes again from the start state.
//
//   event                        outside a group                 inside a group
//   Format_description           kept for the next segment       refused (protocol error)
//                                (a different one seals first)
//   Rotate, Heartbeat            dropped                         refused (Rotate), dropped
//   Gtid_list, Binlog_checkpoint dropped (checked)               refused
//   Stop, Start_encryption       dropped                         refused
//   GTID                         opens a group                   refused (a group in a group)
//   anything else                refused                         kept in the group
//
// A group whose GTID the position already holds (the same domain and server, a sequence
// number not above it) is a transaction archived before: dropped whole, counted.
//
// Sealing: when a segment's first transaction arrived seal_interval ago (checked at each event
// and at Tick, which the caller calls whenever the stream is idle, e.g. on a heartbeat), or
// when it holds seal_bytes after a whole transaction.
#ifndef REPLBOOT_BINLOG_CUTTER_H_
#define REPLBOOT_BINLOG_CUTTER_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/binlog/events.h"
#include "replboot/binlog/gtid.h"
#include "replboot/binlog/segment.h"

namespace replboot::binlog {

struct CutterOptions {
  std::string history;
  std::chrono::milliseconds seal_interval{2000};
  uint64_t seal_bytes = 16u << 20;
  // A single group over this is refused rather than held in memory without bound.
  uint64_t max_group_bytes = 1ull << 30;
  // The checksum algorithm of events before the first Format_description (the dump's fake
  // Rotate): the primary's @@binlog_checksum.
  ChecksumAlg initial_checksum = ChecksumAlg::kCrc32;
};

// A sealed segment and, for the lag metric, when each of its transactions arrived.
struct CutSegment {
  BinlogSegment segment;
  std::vector<uint32_t> commit_times;  // the GTID events' timestamps, in order
  std::chrono::steady_clock::time_point first_arrival;
};

class SegmentCutter {
 public:
  using Clock = std::chrono::steady_clock;
  SegmentCutter(CutterOptions options, GtidState start);

  // One whole event as the server sent it. A sealed segment when this event completed one
  // (or a new Format_description forced one); kCorruption naming the event and its place in
  // the stream (its index and the primary's log position) for anything the table above refuses.
  Result<std::optional<CutSegment>> Add(std::span<const uint8_t> event, Clock::time_point now);
  // Seals the open segment when its interval has passed.
  std::optional<CutSegment> Tick(Clock::time_point now);
  // Seals whatever whole transactions are open (shutdown, or before a reconnect).
  std::optional<CutSegment> Flush();

  // The position after the last whole transaction (sealed or not).
  const GtidState& state() const { return state_; }
  // The position after the last sealed segment: where a new connection starts.
  const GtidState& sealed_state() const { return sealed_; }
  // When the oldest transaction not yet sealed arrived.
  std::optional<Clock::time_point> pending_since() const;
  uint64_t events() const { return events_; }
  uint64_t duplicates_dropped() const { return duplicates_; }
  bool in_group() const { return in_group_; }

 private:
  Status Refuse(const EventHeader& h, const std::string& why) const;
  Result<std::optional<CutSegment>> AddFormatDescription(std::span<const uint8_t> event,
                                                         const EventHeader& h);
  void CompleteGroup();
  std::optional<CutSegment> Seal();

  CutterOptions options_;
  GtidState state_;
  GtidState sealed_;
  ChecksumAlg alg_;
  std::optional<FormatDescription> fd_;
  std::vector<uint8_t> fd_bytes_;       // as written into a segment (in-use flag cleared)
  uint32_t fd_server_id_ = 0;
  uint32_t segment_server_id_ = 0;
  std::string segment_version_;
  // The open segment.
  std::vector<uint8_t> binlog_;
  uint64_t transactions_ = 0;
  std::string first_gtid_, last_gtid_;
  int64_t first_commit_ = 0, last_commit_ = 0;
  std::vector<uint32_t> commit_times_;
  std::optional<Clock::time_point> first_arrival_;
  // The open group.
  bool in_group_ = false;
  bool skip_group_ = false;
  GtidEvent group_gtid_;
  std::vector<uint8_t> group_;
  Clock::time_point group_arrival_;
  uint64_t events_ = 0;
  uint64_t duplicates_ = 0;
};

}  // namespace replboot::binlog

#endif  // REPLBOOT_BINLOG_CUTTER_H_
