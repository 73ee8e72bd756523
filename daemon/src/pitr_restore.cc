#include "replboot/daemon/pitr_restore.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <thread>

#include "replboot/binlog/file.h"
#include "replboot/binlog/gtid.h"
#include "replboot/archive/catalog.h"
#include "replboot/archive/retention.h"
#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/base/process.h"
#include "replboot/daemon/restore_test.h"
#include "replboot/db/client.h"
#include "scratch_server.h"

namespace replboot::daemon {
namespace {

using Clock = std::chrono::steady_clock;
namespace ar = archive;

auto Log() { return log::Get("archive"); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

constexpr char kPitrMarker[] = "replboot-pitr.json";
constexpr std::string_view kPitrSuffix = ".replboot-pitr";
constexpr char kRelayBase[] = "relay-bin";

Status Chown(const std::string& path, const std::optional<OsUser>& owner) {
  if (owner && ::chown(path.c_str(), owner->uid, owner->gid) != 0)
    return ErrnoStatus(errno, "chown " + path);
  return Status::Ok();
}

// The relay logs of a plan, written: what the replay applies and where it ends.
struct RelayLogs {
  std::vector<std::string> files;
  uint64_t transactions = 0, skipped = 0;
  binlog::GtidState state;       // the binlog state after the last transaction replayed
  binlog::GtidPosition until;    // per domain, the last transaction replayed
  std::string last_gtid;
  int64_t last_commit_time = 0;
  std::set<uint32_t> server_ids;
};

// Downloads each segment of `plan` (authenticated, parsed), keeps the transactions the
// backup lacks up to the target, and writes them as relay logs into `dir`.
Result<RelayLogs> WriteRelayLogs(ar::BinlogArchive& binlogs, const ar::RestorePlan& plan,
                                 const std::string& dir, const std::optional<OsUser>& owner,
                                 const std::stop_token& stop) {
  RelayLogs out;
  binlog::GtidPosition position = plan.backup.position;
  bool have_state = false;
  bool done = false;
  for (size_t i = 0; i < plan.segments.size() && !done; ++i) {
    if (stop.stop_requested()) return Error(StatusCode::kCancelled, "stop requested");
    const ar::ChainSegment& step = plan.segments[i];
    auto segment = binlogs.Open(step.info);
    if (!segment) return Error(segment.error());
    auto parsed = binlog::ParseBinlog(segment->binlog, "binlog segment " + step.info.key);
    if (!parsed) return Error(parsed.error());
    if (!have_state) {
      auto start = binlog::GtidState::Parse(segment->start_state);
      if (!start) return Error(start.error().WithContext("binlog segment " + step.info.key));
      out.state = *start;
      have_state = true;
    }
    std::string file(reinterpret_cast<const char*>(segment->binlog.data()), parsed->format_end);
    uint64_t kept = 0;
    for (const auto& t : parsed->transactions) {
      if (step.cap) {
        auto c = step.cap->find(t.gtid.domain);
        if (c == step.cap->end() || t.gtid.sequence > c->second.sequence) break;  // the branch
      }
      auto at = position.find(t.gtid.domain);
      if (at != position.end() && t.gtid.sequence <= at->second.sequence) {
        out.state.Record(t.gtid);  // in the backup already
        ++out.skipped;
        continue;
      }
      if (plan.target.kind == ar::RestoreTarget::Kind::kTime && t.commit_time > plan.target.time) {
        done = true;
        break;
      }
      file.append(reinterpret_cast<const char*>(segment->binlog.data()) + t.offset, t.length);
      binlog::Advance(position, t.gtid);
      out.state.Record(t.gtid);
      out.until[t.gtid.domain] = t.gtid;
      out.server_ids.insert(t.gtid.server_id);
      out.last_gtid = t.gtid.ToString();
      out.last_commit_time = t.commit_time;
      ++out.transactions;
      ++kept;
      if (plan.target.kind == ar::RestoreTarget::Kind::kGtid &&
          binlog::PositionCovers(position, plan.target.gtid)) {
        done = true;
        break;
      }
    }
    if (kept == 0) continue;
    const std::string path = fmt::format("{}/{}.{:06d}", dir, kRelayBase, out.files.size() + 1);
    REPLBOOT_RETURN_IF_ERROR(files::WriteFileAtomic(path, file, 0640));
    REPLBOOT_RETURN_IF_ERROR(Chown(path, owner));
    out.files.push_back(path);
    Log()->info("event=pitr_segment_ready key={} transactions={} file={}", step.info.key, kept,
                log::Quote(path));
  }
  if (!have_state) {
    // No segment: the backup's own point.
    auto state = binlog::GtidState::Parse(plan.backup.gtid_position);
    if (!state) return Error(state.error().WithContext("backup " + plan.backup.id));
    out.state = *state;
  }
  if (plan.target.kind == ar::RestoreTarget::Kind::kGtid &&
      !binlog::PositionCovers(position, plan.target.gtid)) {
    return Error(StatusCode::kInvalidArgument,
                 "{} is not in the archive: its segments go from the backup's {} to {} without "
                 "reaching it",
                 plan.target.text, plan.backup.gtid_position, binlog::PositionToString(position));
  }
  return out;
}

uint32_t ReplayServerId(const std::set<uint32_t>& used) {
  // The SQL thread skips events of its own server_id: one none of them has.
  uint32_t id = 4'294'967'000u;
  while (used.count(id) != 0) ++id;
  return id;
}

}  // namespace

Result<ArchiveView> LoadArchiveView(const NodeSettings& settings, Archive& archive,
                                    const std::string& cluster, const std::string& history) {
  ArchiveView view;
  const std::string& want = cluster.empty() ? settings.config.archive.source_cluster : cluster;
  auto newest = ChooseBackup(archive, "latest", want);
  if (!newest) return Error(newest.error());
  view.cluster_id = newest->cluster_id;
  view.newest = *newest;
  auto root = ar::RootHistoryId(view.cluster_id);
  if (!root) return Error(root.error());
  view.root = *root;
  auto records = ar::ListHistories(*archive.store, archive.key, view.cluster_id);
  if (!records) return Error(records.error());
  view.histories = std::move(*records);
  view.history = !history.empty()           ? history
                 : view.histories.empty()   ? view.root
                                            : view.histories.back().id;
  if (!ar::IsHistoryId(view.history)) {
    return Error(StatusCode::kInvalidArgument, "--history \"{}\" is not a history id",
                 view.history.substr(0, 80));
  }
  auto lineage = ar::LineageOf(view.histories, view.root, view.history);
  if (!lineage) return Error(lineage.error());
  ar::BinlogArchive binlogs(*archive.store, archive.key, view.cluster_id);
  std::vector<std::vector<ar::SegmentInfo>> lists;
  for (const auto& l : *lineage) {
    auto listed = binlogs.List(l.history);
    if (!listed) return Error(listed.error());
    if (binlogs.ignored_keys() > 0) {
      Log()->warn("event=binlog_keys_ignored history={} keys={}", l.history,
                  binlogs.ignored_keys());
    }
    lists.push_back(std::move(*listed));
  }
  auto chain = ar::BuildChain(*lineage, lists);
  if (!chain) return Error(chain.error());
  view.chain = std::move(*chain);
  auto entries = ar::ListBackups(*archive.store, archive.key);
  if (!entries) return Error(entries.error());
  for (const auto& e : *entries) {
    if (!e.complete || !e.manifest || e.manifest->cluster_id != view.cluster_id) continue;
    auto position = binlog::ParsePosition(e.manifest->gtid_position);
    if (!position) {
      Log()->warn("event=backup_position_unreadable id={} error={}", e.id,
                  log::Quote(position.error().message()));
      continue;
    }
    ar::BackupPoint b;
    b.id = e.id;
    b.history = ar::HistoryAt(view.histories, view.root, e.manifest->started_at_ms);
    b.gtid_position = e.manifest->gtid_position;
    b.position = *position;
    b.started_at_ms = e.manifest->started_at_ms;
    b.finished_at_ms = e.manifest->finished_at_ms;
    view.backups.push_back(std::move(b));
    view.manifests.push_back(*e.manifest);
  }
  return view;
}

Result<std::vector<std::string>> PruneSegments(const NodeSettings& settings, Archive& archive,
                                               const std::vector<std::string>& kept,
                                               bool dry_run) {
  auto view = LoadArchiveView(settings, archive, settings.config.archive.source_cluster, "");
  if (!view) {
    // No backup of a single cluster: nothing to hold segments against, so none go.
    Log()->info("event=binlog_prune_skipped reason={}", log::Quote(view.error().message()));
    return std::vector<std::string>();
  }
  ar::BinlogArchive binlogs(*archive.store, archive.key, view->cluster_id);
  std::map<std::string, std::vector<ar::SegmentInfo>> segments;
  std::vector<std::string> histories = {view->root};
  for (const auto& h : view->histories) histories.push_back(h.id);
  for (const auto& h : histories) {
    auto listed = binlogs.List(h);
    if (!listed) return Error(listed.error());
    segments[h] = std::move(*listed);
  }
  std::vector<ar::BackupPoint> keep;
  for (const auto& b : view->backups) {
    if (std::find(kept.begin(), kept.end(), b.id) != kept.end()) keep.push_back(b);
  }
  auto plan = ar::PlanSegmentRetention(view->histories, view->root, segments, keep);
  for (const auto& [history, why] : plan.why) {
    Log()->info("event=binlog_retention history={} rule={}", history, log::Quote(why));
  }
  std::vector<std::string> gone;
  for (const auto& s : plan.remove) {
    Log()->info("event=binlog_segment_{} key={}", dry_run ? "would_delete" : "delete", s.key);
    if (!dry_run) REPLBOOT_RETURN_IF_ERROR(binlogs.Delete(s));
    gone.push_back(s.key);
  }
  return gone;
}

Status ReplayRelayLogs(const NodeSettings& settings, const ReplayOptions& options) {
  if (options.relay_logs.empty()) return Status::Ok();
  const std::string relay_dir = files::ParentDir(options.relay_logs.front());
  ScratchServerPaths paths{.datadir = options.datadir,
                           .socket = options.scratch_dir + "/mysqld.sock",
                           .pid_file = options.scratch_dir + "/mysqld.pid",
                           .error_log = options.scratch_dir + "/mysqld.err",
                           .tmpdir = options.scratch_dir + "/tmp"};
  if (paths.socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("the replay server's socket {} is longer than a unix socket "
                              "allows ({})",
                              paths.socket, sizeof(sockaddr_un{}.sun_path) - 1));
  }
  if (::mkdir(paths.tmpdir.c_str(), 0700) != 0 && errno != EEXIST)
    return ErrnoStatus(errno, "mkdir " + paths.tmpdir);
  REPLBOOT_RETURN_STATUS_IF_ERROR(Chown(paths.tmpdir, settings.mysql_user));
  // The index the server reads its relay log from.
  std::string index;
  for (const auto& f : options.relay_logs) index += f + "\n";
  const std::string index_path = relay_dir + "/" + kRelayBase + ".index";
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::WriteFileAtomic(index_path, index, 0640));
  REPLBOOT_RETURN_STATUS_IF_ERROR(Chown(index_path, settings.mysql_user));

