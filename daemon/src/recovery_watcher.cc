#include "replboot/daemon/recovery_watcher.h"

#include <vector>

#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/daemon/replication_wiring.h"

namespace replboot::daemon {

namespace {

using replication::FailureClass;
using replication::RecoveryAction;
using replication::RecoveryDecision;
using replication::ReplicationFailure;
using replication::ReplicationFailureName;
using Clock = std::chrono::steady_clock;

auto Log() { return log::Get("recovery"); }

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string WithoutDigits(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c < '0' || c > '9') out += c;
  }
  return out;
}

// Reading two global variables: a primary that does not answer within this is not waited for.
constexpr std::chrono::seconds kPrimaryTimeout{3};

}  // namespace

Result<RecoveryWatcherOptions> RecoveryWatcherOptionsFor(const NodeSettings& settings) {
  const conf::Config& config = settings.config;
  RecoveryWatcherOptions o;
  o.guards.enabled = config.replication.auto_reclone;
  o.guards.after = std::chrono::seconds(config.replication.reclone_after);
  o.guards.min_interval = std::chrono::seconds(config.replication.reclone_min_interval);
  o.datadir = config.mysql.datadir;
  o.flavour = settings.flavour;
  o.local = LocalRootOptions(settings);
  o.local.connect_timeout = kPrimaryTimeout;
  o.local.read_timeout = std::chrono::seconds(10);
  o.space_margin = clone::CloneOptions().space_margin;
  auto password = conf::ResolveSecret(config.replication.password,
                                      config.replication.password_file, "replication.password");
  if (!password) return Error(password.error());
  o.primary.host = settings.identity.PeerName(0, config.cluster.service);
  o.primary.port = static_cast<int>(config.mysql.port);
  o.primary.user = config.replication.user;
  o.primary.password = *password;
  o.primary.connect_timeout = kPrimaryTimeout;
  o.primary.read_timeout = kPrimaryTimeout;
  // The comparison decides whether a re-clone may erase this replica's data, and the login
  // carries the replication password: both need the primary to be who it says it is.
  o.primary.tls = settings.peer_tls;
  return o;
}

Result<std::unique_ptr<RecoveryWatcher>> RecoveryWatcher::Create(RecoveryWatcherOptions options,
                                                                 api::Server& server) {
  auto record = replication::ReadRecloneRecord(options.datadir);
  if (!record) return Error(record.error().WithContext("re-clone record"));
  if (record->in_progress) {
    // Killed between the start and the commit of a re-clone: the bootstrap table has brought
    // the old datadir back (or finished the swap); the failure, if it persists, decides again.
    Log()->warn("event=reclone_interrupted started_at={} reason={} count={}",
                record->last_started_at, log::Quote(record->reason), record->count);
  }
  return std::unique_ptr<RecoveryWatcher>(
      new RecoveryWatcher(std::move(options), server, std::move(*record)));
}

RecoveryWatcher::RecoveryWatcher(RecoveryWatcherOptions options, api::Server& server,
                                 replication::RecloneRecord record)
    : options_(std::move(options)), server_(server), record_(std::move(record)) {}

std::optional<std::chrono::seconds> RecoveryWatcher::SinceLastReclone() const {
  if (record_.last_done_at <= 0) return std::nullopt;
  // A clock set back counts as "just now": the guard holds rather than lapses.
  return std::chrono::seconds(std::max<int64_t>(0, UnixNow() - record_.last_done_at));
}

void RecoveryWatcher::CheckGtids(Clock::time_point now) {
  auto fail = [&](const Status& status) {
    if (status.message() != check_error_) {
      Log()->warn("event=gtid_check_failed error={}", log::Quote(status.message()));
    }
    check_error_ = status.message();
  };
  // The replica first, then the primary: the primary only moves on meanwhile, so a replica
  // that is a copy of it never looks ahead.
  if (!local_) {
    auto session = db::Connect(options_.local);
    if (!session) return fail(session.error().WithContext("GTID check: local mysqld"));
    local_ = std::move(*session);
  }
  auto mine = replication::ReadGtidHistory(*local_, options_.flavour);
  if (!mine) {
    local_.reset();
    return fail(mine.error().WithContext("GTID check: local mysqld"));
  }
  if (!primary_) {
    auto session = db::Connect(options_.primary);
    if (!session) {
      return fail(session.error().WithContext(
          fmt::format("GTID check: primary {}:{}", options_.primary.host, options_.primary.port)));
    }
    primary_ = std::move(*session);
  }
  auto theirs = replication::ReadGtidHistory(*primary_, options_.flavour);
  if (!theirs) {
    primary_.reset();
    return fail(theirs.error().WithContext(
        fmt::format("GTID check: primary {}:{}", options_.primary.host, options_.primary.port)));
  }
  auto divergence = replication::CompareWithPrimary(*mine, *theirs, options_.flavour);
  if (!divergence) return fail(divergence.error().WithContext("GTID check"));
  if (!check_error_.empty()) Log()->info("event=gtid_check_resumed");
  check_error_.clear();
  const bool was = divergence_ && divergence_->diverged();
  if (divergence->diverged() && !was) {
    ++divergences_detected_;
    Log()->error("event=replica_diverged relation={} errant_gtids={} transactions={} reason={}",
                 replication::GtidRelationName(divergence->relation),
                 log::Quote(divergence->errant.ToString()), divergence->errant.TransactionCount(),
                 log::Quote(divergence->description));
  } else if (!divergence->diverged() && was) {
    Log()->info("event=replica_divergence_cleared relation={}",
                replication::GtidRelationName(divergence->relation));
  }
  if (!divergence->note.empty() && (!divergence_ || divergence_->note != divergence->note)) {
    Log()->warn("event=gtid_check_limited note={}", log::Quote(divergence->note));
  }
  divergence_ = std::move(*divergence);
  checked_at_ = now;
}

