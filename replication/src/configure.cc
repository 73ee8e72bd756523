#include "replboot/replication/configure.h"

#include <fmt/chrono.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "replboot/base/files.h"
#include "replboot/base/log.h"

namespace replboot::replication {

namespace {

std::string NowIso() {
  auto now = std::chrono::system_clock::now();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z",
                     fmt::gmtime(std::chrono::system_clock::to_time_t(now)));
}

std::string IntentPath(const std::string& datadir) { return datadir + "/" + kIntentFileName; }

Status WriteRecord(const std::string& datadir, const nlohmann::json& record) {
  // Atomic and fsynced: a crash leaves the previous record or this one, never a torn file.
  return files::WriteFileAtomic(IntentPath(datadir), record.dump(2) + "\n", 0600);
}

// The state of an earlier attempt, "" when there is none.
Result<std::string> ReadRecordState(const std::string& datadir) {
  std::string path = IntentPath(datadir);
  auto content = files::ReadFile(path);
  if (!content) {
    if (content.error().code() == StatusCode::kNotFound) return std::string();
    return tl::unexpected(content.error());
  }
  nlohmann::json record = nlohmann::json::parse(*content, nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded() || !record.is_object() || !record.contains("state") ||
      !record["state"].is_string()) {
    return Error(StatusCode::kCorruption, "{}: not a replboot replication record (no \"state\")",
                 path);
  }
  return record["state"].get<std::string>();
}

}  // namespace

