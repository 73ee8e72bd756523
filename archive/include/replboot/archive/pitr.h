// Point-in-time restore, the plan (pure: the caller lists backups, histories and segments; this
// decides). Replaying the plan is the daemon's (daemon/pitr_restore.h).
//
// The chain of a history H is its lineage (histories.h LineageOf), oldest first: each
// ancestor's segments up to the point where its child branched off, then H's own. A walk
// starts at a backup's position and follows contiguous segments (one whose start position is
// at or before the walk's position and whose end is past it, per domain: overlapping segments
// of a re-cut are fine, the replay skips what the position already holds) until the target,
// the end of the chain, or a gap (no segment continues the position: the archiver was down
// longer than the primary kept its binlogs, a segment was deleted).
//
//   target   backup chosen                               refused when
//   --time T the newest whose finish (second) <= T       no backup finished by T ("before the
//                                                        oldest backup"); T past the last
//                                                        archived commit or in a gap
//   --gtid G the newest whose position G covers          no such backup; G not reached (past
//                                                        the end, or behind a gap)
//   latest   the newest                                  no backup; a gap ends it early (said)
// Every refusal names the range that can be restored.
#ifndef REPLBOOT_ARCHIVE_PITR_H_
#define REPLBOOT_ARCHIVE_PITR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/archive/binlog_archive.h"
#include "replboot/binlog/gtid.h"
#include "replboot/archive/histories.h"
#include "replboot/base/status.h"

namespace replboot::archive {

struct RestoreTarget {
  enum class Kind { kLatest, kTime, kGtid };
  Kind kind = Kind::kLatest;
  int64_t time = 0;  // kTime: seconds since the epoch; transactions committed at or before it
  GtidPosition gtid;  // kGtid: up to and including these
  std::string text;   // as HistoryRecord::target has it: "latest", "time …", "gtid …"
};
// RFC 3339 with seconds and a zone, strictly: "2026-12-06T10:41:59Z", "…+01:00" (no
// fraction: commit times are whole seconds). kInvalidArgument naming the input.
Result<RestoreTarget> ParseTimeTarget(std::string_view text);
// A MariaDB GTID position "0-100-41[,1-100-7]" (at least one GTID).
Result<RestoreTarget> ParseGtidTarget(std::string_view text);
std::string FormatTime(int64_t seconds);  // "2026-12-06T10:41:59Z"

// A backup as the plan sees it.
struct BackupPoint {
  std::string id;
  std::string history;  // HistoryAt(its start)
  std::string gtid_position;
  GtidPosition position;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
};

// One segment of a chain, with the cap its history's child branch puts on it.
struct ChainSegment {
  SegmentInfo info;
  std::optional<GtidPosition> cap;  // ancestors: transactions past the branch are not ours
};

// The phases of a chain: per history of the lineage, oldest first, its segments (chain
// order) and its cap.
struct ChainPhase {
  std::string history;
  std::optional<GtidPosition> cap;
  std::vector<SegmentInfo> segments;
};
// `lineage` as LineageOf gives it (newest first); `segments_of` the List of each of its
// histories, in the same order. kCorruption for a branch state that does not parse.
Result<std::vector<ChainPhase>> BuildChain(const std::vector<Lineage>& lineage,
                                           const std::vector<std::vector<SegmentInfo>>& segments_of);

struct Gap {
  std::string history;
  std::string after_state;   // the position the chain reached
  int64_t after_time = 0;    // the last commit before the gap (0: the backup's own point)
  std::string before_state;  // the next segment's start ("" when none follows)
  int64_t before_time = 0;   // its first commit
  std::string before_key;
  std::string Describe() const;
};

// A contiguous stretch a restore can reach: from a backup's point to where its walk ends.
struct RestorableRange {
  std::string from_backup;
  std::string from_state;
  int64_t from_time = 0;  // the backup's finish, in seconds
  std::string to_state;
  int64_t to_time = 0;  // the last archived commit reached (or from_time)
  std::string Describe() const;
};

// The chain checked from the oldest backup of the lineage to the newest segment: every gap,
// and the ranges a restore can reach (merged where they overlap).
struct ChainReport {
  std::vector<RestorableRange> ranges;
  std::vector<Gap> gaps;
  uint64_t segments = 0;
  std::string Describe() const;  // "restorable 2026-…Z (0-100-5) .. 2026-…Z (0-100-90); gap …"
};
ChainReport CheckChain(const std::vector<ChainPhase>& chain, std::vector<BackupPoint> backups);

struct RestorePlan {
  BackupPoint backup;
  RestoreTarget target;
  std::vector<ChainSegment> segments;  // in replay order; the last may be cut at the target
  std::string reach_state;             // where the walk's last whole segment ends
  int64_t reach_time = 0;
  std::optional<Gap> stopped_by_gap;  // latest: the gap that ended the chain early
};
// `backups` of the store (any history; those outside the chain's lineage are not used).
// kInvalidArgument (refused) naming the restorable range when the target cannot be reached.
Result<RestorePlan> PlanRestore(const std::vector<ChainPhase>& chain,
                                std::vector<BackupPoint> backups, const RestoreTarget& target);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_PITR_H_
