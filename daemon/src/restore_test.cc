#include "replboot/daemon/restore_test.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/base/option_file.h"
#include "replboot/base/process.h"
#include "replboot/clone/datadir.h"
#include "replboot/conf/config.h"
#include "replboot/daemon/bootstrap.h"
#include "replboot/db/client.h"
#include "replboot/replication/gtid.h"
#include "scratch_server.h"

namespace replboot::daemon {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

auto Log() { return log::Get("archive"); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string SizeText(uint64_t bytes) {
  return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
}

// `a` is `b` or lies under it (both normalized, absolute, no trailing '/').
bool Within(const fs::path& a, const fs::path& b) {
  auto [ai, bi] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return bi == b.end();
}

fs::path Normal(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.has_filename() || p == p.root_path()) return p;
  return p.parent_path();  // "/a/b/" → "/a/b"
}


// Names of options never passed to the throwaway server, as CanonicalOptionName gives them,
// matched anywhere in the name: every option naming a path it would write (logs, tmpdir,
// InnoDB's and Aria's directories), and every one of replication, the binlog, the network,
// init SQL and the event scheduler.
constexpr std::string_view kDroppedParts[] = {
    "dir",         "file",           "path",
    "log_bin",     "binlog",         "relay",
    "log_error",   "socket",         "pid",
    "general_log", "slow_query_log", "log_basename",
    "port",        "bind",           "server_id",
    "report_",     "init_",          "event_scheduler",
    "master",      "slave",          "replica",
    "replicate",   "rpl_",           "gtid",
    "wsrep",       "read_only",      "networking",
    "skip_grant",  "buffer_pool",    "log_slave",
    "log_replica", "shared_memory",  "named_pipe",
    "mysqlx",      "admin_",
};
// Options a datadir may need to open, although their names match the list above: they name
// files the server only reads (plugins, encryption keys) or describe the tablespace layout.
constexpr std::string_view kKeptAnyway[] = {
    "plugin_dir",
    "innodb_data_file_path",  // the system tablespace's files, relative to the datadir
    "file_key_management_filename",
    "file_key_management_filekey",
    "file_key_management_encryption_algorithm",
};

}  // namespace

std::string_view RestoreTestStepName(RestoreTestStep step) {
  switch (step) {
    case RestoreTestStep::kDownload:
      return "download/verify";
    case RestoreTestStep::kPrepare:
      return "prepare";
    case RestoreTestStep::kServerStart:
      return "server start";
    case RestoreTestStep::kTableCheck:
      return "table check";
  }
  return "?";
}

Result<std::string> ScratchDirFor(const std::string& datadir, const std::string& configured) {
  if (datadir.empty() || datadir[0] != '/') {
    return Error(StatusCode::kInvalidArgument, "mysql.datadir {} is not an absolute path",
                 log::Printable(datadir));
  }
  const fs::path data = Normal(datadir);
  const std::string scratch =
      configured.empty() ? data.string() + std::string(kScratchSuffix) : configured;
  if (scratch[0] != '/') {
    return Error(StatusCode::kInvalidArgument, "archive.scratch_dir {} is not an absolute path",
                 log::Printable(scratch));
  }
  // Compared as written and as the filesystem resolves them (a symlink to the datadir, or a
  // parent that is one), for the datadir and the two dirs a clone keeps beside it.
  std::error_code ec;
  const fs::path as_written = Normal(scratch);
  const fs::path resolved = Normal(fs::weakly_canonical(as_written, ec).string());
  for (const std::string& dir :
       {data.string(), clone::StagingPath(data.string()), clone::OldPath(data.string())}) {
    const fs::path d = Normal(dir);
    const fs::path d_resolved = Normal(fs::weakly_canonical(d, ec).string());
    for (const auto& [s, t] : {std::pair{as_written, d}, std::pair{resolved, d_resolved}}) {
      if (Within(s, t)) {
        return Error(StatusCode::kInvalidArgument,
                     "scratch dir {} is {} {}: a restore test goes beside the datadir, never "
                     "into it (archive.scratch_dir)",
                     as_written.string(), s == t ? "the same as" : "inside", dir);
      }
      if (Within(t, s)) {
        return Error(StatusCode::kInvalidArgument,
                     "scratch dir {} holds {}: it is removed whole after each restore test "
                     "(archive.scratch_dir)",
                     as_written.string(), dir);
      }
    }
  }
  return as_written.string();
}

