#include "replboot/replication/replica_state.h"

#include <charconv>

#include "replboot/replication/statements.h"

namespace replboot::replication {

namespace {

std::optional<std::string> First(const db::Row& row, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (row.Has(name)) return row.Get(name);
  }
  return std::nullopt;
}

std::optional<int64_t> Int(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || ptr != text->data() + text->size()) return std::nullopt;
  return v;
}

}  // namespace

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

ReplicaState ParseReplicaState(const db::Row& row) {
  ReplicaState s;
  s.source_host = First(row, {"Master_Host", "Source_Host"}).value_or("");
  s.source_port = Int(First(row, {"Master_Port", "Source_Port"})).value_or(0);
  s.io_running = First(row, {"Slave_IO_Running", "Replica_IO_Running"}).value_or("");
  s.sql_running = First(row, {"Slave_SQL_Running", "Replica_SQL_Running"}).value_or("");
  s.seconds_behind = Int(First(row, {"Seconds_Behind_Master", "Seconds_Behind_Source"}));
  s.last_io_errno = Int(row.Get("Last_IO_Errno")).value_or(0);
  s.last_io_error = row.Get("Last_IO_Error").value_or("");
  s.last_sql_errno = Int(row.Get("Last_SQL_Errno")).value_or(0);
  s.last_sql_error = row.Get("Last_SQL_Error").value_or("");
  s.retrieved_gtid = First(row, {"Gtid_IO_Pos", "Retrieved_Gtid_Set"}).value_or("");
  s.slave_state = First(row, {"Slave_IO_State", "Replica_IO_State"}).value_or("");
  return s;
}

std::string ShowReplicaStatusSql(Flavour flavour, int version) {
  if (flavour == Flavour::kMySQL && (version == 0 || version >= 80022))
    return "SHOW REPLICA STATUS";
  return "SHOW SLAVE STATUS";
}

std::string StartReplicaSql(Flavour flavour, int version) {
  if (flavour == Flavour::kMySQL && (version == 0 || version >= 80022)) return "START REPLICA";
  return "START SLAVE";
}

Result<std::optional<ReplicaState>> ReadReplicaState(db::Session& session, Flavour flavour,
                                                     int version) {
  auto rows = session.Query(ShowReplicaStatusSql(flavour, version));
  if (!rows)
    return tl::unexpected(rows.error().WithContext(ShowReplicaStatusSql(flavour, version)));
  if (rows->empty()) return std::optional<ReplicaState>();
  ReplicaState state = ParseReplicaState(rows->front());
  if (!state.Configured()) return std::optional<ReplicaState>();
  return std::optional<ReplicaState>(std::move(state));
}

Result<int> ReadServerVersion(db::Session& session) {
  auto rows = session.Query("SELECT VERSION() AS v");
  if (!rows) return tl::unexpected(rows.error().WithContext("SELECT VERSION()"));
  if (rows->empty() || !rows->front().Get("v")) {
    return Error(StatusCode::kInternal, "SELECT VERSION() returned no value");
  }
  return ParseServerVersion(*rows->front().Get("v"));
}

}  // namespace replboot::replication
