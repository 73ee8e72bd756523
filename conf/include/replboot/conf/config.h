// conf/: who this node is and how it is configured.
//
// Settings are layered: built-in defaults < TOML file < REPLBOOT_<SECTION>_<KEY>
// environment < command-line flags (--set section.key=value and the common
// flags). Every layer is a pure function over a Config so tests never touch the
// real environment. Every setting knows where its value came from, so an error
// can name the file and line, the variable or the flag.
#ifndef REPLBOOT_CONF_CONFIG_H_
#define REPLBOOT_CONF_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"

namespace replboot::conf {

enum class Role { kPrimary, kReplica };
std::string_view RoleName(Role r);  // "primary" / "replica"

struct Config {
  struct Node {
    std::string hostname;            // default: gethostname()
    int64_t server_id_offset = 100;  // server-id = offset + ordinal
    std::string flavour = "auto";    // auto | mariadb | mysql
  } node;

  struct Bootstrap {
    // Seconds a primary with an empty datadir waits for peers that are in DNS to answer
    // before it initializes an empty database (none in DNS: at once).
    int64_t recover_wait = 60;
  } bootstrap;

  struct Mysql {
    std::string datadir = "/var/lib/mysql";
    std::string bind_address = "0.0.0.0";
    int64_t port = 3306;
    std::string socket = "/run/mysqld/mysqld.sock";
    std::string mysqld = "";          // server binary; "" = mariadbd, else mysqld, from PATH
    std::string install_db = "mariadb-install-db";
    std::string user = "mysql";       // OS user mysqld runs as
    std::string config_dir = "/etc/replboot";  // where the rendered replboot.cnf goes
    std::string root_password;        // secret
    std::string root_password_file;   // file holding the root password (Kubernetes Secret)
    int64_t startup_timeout = 120;    // seconds to wait for the first connection
    int64_t shutdown_grace = 25;      // seconds between SIGTERM and SIGKILL
    std::map<std::string, std::string> options;  // [mysql.options]: passed through to mysqld
  } mysql;

  struct Cluster {
    std::string service = "mysql";   // headless Service: peer N is <prefix>-N.<service>
    std::string app_user = "app";    // ordinary application user (no SUPER)
    std::string app_password;        // secret
    std::string app_password_file;
    // The databases the app user works in (created if missing); "*" = every database, the
    // mysql schema included, which lets the app user edit the grant tables.
    std::vector<std::string> app_databases = {"app"};
  } cluster;

  struct Dns {
    std::vector<std::string> servers;  // "127.0.0.1:5353"; empty = /etc/resolv.conf
    std::string resolv_conf = "/etc/resolv.conf";
    std::string srv_port_name = "";    // when set, SRV _<name>._tcp.<service> gives ports
    int64_t timeout_ms = 2000;         // per query try
    int64_t tries = 3;
    int64_t lookup_deadline = 300;     // seconds to wait for a name to appear in DNS
    std::string policy = "nearest-lower";  // nearest-lower | primary | any-replica
  } dns;

  struct Backup {
    std::string listen = "0.0.0.0:3307";
    int64_t port = 3307;               // port of peers' backup endpoints
    std::string tool = "";             // "" = mariabackup / xtrabackup by flavour
    std::string user = "replboot_backup";
    std::string password;              // secret
    std::string password_file;
    std::string secret;                // shared secret for peer authentication
    std::string secret_file;
    int64_t max_concurrent = 1;
    int64_t bandwidth_limit = 0;       // bytes/s, 0 = unlimited
    // Compression on the wire this node asks its donor for when it clones: auto | off |
    // zstd[:level] (clone/include/replboot/clone/protocol.h); the donor grants within its budget.
    std::string compress = "auto";
    std::string use_memory = "1G";     // --use-memory for --prepare
    int64_t parallel = 0;              // tool's --parallel; 0 = half the usable CPUs, at least 1
    // The donor's backup tool runs below mysqld: its nice value, and its I/O class ("lowest":
    // best-effort level 7; "idle": only when the disk is otherwise idle; "normal": as replboot).
    int64_t tool_nice = 10;
    // KiB/s a receiver must at least take each stream frame at (plus 10 s); 0 = off
    int64_t min_send_rate_kib = 256;
    std::string tool_io_priority = "lowest";
    int64_t idle_timeout = 300;        // seconds without a byte before a stream is given up
    // ms the first backup request of a run waits for more to share its backup; 0 = off
    int64_t fanout_window_ms = 5000;
    // Fan-out limits: receivers of one run, each one's queue of the tool's output (MiB), and
    // how long in total, within fanout_slow_window_ms, a full queue may hold the others back
    // before its receiver is dropped (clone/src/fanout.h: below half the others' pace).
    int64_t fanout_max_receivers = 8;
    int64_t fanout_buffer_mb = 8;
    int64_t fanout_grace_ms = 5000;
    int64_t fanout_slow_window_ms = 10000;
    // Resume after a dropped link (clone/include/replboot/clone/protocol.h, "Why resume"):
    // seconds a donor keeps a run for a receiver that went away (0 = off), and the MiB of disk
    // its spool may use meanwhile (at least 128).
    int64_t resume_window = 180;
    int64_t resume_spool_mb = 1024;
    // Admission before authentication: connections authenticating at once, overall and
    // from one address (at most half of the overall cap), and the handshake threads.
    int64_t max_unauthenticated = 32;
    int64_t max_unauthenticated_per_address = 8;
    int64_t handshake_threads = 4;
    bool tls = false;
    std::string tls_cert;
    std::string tls_key;
    std::string tls_ca;
  } backup;

