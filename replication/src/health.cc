#include "replboot/replication/health.h"

#include <charconv>
#include <cmath>
#include <map>
#include <thread>

#include "replboot/replication/users.h"

namespace replboot::replication {

std::string_view NodeRoleName(NodeRole role) {
  return role == NodeRole::kPrimary ? "primary" : "replica";
}

namespace {

Decision Yes(std::string reason) { return Decision{true, std::move(reason)}; }
Decision No(std::string reason) { return Decision{false, std::move(reason)}; }

// While a clone runs mysqld is not started yet: say so, rather than "not answering".
Decision MysqldDown(const Snapshot& s) {
  if (s.clone.Active()) return No("cloning: " + DescribeClone(s.clone));
  return No("mysqld is not answering: " + s.mysqld_error);
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string LabelValue(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string Bytes(uint64_t n) {
  constexpr double kGiB = 1024.0 * 1024 * 1024;
  constexpr double kMiB = 1024.0 * 1024;
  if (n >= (1ull << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(n) / kGiB);
  if (n >= (1ull << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(n) / kMiB);
  return fmt::format("{} bytes", n);
}

// Replication threads and lag, shared by /ready and /replica.
Decision ReplicaWithin(const Snapshot& s, double max_lag) {
  if (!s.mysqld_up) return MysqldDown(s);
  if (!s.set_up) return No("mysqld is up; replboot is still setting up replication");
  if (!s.replica) {
    return No(s.last_error.empty() ? "replication is not configured"
                                   : "replication is not configured: " + s.last_error);
  }
  if (!s.replica->IoRunning() || !s.replica->SqlRunning()) return No(s.replica->WhyNotRunning());
  if (!s.lag_seconds) return No("replication lag is unknown");
  if (*s.lag_seconds > max_lag) {
    return No(fmt::format("replication lag {:.3f}s ({}) exceeds {}s", *s.lag_seconds, s.lag_source,
                          max_lag));
  }
  return Yes(fmt::format("replicating, lag {:.3f}s ({})", *s.lag_seconds, s.lag_source));
}

std::optional<double> ParseDouble(const std::optional<std::string>& text) {
  if (!text || text->empty()) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || ptr != text->data() + text->size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

}  // namespace

bool CloneProgress::View::Active() const {
  return phase == "discovering" || phase == "streaming" || phase == "preparing" ||
         phase == "committing";
}

std::string DescribeClone(const CloneProgress::View& c) {
  std::string out = c.phase;
  if (!c.donor.empty()) out += " from " + c.donor;
  if (c.donor_run_receivers > 1 && c.phase != "discovering" && c.phase != "failed") {
    out += fmt::format(" (a backup shared by {} replicas)", c.donor_run_receivers);
  }
  if (c.phase == "none" || c.phase == "discovering") {
    if (c.attempts > 1) out += fmt::format(" (attempt {})", c.attempts);
    if (!c.error.empty()) out += ", last error: " + c.error;
    return out;
  }
  out += ": " + Bytes(c.bytes);
  if (c.total_bytes > 0) {
    out += fmt::format(" of {} ({:.0f}%)", Bytes(c.total_bytes),
                       100.0 * static_cast<double>(c.bytes) / static_cast<double>(c.total_bytes));
  }
  if (c.phase == "streaming" && c.stalled_seconds) {
    out += fmt::format(", stalled for {:.0f}s", *c.stalled_seconds);
  } else if (c.phase == "streaming" && c.bytes_per_second > 0) {
    out += fmt::format(", {:.1f} MB/s", c.bytes_per_second / 1e6);
    if (c.eta_seconds) out += fmt::format(", ETA {:.0f}s", *c.eta_seconds);
  }
  if (c.attempts > 1) out += fmt::format(" (attempt {})", c.attempts);
  if (!c.error.empty()) out += ", error: " + c.error;
  return out;
}

Decision DecideHealth(const Snapshot& s) {
  if (!s.mysqld_up) return MysqldDown(s);
  return Yes("mysqld answers");
}

Decision DecidePrimary(const Snapshot& s) {
  if (!s.mysqld_up) return MysqldDown(s);
  if (s.node.role != NodeRole::kPrimary) return No("this node is a replica");
  if (!s.set_up) return No("mysqld is up; replboot is still setting up its accounts");
  if (!s.read_only.has_value()) return No("read_only is unknown");
  if (*s.read_only) return No("the primary is read-only");
  return Yes("writable primary");
}

Decision DecideReplica(const Snapshot& s, double max_lag) {
  if (s.node.role != NodeRole::kReplica) return No("this node is the primary");
  return ReplicaWithin(s, max_lag);
}

Decision DecideReady(const Snapshot& s, double max_lag) {
  if (s.node.role == NodeRole::kPrimary) return DecidePrimary(s);
  return ReplicaWithin(s, max_lag);
}

nlohmann::json SnapshotJson(const Snapshot& s, double max_lag) {
  nlohmann::json j;
  j["role"] = NodeRoleName(s.node.role);
  j["ordinal"] = s.node.ordinal;
  j["server_id"] = s.node.server_id;
  j["flavour"] = FlavourName(s.node.flavour);
  j["mysqld_up"] = s.mysqld_up;
  j["set_up"] = s.set_up;
  if (!s.mysqld_error.empty()) j["mysqld_error"] = s.mysqld_error;
  j["read_only"] = s.read_only ? nlohmann::json(*s.read_only) : nlohmann::json(nullptr);
  j["gtid_position"] = s.gtid_position;
  j["lag_seconds"] = s.lag_seconds ? nlohmann::json(*s.lag_seconds) : nlohmann::json(nullptr);
  j["lag_source"] = s.lag_source;
  j["max_lag_seconds"] = max_lag;
  if (s.replica) {
    const db::ReplicaState& r = *s.replica;
    j["replication"] = {
        {"source_host", r.source_host},
        {"source_port", r.source_port},
        {"io_running", r.io_running},
        {"sql_running", r.sql_running},
        {"seconds_behind_source",
         r.seconds_behind ? nlohmann::json(*r.seconds_behind) : nlohmann::json(nullptr)},
        {"last_io_errno", r.last_io_errno},
        {"last_io_error", r.last_io_error},
        {"last_sql_errno", r.last_sql_errno},
        {"last_sql_error", r.last_sql_error},
        {"retrieved_gtid", r.retrieved_gtid}};
  } else {
    j["replication"] = nullptr;
  }
  j["clone"] = {{"phase", s.clone.phase},
                {"active", s.clone.Active()},
                {"donor", s.clone.donor},
                {"bytes", s.clone.bytes},
                {"total_bytes", s.clone.total_bytes},
                {"bytes_per_second", s.clone.bytes_per_second},
                {"eta_seconds", s.clone.eta_seconds ? nlohmann::json(*s.clone.eta_seconds)
                                                    : nlohmann::json(nullptr)},
                {"stalled_seconds", s.clone.stalled_seconds
                                        ? nlohmann::json(*s.clone.stalled_seconds)
                                        : nlohmann::json(nullptr)},
                {"attempts", s.clone.attempts},
                {"donor_run", s.clone.donor_run},
                {"donor_run_receivers", s.clone.donor_run_receivers},
                {"donor_run_shared", s.clone.donor_run_receivers > 1},
                {"error", s.clone.error},
                {"summary", DescribeClone(s.clone)}};
  j["backups_served"] = s.backups_served;
  auto receivers = [](const std::vector<BackupServing::Receiver>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : list) {
      out.push_back({{"run", r.run},
                     {"name", r.name},
                     {"peer", r.peer},
                     {"state", r.state},
                     {"bytes_sent", r.bytes_sent},
                     {"reason", r.reason}});
    }
    return out;
  };
  j["backup"] = {{"runs", s.backup.runs},
                 {"served", s.backups_served},
                 {"receivers_dropped", s.backup.receivers_dropped},
                 {"receivers", receivers(s.backup.receivers)},
                 {"ended", receivers(s.backup.ended)}};
  Decision ready = DecideReady(s, max_lag);
  j["ready"] = ready.ok;
  j["ready_reason"] = ready.reason;
  j["last_error"] = s.last_error;
  j["collected_at_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(s.collected_at.time_since_epoch())
          .count();
  return j;
}

std::string SnapshotMetrics(const Snapshot& s) {
  std::string out;
  auto gauge = [&](const char* name, const char* help, const std::string& value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, value);
  };
  gauge("replboot_mysqld_up", "1 when mysqld answers queries.", s.mysqld_up ? "1" : "0");
  gauge("replboot_primary", "1 on the primary, 0 on a replica.",
        s.node.role == NodeRole::kPrimary ? "1" : "0");
  gauge("replboot_read_only", "1 when read_only is ON, NaN when unknown.",
        s.read_only ? (*s.read_only ? "1" : "0") : "NaN");
  gauge("replboot_replication_lag_seconds",
        "Replication lag (heartbeat based); NaN when unknown or not a replica.",
        s.lag_seconds ? fmt::format("{:.6f}", *s.lag_seconds) : "NaN");
  bool io = s.replica && s.replica->IoRunning();
  bool sql = s.replica && s.replica->SqlRunning();
  out +=
      "# HELP replboot_replication_thread_running 1 when the replication thread runs.\n"
      "# TYPE replboot_replication_thread_running gauge\n";
  out += fmt::format("replboot_replication_thread_running{{thread=\"io\"}} {}\n", io ? 1 : 0);
  out += fmt::format("replboot_replication_thread_running{{thread=\"sql\"}} {}\n", sql ? 1 : 0);
  gauge("replboot_clone_bytes", "Bytes received by the current or last clone.",
        std::to_string(s.clone.bytes));
  gauge("replboot_clone_estimated_bytes", "The donor's size estimate for the clone; 0 unknown.",
        std::to_string(s.clone.total_bytes));
  gauge("replboot_clone_active", "1 while a clone runs (discovery to commit).",
        s.clone.Active() ? "1" : "0");
  gauge("replboot_clone_attempts", "Clone attempts started since replboot started.",
        std::to_string(s.clone.attempts));
  out += fmt::format(
      "# HELP replboot_backups_served_total Backups streamed to peers.\n# TYPE "
      "replboot_backups_served_total "
      "counter\nreplboot_backups_served_total {}\n",
      s.backups_served);
  out += fmt::format(
      "# HELP replboot_backup_runs_total Backup tool runs; the receivers that join one run's "
      "window share it, so runs below backups served means shared runs.\n"
      "# TYPE replboot_backup_runs_total counter\nreplboot_backup_runs_total {}\n",
      s.backup.runs);
  out += fmt::format(
      "# HELP replboot_backup_receivers_dropped_total Receivers dropped from a shared backup run "
      "for holding the others back.\n# TYPE replboot_backup_receivers_dropped_total counter\n"
      "replboot_backup_receivers_dropped_total {}\n",
      s.backup.receivers_dropped);
  out +=
      "# HELP replboot_backup_receiver_bytes Bytes sent to each receiver of the backup runs in "
      "progress.\n# TYPE replboot_backup_receiver_bytes gauge\n";
  for (const auto& r : s.backup.receivers) {
    out += fmt::format(
        "replboot_backup_receiver_bytes{{run=\"{}\",receiver=\"{}\",state=\"{}\"}} {}\n", r.run,
        LabelValue(r.name.empty() ? r.peer : r.name), LabelValue(r.state), r.bytes_sent);
  }
  gauge("replboot_clone_donor_run_receivers",
        "Receivers of the donor's backup run this clone's bytes come from (over 1: shared); 0 "
        "unknown.",
        std::to_string(s.clone.donor_run_receivers));
  out += fmt::format(
      "# HELP replboot_backup_connections_refused_total Backup-port connections closed before "
      "authentication (over the cap of unauthenticated ones).\n# TYPE "
      "replboot_backup_connections_refused_total counter\n"
      "replboot_backup_connections_refused_total {}\n",
      s.backup_connections_refused);
  return out;
}

Snapshot CollectSnapshot(db::Session& session, const NodeInfo& node) {
  Snapshot s;
  s.node = node;
  s.collected_at = std::chrono::system_clock::now();
  // The GTID expression is the same in every version of a flavour: the version is read here.
  auto rows = session.Query(fmt::format("SELECT @@GLOBAL.read_only AS ro, VERSION() AS v, {} AS g",
                                        db::Dialect(node.flavour, 0).ExecutedGtidExpression()));
  if (!rows) {
    s.mysqld_error = rows.error().message();
    return s;
  }
  s.mysqld_up = true;
  if (!rows->empty()) {
    const db::Row& row = rows->front();
    if (auto ro = row.Get("ro")) s.read_only = *ro != "0";
    if (auto v = row.Get("v")) s.version = db::ParseServerVersion(*v).value_or(0);
    std::string g = row.Get("g").value_or("");
    std::erase_if(g, [](char c) { return c == '\n' || c == ' '; });
    s.gtid_position = g;
  }
  auto replica = db::ReadReplicaState(session, db::Dialect(node.flavour, s.version));
  if (!replica) {
    s.last_error = replica.error().message();
    return s;
  }
  s.replica = *replica;
  if (!s.replica || !s.replica->IoRunning() || !s.replica->SqlRunning()) return s;  // lag unknown
  auto beat = session.Query(fmt::format(
      "SELECT TIMESTAMPDIFF(MICROSECOND, ts, NOW(6)) / 1000000 AS lag FROM {} WHERE id = 1",
      kHeartbeatTable));
  if (beat && !beat->empty()) {
    if (auto lag = ParseDouble(beat->front().Get("lag"))) {
      // Clocks of two hosts can differ slightly: a heartbeat "from the future" is no lag.
      s.lag_seconds = std::max(0.0, *lag);
      s.lag_source = "heartbeat";
      return s;
    }
  }
  if (s.replica->seconds_behind) {
    s.lag_seconds = static_cast<double>(*s.replica->seconds_behind);
    s.lag_source = "seconds_behind_master";
  }
  return s;
}

Status WriteHeartbeat(db::Session& session) {
  return session.Execute(fmt::format(
      "REPLACE INTO {} (id, ts, server_id) VALUES (1, NOW(6), @@server_id)", kHeartbeatTable));
}

namespace {

std::map<uint64_t, uint64_t> SeqByDomain(const std::string& position) {
  std::map<uint64_t, uint64_t> out;
  size_t start = 0;
  while (start < position.size()) {
    size_t end = position.find(',', start);
    if (end == std::string::npos) end = position.size();
    std::string element = position.substr(start, end - start);
    size_t first = element.find('-'), last = element.rfind('-');
    if (first != std::string::npos && last != first) {
      out[std::stoull(element.substr(0, first))] = std::stoull(element.substr(last + 1));
    }
    start = end + 1;
  }
  return out;
}

}  // namespace

bool MariaDbGtidReached(const std::string& have, const std::string& want) {
  auto has = SeqByDomain(have);
  for (const auto& [domain, seq] : SeqByDomain(want)) {
    auto it = has.find(domain);
    if (it == has.end() || it->second < seq) return false;
  }
  return true;
}

Result<WaitResult> WaitForGtid(db::Session& session, Flavour flavour, const std::string& gtid,
                               std::chrono::seconds timeout, NodeRole role) {
  auto normal = NormalizeGtid(gtid, flavour);
  if (!normal) return tl::unexpected(normal.error());
  if (normal->empty())
    return Error(StatusCode::kInvalidArgument, "empty GTID position to wait for");
  if (flavour == Flavour::kMariaDB && role == NodeRole::kPrimary) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto rows = session.Query("SELECT @@GLOBAL.gtid_binlog_pos AS p");
      if (!rows) return tl::unexpected(rows.error().WithContext("wait for GTID " + *normal));
      std::string have = rows->empty() ? "" : rows->front().Get("p").value_or("");
      auto have_normal = NormalizeGtid(have, Flavour::kMariaDB);
      if (have_normal && MariaDbGtidReached(*have_normal, *normal)) return WaitResult::kReached;
      if (std::chrono::steady_clock::now() >= until) return WaitResult::kTimedOut;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // The wait functions are the same in every version of a flavour.
  const db::Dialect dialect(flavour, 0);
  auto rows = session.Query(dialect.WaitForGtid(*normal, timeout.count()));
  if (!rows) return tl::unexpected(rows.error().WithContext("wait for GTID " + *normal));
  std::optional<std::string> r = rows->empty() ? std::nullopt : rows->front().Get("r");
  if (auto timed_out = dialect.WaitTimedOut(r))
    return *timed_out ? WaitResult::kTimedOut : WaitResult::kReached;
  return Error(StatusCode::kInternal, "wait for GTID {}: unexpected result {}", *normal,
               r.value_or("NULL"));
}

}  // namespace replboot::replication
