#include "replboot/daemon/bootstrap.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <system_error>
#include <thread>

#include "replboot/base/files.h"
#include "replboot/base/log.h"
#include "replboot/base/process.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/conf/render.h"
#include "replboot/daemon/primary_recovery.h"
#include "replboot/db/client.h"

namespace replboot::daemon {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir + (dir.ends_with('/') ? "" : "/") + name;
}

// mkdir -p with `mode` for the directories it creates, then hands `path` itself
// (not its parents, which may be a mounted volume's root) to the mysqld user.
Status EnsureDir(const std::string& path, mode_t mode, const std::optional<OsUser>& owner,
                 const char* what) {
  std::error_code ec;
  // An existing directory keeps its mode (it may be a volume replboot does not own).
  const bool existed = fs::exists(path, ec);
  fs::create_directories(path, ec);
  if (ec)
    return Status(StatusCode::kIOError, fmt::format("create {} {}: {}", what, path, ec.message()));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return ErrnoStatus(errno, fmt::format("stat {} {}", what, path));
  if (!S_ISDIR(st.st_mode)) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("{} {} is not a directory", what, path));
  }
  if (owner && (st.st_uid != owner->uid || st.st_gid != owner->gid)) {
    if (::chown(path.c_str(), owner->uid, owner->gid) != 0) {
      return ErrnoStatus(errno, fmt::format("chown {} {} to {}", what, path, owner->name));
    }
  }
  if (!existed && (st.st_mode & 07777) != mode && ::chmod(path.c_str(), mode) != 0) {
    return ErrnoStatus(errno, fmt::format("chmod {} {}", what, path));
  }
  return Status::Ok();
}

// Removes what a failed initialization left in `datadir` (which was empty before),
// so the next attempt starts from an empty datadir again instead of using a
// half-made one as is. The directory itself stays: it is often a mount point.
Status ClearDir(const std::string& datadir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(datadir, ec)) {
    REPLBOOT_RETURN_STATUS_IF_ERROR(files::RemoveAll(entry.path().string()));
  }
  if (ec)
    return Status(StatusCode::kIOError, fmt::format("list datadir {}: {}", datadir, ec.message()));
  return Status::Ok();
}

std::vector<std::string> MachineHostnames() {
  std::vector<std::string> names;
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) == 0 && buf[0] != '\0') {
    // install-db stores LOWER(@@hostname).
    std::string name(buf);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    names.push_back(name);
  }
  return names;
}