Status CheckScratchSpace(const std::string& scratch_dir, uint64_t free_bytes,
                         uint64_t logical_bytes) {
  const uint64_t need =
      static_cast<uint64_t>(static_cast<double>(logical_bytes) * 1.05) + kServerSlackBytes;
  if (free_bytes >= need) return Status::Ok();
  return Status(
      StatusCode::kNoSpace,
      fmt::format("a restore test of this backup needs {} beside {} (its {} unpacked "
                  "and prepared, plus {} for the test server), {} are free: {} short",
                  SizeText(need), scratch_dir, SizeText(logical_bytes), SizeText(kServerSlackBytes),
                  SizeText(free_bytes), SizeText(need - free_bytes)));
}

std::map<std::string, std::string> ScratchServerOptions(
    const std::map<std::string, std::string>& options) {
  std::map<std::string, std::string> kept;
  for (const auto& [name, value] : options) {
    const std::string canonical = conf::CanonicalOptionName(name);
    bool keep = std::none_of(
        std::begin(kDroppedParts), std::end(kDroppedParts),
        [&](std::string_view part) { return canonical.find(part) != std::string::npos; });
    if (!keep) {
      keep = std::find(std::begin(kKeptAnyway), std::end(kKeptAnyway), canonical) !=
             std::end(kKeptAnyway);
      // The system tablespace given by absolute path is the live server's own file.
      if (keep && canonical == "innodb_data_file_path" && value.find('/') != std::string::npos)
        keep = false;
    }
    if (keep) kept[name] = value;
  }
  return kept;
}

Result<std::string> ScratchServerConfig(Flavour flavour, const ScratchServerPaths& paths,
                                        const std::map<std::string, std::string>& options,
                                        ScratchGrants grants) {
  std::string out =
      "# A restore test's throwaway server (replboot backup test-restore): socket only, no\n"
      "# binlog, no replication; removed with its scratch dir.\n[mysqld]\n";
  auto line = [&out](std::string_view name, std::string_view value) -> Status {
    auto l = option_file::Line(name, value);
    if (!l) return l.error();
    out += *l;
    return Status::Ok();
  };
  const bool mariadb = flavour == Flavour::kMariaDB;
  if (!options.empty()) {
    out += "# [mysql.options] a datadir may need (ScratchServerOptions)\n";
    for (const auto& [name, value] : ScratchServerOptions(options))
      REPLBOOT_RETURN_IF_ERROR(line(name, value));
  }
  out += "# Last, so nothing above overrides them.\n";
  REPLBOOT_RETURN_IF_ERROR(line("datadir", paths.datadir));
  REPLBOOT_RETURN_IF_ERROR(line("socket", paths.socket));
  REPLBOOT_RETURN_IF_ERROR(line("pid-file", paths.pid_file));
  REPLBOOT_RETURN_IF_ERROR(line("log-error", paths.error_log));
  REPLBOOT_RETURN_IF_ERROR(line("tmpdir", paths.tmpdir));
  out += "skip-networking\n";
  // A restore test: the backup's accounts need not be known here (a test on another machine);
  // the socket is in a 0700 directory, so only root and mysqld's user reach the server.
  if (grants == ScratchGrants::kSkip) out += "skip-grant-tables\n";
  out += "skip-log-bin\n";
  out += mariadb ? "skip-slave-start\n" : "skip-replica-start\n";
  out += "skip-name-resolve\n";
  out += "event-scheduler=OFF\n";
  out += "performance-schema=OFF\n";
  out += "innodb-buffer-pool-size=64M\n";
  if (!mariadb) out += "mysqlx=OFF\n";
  return out;
}

