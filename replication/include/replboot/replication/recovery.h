// A replica's day-two decision: given why its replication fails (health.h's classes), how long
// it has failed so, whether it holds transactions the primary lacks, and when it last
// re-cloned itself, what replboot does now. Pure, so the table is unit-tested without mysqld;
// the daemon's recovery watcher (daemon/node_services.cc) feeds it and carries it out.
//
//   errant or ahead  failure         guards                              state            does
//   ---------------  --------------  ----------------------------------  ---------------  ---------
//   yes              any             -                                   diverged         report;
//                                                                                         never
//                                                                                         re-clone
//   no               none            -                                   healthy          -
//   no               not_configured, -                                   waiting          wait
//                    transient,
//                    stopped
//   no               diverged        -                                   diverged         report
//   no               apply_error,    -                                   failed           report
//                    other
//   no               source_purged   replication.auto_reclone off        reclone_refused  report
//   no               source_purged   failing < replication.reclone_after reclone_pending  wait
//   no               source_purged   last automatic re-clone committed   reclone_refused  wait for
//                                    < reclone_min_interval ago                           the
//                                                                                         interval
//   no               source_purged   less free than the clone needs      reclone_refused  report;
//                                    (RecloneSpace)                                       until
//                                                                                         enough is
//                                                                                         free
//   no               source_purged   otherwise                           reclone          re-clone
//
// "errant or ahead" comes from comparing GTID states with the primary (gtid.h): unknown (the
// primary unreachable) counts as no, since the failure classes alone then decide, and a
// source_purged failure only re-clones once the comparison has been made (see
// RecoveryFacts::gtid_checked): a re-clone erases what the replica holds.
//
// The persisted record (RecloneRecord) keeps the count and the time of the last automatic
// re-clone in <datadir>.replboot-reclone.json, next to the datadir (it survives the datadir's
// replacement and replboot's restarts), written atomically.
#ifndef REPLBOOT_REPLICATION_RECOVERY_H_
#define REPLBOOT_REPLICATION_RECOVERY_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "replboot/base/status.h"
#include "replboot/db/client.h"
#include "replboot/replication/gtid.h"
#include "replboot/replication/health.h"

namespace replboot::replication {

struct RecloneGuards {
  bool enabled = true;                              // replication.auto_reclone
  std::chrono::seconds after{300};                  // replication.reclone_after
  std::chrono::seconds min_interval{3600};          // replication.reclone_min_interval
};

// Room for a re-clone, measured when one is due. The new clone is received beside the current
// datadir, which stays until the new one commits, so the filesystem's free space (with the old
// data still on it) must hold the new clone's whole size: none of the old datadir counts as
// room, however large it is.
struct RecloneSpace {
  uint64_t needed = 0;  // RecloneBytesNeeded
  uint64_t free = 0;    // on `dir`, the datadir's parent, where the staging dir goes
  std::string dir;
};

// What a re-clone needs free: the expected clone size (`estimated_bytes`, the backup tool's
// measure, clone::EstimateBackupBytes) times the clone pre-flight's `margin`
// (CloneOptions::space_margin). After the clone itself refused for space with
// `free_at_refusal` bytes free (the donor's data is larger than this replica's estimate),
// it needs more than that, by the margin part of the estimate at least: the re-clone waits
// for the disk to grow, not for the next few bytes to free up.
uint64_t RecloneBytesNeeded(uint64_t estimated_bytes, double margin,
                            std::optional<uint64_t> free_at_refusal);

struct RecoveryFacts {
  FailureClass failure;
  // How long the current failure class has been seen without a break.
  std::chrono::seconds failing_for{0};
  // The GTID comparison with the primary was made (since the failure began) and said:
  bool gtid_checked = false;
  bool diverged = false;        // the replica holds GTIDs the primary lacks, or is ahead
  std::string divergence;       // in words: "holds 1 transaction the primary lacks: 0-102-7"
  // Since the last automatic re-clone committed; nullopt: none ever did.
  std::optional<std::chrono::seconds> since_last_reclone;
  // nullopt: not measured (the clone's own pre-flight decides).
  std::optional<RecloneSpace> space;
};

enum class RecoveryAction { kNone, kWait, kReport, kReclone };

struct RecoveryDecision {
  std::string state;  // ReplicaRecoveryView::state (health.h)
  RecoveryAction action = RecoveryAction::kNone;
  std::string reason;  // plain words, for /status, `replboot status`, the logs
  std::optional<std::chrono::seconds> reclone_in;  // reclone_pending / interval: how long yet
};

// The table above.
RecoveryDecision DecideRecovery(const RecoveryFacts& facts, const RecloneGuards& guards);

// A node's GTID history as Dialect::SelectGtidHistory reads it. MariaDB: the binlog state (every
// (domain, server_id) it logged: with log_slave_updates on, also what it replicated) and the
// slave position (what replication applied); MySQL: gtid_executed in binlog_state.
struct GtidHistory {
  std::string binlog_state;
  std::string slave_pos;
  bool log_bin = true;
  bool log_replica_updates = true;
};
Result<GtidHistory> ReadGtidHistory(db::Session& session, Flavour flavour);

// The replica's history against the primary's, like for like (gtid.h): the replica's GTIDs
// the primary lacks are errant (written on the replica, or a former primary's), and a replica
// holding every GTID of the primary and more is ahead (the primary came back with less).
// Either is a divergence: the replica is not a copy of the primary.
struct Divergence {
  GtidRelation relation = GtidRelation::kEqual;
  GtidSet errant{GtidSet::Parse("", Flavour::kMariaDB).value()};  // replica minus primary
  std::string description;  // "" when none; else the plain-words reason naming the GTIDs
  // What the check cannot see: MariaDB with log_bin off logs no GTID for a local write.
  std::string note;
  bool diverged() const { return !errant.empty(); }
};
// kInvalidArgument naming the variable when a GTID text does not parse.
Result<Divergence> CompareWithPrimary(const GtidHistory& replica, const GtidHistory& primary,
                                      Flavour flavour);

// <datadir>.replboot-reclone.json: automatic re-clones of this replica.
struct RecloneRecord {
  uint64_t count = 0;          // re-clones that committed
  int64_t last_started_at = 0;  // Unix seconds; 0 never
  int64_t last_done_at = 0;     // Unix seconds of the last commit; 0 never
  bool in_progress = false;     // started and not committed (interrupted, if read at a start)
  std::string reason;           // of the last one
};
std::string RecloneRecordPath(const std::string& datadir);
// An absent file is a record of no re-clone; a malformed one is kCorruption naming the file.
Result<RecloneRecord> ReadRecloneRecord(const std::string& datadir);
Status WriteRecloneRecord(const std::string& datadir, const RecloneRecord& record);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_RECOVERY_H_
