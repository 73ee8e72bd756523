#include "replboot/daemon/restore_target.h"
#include "replboot/daemon/node_settings.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

#include "replboot/base/log.h"
#include "replboot/base/process.h"
#include "replboot/clone/prober.h"
#include "replboot/conf/render.h"

namespace replboot::daemon {

namespace asio = boost::asio;

namespace {

// "host:port", "[v6]:port" or "host" → host and port text ("" when absent).
Result<std::pair<std::string, std::string>> SplitHostPort(const std::string& text,
                                                          const char* what) {
  std::string host, port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos)
      return Error(StatusCode::kInvalidArgument, "{} {}: unterminated '['", what, log::Printable(text));
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':')
        return Error(StatusCode::kInvalidArgument, "{} {}: expected ':' after ']'", what, log::Printable(text));
      port = text.substr(close + 2);
      if (port.empty())
        return Error(StatusCode::kInvalidArgument, "{} {}: empty port after ':'", what, log::Printable(text));
    }
  } else if (size_t colon = text.rfind(':'); colon != std::string::npos) {
    if (text.find(':') != colon)
      return Error(StatusCode::kInvalidArgument, "{} {}: an IPv6 address needs [brackets]",
                   what, log::Printable(text));
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (port.empty())
      return Error(StatusCode::kInvalidArgument, "{} {}: empty port after ':'", what, log::Printable(text));
  } else {
    host = text;
  }
  return std::make_pair(host, port);
}

Result<uint16_t> ParsePort(const std::string& text, const std::string& whole, const char* what,
                           bool allow_zero) {
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value > 65535 ||
      (value == 0 && !allow_zero)) {
    return Error(StatusCode::kInvalidArgument, "{} {}: {} is not a TCP port", what, log::Printable(whole),
                 log::Printable(text));
  }
  return static_cast<uint16_t>(value);
}

Result<std::optional<OsUser>> LookUpMysqlUser(const std::string& name) {
  if (::geteuid() != 0) return std::optional<OsUser>();
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return Error(ErrnoStatus(rc, "look up mysql.user " + name));
  if (found == nullptr) {
    return Error(StatusCode::kInvalidArgument,
                 "mysql.user {}: no such OS user (mysqld must not run as root)", name);
  }
  return std::optional<OsUser>(OsUser{name, pw.pw_uid, pw.pw_gid});
}

// Connector/C and mysqld read the file only when they connect, and then say little more than
// "SSL connection error": a missing or unreadable file is named here, at start-up, instead.
Status CheckReadableFile(const std::string& path, const char* key) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("{} {}: cannot be read: {}", key, path, std::strerror(errno)));
  }
  struct stat st;
  int rc = ::fstat(fd, &st);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, fmt::format("{} {}: fstat", key, path));
  if (!S_ISREG(st.st_mode) || st.st_size == 0) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("{} {}: not a non-empty regular file", key, path));
  }
  return Status::Ok();
}

Result<db::TlsOptions> PeerTls(const conf::Config& config) {
  const conf::Config::Replication& r = config.replication;
  db::TlsOptions tls{r.tls, r.tls_ca, r.tls_cert, r.tls_key};
  if (!tls.enabled) return db::TlsOptions{};
  const std::pair<const char*, const std::string*> files[] = {
      {"replication.tls_ca", &tls.ca},
      {"replication.tls_cert", &tls.cert},
      {"replication.tls_key", &tls.key}};
  for (const auto& [key, path] : files) {
    if (!path->empty()) REPLBOOT_RETURN_IF_ERROR(CheckReadableFile(*path, key));
  }
  if (tls.ca.empty()) {
    log::Get("daemon")->warn(
        "event=replication_tls_unverified reason={}",
        log::Quote("replication.tls is on without replication.tls_ca: connections to peers are "
                   "encrypted but the server is not verified (anyone on the path can pose as "
                   "the primary); MySQL accounts using caching_sha2_password cannot be used by "
                   "replboot over such a connection"));
  }
  return tls;
}

}  // namespace