Result<RestoredTables> CheckRestoredTables(db::Session& session, Flavour flavour,
                                           const std::stop_token& stop) {
  RestoredTables out;
  auto tables = session.Query(
      "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES "
      "WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') AND TABLE_SCHEMA NOT IN "
      "('information_schema', 'performance_schema') ORDER BY TABLE_SCHEMA, TABLE_NAME");
  if (!tables) return Error(tables.error().WithContext("listing the tables"));
  std::string last_schema;
  for (const auto& row : *tables) {
    if (stop.stop_requested())
      return Error(StatusCode::kCancelled, "stop requested during the table check");
    const std::string schema = row.at(0).value_or("");
    const std::string table = row.at(1).value_or("");
    const std::string name = schema + "." + table;
    auto checked = session.Query("CHECK TABLE " + db::QuoteIdentifier(schema) + "." +
                                 db::QuoteIdentifier(table) + " QUICK");
    if (!checked) return Error(checked.error().WithContext("CHECK TABLE " + name));
    for (const auto& r : *checked) {
      const std::string type = r.Get("Msg_type").value_or("");
      const std::string text = r.Get("Msg_text").value_or("");
      const bool bad = type == "error" ||
                       (type == "status" && text != "OK" && text != "Table is already up to date");
      if (bad) {
        return Error(StatusCode::kCorruption, "table {} fails CHECK TABLE: {}: {}", name, type,
                     text);
      }
    }
    if (schema != last_schema) ++out.schemas;
    last_schema = schema;
    ++out.tables;
    out.approximate_rows += std::strtoull(row.at(2).value_or("0").c_str(), nullptr, 10);
  }
  auto gtid = session.Query(flavour == Flavour::kMariaDB ? "SELECT @@GLOBAL.gtid_current_pos"
                                                         : "SELECT @@GLOBAL.gtid_executed");
  if (!gtid) return Error(gtid.error().WithContext("reading the GTID position"));
  if (!gtid->empty()) out.gtid = gtid->front().at(0).value_or("");
  return out;
}

namespace {

// A MariaDB GTID position ("d-s-n,..."; already parsed, so well-formed) as domain → (sequence
// number, server id). A position has one entry per domain; a list with more keeps the highest.
std::map<uint64_t, std::pair<uint64_t, uint64_t>> DomainPositions(std::string_view text) {
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> out;
  std::string cleaned;
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) cleaned += c;
  }
  std::string_view rest = cleaned;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t first = item.find('-');
    const size_t last = item.rfind('-');
    if (item.empty() || first == std::string_view::npos || first == last) continue;
    const uint64_t domain = std::strtoull(std::string(item.substr(0, first)).c_str(), nullptr, 10);
    const uint64_t server =
        std::strtoull(std::string(item.substr(first + 1, last - first - 1)).c_str(), nullptr, 10);
    const uint64_t seq = std::strtoull(std::string(item.substr(last + 1)).c_str(), nullptr, 10);
    out[domain] = std::max(out[domain], std::pair{seq, server});
  }
  return out;
}

}  // namespace