// Waits for every process of group `pgid` to end (the supervisor reaps them as
// orphans), sending SIGTERM, then SIGKILL after a few seconds.
Status EndProcessGroup(pid_t pgid, const char* what) {
  constexpr auto kTermGrace = std::chrono::seconds(10);
  constexpr auto kKillWait = std::chrono::seconds(5);
  if (::kill(-pgid, 0) != 0) return Status::Ok();
  ::kill(-pgid, SIGTERM);
  auto deadline = steady_clock::now() + kTermGrace;
  bool killed = false;
  while (::kill(-pgid, 0) == 0) {
    if (steady_clock::now() >= deadline) {
      if (killed) {
        return Status(StatusCode::kInternal,
                      fmt::format("{}: processes of group {} survive SIGKILL", what, pgid));
      }
      log::Get("daemon")->warn("event=step_group_killed step={} pgid={}", what, pgid);
      ::kill(-pgid, SIGKILL);
      killed = true;
      deadline = steady_clock::now() + kKillWait;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  return Status::Ok();
}

// The primary's datadir carries the cluster id (clone/cluster_id.h): made when it is
// initialized, and by the first start of a datadir from before cluster ids; a clone brings
// its donor's.
Status EnsureClusterId(const std::string& datadir, const std::optional<OsUser>& owner,
                       bool initialized) {
  auto existing = clone::ReadClusterId(datadir);
  if (!existing) return existing.error().WithContext("cluster id");
  if (existing->has_value()) {
    log::Get("daemon")->info("event=cluster_id id={}", **existing);
    return Status::Ok();
  }
  auto id = clone::NewClusterId();
  if (!id) return id.error();
  std::optional<clone::FileOwner> file_owner;
  if (owner) file_owner = clone::FileOwner{owner->uid, owner->gid};
  REPLBOOT_RETURN_STATUS_IF_ERROR(clone::WriteClusterId(datadir, *id, file_owner));
  log::Get("daemon")->info("event=cluster_id_created id={} reason={}", *id,
                           initialized ? "initialized" : "datadir_without_id");
  return Status::Ok();
}

// Runs a bootstrap step's command to completion with output passed through, so
// install-db's messages reach the container log. A stop request ends it.
Status RunStep(Supervisor& supervisor, const std::vector<std::string>& argv, const char* what) {
  auto log = log::Get("daemon");
  process::SpawnOptions options;
  options.argv = argv;
  options.env = process::ChildEnvironment();
  options.new_process_group = true;  // see Supervisor::SetStepChild
  options.parent_death_signal = SIGKILL;  // a step is of no use once replboot is gone
  auto child = process::Spawn(options);
  if (!child) return child.error().WithContext(what);
  supervisor.SetStepChild(child->pid);
  log->info("event=step_started step={} pid={} binary={}", what, child->pid, log::Quote(argv[0]));
  auto status = process::Wait(child->pid);
  supervisor.SetStepChild(0);
  if (!status) return status.error().WithContext(what);
  if (supervisor.Stopping() || !status->ok()) {
    // What the step started may outlive it (install-db's mariadbd --bootstrap);
    // it must be gone before the datadir is cleared or replboot exits.
    REPLBOOT_RETURN_STATUS_IF_ERROR(EndProcessGroup(child->pid, what));
  }
  if (supervisor.Stopping()) {
    return Status(StatusCode::kCancelled,
                  fmt::format("{} interrupted by a stop request ({})", what, status->ToString()));
  }
  if (!status->ok()) {
    return Status(StatusCode::kIOError,
                  fmt::format("{} ({}) failed: {}", what, argv[0], status->ToString()));
  }
  log->info("event=step_done step={}", what);
  return Status::Ok();
}

// Polls with a real client connection until one succeeds, mysqld ends, a stop
// is requested, or the deadline passes.
Status WaitUntilReady(NodeContext& ctx) {
  const auto& config = ctx.config();
  Supervisor& sup = *ctx.supervisor;
  auto start = steady_clock::now();
  auto deadline = start + std::chrono::seconds(config.mysql.startup_timeout);
  db::ConnectOptions options;
  options.socket = config.mysql.socket;
  options.user = "root";
  options.password = ctx.settings->root_password;
  options.connect_timeout = std::chrono::seconds(2);
  options.read_timeout = std::chrono::seconds(5);
  std::string last_error = "no attempt yet";
  int attempts = 0;
  for (;;) {
    if (auto exit = sup.MainExit()) {
      return Status(
          StatusCode::kUnavailable,
          fmt::format("mysqld exited before accepting connections on socket {}: {} (last connect "
                      "error: {})",
                      config.mysql.socket, exit->ToString(), last_error));
    }
    if (sup.Stopping()) {
      return Status(StatusCode::kCancelled,
                    "stop requested while waiting for mysqld to accept connections");
    }
    ++attempts;
    auto session = db::Connect(options);
    if (session) {
      auto rows = (*session)->Query("SELECT 1");
      if (rows) {
        log::Get("daemon")->info(
            "event=mysqld_ready socket={} attempts={} elapsed_ms={}",
            log::Quote(config.mysql.socket), attempts,
            std::chrono::duration_cast<milliseconds>(steady_clock::now() - start).count());
        return Status::Ok();
      }
      last_error = rows.error().message();
    } else {
      last_error = session.error().message();
    }
    if (steady_clock::now() >= deadline) {
      return Status(
          StatusCode::kTimeout,
          fmt::format("mysqld did not accept a connection as root on socket {} within {}s "
                      "(mysql.startup_timeout); last error: {}",
                      config.mysql.socket, config.mysql.startup_timeout, last_error));
    }
    sup.SleepUnlessDone(milliseconds(250));
  }
}

}  // namespace

std::string_view BootstrapActionName(BootstrapAction action) {
  switch (action) {
    case BootstrapAction::kFinishSwap:
      return "finish_swap";
    case BootstrapAction::kDiscardStaging:
      return "discard_staging";
    case BootstrapAction::kRestoreOld:
      return "restore_old";
    case BootstrapAction::kDropOld:
      return "drop_old";
    case BootstrapAction::kAskPeers:
      return "ask_peers";
    case BootstrapAction::kInitialize:
      return "initialize";
    case BootstrapAction::kFinishInitialize:
      return "finish_initialize";
    case BootstrapAction::kClone:
      return "clone";
    case BootstrapAction::kNoClone:
      return "no_clone";
    case BootstrapAction::kUseAsIs:
      return "use_as_is";
  }
  return "unknown";
}

BootstrapAction DecideBootstrap(conf::Role role, const DatadirFacts& facts, bool can_clone,
                                bool force_reclone) {
  using clone::DirState;
  const auto& p = facts.paths;
  const bool datadir_void = p.datadir == DirState::kAbsent || p.datadir == DirState::kEmpty;
  // Recovery rows.
  if (p.staging == DirState::kCommitted) {
    if (datadir_void) return BootstrapAction::kFinishSwap;
    if (p.staging_replaces && !p.old_present) return BootstrapAction::kFinishSwap;
    return BootstrapAction::kDiscardStaging;
  }
  // An interrupted clone with a durable point is kept when this start clones again (a
  // replica with no data, or a re-clone): the clone resumes it, or discards it itself when
  // the donor no longer holds its run. Anything else is garbage.
  const bool resumes = p.staging_resumable && !p.old_present && role == conf::Role::kReplica &&
                       can_clone && (datadir_void || force_reclone) &&
                       !facts.root_password_pending;
  if (p.staging != DirState::kAbsent && !resumes) return BootstrapAction::kDiscardStaging;
  if (p.old_present) return datadir_void ? BootstrapAction::kRestoreOld : BootstrapAction::kDropOld;
  // Final rows.
  if (facts.root_password_pending) return BootstrapAction::kFinishInitialize;
  if (role == conf::Role::kPrimary) {
    if (!datadir_void) return BootstrapAction::kUseAsIs;
    return can_clone ? BootstrapAction::kAskPeers : BootstrapAction::kInitialize;
  }
  if (datadir_void || force_reclone)
    return can_clone ? BootstrapAction::kClone : BootstrapAction::kNoClone;
  // A committed clone, or data without a marker: the node's own, never overwritten.
  return BootstrapAction::kUseAsIs;
}

Result<DatadirFacts> ReadDatadirFacts(const std::string& datadir) {
  DatadirFacts facts;
  auto paths = clone::InspectDatadir(datadir);
  if (!paths) return Error(paths.error().WithContext("inspect datadir"));
  facts.paths = *paths;
  struct stat st;
  std::string marker = JoinPath(datadir, kRootPasswordPendingMarker);
  if (::stat(marker.c_str(), &st) == 0) {
    facts.root_password_pending = true;
  } else if (errno != ENOENT && errno != ENOTDIR) {
    return Error(ErrnoStatus(errno, "stat " + marker));
  }
  return facts;
}

Result<BootstrapAction> SettleDatadir(const std::string& datadir, conf::Role role, bool can_clone,
                                      bool force_reclone) {
  auto log = log::Get("daemon");
  // Each recovery row removes the condition that chose it, so a few rounds always settle.
  for (int round = 0; round < 8; ++round) {
    auto facts = ReadDatadirFacts(datadir);
    if (!facts) return Error(facts.error());
    BootstrapAction action = DecideBootstrap(role, *facts, can_clone, force_reclone);
    log->info(
        "event=bootstrap_decision action={} role={} datadir={} datadir_state={} staging={} "
        "old={} root_password_pending={}{}",
        BootstrapActionName(action), conf::RoleName(role), log::Quote(datadir),
        clone::DirStateName(facts->paths.datadir), clone::DirStateName(facts->paths.staging),
        facts->paths.old_present, facts->root_password_pending,
        facts->paths.staging_resumable && action == BootstrapAction::kClone
            ? " staging_resumable=true"
            : "");
    Status s;
    switch (action) {
      case BootstrapAction::kFinishSwap:
        s = clone::FinishSwap(datadir);
        break;
      case BootstrapAction::kDiscardStaging:
        s = clone::DiscardStaging(datadir);
        break;
      case BootstrapAction::kRestoreOld:
        s = clone::RestoreOld(datadir);
        break;
      case BootstrapAction::kDropOld:
        s = clone::DropOld(datadir);
        break;
      default:
        return action;
    }
    if (!s.ok()) {
      return Error(
          s.WithContext(fmt::format("recovering {} ({})", datadir, BootstrapActionName(action))));
    }
  }
  return Error(StatusCode::kInternal, "recovering {}: no stable state after 8 steps", datadir);
}

std::string RootPasswordInitSql(const std::string& root_password,
                                const std::vector<std::string>& hostnames) {
  const std::string pw = db::QuoteLiteral(root_password);
  std::string sql;
  // One statement per line: mysqld reads an init file line by line.
  // Not binlogged: the binlog would keep the password in clear text (a replica
  // gets these users with the cloned datadir, not by replaying them).
  sql += "SET SESSION sql_log_bin=0;\n";
  // mysqld reads this file with the server's sql_mode: QuoteLiteral needs backslash escapes.
  sql += std::string(db::kBackslashEscapesSql) + ";\n";
  // And with the server's character set (latin1 by default): the password's bytes are UTF-8,
  // as on every replboot session.
  sql += "SET NAMES utf8mb4;\n";
  sql += "ALTER USER 'root'@'localhost' IDENTIFIED BY " + pw + ";\n";
  sql += "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY " + pw + ";\n";
  sql += "ALTER USER 'root'@'%' IDENTIFIED BY " + pw + ";\n";
  sql += "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;\n";
  std::vector<std::string> drop = {"'root'@'127.0.0.1'", "'root'@'::1'", "''@'localhost'"};
  for (const auto& host : hostnames) {
    if (host.empty() || host == "localhost") continue;
    drop.push_back("'root'@" + db::QuoteLiteral(host));
    drop.push_back("''@" + db::QuoteLiteral(host));
  }
  std::string list;
  for (const auto& user : drop) list += (list.empty() ? "" : ", ") + user;
  sql += "DROP USER IF EXISTS " + list + ";\n";
  return sql;
}

Result<InitFile> InitFile::Create(const std::string& parent, const std::string& content,
                                  std::optional<uid_t> uid, std::optional<gid_t> gid) {
  // Random name, 0700, locked while this run lives: nobody else can even look up the file
  // inside, and a later start removes it only once this run is gone.
  auto dir = files::OwnedTempDir::Create(parent, kInitDirPrefix);
  if (!dir) return Error(dir.error().WithContext("create private dir"));
  std::string path = JoinPath(dir->path(), "init.sql");
  // Written while the directory is still root's alone, handed to mysqld's user after.
  REPLBOOT_RETURN_IF_ERROR(files::WriteFileAtomic(path, content, 0600));
  const gid_t group = gid.value_or(static_cast<gid_t>(-1));
  if (uid && ::chown(path.c_str(), *uid, group) != 0) {
    return Error(ErrnoStatus(errno, "chown " + path));
  }
  if (uid && ::chown(dir->path().c_str(), *uid, group) != 0) {
    return Error(ErrnoStatus(errno, "chown " + dir->path()));
  }
  return InitFile(std::move(*dir), std::move(path));
}

Status InitFile::Remove() {
  REPLBOOT_RETURN_STATUS_IF_ERROR(dir_.Remove());
  path_.clear();
  return Status::Ok();
}

std::vector<std::string> MysqldArgv(const std::string& server_binary,
                                    const std::string& defaults_file,
                                    const std::optional<std::string>& user,
                                    const std::optional<std::string>& init_file) {
  std::vector<std::string> argv = {server_binary, "--defaults-file=" + defaults_file};
  if (user) argv.push_back("--user=" + *user);
  if (init_file) argv.push_back("--init-file=" + *init_file);
  return argv;
}

std::vector<std::string> InitializeArgv(Flavour flavour, const conf::Config& config,
                                        const std::string& server_binary,
                                        const std::string& defaults_file,
                                        const std::optional<std::string>& user) {
  std::vector<std::string> argv;
  if (flavour == Flavour::kMariaDB) {
    // --no-defaults: install-db only creates the system tables; the rendered
    // options (binlog, read_only) belong to the real start.
    argv = {config.mysql.install_db, "--no-defaults", "--datadir=" + config.mysql.datadir,
            "--auth-root-authentication-method=normal", "--skip-test-db"};
    if (user) argv.push_back("--user=" + *user);
    // install-db finds mariadbd next to itself or in PATH; a configured server
    // binary must be the one that creates the tables.
    if (!config.mysql.mysqld.empty()) argv.push_back("--mysqld=" + config.mysql.mysqld);
    // mariadbd deletes stale #sql* files in its tmpdir when it starts, so servers sharing
    // one tmpdir (a local cluster on one host) can delete each other's bootstrap tables:
    // the bootstrap uses the tmpdir the real server will use.
    if (auto tmpdir = config.mysql.options.find("tmpdir"); tmpdir != config.mysql.options.end()) {
      argv.push_back("--tmpdir=" + tmpdir->second);
    }
  } else {
    // MySQL initializes with the same options it will run with (page size,
    // lower_case_table_names must not change later).
    argv = {server_binary, "--defaults-file=" + defaults_file, "--initialize-insecure",
            "--datadir=" + config.mysql.datadir};
    if (user) argv.push_back("--user=" + *user);
  }
  return argv;
}

namespace {

// The table's final row and what follows it: initialize, clone or use the datadir as is,
// start mysqld, wait for a real connection, after_ready. `force_reclone`: a replica's data is
// replaced by a new clone (kept aside until it commits).
Status StartFromDatadir(NodeContext& ctx, const BootstrapHooks& hooks,
                        const std::string& socket_dir, const std::optional<std::string>& user_flag,
                        bool force_reclone) {
  auto log = log::Get("daemon");
  const NodeSettings& settings = *ctx.settings;
  const conf::Config& config = ctx.config();
  const conf::Identity& identity = ctx.identity();
  Supervisor& sup = *ctx.supervisor;
  const std::string& server = settings.server_binary;
  const std::optional<OsUser>& os_user = settings.mysql_user;
  const bool can_fill = identity.role == conf::Role::kPrimary
                            ? static_cast<bool>(hooks.recover_primary)
                            : static_cast<bool>(hooks.prepare_datadir);
  auto action = SettleDatadir(config.mysql.datadir, identity.role, can_fill, force_reclone);
  if (!action) return action.error();
  ctx.reclone = force_reclone && *action == BootstrapAction::kClone;
  if (*action == BootstrapAction::kAskPeers) {
    auto cloned = hooks.recover_primary(ctx);
    if (!cloned) return cloned.error().WithContext("primary recovery");
    *action = *cloned ? BootstrapAction::kUseAsIs : BootstrapAction::kInitialize;
    log->info("event=bootstrap_decision action={} role=primary datadir={} after=ask_peers",
              BootstrapActionName(*action), log::Quote(config.mysql.datadir));
  }

  const std::string marker = JoinPath(config.mysql.datadir, kRootPasswordPendingMarker);
  bool set_root_password = false;
  switch (*action) {
    case BootstrapAction::kInitialize: {
      if (settings.root_password.empty()) {
        return Status(
            StatusCode::kInvalidArgument,
            fmt::format("datadir {} is empty and must be initialized, but no root password is set "
                        "(mysql.root_password_file, or REPLBOOT_MYSQL_ROOT_PASSWORD)",
                        config.mysql.datadir));
      }
      Status s = RunStep(
          sup, InitializeArgv(settings.flavour, config, server, ctx.defaults_file, user_flag),
          "initialize_datadir");
      if (!s.ok()) {
        Status cleared = ClearDir(config.mysql.datadir);
        if (!cleared.ok())
          log->error("event=datadir_clear_failed error={}", log::Quote(cleared.ToString()));
        return s;
      }
      // Before the first start: if it is interrupted, the next run sets the password.
      REPLBOOT_RETURN_STATUS_IF_ERROR(
          files::WriteFileAtomic(marker, "root password not set yet\n", 0600));
      set_root_password = true;
      break;
    }
    case BootstrapAction::kFinishInitialize:
      if (settings.root_password.empty()) {
        return Status(
            StatusCode::kInvalidArgument,
            fmt::format(
                "datadir {} was initialized but root has no password yet, and no root "
                "password is set (mysql.root_password_file, or REPLBOOT_MYSQL_ROOT_PASSWORD)",
                config.mysql.datadir));
      }
      set_root_password = true;
      break;
    case BootstrapAction::kClone:
      // The clone hands its files to mysqld's user itself (CloneOptions::owner).
      REPLBOOT_RETURN_STATUS_IF_ERROR(hooks.prepare_datadir(ctx));
      break;
    case BootstrapAction::kNoClone:
      return Status(
          StatusCode::kUnavailable,
          fmt::format(
              "datadir {} is empty and cloning is not available (replica {} needs a copy of a "
              "peer's data)",
              config.mysql.datadir, identity.hostname));
    case BootstrapAction::kUseAsIs:
      break;
    default:
      return Status(StatusCode::kInternal,
                    fmt::format("datadir {} not settled: {}", config.mysql.datadir,
                                BootstrapActionName(*action)));
  }

  if (identity.role == conf::Role::kPrimary) {
    REPLBOOT_RETURN_STATUS_IF_ERROR(
        EnsureClusterId(config.mysql.datadir, os_user, *action == BootstrapAction::kInitialize));
  }

  std::optional<InitFile> init_file;
  if (set_root_password) {
    auto created = InitFile::Create(
        socket_dir, RootPasswordInitSql(settings.root_password, MachineHostnames()),
        os_user ? std::optional<uid_t>(os_user->uid) : std::nullopt,
        os_user ? std::optional<gid_t>(os_user->gid) : std::nullopt);
    if (!created) return created.error().WithContext("root password init file");
    init_file.emplace(std::move(*created));
  }
  // A recovered datadir takes over its donor's history before any client connects.
  const bool promoting =
      identity.role == conf::Role::kPrimary && PromotionPending(config.mysql.datadir);
  if (promoting && !init_file) {
    auto sql = PromotionInitSql(settings);
    if (!sql) return sql.error().WithContext("promotion init file");
    auto created = InitFile::Create(
        socket_dir, sql->value_or(""), os_user ? std::optional<uid_t>(os_user->uid) : std::nullopt,
        os_user ? std::optional<gid_t>(os_user->gid) : std::nullopt);
    if (!created) return created.error().WithContext("promotion init file");
    init_file.emplace(std::move(*created));
  }

  if (ctx.stop.stop_requested())
    return Status(StatusCode::kCancelled, "stop requested before mysqld started");
  process::SpawnOptions options;
  // Started as mysqld's user rather than with --user: a process that changes its user
  // loses its parent-death signal, and that signal is what ends mysqld cleanly when replboot
  // is killed outside a container (no PID namespace to take it down with PID 1), so that
  // the next start does not find the datadir locked by an orphan.
  options.argv =
      MysqldArgv(server, ctx.defaults_file, std::nullopt,
                 init_file ? std::optional<std::string>(init_file->path()) : std::nullopt);
  // Not writable before FinishPromotion (after_ready) has removed the marker: a restart
  // before that runs the init file again, which must find nothing else in the binlog.
  if (promoting) options.argv.push_back("--read-only=ON");
  options.env = process::ChildEnvironment();
  options.parent_death_signal = SIGTERM;
  if (os_user) options.run_as = process::SpawnOptions::User{os_user->uid, os_user->gid};
  auto child = process::Spawn(options);
  if (!child) return child.error().WithContext("start mysqld");
  sup.SetMainChild(child->pid);
  log->info(
      "event=mysqld_started pid={} binary={} defaults_file={} init_file={} "
      "read_only_until_promoted={}",
      child->pid, log::Quote(server), log::Quote(ctx.defaults_file), init_file.has_value(),
      promoting);

  Status ready = WaitUntilReady(ctx);
  if (init_file) {
    // It has been read (or mysqld is gone): the secret must not outlive this point.
    Status removed = init_file->Remove();
    if (!removed.ok())
      log->error("event=init_file_remove_failed error={}", log::Quote(removed.ToString()));
  }
  REPLBOOT_RETURN_STATUS_IF_ERROR(ready);
  if (set_root_password) {
    REPLBOOT_RETURN_STATUS_IF_ERROR(files::RemoveAll(marker));
    REPLBOOT_RETURN_STATUS_IF_ERROR(files::FsyncDir(config.mysql.datadir));
    log->info("event=root_password_set users=\"root@localhost root@%\"");
  }

  if (hooks.after_ready) {
    REPLBOOT_RETURN_STATUS_IF_ERROR(hooks.after_ready(ctx));
    log->info("event=after_ready_done");
  }
  return Status::Ok();
}

}  // namespace

Status RunNode(NodeContext& ctx, const BootstrapHooks& hooks) {
  auto log = log::Get("daemon");
  const NodeSettings& settings = *ctx.settings;
  const conf::Config& config = ctx.config();
  const conf::Identity& identity = ctx.identity();
  Supervisor& sup = *ctx.supervisor;

  auto rendered = conf::RenderMysqldConfig(config, identity, settings.flavour);
  if (!rendered) return rendered.error().WithContext("render mysqld config");
  auto defaults_file = conf::WriteMysqldConfig(config.mysql.config_dir, *rendered);
  if (!defaults_file) return defaults_file.error().WithContext("write mysqld config");
  ctx.defaults_file = *defaults_file;
  log->info("event=config_rendered path={} flavour={} role={} server_id={}",
            log::Quote(ctx.defaults_file), FlavourName(settings.flavour),
            conf::RoleName(identity.role), identity.server_id);
  if (hooks.on_start) REPLBOOT_RETURN_STATUS_IF_ERROR(hooks.on_start(ctx));

  const std::optional<OsUser>& os_user = settings.mysql_user;
  std::optional<std::string> user_flag;
  if (os_user) user_flag = os_user->name;
  REPLBOOT_RETURN_STATUS_IF_ERROR(EnsureDir(config.mysql.datadir, 0750, os_user, "datadir"));
  const std::string socket_dir = files::ParentDir(config.mysql.socket);
  REPLBOOT_RETURN_STATUS_IF_ERROR(EnsureDir(socket_dir, 0755, os_user, "socket directory"));

  // A killed run leaves its init file (the root password) behind: gone before anything else.
  if (auto swept = files::SweepStaleTempDirs(socket_dir, kInitDirPrefix); !swept) {
    log->warn("event=stale_init_files_sweep_failed error={}", log::Quote(swept.error().ToString()));
  } else if (*swept > 0) {
    log->info("event=stale_init_files_removed dir={} count={}", log::Quote(socket_dir), *swept);
  }

  bool force_reclone = false;
  for (;;) {
    Status started = StartFromDatadir(ctx, hooks, socket_dir, user_flag, force_reclone);
    if (force_reclone && started.code() == StatusCode::kNoSpace) {
      // A re-clone that does not fit (the clone's pre-flight, or a full disk while streaming
      // or preparing) never moved the old datadir, and its staging dir is gone: the replica
      // goes on with the data it has rather than exit and try again at every restart. The
      // watcher reports it and holds the re-clone until more space is free.
      log->error("event=reclone_refused datadir={} error={}", log::Quote(config.mysql.datadir),
                 log::Quote(started.message()));
      force_reclone = false;
      continue;
    }
    REPLBOOT_RETURN_STATUS_IF_ERROR(started);
    if (!hooks.supervise) return Status::Ok();
    auto reclone = hooks.supervise(ctx);
    if (!reclone) return reclone.error();
    if (!*reclone) return Status::Ok();  // mysqld ended, or a stop was requested
    // A replica that can no longer catch up: mysqld stops cleanly, the datadir is re-cloned
    // with the old one kept aside until the new one commits (the table's force-reclone rows
    // recover a kill at any moment), then mysqld and replication start again.
    log->info("event=reclone_stopping_mysqld datadir={}", log::Quote(config.mysql.datadir));
    REPLBOOT_RETURN_STATUS_IF_ERROR(sup.StopMainChildForRestart());
    force_reclone = true;
  }
}

}  // namespace replboot::daemon
