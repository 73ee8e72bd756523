#include "replboot/conf/config.h"
#include "replboot/clone/protocol.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <optional>
#include <set>
#include <system_error>
#include <utility>
#include <variant>

#include "replboot/archive/schedule.h"
#include "replboot/base/files.h"
#include "replboot/base/log.h"

extern char** environ;

namespace replboot::conf {
namespace {

// ---------------------------------------------------------------------------
// The settings registry: one row per setting. Every layer (TOML, environment,
// --set, flags), Validate() messages and ShowConfig() work from this table, so a
// new setting is one row here plus its member in Config.

using Field = std::variant<std::string*, int64_t*, bool*, std::vector<std::string>*,
                           std::map<std::string, std::string>*>;

struct Setting {
  std::string_view key;  // "section.key"
  Field (*field)(Config&);
  bool secret;
  std::string_view description;
};

#define REPLBOOT_FIELD(section, member) [](Config& c) -> Field { return &c.section.member; }

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> kSettings = {
      {"node.hostname", REPLBOOT_FIELD(node, hostname), false,
       "pod hostname <statefulset>-<ordinal>; default gethostname()"},
      {"node.server_id_offset", REPLBOOT_FIELD(node, server_id_offset), false,
       "server-id = offset + ordinal"},
      {"node.flavour", REPLBOOT_FIELD(node, flavour), false,
       "auto | mariadb | mysql; auto runs the server binary with --version"},

      {"bootstrap.recover_wait", REPLBOOT_FIELD(bootstrap, recover_wait), false,
       "seconds a primary with an empty datadir waits for peers in DNS to answer with this "
       "cluster's data before it initializes (no peer in DNS: at once)"},

      {"mysql.datadir", REPLBOOT_FIELD(mysql, datadir), false, "mysqld data directory"},
      {"mysql.bind_address", REPLBOOT_FIELD(mysql, bind_address), false,
       "address mysqld listens on"},
      {"mysql.port", REPLBOOT_FIELD(mysql, port), false, "mysqld TCP port"},
      {"mysql.socket", REPLBOOT_FIELD(mysql, socket), false, "mysqld Unix socket"},
      {"mysql.mysqld", REPLBOOT_FIELD(mysql, mysqld), false,
       "server binary; empty = mariadbd or mysqld from PATH by flavour"},
      {"mysql.install_db", REPLBOOT_FIELD(mysql, install_db), false,
       "datadir initializer for MariaDB"},
      {"mysql.user", REPLBOOT_FIELD(mysql, user), false, "OS user mysqld runs as"},
      {"mysql.config_dir", REPLBOOT_FIELD(mysql, config_dir), false,
       "directory of the rendered replboot.cnf"},
      {"mysql.root_password", REPLBOOT_FIELD(mysql, root_password), true,
       "root password (prefer root_password_file)"},
      {"mysql.root_password_file", REPLBOOT_FIELD(mysql, root_password_file), false,
       "file holding the root password"},
      {"mysql.startup_timeout", REPLBOOT_FIELD(mysql, startup_timeout), false,
       "seconds to wait for mysqld's first connection"},
      {"mysql.shutdown_grace", REPLBOOT_FIELD(mysql, shutdown_grace), false,
       "seconds between SIGTERM and SIGKILL"},
      {"mysql.options", REPLBOOT_FIELD(mysql, options), false,
       "[mysql.options]: extra mysqld options, passed through last"},

      {"cluster.service", REPLBOOT_FIELD(cluster, service), false,
       "headless Service: peer N is <statefulset>-N.<service>"},
      {"cluster.app_user", REPLBOOT_FIELD(cluster, app_user), false, "application user (no SUPER)"},
      {"cluster.app_password", REPLBOOT_FIELD(cluster, app_password), true,
       "application user's password"},
      {"cluster.app_password_file", REPLBOOT_FIELD(cluster, app_password_file), false,
       "file holding the application password"},
      {"cluster.app_databases", REPLBOOT_FIELD(cluster, app_databases), false,
       "databases the application user may use, created if missing; \"*\" = all, mysql included"},

      {"dns.servers", REPLBOOT_FIELD(dns, servers), false,
       "DNS servers host[:port]; empty = resolv_conf"},
      {"dns.resolv_conf", REPLBOOT_FIELD(dns, resolv_conf), false, "resolver configuration"},
      {"dns.srv_port_name", REPLBOOT_FIELD(dns, srv_port_name), false,
       "when set, SRV _<name>._tcp.<service> gives peer ports"},
      {"dns.timeout_ms", REPLBOOT_FIELD(dns, timeout_ms), false, "per-query timeout (ms)"},
      {"dns.tries", REPLBOOT_FIELD(dns, tries), false, "tries per query"},
      {"dns.lookup_deadline", REPLBOOT_FIELD(dns, lookup_deadline), false,
       "seconds to wait for a peer name to appear"},
      {"dns.policy", REPLBOOT_FIELD(dns, policy), false,
       "donor choice: nearest-lower | primary | any-replica"},

      {"backup.listen", REPLBOOT_FIELD(backup, listen), false,
       "host:port of this node's backup endpoint"},
      {"backup.port", REPLBOOT_FIELD(backup, port), false, "port of peers' backup endpoints"},
      {"backup.tool", REPLBOOT_FIELD(backup, tool), false,
       "backup binary; empty = mariabackup or xtrabackup by flavour"},
      {"backup.user", REPLBOOT_FIELD(backup, user), false, "SQL user the backup tool uses"},
      {"backup.password", REPLBOOT_FIELD(backup, password), true, "backup user's password"},
      {"backup.password_file", REPLBOOT_FIELD(backup, password_file), false,
       "file holding the backup user's password"},
      {"backup.secret", REPLBOOT_FIELD(backup, secret), true,
       "shared secret peers authenticate with"},
      {"backup.secret_file", REPLBOOT_FIELD(backup, secret_file), false,
       "file holding the shared secret"},
      {"backup.max_concurrent", REPLBOOT_FIELD(backup, max_concurrent), false,
       "backups served at once"},
      {"backup.bandwidth_limit", REPLBOOT_FIELD(backup, bandwidth_limit), false,
       "bytes/s per stream, 0 = unlimited"},
      {"backup.compress", REPLBOOT_FIELD(backup, compress), false,
       "compression on the wire this node asks its donor for when it clones: auto (the donor "
       "picks off, zstd 1 or 3 from the throughput it measures), off, zstd or zstd:LEVEL "
       "(1-19; a donor grants at most 3)"},
      {"backup.use_memory", REPLBOOT_FIELD(backup, use_memory), false,
       "--use-memory for --prepare"},
      {"backup.min_send_rate_kib", REPLBOOT_FIELD(backup, min_send_rate_kib), false,
       "KiB/s a receiver must at least take each stream frame at, after 10 s of slack, or it is "
       "given up (0 = only backup.idle_timeout)"},
      {"backup.tool_nice", REPLBOOT_FIELD(backup, tool_nice), false,
       "nice value of the donor's backup tool (0 = as replboot, up to 19), so the database it "
       "copies keeps the CPU"},
      {"backup.tool_io_priority", REPLBOOT_FIELD(backup, tool_io_priority), false,
       "I/O class of the donor's backup tool: lowest (best-effort, level 7), idle or normal"},
      {"backup.parallel", REPLBOOT_FIELD(backup, parallel), false,
       "--parallel of the backup tool on this donor; 0 = half the CPUs replboot may use, at "
       "least 1"},
      {"backup.idle_timeout", REPLBOOT_FIELD(backup, idle_timeout), false,
       "seconds without a byte before a backup stream is given up (both sides)"},
      {"backup.fanout_window_ms", REPLBOOT_FIELD(backup, fanout_window_ms), false,
       "ms a donor waits after a backup request for more to share one backup run (0 = off)"},
      {"backup.fanout_max_receivers", REPLBOOT_FIELD(backup, fanout_max_receivers), false,
       "replicas that may share one backup run"},
      {"backup.fanout_buffer_mb", REPLBOOT_FIELD(backup, fanout_buffer_mb), false,
       "MiB of the tool's output queued for one receiver before it holds the others back"},
      {"backup.fanout_grace_ms", REPLBOOT_FIELD(backup, fanout_grace_ms), false,
       "ms in total, within backup.fanout_slow_window_ms, that a receiver with a full queue may "
       "hold the others back before it is dropped"},
      {"backup.resume_window", REPLBOOT_FIELD(backup, resume_window), false,
       "seconds a donor keeps a backup run open for a receiver whose link dropped, spooling the "
       "tool's output, so that it resumes where its last durable point was (0 = off)"},
      {"backup.resume_spool_mb", REPLBOOT_FIELD(backup, resume_spool_mb), false,
       "MiB of disk the donor's resume spool (beside its datadir) may use; when it fills before "
       "the receiver comes back, the next attempt is a full clone"},
      {"backup.fanout_slow_window_ms", REPLBOOT_FIELD(backup, fanout_slow_window_ms), false,
       "ms over which a receiver's holding the others back is added up (at least the grace)"},
      {"backup.max_unauthenticated", REPLBOOT_FIELD(backup, max_unauthenticated), false,
       "connections authenticating at once on the backup endpoint; more are closed at once"},
      {"backup.max_unauthenticated_per_address",
       REPLBOOT_FIELD(backup, max_unauthenticated_per_address), false,
       "of those, from one address (at most half of backup.max_unauthenticated)"},
      {"backup.handshake_threads", REPLBOOT_FIELD(backup, handshake_threads), false,
       "threads that authenticate backup clients; one address may use half of them"},
      {"backup.tls", REPLBOOT_FIELD(backup, tls), false, "TLS on the backup endpoint"},
      {"backup.tls_cert", REPLBOOT_FIELD(backup, tls_cert), false, "TLS certificate file"},
      {"backup.tls_key", REPLBOOT_FIELD(backup, tls_key), false, "TLS private key file"},
      {"backup.tls_ca", REPLBOOT_FIELD(backup, tls_ca), false, "CA that signs peers"},

      {"replication.user", REPLBOOT_FIELD(replication, user), false, "replication user"},
      {"replication.password", REPLBOOT_FIELD(replication, password), true,
       "replication user's password"},
      {"replication.password_file", REPLBOOT_FIELD(replication, password_file), false,
       "file holding the replication password"},
      {"replication.max_lag", REPLBOOT_FIELD(replication, max_lag), false,
       "seconds of lag before a replica is not ready"},
      {"replication.connect_retry", REPLBOOT_FIELD(replication, connect_retry), false,
       "seconds between reconnects to the source"},
      {"replication.start_deadline", REPLBOOT_FIELD(replication, start_deadline), false,
       "seconds for both replication threads to run"},
      {"replication.tls", REPLBOOT_FIELD(replication, tls), false,
       "TLS on SQL connections to peers (replication and the GTID check)"},
      {"replication.tls_ca", REPLBOOT_FIELD(replication, tls_ca), false,
       "CA the source's certificate must chain to (and name the source); empty = unverified"},
      {"replication.tls_cert", REPLBOOT_FIELD(replication, tls_cert), false,
       "client certificate presented to the source (optional)"},
      {"replication.tls_key", REPLBOOT_FIELD(replication, tls_key), false,
       "private key of replication.tls_cert"},
      {"replication.auto_reclone", REPLBOOT_FIELD(replication, auto_reclone), false,
       "a replica whose source purged the binlogs it needs re-clones itself"},
      {"replication.reclone_after", REPLBOOT_FIELD(replication, reclone_after), false,
       "seconds such a failure lasts before the automatic re-clone"},
      {"replication.reclone_min_interval", REPLBOOT_FIELD(replication, reclone_min_interval),
       false, "seconds between two automatic re-clones of a replica (kept across restarts)"},

      {"archive.store", REPLBOOT_FIELD(archive, store), false,
       "where backups go: file:///path or s3://bucket[/prefix]; \"\" = no backups"},
      {"archive.endpoint", REPLBOOT_FIELD(archive, endpoint), false,
       "S3-compatible endpoint, http(s)://host:port; \"\" = AWS"},
      {"archive.region", REPLBOOT_FIELD(archive, region), false, "S3 region (signatures)"},
      {"archive.addressing", REPLBOOT_FIELD(archive, addressing), false,
       "auto | path | virtual: S3 bucket in the path or in the host name"},
      {"archive.ca_file", REPLBOOT_FIELD(archive, ca_file), false,
       "CA the S3 endpoint's certificate must chain to; \"\" = the system's"},
      {"archive.access_key_file", REPLBOOT_FIELD(archive, access_key_file), false,
       "file holding the S3 access key id; \"\" = AWS_ACCESS_KEY_ID and friends"},
      {"archive.secret_key_file", REPLBOOT_FIELD(archive, secret_key_file), false,
       "file holding the S3 secret access key"},
      {"archive.session_token_file", REPLBOOT_FIELD(archive, session_token_file), false,
       "file holding an S3 session token (optional)"},
      {"archive.key_file", REPLBOOT_FIELD(archive, key_file), false,
       "file holding the backups' encryption key (secret text of 32+ characters)"},
      {"archive.keep_last", REPLBOOT_FIELD(archive, keep_last), false,
       "retention: keep the newest N backups (0 = rule off)"},
      {"archive.keep_days", REPLBOOT_FIELD(archive, keep_days), false,
       "retention: keep backups younger than D days (0 = rule off)"},
      {"archive.object_size_mb", REPLBOOT_FIELD(archive, object_size_mb), false,
       "MiB of the stream per stored object"},
      {"archive.compression_level", REPLBOOT_FIELD(archive, compression_level), false,
       "zstd level of the stored objects"},
      {"archive.source_cluster", REPLBOOT_FIELD(archive, source_cluster), false,
       "cluster id whose backups an empty primary restores; \"\" = the store's only one"},
      {"archive.scratch_dir", REPLBOOT_FIELD(archive, scratch_dir), false,
       "where a restore test restores and starts a throwaway server; \"\" = "
       "<mysql.datadir>.replboot-restore-test"},
      {"archive.schedule", REPLBOOT_FIELD(archive, schedule), false,
       "off | every <N>s|m|h|d | daily HH:MM (UTC): when the cluster takes a backup by itself"},
      {"archive.claim_step", REPLBOOT_FIELD(archive, claim_step), false,
       "seconds between the nodes' turns (replicas by ordinal, the primary last) at a slot"},
      {"archive.claim_timeout", REPLBOOT_FIELD(archive, claim_timeout), false,
       "seconds after which a slot's claim without a manifest is a dead taker's"},
      {"archive.restore_test_interval", REPLBOOT_FIELD(archive, restore_test_interval), false,
       "seconds between scheduled restore tests (restore, start a throwaway server, check the "
       "tables), run by the node that just took a backup; 0 = off"},
      {"archive.retry_backoff", REPLBOOT_FIELD(archive, retry_backoff), false,
       "seconds before a failed scheduled backup is tried again (doubling, within its slot)"},
      {"archive.binlog", REPLBOOT_FIELD(archive, binlog), false,
       "stream the primary's binlog into the store (one node at a time); needs archive.store"},
      {"archive.binlog_seal_interval_ms", REPLBOOT_FIELD(archive, binlog_seal_interval_ms), false,
       "a binlog segment is sealed when its first transaction arrived this many ms ago"},
      {"archive.binlog_seal_bytes", REPLBOOT_FIELD(archive, binlog_seal_bytes), false,
       "... or once it holds this many bytes (after a whole transaction)"},
      {"archive.binlog_lease_timeout", REPLBOOT_FIELD(archive, binlog_lease_timeout), false,
       "seconds without a heartbeat of the binlog archiver's lease before another node takes "
       "over"},

      {"restore.target", REPLBOOT_FIELD(restore, target), false,
       "what a primary bootstrapping from the store restores: latest | RFC 3339 time | GTID "
       "position; \"\" = everything archived"},

      {"http.listen", REPLBOOT_FIELD(http, listen), false, "host:port of the health endpoint"},
      {"http.max_connections", REPLBOOT_FIELD(http, max_connections), false,
       "open HTTP connections; more are closed at once"},
      {"http.max_connections_per_address", REPLBOOT_FIELD(http, max_connections_per_address),
       false, "of those, from one address (at most half of http.max_connections)"},
      {"http.request_timeout_ms", REPLBOOT_FIELD(http, request_timeout_ms), false,
       "ms to read a whole request (and to write its answer) before the connection is closed"},

      {"log.level", REPLBOOT_FIELD(log, level), false,
       "trace | debug | info | warn | error | critical | off"},
      {"log.format", REPLBOOT_FIELD(log, format), false, "logfmt | json"},
  };
  return kSettings;
}

#undef REPLBOOT_FIELD

constexpr std::string_view kOptionsKey = "mysql.options";

const Setting* FindSetting(std::string_view key) {
  for (const Setting& s : Settings()) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

std::string_view SectionOf(std::string_view key) { return key.substr(0, key.find('.')); }

bool IsSection(std::string_view name) {
  for (const Setting& s : Settings()) {
    if (SectionOf(s.key) == name) return true;
  }
  return false;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string EnvName(std::string_view key) {
  std::string name = "REPLBOOT_" + Upper(key);
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

std::string_view TypeName(const Field& f) {
  switch (f.index()) {
    case 0:
      return "string";
    case 1:
      return "int";
    case 2:
      return "bool";
    case 3:
      return "list";
    default:
      return "map";
  }
}

// Edit distance, to suggest the setting a typo meant.
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string Suggestion(std::string_view key) {
  const Setting* best = nullptr;
  size_t best_distance = 3;  // more than two edits away is a different word, not a typo
  for (const Setting& s : Settings()) {
    size_t d = Distance(Lower(key), s.key);
    if (d < best_distance) {
      best_distance = d;
      best = &s;
    }
  }
  return best ? fmt::format(" (did you mean {}?)", best->key) : "";
}

std::string UnknownKey(std::string_view key, std::string_view origin) {
  return fmt::format("unknown setting '{}' in {}{}; see `replboot config keys`", key, origin,
                     Suggestion(key));
}

// TOML-style quoting for `config show` and messages.
std::string Quoted(std::string_view text) { return log::DoubleQuoted(text); }

std::string FormatValue(const Field& f, bool secret) {
  if (auto* s = std::get_if<std::string*>(&f)) {
    if (secret) return (*s)->empty() ? "\"\"" : "<redacted>";
    return Quoted(**s);
  }
  if (auto* i = std::get_if<int64_t*>(&f)) return std::to_string(**i);
  if (auto* b = std::get_if<bool*>(&f)) return **b ? "true" : "false";
  if (auto* l = std::get_if<std::vector<std::string>*>(&f)) {
    std::string out = "[";
    for (size_t i = 0; i < (*l)->size(); ++i) {
      if (i > 0) out += ", ";
      out += Quoted((**l)[i]);
    }
    return out + "]";
  }
  auto* m = std::get<std::map<std::string, std::string>*>(f);
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : *m) {
    out += first ? " " : ", ";
    first = false;
    out += k + " = " + Quoted(v);
  }
  return out + (first ? "}" : " }");
}

std::string_view TomlTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::array:
      return "array";
    case toml::node_type::table:
      return "table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "date/time";
    default:
      return "nothing";
  }
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return text;
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  while (true) {
    size_t comma = text.find(',');
    std::string_view item = Trim(text.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::optional<int64_t> ParseInt(std::string_view text) {
  text = Trim(text);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<bool> ParseBool(std::string_view text) {
  std::string v = Lower(Trim(text));
  if (v == "true" || v == "on" || v == "yes" || v == "1") return true;
  if (v == "false" || v == "off" || v == "no" || v == "0") return false;
  return std::nullopt;
}

// Builds the config from the layers, collecting every problem instead of stopping at
// the first: an operator fixing a crash-looping pod wants the whole list at once.
class Loader {
 public:
  Loader() {
    for (const Setting& s : Settings()) loaded_.origins[std::string(s.key)] = Origin{"default"};
  }

  void LoadFile(const std::string& path) {
    file_ = path;
    auto text = files::ReadFile(path);
    if (!text) {
      problems_.push_back(fmt::format("config file {}: {}", path, text.error().message()));
      return;
    }
    toml::table root;
    try {
      root = toml::parse(*text, path);
    } catch (const toml::parse_error& e) {
      problems_.push_back(fmt::format("config file {}:{}:{}: {}", path, e.source().begin.line,
                                      e.source().begin.column, e.description()));
      return;
    }
    for (const auto& [section, node] : root) {
      std::string where = fmt::format("{}:{}", path, section.source().begin.line);
      const toml::table* table = node.as_table();
      if (!IsSection(section.str())) {
        problems_.push_back(
            fmt::format("unknown section [{}] at {}; sections are node, mysql, "
                        "cluster, dns, backup, replication, archive, http, log",
                        section.str(), where));
        continue;
      }
      if (table == nullptr) {
        problems_.push_back(fmt::format("'{}' at {} must be a [{}] table of settings",
                                        section.str(), where, section.str()));
        continue;
      }
      for (const auto& [name, value] : *table) {
        std::string key = fmt::format("{}.{}", section.str(), name.str());
        std::string at = fmt::format("{}:{}", path, name.source().begin.line);
        const Setting* setting = FindSetting(key);
        if (setting == nullptr) {
          problems_.push_back(UnknownKey(key, at));
          continue;
        }
        AssignToml(*setting, value, at);
      }
    }
  }

  // REPLBOOT_* variables; anything else in `env` is not ours and is ignored.
  void LoadEnvironment(const std::map<std::string, std::string>& env) {
    std::map<std::string, const Setting*> by_name;
    for (const Setting& s : Settings()) by_name[EnvName(s.key)] = &s;
    const std::string options_prefix = EnvName(kOptionsKey) + "_";
    for (const auto& [name, value] : env) {
      if (!name.starts_with("REPLBOOT_") || IsAllowedExtraVariable(name)) continue;
      if (auto it = by_name.find(name); it != by_name.end()) {
        AssignText(*it->second, value, "environment variable " + name);
      } else if (name.starts_with(options_prefix) && name.size() > options_prefix.size()) {
        // REPLBOOT_MYSQL_OPTIONS_INNODB_BUFFER_POOL_SIZE: option names are case-insensitive
        // words with '_' (mysqld treats '-' and '_' alike).
        SetOption(Lower(name.substr(options_prefix.size())), value, "environment variable " + name);
      } else {
        std::string key = Lower(name.substr(9));
        if (auto underscore = key.find('_'); underscore != std::string::npos) key[underscore] = '.';
        problems_.push_back(
            fmt::format("unknown environment variable {}: it names no setting{}; "
                        "see `replboot config keys`",
                        name, Suggestion(key)));
      }
    }
  }

  void LoadSet(const std::string& assignment) {
    size_t eq = assignment.find('=');
    if (eq == std::string::npos) {
      problems_.push_back(fmt::format("--set '{}': expected section.key=value", assignment));
      return;
    }
    std::string key(Trim(std::string_view(assignment).substr(0, eq)));
    std::string value = assignment.substr(eq + 1);
    std::string origin = "--set " + key;
    std::string prefix = std::string(kOptionsKey) + ".";
    if (key.starts_with(prefix) && key.size() > prefix.size()) {
      SetOption(key.substr(prefix.size()), value, origin);
      return;
    }
    const Setting* setting = FindSetting(key);
    if (setting == nullptr) {
      problems_.push_back(UnknownKey(key, "--set"));
      return;
    }
    AssignText(*setting, value, origin);
  }

  void LoadFlag(const std::string& key, const std::string& value, const std::string& flag) {
    const Setting* setting = FindSetting(key);
    if (setting == nullptr) {
      problems_.push_back(UnknownKey(key, flag));
      return;
    }
    AssignText(*setting, value, flag);
  }

  void DefaultHostname() {
    if (!loaded_.config.node.hostname.empty()) return;
    char buf[HOST_NAME_MAX + 1] = {};
    if (::gethostname(buf, sizeof(buf) - 1) != 0) {
      problems_.push_back(fmt::format("node.hostname is not set and gethostname() failed: {}",
                                      std::error_code(errno, std::system_category()).message()));
      return;
    }
    loaded_.config.node.hostname = buf;
    loaded_.origins["node.hostname"] = Origin{"gethostname()"};
  }

  std::vector<std::string>& problems() { return problems_; }
  LoadedConfig& loaded() { return loaded_; }

 private:
  void Record(const Setting& s, const std::string& origin) {
    loaded_.origins[std::string(s.key)] = Origin{origin};
  }

  void WrongType(const Setting& s, const std::string& origin, std::string_view got) {
    problems_.push_back(fmt::format("{} in {}: expected {}, got {}", s.key, origin,
                                    TypeName(s.field(loaded_.config)), got));
  }

  void SetOption(const std::string& name, const std::string& value, const std::string& origin) {
    loaded_.config.mysql.options[name] = value;
    loaded_.origins[std::string(kOptionsKey) + "." + name] = Origin{origin};
  }

  void AssignToml(const Setting& s, const toml::node& node, const std::string& origin) {
    Field f = s.field(loaded_.config);
    std::string got(TomlTypeName(node));
    if (auto* str = std::get_if<std::string*>(&f)) {
      if (!node.is_string()) return WrongType(s, origin, got);
      **str = node.as_string()->get();
    } else if (auto* i = std::get_if<int64_t*>(&f)) {
      if (!node.is_integer()) return WrongType(s, origin, got);
      **i = node.as_integer()->get();
    } else if (auto* b = std::get_if<bool*>(&f)) {
      if (!node.is_boolean()) return WrongType(s, origin, got);
      **b = node.as_boolean()->get();
    } else if (auto* l = std::get_if<std::vector<std::string>*>(&f)) {
      const toml::array* array = node.as_array();
      if (array == nullptr) return WrongType(s, origin, got + " (write [\"a\", \"b\"])");
      std::vector<std::string> items;
      for (size_t idx = 0; idx < array->size(); ++idx) {
        const toml::node& item = *array->get(idx);
        if (!item.is_string()) {
          problems_.push_back(fmt::format("{}[{}] in {}: expected string, got {}", s.key, idx,
                                          origin, TomlTypeName(item)));
          return;
        }
        items.push_back(item.as_string()->get());
      }
      **l = std::move(items);
    } else {
      const toml::table* table = node.as_table();
      if (table == nullptr)
        return WrongType(s, origin, got + " (write a [" + std::string(s.key) + "] table)");
      for (const auto& [name, value] : *table) {
        std::string at = fmt::format("{}:{}", file_, name.source().begin.line);
        std::string text;
        if (value.is_string()) {
          text = value.as_string()->get();
        } else if (value.is_integer()) {
          text = std::to_string(value.as_integer()->get());
        } else if (value.is_floating_point()) {
          text = fmt::format("{}", value.as_floating_point()->get());
        } else if (value.is_boolean()) {
          // mysqld reads ON/OFF for every boolean option.
          text = value.as_boolean()->get() ? "ON" : "OFF";
        } else {
          problems_.push_back(
              fmt::format("{}.{} in {}: expected a string, number or boolean, "
                          "got {}",
                          s.key, name.str(), at, TomlTypeName(value)));
          continue;
        }
        SetOption(std::string(name.str()), text, at);
      }
      return;
    }
    Record(s, origin);
  }

  void AssignText(const Setting& s, const std::string& text, const std::string& origin) {
    Field f = s.field(loaded_.config);
    if (auto* str = std::get_if<std::string*>(&f)) {
      **str = text;
    } else if (auto* i = std::get_if<int64_t*>(&f)) {
      auto v = ParseInt(text);
      if (!v) {
        problems_.push_back(fmt::format("{} in {}: expected an integer, got '{}'", s.key, origin,
                                        s.secret ? "<redacted>" : text));
        return;
      }
      **i = *v;
    } else if (auto* b = std::get_if<bool*>(&f)) {
      auto v = ParseBool(text);
      if (!v) {
        problems_.push_back(
            fmt::format("{} in {}: expected true or false, got '{}'", s.key, origin, text));
        return;
      }
      **b = *v;
    } else if (auto* l = std::get_if<std::vector<std::string>*>(&f)) {
      **l = SplitList(text);
    } else {
      // A whole map replaces nothing: each k=v is merged over lower layers, as a file's
      // [mysql.options] would be.
      for (const std::string& item : SplitList(text)) {
        size_t eq = item.find('=');
        std::string name(Trim(std::string_view(item).substr(0, eq)));
        if (eq == std::string::npos || name.empty()) {
          problems_.push_back(fmt::format("{} in {}: '{}' is not name=value", s.key, origin, item));
          continue;
        }
        SetOption(name, std::string(Trim(std::string_view(item).substr(eq + 1))), origin);
      }
      return;
    }
    Record(s, origin);
  }

  LoadedConfig loaded_;
  std::vector<std::string> problems_;
  std::string file_;  // the TOML file being read, for "file:line" origins
};

Status Problems(const std::vector<std::string>& problems) {
  if (problems.empty()) return Status::Ok();
  if (problems.size() == 1) return Status(StatusCode::kInvalidArgument, problems[0]);
  std::string message = fmt::format("{} configuration problems:", problems.size());
  for (const std::string& p : problems) message += "\n  " + p;
  return Status(StatusCode::kInvalidArgument, message);
}

// ---------------------------------------------------------------------------
// Validation.

class Checker {
 public:
  explicit Checker(const LoadedConfig& loaded) : loaded_(loaded) {}

  std::string From(std::string_view key) const {
    auto it = loaded_.origins.find(std::string(key));
    return it == loaded_.origins.end() ? "default" : it->second.description;
  }

  void Fail(std::string_view key, std::string_view value, std::string_view why) {
    problems_.push_back(fmt::format("{} = {} (from {}): {}", key, value, From(key), why));
  }

  void Range(std::string_view key, int64_t value, int64_t min, int64_t max) {
    if (value < min || value > max) {
      Fail(key, std::to_string(value), fmt::format("must be between {} and {}", min, max));
    }
  }
  void AtLeast(std::string_view key, int64_t value, int64_t min) {
    if (value < min) Fail(key, std::to_string(value), fmt::format("must be at least {}", min));
  }
  void OneOf(std::string_view key, const std::string& value,
             std::initializer_list<std::string_view> allowed) {
    for (std::string_view a : allowed) {
      if (value == a) return;
    }
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : " | ") + std::string(a);
    Fail(key, Quoted(value), "must be one of " + list);
  }
  void NotEmpty(std::string_view key, const std::string& value) {
    if (value.empty()) Fail(key, "\"\"", "must not be empty");
  }
  // Values rendered into the mysqld option file: a newline would start a new option.
  void OneLine(std::string_view key, const std::string& value) {
    if (value.find_first_of("\r\n") != std::string::npos) {
      Fail(key, Quoted(value), "must not contain a line break");
    }
  }
  void AbsolutePath(std::string_view key, const std::string& value) {
    if (value.empty() || value[0] != '/') Fail(key, Quoted(value), "must be an absolute path");
    OneLine(key, value);
  }
  void HostPort(std::string_view key, const std::string& value, bool port_required) {
    size_t colon = value.rfind(':');
    // "[::1]:53" or "::1" (bare IPv6, no port) or "host:port".
    bool bare_ipv6 = colon != std::string::npos && value.find(':') != colon && value[0] != '[';
    if (value.empty() || value.find_first_of(" \t\r\n,") != std::string::npos) {
      Fail(key, Quoted(value), "must be host:port");
      return;
    }
    bool bracketed_no_port = value[0] == '[' && value.back() == ']';
    if (colon == std::string::npos || bare_ipv6 || bracketed_no_port) {
      if (port_required) Fail(key, Quoted(value), "must be host:port");
      return;
    }
    auto port = ParseInt(std::string_view(value).substr(colon + 1));
    if (!port || *port < 1 || *port > 65535 || colon == 0) {
      Fail(key, Quoted(value), "must be host:port with a port between 1 and 65535");
    }
  }

  std::vector<std::string>& problems() { return problems_; }

 private:
  const LoadedConfig& loaded_;
  std::vector<std::string> problems_;
};

// Options replboot itself decides; letting [mysql.options] override them would break
// identity (server-id), the role (read_only) or replboot's own connection to mysqld.
const std::map<std::string, std::string_view>& ManagedOptions() {
  static const std::map<std::string, std::string_view> kManaged = {
      {"server_id", "set node.server_id_offset; the ordinal gives the rest"},
      {"read_only", "it follows the role (ordinal 0 is the primary)"},
      {"super_read_only", "it follows the role (ordinal 0 is the primary)"},
      {"port", "use mysql.port"},
      {"datadir", "use mysql.datadir"},
      {"socket", "use mysql.socket"},
      {"bind_address", "use mysql.bind_address"},
  };
  return kManaged;
}

// The managed option `name` sets, if any. MariaDB also takes an unambiguous prefix of an
// option's name (getopt-prefix-matching, on by default: "read_o" is read_only), so a
// prefix of a managed name counts as that name.
std::optional<std::pair<std::string, std::string_view>> ManagedOption(std::string_view name) {
  const std::string canonical = CanonicalOptionName(name);
  if (canonical.empty()) return std::nullopt;
  for (const auto& [managed, why] : ManagedOptions()) {
    if (managed.starts_with(canonical)) return std::make_pair(managed, why);
  }
  return std::nullopt;
}

}  // namespace

bool IsAllowedExtraVariable(std::string_view name) {
  static constexpr std::string_view kAllowed[] = {
      "REPLBOOT_CONFIG",   "REPLBOOT_BIN",        "REPLBOOT_SOURCE_DIR",
      "REPLBOOT_KEEP_TMP", "REPLBOOT_BASE_IMAGE", "REPLBOOT_IMAGE_CACHE",
  };
  for (std::string_view allowed : kAllowed) {
    if (name == allowed) return true;
  }
  return name.starts_with("REPLBOOT_TEST_");
}

namespace {

constexpr std::string_view kPlaceholderAdvice =
    "looks like a placeholder (such as the CHANGE-ME values k8s/secret.yaml ships, which are "
    "public); set a generated value, e.g. `openssl rand -base64 24`";

std::vector<std::string> ValidationProblems(const LoadedConfig& loaded) {
  const Config& c = loaded.config;
  Checker check(loaded);

  check.OneOf("node.flavour", c.node.flavour, {"auto", "mariadb", "mysql"});
  check.Range("node.server_id_offset", c.node.server_id_offset, 1, UINT32_MAX);
  check.OneLine("node.hostname", c.node.hostname);
  check.Range("bootstrap.recover_wait", c.bootstrap.recover_wait, 0, 86400);

  check.AbsolutePath("mysql.datadir", c.mysql.datadir);
  check.AbsolutePath("mysql.socket", c.mysql.socket);
  check.NotEmpty("mysql.bind_address", c.mysql.bind_address);
  check.OneLine("mysql.bind_address", c.mysql.bind_address);
  check.Range("mysql.port", c.mysql.port, 1, 65535);
  check.NotEmpty("mysql.install_db", c.mysql.install_db);
  check.NotEmpty("mysql.user", c.mysql.user);
  check.NotEmpty("mysql.config_dir", c.mysql.config_dir);
  check.AtLeast("mysql.startup_timeout", c.mysql.startup_timeout, 1);
  check.AtLeast("mysql.shutdown_grace", c.mysql.shutdown_grace, 1);
  for (const auto& [name, value] : c.mysql.options) {
    std::string key = std::string(kOptionsKey) + "." + name;
    bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.';
    });
    if (!valid_name) {
      check.Fail(key, Quoted(value), "option names are letters, digits, '_', '-' and '.'");
      continue;
    }
    if (auto managed = ManagedOption(name)) {
      check.Fail(
          key, Quoted(value),
          fmt::format("replboot manages this option ({}): {}", managed->first, managed->second));
    }
    check.OneLine(key, value);
  }

  check.NotEmpty("cluster.service", c.cluster.service);
  if (!std::all_of(c.cluster.service.begin(), c.cluster.service.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.';
      })) {
    check.Fail("cluster.service", Quoted(c.cluster.service),
               "must be a DNS name (letters, digits, '-', '.')");
  }
  check.NotEmpty("cluster.app_user", c.cluster.app_user);
  for (const std::string& name : c.cluster.app_databases) {
    static const std::set<std::string, std::less<>> kSystem = {
        "mysql", "sys", "performance_schema", "information_schema", "replboot"};
    if (name == "*") continue;
    if (name.empty() || name.size() > 64 ||
        name.find_first_of(std::string_view("`/\\.\0", 5)) != std::string::npos) {
      check.Fail("cluster.app_databases", Quoted(name),
                 "must be a database name (1 to 64 characters, no '`', '/', '\\', '.') or \"*\"");
    } else if (kSystem.contains(name)) {
      check.Fail("cluster.app_databases", Quoted(name),
                 "is a system schema: the application user gets no grants there");
    }
  }

  for (const std::string& server : c.dns.servers) check.HostPort("dns.servers", server, false);
  check.AtLeast("dns.timeout_ms", c.dns.timeout_ms, 1);
  check.AtLeast("dns.tries", c.dns.tries, 1);
  check.AtLeast("dns.lookup_deadline", c.dns.lookup_deadline, 1);
  check.OneOf("dns.policy", c.dns.policy, {"nearest-lower", "primary", "any-replica"});

  if (c.backup.secret_file.empty() && !c.backup.secret.empty() &&
      c.backup.secret.size() < kMinBackupSecretBytes) {
    check.Fail("backup.secret", "<redacted>",
               fmt::format("is {} bytes; it must be at least {} bytes (it keys the peers' "
                           "handshake, which a short one does not protect)",
                           c.backup.secret.size(), kMinBackupSecretBytes));
  }
  // The file wins (ResolveSecret), so an inline value beside a *_file is never used; what a
  // file holds is checked when it is read.
  struct InlineSecret {
    std::string_view key;
    const std::string& value;
    const std::string& file;
  };
  for (const InlineSecret& s : {
           InlineSecret{"mysql.root_password", c.mysql.root_password, c.mysql.root_password_file},
           InlineSecret{"replication.password", c.replication.password,
                        c.replication.password_file},
           InlineSecret{"backup.password", c.backup.password, c.backup.password_file},
           InlineSecret{"backup.secret", c.backup.secret, c.backup.secret_file},
           InlineSecret{"cluster.app_password", c.cluster.app_password,
                        c.cluster.app_password_file}}) {
    if (s.file.empty() && LooksLikePlaceholder(s.value)) {
      check.Fail(s.key, "<redacted>", kPlaceholderAdvice);
    }
  }
  check.HostPort("backup.listen", c.backup.listen, true);
  check.Range("backup.port", c.backup.port, 1, 65535);
  check.NotEmpty("backup.user", c.backup.user);
  check.AtLeast("backup.max_concurrent", c.backup.max_concurrent, 1);
  check.AtLeast("backup.bandwidth_limit", c.backup.bandwidth_limit, 0);
  if (auto compress = clone::ParseCompressSetting(c.backup.compress); !compress) {
    check.Fail("backup.compress", Quoted(c.backup.compress), compress.error().message());
  }
  check.AtLeast("backup.parallel", c.backup.parallel, 0);
  check.Range("backup.tool_nice", c.backup.tool_nice, 0, 19);
  check.Range("backup.min_send_rate_kib", c.backup.min_send_rate_kib, 0, 1 << 30);
  check.OneOf("backup.tool_io_priority", c.backup.tool_io_priority, {"lowest", "idle", "normal"});
  check.AtLeast("backup.idle_timeout", c.backup.idle_timeout, 1);
  check.Range("backup.fanout_window_ms", c.backup.fanout_window_ms, 0, 60'000);
  check.Range("backup.fanout_max_receivers", c.backup.fanout_max_receivers, 1, 64);
  check.Range("backup.fanout_buffer_mb", c.backup.fanout_buffer_mb, 1, 1024);
  check.Range("backup.fanout_grace_ms", c.backup.fanout_grace_ms, 0, 600'000);
  check.Range("backup.fanout_slow_window_ms", c.backup.fanout_slow_window_ms,
              c.backup.fanout_grace_ms, 3'600'000);
  check.Range("backup.resume_window", c.backup.resume_window, 0, 86'400);
  check.Range("backup.resume_spool_mb", c.backup.resume_spool_mb, 128, 1 << 20);
  check.Range("backup.max_unauthenticated", c.backup.max_unauthenticated, 2, 4096);
  check.Range("backup.handshake_threads", c.backup.handshake_threads, 1, 64);
  // One address must never hold every slot: the peers' probes need the rest.
  check.Range("backup.max_unauthenticated_per_address", c.backup.max_unauthenticated_per_address,
              1, std::max<int64_t>(1, c.backup.max_unauthenticated / 2));
  {
    // --use-memory takes a number with an optional K/M/G suffix.
    const std::string& m = c.backup.use_memory;
    size_t digits = 0;
    while (digits < m.size() && std::isdigit(static_cast<unsigned char>(m[digits]))) ++digits;
    std::string suffix = Upper(m.substr(digits));
    if (digits == 0 || !(suffix.empty() || suffix == "K" || suffix == "M" || suffix == "G")) {
      check.Fail("backup.use_memory", Quoted(m), "must be a size such as 512M or 1G");
    }
  }
  if (c.backup.tls) {
    if (c.backup.tls_cert.empty())
      check.Fail("backup.tls_cert", "\"\"", "is required when backup.tls is true");
    if (c.backup.tls_key.empty())
      check.Fail("backup.tls_key", "\"\"", "is required when backup.tls is true");
  }

  check.NotEmpty("replication.user", c.replication.user);
  check.AtLeast("replication.max_lag", c.replication.max_lag, 1);
  check.AtLeast("replication.connect_retry", c.replication.connect_retry, 1);
  check.AtLeast("replication.start_deadline", c.replication.start_deadline, 1);
  check.AtLeast("replication.reclone_after", c.replication.reclone_after, 1);
  check.AtLeast("replication.reclone_min_interval", c.replication.reclone_min_interval, 0);
  {
    // A CA that is set but unused would read as "verified" to whoever set it.
    const std::pair<const char*, const std::string*> files[] = {
        {"replication.tls_ca", &c.replication.tls_ca},
        {"replication.tls_cert", &c.replication.tls_cert},
        {"replication.tls_key", &c.replication.tls_key}};
    for (const auto& [key, value] : files) {
      if (value->empty()) continue;
      if (!c.replication.tls) check.Fail(key, Quoted(*value), "needs replication.tls = true");
      check.AbsolutePath(key, *value);
    }
    if (c.replication.tls_cert.empty() != c.replication.tls_key.empty()) {
      check.Fail(c.replication.tls_cert.empty() ? "replication.tls_cert" : "replication.tls_key",
                 "\"\"", "replication.tls_cert and replication.tls_key go together");
    }
  }

  check.HostPort("http.listen", c.http.listen, true);
  check.Range("http.max_connections", c.http.max_connections, 2, 65'536);
  // One client must never hold every connection: the kubelet's probes need the rest.
  check.Range("http.max_connections_per_address", c.http.max_connections_per_address, 1,
              std::max<int64_t>(1, c.http.max_connections / 2));
  check.Range("http.request_timeout_ms", c.http.request_timeout_ms, 100, 600'000);

  check.OneOf("archive.addressing", c.archive.addressing, {"auto", "path", "virtual"});
  check.Range("archive.keep_last", c.archive.keep_last, 0, 100000);
  check.Range("archive.keep_days", c.archive.keep_days, 0, 36500);
  check.Range("archive.object_size_mb", c.archive.object_size_mb, 1, 256);
  check.Range("archive.compression_level", c.archive.compression_level, 1, 19);
  if (!c.archive.store.empty() && c.archive.key_file.empty())
    check.Fail("archive.key_file", "\"\"", "is required when archive.store is set");
  if (auto schedule = archive::ParseSchedule(c.archive.schedule); !schedule) {
    check.Fail("archive.schedule", Quoted(c.archive.schedule), schedule.error().message());
  } else if (schedule->kind != archive::Schedule::Kind::kOff && c.archive.store.empty()) {
    check.Fail("archive.schedule", Quoted(c.archive.schedule), "needs archive.store");
  }
  if (c.archive.binlog && c.archive.store.empty())
    check.Fail("archive.binlog", "true", "needs archive.store");
  // Under 100 ms a segment per transaction; over a minute the archive's lag goal is lost.
  check.Range("archive.binlog_seal_interval_ms", c.archive.binlog_seal_interval_ms, 100, 60'000);
  // One segment is held in memory and uploaded whole: 64 KiB .. 256 MiB.
  check.Range("archive.binlog_seal_bytes", c.archive.binlog_seal_bytes, 64 << 10, 256 << 20);
  check.Range("archive.binlog_lease_timeout", c.archive.binlog_lease_timeout, 5, 3600);
  check.Range("archive.claim_step", c.archive.claim_step, 1, 3600);
  check.Range("archive.claim_timeout", c.archive.claim_timeout, 10, 7 * 86'400);
  check.Range("archive.retry_backoff", c.archive.retry_backoff, 1, 3600);
  if (c.archive.restore_test_interval != 0)
    check.Range("archive.restore_test_interval", c.archive.restore_test_interval, 10,
                366 * 86'400);
  for (const auto& [key, value] :
       {std::pair<const char*, const std::string*>{"archive.key_file", &c.archive.key_file},
        {"archive.ca_file", &c.archive.ca_file},
        {"archive.access_key_file", &c.archive.access_key_file},
        {"archive.secret_key_file", &c.archive.secret_key_file},
        {"archive.session_token_file", &c.archive.session_token_file},
        {"archive.scratch_dir", &c.archive.scratch_dir}}) {
    if (!value->empty()) check.AbsolutePath(key, *value);
  }
  if (c.archive.access_key_file.empty() != c.archive.secret_key_file.empty()) {
    check.Fail(c.archive.access_key_file.empty() ? "archive.access_key_file"
                                                 : "archive.secret_key_file",
               "\"\"", "archive.access_key_file and archive.secret_key_file go together");
  }
  check.OneOf("log.level", c.log.level,
              {"trace", "debug", "info", "warn", "error", "critical", "off"});
  check.OneOf("log.format", c.log.format, {"logfmt", "json"});

  return std::move(check.problems());
}

}  // namespace

std::string CanonicalOptionName(std::string_view name) {
  std::string out = Lower(name);
  std::replace(out.begin(), out.end(), '-', '_');
  // my_getopt strips "loose-" first, then one of the others; stripping them in any order
  // and any number also covers spellings mysqld would refuse.
  static constexpr std::string_view kPrefixes[] = {"loose_",   "skip_",    "enable_",
                                                   "disable_", "maximum_", "autoset_"};
  for (bool stripped = true; stripped;) {
    stripped = false;
    for (std::string_view prefix : kPrefixes) {
      if (out.size() > prefix.size() && out.starts_with(prefix)) {
        out.erase(0, prefix.size());
        stripped = true;
      }
    }
  }
  return out;
}

Status CheckBackupSecret(std::string_view secret, std::string_view origin) {
  if (secret.empty() || secret.size() >= kMinBackupSecretBytes) return Status::Ok();
  return Status(StatusCode::kInvalidArgument,
                fmt::format("backup.secret from {} is {} bytes; it must be at least {} bytes "
                            "(e.g. `head -c 32 /dev/urandom | base64`)",
                            origin, secret.size(), kMinBackupSecretBytes));
}

Status Validate(const LoadedConfig& loaded) { return Problems(ValidationProblems(loaded)); }

Result<LoadedConfig> LoadConfig(const LoadOptions& options) {
  Loader loader;

  std::optional<std::string> file = options.config_file;
  if (!file) {
    if (auto it = options.env.find("REPLBOOT_CONFIG");
        it != options.env.end() && !it->second.empty()) {
      file = it->second;
    }
  }
  if (!file && !options.default_config_file.empty()) {
    // The default file is optional (flags and environment may say everything), but a
    // file that exists and cannot be read is still an error.
    struct stat st;
    if (::stat(options.default_config_file.c_str(), &st) == 0) file = options.default_config_file;
  }
  if (file) loader.LoadFile(*file);

  loader.LoadEnvironment(options.env);
  for (const std::string& s : options.sets) loader.LoadSet(s);
  for (const auto& [key, value] : options.flags) {
    auto name = options.flag_names.find(key);
    loader.LoadFlag(key, value,
                    name != options.flag_names.end() ? name->second : "flag for " + key);
  }
  loader.DefaultHostname();

  // Layer problems and value problems together: the whole list at once.
  std::vector<std::string> problems = loader.problems();
  for (std::string& p : ValidationProblems(loader.loaded())) problems.push_back(std::move(p));
  REPLBOOT_RETURN_IF_ERROR(Problems(problems));
  return std::move(loader.loaded());
}

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (!entry.starts_with("REPLBOOT_")) continue;
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

bool LooksLikePlaceholder(std::string_view value) {
  if (value.empty()) return false;
  if (std::all_of(value.begin(), value.end(), [&](char ch) { return ch == value[0]; })) {
    return true;
  }
  // "CHANGE-ME", "change_me" and "Change Me" are one placeholder: compare letters and digits.
  std::string word;
  for (char ch : value) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
  for (std::string_view part : {"changeme", "replaceme", "placeholder"}) {
    if (word.find(part) != std::string::npos) return true;
  }
  // Only as the whole value: "secret" and "password" are fair parts of a chosen passphrase.
  for (std::string_view whole : {"secret", "password", "passwd", "example", "changeit"}) {
    if (word == whole) return true;
  }
  return false;
}

Result<std::string> ResolveSecret(const std::string& inline_value, const std::string& file,
                                  const std::string& name) {
  std::string value = inline_value;
  if (!file.empty()) {
    auto content = files::ReadFile(file);
    if (!content) return Error(content.error().WithContext(fmt::format("reading {} file", name)));
    value = std::move(*content);
    // Secrets written with `echo` or a YAML block end in a newline that is not part of it.
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  }
  if (LooksLikePlaceholder(value)) {
    return Error(StatusCode::kInvalidArgument, "{} from {} {}", name,
                 file.empty() ? std::string("the configuration") : file, kPlaceholderAdvice);
  }
  return value;
}

std::string ShowConfig(const LoadedConfig& loaded) {
  Config copy = loaded.config;  // fields are reached through non-const accessors
  auto origin = [&](const std::string& key) {
    auto it = loaded.origins.find(key);
    if (it == loaded.origins.end() || it->second.description == "default") return std::string();
    return "  # " + it->second.description;
  };
  std::string out;
  for (const Setting& s : Settings()) {
    Field f = s.field(copy);
    std::string key(s.key);
    if (auto* m = std::get_if<std::map<std::string, std::string>*>(&f); m && !(*m)->empty()) {
      for (const auto& [name, value] : **m) {
        std::string option_key = key + "." + name;
        out += fmt::format("{} = {}{}\n", option_key, Quoted(value), origin(option_key));
      }
      continue;
    }
    out += fmt::format("{} = {}{}\n", key, FormatValue(f, s.secret), origin(key));
  }
  return out;
}

std::vector<SettingInfo> DescribeSettings() {
  Config defaults;
  std::vector<SettingInfo> out;
  for (const Setting& s : Settings()) {
    Field f = s.field(defaults);
    SettingInfo info;
    info.key = std::string(s.key);
    info.env = EnvName(s.key);
    info.type = std::string(TypeName(f));
    info.secret = s.secret;
    info.default_value = FormatValue(f, s.secret);
    info.description = std::string(s.description);
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace replboot::conf