Result<std::string> CompareRestoredGtid(const std::string& server, const std::string& manifest,
                                        Flavour flavour) {
  auto mine = replication::GtidSet::Parse(server, flavour);
  if (!mine) return Error(mine.error().WithContext("the restored server's GTID position"));
  auto theirs = replication::GtidSet::Parse(manifest, flavour);
  if (!theirs) return Error(theirs.error().WithContext("the manifest's GTID position"));
  if (mine->empty() || theirs->empty()) return std::string("not comparable");
  auto ahead = [&] {
    return Error(StatusCode::kCorruption,
                 "the restored server's GTID position {} is not within the backup's {} "
                 "(manifest)",
                 server, manifest);
  };
  if (flavour == Flavour::kMariaDB) {
    // Both are positions (one entry per domain), not binlog states: compared per domain, as
    // MariaDB does. A domain's sequence numbers run on across servers (gtid_strict_mode), so a
    // former replica's old gtid_slave_pos ("0-100-10") is behind its later binlog position
    // ("0-101-50") although the server ids differ; one sequence number from two servers is
    // two histories.
    const auto restored = DomainPositions(server);
    const auto backed_up = DomainPositions(manifest);
    bool equal = restored.size() == backed_up.size();
    for (const auto& [domain, at] : restored) {
      auto it = backed_up.find(domain);
      if (it == backed_up.end() || at.first > it->second.first) return ahead();
      if (at.first == it->second.first && at.second != it->second.second) return ahead();
      equal = equal && at == it->second;
    }
    return std::string(equal ? "equal" : "behind");
  }
  switch (replication::Relate(*mine, *theirs)) {
    case replication::GtidRelation::kEqual:
      return std::string("equal");
    case replication::GtidRelation::kBehind:
      return std::string("behind");
    case replication::GtidRelation::kAhead:
    case replication::GtidRelation::kDiverged:
      break;
  }
  return ahead();
}

