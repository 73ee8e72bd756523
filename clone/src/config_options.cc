#include "replboot/clone/config_options.h"

#include "replboot/conf/render.h"

namespace replboot::clone {

Result<std::string> BackupSecret(const conf::Config& config) {
  auto secret =
      conf::ResolveSecret(config.backup.secret, config.backup.secret_file, "backup.secret");
  if (!secret) return Error(secret.error());
  return secret;
}

namespace {

// What the serving and the cloning side resolve the same way: the shared secret (required),
// the flavour, TLS and the idle timeout.
struct Shared {
  std::string secret;
  Flavour flavour = Flavour::kMariaDB;
  TlsOptions tls;
  std::chrono::milliseconds idle_timeout{0};
};

Result<Shared> ResolveShared(const conf::Config& config) {
  Shared shared;
  auto secret = BackupSecret(config);
  if (!secret) return Error(secret.error());
  if (secret->empty()) {
    return Error(
        StatusCode::kInvalidArgument,
        "backup.secret (or backup.secret_file) is not set: peers cannot authenticate each other");
  }
  shared.secret = std::move(*secret);
  auto flavour = conf::DetectFlavour(config);
  if (!flavour) return Error(flavour.error());
  shared.flavour = *flavour;
  // Validate() already requires cert and key when tls is true.
  shared.tls.enabled = config.backup.tls;
  shared.tls.cert = config.backup.tls_cert;
  shared.tls.key = config.backup.tls_key;
  shared.tls.ca = config.backup.tls_ca;
  shared.idle_timeout = std::chrono::seconds(config.backup.idle_timeout);
  return shared;
}

}  // namespace

Result<ServerOptions> ServerOptionsFromConfig(const conf::Config& config) {
  auto shared = ResolveShared(config);
  if (!shared) return Error(shared.error());
  ServerOptions o;
  o.secret = std::move(shared->secret);
  o.flavour = shared->flavour;
  o.tls = std::move(shared->tls);
  o.idle_timeout = shared->idle_timeout;
  auto password =
      conf::ResolveSecret(config.backup.password, config.backup.password_file, "backup.password");
  if (!password) return Error(password.error());
  o.password = *password;
  o.tool = config.backup.tool.empty() ? DefaultTool(o.flavour) : config.backup.tool;
  o.listen = config.backup.listen;
  o.user = config.backup.user;
  o.socket = config.mysql.socket;
  o.port = config.mysql.port;
  o.max_concurrent = config.backup.max_concurrent;
  o.bandwidth_limit = config.backup.bandwidth_limit;
  o.parallel = config.backup.parallel;
  return o;
}

Result<CloneOptions> CloneOptionsFromConfig(const conf::Config& config) {
  auto shared = ResolveShared(config);
  if (!shared) return Error(shared.error());
  CloneOptions o;
  o.secret = std::move(shared->secret);
  o.flavour = shared->flavour;
  o.tls = std::move(shared->tls);
  o.idle_timeout = shared->idle_timeout;
  o.tool = config.backup.tool;
  o.datadir = config.mysql.datadir;
  o.use_memory = config.backup.use_memory;
  o.owner = config.mysql.user;
  return o;
}

}  // namespace replboot::clone
