// The SQL that differs between MariaDB, MySQL 8.0 and MySQL 8.4, in one place: which statement
// to send and which column to read. replication/ (set-up, health, /wait) and the donor's safety
// check (clone/) both speak through a Dialect, so a server that renamed a statement is handled
// everywhere or nowhere.
//
//                        MariaDB 10.x/11.x          MySQL < 8.0.22          MySQL ≥ 8.0.22 (8.4)
//   replica status       SHOW SLAVE STATUS          SHOW SLAVE STATUS       SHOW REPLICA STATUS
//   start, SQL thread    START SLAVE [SQL_THREAD]   (same)                  START REPLICA
//   [SQL_THREAD] point at a source    CHANGE MASTER TO MASTER_*  (same; ≥ 8.0.23: CHANGE
//   REPLICATION SOURCE TO SOURCE_*) status columns       Master_Host, Master_Port,  (as MariaDB)
//   Source_Host, Source_Port,
//                        Slave_IO_Running,                                  Replica_IO_Running,
//                        Slave_SQL_Running,                                 Replica_SQL_Running,
//                        Seconds_Behind_Master,                             Seconds_Behind_Source,
//                        Slave_IO_State                                     Replica_IO_State
//   received GTIDs       Gtid_IO_Pos                Retrieved_Gtid_Set      Retrieved_Gtid_Set
//   executed GTIDs       @@gtid_current_pos         @@gtid_executed         @@gtid_executed
//   GTID history         @@gtid_binlog_state and    @@gtid_executed         @@gtid_executed
//   (divergence check)   @@gtid_slave_pos, with
//                        @@log_bin and
//                        @@log_slave_updates
//   start position       SET GLOBAL gtid_slave_pos  SET GLOBAL gtid_purged  SET GLOBAL gtid_purged
//   forget GTIDs         —                          RESET MASTER            RESET BINARY LOGS AND
//                                                                           GTIDS (≥ 8.4; 8.0:
//                                                                           RESET MASTER)
//   GTID state           @@gtid_binlog_state,       @@gtid_executed         @@gtid_executed
//                        @@gtid_current_pos
//   forget the source    RESET SLAVE ALL            RESET SLAVE ALL         RESET REPLICA ALL
//   continue a history   RESET MASTER, SET GLOBAL   RESET MASTER, SET       (8.4: RESET BINARY
//                        gtid_binlog_state          GLOBAL gtid_purged      LOGS AND GTIDS), SET
//                                                                           GLOBAL gtid_purged
//   wait for a GTID      MASTER_GTID_WAIT(g, s):    WAIT_FOR_EXECUTED_GTID_SET(g, s): 0 reached,
//                        0 reached, -1 timed out    1 timed out
//   backup account       RELOAD, PROCESS, LOCK      BACKUP_ADMIN, PROCESS, RELOAD, LOCK TABLES,
//                        TABLES, BINLOG MONITOR,    REPLICATION CLIENT + SELECT ON
//                        SLAVE MONITOR              performance_schema.log_status
//
// MySQL 8.4 removed the SLAVE/MASTER spellings (8.0.22/8.0.23 deprecated them), so a statement
// chosen without the version fails there. Unknown version (0): the newest syntax of the flavour.
#ifndef REPLBOOT_DB_DIALECT_H_
#define REPLBOOT_DB_DIALECT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"
#include "replboot/db/client.h"

namespace replboot::db {

// Parses SELECT VERSION() ("10.11.19-MariaDB-0+deb12u1", "8.4.3") into 101119 / 80403.
Result<int> ParseServerVersion(const std::string& version);

// The replica-status column names of one dialect (see the table above).
struct ReplicaStatusColumns {
  const char* source_host;
  const char* source_port;
  const char* io_running;
  const char* sql_running;
  const char* seconds_behind;
  const char* io_state;
  const char* retrieved_gtid;
};

class Dialect {
 public:
  // `version` as ParseServerVersion gives it (80036); 0 when unknown.
  Dialect(Flavour flavour, int version) : flavour_(flavour), version_(version) {}

  Flavour flavour() const { return flavour_; }
  int version() const { return version_; }
  // "MariaDB 10.11.19", "MySQL 8.4.3", "MySQL (version unknown)": for errors and logs.
  std::string Describe() const;

