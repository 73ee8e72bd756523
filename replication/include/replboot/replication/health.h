// What a node reports about itself, and the routing decisions made from it (pure functions
// over a Snapshot, so they are unit-tested without a server).
//
//   endpoint   200 when
//   /health    mysqld answers
//   /ready     primary: mysqld answers and is writable (read_only OFF)
//              replica: both replication threads run and the lag is known and <= max_lag
//   /primary   the node is the primary and writable
//   /replica   the node is a replica, both threads run and the lag is known and <= limit
//
// Lag: now minus the timestamp of the last heartbeat the replica applied (the primary's
// replboot writes replboot.heartbeat every second); Seconds_Behind_Master only when there is no
// heartbeat row. Lag is unknown (never within bounds) while a replication thread is down.
#ifndef REPLBOOT_REPLICATION_HEALTH_H_
#define REPLBOOT_REPLICATION_HEALTH_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "replboot/base/shared_view.h"
#include "replboot/base/status.h"
#include "replboot/db/client.h"
#include "replboot/db/dialect.h"
#include "replboot/replication/position.h"

namespace replboot::replication {

enum class NodeRole { kPrimary, kReplica };
std::string_view NodeRoleName(NodeRole role);

// Clone progress, updated by the clone module while it runs (any thread), read by /status
// and /metrics.
struct CloneProgressView {
  // "none" (never cloned here), then while it runs "discovering", "streaming", "preparing",
  // "committing"; at the end "done" or "failed" (error says why; a retry follows).
  std::string phase = "none";
  std::string donor;
  uint64_t bytes = 0;
  uint64_t total_bytes = 0;           // the donor's estimate; 0 when unknown
  double bytes_per_second = 0;        // over the current attempt
  std::optional<double> eta_seconds;  // from the estimate; nullopt when unknown
  // Seconds without a byte from the donor while streaming (then the rate is 0, no ETA).
  std::optional<double> stalled_seconds;
  int attempts = 0;                   // attempts started (a retry after a failure counts again)
  // The donor's backup run the bytes come from (its HEADER says) and the receivers it
  // started with: more than 1 means a backup shared with other new replicas. 0 unknown.
  uint64_t donor_run = 0;
  uint64_t donor_run_receivers = 0;
  // Compression on the wire: what the donor granted ("off", "zstd:1", "auto:3"; "" before its
  // HEADER) and the bytes that arrived on the wire for `bytes` stream bytes.
  std::string compression;
  uint64_t wire_bytes = 0;
  std::string error;
  // True from discovery to the commit: mysqld is not expected to answer yet.
  bool Active() const;
};
using CloneProgress = SharedView<CloneProgressView>;

// The primary's datadir decision when it started with an empty datadir and asked its peers
// (daemon/primary_recovery.h): set by the bootstrap (any thread), read by /status.
struct BootstrapStatusView {
  std::string plan;    // "" (nothing asked), "wait", "conflict", "clone", "initialize",
                       // "restore" (from the store)
  std::string reason;  // a stable token, e.g. no_peers_in_dns, most_advanced_peer
  std::string detail;  // in words
  std::string donor;
  int rounds = 0;
  double waited_seconds = 0;
  // While it waits: each peer that keeps it from deciding, and why, as a stable token
  // (not_in_dns_yet, dns_failing, silent, refused_our_secret, answered_error,
  // cannot_serve, no_position) with the details in words.
  struct WaitingPeer {
    std::string name;
    std::string why;
    std::string detail;
  };
  std::vector<WaitingPeer> waiting_for;
  // Where an operator writes kInitializeEmptyPhrase to end the wait by initializing empty.
  std::string override_file;
  // Waiting or refusing: mysqld is not expected to answer yet.
  bool Holding() const { return plan == "wait" || plan == "conflict"; }
};
using BootstrapStatus = SharedView<BootstrapStatusView>;

// "streaming from mysql-1.mysql:3307: 1.20 GiB of 2.60 GiB (46%), 210.0 MB/s, ETA 7s":
// the clone's state in one line, for /health, /ready and `replboot status`.
std::string DescribeClone(const CloneProgress::View& clone);

// Why a replica's replication is not running, by what can mend it (the recovery decision,
// recovery.h, maps each to wait / re-clone / report):
//
//   class           seen as                                               mended by
//   none            both threads run                                      -
//   not_configured  no replication configured (yet)                       replboot's set-up: wait
//   transient       IO thread connecting, or stopped by a network error   the server retries: wait
//                   (2003, 2005, 2006, 2013, 2026), the source shutting
//                   down or refusing connections (1040, 1053, 1045, 1129)
//   stopped         a thread stopped without an error (STOP SLAVE)        a person's choice: wait
//   source_purged   IO error 1236 (MySQL 8.0.22+: 13114) because the      only a new copy: re-clone
//                   source no longer has the binlogs the replica needs
//                   ("Could not find GTID state requested by slave in
//                   any binlog files ... purged", "... purged required
//                   binary logs", "Could not find first log file name
//                   in binary log index file")
//   diverged        the replica's history is not the source's: IO 1236   a person: report
//                   "... which is not in the master's binlog", "is
//                   missing the GTID", "more GTIDs than the source";
//                   SQL 1950 (out-of-order GTID in strict mode)
//   apply_error     the SQL thread failed to apply a transaction          a person: report
//                   (1062 duplicate key, 1032 row not found, ...): the
//                   data differ
//   other           any other error that stopped a thread                 a person: report
//
// A SQL-thread error wins over an IO-thread one: it says the data already differ, which a
// re-clone would erase.
enum class ReplicationFailure {
  kNone,
  kNotConfigured,
  kTransient,
  kStopped,
  kSourcePurged,
  kDiverged,
  kApplyError,
  kOther,
};
std::string_view ReplicationFailureName(ReplicationFailure failure);

struct FailureClass {
  ReplicationFailure failure = ReplicationFailure::kNone;
  std::string reason;  // the thread and the server's own error, for /status and logs
};
// The table above, from one SHOW SLAVE / REPLICA STATUS (nullopt: not configured). Pure.
FailureClass ClassifyReplication(const std::optional<db::ReplicaState>& state);

// What replboot knows about a replica's day-two state, published by the daemon's recovery
// watcher (any thread) and read by /status, /ready, /replica and /metrics.
struct ReplicaRecoveryView {
  // "" (not watched: a primary, or not set up yet), then one of "healthy", "waiting",
  // "diverged", "failed", "reclone_pending", "reclone_refused", "recloning" (recovery.h).
  std::string state;
  std::string reason;  // in plain words, for /status, `replboot status`, the logs
  std::string failure = "none";  // ReplicationFailureName of the last classification
  // The GTID comparison with the primary: "" unknown (not checked yet or the check failed,
  // see divergence_error), else GtidRelationName ("equal", "behind", "ahead", "diverged").
  std::string gtid_relation;
  std::string errant_gtids;  // the replica's GTIDs the primary lacks ("" none)
  uint64_t errant_transactions = 0;
  // Set while the replica holds GTIDs the primary lacks, or is ahead of it: never ready.
  bool diverged = false;
  std::string divergence_error;  // why the comparison could not be made, if it could not
  uint64_t divergences_detected = 0;  // times a divergence was first seen since the start
  std::optional<double> reclone_in_seconds;  // reclone_pending: when the re-clone starts
  uint64_t reclones = 0;                     // automatic re-clones committed (persisted)
  std::string last_reclone_reason;
  int64_t last_reclone_at = 0;  // Unix seconds; 0 never
};
using RecoveryState = SharedView<ReplicaRecoveryView>;

// What this node's backup server serves as a donor (clone::BackupServer::Activity, mapped by
// the daemon), for /status and /metrics.
struct BackupServing {
  struct Receiver {
    uint64_t run = 0;
    std::string name;  // the replica's name, e.g. mysql-3
    std::string peer;  // address:port
    std::string state;  // joining, streaming, done, dropped, gone
    uint64_t bytes_sent = 0;
    uint64_t wire_bytes_sent = 0;  // what carried them (compressed, when granted)
    std::string compression;       // the run's grant: "off", "zstd:1", "auto:3"
    std::string reason;  // dropped, gone: why
  };
  uint64_t runs = 0;               // backup tool runs (receivers of one window share one)
  uint64_t receivers_dropped = 0;  // dropped for holding the other receivers of a run back
  uint64_t stream_bytes_sent = 0;  // the stream's bytes sent to receivers, all runs together
  uint64_t wire_bytes_sent = 0;    // the DATA/ZDATA payload bytes that carried them
  // Resume (clone/protocol.h, "Why resume"): receivers kept after their link dropped, resumed
  // streams, the bytes sent to them a second time, the spools' disk use now, the window.
  uint64_t receivers_detached = 0;
  uint64_t resumes = 0;
  uint64_t resent_bytes = 0;
  uint64_t resume_spool_bytes = 0;
  int64_t resume_window_seconds = 0;
  std::vector<Receiver> receivers;  // of the runs in progress
  std::vector<Receiver> ended;      // the last few dropped or gone, newest last
};

// This node's scheduled backups (daemon/backup_scheduler.h publishes it), for /status and
// /metrics. Times are Unix seconds, 0 = never / unknown.
struct ArchiveStatusView {
  bool enabled = false;         // a schedule and a store: the scheduler runs on this node
  std::string schedule = "off";  // archive/schedule.h ToString()
  std::string store;            // the store's Describe() (no credential)
  int64_t next_slot_at = 0;
  std::string next_backup_id;
  // What the scheduler does now: "off", "waiting_slot", "waiting_turn", "taking",
  // "retry_wait", "starting"; `turn` says the who-takes rule's state in words ("slot
  // 20261207T101500Z: turn holder mysql-2; this node (mysql-1) 2nd, may try from +30s").
  std::string state = "off";
  std::string slot_id;  // the slot being handled
  std::string turn;
  // The backup in progress: bytes of the stream so far, its rate, and the expected size (the
  // previous backup's logical bytes, 0 unknown) for the ETA.
  bool in_progress = false;
  std::string current_id;
  uint64_t progress_bytes = 0;
  double progress_bytes_per_second = 0;
  uint64_t expected_bytes = 0;
  std::optional<double> eta_seconds;
  // The last slot this node handled: "ok", "failed", "taken_by_other", "missed" (its window
  // passed), with the backup id, the error and the failure kind of a failed one.
  std::string last_result;
  std::string last_id;
  std::string last_error;
  std::string last_failure_kind;
  // The newest complete backup in the store (whichever node took it), as this node last
  // listed it, and the newest restore test recorded there (or set by whoever ran one here).
  int64_t last_success_at = 0;
  std::string last_success_id;
  std::string last_success_node;
  int64_t last_restore_test_at = 0;
  uint64_t taken = 0;  // backups this node took since it started
  // Failed attempts of this node since it started, by kind: store_unreachable, store_denied,
  // store_full, source, verify, restore_test (a scheduled restore test failed), other (every
  // kind present, 0 when none).
  std::map<std::string, uint64_t> failures;
};
using ArchiveStatus = SharedView<ArchiveStatusView>;
// The failure kinds, in the order /metrics lists them.
inline constexpr const char* kBackupFailureKinds[] = {
    "store_unreachable", "store_denied", "store_full", "source", "verify", "restore_test", "other"};

// The binlog archive on this node (daemon/binlog_archiver.h publishes it), for /status and
// /metrics. Times are Unix seconds (0 never); lags are seconds from a transaction's commit on
// the primary (its GTID event's timestamp, whole seconds, so a lag is never under-reported) to
// the end of the upload of the segment that holds it.
struct BinlogArchiveStatusView {
  bool enabled = false;
  // "holder" (this node archives), "standby" (another node does, or none yet), "off".
  std::string role = "off";
  // "waiting_turn", "starting", "archiving", "reconnecting", "store_unreachable", "gap",
  // "fenced" (another node took the lease over), "off"; `detail` in words.
  std::string state = "off";
  std::string detail;
  std::string holder;  // the lease's node, as last read
  uint64_t epoch = 0;  // the lease's epoch, as last read
  std::string history;
  std::string chain_start;  // the position this archiver's current chain started from
  std::string start_source;  // "archive", "backup", "primary" (a new chain)
  std::string newest_gtid;   // the last transaction sealed in the store (by this node)
  int64_t newest_commit_time = 0;
  int64_t newest_sealed_at = 0;
  std::string newest_segment;  // its key
  uint64_t segments = 0, transactions = 0, bytes = 0;
  uint64_t put_failures = 0, stream_errors = 0, takeovers = 0;
  uint64_t fenced = 0;  // times this node found its lease taken over
  uint64_t gaps = 0;
  bool gap_open = false;  // from a gap until the backup that starts the new chain is complete
  std::string last_gap;   // why, and where
  int64_t last_gap_at = 0;
  std::string gap_backup_id;  // the backup requested at the gap, and how it went
  std::string gap_backup_result;
  // The oldest transaction received and not yet sealed in the store: seconds (0 none).
  double pending_seconds = 0;
  // Lag over the last `lag_window_seconds` (quantiles of the transactions sealed in it), and
  // since the start (sum and count, for the summary).
  double lag_p50 = 0, lag_p99 = 0, lag_max = 0;
  uint64_t lag_window_count = 0;
  int64_t lag_window_seconds = 0;
  double lag_sum = 0;
  uint64_t lag_count = 0;
  std::string last_error;
};
using BinlogArchiveStatus = SharedView<BinlogArchiveStatusView>;

struct NodeInfo {
  NodeRole role = NodeRole::kReplica;
  int64_t ordinal = 0;
  uint32_t server_id = 0;
  Flavour flavour = Flavour::kMariaDB;
};

struct Snapshot {
  NodeInfo node;
  bool mysqld_up = false;
  std::string mysqld_error;  // why it does not answer
  std::optional<bool> read_only;
  int version = 0;
  std::string gtid_position;                // @@gtid_current_pos / @@gtid_executed
  std::optional<db::ReplicaState> replica;  // nullopt: no replication configured
  std::optional<double> lag_seconds;        // nullopt: unknown
  std::string lag_source;                   // "heartbeat", "seconds_behind_master" or "" (unknown)
  std::string last_error;                   // configure/start errors and collection errors
  CloneProgress::View clone;
  ReplicaRecoveryView recovery;
  BootstrapStatus::View bootstrap;
  // False from the node's start until users and replication are set up (FinishReplicationSetup):
  // mysqld may answer, even writable, before the application account exists.
  bool set_up = true;
  uint64_t backups_served = 0;
  BackupServing backup;
  // Connections to the backup port closed before authentication: over the cap of
  // unauthenticated connections (a stranger holding the port), counted by the backup server.
  uint64_t backup_connections_refused = 0;
  ArchiveStatusView archive;
  BinlogArchiveStatusView binlog_archive;
  std::chrono::system_clock::time_point collected_at{};
};

struct Decision {
  bool ok = false;
  std::string reason;  // why not (or what is fine), for the response body and /status
};

Decision DecideHealth(const Snapshot& s);
Decision DecideReady(const Snapshot& s, double max_lag);
Decision DecidePrimary(const Snapshot& s);
Decision DecideReplica(const Snapshot& s, double max_lag);

nlohmann::json SnapshotJson(const Snapshot& s, double max_lag);
// Prometheus text exposition format (version 0.0.4).
std::string SnapshotMetrics(const Snapshot& s);

// Reads everything but node, clone, backups_served and last_error from the server. A failed
// connection is not an error here: it is a snapshot with mysqld_up = false.
Snapshot CollectSnapshot(db::Session& session, const NodeInfo& node);

// The primary's heartbeat: one row, replicated like any write.
Status WriteHeartbeat(db::Session& session);

enum class WaitResult { kReached, kTimedOut };
// MASTER_GTID_WAIT (MariaDB replica) / WAIT_FOR_EXECUTED_GTID_SET (MySQL). The session's read
// timeout must exceed `timeout`. kInvalidArgument for a malformed GTID.
// A MariaDB primary is different: MASTER_GTID_WAIT follows gtid_slave_pos, which a primary's
// own writes never advance, so there @@gtid_binlog_pos is compared per domain (polled).
Result<WaitResult> WaitForGtid(db::Session& session, Flavour flavour, const std::string& gtid,
                               std::chrono::seconds timeout, NodeRole role = NodeRole::kReplica);

// True when MariaDB position `have` reaches `want` in every domain of `want` (the rule of
// MASTER_GTID_WAIT: same or higher sequence number per domain). Both must be valid.
bool MariaDbGtidReached(const std::string& have, const std::string& want);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_HEALTH_H_
