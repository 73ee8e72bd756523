#include "replboot/db/dialect.h"

#include <cctype>
#include <charconv>

namespace replboot::db {

Result<int> ParseServerVersion(const std::string& version) {
  int parts[3] = {0, 0, 0};
  size_t i = 0;
  for (int p = 0; p < 3; ++p) {
    size_t start = i;
    while (i < version.size() && std::isdigit(static_cast<unsigned char>(version[i])) &&
           i - start < 4) {
      parts[p] = parts[p] * 10 + (version[i] - '0');
      ++i;
    }
    if (i == start)
      return Error(StatusCode::kInvalidArgument, "server version '{}' is not major.minor.patch",
                   version);
    if (p < 2) {
      if (i >= version.size() || version[i] != '.') {
        return Error(StatusCode::kInvalidArgument, "server version '{}' is not major.minor.patch",
                     version);
      }
      ++i;
    }
  }
  return parts[0] * 10000 + parts[1] * 100 + parts[2];
}

namespace {

constexpr ReplicaStatusColumns kSlaveColumns = {
    "Master_Host",           "Master_Port",    "Slave_IO_Running", "Slave_SQL_Running",
    "Seconds_Behind_Master", "Slave_IO_State", "Gtid_IO_Pos"};
// MySQL before 8.0.22: the SLAVE names, but its own GTID column.
constexpr ReplicaStatusColumns kMySqlSlaveColumns = {
    "Master_Host",           "Master_Port",    "Slave_IO_Running",  "Slave_SQL_Running",
    "Seconds_Behind_Master", "Slave_IO_State", "Retrieved_Gtid_Set"};
constexpr ReplicaStatusColumns kReplicaColumns = {
    "Source_Host",           "Source_Port",      "Replica_IO_Running", "Replica_SQL_Running",
    "Seconds_Behind_Source", "Replica_IO_State", "Retrieved_Gtid_Set"};

std::optional<int64_t> Int(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || ptr != text->data() + text->size()) return std::nullopt;
  return v;
}

}  // namespace

bool Dialect::ReplicaKeywords() const {
  return flavour_ == Flavour::kMySQL && (version_ == 0 || version_ >= 80022);
}

bool Dialect::SourceKeywords() const {
  return flavour_ == Flavour::kMySQL && (version_ == 0 || version_ >= 80023);
}

std::string Dialect::Describe() const {
  const char* name = flavour_ == Flavour::kMariaDB ? "MariaDB" : "MySQL";
  if (version_ == 0) return fmt::format("{} (version unknown)", name);
  return fmt::format("{} {}.{}.{}", name, version_ / 10000, version_ / 100 % 100, version_ % 100);
}

std::string Dialect::ShowReplicaStatus() const {
  return ReplicaKeywords() ? "SHOW REPLICA STATUS" : "SHOW SLAVE STATUS";
}

std::string Dialect::StartReplica() const {
  return ReplicaKeywords() ? "START REPLICA" : "START SLAVE";
}

std::string Dialect::StartSqlThread() const { return StartReplica() + " SQL_THREAD"; }

std::string Dialect::ChangeSourceTo() const {
  return SourceKeywords() ? "CHANGE REPLICATION SOURCE TO" : "CHANGE MASTER TO";
}

std::string Dialect::SourceOption(std::string_view name) const {
  return fmt::format("{}_{}", SourceKeywords() ? "SOURCE" : "MASTER", name);
}

std::string Dialect::GetSourcePublicKeyOption() const {
  return SourceKeywords() ? "GET_SOURCE_PUBLIC_KEY" : "GET_MASTER_PUBLIC_KEY";
}

std::string Dialect::ResetBinaryLogsAndGtids() const {
  // 8.4 removed RESET MASTER (8.2 introduced the new name).
  return flavour_ == Flavour::kMySQL && (version_ == 0 || version_ >= 80400)
             ? "RESET BINARY LOGS AND GTIDS"
             : "RESET MASTER";
}

