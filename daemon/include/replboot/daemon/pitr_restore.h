// Point-in-time restore: a backup, then the archived binlog up to a target, into an empty
// datadir; and the archive's view for `backup list` and `binlog archive-file`.
//
//   plan      histories → the asked one's lineage → its chain of segments (listed, not read)
//             → the newest backup before the target (archive/pitr.h); refused naming the
//             restorable range when the target is outside it
//   segments  every segment the plan needs downloaded, authenticated and parsed FIRST, into a
//             scratch dir beside the datadir (<datadir>.replboot-pitr): transactions the backup
//             holds left out, cut after the target's transaction, one relay log per segment.
//             A bad or missing segment fails here, by name, before anything is restored
//   backup    RestoreBackup: staged, checked, prepared (backups.h)
//   replay    on the prepared staging dir, before its commit: a throwaway server (socket
//             only, no binlog, no grant tables; daemon/scratch_server.h) whose relay log is
//             those files, started with `CHANGE MASTER TO RELAY_LOG_FILE=…` and `START SLAVE
//             SQL_THREAD`: the server's own parallel applier (slave_parallel_threads,
//             optimistic) runs them, with no client round trip per transaction and the redo
//             log flushed once a second (innodb_flush_log_at_trx_commit=2: a crash during the
//             replay discards the staging dir anyway). Done when @@gtid_slave_pos holds the
//             last transaction; then RESET SLAVE ALL and a clean shutdown
//   commit    the promotion marker with the GTID state reached (so the new primary's binlog
//             continues from there) and the new history; the commit marker; the swap. Then the
//             history record in the store (histories/<id>.json); the first start of the
//             restored primary writes the replboot.history row (FinishPromotion), the new
//             history's first transaction
// Any failure before the commit leaves the datadir as it was (empty).
#ifndef REPLBOOT_DAEMON_PITR_RESTORE_H_
#define REPLBOOT_DAEMON_PITR_RESTORE_H_

#include <cstdint>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "replboot/archive/binlog_archive.h"
#include "replboot/archive/histories.h"
#include "replboot/archive/manifest.h"
#include "replboot/archive/pitr.h"
#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/daemon/backups.h"
#include "replboot/daemon/node_settings.h"

namespace replboot::daemon {

// What the store holds for one cluster and history: its records, the chain, the backups.
struct ArchiveView {
  std::string cluster_id;
  std::string root;     // the root history
  std::string history;  // the one asked for (or the newest)
  std::vector<archive::HistoryRecord> histories;
  std::vector<archive::ChainPhase> chain;
  std::vector<archive::BackupPoint> backups;  // complete backups of the cluster
  std::vector<archive::Manifest> manifests;   // the same, by index
  archive::Manifest newest;  // ChooseBackup "latest" of the cluster (what a plain restore takes)
};
// `cluster` "" = archive.source_cluster, else the store's only cluster; `history` "" = the
// newest history of the cluster (the root when none was branched).
Result<ArchiveView> LoadArchiveView(const NodeSettings& settings, Archive& archive,
                                    const std::string& cluster, const std::string& history);

struct PitrOptions {
  archive::RestoreTarget target;
  std::string cluster;
  std::string history;
  std::string datadir;
  bool as_primary = true;  // the promotion marker, and a new history
  int replay_threads = 0;  // slave_parallel_threads; 0 = the CPUs replboot may use, 2..16
  std::stop_token stop;
  clone::CloneProgressCallback on_progress;  // the backup's restore (RestoreOptions)
};

struct PitrReport {
  bool point_in_time = true;  // false: the backup alone (RestoreFromStore, no segments)
  std::string backup_id;
  std::string history;      // restored from
  std::string new_history;  // "" with as_primary false
  size_t segments = 0;
  uint64_t transactions = 0;  // replayed
  uint64_t skipped = 0;       // in the segments but already in the backup
  std::string gtid_state;     // the state reached (@@gtid_binlog_state the primary continues)
  std::string last_gtid;      // the last transaction replayed ("" when none)
  int64_t last_commit_time = 0;
  std::string stopped_by_gap;  // latest: the gap that ended the archive early
  double segments_seconds = 0, restore_seconds = 0, replay_seconds = 0;
};
Result<PitrReport> PointInTimeRestore(const NodeSettings& settings, Archive& archive,
                                      const PitrOptions& options);

// A restore from the store to a target, what `replboot restore` without --backup and a primary
// bootstrapping from the store (restore.target) share:
//   target    segments archived in the chain   restored
//   latest    none                             the newest backup alone, as it is: no replay
//                                              and no new history (nothing to branch from)
//   latest    some                             the newest backup, then every segment after it
//                                              to the end of the chain, or to its first gap
//                                              (named in PitrReport::stopped_by_gap)
//   T or G    any                              PlanRestore's: exactly up to the target, or
//                                              refused (kInvalidArgument) naming the range
// PlanStoreRestore decides (pure: the view is listed already); RestoreFromStore carries it out
// (PointInTimeRestore's steps for a plan with pitr, RestoreBackup for the backup alone).
struct StoreRestorePlan {
  archive::Manifest manifest;                // the backup restored
  std::optional<archive::RestorePlan> pitr;  // nullopt: the backup alone
  std::string Describe() const;  // "backup X + 3 segments to 0-100-41" / "backup X alone"
};
Result<StoreRestorePlan> PlanStoreRestore(const ArchiveView& view,
                                          const archive::RestoreTarget& target);
// `options.target` as planned; cluster and history are the view's.
Result<PitrReport> RestoreFromStore(const NodeSettings& settings, Archive& archive,
                                    const ArchiveView& view, const StoreRestorePlan& plan,
                                    const PitrOptions& options);

// Binlog retention (archive/retention.h PlanSegmentRetention) once `kept` are the backups
// retention keeps: the segments no kept backup needs, of every history of the cluster, are
// deleted (listed only with `dry_run`). Returns their keys.
Result<std::vector<std::string>> PruneSegments(const NodeSettings& settings, Archive& archive,
                                               const std::vector<std::string>& kept,
                                               bool dry_run);

// The replay alone, for the benchmark and tests: relay logs `files` (absolute paths, in
// order) applied to the stopped server datadir `datadir` by a throwaway server in
// `scratch_dir` until @@gtid_slave_pos covers `until`.
struct ReplayOptions {
  std::string datadir;
  std::string scratch_dir;  // the server's socket, pid file, error log, tmpdir, info files
  std::vector<std::string> relay_logs;
  archive::GtidPosition until;
  uint32_t server_id = 0;  // one no replayed event has
  int threads = 0;
  std::stop_token stop;
};
Status ReplayRelayLogs(const NodeSettings& settings, const ReplayOptions& options);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_PITR_RESTORE_H_
