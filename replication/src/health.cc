#include "replboot/replication/health.h"

#include <cctype>
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
  if (s.bootstrap.Holding()) {
    return No(fmt::format("asking the peers before initializing ({}): {}", s.bootstrap.reason,
                          s.bootstrap.detail));
  }
  return No("mysqld is not answering: " + s.mysqld_error);
}

// A Prometheus label value: backslash, double quote and newline escaped.
// Stream bytes per wire byte, for /status: 0 when nothing went over the wire yet.
double Ratio(uint64_t stream_bytes, uint64_t wire_bytes) {
  if (wire_bytes == 0) return 0;
  return static_cast<double>(stream_bytes) / static_cast<double>(wire_bytes);
}

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
  if (s.recovery.state == "recloning") {
    return No("re-cloning: " + s.recovery.reason +
              (s.clone.Active() ? "; " + DescribeClone(s.clone) : std::string()));
  }
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

namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool Has(const std::string& lower_text, std::string_view needle) {
  return lower_text.find(needle) != std::string::npos;
}

// The server's error numbers of a source that is unreachable or refusing for now: client
// errors (can't connect, unknown host, gone away, lost connection, SSL) and server ones (too
// many connections, shutdown in progress, access denied while a password changes, host
// blocked).
bool TransientErrno(int64_t errno_value) {
  switch (errno_value) {
    case 2003: case 2005: case 2006: case 2013: case 2026:
    case 1040: case 1053: case 1045: case 1129: case 1158: case 1159: case 1160: case 1161:
      return true;
    default:
      return false;
  }
}

// IO-thread error 1236 (and MySQL 8.0.22+'s 13114, the same "fatal error reading the binlog"),
// by its message: the binlogs are gone, or the histories differ.
std::optional<ReplicationFailure> ClassifyBinlogReadError(const std::string& message) {
  const std::string m = Lower(message);
  // Divergence first: "not in the master's binlog" and "missing the GTID" name a GTID the
  // source never had, which no copy of the source's binlog can mend.
  if (Has(m, "which is not in the master's binlog") ||
      Has(m, "which is not in the source's binlog") || Has(m, "is missing the gtid") ||
      Has(m, "has more gtids than the master") || Has(m, "has more gtids than the source") ||
      Has(m, "diverged")) {
    return ReplicationFailure::kDiverged;
  }
  if (Has(m, "could not find gtid state requested by slave") ||
      Has(m, "could not find gtid state requested by replica") || Has(m, "purged") ||
      Has(m, "could not find first log file name in binary log index file")) {
    return ReplicationFailure::kSourcePurged;
  }
  return std::nullopt;
}

}  // namespace

std::string_view ReplicationFailureName(ReplicationFailure failure) {
  switch (failure) {
    case ReplicationFailure::kNone:
      return "none";
    case ReplicationFailure::kNotConfigured:
      return "not_configured";
    case ReplicationFailure::kTransient:
      return "transient";
    case ReplicationFailure::kStopped:
      return "stopped";
    case ReplicationFailure::kSourcePurged:
      return "source_purged";
    case ReplicationFailure::kDiverged:
      return "diverged";
    case ReplicationFailure::kApplyError:
      return "apply_error";
    case ReplicationFailure::kOther:
      return "other";
  }
  return "other";
}