std::string Dialect::GtidStartVariable() const {
  return flavour_ == Flavour::kMariaDB ? "gtid_slave_pos" : "gtid_purged";
}

std::string Dialect::ExecutedGtidExpression() const {
  // MariaDB's gtid_current_pos is what the server applied, as a primary or as a replica.
  return flavour_ == Flavour::kMariaDB ? "@@GLOBAL.gtid_current_pos" : "@@GLOBAL.gtid_executed";
}

std::string Dialect::SelectGtidHistory() const {
  // MariaDB: the binlog state keeps every (domain, server_id) ever logged, the slave position
  // what replication applied (the binlog lacks it when log_slave_updates is off). MySQL's
  // gtid_executed holds both, whatever log_replica_updates says.
  if (flavour_ == Flavour::kMariaDB) {
    return "SELECT @@GLOBAL.gtid_binlog_state AS binlog_state, @@GLOBAL.gtid_slave_pos AS "
           "slave_pos, @@GLOBAL.log_bin AS log_bin, @@GLOBAL.log_slave_updates AS "
           "log_replica_updates";
  }
  return "SELECT @@GLOBAL.gtid_executed AS binlog_state, '' AS slave_pos, @@GLOBAL.log_bin AS "
         "log_bin, 1 AS log_replica_updates";
}

std::string Dialect::WaitForGtid(const std::string& gtid, int64_t timeout_seconds) const {
  return fmt::format(
      "SELECT {}({}, {}) AS r",
      flavour_ == Flavour::kMariaDB ? "MASTER_GTID_WAIT" : "WAIT_FOR_EXECUTED_GTID_SET",
      QuoteLiteral(gtid), timeout_seconds);
}

std::optional<bool> Dialect::WaitTimedOut(const std::optional<std::string>& r) const {
  if (r == "0") return false;
  if (r == (flavour_ == Flavour::kMariaDB ? "-1" : "1")) return true;
  return std::nullopt;
}

std::string Dialect::GtidStateQuery() const {
  if (flavour_ == Flavour::kMariaDB) {
    return "SELECT @@GLOBAL.gtid_binlog_state AS binlog_state, "
           "@@GLOBAL.gtid_current_pos AS current_pos";
  }
  return "SELECT @@GLOBAL.gtid_executed AS binlog_state, @@GLOBAL.gtid_executed AS current_pos";
}

std::string Dialect::StopReplica() const {
  return ReplicaKeywords() ? "STOP REPLICA" : "STOP SLAVE";
}

std::string Dialect::ResetReplicaAll() const {
  return ReplicaKeywords() ? "RESET REPLICA ALL" : "RESET SLAVE ALL";
}

std::vector<std::string> Dialect::ContinueGtidHistory(const std::string& gtid_state) const {
  if (flavour_ == Flavour::kMariaDB) {
    // The new binlog's first Gtid_list event carries the state: a replica at any position of
    // it finds where to continue.
    return {"RESET MASTER", "SET GLOBAL gtid_binlog_state = " + QuoteLiteral(gtid_state)};
  }
  // gtid_purged may only be set while gtid_executed is empty.
  return {ResetBinaryLogsAndGtids(), "SET GLOBAL gtid_purged = " + QuoteLiteral(gtid_state)};
}

std::vector<std::string> Dialect::BackupGrants() const {
  // The replica-admin privilege is for the BackupServer, not the tool: a replica serving a
  // backup restarts its own SQL thread when the run left it stopped (START SLAVE/REPLICA
  // SQL_THREAD), on this account's connection. It is the narrowest privilege that allows it
  // (not SUPER), and the account is @'localhost', where the root password is mounted anyway;
  // a connection as root instead would put the strongest credential in the backup path and
  // make `replboot serve-backup` need it.
  // mariabackup: BINLOG MONITOR for the binlog position, SLAVE MONITOR for --slave-info.
  if (flavour_ == Flavour::kMariaDB)
    return {"RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR, REPLICATION SLAVE ADMIN "
            "ON *.*"};
  // xtrabackup 8: BACKUP_ADMIN for LOCK INSTANCE FOR BACKUP, log_status for the position.
  return {"BACKUP_ADMIN, PROCESS, RELOAD, LOCK TABLES, REPLICATION CLIENT, REPLICATION_SLAVE_ADMIN "
          "ON *.*",
          "SELECT ON performance_schema.log_status"};
}