  auto config = ScratchServerConfig(settings.flavour, paths, settings.config.mysql.options,
                                    ScratchGrants::kRead);
  if (!config) return config.error();
  const int threads =
      options.threads > 0 ? options.threads : std::clamp(process::UsableCpus(), 2, 16);
  std::string extra = fmt::format(
      "# The replay of a point-in-time restore: the relay log is the archive's segments.\n"
      "server-id={}\n"
      "relay-log={}/{}\n"
      "relay-log-index={}\n"
      "relay-log-info-file={}/relay-log.info\n"
      "master-info-file={}/master.info\n"
      "relay-log-purge=OFF\n"
      "relay-log-recovery=OFF\n"
      "slave-parallel-threads={}\n"
      "slave-parallel-mode=optimistic\n"
      "innodb-flush-log-at-trx-commit=2\n"
      "innodb-buffer-pool-size=256M\n"
      "sync-relay-log=0\n"
      "sync-relay-log-info=0\n"
      "sync-master-info=0\n",
      options.server_id, relay_dir, kRelayBase, index_path, options.scratch_dir,
      options.scratch_dir, threads);
  const std::string defaults_file = options.scratch_dir + "/replay.cnf";
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::WriteFileAtomic(defaults_file, *config + extra, 0644));

  ScratchServer server;
  REPLBOOT_RETURN_STATUS_IF_ERROR(server.Start(settings, defaults_file));
  std::stop_callback kill_on_stop(options.stop, [&server] { server.Signal(SIGKILL); });
  auto session = ConnectScratchServer(server, settings, paths,
                                      std::chrono::seconds(settings.config.mysql.startup_timeout),
                                      std::chrono::seconds(60), options.stop,
                                      settings.root_password);
  if (!session) return session.error().WithContext("the replay server");
  db::Session& db = **session;
  const auto start = Clock::now();
  REPLBOOT_RETURN_STATUS_IF_ERROR(db.Execute(fmt::format(
      // The relay log is named as the server names its own (the index's directory, this
      // base name); a master log name must be set too, or the applier has none to compare
      // positions with (the segments have no Rotate event naming one).
      "CHANGE MASTER TO MASTER_HOST='replboot-pitr-replay', MASTER_USE_GTID=no, "
      "MASTER_LOG_FILE='replboot-pitr.000001', MASTER_LOG_POS=4, RELAY_LOG_FILE={}, "
      "RELAY_LOG_POS=4",
      db::QuoteLiteral(options.relay_logs.front().substr(relay_dir.size() + 1)))));
  REPLBOOT_RETURN_STATUS_IF_ERROR(db.Execute("START SLAVE SQL_THREAD"));
  Log()->info("event=pitr_replay_started files={} until={} threads={} server_id={}",
              options.relay_logs.size(), log::Quote(binlog::PositionToString(options.until)), threads,
              options.server_id);
  auto last_log = Clock::now();
  for (int round = 0;; ++round) {
    if (options.stop.stop_requested()) return Status(StatusCode::kCancelled, "stop requested");
    auto pos = db.Query("SELECT @@GLOBAL.gtid_slave_pos");
    if (!pos) return pos.error().WithContext("the replay server");
    const std::string text = pos->empty() ? "" : pos->front().at(0).value_or("");
    auto at = binlog::ParsePosition(text);
    if (at && binlog::PositionCovers(*at, options.until)) break;
    if (round % 10 == 0) {
      auto status = db.Query("SHOW SLAVE STATUS");
      if (!status) return status.error().WithContext("the replay server");
      if (!status->empty()) {
        const auto& row = status->front();
        if (row.Get("Slave_SQL_Running").value_or("") != "Yes") {
          return Status(StatusCode::kInternal,
                        fmt::format("the replay stopped at {} (relay log {} position {}): "
                                    "error {}: {}",
                                    text, row.Get("Relay_Log_File").value_or("?"),
                                    row.Get("Relay_Log_Pos").value_or("?"),
                                    row.Get("Last_SQL_Errno").value_or("?"),
                                    row.Get("Last_SQL_Error").value_or("")));
        }
      }
    }
    if (Clock::now() - last_log > std::chrono::seconds(5)) {
      last_log = Clock::now();
      Log()->info("event=pitr_replay_progress at={} until={} seconds={:.0f}", log::Quote(text),
                  log::Quote(binlog::PositionToString(options.until)), SecondsSince(start));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REPLBOOT_RETURN_STATUS_IF_ERROR(db.Execute("STOP SLAVE"));
  REPLBOOT_RETURN_STATUS_IF_ERROR(db.Execute("RESET SLAVE ALL"));
  Log()->info("event=pitr_replay_done seconds={:.2f}", SecondsSince(start));
  // A clean shutdown: the datadir is committed next and started as the primary.
  (void)db.Execute("SHUTDOWN");
  for (int i = 0; i < settings.config.mysql.shutdown_grace * 4; ++i) {
    auto ended = server.WaitFor(std::chrono::milliseconds(250));
    if (!ended) return ended.error();
    if (*ended) {
      if (!(*ended)->ok()) {
        return Status(StatusCode::kInternal,
                      fmt::format("the replay server ended with {}", (*ended)->ToString()));
      }
      return Status::Ok();
    }
  }
  server.Kill();
  return Status(StatusCode::kTimeout,
                fmt::format("the replay server did not shut down within {}s",
                            settings.config.mysql.shutdown_grace));
}

namespace {

// The manifest of the plan's backup, from the view.
Result<ar::Manifest> ManifestOf(const ArchiveView& view, const ar::RestorePlan& plan) {
  for (size_t i = 0; i < view.backups.size() && i < view.manifests.size(); ++i) {
    if (view.backups[i].id == plan.backup.id) return view.manifests[i];
  }
  return Error(StatusCode::kInternal, "the plan's backup {} is not listed", plan.backup.id);
}

// PointInTimeRestore's steps for a plan made on `view`.
Result<PitrReport> RunPitrPlan(const NodeSettings& settings, Archive& archive,
                               const ArchiveView& view, const ar::RestorePlan& plan,
                               const ar::Manifest& manifest, const PitrOptions& options) {
  PitrReport report;
  report.backup_id = plan.backup.id;
  report.history = view.history;
  report.segments = plan.segments.size();
  if (plan.stopped_by_gap) {
    report.stopped_by_gap = plan.stopped_by_gap->Describe();
    Log()->warn("event=pitr_archive_gap detail={}", log::Quote(report.stopped_by_gap));
  }
  Log()->info("event=pitr_plan target={} history={} backup={} backup_gtid={} segments={}",
              log::Quote(plan.target.text), view.history, plan.backup.id,
              log::Quote(plan.backup.gtid_position), plan.segments.size());

  // The scratch dir beside the datadir: relay logs, the replay server's socket and logs.
  std::string datadir = options.datadir;
  while (datadir.size() > 1 && datadir.back() == '/') datadir.pop_back();
  const std::string scratch_dir = datadir + std::string(kPitrSuffix);
  Scratch scratch;
  struct Cleanup {
    Scratch& scratch;
    ~Cleanup() {
      if (Status s = scratch.Remove(); !s.ok())
        Log()->error("event=pitr_scratch_not_removed error={}", log::Quote(s.message()));
    }
  } cleanup{scratch};
  if (Status s = scratch.Create(scratch_dir, settings.mysql_user, plan.backup.id, kPitrMarker,
                                "a point-in-time restore");
      !s.ok()) {
    return Error(s.WithContext("point-in-time restore scratch dir"));
  }
  const std::string relay_dir = scratch.Join("relay");
  if (::mkdir(relay_dir.c_str(), 0700) != 0) return Error(ErrnoStatus(errno, "mkdir " + relay_dir));
  if (Status s = Chown(relay_dir, settings.mysql_user); !s.ok()) return Error(s);

  // 1. Every segment, before anything is restored.
  const auto segments_start = Clock::now();
  ar::BinlogArchive binlogs(*archive.store, archive.key, view.cluster_id);
  auto relay = WriteRelayLogs(binlogs, plan, relay_dir, settings.mysql_user, options.stop);
  if (!relay) return Error(relay.error());
  report.segments_seconds = SecondsSince(segments_start);
  report.transactions = relay->transactions;
  report.skipped = relay->skipped;
  report.gtid_state = relay->state.ToString();
  report.last_gtid = relay->last_gtid;
  report.last_commit_time = relay->last_commit_time;

  // 2. The backup, and the replay on its prepared staging dir before the commit.
  ar::HistoryRecord record;
  if (options.as_primary) {
    record.id = ar::NewHistoryId(std::chrono::system_clock::now());
    record.cluster_id = view.cluster_id;
    record.parent = view.history;
    record.branch_state = report.gtid_state;
    record.backup_id = plan.backup.id;
    record.target = plan.target.text;
    record.created_at_ms = NowMs();
    report.new_history = record.id;
  }
  RestoreOptions restore;
  restore.datadir = options.datadir;
  restore.as_primary = options.as_primary;
  restore.stop = options.stop;
  restore.on_progress = options.on_progress;
  restore.gtid_state = report.gtid_state;
  if (options.as_primary) {
    restore.marker_extra["history"] = {{"id", record.id},
                                       {"cluster_id", record.cluster_id},
                                       {"parent", record.parent},
                                       {"branch_state", record.branch_state},
                                       {"backup_id", record.backup_id},
                                       {"target", record.target},
                                       {"created_at_ms", record.created_at_ms}};
  }
  const auto restore_start = Clock::now();
  double replay_seconds = 0;
  restore.before_marker = [&](const std::string& staging) -> Status {
    if (relay->files.empty()) return Status::Ok();
    const auto replay_start = Clock::now();
    ReplayOptions replay;
    replay.datadir = staging;
    replay.scratch_dir = scratch_dir;
    replay.relay_logs = relay->files;
    replay.until = relay->until;
    replay.server_id = ReplayServerId(relay->server_ids);
    replay.threads = options.replay_threads;
    replay.stop = options.stop;
    Status s = ReplayRelayLogs(settings, replay);
    replay_seconds = SecondsSince(replay_start);
    return s.ok() ? s : s.WithContext("replaying the archived binlog");
  };
  auto restored = RestoreBackup(settings, archive, manifest, restore);
  if (!restored) return Error(restored.error());
  report.replay_seconds = replay_seconds;
  report.restore_seconds = SecondsSince(restore_start) - replay_seconds;

  // 3. The new history, once the datadir holds it.
  if (options.as_primary) {
    if (Status s = ar::WriteHistory(*archive.store, archive.key, record); !s.ok()) {
      return Error(s.code(),
                   "{} is restored, but its new history {} could not be recorded in the store: "
                   "{}",
                   options.datadir, record.id, s.message());
    }
  }
  Log()->info(
      "event=pitr_restored datadir={} backup={} target={} transactions={} skipped={} "
      "last_gtid={} gtid_state={} new_history={} segments_s={:.2f} restore_s={:.2f} "
      "replay_s={:.2f}",
      log::Quote(options.datadir), report.backup_id, log::Quote(plan.target.text),
      report.transactions, report.skipped, log::Quote(report.last_gtid),
      log::Quote(report.gtid_state), report.new_history, report.segments_seconds,
      report.restore_seconds, report.replay_seconds);
  return report;
}

}  // namespace

Result<PitrReport> PointInTimeRestore(const NodeSettings& settings, Archive& archive,
                                      const PitrOptions& options) {
  auto view = LoadArchiveView(settings, archive, options.cluster, options.history);
  if (!view) return Error(view.error());
  auto plan = ar::PlanRestore(view->chain, view->backups, options.target);
  if (!plan) return Error(plan.error());
  auto manifest = ManifestOf(*view, *plan);
  if (!manifest) return Error(manifest.error());
  return RunPitrPlan(settings, archive, *view, *plan, *manifest, options);
}

std::string StoreRestorePlan::Describe() const {
  if (!pitr) return fmt::format("backup {} alone (no binlog segment archived)", manifest.backup_id);
  return fmt::format(
      "backup {} + {} archived segments to {}{}", manifest.backup_id, pitr->segments.size(),
      pitr->target.kind == ar::RestoreTarget::Kind::kLatest
          ? (pitr->reach_state.empty() ? "the backup's point" : pitr->reach_state)
          : pitr->target.text,
      pitr->stopped_by_gap ? " (the archive ends early: " + pitr->stopped_by_gap->Describe() + ")"
                           : "");
}

Result<StoreRestorePlan> PlanStoreRestore(const ArchiveView& view,
                                          const ar::RestoreTarget& target) {
  const bool archived = std::any_of(view.chain.begin(), view.chain.end(),
                                    [](const ar::ChainPhase& p) { return !p.segments.empty(); });
  StoreRestorePlan out;
  if (target.kind == ar::RestoreTarget::Kind::kLatest && !archived) {
    // As before the binlog archive: the newest backup, continuing its own GTID history.
    out.manifest = view.newest;
    return out;
  }
  auto plan = ar::PlanRestore(view.chain, view.backups, target);
  if (!plan) return Error(plan.error());
  auto manifest = ManifestOf(view, *plan);
  if (!manifest) return Error(manifest.error());
  out.manifest = std::move(*manifest);
  out.pitr = std::move(*plan);
  return out;
}

Result<PitrReport> RestoreFromStore(const NodeSettings& settings, Archive& archive,
                                    const ArchiveView& view, const StoreRestorePlan& plan,
                                    const PitrOptions& options) {
  if (plan.pitr) return RunPitrPlan(settings, archive, view, *plan.pitr, plan.manifest, options);
  RestoreOptions restore;
  restore.datadir = options.datadir;
  restore.as_primary = options.as_primary;
  restore.stop = options.stop;
  restore.on_progress = options.on_progress;
  auto restored = RestoreBackup(settings, archive, plan.manifest, restore);
  if (!restored) return Error(restored.error());
  PitrReport report;
  report.point_in_time = false;
  report.backup_id = plan.manifest.backup_id;
  report.history = view.history;
  report.gtid_state = plan.manifest.gtid_position;
  Log()->info("event=store_restored datadir={} backup={} gtid={} binlog_segments=0",
              log::Quote(options.datadir), report.backup_id, log::Quote(report.gtid_state));
  return report;
}

}  // namespace replboot::daemon
