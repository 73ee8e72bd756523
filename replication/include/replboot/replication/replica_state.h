// What SHOW SLAVE STATUS / SHOW REPLICA STATUS says, read by column name because the
// names differ by flavour and version:
//
//   MariaDB, MySQL < 8.0.22       MySQL ≥ 8.0.22 (SHOW REPLICA STATUS)
//   Master_Host                   Source_Host
//   Slave_IO_Running              Replica_IO_Running
//   Slave_SQL_Running             Replica_SQL_Running
//   Seconds_Behind_Master         Seconds_Behind_Source
//   Gtid_IO_Pos (MariaDB)         Retrieved_Gtid_Set
#ifndef REPLBOOT_REPLICATION_REPLICA_STATE_H_
#define REPLBOOT_REPLICATION_REPLICA_STATE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "replboot/base/status.h"
#include "replboot/db/client.h"
#include "replboot/replication/position.h"

namespace replboot::replication {

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
  std::string slave_state;     // Slave_IO_State / Replica_IO_State, free text

  bool Configured() const { return !source_host.empty(); }
  bool IoRunning() const { return io_running == "Yes"; }
  bool SqlRunning() const { return sql_running == "Yes"; }
  // "IO thread Connecting: error 2003 …; SQL thread No: …" or "" when both run.
  std::string WhyNotRunning() const;
};

ReplicaState ParseReplicaState(const db::Row& row);

// The statement names for the server: MySQL ≥ 8.0.22 has REPLICA forms (8.4 removed the
// SLAVE ones); MariaDB keeps SLAVE. `version` 0 means unknown (newest syntax).
std::string ShowReplicaStatusSql(Flavour flavour, int version);
std::string StartReplicaSql(Flavour flavour, int version);

// nullopt when the server has no replication configured (no row, or an empty host).
Result<std::optional<ReplicaState>> ReadReplicaState(db::Session& session, Flavour flavour,
                                                     int version);

// SELECT VERSION() parsed (see ParseServerVersion).
Result<int> ReadServerVersion(db::Session& session);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_REPLICA_STATE_H_
