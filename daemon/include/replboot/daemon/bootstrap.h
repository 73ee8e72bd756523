// `replboot run` as a sequence of steps, from a datadir in any state to a
// supervised mysqld that accepts connections:
//
//   prepare dirs -> decide (table below) -> initialize | clone | as is
//     -> start mysqld -> wait for a real connection -> after_ready -> supervise
//
// clang-format off
// The datadir decision table (DecideBootstrap), the only one: evaluated at every start from
// the role and what is on disk: the datadir, <datadir>.replboot-staging (a clone being received
// or prepared; "committed" once it holds the clone's marker), <datadir>.replboot-old (a datadir
// kept aside by a force-reclone until the new one commits) and the root-password marker.
// SettleDatadir carries out the recovery rows, reading the disk again after each, until a
// final row applies; only then does anything start.
//
//   staging      datadir                        old      role     action
//   -----------  -----------------------------  -------  -------  -------------------------------
//   recovery rows (a start after a kill at any moment converges):
//   committed    absent or empty                any      any      kFinishSwap: staging → datadir
//   committed    data, marker says replace      absent   any      kFinishSwap: datadir → old, staging
//                                                                   → datadir (force-reclone)
//   committed    data, otherwise                any      any      kDiscardStaging (never overwrite data)
//   uncommitted  any                            any      any      kDiscardStaging (killed mid-clone),
//                                                                   unless it holds a durable point
//                                                                   and the row below is kClone:
//                                                                   then kClone resumes it
//                                                                   (clone/src/resume.h)
//   absent       absent or empty                present  any      kRestoreOld (a force-reclone that
//                                                                   never committed)
//   absent       data                           present  any      kDropOld (the new clone is in place)
//   final rows (no staging, no old):
//   absent       root-password marker           absent   any      kFinishInitialize: a first start
//                                                                   ended before root's password was
//                                                                   set; start with the init file again
//   absent       absent or empty                absent   primary  kAskPeers (recover_primary hook):
//                                                                   the peers' answers decide
//                                                                   (primary_recovery.h): clone this
//                                                                   cluster's most advanced peer and
//                                                                   take over its history, or
//                                                                   kInitialize (none in DNS: at once;
//                                                                   else after bootstrap.recover_wait)
//   absent       absent or empty                absent   primary  kInitialize (no hook): install-db /
//                                                                   --initialize-insecure, first start
//                                                                   with the root-password init file
//   absent       absent or empty                absent   replica  kClone (prepare_datadir hook), or
//                                                                   kNoClone (no hook: an error)
//   absent       data                           absent   replica  kClone with force_reclone (the data
//                                                                   is kept aside until the clone
//                                                                   commits), else kUseAsIs
//   absent       data                           absent   primary  kUseAsIs (a primary never clones
//                                                                   over data); with the promotion
//                                                                   marker of a recovery clone, mysqld
//                                                                   starts read-only until after_ready
//                                                                   has finished the takeover
// clang-format on
//
// The seams are BootstrapHooks: on_start (the HTTP server, from the first second),
// prepare_datadir (clone a replica from a peer), after_ready (users, replication,
// the backup server) and supervise (a replica's recovery watcher, which may ask for a
// re-clone within the run: mysqld stops, the kClone force_reclone row runs, mysqld starts).
#ifndef REPLBOOT_DAEMON_BOOTSTRAP_H_
#define REPLBOOT_DAEMON_BOOTSTRAP_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "replboot/base/datadir_files.h"
#include "replboot/base/files.h"
#include "replboot/base/status.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"
#include "replboot/clone/datadir.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/daemon/supervisor.h"