Result<RestoreTestReport> RestoreTestBackup(const NodeSettings& settings, Archive& archive,
                                            const archive::Manifest& manifest,
                                            const RestoreTestOptions& options) {
  const auto start = Clock::now();
  if (manifest.flavour != FlavourName(settings.flavour)) {
    return Error(StatusCode::kInvalidArgument,
                 "backup {} is of a {} server, this node runs {}: it cannot be tested here",
                 manifest.backup_id, manifest.flavour, FlavourName(settings.flavour));
  }
  auto scratch_dir =
      options.scratch_dir.empty()
          ? ScratchDirFor(settings.config.mysql.datadir, settings.config.archive.scratch_dir)
          : ScratchDirFor(settings.config.mysql.datadir, options.scratch_dir);
  if (!scratch_dir) return Error(scratch_dir.error());
  RestoreTestReport report;
  report.backup_id = manifest.backup_id;
  report.scratch_dir = *scratch_dir;

  Scratch scratch;
  // The scratch dir goes on every path out, once this run made it (kept only when asked).
  struct Cleanup {
    Scratch& scratch;
    bool keep = false;
    ~Cleanup() {
      if (keep) {
        scratch.Release();
        return;
      }
      if (Status s = scratch.Remove(); !s.ok())
        Log()->error("event=restore_test_scratch_not_removed error={}", log::Quote(s.message()));
    }
  } cleanup{scratch};
  if (Status s = scratch.Create(*scratch_dir, settings.mysql_user, manifest.backup_id); !s.ok())
    return Error(s.WithContext("restore test scratch dir"));

  auto free_bytes = files::FreeBytes(*scratch_dir);
  if (!free_bytes) return Error(free_bytes.error().WithContext("free space for the restore test"));
  if (Status s = CheckScratchSpace(*scratch_dir, *free_bytes, manifest.logical_bytes); !s.ok())
    return Error(s);

  Log()->info("event=restore_test_started id={} scratch_dir={} bytes={} gtid={}",
              manifest.backup_id, log::Quote(*scratch_dir), manifest.logical_bytes,
              log::Quote(manifest.gtid_position));
  Status failure;
  auto fail = [&](RestoreTestStep step, const Status& s) {
    failure = s;
    report.ok = false;
    report.failed_step = step;
    report.error = fmt::format("{}: {}", RestoreTestStepName(step), s.message());
  };

  ScratchServerPaths paths{.datadir = scratch.Join("data"),
                           .socket = scratch.Join("mysqld.sock"),
                           .pid_file = scratch.Join("mysqld.pid"),
                           .error_log = scratch.Join("mysqld.err"),
                           .tmpdir = scratch.Join("tmp")};
  // Said before anything is downloaded: a path too long says nothing about the backup.
  if (paths.socket.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Error(StatusCode::kInvalidArgument,
                 "the test server's socket {} is longer than a unix socket allows ({}); set "
                 "archive.scratch_dir to a shorter path",
                 paths.socket, sizeof(sockaddr_un{}.sun_path) - 1);
  }
  ScratchServer server;
  [&] {
    // 1. Download, verify, extract, prepare: the restore a user would run, as a replica
    // (no promotion marker: nothing of this datadir may start as the cluster's primary).
    std::string phase = "streaming";
    RestoreOptions restore;
    restore.datadir = paths.datadir;
    restore.as_primary = false;
    restore.stop = options.stop;
    restore.on_progress = [&phase](const clone::CloneProgressEvent& e) { phase = e.phase; };
    const auto restore_start = Clock::now();
    auto restored = RestoreBackup(settings, archive, manifest, restore);
    report.restore_seconds = SecondsSince(restore_start);
    if (!restored) {
      return fail(phase == "streaming" ? RestoreTestStep::kDownload : RestoreTestStep::kPrepare,
                  restored.error());
    }

    // 2. The throwaway server.
    if (::mkdir(paths.tmpdir.c_str(), 0700) != 0)
      return fail(RestoreTestStep::kServerStart, ErrnoStatus(errno, "mkdir " + paths.tmpdir));
    if (settings.mysql_user &&
        ::chown(paths.tmpdir.c_str(), settings.mysql_user->uid, settings.mysql_user->gid) != 0)
      return fail(RestoreTestStep::kServerStart, ErrnoStatus(errno, "chown " + paths.tmpdir));
    auto config = ScratchServerConfig(settings.flavour, paths, settings.config.mysql.options);
    if (!config) return fail(RestoreTestStep::kServerStart, config.error());
    const std::string defaults_file = scratch.Join("my.cnf");
    if (Status s = files::WriteFileAtomic(defaults_file, *config, 0644); !s.ok())
      return fail(RestoreTestStep::kServerStart, s);
    const auto server_start = Clock::now();
    if (Status s = server.Start(settings, defaults_file); !s.ok())
      return fail(RestoreTestStep::kServerStart, s);
    Log()->info("event=restore_test_server_started id={} pid={} socket={}", manifest.backup_id,
                server.pid(), log::Quote(paths.socket));
    // A stop request ends the server at once, and with it a CHECK TABLE of a big table.
    std::stop_callback kill_on_stop(options.stop, [&server] { server.Signal(SIGKILL); });
    const auto timeout = options.startup_timeout.count() > 0
                             ? options.startup_timeout
                             : std::chrono::seconds(settings.config.mysql.startup_timeout);
    auto session = ConnectScratchServer(server, settings, paths, timeout,
                                        /*read_timeout=*/std::chrono::seconds(3600),  // CHECK TABLE
                                        options.stop);
    if (!session) return fail(RestoreTestStep::kServerStart, session.error());
    report.start_seconds = SecondsSince(server_start);

    // 3. The tables, and the position.
    const auto check_start = Clock::now();
    auto checked = CheckRestoredTables(**session, settings.flavour, options.stop);
    report.check_seconds = SecondsSince(check_start);
    if (!checked) return fail(RestoreTestStep::kTableCheck, checked.error());
    report.schemas = checked->schemas;
    report.tables = checked->tables;
    report.approximate_rows = checked->approximate_rows;
    report.server_gtid = checked->gtid;
    auto gtid = CompareRestoredGtid(checked->gtid, manifest.gtid_position, settings.flavour);
    if (!gtid) return fail(RestoreTestStep::kTableCheck, gtid.error());
    report.gtid_check = *gtid;
    report.ok = true;
  }();

  if (options.keep_scratch) {
    // A clean shutdown, so the kept datadir can be started again by hand.
    server.Stop(std::chrono::seconds(settings.config.mysql.shutdown_grace));
    cleanup.keep = true;
    report.scratch_kept = true;
  }
  server.Kill();
  report.seconds = SecondsSince(start);
  report.tested_at_ms = NowMs();

  // A stop request says nothing about the backup, nor does a store that did not answer or a
  // disk that filled up meanwhile: not recorded, the test is simply not done.
  if (!report.ok && options.stop.stop_requested()) {
    return Error(StatusCode::kCancelled, "restore test of backup {} stopped ({})",
                 manifest.backup_id, report.error);
  }
  const bool not_the_backups =
      failure.code() == StatusCode::kNoSpace ||
      (report.failed_step == RestoreTestStep::kDownload &&
       (failure.code() == StatusCode::kUnavailable || failure.code() == StatusCode::kTimeout));
  if (!report.ok && not_the_backups) {
    return Error(failure.code(), "restore test of backup {} could not run: {}", manifest.backup_id,
                 report.error);
  }
  if (report.ok) {
    Log()->info(
        "event=restore_test_passed id={} tables={} schemas={} approximate_rows={} gtid={} "
        "gtid_check={} restore_s={:.1f} start_s={:.1f} check_s={:.1f} seconds={:.1f}",
        report.backup_id, report.tables, report.schemas, report.approximate_rows,
        log::Quote(report.server_gtid), log::Quote(report.gtid_check), report.restore_seconds,
        report.start_seconds, report.check_seconds, report.seconds);
  } else {
    Log()->error("event=restore_test_failed id={} step={} error={} seconds={:.1f}",
                 report.backup_id, log::Quote(RestoreTestStepName(*report.failed_step)),
                 log::Quote(report.error), report.seconds);
  }
  if (options.record) {
    auto loaded = archive::LoadChecks(*archive.store, archive.key, manifest.backup_id);
    if (!loaded) {
      Log()->warn("event=backup_checks_not_read id={} error={}", manifest.backup_id,
                  log::Quote(loaded.error().message()));
    }
    // A record that did not read (damaged, another key) is replaced: this test is news.
    archive::BackupChecks record = loaded && *loaded ? **loaded : archive::BackupChecks{};
    record.restore_tested_at_ms = report.tested_at_ms;
    record.restore_test_error = report.ok ? "" : report.error;
    record.restore_test_tables = report.tables;
    record.restore_test_rows = report.approximate_rows;
    record.restore_test_seconds = report.seconds;
    if (Status s = archive::WriteChecks(*archive.store, archive.key, manifest.backup_id, record);
        !s.ok()) {
      Log()->warn("event=backup_checks_not_written id={} error={}", manifest.backup_id,
                  log::Quote(s.message()));
    } else {
      report.recorded = true;
    }
  }
  return report;
}