std::optional<replication::RecloneSpace> RecoveryWatcher::MeasureSpace() {
  auto fail = [&](const Status& status) -> std::optional<replication::RecloneSpace> {
    if (status.message() != space_error_) {
      Log()->warn("event=reclone_space_unknown error={}", log::Quote(status.message()));
    }
    space_error_ = status.message();
    return std::nullopt;
  };
  const std::string dir = files::ParentDir(options_.datadir);
  if (!estimate_) {
    // The donor's HEADER will carry its own measure of the same cluster's data; this one is
    // taken the same way (without this replica's binary and relay logs, which no backup
    // holds), once per failure: it walks the datadir.
    if (!local_) {
      auto session = db::Connect(options_.local);
      if (!session) return fail(session.error().WithContext("re-clone space: local mysqld"));
      local_ = std::move(*session);
    }
    auto bases = local_->Query("SELECT @@log_bin_basename AS b, @@relay_log_basename AS r");
    if (!bases) {
      local_.reset();
      return fail(bases.error().WithContext("re-clone space: local mysqld"));
    }
    std::vector<std::string> logs;
    if (!bases->empty()) {
      for (const char* column : {"b", "r"}) {
        if (auto base = (*bases)[0].Get(column); base && !base->empty()) logs.push_back(*base);
      }
    }
    estimate_ = clone::EstimateBackupBytes(options_.datadir, logs);
  }
  auto free = files::FreeBytes(dir);
  if (!free) return fail(free.error().WithContext("re-clone space"));
  space_error_.clear();
  return replication::RecloneSpace{
      replication::RecloneBytesNeeded(*estimate_, options_.space_margin, refused_free_), *free,
      dir};
}

void RecoveryWatcher::NoteRefusedReclone() {
  // Recloned() clears in_progress: still set, the clone gave up before committing, and
  // RunNode only comes back here then when it refused for space (bootstrap.cc).
  asked_reclone_ = false;
  if (!record_.in_progress) return;
  record_.in_progress = false;  // not an interrupted re-clone for the next start to report
  if (Status s = replication::WriteRecloneRecord(options_.datadir, record_); !s.ok()) {
    Log()->error("event=reclone_record_failed error={}", log::Quote(s.ToString()));
  }
  auto free = files::FreeBytes(files::ParentDir(options_.datadir));
  refused_free_ = free ? *free : 0;
  Log()->error("event=reclone_refused_by_clone free_bytes={} reason={}", refused_free_.value(),
               log::Quote("the donor's data did not fit; mysqld runs on the old datadir, and the "
                          "re-clone waits until more space is free"));
}

void RecoveryWatcher::Publish(const RecoveryDecision& d, const FailureClass& failure) {
  replication::ReplicaRecoveryView v;
  v.state = d.state;
  v.reason = d.reason;
  v.failure = std::string(ReplicationFailureName(failure.failure));
  if (divergence_) {
    v.gtid_relation = std::string(replication::GtidRelationName(divergence_->relation));
    if (divergence_->diverged()) {
      v.errant_gtids = divergence_->errant.ToString();
      v.errant_transactions = divergence_->errant.TransactionCount();
      v.diverged = true;
    }
  }
  v.divergence_error = check_error_;
  v.divergences_detected = divergences_detected_;
  if (d.reclone_in) v.reclone_in_seconds = static_cast<double>(d.reclone_in->count());
  v.reclones = record_.count;
  v.last_reclone_reason = record_.reason;
  v.last_reclone_at = record_.last_done_at;
  server_.recovery().Set(std::move(v));
}

