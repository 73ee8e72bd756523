#include "replboot/replication/recovery.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "replboot/base/files.h"
#include "replboot/db/dialect.h"

namespace replboot::replication {

namespace {

std::string Seconds(std::chrono::seconds s) { return fmt::format("{} s", s.count()); }

RecoveryDecision Make(std::string state, RecoveryAction action, std::string reason,
                      std::optional<std::chrono::seconds> in = std::nullopt) {
  return RecoveryDecision{std::move(state), action, std::move(reason), in};
}

}  // namespace

RecoveryDecision DecideRecovery(const RecoveryFacts& f, const RecloneGuards& g) {
  using F = ReplicationFailure;
  const F failure = f.failure.failure;
  if (f.diverged) {
    std::string reason = "diverged from the primary: " + f.divergence;
    if (failure == F::kSourcePurged) {
      reason += "; re-clone refused: it would erase them (" + f.failure.reason + ")";
      return Make("reclone_refused", RecoveryAction::kReport, reason);
    }
    return Make("diverged", RecoveryAction::kReport, reason + "; not re-cloned automatically");
  }
  switch (failure) {
    case F::kNone:
      return Make("healthy", RecoveryAction::kNone, "replicating");
    case F::kNotConfigured:
    case F::kTransient:
    case F::kStopped:
      return Make("waiting", RecoveryAction::kWait, f.failure.reason);
    case F::kDiverged:
      return Make("diverged", RecoveryAction::kReport,
                  "diverged from the primary: " + f.failure.reason +
                      "; not re-cloned automatically");
    case F::kApplyError:
    case F::kOther:
      return Make("failed", RecoveryAction::kReport,
                  "replication failed: " + f.failure.reason + "; not re-cloned automatically");
    case F::kSourcePurged:
      break;
  }
  const std::string why = "the primary no longer has the binlogs this replica needs (" +
                          f.failure.reason + ")";
  if (!g.enabled) {
    return Make("reclone_refused", RecoveryAction::kReport,
                why + "; re-clone refused: replication.auto_reclone is off");
  }
  if (f.failing_for < g.after) {
    const auto left = g.after - f.failing_for;
    return Make("reclone_pending", RecoveryAction::kWait,
                why + "; re-clone in " + Seconds(left) + " (replication.reclone_after " +
                    Seconds(g.after) + ")",
                left);
  }
  if (!f.gtid_checked) {
    return Make("reclone_pending", RecoveryAction::kWait,
                why + "; re-clone waits for the GTID comparison with the primary (it must not "
                      "erase transactions the primary lacks)");
  }
  if (f.since_last_reclone && *f.since_last_reclone < g.min_interval) {
    const auto left = g.min_interval - *f.since_last_reclone;
    return Make("reclone_refused", RecoveryAction::kWait,
                why + "; re-clone refused: the last automatic re-clone was " +
                    Seconds(*f.since_last_reclone) + " ago (replication.reclone_min_interval " +
                    Seconds(g.min_interval) + "), next allowed in " + Seconds(left),
                left);
  }
  if (f.space && f.space->free < f.space->needed) {
    // mysqld keeps running on the data it has: a re-clone that cannot fit would stop it for
    // nothing. The measure is taken again at each decision, so more room lets it go ahead.
    return Make("reclone_refused", RecoveryAction::kReport,
                why + fmt::format("; re-clone refused: not enough free space: about {} bytes are "
                                  "needed beside the current datadir (it stays until the new "
                                  "clone commits), {} has {} free",
                                  f.space->needed, f.space->dir, f.space->free));
  }
  return Make("reclone", RecoveryAction::kReclone, why);
}

uint64_t RecloneBytesNeeded(uint64_t estimated_bytes, double margin,
                            std::optional<uint64_t> free_at_refusal) {
  const double estimate = static_cast<double>(estimated_bytes);
  uint64_t needed = static_cast<uint64_t>(estimate * margin);
  if (free_at_refusal) {
    const uint64_t more = static_cast<uint64_t>(estimate * std::max(0.0, margin - 1.0));
    needed = std::max(needed, *free_at_refusal + std::max<uint64_t>(more, 1));
  }
  return needed;
}

Result<GtidHistory> ReadGtidHistory(db::Session& session, Flavour flavour) {
  const std::string sql = db::Dialect(flavour, 0).SelectGtidHistory();
  auto rows = session.Query(sql);
  if (!rows) return Error(rows.error().WithContext("read GTID history"));
  if (rows->empty()) return Error(StatusCode::kInternal, "read GTID history: no row");
  const db::Row& row = rows->front();
  auto flag = [](const std::optional<std::string>& v) {
    return v && (*v == "1" || *v == "ON" || *v == "on");
  };
  GtidHistory h;
  h.binlog_state = row.Get("binlog_state").value_or("");
  h.slave_pos = row.Get("slave_pos").value_or("");
  h.log_bin = flag(row.Get("log_bin"));
  h.log_replica_updates = flag(row.Get("log_replica_updates"));
  return h;
}

namespace {

Result<GtidSet> ParseNamed(const std::string& text, Flavour flavour, const char* node,
                           const char* variable) {
  auto set = GtidSet::Parse(text, flavour);
  if (!set) {
    return Error(StatusCode::kInvalidArgument, "the {}'s {}: {}", node, variable,
                 set.error().message());
  }
  return set;
}

}  // namespace

Result<Divergence> CompareWithPrimary(const GtidHistory& replica, const GtidHistory& primary,
                                      Flavour flavour) {
  const bool mariadb = flavour == Flavour::kMariaDB;
  const char* state_name = mariadb ? "gtid_binlog_state" : "gtid_executed";
  auto mine = ParseNamed(replica.binlog_state, flavour, "replica", state_name);
  if (!mine) return Error(mine.error());
  auto theirs = ParseNamed(primary.binlog_state, flavour, "primary", state_name);
  if (!theirs) return Error(theirs.error());
  auto empty = GtidSet::Parse("", flavour);
  GtidSet mine_applied = *empty, theirs_applied = *empty;
  if (mariadb) {
    auto m = ParseNamed(replica.slave_pos, flavour, "replica", "gtid_slave_pos");
    if (!m) return Error(m.error());
    auto t = ParseNamed(primary.slave_pos, flavour, "primary", "gtid_slave_pos");
    if (!t) return Error(t.error());
    mine_applied = std::move(*m);
    theirs_applied = std::move(*t);
  }
  // Each side holds the union of its two lists; MariaDB's lists only compare like for like,
  // so the union is taken by subtracting each of the other side's lists in turn.
  Divergence d;
  d.errant = mine->Minus(*theirs).Minus(theirs_applied);
  GtidSet errant_applied = mine_applied.Minus(*theirs).Minus(theirs_applied);
  GtidSet missing = theirs->Minus(*mine).Minus(mine_applied);
  GtidSet missing_applied = theirs_applied.Minus(*mine).Minus(mine_applied);
  std::string also;  // errant GTIDs of the other list, when they are not among the first
  if (d.errant.empty()) {
    d.errant = std::move(errant_applied);
  } else if (!errant_applied.empty() && !d.errant.Contains(errant_applied)) {
    also = ", and applied by replication " + errant_applied.ToString();
  }
  const bool behind = !missing.empty() || !missing_applied.empty();
  if (d.errant.empty()) {
    d.relation = behind ? GtidRelation::kBehind : GtidRelation::kEqual;
  } else {
    d.relation = behind ? GtidRelation::kDiverged : GtidRelation::kAhead;
    // MySQL sets count exactly; a MariaDB "d-s-n" entry only says "up to n" (gtid.h).
    const uint64_t n = d.errant.TransactionCount();
    const std::string what =
        mariadb ? std::string("GTIDs") : fmt::format("{} transaction{}", n, n == 1 ? "" : "s");
    const std::string gtids = d.errant.ToString() + also;
    d.description =
        d.relation == GtidRelation::kAhead
            ? fmt::format("GTID state ahead of the primary: it holds {} the primary lacks ({}), "
                          "e.g. the primary came back with less data",
                          what, gtids)
            : fmt::format("errant transactions: it holds {} the primary lacks ({})", what, gtids);
  }
  if (mariadb && !replica.log_bin) {
    d.note = "log_bin is OFF on this replica: a transaction written on it gets no GTID, so only "
             "what replication applied is compared";
  }
  return d;
}

std::string RecloneRecordPath(const std::string& datadir) {
  std::string dir = datadir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + ".replboot-reclone.json";
}

Result<RecloneRecord> ReadRecloneRecord(const std::string& datadir) {
  const std::string path = RecloneRecordPath(datadir);
  auto content = files::ReadFile(path);
  if (!content) {
    if (content.error().code() == StatusCode::kNotFound) return RecloneRecord{};
    return Error(content.error());
  }
  nlohmann::json j = nlohmann::json::parse(*content, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](std::string_view what) {
    return Error(StatusCode::kCorruption, "{}: not a replboot re-clone record ({})", path, what);
  };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  RecloneRecord r;
  auto number = [&](const char* key, auto* out) -> bool {
    if (!j.contains(key)) return true;
    const auto& v = j[key];
    if (!v.is_number_integer() && !v.is_number_unsigned()) return false;
    *out = v.get<std::remove_pointer_t<decltype(out)>>();
    return true;
  };
  if (!number("count", &r.count)) return bad("count is not a whole number");
  if (!number("last_started_at", &r.last_started_at))
    return bad("last_started_at is not a whole number");
  if (!number("last_done_at", &r.last_done_at)) return bad("last_done_at is not a whole number");
  if (j.contains("in_progress")) {
    if (!j["in_progress"].is_boolean()) return bad("in_progress is not true or false");
    r.in_progress = j["in_progress"].get<bool>();
  }
  if (j.contains("reason")) {
    if (!j["reason"].is_string()) return bad("reason is not a string");
    r.reason = j["reason"].get<std::string>();
  }
  return r;
}

Status WriteRecloneRecord(const std::string& datadir, const RecloneRecord& r) {
  nlohmann::json j = {{"version", 1},
                      {"count", r.count},
                      {"last_started_at", r.last_started_at},
                      {"last_done_at", r.last_done_at},
                      {"in_progress", r.in_progress},
                      {"reason", r.reason}};
  // Atomic and fsynced: a kill leaves the previous record or this one.
  return files::WriteFileAtomic(
      RecloneRecordPath(datadir),
      j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", 0600);
}

}  // namespace replboot::replication