Status WaitForReplicaThreads(db::Session& session, const db::Dialect& dialect,
                             std::chrono::milliseconds deadline,
                             std::chrono::milliseconds poll_interval) {
  auto logger = log::Get("replication");
  auto until = std::chrono::steady_clock::now() + deadline;
  std::string why = "no replica status yet";
  while (true) {
    auto state = db::ReadReplicaState(session, dialect);
    if (!state) return state.error();
    if (!state->has_value()) {
      why = "replication is not configured";
    } else {
      const db::ReplicaState& s = **state;
      if (s.IoRunning() && s.SqlRunning()) {
        logger->info("event=replication_running source={}:{}", s.source_host, s.source_port);
        return Status::Ok();
      }
      why = s.WhyNotRunning();
      // The SQL thread does not restart by itself after an error, nor does the IO thread after
      // a fatal one ("No", not "Connecting": e.g. 1236, the source purged the binlogs it
      // needs): waiting cannot help, and the recovery watcher takes it from here.
      if (s.sql_running == "No" && s.last_sql_errno != 0) break;
      if (s.io_running == "No" && s.last_io_errno != 0) break;
    }
    if (std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(poll_interval);
  }
  logger->error("event=replication_not_running deadline_ms={} reason={}", deadline.count(),
                log::Quote(why));
  return Status(
      StatusCode::kUnavailable,
      fmt::format("replication threads not running within {} ms: {}", deadline.count(), why));
}

Result<ConfigureOutcome> ConfigureReplica(db::Session& session, const Position& position,
                                          const ReplicaSetup& setup) {
  auto logger = log::Get("replication");
  auto dialect = db::ReadDialect(session, setup.flavour);
  if (!dialect) return tl::unexpected(dialect.error());
  auto existing = db::ReadReplicaState(session, *dialect);
  if (!existing) return tl::unexpected(existing.error());
  if (existing->has_value()) {
    const db::ReplicaState& s = **existing;
    logger->info("event=replication_already_configured source={}:{} io={} sql={}", s.source_host,
                 s.source_port, s.io_running, s.sql_running);
    if (!s.IoRunning() || !s.SqlRunning()) {
      std::string start = dialect->StartReplica();
      Status status = session.Execute(start);
      if (!status.ok()) return tl::unexpected(status.WithContext(start));
    }
    REPLBOOT_RETURN_IF_ERROR(
        WaitForReplicaThreads(session, *dialect, setup.start_deadline, setup.poll_interval));
    return ConfigureOutcome::kAlreadyConfigured;
  }

  auto previous = ReadRecordState(setup.datadir);
  if (!previous) return tl::unexpected(previous.error());
  if (!previous->empty() && *previous != "intent") {
    return Error(StatusCode::kInternal,
                 "{}: replication was configured once (state '{}') but the server now has none "
                 "(RESET SLAVE ALL?); "
                 "refusing to start again from the clone's position {} — re-clone this replica",
                 IntentPath(setup.datadir), *previous, position.origin);
  }
  if (*previous == "intent") {
    logger->warn(
        "event=replication_intent_found path={} action=configure_again "
        "reason=\"no replication configured: the last attempt stopped before CHANGE MASTER\"",
        IntentPath(setup.datadir));
  }

  ServerInfo server{*dialect, ""};
  if (setup.flavour == Flavour::kMySQL) {
    const std::string sql = fmt::format("SELECT {} AS g", dialect->ExecutedGtidExpression());
    auto rows = session.Query(sql);
    if (!rows) return tl::unexpected(rows.error().WithContext(sql));
    if (!rows->empty()) server.gtid_executed = rows->front().Get("g").value_or("");
    auto normal = NormalizeGtid(server.gtid_executed, Flavour::kMySQL);
    if (normal) server.gtid_executed = *normal;
  }
  auto statements = ReplicaStatements(position, setup.source, server);
  if (!statements) return tl::unexpected(statements.error());

  nlohmann::json record;
  record["version"] = 1;
  record["state"] = "intent";
  record["at"] = NowIso();
  record["position"] = {{"gtid", position.gtid},
                        {"log_file", position.log_file},
                        {"log_pos", position.log_pos},
                        {"origin", position.origin}};
  record["source"] = {
      {"host", setup.source.host}, {"port", setup.source.port}, {"user", setup.source.user}};
  nlohmann::json redacted = nlohmann::json::array();
  for (const Statement& s : *statements) redacted.push_back(s.redacted);
  record["statements"] = redacted;
  REPLBOOT_RETURN_IF_ERROR(WriteRecord(setup.datadir, record));

  for (const Statement& s : *statements) {
    logger->info("event=replication_statement sql={}", log::Quote(s.redacted));
    Status status = session.Execute(s.sql);
    if (!status.ok()) {
      Status failed = status.WithContext(s.redacted);
      // CHANGE MASTER may or may not have taken effect; SHOW SLAVE STATUS decides on restart.
      record["state"] = "intent";
      record["error"] = failed.message();
      (void)WriteRecord(setup.datadir, record);
      logger->error("event=replication_configure_failed error={}", log::Quote(failed.message()));
      return tl::unexpected(failed);
    }
  }
  record["state"] = "configured";
  record["configured_at"] = NowIso();
  REPLBOOT_RETURN_IF_ERROR(WriteRecord(setup.datadir, record));
  logger->info("event=replication_configured source={}:{} gtid={} file={} pos={} origin={}",
               setup.source.host, setup.source.port, log::Quote(position.gtid),
               log::Quote(position.log_file), position.log_pos, log::Quote(position.origin));

  Status running =
      WaitForReplicaThreads(session, *dialect, setup.start_deadline, setup.poll_interval);
  record["threads_running"] = running.ok();
  if (!running.ok()) record["error"] = running.message();
  Status written = WriteRecord(setup.datadir, record);
  if (!running.ok()) return tl::unexpected(running);
  REPLBOOT_RETURN_IF_ERROR(written);
  return ConfigureOutcome::kConfigured;
}

Result<ConfigureOutcome> SetupReplica(db::Session& session, const ReplicaSetup& setup) {
  auto dialect = db::ReadDialect(session, setup.flavour);
  if (!dialect) return tl::unexpected(dialect.error());
  auto existing = db::ReadReplicaState(session, *dialect);
  if (!existing) return tl::unexpected(existing.error());
  Position position;
  if (!existing->has_value()) {
    auto read = ReadClonePosition(setup.datadir, setup.flavour);
    if (!read) return tl::unexpected(read.error());
    position = *read;
  }
  // With replication configured the position is not used: ConfigureReplica only restarts it.
  return ConfigureReplica(session, position, setup);
}

}  // namespace replboot::replication
