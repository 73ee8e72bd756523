// Wiring of replication/ and api/ from the node's settings (node_settings.h): the root connection, the HTTP API's options
// (api/server.h), replication or accounts set up once mysqld is ready.
//
// Wiring in `replboot run` (daemon/node_services.cc): StartNodeServer() when the node starts,
// before its datadir is initialized or cloned; FinishReplicationSetup() once mysqld is ready;
// at shutdown, once mysqld has ended, server->Stop(), then the Server is destroyed.
// `replboot replication-agent` (replication_commands.h) does the same against an already running mysqld;
// the integration tests drive it.
#ifndef REPLBOOT_DAEMON_REPLICATION_WIRING_H_
#define REPLBOOT_DAEMON_REPLICATION_WIRING_H_

#include <memory>
#include <string>

#include "replboot/api/server.h"
#include "replboot/base/status.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/replication/users.h"
#include "replboot/db/client.h"
#include "replboot/replication/health.h"

namespace replboot::daemon {

// The root connection to the local server: mysql.socket, user root, the root password.
db::ConnectOptions LocalRootOptions(const NodeSettings& settings);

// The replication, backup and app accounts (the backup password as the settings read it; the
// others from their value or *_file). kInvalidArgument naming every missing one.
Result<replication::Accounts> AccountsFor(const NodeSettings& settings);

// The HTTP API's options for this node: role and identity, http.listen, replication.max_lag, the
// heartbeat on the primary.
api::ServerOptions ApiOptionsFor(const NodeSettings& settings);

struct Prepared {
  Status fatal;       // not ok: the node cannot work (primary without its users); stop
  std::string error;  // a replica whose replication did not start: serve, and say why
};

// After mysqld is ready, as root over the socket: on the primary, EnsureUsers (accounts and
// heartbeat schema); on a replica, SetupReplica from the clone's position in the datadir,
// replicating from <prefix>-0.<service>:mysql.port with the replication account.
Prepared PrepareReplication(const NodeSettings& settings);

// `replboot run` in two steps, so that the HTTP server answers from the first second (while
// the datadir is initialized or cloned: /status shows the clone's progress) and replication
// is set up once mysqld is ready:
// StartNodeServer: LocalRootOptions, an api::Server from the config without heartbeat, started in
// the background, its readiness "setting up" until FinishReplicationSetup: PrepareReplication (its
// fatal error is returned), the replica's setup error as the Server's last error, the primary's
// heartbeat, MarkSetUp(). (`replboot replication-agent` prepares first, then serves.)
Result<std::unique_ptr<api::Server>> StartNodeServer(const NodeSettings& settings);
Status FinishReplicationSetup(api::Server& node, const NodeSettings& settings);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_REPLICATION_WIRING_H_