namespace replboot::daemon {

enum class BootstrapAction {
  // Recovery rows: carried out, then the table is read again.
  kFinishSwap,
  kDiscardStaging,
  kRestoreOld,
  kDropOld,
  // Final rows.
  kAskPeers,
  kInitialize,
  kFinishInitialize,
  kClone,
  kNoClone,
  kUseAsIs,
};
std::string_view BootstrapActionName(BootstrapAction action);

// What the table reads from the disk.
struct DatadirFacts {
  clone::DatadirInspection paths;      // the datadir, staging and old dirs
  bool root_password_pending = false;  // kRootPasswordPendingMarker in the datadir
};
Result<DatadirFacts> ReadDatadirFacts(const std::string& datadir);

// The table above. Pure. `can_clone`: the node has a way to fill an empty datadir from its
// peers (a replica: the prepare_datadir hook; the primary: recover_primary).
BootstrapAction DecideBootstrap(conf::Role role, const DatadirFacts& facts, bool can_clone,
                                bool force_reclone = false);

// Reads the facts, carries out recovery rows until a final row applies (logging each
// decision), and returns that final action.
Result<BootstrapAction> SettleDatadir(const std::string& datadir, conf::Role role, bool can_clone,
                                      bool force_reclone = false);

// Name of the marker file, inside the datadir, that says "initialized by replboot,
// root password not set yet". Written right after install-db, removed once mysqld
// accepted the root password, so an interrupted first start is finished later
// instead of leaving root without a password.
inline constexpr const auto& kRootPasswordPendingMarker = datadir_files::kRootPasswordPending;

// The statements of the first start's --init-file: set root@localhost's password,
// create root@'%' with it (as the official image does, so TCP clients can log in),
// and drop the password-less root@127.0.0.1/::1/<host> and anonymous users that
// install-db creates. `hostnames` are the machine names install-db may have used.
// Runs with sql_log_bin=0: the binlog would keep the password in clear text, and
// replicas get these users with the cloned datadir anyway.
std::string RootPasswordInitSql(const std::string& root_password,
                                const std::vector<std::string>& hostnames);

// An --init-file holding a secret: a fresh private directory (0700, kInitDirPrefix) under
// `parent` with one 0600 file, both owned by `uid`:`gid` (mysqld reads it after
// dropping to its user). Removed by Remove() or the destructor, whichever first; one left
// by a killed run is removed at the next start (files::SweepStaleTempDirs).
inline constexpr char kInitDirPrefix[] = "replboot-init.";
class InitFile {
 public:
  static Result<InitFile> Create(const std::string& parent, const std::string& content,
                                 std::optional<uid_t> uid, std::optional<gid_t> gid);
  InitFile(InitFile&& other) noexcept = default;
  InitFile& operator=(InitFile&&) = delete;
  InitFile(const InitFile&) = delete;
  ~InitFile() = default;

  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_.path(); }
  Status Remove();

 private:
  InitFile(files::OwnedTempDir dir, std::string path)
      : dir_(std::move(dir)), path_(std::move(path)) {}
  files::OwnedTempDir dir_;
  std::string path_;
};

// What a step knows about the node. Lives as long as the run.
struct NodeContext {
  const NodeSettings* settings = nullptr;  // resolved once (node_settings.h)
  std::string defaults_file;               // the rendered replboot.cnf
  Supervisor* supervisor = nullptr;
  // Requested by the supervisor on SIGTERM/SIGINT/SIGQUIT: every step gives up at once.
  std::stop_token stop;
  // Set while RunNode re-clones a replica whose datadir holds data (the supervise hook asked
  // for it): prepare_datadir must replace that data, kept aside until the new clone commits.
  bool reclone = false;

  const conf::Config& config() const { return settings->config; }
  const conf::Identity& identity() const { return settings->identity; }
};

struct BootstrapHooks {
  // Runs first, once the config is rendered, before the datadir is looked at: services that
  // must answer while the datadir is initialized or cloned (the HTTP status server). An
  // error stops replboot.
  std::function<Status(NodeContext&)> on_start;
  // Fills the empty datadir of a replica (clone from a peer), which SettleDatadir has left
  // clean. Unset: a replica with an empty datadir is an error. Must give up on ctx.stop.
  std::function<Status(NodeContext&)> prepare_datadir;
  // The primary's empty datadir (kAskPeers): asks the peers and clones this cluster's most
  // advanced one (true: the datadir holds it now), or says to initialize (false). Unset: a
  // primary with an empty datadir initializes. Must give up on ctx.stop.
  std::function<Result<bool>(NodeContext&)> recover_primary;
  // Runs once mysqld accepts connections (replication setup, users, HTTP). An
  // error stops mysqld and replboot exits non-zero.
  std::function<Status(NodeContext&)> after_ready;
  // Runs after after_ready for as long as mysqld runs (a replica's recovery watcher). true:
  // the replica must be re-cloned: RunNode stops mysqld cleanly (Supervisor::
  // StopMainChildForRestart), settles the datadir with force_reclone (the old data kept aside
  // until the new clone commits), and runs prepare_datadir (ctx.reclone set), mysqld,
  // after_ready and this hook again. false: mysqld ended or a stop was requested. Unset:
  // RunNode returns after after_ready.
  std::function<Result<bool>(NodeContext&)> supervise;
};

// The `replboot run` worker: every step from the table down to after_ready.
// Runs on the Supervisor's worker thread; mysqld is handed to the supervisor with
// SetMainChild() as soon as it is spawned.
Status RunNode(NodeContext& ctx, const BootstrapHooks& hooks);

// The mysqld command line: the server binary, the rendered option file first (as
// mysqld requires), --user when replboot runs as root, and the init file if any.
std::vector<std::string> MysqldArgv(const std::string& server_binary,
                                    const std::string& defaults_file,
                                    const std::optional<std::string>& user,
                                    const std::optional<std::string>& init_file);

// The initialization command of the flavour (never carries a password).
std::vector<std::string> InitializeArgv(Flavour flavour, const conf::Config& config,
                                        const std::string& server_binary,
                                        const std::string& defaults_file,
                                        const std::optional<std::string>& user);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_BOOTSTRAP_H_