FailureClass ClassifyReplication(const std::optional<db::ReplicaState>& state) {
  if (!state || !state->Configured())
    return {ReplicationFailure::kNotConfigured, "replication is not configured"};
  const db::ReplicaState& r = *state;
  if (r.IoRunning() && r.SqlRunning()) return {ReplicationFailure::kNone, "replicating"};
  const std::string why = r.WhyNotRunning();
  // The SQL thread first: an apply error means the data already differ.
  if (!r.SqlRunning() && r.last_sql_errno != 0) {
    // ER_GTID_STRICT_OUT_OF_ORDER: the replica logged a GTID of the domain the source also
    // used, i.e. a transaction written on the replica.
    if (r.last_sql_errno == 1950) return {ReplicationFailure::kDiverged, why};
    return {ReplicationFailure::kApplyError, why};
  }
  if (!r.IoRunning() && r.last_io_errno != 0) {
    if (r.last_io_errno == 1236 || r.last_io_errno == 13114) {
      if (auto binlog = ClassifyBinlogReadError(r.last_io_error)) return {*binlog, why};
      return {ReplicationFailure::kOther, why};
    }
    // "Connecting": the server retries by itself, whatever the last error was.
    if (r.io_running == "Connecting" || TransientErrno(r.last_io_errno))
      return {ReplicationFailure::kTransient, why};
    return {ReplicationFailure::kOther, why};
  }
  if (r.io_running == "Connecting") return {ReplicationFailure::kTransient, why};
  return {ReplicationFailure::kStopped, why};
}

namespace {

// The replica's GTID state differs from the primary's (errant transactions, or ahead of it).
std::optional<Decision> Diverged(const Snapshot& s) {
  if (s.node.role != NodeRole::kReplica || !s.recovery.diverged) return std::nullopt;
  return No(s.recovery.reason.empty() ? "the replica's GTID state differs from the primary's"
                                      : s.recovery.reason);
}

}  // namespace

bool CloneProgressView::Active() const {
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
  // mysqld is down on purpose while replboot re-clones the replica: replboot is alive and
  // working (a liveness probe must not restart it mid-clone).
  if (!s.mysqld_up && s.recovery.state == "recloning") {
    return Yes("re-cloning (mysqld stopped on purpose): " + s.recovery.reason +
               (s.clone.Active() ? "; " + DescribeClone(s.clone) : std::string()));
  }
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
  if (auto diverged = Diverged(s)) return *diverged;
  return ReplicaWithin(s, max_lag);
}