Result<clone::Endpoint> BackupEndpoint(const std::string& text, uint16_t default_port) {
  auto parts = SplitHostPort(text, "backup endpoint");
  if (!parts) return Error(parts.error());
  if (parts->first.empty())
    return Error(StatusCode::kInvalidArgument, "backup endpoint {} has no host", log::Printable(text));
  uint16_t port = default_port;
  if (!parts->second.empty()) {
    auto parsed = ParsePort(parts->second, text, "backup endpoint", false);
    if (!parsed) return Error(parsed.error());
    port = *parsed;
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(parts->first, ec);
  if (!ec) return clone::Endpoint(address, port);
  // A name: resolved once, here; the clone connects to the address.
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(parts->first, std::to_string(port), ec);
  if (ec || results.empty()) {
    return Error(StatusCode::kUnavailable, "cannot resolve {}: {}", parts->first,
                 ec ? ec.message() : "no address");
  }
  return results.begin()->endpoint();
}

Result<clone::Endpoint> ListenEndpoint(const std::string& text, const char* key) {
  auto parts = SplitHostPort(text, key);
  if (!parts) return Error(parts.error());
  if (parts->second.empty())
    return Error(StatusCode::kInvalidArgument, "{} {} has no port", key, log::Printable(text));
  auto port = ParsePort(parts->second, text, key, /*allow_zero=*/true);
  if (!port) return Error(port.error());
  boost::system::error_code ec;
  auto address = asio::ip::make_address(parts->first.empty() ? "0.0.0.0" : parts->first, ec);
  if (ec)
    return Error(StatusCode::kInvalidArgument, "{} {}: {} is not an IP address", key, log::Printable(text),
                 log::Printable(parts->first));
  return clone::Endpoint(address, *port);
}

Result<NodeSettings> ResolveSettings(const conf::Config& config, SettingsNeeds needs) {
  NodeSettings s;
  s.config = config;
  if (needs.identity) {
    auto identity = conf::ParseIdentity(config.node.hostname, config.node.server_id_offset);
    if (!identity) return Error(identity.error());
    s.identity = *identity;
  }
  if (needs.flavour) {
    auto flavour = conf::DetectFlavour(config);
    if (!flavour) return Error(flavour.error().WithContext("detect flavour"));
    s.flavour = *flavour;
    s.server_binary = conf::ServerBinary(config, s.flavour);
  }
  if (needs.mysql_user) {
    auto user = LookUpMysqlUser(config.mysql.user);
    if (!user) return Error(user.error());
    s.mysql_user = std::move(*user);
  }
  auto root = conf::ResolveSecret(config.mysql.root_password, config.mysql.root_password_file,
                                  "mysql.root_password");
  if (!root) return Error(root.error());
  s.root_password = std::move(*root);
  auto target = ParseRestoreTarget(config.restore.target);
  if (!target) return Error(target.error());
  s.restore_target = std::move(*target);
  auto secret =
      conf::ResolveSecret(config.backup.secret, config.backup.secret_file, "backup.secret");
  if (!secret) return Error(secret.error());
  if (!secret->empty()) {
    REPLBOOT_RETURN_IF_ERROR(conf::CheckBackupSecret(
        *secret, config.backup.secret_file.empty() ? "the configuration" : config.backup.secret_file));
  }
  s.backup_secret = std::move(*secret);
  auto password =
      conf::ResolveSecret(config.backup.password, config.backup.password_file, "backup.password");
  if (!password) return Error(password.error());
  s.backup_password = std::move(*password);
  if (config.backup.tls) {
    clone::TlsOptions tls{true, config.backup.tls_cert, config.backup.tls_key, config.backup.tls_ca};
    auto client = clone::MakeTlsContext(tls, clone::TlsSide::kClient);
    if (!client) return Error(client.error().WithContext("backup.tls"));
    auto server = clone::MakeTlsContext(tls, clone::TlsSide::kServer);
    if (!server) return Error(server.error().WithContext("backup.tls"));
    s.tls_client = std::move(*client);
    s.tls_server = std::move(*server);
  }
  auto peer_tls = PeerTls(config);
  if (!peer_tls) return Error(peer_tls.error());
  s.peer_tls = std::move(*peer_tls);
  return s;
}

namespace {

clone::TlsOptions TlsOf(const conf::Config& config) {
  return clone::TlsOptions{config.backup.tls, config.backup.tls_cert, config.backup.tls_key,
                           config.backup.tls_ca};
}

Status RequireSecret(const NodeSettings& settings) {
  if (!settings.backup_secret.empty()) return Status::Ok();
  return Status(
      StatusCode::kInvalidArgument,
      "backup.secret (or backup.secret_file) is not set: peers cannot authenticate each other");
}

}  // namespace

Result<clone::CloneOptions> CloneOptionsFor(const NodeSettings& settings) {
  REPLBOOT_RETURN_IF_ERROR(RequireSecret(settings));
  const conf::Config& config = settings.config;
  clone::CloneOptions o;
  o.secret = settings.backup_secret;
  o.flavour = settings.flavour;
  o.tls = TlsOf(config);
  o.tls_context = settings.tls_client;
  o.idle_timeout = std::chrono::seconds(config.backup.idle_timeout);
  o.tool = config.backup.tool;
  o.datadir = config.mysql.datadir;
  o.use_memory = config.backup.use_memory;
  // The donor's logs and /status name its receivers by this (node.hostname, mysql-N), not by
  // the machine's host name, which nodes sharing a machine (scripts/cluster, tests) share.
  // `replboot clone` resolves no identity: its node.hostname as given (the machine's by default).
  o.client_name =
      settings.identity.hostname.empty() ? config.node.hostname : settings.identity.hostname;
  if (!settings.identity.hostname.empty()) o.client_ordinal = settings.identity.ordinal;
  if (settings.mysql_user)
    o.owner = clone::FileOwner{settings.mysql_user->uid, settings.mysql_user->gid};
  // Validated with the configuration (conf::Validate): parsing again cannot fail.
  auto compress = clone::ParseCompressSetting(config.backup.compress);
  if (!compress) return Error(compress.error().WithContext("backup.compress"));
  o.compress = *compress;
  return o;
}

Result<clone::ServerOptions> ServerOptionsFor(const NodeSettings& settings) {
  REPLBOOT_RETURN_IF_ERROR(RequireSecret(settings));
  const conf::Config& config = settings.config;
  auto listen = ListenEndpoint(config.backup.listen, "backup.listen");
  if (!listen) return Error(listen.error());
  clone::ServerOptions o;
  o.listen = *listen;
  o.secret = settings.backup_secret;
  o.flavour = settings.flavour;
  o.tls = TlsOf(config);
  o.tls_context = settings.tls_server;
  o.idle_timeout = std::chrono::seconds(config.backup.idle_timeout);
  o.password = settings.backup_password;
  o.tool = config.backup.tool.empty() ? clone::DefaultTool(o.flavour) : config.backup.tool;
  o.user = config.backup.user;
  o.socket = config.mysql.socket;
  o.port = config.mysql.port;
  o.max_concurrent = config.backup.max_concurrent;
  o.bandwidth_limit = config.backup.bandwidth_limit;
  o.parallel = config.backup.parallel > 0 ? config.backup.parallel
                                          : DefaultBackupParallel(process::UsableCpus());
  o.cpus = process::UsableCpus();
  // Probes and HEADERs tell the node's cluster id (a file in the datadir) and role.
  o.datadir = config.mysql.datadir;
  if (!settings.identity.hostname.empty()) o.role = std::string(conf::RoleName(settings.identity.role));
  // Every CHALLENGE names the node, so a replica that expects mysql-1 there refuses any other
  // node (protocol.h). `replboot serve-backup` resolves no identity: it states node.hostname,
  // and its ordinal only when the name has the StatefulSet form (never a made-up 0).
  if (!settings.identity.hostname.empty()) {
    o.node_name = settings.identity.hostname;
    o.node_ordinal = settings.identity.ordinal;
  } else {
    o.node_name = config.node.hostname;
    if (auto identity = conf::ParseIdentity(config.node.hostname, config.node.server_id_offset))
      o.node_ordinal = identity->ordinal;
  }
  o.fanout_window = std::chrono::milliseconds(config.backup.fanout_window_ms);
  o.fanout_max_receivers = config.backup.fanout_max_receivers;
  o.fanout_buffer_bytes = config.backup.fanout_buffer_mb << 20;
  o.fanout_grace = std::chrono::milliseconds(config.backup.fanout_grace_ms);
  o.tool_nice = static_cast<int>(config.backup.tool_nice);
  o.min_send_rate_bytes = config.backup.min_send_rate_kib << 10;
  using IoPriority = process::SpawnOptions::IoPriority;
  o.tool_io_priority = config.backup.tool_io_priority == "idle"     ? IoPriority::kIdle
                       : config.backup.tool_io_priority == "normal" ? IoPriority::kInherit
                                                                    : IoPriority::kBestEffortLowest;
  o.fanout_slow_window = std::chrono::milliseconds(config.backup.fanout_slow_window_ms);
  o.resume_window = std::chrono::seconds(config.backup.resume_window);
  o.resume_spool_bytes = config.backup.resume_spool_mb << 20;
  o.max_unauthenticated = config.backup.max_unauthenticated;
  o.max_unauthenticated_per_address = config.backup.max_unauthenticated_per_address;
  o.handshake_threads = config.backup.handshake_threads;
  return o;
}

int64_t DefaultBackupParallel(int usable_cpus) { return std::max(1, usable_cpus / 2); }

Result<discovery::DiscoverOptions> DiscoverOptionsFor(const NodeSettings& settings) {
  const conf::Config& config = settings.config;
  auto policy = discovery::ParsePolicy(config.dns.policy);
  if (!policy) return Error(policy.error());
  if (config.backup.port <= 0 || config.backup.port > 65535) {
    return Error(StatusCode::kInvalidArgument, "backup.port {} is not a TCP port",
                 config.backup.port);
  }
  discovery::DiscoverOptions options;
  options.candidates = discovery::Candidates(settings.identity.ordinal, settings.identity.prefix,
                                             config.cluster.service, *policy);
  options.default_port = static_cast<uint16_t>(config.backup.port);
  if (!config.dns.srv_port_name.empty()) {
    options.srv_name = fmt::format("_{}._tcp.{}", config.dns.srv_port_name, config.cluster.service);
  }
  options.deadline = std::chrono::seconds(std::max<int64_t>(config.dns.lookup_deadline, 0));
  if (*policy == discovery::Policy::kAnyReplica) options.primary_after = options.deadline / 2;
  return options;
}

discovery::AresOptions AresOptionsFor(const conf::Config& config) {
  discovery::AresOptions options;
  options.servers = config.dns.servers;
  options.resolv_conf = config.dns.resolv_conf;
  options.timeout = std::chrono::milliseconds(config.dns.timeout_ms);
  options.tries = static_cast<int>(config.dns.tries);
  return options;
}

Result<std::unique_ptr<discovery::Prober>> MakeAuthenticatedProber(
    const NodeSettings& settings, std::chrono::milliseconds timeout) {
  if (settings.backup_secret.empty()) return std::unique_ptr<discovery::Prober>();
  auto options = CloneOptionsFor(settings);
  if (!options) return Error(options.error());
  return std::unique_ptr<discovery::Prober>(
      std::make_unique<clone::AuthenticatedProber>(std::move(*options), timeout));
}

}  // namespace replboot::daemon
