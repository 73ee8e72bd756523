// Wiring of one node from its configuration: the root connection, the HTTP API's options
// (api/server.h), replication or accounts set up once mysqld is ready.
//
// Wiring in `replboot run` (daemon/node_services.cc): StartNodeServer() when the node starts,
// before its datadir is initialized or cloned; FinishReplicationSetup() once mysqld is ready;
// at shutdown, once mysqld has ended, server->Stop(), then the Server is destroyed.
// `replboot replication-agent` (commands.h) does the same against an already running mysqld;
// the integration tests drive it.
#ifndef REPLBOOT_REPLICATION_NODE_H_
#define REPLBOOT_REPLICATION_NODE_H_

#include <memory>
#include <string>

#include "replboot/api/server.h"
#include "replboot/base/status.h"
#include "replboot/conf/config.h"
#include "replboot/conf/identity.h"
#include "replboot/db/client.h"
#include "replboot/replication/health.h"

namespace replboot::replication {

// The root connection to the local server: mysql.socket, user root, mysql.root_password[_file].
Result<db::ConnectOptions> LocalRootOptions(const conf::Config& config);

// The HTTP API's options for this node: role and identity, http.listen, replication.max_lag, the
// heartbeat on the primary.
api::ServerOptions ServerOptionsFromConfig(const conf::Config& config,
                                           const conf::Identity& identity, Flavour flavour,
                                           const db::ConnectOptions& local);

struct Prepared {
  Status fatal;       // not ok: the node cannot work (primary without its users); stop
  std::string error;  // a replica whose replication did not start: serve, and say why
};

// After mysqld is ready, as root over the socket: on the primary, EnsureUsers (accounts and
// heartbeat schema); on a replica, SetupReplica from the clone's position in the datadir,
// replicating from <prefix>-0.<service>:mysql.port with the replication account.
Prepared PrepareReplication(const conf::Config& config, const conf::Identity& identity,
                            Flavour flavour, const db::ConnectOptions& local);

// `replboot run` in two steps, so that the HTTP server answers from the first second (while
// the datadir is initialized or cloned: /status shows the clone's progress) and replication
// is set up once mysqld is ready:
// StartNodeServer: LocalRootOptions, an api::Server from the config without heartbeat, started in
// the background, its readiness "setting up" until FinishReplicationSetup: PrepareReplication (its
// fatal error is returned), the replica's setup error as the Server's last error, the primary's
// heartbeat, MarkSetUp(). (`replboot replication-agent` prepares first, then serves.)
Result<std::unique_ptr<api::Server>> StartNodeServer(const conf::Config& config,
                                                     const conf::Identity& identity,
                                                     Flavour flavour);
Status FinishReplicationSetup(api::Server& node, const conf::Config& config,
                              const conf::Identity& identity, Flavour flavour);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_NODE_H_
