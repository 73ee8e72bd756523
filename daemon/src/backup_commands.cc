// `replboot backup now|list|verify|test-restore|delete|prune` and `replboot restore`: the store of
// [archive], by hand, wired from the configuration like `replboot run` (backups.h).
#include <csignal>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "archive_command.h"
#include "replboot/archive/catalog.h"
#include "replboot/archive/layout.h"
#include "replboot/archive/reader.h"
#include "replboot/base/exit_code.h"
#include "replboot/base/log.h"
#include "replboot/conf/cli_flags.h"
#include "replboot/daemon/backups.h"
#include "replboot/daemon/bootstrap.h"
#include "replboot/daemon/commands.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/daemon/pitr_restore.h"
#include "replboot/archive/pitr.h"
#include "replboot/daemon/restore_test.h"
#include "stop_on_signal.h"

namespace replboot::daemon {

namespace {


int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string TimeText(int64_t ms) {
  if (ms <= 0) return "never";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string SizeText(uint64_t bytes) {
  if (bytes >= (1ull << 30)) return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1 << 30));
  if (bytes >= (1ull << 20)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{} B", bytes);
}

// Settings and the store, for every subcommand; an error is reported and ends it.

nlohmann::json EntryJson(const archive::BackupEntry& e) {
  nlohmann::json j;
  j["id"] = e.id;
  j["complete"] = e.complete;
  j["problem"] = e.problem;
  j["stored_objects"] = e.stored_objects;
  if (e.manifest) {
    const auto& m = *e.manifest;
    j["cluster_id"] = m.cluster_id;
    j["node"] = m.node;
    j["flavour"] = m.flavour;
    j["server_version"] = m.server_version;
    j["gtid_position"] = m.gtid_position;
    j["started_at"] = TimeText(m.started_at_ms);
    j["finished_at"] = TimeText(m.finished_at_ms);
    j["logical_bytes"] = m.logical_bytes;
    j["stored_bytes"] = m.stored_bytes;
    j["objects"] = m.objects.size();
    j["key_id"] = m.key_id;
  }
  j["verified_at"] = e.checks ? TimeText(e.checks->verified_at_ms) : "never";
  j["verify_error"] = e.checks ? e.checks->verify_error : "";
  j["restore_tested_at"] = e.checks ? TimeText(e.checks->restore_tested_at_ms) : "never";
  j["restore_test_error"] = e.checks ? e.checks->restore_test_error : "";
  const bool tested = e.checks && e.checks->restore_tested_at_ms > 0;
  j["restore_test"] = !tested                              ? "never"
                      : e.checks->restore_test_error.empty() ? "passed"
                                                             : "failed";
  j["restore_test_tables"] = tested ? e.checks->restore_test_tables : 0;
  j["restore_test_rows_approximate"] = tested ? e.checks->restore_test_rows : 0;
  j["restore_test_seconds"] = tested ? e.checks->restore_test_seconds : 0.0;
  return j;
}

void PrintTable(const std::vector<archive::BackupEntry>& entries) {
  std::vector<std::array<std::string, 8>> rows;
  rows.push_back({"ID", "FINISHED", "GTID", "SIZE", "STORED", "VERIFIED", "RESTORE TEST", "STATE"});
  for (const auto& e : entries) {
    std::array<std::string, 8> row;
    row[0] = e.id;
    if (e.manifest) {
      row[1] = TimeText(e.manifest->finished_at_ms);
      row[2] = e.manifest->gtid_position.empty() ? "-" : e.manifest->gtid_position;
      row[3] = SizeText(e.manifest->logical_bytes);
      row[4] = SizeText(e.manifest->stored_bytes);
    } else {
      row[1] = row[2] = row[3] = "-";
      row[4] = fmt::format("{} objects", e.stored_objects);
    }
    row[5] = !e.checks ? "never"
             : e.checks->verify_error.empty() ? TimeText(e.checks->verified_at_ms)
                                              : "FAILED";
    row[6] = !e.checks || e.checks->restore_tested_at_ms <= 0 ? "never"
             : e.checks->restore_test_error.empty()
                 ? TimeText(e.checks->restore_tested_at_ms)
                 : "FAILED " + TimeText(e.checks->restore_tested_at_ms);
    row[7] = e.complete ? "complete" : "incomplete: " + e.problem;
    rows.push_back(row);
  }
  std::array<size_t, 8> width{};
  for (const auto& r : rows)
    for (size_t i = 0; i < 7; ++i) width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < 8; ++i)
      line += i < 7 ? fmt::format("{:<{}}  ", r[i], width[i]) : r[i];
    std::cout << line << "\n";
  }
}

}  // namespace

