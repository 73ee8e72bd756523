// A replica's day-two watcher, the `supervise` hook of `replboot run` (bootstrap.h): once a
// second, for as long as mysqld runs, it
//
//   classifies the replica's replication (health.h: ClassifyReplication, from the HTTP
//   poller's snapshot, so it costs mysqld nothing more),
//   compares its GTID history with the primary's every few seconds (recovery.h:
//   CompareWithPrimary; the primary is read over a connection of the replication account,
//   which needs no privilege for global variables),
//   decides (recovery.h: DecideRecovery, with replication.auto_reclone / reclone_after /
//   reclone_min_interval and the record of past re-clones next to the datadir),
//   publishes the outcome to the HTTP API (ReplicaRecoveryView: /status, /ready, /replica, /metrics)
//   and logs each change (event=replication_failure, replica_diverged, reclone_pending,
//   reclone_refused, reclone_started),
//
// and returns true when the replica must be re-cloned (RunNode then stops mysqld and clones
// with the old datadir kept aside). Recloned() records a committed re-clone.
//
// Before it asks for a re-clone it measures the room for one (RecloneSpace): this replica's
// data as the backup tool would stream it (the donor holds the same cluster's data), once per
// failure, against the free space of the datadir's filesystem (statvfs), at every decision.
// Too little is reclone_refused, mysqld untouched, until enough is free. When the clone
// itself refused for space after all (the donor's data is larger), RunNode starts mysqld
// again on the old datadir and the next Watch() holds the re-clone until the disk has grown
// past what it had then; a restart of replboot forgets that and measures afresh.
#ifndef REPLBOOT_DAEMON_RECOVERY_WATCHER_H_
#define REPLBOOT_DAEMON_RECOVERY_WATCHER_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "replboot/api/server.h"
#include "replboot/base/status.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/daemon/supervisor.h"
#include "replboot/db/client.h"
#include "replboot/replication/recovery.h"

namespace replboot::daemon {

struct RecoveryWatcherOptions {
  replication::RecloneGuards guards;
  std::string datadir;             // the record lives next to it
  db::ConnectOptions local;        // root over the socket
  db::ConnectOptions primary;      // the replication account at <prefix>-0.<service>
  Flavour flavour = Flavour::kMariaDB;
  std::chrono::milliseconds tick{1000};
  std::chrono::milliseconds gtid_check_interval{5000};
  double space_margin = 1.05;  // the clone pre-flight's (CloneOptions::space_margin)
};

// The options of this node (the replication password is read here once).
Result<RecoveryWatcherOptions> RecoveryWatcherOptionsFor(const NodeSettings& settings);

class RecoveryWatcher {
 public:
  // Reads the re-clone record (an interrupted re-clone is logged); kCorruption when it is
  // malformed (a person must look: the guard's memory is lost).
  static Result<std::unique_ptr<RecoveryWatcher>> Create(RecoveryWatcherOptions options,
                                                         api::Server& server);

  // Until mysqld ends or a stop is requested (false), or the replica must be re-cloned (true,
  // with the record saying so and the view "recloning").
  Result<bool> Watch(const Supervisor& supervisor);
  // The re-clone asked for by Watch() committed: counted in the record.
  Status Recloned();

 private:
  RecoveryWatcher(RecoveryWatcherOptions options, api::Server& server,
                  replication::RecloneRecord record);
  void CheckGtids(std::chrono::steady_clock::time_point now);
  std::optional<std::chrono::seconds> SinceLastReclone() const;
  // nullopt when it cannot be measured (logged once): the clone's pre-flight decides then.
  std::optional<replication::RecloneSpace> MeasureSpace();
  // A Watch() after one that asked for a re-clone which did not commit.
  void NoteRefusedReclone();
  void Publish(const replication::RecoveryDecision& decision,
               const replication::FailureClass& failure);

  RecoveryWatcherOptions options_;
  api::Server& server_;
  replication::RecloneRecord record_;
  std::unique_ptr<db::Session> local_;
  std::unique_ptr<db::Session> primary_;

  // The current failure class and since when it is seen without a break.
  replication::ReplicationFailure failure_ = replication::ReplicationFailure::kNone;
  std::chrono::steady_clock::time_point failing_since_{};
  bool failure_logged_ = false;
  // The last GTID comparison.
  std::optional<std::chrono::steady_clock::time_point> checked_at_;
  std::optional<replication::Divergence> divergence_;
  std::string check_error_;
  uint64_t divergences_detected_ = 0;
  std::string last_state_;  // the decision's state last logged
  std::string last_reason_;
  // Room for a re-clone: the estimate (reset with each new failure), the free space seen when
  // the clone refused one this run, and why the last measure failed.
  std::optional<uint64_t> estimate_;
  std::optional<uint64_t> refused_free_;
  std::string space_error_;
  bool asked_reclone_ = false;  // the last Watch() returned true
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_RECOVERY_WATCHER_H_
