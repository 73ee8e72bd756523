#include "replboot/replication/node.h"

#include "replboot/base/log.h"
#include "replboot/replication/configure.h"
#include "replboot/replication/users.h"

namespace replboot::replication {

Result<db::ConnectOptions> LocalRootOptions(const conf::Config& config) {
  auto password = conf::ResolveSecret(config.mysql.root_password, config.mysql.root_password_file,
                                      "mysql.root_password");
  if (!password) return tl::unexpected(password.error());
  db::ConnectOptions o;
  o.socket = config.mysql.socket;
  o.user = "root";
  o.password = *password;
  return o;
}

api::ServerOptions ServerOptionsFromConfig(const conf::Config& config,
                                           const conf::Identity& identity, Flavour flavour,
                                           const db::ConnectOptions& local) {
  api::ServerOptions o;
  o.info.role = identity.role == conf::Role::kPrimary ? NodeRole::kPrimary : NodeRole::kReplica;
  o.info.ordinal = identity.ordinal;
  o.info.server_id = identity.server_id;
  o.info.flavour = flavour;
  o.local = local;
  o.listen = config.http.listen;
  o.max_lag = static_cast<double>(config.replication.max_lag);
  o.write_heartbeat = identity.role == conf::Role::kPrimary;
  return o;
}

Prepared PrepareReplication(const conf::Config& config, const conf::Identity& identity,
                            Flavour flavour, const db::ConnectOptions& local) {
  Prepared out;
  auto log = log::Get("replication");
  auto session = db::Connect(local);
  if (!session) {
    out.fatal = session.error().WithContext("replication setup");
    return out;
  }
  if (identity.role == conf::Role::kPrimary) {
    auto accounts = AccountsFromConfig(config);
    if (!accounts) {
      out.fatal = accounts.error();
      return out;
    }
    out.fatal = EnsureUsers(**session, flavour, *accounts);
    return out;
  }
  auto password = conf::ResolveSecret(config.replication.password, config.replication.password_file,
                                      "replication.password");
  if (!password) {
    out.fatal = password.error();
    return out;
  }
  ReplicaSetup setup;
  setup.flavour = flavour;
  setup.source.host = identity.PeerName(0, config.cluster.service);
  setup.source.port = static_cast<int>(config.mysql.port);
  setup.source.user = config.replication.user;
  setup.source.password = *password;
  setup.source.connect_retry = static_cast<int>(config.replication.connect_retry);
  setup.source.tls = config.replication.tls;
  setup.datadir = config.mysql.datadir;
  setup.start_deadline = std::chrono::seconds(config.replication.start_deadline);
  auto outcome = SetupReplica(**session, setup);
  if (!outcome) {
    // The node keeps running and serving health: /ready and /status say why.
    out.error = outcome.error().message();
    log->error("event=replication_setup_failed error={}", log::Quote(out.error));
  }
  return out;
}

Result<std::unique_ptr<api::Server>> StartNodeServer(const conf::Config& config,
                                                     const conf::Identity& identity,
                                                     Flavour flavour) {
  auto local = LocalRootOptions(config);
  if (!local) return tl::unexpected(local.error());
  api::ServerOptions options = ServerOptionsFromConfig(config, identity, flavour, *local);
  options.write_heartbeat = false;  // its table exists once FinishReplicationSetup ran
  options.set_up = false;
  auto node = std::make_unique<api::Server>(std::move(options));
  Status started = node->StartInBackground();
  if (!started.ok()) return tl::unexpected(started);
  return node;
}

Status FinishReplicationSetup(api::Server& node, const conf::Config& config,
                              const conf::Identity& identity, Flavour flavour) {
  auto local = LocalRootOptions(config);
  if (!local) return local.error();
  Prepared prepared = PrepareReplication(config, identity, flavour, *local);
  if (!prepared.fatal.ok()) return prepared.fatal;
  node.SetLastError(prepared.error);
  if (identity.role == conf::Role::kPrimary) node.StartHeartbeat();
  node.MarkSetUp();
  return Status::Ok();
}

}  // namespace replboot::replication
