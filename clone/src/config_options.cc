#include "replboot/clone/config_options.h"

#include "replboot/conf/render.h"

namespace replboot::clone {

Result<std::string> ResolveFlavour(const conf::Config& config) {
  if (config.node.flavour == "mariadb" || config.node.flavour == "mysql")
    return config.node.flavour;
  auto flavour = conf::DetectFlavour(config);
  if (!flavour) return Error(flavour.error());
  return std::string(conf::FlavourName(*flavour));
}

namespace {

Result<std::string> Secret(const conf::Config& config) {
  auto secret =
      conf::ResolveSecret(config.backup.secret, config.backup.secret_file, "backup.secret");
  if (!secret) return Error(secret.error());
  if (secret->empty()) {
    return Error(
        StatusCode::kInvalidArgument,
        "backup.secret (or backup.secret_file) is not set: peers cannot authenticate each other");
  }
  return secret;
}

}  // namespace

namespace {
// The stream is authenticated (HMAC, both ways) and checksummed, but not encrypted; TLS on the
// backup connection is not built yet, and a setting that silently did nothing would be worse.
Status RefuseTls(const conf::Config& config) {
  if (!config.backup.tls) return Status::Ok();
  return Status(StatusCode::kInvalidArgument,
                "backup.tls = true is not supported yet: backup streams are authenticated with "
                "HMAC but not encrypted; use a network you trust or a mesh that encrypts");
}
}  // namespace

Result<ServerOptions> ServerOptionsFromConfig(const conf::Config& config) {
  REPLBOOT_RETURN_IF_ERROR(RefuseTls(config));
  ServerOptions o;
  auto secret = Secret(config);
  if (!secret) return Error(secret.error());
  o.secret = *secret;
  auto password =
      conf::ResolveSecret(config.backup.password, config.backup.password_file, "backup.password");
  if (!password) return Error(password.error());
  o.password = *password;
  auto flavour = ResolveFlavour(config);
  if (!flavour) return Error(flavour.error());
  o.flavour = *flavour;
  o.tool = config.backup.tool.empty() ? DefaultTool(o.flavour) : config.backup.tool;
  o.listen = config.backup.listen;
  o.user = config.backup.user;
  o.socket = config.mysql.socket;
  o.port = config.mysql.port;
  o.max_concurrent = config.backup.max_concurrent;
  o.bandwidth_limit = config.backup.bandwidth_limit;
  o.parallel = config.backup.parallel;
  o.idle_timeout = std::chrono::seconds(config.backup.idle_timeout);
  return o;
}

Result<CloneOptions> CloneOptionsFromConfig(const conf::Config& config) {
  REPLBOOT_RETURN_IF_ERROR(RefuseTls(config));
  CloneOptions o;
  auto secret = Secret(config);
  if (!secret) return Error(secret.error());
  o.secret = *secret;
  auto flavour = ResolveFlavour(config);
  if (!flavour) return Error(flavour.error());
  o.flavour = *flavour;
  o.tool = config.backup.tool;
  o.datadir = config.mysql.datadir;
  o.use_memory = config.backup.use_memory;
  o.owner = config.mysql.user;
  o.idle_timeout = std::chrono::seconds(config.backup.idle_timeout);
  return o;
}

}  // namespace replboot::clone