  struct Replication {
    std::string user = "replboot_repl";
    std::string password;              // secret
    std::string password_file;
    int64_t max_lag = 30;              // seconds
    int64_t connect_retry = 5;
    int64_t start_deadline = 60;       // seconds for both threads to run after START SLAVE
    // TLS on every SQL connection to a peer: the replica's IO thread (MASTER_SSL) and
    // replboot's own (the GTID comparison with the primary). With tls_ca the peer's
    // certificate must chain to it and name the peer (<prefix>-0.<service>); without, the
    // traffic is encrypted but whoever is on the path can pose as the primary. Absolute paths:
    // mysqld reads them too, from its own working directory.
    bool tls = false;
    std::string tls_ca;
    std::string tls_cert;              // client certificate and key, for REQUIRE X509 accounts
    std::string tls_key;
    // Day two: a replica whose source purged the binlogs it needs re-clones itself once the
    // failure has lasted reclone_after seconds, at most once per reclone_min_interval seconds
    // (kept across restarts), never while it holds transactions the primary lacks.
    bool auto_reclone = true;
    int64_t reclone_after = 300;
    int64_t reclone_min_interval = 3600;
  } replication;

  // Backups outside the cluster (archive/, store/): off while `store` is "".
  struct Archive {
    std::string store;                 // file:///path | s3://bucket[/prefix]
    std::string endpoint;              // s3: http(s)://host:port; "" = AWS
    std::string region = "us-east-1";
    std::string addressing = "auto";   // auto | path | virtual
    std::string ca_file;               // s3 over TLS: the endpoint's CA
    std::string access_key_file;       // "" = AWS_ACCESS_KEY_ID etc. from the environment
    std::string secret_key_file;
    std::string session_token_file;
    std::string key_file;              // the encryption key (secret text, >= 32 characters)
    int64_t keep_last = 7;             // retention: the newest N (0 = rule off)
    int64_t keep_days = 0;             // and/or D days (0 = rule off)
    int64_t object_size_mb = 16;       // logical bytes per stored object
    int64_t compression_level = 1;     // zstd level of the objects
    // A primary with an empty datadir and no peer holding data restores this cluster's newest
    // backup; "" = the one cluster whose backups the store holds (several: it waits).
    std::string source_cluster;
    // Where `backup test-restore` restores and starts a throwaway server; "" =
    // <mysql.datadir>.replboot-restore-test. Never inside the datadir, nor holding it.
    std::string scratch_dir;
    // When `replboot run` takes backups by itself (archive/schedule.h): off | every <N>s|m|h|d |
    // daily HH:MM (UTC). Checked at load; every node of a cluster should have the same.
    std::string schedule = "off";
    // Seconds between the turns of the nodes that may take a slot (daemon/backup_scheduler.h):
    // the turn holder first, then each next replica, the primary last.
    int64_t claim_step = 30;
    // A claim without a manifest older than this is taken for a dead taker's: another node may
    // try the slot again under its next attempt id.
    int64_t claim_timeout = 3600;
    // Seconds before a failed slot is tried again (doubling, within the slot).
    int64_t retry_backoff = 30;
    // Seconds between restore tests (daemon/restore_test.h) that the node which just took a
    // scheduled backup runs, when no backup passed one within this; 0 = none by schedule.
    int64_t restore_test_interval = 86'400;
    // The binlog archive (daemon/binlog_archiver.h): one node streams the primary's binlog
    // into the store, sealed in segments of whole transactions. Needs `store`.
    bool binlog = false;
    // A segment is sealed when its first transaction arrived this long ago (the archive's lag
    // is about this plus the upload), or when it holds binlog_seal_bytes.
    int64_t binlog_seal_interval_ms = 2000;
    int64_t binlog_seal_bytes = 16 << 20;
    // Seconds without a new heartbeat of the archiver's lease before another node takes over.
    int64_t binlog_lease_timeout = 30;
  } archive;

  struct Restore {
    // What a primary that bootstraps from the store restores (daemon/restore_target.h):
    // latest | an RFC 3339 time | a GTID position; "" = everything archived (latest).
    std::string target;
  } restore;

  struct Http {
    std::string listen = "0.0.0.0:8008";
    // Open connections, overall and from one address (at most half of the overall cap: the
    // kubelet's probes always find room), and the deadline for reading one request.
    int64_t max_connections = 64;
    int64_t max_connections_per_address = 16;
    int64_t request_timeout_ms = 10'000;
  } http;