Result<bool> RecoveryWatcher::Watch(const Supervisor& supervisor) {
  if (asked_reclone_) NoteRefusedReclone();
  auto next_check = Clock::now();
  for (;;) {
    if (supervisor.Stopping() || supervisor.MainExit()) return false;
    const auto now = Clock::now();
    api::Snapshot s = server_.Current();
    if (s.mysqld_up && s.set_up) {
      FailureClass failure = replication::ClassifyReplication(s.replica);
      if (failure.failure != failure_ || failing_since_ == Clock::time_point()) {
        failure_ = failure.failure;
        failing_since_ = now;
        failure_logged_ = false;
        estimate_.reset();
        // A new failure is compared at once: a re-clone waits for a comparison made since.
        next_check = now;
      }
      if (!failure_logged_ && failure_ != ReplicationFailure::kNone) {
        Log()->warn("event=replication_failure class={} reason={}", ReplicationFailureName(failure_),
                    log::Quote(failure.reason));
        failure_logged_ = true;
      }
      if (now >= next_check) {
        CheckGtids(now);
        next_check = now + options_.gtid_check_interval;
      }
      replication::RecoveryFacts facts;
      facts.failure = failure;
      facts.failing_for =
          std::chrono::duration_cast<std::chrono::seconds>(now - failing_since_);
      facts.gtid_checked = checked_at_ && *checked_at_ >= failing_since_;
      facts.diverged = divergence_ && divergence_->diverged();
      if (facts.diverged) facts.divergence = divergence_->description;
      facts.since_last_reclone = SinceLastReclone();
      RecoveryDecision d = replication::DecideRecovery(facts, options_.guards);
      if (d.action == RecoveryAction::kReclone) {
        // Measured only when a re-clone is due: then at every tick (statvfs) while refused.
        facts.space = MeasureSpace();
        d = replication::DecideRecovery(facts, options_.guards);
      }
      const bool counting = d.state == "reclone_pending" || d.state == "reclone_refused";
      if (d.state != last_state_ ||
          (counting ? WithoutDigits(d.reason) != WithoutDigits(last_reason_)
                    : d.reason != last_reason_)) {
        // Once per change (a countdown or the free bytes going up and down are not a change;
        // another guard refusing is).
        if (d.state == "reclone_pending" || d.state == "reclone_refused") {
          Log()->warn("event={} reason={} reclone_in_s={}", d.state, log::Quote(d.reason),
                      d.reclone_in ? std::to_string(d.reclone_in->count()) : "-");
        } else if (d.action == RecoveryAction::kReport) {
          Log()->error("event=replica_needs_attention state={} reason={}", d.state,
                       log::Quote(d.reason));
        } else if (d.state != "reclone") {
          Log()->info("event=replica_recovery_state state={} reason={}", d.state,
                      log::Quote(d.reason));
        }
        last_state_ = d.state;
        last_reason_ = d.reason;
      }
      if (d.action == RecoveryAction::kReclone) {
        record_.in_progress = true;
        record_.last_started_at = UnixNow();
        record_.reason = d.reason;
        // Written before mysqld stops: a kill from here on is seen at the next start.
        REPLBOOT_RETURN_IF_ERROR(replication::WriteRecloneRecord(options_.datadir, record_));
        Log()->warn("event=reclone_started reason={} failing_for_s={} count={}",
                    log::Quote(d.reason), facts.failing_for.count(), record_.count);
        RecoveryDecision recloning = d;
        recloning.state = "recloning";
        Publish(recloning, failure);
        server_.MarkSettingUp();
        // The next run of Watch() starts afresh on the new datadir.
        failing_since_ = Clock::time_point();
        checked_at_.reset();
        divergence_.reset();
        local_.reset();
        primary_.reset();
        last_state_.clear();
        estimate_.reset();
        asked_reclone_ = true;
        return true;
      }
      Publish(d, failure);
    }
    supervisor.SleepUnlessDone(std::chrono::duration_cast<std::chrono::milliseconds>(
        options_.tick - (Clock::now() - now)));
  }
}

Status RecoveryWatcher::Recloned() {
  record_.count += 1;
  record_.in_progress = false;
  asked_reclone_ = false;
  refused_free_.reset();
  record_.last_done_at = UnixNow();
  REPLBOOT_RETURN_STATUS_IF_ERROR(replication::WriteRecloneRecord(options_.datadir, record_));
  Log()->info("event=reclone_done count={} elapsed_s={} reason={}", record_.count,
              record_.last_done_at - record_.last_started_at, log::Quote(record_.reason));
  return Status::Ok();
}

}  // namespace replboot::daemon