const ReplicaStatusColumns& Dialect::Columns() const {
  if (flavour_ == Flavour::kMariaDB) return kSlaveColumns;
  return ReplicaKeywords() ? kReplicaColumns : kMySqlSlaveColumns;
}

Result<Dialect> ReadDialect(Session& session, Flavour flavour) {
  auto rows = session.Query("SELECT VERSION() AS v");
  if (!rows) return tl::unexpected(rows.error().WithContext("SELECT VERSION()"));
  if (rows->empty() || !rows->front().Get("v")) {
    return Error(StatusCode::kInternal, "SELECT VERSION() returned no value");
  }
  auto version = ParseServerVersion(*rows->front().Get("v"));
  if (!version) return tl::unexpected(version.error());
  return Dialect(flavour, *version);
}

std::string ReplicaState::WhyNotRunning() const {
  std::string out;
  if (!Configured()) return "replication is not configured";
  if (!IoRunning()) {
    out += fmt::format("IO thread {}", io_running.empty() ? "?" : io_running);
    if (last_io_errno != 0) out += fmt::format(": error {}: {}", last_io_errno, last_io_error);
  }
  if (!SqlRunning()) {
    if (!out.empty()) out += "; ";
    out += fmt::format("SQL thread {}", sql_running.empty() ? "?" : sql_running);
    if (last_sql_errno != 0) out += fmt::format(": error {}: {}", last_sql_errno, last_sql_error);
  }
  return out;
}

Result<ReplicaState> ParseReplicaState(const Row& row, const Dialect& dialect) {
  const ReplicaStatusColumns& c = dialect.Columns();
  if (!row.Has(c.source_host)) {
    return Error(StatusCode::kInternal,
                 "{} has no column {}: the server does not speak the {} dialect (wrong "
                 "node.flavour?)",
                 dialect.ShowReplicaStatus(), c.source_host, dialect.Describe());
  }
  ReplicaState s;
  s.source_host = row.Get(c.source_host).value_or("");
  s.source_port = Int(row.Get(c.source_port)).value_or(0);
  s.io_running = row.Get(c.io_running).value_or("");
  s.sql_running = row.Get(c.sql_running).value_or("");
  s.seconds_behind = Int(row.Get(c.seconds_behind));
  s.last_io_errno = Int(row.Get("Last_IO_Errno")).value_or(0);
  s.last_io_error = row.Get("Last_IO_Error").value_or("");
  s.last_sql_errno = Int(row.Get("Last_SQL_Errno")).value_or(0);
  s.last_sql_error = row.Get("Last_SQL_Error").value_or("");
  s.retrieved_gtid = row.Get(c.retrieved_gtid).value_or("");
  s.io_state = row.Get(c.io_state).value_or("");
  return s;
}

Result<std::optional<ReplicaState>> ReadReplicaState(Session& session, const Dialect& dialect) {
  const std::string sql = dialect.ShowReplicaStatus();
  auto rows = session.Query(sql);
  if (!rows) return tl::unexpected(rows.error().WithContext(sql));
  if (rows->empty()) return std::optional<ReplicaState>();
  auto state = ParseReplicaState(rows->front(), dialect);
  if (!state) return tl::unexpected(state.error());
  if (!state->Configured()) return std::optional<ReplicaState>();
  return std::optional<ReplicaState>(std::move(*state));
}

}  // namespace replboot::db