  struct Log {
    std::string level = "info";
    std::string format = "logfmt";     // logfmt | json
  } log;
};

// Where a setting's value came from, for error messages and `config show`.
struct Origin {
  std::string description;  // "default", "/etc/replboot/replboot.toml:12", "REPLBOOT_MYSQL_PORT", "--set mysql.port"
};

// What the command line and the process hand to LoadConfig().
struct LoadOptions {
  std::optional<std::string> config_file;  // --config; else /etc/replboot/replboot.toml if it exists
  std::string default_config_file = "/etc/replboot/replboot.toml";
  std::map<std::string, std::string> env;   // the REPLBOOT_* variables (tests pass their own)
  std::vector<std::string> sets;            // --set section.key=value, in order
  std::map<std::string, std::string> flags; // common flags already mapped to "section.key"
  // "section.key" -> the flag that set it ("--port"), so errors name what the user typed.
  std::map<std::string, std::string> flag_names;
};

struct LoadedConfig {
  Config config;
  std::map<std::string, Origin> origins;  // "section.key" -> where its value came from
};

// Applies every layer and validates; all problems are reported at once.
//
// Layers, later wins: defaults; the TOML file (LoadOptions::config_file, else the
// file named by REPLBOOT_CONFIG, else default_config_file when it exists); the
// environment (REPLBOOT_<SECTION>_<KEY>; lists as "a,b"; mysql.options as
// "k=v,k2=v2" or one option per REPLBOOT_MYSQL_OPTIONS_<NAME>); --set in order
// (`--set mysql.options.<name>=v` sets one pass-through option); the dedicated flags.
// node.hostname falls back to gethostname() when no layer set it.
//
// A REPLBOOT_* variable that names no setting is an error (a typo must not be
// silently ignored), except those for which IsAllowedExtraVariable() is true.
Result<LoadedConfig> LoadConfig(const LoadOptions& options);

// REPLBOOT_* variables that are not settings: REPLBOOT_CONFIG (the TOML file),
// REPLBOOT_BIN, REPLBOOT_SOURCE_DIR and REPLBOOT_KEEP_TMP (test runner and
// harness), REPLBOOT_BASE_IMAGE and REPLBOOT_IMAGE_CACHE (scripts/podman-setup),
// and any REPLBOOT_TEST_* (free for tests). A developer's shell may export them.
bool IsAllowedExtraVariable(std::string_view name);

// Every problem of an assembled config (ports, enums, positive timeouts, log
// level, option names, values that would break the rendered file), each naming
// the key and where its value came from. kInvalidArgument listing all of them.
Status Validate(const LoadedConfig& loaded);

// The settings registry, for `replboot config keys` and the README table.
struct SettingInfo {
  std::string key;            // "mysql.port"
  std::string env;            // "REPLBOOT_MYSQL_PORT"
  std::string type;           // "string" | "int" | "bool" | "list" | "map"
  bool secret = false;
  std::string default_value;  // as ShowConfig prints it
  std::string description;
};
std::vector<SettingInfo> DescribeSettings();

// The REPLBOOT_* variables of this process, for LoadOptions::env.
std::map<std::string, std::string> ProcessEnvironment();

// Resolves a secret that can be given inline or as a file (a Kubernetes Secret
// mounted as a file); the file wins. Trailing newline of the file is dropped. A value that
// looks like a placeholder (LooksLikePlaceholder) is kInvalidArgument naming `name` and the
// file (or "the configuration"), never the value.
Result<std::string> ResolveSecret(const std::string& inline_value, const std::string& file,
                                  const std::string& name);

// True for a secret nobody chose: the values k8s/secret.yaml ships ("CHANGE-ME-..."), are
// public, so a cluster applied without editing them would accept anyone who read the
// repository. Matches, ignoring case and punctuation, values containing "changeme",
// "replaceme" or "placeholder", the bare words "secret", "password", "passwd", "example" and
// "changeit", and one character repeated ("xxxxxxxx"). "" is not a placeholder (not set).
bool LooksLikePlaceholder(std::string_view value);

// backup.secret keys the handshake's MAC: a short one falls to an offline brute force of
// one captured handshake.
inline constexpr size_t kMinBackupSecretBytes = 16;
// kInvalidArgument naming `origin` (never the secret) when a set secret is shorter than
// kMinBackupSecretBytes; "" (not set) is for the caller to judge. Validate() checks the
// inline value; whoever resolves backup.secret_file checks what it read.
Status CheckBackupSecret(std::string_view secret, std::string_view origin);

// The name mysqld resolves an option-file option to, for comparing names: lower case,
// '-' as '_', without the prefixes mysqld's option parser strips (loose-, skip-, enable-,
// disable-, maximum-, autoset-): "loose-Skip-Read-Only" is "read_only".
std::string CanonicalOptionName(std::string_view name);

// "section.key = value" lines of the effective settings, secrets redacted.
std::string ShowConfig(const LoadedConfig& loaded);

}  // namespace replboot::conf

#endif  // REPLBOOT_CONF_CONFIG_H_