  std::string ShowReplicaStatus() const;
  std::string StartReplica() const;
  std::string StartSqlThread() const;
  std::string ChangeSourceTo() const;
  // An option of ChangeSourceTo: "HOST" → "MASTER_HOST" or "SOURCE_HOST".
  std::string SourceOption(std::string_view name) const;
  // MySQL: the option that fetches the source's RSA key (caching_sha2_password without TLS).
  std::string GetSourcePublicKeyOption() const;
  // MySQL: the statement that empties gtid_executed so that gtid_purged can be set.
  std::string ResetBinaryLogsAndGtids() const;
  // The variable a fresh replica's GTID start position is written to (SET GLOBAL …).
  std::string GtidStartVariable() const;
  // The server's executed GTID position, as a SELECT expression.
  std::string ExecutedGtidExpression() const;
  // The GTIDs a node holds, for comparing two nodes' histories (replication/recovery.h): one
  // row with columns binlog_state, slave_pos, log_bin, log_replica_updates. Reading global
  // variables needs no privilege, so the replication account can ask the primary.
  std::string SelectGtidHistory() const;
  // SELECT <wait>(gtid, timeout) AS r; `gtid` is quoted here. TimedOut says what r means.
  std::string WaitForGtid(const std::string& gtid, int64_t timeout_seconds) const;
  // r of WaitForGtid: true timed out, false reached, nullopt anything else (NULL: not a
  // replica, or an error).
  std::optional<bool> WaitTimedOut(const std::optional<std::string>& r) const;
  // SELECT of the server's GTID state as columns `binlog_state` and `current_pos`: MariaDB
  // @@gtid_binlog_state (every (domain, server_id) it ever logged, what a new binlog must
  // continue from) and @@gtid_current_pos; MySQL @@gtid_executed in both.
  std::string GtidStateQuery() const;
  // STOP SLAVE / STOP REPLICA, and RESET SLAVE ALL / RESET REPLICA ALL: forget the source a
  // cloned datadir inherited (a replica's clone taking over as the primary).
  std::string StopReplica() const;
  std::string ResetReplicaAll() const;
  // The statements that make a new binary log continue the history `gtid_state` (the
  // donor's GtidStateQuery binlog_state) instead of starting from nothing, so replicas
  // asking for their position find it: MariaDB RESET MASTER, SET GLOBAL gtid_binlog_state;
  // MySQL RESET MASTER (8.4: RESET BINARY LOGS AND GTIDS), SET GLOBAL gtid_purged. They
  // delete every binary log of this server: only for a datadir that was just cloned.
  std::vector<std::string> ContinueGtidHistory(const std::string& gtid_state) const;
  // The grants of the account the backup tool (mariabackup / xtrabackup) connects as.
  std::vector<std::string> BackupGrants() const;

  const ReplicaStatusColumns& Columns() const;

 private:
  bool ReplicaKeywords() const;  // MySQL ≥ 8.0.22: SHOW/START/STOP REPLICA, Replica_* columns
  bool SourceKeywords() const;   // MySQL ≥ 8.0.23: CHANGE REPLICATION SOURCE TO SOURCE_*

  Flavour flavour_;
  int version_;
};

// SELECT VERSION() of the connected server, and the dialect it speaks.
Result<Dialect> ReadDialect(Session& session, Flavour flavour);

// One row of the replica status, read with the dialect's column names.
struct ReplicaState {
  std::string source_host;  // empty: replication not configured
  int64_t source_port = 0;
  std::string io_running;                 // "Yes", "No", "Connecting"
  std::string sql_running;                // "Yes", "No"
  std::optional<int64_t> seconds_behind;  // NULL while the IO or SQL thread is down
  int64_t last_io_errno = 0;
  std::string last_io_error;
  int64_t last_sql_errno = 0;
  std::string last_sql_error;
  std::string retrieved_gtid;  // Gtid_IO_Pos / Retrieved_Gtid_Set
  std::string io_state;        // Slave_IO_State / Replica_IO_State, free text

  bool Configured() const { return !source_host.empty(); }
  bool IoRunning() const { return io_running == "Yes"; }
  bool SqlRunning() const { return sql_running == "Yes"; }
  // "IO thread Connecting: error 2003 …; SQL thread No: …" or "" when both run.
  std::string WhyNotRunning() const;
};

// kInternal naming the column when the row lacks the dialect's source-host column (the
// server speaks another dialect than the one chosen: a wrong flavour or version).
Result<ReplicaState> ParseReplicaState(const Row& row, const Dialect& dialect);

// The dialect's ShowReplicaStatus, parsed. nullopt when the server has no replication
// configured (no row, or an empty host).
Result<std::optional<ReplicaState>> ReadReplicaState(Session& session, const Dialect& dialect);

}  // namespace replboot::db

#endif  // REPLBOOT_DB_DIALECT_H_