std::optional<std::string> PickBackupDueForRestoreTest(
    const std::vector<archive::BackupEntry>& entries, const std::string& cluster,
    std::chrono::seconds interval, int64_t now_ms) {
  const int64_t since =
      now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(interval).count();
  const archive::BackupEntry* newest_due = nullptr;
  for (const auto& e : entries) {
    if (!e.complete || !e.manifest) continue;
    if (!cluster.empty() && e.manifest->cluster_id != cluster) continue;
    const int64_t tested = e.checks ? e.checks->restore_tested_at_ms : 0;
    const bool recent = tested > 0 && tested > since;
    if (recent && e.checks->restore_test_error.empty()) return std::nullopt;
    if (recent) continue;
    const auto newer = [](const archive::BackupEntry& a, const archive::BackupEntry& b) {
      return a.manifest->finished_at_ms != b.manifest->finished_at_ms
                 ? a.manifest->finished_at_ms > b.manifest->finished_at_ms
                 : a.id > b.id;
    };
    if (!newest_due || newer(e, *newest_due)) newest_due = &e;
  }
  if (!newest_due) return std::nullopt;
  return newest_due->id;
}

Result<std::optional<std::string>> BackupDueForRestoreTest(Archive& archive,
                                                           const std::string& cluster,
                                                           std::chrono::seconds interval) {
  auto entries = archive::ListBackups(*archive.store, archive.key);
  if (!entries) return Error(entries.error());
  return PickBackupDueForRestoreTest(*entries, cluster, interval, NowMs());
}

}  // namespace replboot::daemon