Decision DecideReady(const Snapshot& s, double max_lag) {
  if (s.node.role == NodeRole::kPrimary) return DecidePrimary(s);
  if (auto diverged = Diverged(s)) return *diverged;
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
                {"compression", s.clone.compression},
                {"wire_bytes", s.clone.wire_bytes},
                {"compression_ratio", Ratio(s.clone.bytes, s.clone.wire_bytes)},
                {"error", s.clone.error},
                {"summary", DescribeClone(s.clone)}};
  const ReplicaRecoveryView& rv = s.recovery;
  j["recovery"] = {
      {"state", rv.state},
      {"reason", rv.reason},
      {"failure", rv.failure},
      {"gtid_relation", rv.gtid_relation},
      {"errant_gtids", rv.errant_gtids},
      {"errant_transactions", rv.errant_transactions},
      {"diverged", rv.diverged},
      {"divergence_error", rv.divergence_error},
      {"divergences_detected", rv.divergences_detected},
      {"reclone_in_seconds",
       rv.reclone_in_seconds ? nlohmann::json(*rv.reclone_in_seconds) : nlohmann::json(nullptr)},
      {"reclones", rv.reclones},
      {"last_reclone_reason", rv.last_reclone_reason},
      {"last_reclone_at", rv.last_reclone_at}};
  j["bootstrap"] = {{"plan", s.bootstrap.plan},
                    {"reason", s.bootstrap.reason},
                    {"detail", s.bootstrap.detail},
                    {"donor", s.bootstrap.donor},
                    {"rounds", s.bootstrap.rounds},
                    {"waited_seconds", s.bootstrap.waited_seconds}};
  if (!s.bootstrap.plan.empty()) {
    nlohmann::json waiting = nlohmann::json::array();
    for (const auto& w : s.bootstrap.waiting_for)
      waiting.push_back({{"peer", w.name}, {"why", w.why}, {"detail", w.detail}});
    j["bootstrap"]["waiting_for"] = std::move(waiting);
    j["bootstrap"]["override_file"] = s.bootstrap.override_file;
  }
  j["backups_served"] = s.backups_served;
  auto receivers = [](const std::vector<BackupServing::Receiver>& list) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : list) {
      out.push_back({{"run", r.run},
                     {"name", r.name},
                     {"peer", r.peer},
                     {"state", r.state},
                     {"bytes_sent", r.bytes_sent},
                     {"wire_bytes_sent", r.wire_bytes_sent},
                     {"compression", r.compression},
                     {"compression_ratio", Ratio(r.bytes_sent, r.wire_bytes_sent)},
                     {"reason", r.reason}});
    }
    return out;
  };
  j["backup"] = {{"runs", s.backup.runs},
                 {"served", s.backups_served},
                 {"receivers_dropped", s.backup.receivers_dropped},
                 {"stream_bytes_sent", s.backup.stream_bytes_sent},
                 {"wire_bytes_sent", s.backup.wire_bytes_sent},
                 {"compression_ratio",
                  Ratio(s.backup.stream_bytes_sent, s.backup.wire_bytes_sent)},
                 {"resume",
                  {{"window_seconds", s.backup.resume_window_seconds},
                   {"receivers_detached", s.backup.receivers_detached},
                   {"resumes", s.backup.resumes},
                   {"resent_bytes", s.backup.resent_bytes},
                   {"spool_bytes", s.backup.resume_spool_bytes}}},
                 {"receivers", receivers(s.backup.receivers)},
                 {"ended", receivers(s.backup.ended)}};
  {
    const ArchiveStatusView& a = s.archive;
    nlohmann::json failures = nlohmann::json::object();
    for (const char* kind : kBackupFailureKinds) {
      auto it = a.failures.find(kind);
      failures[kind] = it == a.failures.end() ? 0 : it->second;
    }
    j["archive"] = {{"enabled", a.enabled},
                    {"schedule", a.schedule},
                    {"store", a.store},
                    {"state", a.state},
                    {"next_slot_at", a.next_slot_at},
                    {"next_backup_id", a.next_backup_id},
                    {"slot_id", a.slot_id},
                    {"turn", a.turn},
                    {"in_progress", a.in_progress},
                    {"current_id", a.current_id},
                    {"progress_bytes", a.progress_bytes},
                    {"progress_bytes_per_second", a.progress_bytes_per_second},
                    {"expected_bytes", a.expected_bytes},
                    {"eta_seconds", a.eta_seconds ? nlohmann::json(*a.eta_seconds)
                                                  : nlohmann::json(nullptr)},
                    {"last_result", a.last_result},
                    {"last_id", a.last_id},
                    {"last_error", a.last_error},
                    {"last_failure_kind", a.last_failure_kind},
                    {"last_success_at", a.last_success_at},
                    {"last_success_id", a.last_success_id},
                    {"last_success_node", a.last_success_node},
                    {"last_restore_test_at", a.last_restore_test_at},
                    {"taken", a.taken},
                    {"failures", std::move(failures)}};
  }
  {
    const BinlogArchiveStatusView& b = s.binlog_archive;
    j["binlog_archive"] = {{"enabled", b.enabled},
                           {"role", b.role},
                           {"state", b.state},
                           {"detail", b.detail},
                           {"holder", b.holder},
                           {"epoch", b.epoch},
                           {"history", b.history},
                           {"chain_start", b.chain_start},
                           {"start_source", b.start_source},
                           {"newest_gtid", b.newest_gtid},
                           {"newest_commit_time", b.newest_commit_time},
                           {"newest_sealed_at", b.newest_sealed_at},
                           {"newest_segment", b.newest_segment},
                           {"segments", b.segments},
                           {"transactions", b.transactions},
                           {"bytes", b.bytes},
                           {"put_failures", b.put_failures},
                           {"stream_errors", b.stream_errors},
                           {"takeovers", b.takeovers},
                           {"fenced", b.fenced},
                           {"gaps", b.gaps},
                           {"gap_open", b.gap_open},
                           {"last_gap", b.last_gap},
                           {"last_gap_at", b.last_gap_at},
                           {"gap_backup_id", b.gap_backup_id},
                           {"gap_backup_result", b.gap_backup_result},
                           {"pending_seconds", b.pending_seconds},
                           {"lag_p50_seconds", b.lag_p50},
                           {"lag_p99_seconds", b.lag_p99},
                           {"lag_max_seconds", b.lag_max},
                           {"lag_window_transactions", b.lag_window_count},
                           {"lag_window_seconds", b.lag_window_seconds},
                           {"lag_count", b.lag_count},
                           {"last_error", b.last_error}};
  }
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
  gauge("replboot_clone_wire_bytes",
        "Bytes that arrived on the wire for the current or last clone's stream bytes "
        "(compressed, when the donor granted it).",
        std::to_string(s.clone.wire_bytes));
  gauge("replboot_clone_estimated_bytes", "The donor's size estimate for the clone; 0 unknown.",
        std::to_string(s.clone.total_bytes));
  gauge("replboot_clone_active", "1 while a clone runs (discovery to commit).",
        s.clone.Active() ? "1" : "0");
  gauge("replboot_clone_attempts", "Clone attempts started since replboot started.",
        std::to_string(s.clone.attempts));
  gauge("replboot_bootstrap_waiting",
        "1 while a primary with an empty datadir waits for its peers before it may initialize "
        "or clone (see replboot_bootstrap_waiting_peers).",
        s.bootstrap.Holding() ? "1" : "0");
  gauge("replboot_bootstrap_waited_seconds",
        "Seconds a primary with an empty datadir has asked its peers so far.",
        fmt::format("{:.0f}", s.bootstrap.waited_seconds));
  out +=
      "# HELP replboot_bootstrap_waiting_peers Peers a waiting primary waits for, by why it "
      "cannot decide on their answer.\n# TYPE replboot_bootstrap_waiting_peers gauge\n";
  {
    std::map<std::string, int> by_why;
    for (const char* why : {"not_in_dns_yet", "dns_failing", "silent", "refused_our_secret",
                            "answered_error", "cannot_serve", "no_position"}) {
      by_why[why] = 0;
    }
    if (s.bootstrap.Holding()) {
      for (const auto& w : s.bootstrap.waiting_for) ++by_why[w.why];
    }
    for (const auto& [why, count] : by_why) {
      out += fmt::format("replboot_bootstrap_waiting_peers{{why=\"{}\"}} {}\n", LabelValue(why),
                         count);
    }
  }
  const ReplicaRecoveryView& rv = s.recovery;
  gauge("replboot_replica_diverged",
        "1 while the replica holds GTIDs the primary lacks or is ahead of it (never ready).",
        rv.diverged ? "1" : "0");
  gauge("replboot_replica_errant_transactions",
        "Transactions the replica holds that the primary lacks (errant GTIDs).",
        std::to_string(rv.errant_transactions));
  out += fmt::format(
      "# HELP replboot_replica_divergences_total Divergences from the primary detected since "
      "replboot started.\n# TYPE replboot_replica_divergences_total counter\n"
      "replboot_replica_divergences_total {}\n",
      rv.divergences_detected);
  out +=
      "# HELP replboot_replication_failure 1 for the class of the replica's replication "
      "failure (none while it runs).\n# TYPE replboot_replication_failure gauge\n";
  for (ReplicationFailure f :
       {ReplicationFailure::kNone, ReplicationFailure::kNotConfigured,
        ReplicationFailure::kTransient, ReplicationFailure::kStopped,
        ReplicationFailure::kSourcePurged, ReplicationFailure::kDiverged,
        ReplicationFailure::kApplyError, ReplicationFailure::kOther}) {
    std::string_view name = ReplicationFailureName(f);
    out += fmt::format("replboot_replication_failure{{class=\"{}\"}} {}\n", name,
                       !rv.state.empty() && rv.failure == name ? 1 : 0);
  }
  gauge("replboot_reclone_active", "1 while an automatic re-clone runs (mysqld stopped).",
        rv.state == "recloning" ? "1" : "0");
  gauge("replboot_reclone_pending_seconds",
        "Seconds until an automatic re-clone starts; NaN when none is pending.",
        rv.reclone_in_seconds ? fmt::format("{:.0f}", *rv.reclone_in_seconds) : "NaN");
  gauge("replboot_reclone_refused",
        "1 while a re-clone is needed but refused (errant GTIDs, interval, switched off).",
        rv.state == "reclone_refused" ? "1" : "0");
  out += fmt::format(
      "# HELP replboot_reclones_total Automatic re-clones of this replica that committed "
      "(kept across restarts).\n# TYPE replboot_reclones_total counter\nreplboot_reclones_total "
      "{}\n",
      rv.reclones);
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
  out += fmt::format(
      "# HELP replboot_backup_sent_bytes_total Backup stream bytes this donor sent to its "
      "receivers (what clones cost its NIC, before framing).\n"
      "# TYPE replboot_backup_sent_bytes_total counter\nreplboot_backup_sent_bytes_total {}\n",
      s.backup.stream_bytes_sent);
  out += fmt::format(
      "# HELP replboot_backup_wire_bytes_total DATA and ZDATA payload bytes this donor sent for "
      "those stream bytes (compressed on the wire when granted; before framing).\n"
      "# TYPE replboot_backup_wire_bytes_total counter\nreplboot_backup_wire_bytes_total {}\n"
      "# HELP replboot_backup_resumes_total Streams resumed after a dropped link (the receiver "
      "went on from its durable point).\n# TYPE replboot_backup_resumes_total counter\n"
      "replboot_backup_resumes_total {}\n"
      "# HELP replboot_backup_resent_bytes_total Stream bytes sent a second time to resumed "
      "receivers (from their durable point to where their link dropped).\n"
      "# TYPE replboot_backup_resent_bytes_total counter\nreplboot_backup_resent_bytes_total {}\n"
      "# HELP replboot_backup_receivers_detached_total Receivers whose link dropped and whose run "
      "was kept for backup.resume_window.\n"
      "# TYPE replboot_backup_receivers_detached_total counter\n"
      "replboot_backup_receivers_detached_total {}\n"
      "# HELP replboot_backup_resume_spool_bytes Disk the resume spools use now.\n"
      "# TYPE replboot_backup_resume_spool_bytes gauge\nreplboot_backup_resume_spool_bytes {}\n"
      "# HELP replboot_backup_resume_window_seconds backup.resume_window (0: no resume).\n"
      "# TYPE replboot_backup_resume_window_seconds gauge\n"
      "replboot_backup_resume_window_seconds {}\n",
      s.backup.wire_bytes_sent, s.backup.resumes, s.backup.resent_bytes, s.backup.receivers_detached,
      s.backup.resume_spool_bytes, s.backup.resume_window_seconds);
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
  const ArchiveStatusView& a = s.archive;
  gauge("replboot_backup_last_success_timestamp_seconds",
        "Unix time the newest complete backup in the store finished (whichever node took it), "
        "as this node last listed the store; 0 unknown.",
        std::to_string(a.last_success_at));
  gauge("replboot_backup_last_restore_test_timestamp_seconds",
        "Unix time of the newest restore test recorded for a backup in the store; 0 never.",
        std::to_string(a.last_restore_test_at));
  out +=
      "# HELP replboot_backup_failures_total Scheduled backup attempts of this node that failed, "
      "by kind.\n# TYPE replboot_backup_failures_total counter\n";
  for (const char* kind : kBackupFailureKinds) {
    auto it = a.failures.find(kind);
    out += fmt::format("replboot_backup_failures_total{{kind=\"{}\"}} {}\n", kind,
                       it == a.failures.end() ? 0 : it->second);
  }
  out += fmt::format(
      "# HELP replboot_backups_taken_total Scheduled backups this node took (complete, read "
      "back).\n# TYPE replboot_backups_taken_total counter\nreplboot_backups_taken_total {}\n",
      a.taken);
  gauge("replboot_backup_in_progress", "1 while this node takes a backup into the store.",
        a.in_progress ? "1" : "0");
  gauge("replboot_backup_progress_bytes",
        "Bytes of the stream of the backup in progress (or the last one) written to the store.",
        std::to_string(a.progress_bytes));
  gauge("replboot_backup_progress_rate_bytes_per_second",
        "Rate of the backup in progress; 0 when none runs.",
        fmt::format("{:.0f}", a.in_progress ? a.progress_bytes_per_second : 0.0));
  gauge("replboot_backup_progress_eta_seconds",
        "Seconds left of the backup in progress, from the previous backup's size; NaN unknown.",
        a.in_progress && a.eta_seconds ? fmt::format("{:.0f}", *a.eta_seconds) : "NaN");
  {
    const BinlogArchiveStatusView& b = s.binlog_archive;
    out += fmt::format(
        "# HELP replboot_binlog_archive_lag_seconds Seconds from a transaction's commit on the "
        "primary to the upload of its binlog segment (quantiles over the last {}s, sum and count "
        "since the start).\n# TYPE replboot_binlog_archive_lag_seconds summary\n"
        "replboot_binlog_archive_lag_seconds{{quantile=\"0.5\"}} {}\n"
        "replboot_binlog_archive_lag_seconds{{quantile=\"0.99\"}} {}\n"
        "replboot_binlog_archive_lag_seconds_sum {:.3f}\n"
        "replboot_binlog_archive_lag_seconds_count {}\n",
        b.lag_window_seconds, b.lag_window_count > 0 ? fmt::format("{:.3f}", b.lag_p50) : "NaN",
        b.lag_window_count > 0 ? fmt::format("{:.3f}", b.lag_p99) : "NaN", b.lag_sum,
        b.lag_count);
    gauge("replboot_binlog_archive_pending_seconds",
          "Age of the oldest transaction this archiver received and has not sealed in the store "
          "yet; 0 none.",
          fmt::format("{:.3f}", b.pending_seconds));
    gauge("replboot_binlog_archive_newest_commit_timestamp_seconds",
          "Commit time on the primary of the newest transaction this node sealed in the store; "
          "0 none.",
          std::to_string(b.newest_commit_time));
    out += fmt::format(
        "# HELP replboot_binlog_archive_newest_gtid_info The newest GTID this node sealed in the "
        "store.\n# TYPE replboot_binlog_archive_newest_gtid_info gauge\n"
        "replboot_binlog_archive_newest_gtid_info{{gtid=\"{}\"}} 1\n",
        LabelValue(b.newest_gtid));
    gauge("replboot_binlog_archiver_active",
          "1 while this node holds the binlog archiver's lease and archives.",
          b.role == "holder" ? "1" : "0");
    gauge("replboot_binlog_archive_gap",
          "1 from a gap in the archive (the primary no longer had the binlogs needed) until the "
          "backup that starts the new chain is complete.",
          b.gap_open ? "1" : "0");
    auto counter = [&](const char* name, const char* help, uint64_t value) {
      out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name,
                         value);
    };
    counter("replboot_binlog_archive_gaps_total",
            "Gaps this archiver found: positions the primary no longer had binlogs for.", b.gaps);
    counter("replboot_binlog_archive_segments_total", "Binlog segments this node sealed.",
            b.segments);
    counter("replboot_binlog_archive_transactions_total",
            "Transactions in the binlog segments this node sealed.", b.transactions);
    counter("replboot_binlog_archive_bytes_total", "Binlog bytes in the segments this node sealed.",
            b.bytes);
    counter("replboot_binlog_archive_put_failures_total",
            "Segment uploads that failed (each retried).", b.put_failures);
    counter("replboot_binlog_archive_stream_errors_total",
            "Replication connections to the primary that failed or ended.", b.stream_errors);
  }
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
