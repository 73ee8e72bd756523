// `replboot run` as a sequence of steps, from a datadir in any state to a
// supervised mysqld that accepts connections:
//
//   prepare dirs -> decide (table below) -> initialize | clone | as is
//     -> start mysqld -> wait for a real connection -> after_ready -> supervise
//
// Decision table (DecideBootstrap), from the role and what is in the datadir:
//
//   role     datadir                          action
//   -------  -------------------------------  ---------------------------------------------
//   primary  empty (or missing)               kInitialize: install-db / --initialize-insecure,
//                                             then first start with the root-password init file
//   any      initialized, root password       kFinishInitialize: a previous first start ended
//            still pending (marker file)      before the password was set; start with the
//                                             init file again (never re-initialize)
//   replica  empty, clone hook present        kClone: prepare_datadir fills it from a peer
//   replica  empty, no clone hook             kNoClone: error "datadir is empty and cloning
//                                             is not available"
//   any      anything else                    kUseAsIs: started as it is, never re-initialized
//
// The seams are BootstrapHooks: on_start (the HTTP server, from the first second),
// prepare_datadir (clone a replica from a peer) and after_ready (users, replication,
// the backup server).
#ifndef REPLBOOT_DAEMON_BOOTSTRAP_H_
#define REPLBOOT_DAEMON_BOOTSTRAP_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"
#include "replboot/daemon/supervisor.h"

namespace replboot::daemon {

enum class DatadirState {
  kEmpty,                // missing or no entries
  kRootPasswordPending,  // initialized by us, root password not yet set (marker present)
  kInitialized,          // anything else: a datadir someone made, used as is
};

enum class BootstrapAction { kInitialize, kFinishInitialize, kClone, kNoClone, kUseAsIs };
std::string_view BootstrapActionName(BootstrapAction action);

// The table above. Pure.
BootstrapAction DecideBootstrap(conf::Role role, DatadirState state, bool can_clone);

// Inspects `datadir` (a missing dir is kEmpty).
Result<DatadirState> InspectDatadir(const std::string& datadir);

// Name of the marker file, inside the datadir, that says "initialized by replboot,
// root password not set yet". Written right after install-db, removed once mysqld
// accepted the root password, so an interrupted first start is finished later
// instead of leaving root without a password.
inline constexpr char kRootPasswordPendingMarker[] = "replboot-root-password.pending";

// The statements of the first start's --init-file: set root@localhost's password,
// create root@'%' with it (as the official image does, so TCP clients can log in),
// and drop the password-less root@127.0.0.1/::1/<host> and anonymous users that
// install-db creates. `hostnames` are the machine names install-db may have used.
// Runs with sql_log_bin=0: the binlog would keep the password in clear text, and
// replicas get these users with the cloned datadir anyway.
std::string RootPasswordInitSql(const std::string& root_password,
                                const std::vector<std::string>& hostnames);

// An --init-file holding a secret: a fresh private directory (0700) under
// `parent` with one 0600 file, both owned by `uid`:`gid` (mysqld reads it after
// dropping to its user). Removed by Remove() or the destructor, whichever first.
class InitFile {
 public:
  static Result<InitFile> Create(const std::string& parent, const std::string& content,
                                 std::optional<uid_t> uid, std::optional<gid_t> gid);
  InitFile(InitFile&& other) noexcept;
  InitFile& operator=(InitFile&&) = delete;
  InitFile(const InitFile&) = delete;
  ~InitFile();

  const std::string& path() const { return path_; }
  const std::string& dir() const { return dir_; }
  Status Remove();

 private:
  InitFile(std::string dir, std::string path) : dir_(std::move(dir)), path_(std::move(path)) {}
  std::string dir_;
  std::string path_;
};

// What a step knows about the node. Lives as long as the run.
struct NodeContext {
  const conf::LoadedConfig* loaded = nullptr;
  conf::Identity identity;
  Flavour flavour = Flavour::kMariaDB;
  std::string root_password;  // may be empty: an existing datadir without one
  std::string defaults_file;  // the rendered replboot.cnf
  Supervisor* supervisor = nullptr;

  const conf::Config& config() const { return loaded->config; }
};

struct BootstrapHooks {
  // Runs first, once the config is rendered, before the datadir is looked at: services that
  // must answer while the datadir is initialized or cloned (the HTTP status server). An
  // error stops replboot.
  std::function<Status(NodeContext&)> on_start;
  // Fills the empty datadir of a replica (clone from a peer). Unset: a replica
  // with an empty datadir is an error. Must give up when supervisor->Stopping().
  std::function<Status(NodeContext&)> prepare_datadir;
  // Runs once mysqld accepts connections (replication setup, users, HTTP). An
  // error stops mysqld and replboot exits non-zero.
  std::function<Status(NodeContext&)> after_ready;
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
