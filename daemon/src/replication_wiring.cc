#include "replboot/daemon/replication_wiring.h"

#include "replboot/base/log.h"
#include "replboot/replication/configure.h"
#include "replboot/replication/users.h"

namespace replboot::daemon {

using replication::NodeRole;

Result<replication::Accounts> AccountsFor(const NodeSettings& settings) {
  const conf::Config& config = settings.config;
  replication::Accounts accounts;
  std::vector<std::string> problems;
  auto resolve = [&](const std::string& inline_value, const std::string& file,
                     const std::string& name, replication::Account* account, const std::string& user) {
    account->user = user;
    auto secret = conf::ResolveSecret(inline_value, file, name);
    if (!secret) {
      problems.push_back(secret.error().message());
    } else if (secret->empty()) {
      problems.push_back(
          fmt::format("{} (or {}_file) is empty: the account needs a password", name, name));
    } else {
      account->password = *secret;
    }
  };
  resolve(config.replication.password, config.replication.password_file, "replication.password",
          &accounts.replication, config.replication.user);
  // Read once by ResolveSettings; an inline value stands for itself.
  resolve(settings.backup_password, "", "backup.password", &accounts.backup, config.backup.user);
  if (!config.cluster.app_user.empty()) {
    resolve(config.cluster.app_password, config.cluster.app_password_file, "cluster.app_password",
            &accounts.app, config.cluster.app_user);
    accounts.app_databases = config.cluster.app_databases;
  }
  if (accounts.replication.user.empty()) problems.push_back("replication.user is empty");
  if (accounts.backup.user.empty()) problems.push_back("backup.user is empty");
  if (!problems.empty()) {
    std::string joined;
    for (const auto& p : problems) joined += (joined.empty() ? "" : "; ") + p;
    return Error(StatusCode::kInvalidArgument, "accounts: {}", joined);
  }
  return accounts;
}

db::ConnectOptions LocalRootOptions(const NodeSettings& settings) {
  db::ConnectOptions o;
  o.socket = settings.config.mysql.socket;
  o.user = "root";
  o.password = settings.root_password;
  return o;
}

api::ServerOptions ApiOptionsFor(const NodeSettings& settings) {
  const conf::Config& config = settings.config;
  const conf::Identity& identity = settings.identity;
  api::ServerOptions o;
  o.info.role = identity.role == conf::Role::kPrimary ? NodeRole::kPrimary : NodeRole::kReplica;
  o.info.ordinal = identity.ordinal;
  o.info.server_id = identity.server_id;
  o.info.flavour = settings.flavour;
  o.local = LocalRootOptions(settings);
  o.listen = config.http.listen;
  o.max_connections = static_cast<int>(config.http.max_connections);
  o.max_connections_per_address = static_cast<int>(config.http.max_connections_per_address);
  o.request_timeout = std::chrono::milliseconds(config.http.request_timeout_ms);
  o.max_lag = static_cast<double>(config.replication.max_lag);
  o.write_heartbeat = identity.role == conf::Role::kPrimary;
  return o;
}

Prepared PrepareReplication(const NodeSettings& settings) {
  const conf::Config& config = settings.config;
  const conf::Identity& identity = settings.identity;
  const Flavour flavour = settings.flavour;
  const db::ConnectOptions local = LocalRootOptions(settings);
  Prepared out;
  auto log = log::Get("replication");
  auto session = db::Connect(local);
  if (!session) {
    out.fatal = session.error().WithContext("replication setup");
    return out;
  }
  if (identity.role == conf::Role::kPrimary) {
    auto accounts = AccountsFor(settings);
    if (!accounts) {
      out.fatal = accounts.error();
      return out;
    }
    out.fatal = replication::EnsureUsers(**session, flavour, *accounts);
    return out;
  }
  auto password = conf::ResolveSecret(config.replication.password, config.replication.password_file,
                                      "replication.password");
  if (!password) {
    out.fatal = password.error();
    return out;
  }
  replication::ReplicaSetup setup;
  setup.flavour = flavour;
  setup.source.host = identity.PeerName(0, config.cluster.service);
  setup.source.port = static_cast<int>(config.mysql.port);
  setup.source.user = config.replication.user;
  setup.source.password = *password;
  setup.source.connect_retry = static_cast<int>(config.replication.connect_retry);
  setup.source.tls = settings.peer_tls.enabled;
  setup.source.tls_ca = settings.peer_tls.ca;
  setup.source.tls_cert = settings.peer_tls.cert;
  setup.source.tls_key = settings.peer_tls.key;
  setup.datadir = config.mysql.datadir;
  setup.start_deadline = std::chrono::seconds(config.replication.start_deadline);
  auto outcome = replication::SetupReplica(**session, setup);
  if (!outcome) {
    // The node keeps running and serving health: /ready and /status say why.
    out.error = outcome.error().message();
    log->error("event=replication_setup_failed error={}", log::Quote(out.error));
  }
  return out;
}

Result<std::unique_ptr<api::Server>> StartNodeServer(const NodeSettings& settings) {
  api::ServerOptions options = ApiOptionsFor(settings);
  options.write_heartbeat = false;  // its table exists once FinishReplicationSetup ran
  options.set_up = false;
  auto node = std::make_unique<api::Server>(std::move(options));
  Status started = node->StartInBackground();
  if (!started.ok()) return tl::unexpected(started);
  return node;
}

Status FinishReplicationSetup(api::Server& node, const NodeSettings& settings) {
  Prepared prepared = PrepareReplication(settings);
  if (!prepared.fatal.ok()) return prepared.fatal;
  node.SetLastError(prepared.error);
  if (settings.identity.role == conf::Role::kPrimary) node.StartHeartbeat();
  node.MarkSetUp();
  return Status::Ok();
}

}  // namespace replboot::daemon