void AddBackupCommands(CLI::App& app) {
  CLI::App* backup = app.add_subcommand(
      "backup", "Backups in the store of [archive]: take one now, list, verify, delete, prune");
  backup->require_subcommand(1);
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto from = std::make_shared<std::string>("127.0.0.1");
    auto id = std::make_shared<std::string>();
    CLI::App* cmd = backup->add_subcommand(
        "now", "Take a backup now from a backup server (default this node's) into the store");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_option("--from", *from,
                    "the backup server to stream from, HOST[:PORT] (default 127.0.0.1, port "
                    "backup.port)");
    cmd->add_option("--id", *id, "the backup's id (default the current UTC time)");
    cmd->callback([flags, from, id] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/true);
      if (!opened) return;
      auto endpoint =
          BackupEndpoint(*from, static_cast<uint16_t>(opened->settings.config.backup.port));
      if (!endpoint) return FailCommand("backup_failed", endpoint.error());
      TakeBackupOptions options;
      options.backup_id =
          id->empty() ? archive::NewBackupId(std::chrono::system_clock::now()) : *id;
      if (!archive::IsBackupId(options.backup_id)) {
        return FailCommand("backup_failed",
                    Status(StatusCode::kInvalidArgument,
                           fmt::format("--id {} is not a backup id like 20261207T061500Z",
                                       log::Printable(options.backup_id))));
      }
      options.from = *endpoint;
      auto manifest = TakeBackup(opened->settings, *opened->archive, options);
      if (!manifest) return FailCommand("backup_failed", manifest.error());
      std::cout << manifest->backup_id << "\n";
      cli::ExitCode() = cli::kExitOk;
    });
  }
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto json = std::make_shared<bool>(false);
    CLI::App* cmd = backup->add_subcommand("list", "List the store's backups, oldest first");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_flag("--json", *json, "one JSON array instead of a table");
    cmd->callback([flags, json] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/false);
      if (!opened) return;
      auto entries = archive::ListBackups(*opened->archive->store, opened->archive->key);
      if (!entries) return FailCommand("backup_list_failed", entries.error());
      // The binlog archive of the newest history: what each backup reaches, and the gaps.
      auto view = LoadArchiveView(opened->settings, *opened->archive,
                                  opened->settings.config.archive.source_cluster, "");
      std::map<std::string, archive::ChainReport> reach;
      std::optional<archive::ChainReport> report;
      if (view) {
        report = archive::CheckChain(view->chain, view->backups);
        for (const auto& b : view->backups) reach[b.id] = archive::CheckChain(view->chain, {b});
      }
      if (*json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& e : *entries) {
          nlohmann::json j = EntryJson(e);
          auto it = reach.find(e.id);
          if (view && it != reach.end() && !it->second.ranges.empty()) {
            const auto& r = it->second.ranges.front();
            j["history"] = [&] {
              for (const auto& b : view->backups)
                if (b.id == e.id) return b.history;
              return std::string();
            }();
            j["restorable_from_time"] = archive::FormatTime(r.from_time);
            j["restorable_from_gtid"] = r.from_state;
            j["restorable_to_time"] = r.to_time > 0 ? archive::FormatTime(r.to_time) : "";
            j["restorable_to_gtid"] = r.to_state;
            j["gap"] = it->second.gaps.empty() ? "" : it->second.gaps.front().Describe();
          }
          out.push_back(std::move(j));
        }
        std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      } else {
        PrintTable(*entries);
        if (!view) {
          std::cout << "binlog archive: " << view.error().message() << "\n";
        } else {
          std::cout << fmt::format("binlog archive: history {} ({} histories), {} segments; {}\n",
                                   view->history, view->histories.size() + 1, report->segments,
                                   report->Describe());
        }
      }
      cli::ExitCode() = cli::kExitOk;
    });
  }
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto which = std::make_shared<std::string>("latest");
    auto deep = std::make_shared<bool>(false);
    CLI::App* cmd = backup->add_subcommand(
        "verify", "Check a backup's objects against its manifest (sizes, SHA-256; --deep: "
                  "decrypt and decompress too) and record the result");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_option("--backup", *which, "a backup id, or latest (default)");
    cmd->add_flag("--deep", *deep, "also open every object (what a restore reads)");
    cmd->callback([flags, which, deep] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/false);
      if (!opened) return;
      auto manifest = ChooseBackup(*opened->archive, *which, opened->settings.config.archive.source_cluster);
      if (!manifest) return FailCommand("backup_verify_failed", manifest.error());
      Status s = archive::VerifyBackup(*opened->archive->store, *manifest, opened->archive->key, *deep);
      auto checks = archive::LoadChecks(*opened->archive->store, opened->archive->key,
                                        manifest->backup_id);
      archive::BackupChecks record = checks && *checks ? **checks : archive::BackupChecks{};
      record.verified_at_ms = NowMs();
      record.verify_error = s.ok() ? "" : s.message();
      if (Status w = archive::WriteChecks(*opened->archive->store, opened->archive->key,
                                          manifest->backup_id, record);
          !w.ok()) {
        log::Get("archive")->warn("event=backup_checks_not_written id={} error={}",
                                  manifest->backup_id, log::Quote(w.message()));
      }
      if (!s.ok()) return FailCommand("backup_verify_failed", s);
      log::Get("archive")->info("event=backup_verified id={} deep={} objects={}",
                                manifest->backup_id, *deep, manifest->objects.size());
      std::cout << manifest->backup_id << " ok\n";
      cli::ExitCode() = cli::kExitOk;
    });
  }
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto which = std::make_shared<std::string>("latest");
    auto keep = std::make_shared<bool>(false);
    CLI::App* cmd = backup->add_subcommand(
        "test-restore",
        "Prove a backup restorable: restore it into a scratch dir, start a throwaway server on "
        "it, check every table, and record the result");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_option("--backup", *which, "a backup id, or latest (default)");
    cmd->add_flag("--keep-scratch", *keep,
                  "leave the scratch dir (server stopped) for a look; the next test removes it");
    cmd->callback([flags, which, keep] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/true);
      if (!opened) return;
      auto manifest = ChooseBackup(*opened->archive, *which,
                                   opened->settings.config.archive.source_cluster);
      if (!manifest) return FailCommand("restore_test_failed", manifest.error());
      // Ctrl-C or SIGTERM: the server is killed and the scratch dir removed before exiting.
      StopOnSignal signals;
      RestoreTestOptions options;
      options.keep_scratch = *keep;
      options.stop = signals.token();
      auto report = RestoreTestBackup(opened->settings, *opened->archive, *manifest, options);
      if (!report) {
        FailCommand("restore_test_failed", report.error());
        if (signals.signal() != 0) cli::ExitCode() = cli::kExitSignalBase + signals.signal();
        return;
      }
      if (!report->ok) {
        // The step decides the exit code's kind: a damaged backup (1), not a usage error.
        return FailCommand("restore_test_failed",
                    Status(StatusCode::kCorruption,
                           fmt::format("restore test of backup {} failed at {}{}",
                                       report->backup_id, report->error,
                                       report->recorded ? "" : " (not recorded)")));
      }
      std::cout << fmt::format(
          "{} restorable: {} tables in {} schemas checked, about {} rows (TABLE_ROWS: InnoDB's "
          "estimate), GTID {} ({}), {:.1f} s{}{}\n",
          report->backup_id, report->tables, report->schemas, report->approximate_rows,
          report->server_gtid.empty() ? "-" : report->server_gtid,
          report->gtid_check == "equal"    ? "the backup's"
          : report->gtid_check == "behind" ? "behind the backup's, which a primary's binlog holds"
                                           : "not comparable with the backup's " +
                                                 manifest->gtid_position,
          report->seconds, report->recorded ? "" : " (not recorded)",
          report->scratch_kept ? "; kept " + report->scratch_dir : "");
      cli::ExitCode() = cli::kExitOk;
    });
  }
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto id = std::make_shared<std::string>();
    CLI::App* cmd = backup->add_subcommand("delete", "Delete one backup (its manifest first)");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_option("--backup", *id, "the backup id")->required();
    cmd->callback([flags, id] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/false);
      if (!opened) return;
      if (!archive::IsBackupId(*id)) {
        return FailCommand("backup_delete_failed",
                    Status(StatusCode::kInvalidArgument,
                           fmt::format("{} is not a backup id", log::Printable(*id))));
      }
      if (Status s = archive::DeleteBackup(*opened->archive->store, *id); !s.ok())
        return FailCommand("backup_delete_failed", s);
      log::Get("archive")->info("event=backup_deleted id={}", *id);
      cli::ExitCode() = cli::kExitOk;
    });
  }
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto dry_run = std::make_shared<bool>(false);
    CLI::App* cmd = backup->add_subcommand(
        "prune", "Apply archive.keep_last / keep_days: delete what they no longer keep (never "
                 "the newest verified backup)");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_flag("--dry-run", *dry_run, "print what would go, delete nothing");
    cmd->callback([flags, dry_run] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/false);
      if (!opened) return;
      auto gone = PruneBackups(opened->settings, *opened->archive, *dry_run);
      if (!gone) return FailCommand("backup_prune_failed", gone.error());
      for (const auto& id : *gone) std::cout << (*dry_run ? "would delete " : "deleted ") << id << "\n";
      cli::ExitCode() = cli::kExitOk;
    });
  }
  {
    auto flags = std::make_shared<conf::ConfigFlags>();
    auto which = std::make_shared<std::string>();
    auto cluster = std::make_shared<std::string>();
    auto as_replica = std::make_shared<bool>(false);
    auto time = std::make_shared<std::string>();
    auto gtid = std::make_shared<std::string>();
    auto history = std::make_shared<std::string>();
    auto threads = std::make_shared<int>(0);
    auto dry_run = std::make_shared<bool>(false);
    CLI::App* cmd = app.add_subcommand(
        "restore", "Restore into an empty datadir: a backup, then the archived binlog up to a "
                   "point in time (staged, checked, prepared, replayed, committed atomically)");
    conf::AddConfigFlags(cmd, flags.get());
    cmd->add_option("--backup", *which,
                    "this backup id only, or latest, without the binlog archive (default: the "
                    "newest backup before the target)");
    cmd->add_option("--time", *time,
                    "restore to this moment, RFC 3339 (2026-12-06T10:41:59Z): every transaction "
                    "committed at or before it; or latest: everything archived");
    cmd->add_option("--gtid", *gtid,
                    "restore up to and including this GTID position (0-100-41[,1-100-7])");
    cmd->add_option("--history", *history,
                    "the history to restore in (replboot backup list names them; default the "
                    "newest)");
    cmd->add_option("--replay-threads", *threads,
                    "the replay's slave_parallel_threads (default the CPUs, 2..16)")
        ->check(CLI::Range(1, 256));
    cmd->add_option("--cluster", *cluster,
                    "the cluster whose backups to take (default archive.source_cluster, else "
                    "the store's only cluster)");
    cmd->add_flag("--as-replica", *as_replica,
                  "no promotion marker and no new history: the datadir will not start as the "
                  "primary");
    cmd->add_flag("--dry-run", *dry_run,
                  "print what would be restored (the backup, the segments, the GTID reached) "
                  "or why the target cannot be, and restore nothing");
    cmd->callback([flags, which, cluster, as_replica, time, gtid, history, threads, dry_run] {
      auto opened = OpenArchiveCommand(*flags, /*needs_flavour=*/true);
      if (!opened) return;
      if (!time->empty() && !gtid->empty()) {
        return FailCommand("restore_failed", Status(StatusCode::kInvalidArgument,
                                             "--time and --gtid name two targets: give one"));
      }
      const bool pitr_asked = !time->empty() || !gtid->empty() || !history->empty();
      if (pitr_asked && !which->empty()) {
        return FailCommand("restore_failed",
                    Status(StatusCode::kInvalidArgument,
                           "--backup restores one backup as it is; with --time, --gtid or "
                           "--history the restore picks the backup itself"));
      }
      archive::RestoreTarget target;
      target.text = "latest";
      if (!time->empty() && *time != "latest") {
        auto t = archive::ParseTimeTarget(*time);
        if (!t) return FailCommand("restore_failed", t.error());
        target = *t;
      } else if (!gtid->empty()) {
        auto g = archive::ParseGtidTarget(*gtid);
        if (!g) return FailCommand("restore_failed", g.error());
        target = *g;
      }
      const std::string& want =
          cluster->empty() ? opened->settings.config.archive.source_cluster : *cluster;
      // The plan first (the store asked, nothing written): `--dry-run` ends here, so a wrong
      // target or id can be told before a cluster is stopped for the restore.
      std::optional<ArchiveView> view;
      std::optional<StoreRestorePlan> plan;
      if (which->empty()) {
        auto loaded = LoadArchiveView(opened->settings, *opened->archive, want, *history);
        if (!loaded) return FailCommand("restore_failed", loaded.error());
        view = std::move(*loaded);
        auto planned = PlanStoreRestore(*view, target);
        if (!planned) return FailCommand("restore_failed", planned.error());
        plan = std::move(*planned);
      }
      if (*dry_run) {
        if (plan) {
          std::cout << fmt::format("would restore to {}: {}\n", target.text, plan->Describe());
        } else {
          auto manifest = ChooseBackup(*opened->archive, *which, want);
          if (!manifest) return FailCommand("restore_failed", manifest.error());
          std::cout << fmt::format("would restore backup {} alone (GTID {})\n", manifest->backup_id,
                                   manifest->gtid_position.empty() ? "-" : manifest->gtid_position);
        }
        cli::ExitCode() = cli::kExitOk;
        return;
      }
      RestoreOptions options;
      // --datadir is the common flag of mysql.datadir (conf/cli_flags.h).
      options.datadir = opened->settings.config.mysql.datadir;
      options.as_primary = !*as_replica;
      // The same table as `replboot run`: leftovers of an interrupted restore are settled
      // first, and a datadir with data is never replaced.
      auto action = SettleDatadir(options.datadir, conf::Role::kReplica, /*can_clone=*/true,
                                  /*force_reclone=*/false);
      if (!action) return FailCommand("restore_failed", action.error());
      if (*action != BootstrapAction::kClone) {
        return FailCommand("restore_failed",
                    Status(StatusCode::kInvalidArgument,
                           fmt::format("{} already holds data ({}): a restore goes only into "
                                       "an empty or absent datadir",
                                       options.datadir, BootstrapActionName(*action))));
      }
      if (plan) {
        // To the target through the binlog archive, or the newest backup alone when nothing
        // is archived (the table in pitr_restore.h).
        StopOnSignal signals;
        PitrOptions p;
        p.target = target;
        p.cluster = want;
        p.history = *history;
        p.datadir = options.datadir;
        p.as_primary = options.as_primary;
        p.replay_threads = *threads;
        p.stop = signals.token();
        auto report = RestoreFromStore(opened->settings, *opened->archive, *view, *plan, p);
        if (!report) {
          FailCommand("restore_failed", report.error());
          if (signals.signal() != 0) cli::ExitCode() = cli::kExitSignalBase + signals.signal();
          return;
        }
        if (!report->point_in_time) {
          std::cout << fmt::format(
              "restored {} to {}: backup {} alone (no binlog segment archived), GTID state {}\n",
              p.datadir, target.text, report->backup_id,
              report->gtid_state.empty() ? "-" : report->gtid_state);
          cli::ExitCode() = cli::kExitOk;
          return;
        }
        std::cout << fmt::format(
            "restored {} to {}: backup {} + {} transactions from {} segments (last {} at {}), "
            "GTID state {}{}{}\n",
            p.datadir, target.text, report->backup_id, report->transactions, report->segments,
            report->last_gtid.empty() ? "-" : report->last_gtid,
            report->last_commit_time > 0 ? archive::FormatTime(report->last_commit_time) : "-",
            report->gtid_state.empty() ? "-" : report->gtid_state,
            report->new_history.empty() ? "" : "; new history " + report->new_history,
            report->stopped_by_gap.empty() ? "" : "; the archive ends early: " +
                                                      report->stopped_by_gap);
        cli::ExitCode() = cli::kExitOk;
        return;
      }
      auto manifest = ChooseBackup(*opened->archive, *which, want);
      if (!manifest) return FailCommand("restore_failed", manifest.error());
      auto result = RestoreBackup(opened->settings, *opened->archive, *manifest, options);
      if (!result) return FailCommand("restore_failed", result.error());
      std::cout << manifest->backup_id << "\n";
      cli::ExitCode() = cli::kExitOk;
    });
  }
}

}  // namespace replboot::daemon
