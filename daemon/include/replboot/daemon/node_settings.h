// The one place that turns configuration into things. Everything replboot derives from
// conf::Config is derived here, once per process: the node's identity, the flavour (the
// server binary's --version runs once), each secret (its file read once), the TLS contexts
// (certificates loaded once), typed endpoints, and the typed options each library takes.
// The libraries (clone/, discovery/, replication/, api/) never see conf::Config; `replboot
// run` and the tool subcommands (clone, serve-backup, peers, replication-agent) start here.
#ifndef REPLBOOT_DAEMON_NODE_SETTINGS_H_
#define REPLBOOT_DAEMON_NODE_SETTINGS_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "replboot/archive/pitr.h"
#include "replboot/base/status.h"
#include "replboot/clone/backup_server.h"
#include "replboot/clone/clone.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"
#include "replboot/db/client.h"
#include "replboot/discovery/ares_resolver.h"
#include "replboot/discovery/peers.h"
#include "replboot/discovery/prober.h"

namespace replboot::daemon {

// What a command needs resolved; what it does not need is not read (and cannot fail it).
struct SettingsNeeds {
  bool identity = true;  // the hostname must be <statefulset>-<ordinal>
  bool flavour = true;   // node.flavour, or the server binary's --version when "auto"
  bool mysql_user = true;  // mysql.user must exist when replboot runs as root
};

// The OS user mysqld runs as.
struct OsUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct NodeSettings {
  conf::Config config;
  conf::Identity identity;  // when needs.identity
  Flavour flavour = Flavour::kMariaDB;
  std::string server_binary;
  // mysql.user, looked up once when replboot runs as root (it must then hand files over and
  // pass --user); nullopt when unprivileged: mysqld runs as replboot's own user.
  std::optional<OsUser> mysql_user;
  std::string root_password;    // "" when not configured
  // restore.target, parsed (restore_target.h): what a primary bootstrapping from the store
  // restores.
  archive::RestoreTarget restore_target;
  std::string backup_secret;    // "" when not configured: this node neither serves nor probes
  std::string backup_password;  // the backup account's password
  // backup.tls: one context per side, loaded once; null when backup.tls is off.
  std::shared_ptr<const clone::net::TlsContext> tls_client;
  std::shared_ptr<const clone::net::TlsContext> tls_server;
  // replication.tls*: TLS of every SQL connection to a peer (replboot's own, and the
  // replica's IO thread through CHANGE MASTER). Its files were found readable; disabled when
  // replication.tls is off.
  db::TlsOptions peer_tls;
};

// kInvalidArgument for a bad hostname, flavour, secret file or TLS file, naming it. With
// replication.tls and no replication.tls_ca it says once, in the log, that peers are not
// verified.
Result<NodeSettings> ResolveSettings(const conf::Config& config, SettingsNeeds needs = {});

// The backup endpoint `text` ("host[:port]", "[v6]:port") names, resolved once (an address
// or a name the system resolver knows); the port defaults to backup.port.
Result<clone::Endpoint> BackupEndpoint(const std::string& text, uint16_t default_port);

// The backup server's listening endpoint from backup.listen ("0.0.0.0:3307"; port 0 picks one).
Result<clone::Endpoint> ListenEndpoint(const std::string& text, const char* key);

// kInvalidArgument without backup.secret: peers could not authenticate each other.
Result<clone::CloneOptions> CloneOptionsFor(const NodeSettings& settings);
Result<clone::ServerOptions> ServerOptionsFor(const NodeSettings& settings);

// backup.parallel's default (0): half of `usable_cpus` (process::UsableCpus), at least 1. The
// donor is a live server: its clients keep the other half, and the stream's own thread (tag
// and send every byte) needs a CPU beside the tool's copy threads.
int64_t DefaultBackupParallel(int usable_cpus);

// Discovery of this node's donors (dns.*, cluster.service, backup.port).
Result<discovery::DiscoverOptions> DiscoverOptionsFor(const NodeSettings& settings);
discovery::AresOptions AresOptionsFor(const conf::Config& config);

// How discovery probes a candidate: the authenticated hello when backup.secret is set (null
// otherwise: the caller falls back to a TCP connect and says so).
Result<std::unique_ptr<discovery::Prober>> MakeAuthenticatedProber(
    const NodeSettings& settings, std::chrono::milliseconds timeout);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_NODE_SETTINGS_H_
