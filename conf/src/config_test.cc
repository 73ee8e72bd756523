#include "replboot/conf/config.h"

#include <gmock/gmock.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "replboot/testing/temp_dir.h"

namespace replboot::conf {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Never read the machine's /etc/replboot/replboot.toml.
    options_.default_config_file = tmp_.Path("absent.toml");
    options_.flags["node.hostname"] = "mysql-1";
  }
  std::string WriteToml(const std::string& text, const std::string& name = "replboot.toml") {
    std::string path = tmp_.Path(name);
    std::ofstream(path) << text;
    return path;
  }

  replboot::testing::TempDir tmp_{"config-test"};
  LoadOptions options_;
};

TEST_F(ConfigTest, DefaultsAlone) {
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.mysql.port, 3306);
  EXPECT_EQ(loaded->config.mysql.datadir, "/var/lib/mysql");
  EXPECT_EQ(loaded->origins.at("mysql.port").description, "default");
}

TEST_F(ConfigTest, PrecedenceDefaultsFileEnvFlags) {
  options_.config_file = WriteToml(R"(
[mysql]
port = 4000
datadir = "/data/file"
socket = "/run/file.sock"
bind_address = "127.0.0.5"

[dns]
policy = "primary"
)");
  options_.env = {{"REPLBOOT_MYSQL_DATADIR", "/data/env"},
                  {"REPLBOOT_MYSQL_SOCKET", "/run/env.sock"},
                  {"REPLBOOT_MYSQL_PORT", "4001"}};
  options_.sets = {"mysql.socket=/run/set.sock", "mysql.port=4002"};
  options_.flags["mysql.port"] = "4003";
  options_.flag_names["mysql.port"] = "--port";

  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  const Config& c = loaded->config;
  EXPECT_EQ(c.mysql.bind_address, "127.0.0.5");  // file over default
  EXPECT_EQ(c.dns.policy, "primary");
  EXPECT_EQ(c.mysql.datadir, "/data/env");     // env over file
  EXPECT_EQ(c.mysql.socket, "/run/set.sock");  // --set over env
  EXPECT_EQ(c.mysql.port, 4003);               // flag over --set
  EXPECT_EQ(c.mysql.user, "mysql");            // untouched default

  EXPECT_EQ(loaded->origins.at("mysql.bind_address").description, *options_.config_file + ":6");
  EXPECT_EQ(loaded->origins.at("mysql.datadir").description,
            "environment variable REPLBOOT_MYSQL_DATADIR");
  EXPECT_EQ(loaded->origins.at("mysql.socket").description, "--set mysql.socket");
  EXPECT_EQ(loaded->origins.at("mysql.port").description, "--port");
  EXPECT_EQ(loaded->origins.at("mysql.user").description, "default");
}

TEST_F(ConfigTest, ConfigFileFromEnvironmentAndDefaultPath) {
  std::string from_env = WriteToml("[mysql]\nport = 5000\n", "env.toml");
  options_.env = {{"REPLBOOT_CONFIG", from_env}};
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.mysql.port, 5000);

  options_.env.clear();
  options_.default_config_file = WriteToml("[mysql]\nport = 5001\n", "default.toml");
  loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.mysql.port, 5001);
}

TEST_F(ConfigTest, MissingExplicitConfigFileIsAnError) {
  options_.config_file = tmp_.Path("nope.toml");
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr(tmp_.Path("nope.toml")));
}

TEST_F(ConfigTest, AllTypesFromToml) {
  options_.config_file = WriteToml(R"(
[node]
server_id_offset = 1000
[dns]
servers = ["127.0.0.1:5353", "127.0.0.2"]
[backup]
tls = true
tls_cert = "/tls/cert.pem"
tls_key = "/tls/key.pem"
[mysql.options]
innodb_buffer_pool_size = "1G"
max_connections = 500
performance_schema = false
long_query_time = 0.5
)");
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  const Config& c = loaded->config;
  EXPECT_EQ(c.node.server_id_offset, 1000);
  EXPECT_EQ(c.dns.servers, (std::vector<std::string>{"127.0.0.1:5353", "127.0.0.2"}));
  EXPECT_TRUE(c.backup.tls);
  EXPECT_EQ(c.mysql.options, (std::map<std::string, std::string>{{"innodb_buffer_pool_size", "1G"},
                                                                 {"long_query_time", "0.5"},
                                                                 {"max_connections", "500"},
                                                                 {"performance_schema", "OFF"}}));
  EXPECT_EQ(loaded->origins.at("mysql.options.max_connections").description,
            *options_.config_file + ":12");
}

TEST_F(ConfigTest, AllTypesFromEnvironmentAndSet) {
  options_.env = {{"REPLBOOT_DNS_SERVERS", "127.0.0.1:5353, 127.0.0.2:53"},
                  {"REPLBOOT_BACKUP_TLS", "on"},
                  {"REPLBOOT_BACKUP_TLS_CERT", "/c"},
                  {"REPLBOOT_BACKUP_TLS_KEY", "/k"},
                  {"REPLBOOT_MYSQL_OPTIONS", "max_connections=10,wait_timeout=60"},
                  {"REPLBOOT_MYSQL_OPTIONS_INNODB_BUFFER_POOL_SIZE", "2G"},
                  {"REPLBOOT_BIN", "/allowed/for/tests"},
                  {"REPLBOOT_KEEP_TMP", "1"},
                  {"REPLBOOT_TEST_ANYTHING", "x"},
                  {"PATH", "/not/ours"}};
  options_.sets = {"mysql.options.max_connections=20", "replication.tls=true"};
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  const Config& c = loaded->config;
  EXPECT_EQ(c.dns.servers, (std::vector<std::string>{"127.0.0.1:5353", "127.0.0.2:53"}));
  EXPECT_TRUE(c.backup.tls);
  EXPECT_TRUE(c.replication.tls);
  EXPECT_EQ(c.mysql.options.at("max_connections"), "20");
  EXPECT_EQ(c.mysql.options.at("wait_timeout"), "60");
  EXPECT_EQ(c.mysql.options.at("innodb_buffer_pool_size"), "2G");
  EXPECT_EQ(loaded->origins.at("mysql.options.max_connections").description,
            "--set mysql.options.max_connections");
}

TEST_F(ConfigTest, UnknownKeyInFileNamesFileAndLine) {
  options_.config_file = WriteToml("[mysql]\nport = 3306\nprot = 3307\n");
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.error().message(), HasSubstr("mysql.prot"));
  EXPECT_THAT(loaded.error().message(), HasSubstr(*options_.config_file + ":3"));
  EXPECT_THAT(loaded.error().message(), HasSubstr("did you mean mysql.port?"));
}

TEST_F(ConfigTest, UnknownSectionAndTopLevelKey) {
  options_.config_file = WriteToml("port = 1\n[mysqld]\nport = 3306\n");
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(),
              HasSubstr("unknown section [port] at " + *options_.config_file + ":1"));
  EXPECT_THAT(loaded.error().message(),
              HasSubstr("unknown section [mysqld] at " + *options_.config_file + ":2"));
}

TEST_F(ConfigTest, SectionThatIsNotATable) {
  options_.config_file = WriteToml("mysql = 3\n");
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr("must be a [mysql] table"));
}

TEST_F(ConfigTest, UnknownEnvironmentVariable) {
  options_.env = {{"REPLBOOT_MYSQL_PROT", "1"}};
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr("REPLBOOT_MYSQL_PROT"));
  EXPECT_THAT(loaded.error().message(), HasSubstr("did you mean mysql.port?"));
}

TEST_F(ConfigTest, UnknownSetKey) {
  options_.sets = {"mysql.nope=1"};
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr("unknown setting 'mysql.nope' in --set"));

  options_.sets = {"mysql.port"};
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(),
              HasSubstr("--set 'mysql.port': expected section.key=value"));
}

TEST_F(ConfigTest, WrongTypeNamesKeyAndOrigin) {
  options_.config_file = WriteToml("[mysql]\nport = \"3306\"\n[dns]\nservers = \"1.1.1.1\"\n");
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  const std::string& m = loaded.error().message();
  EXPECT_THAT(m,
              HasSubstr("mysql.port in " + *options_.config_file + ":2: expected int, got string"));
  EXPECT_THAT(m, HasSubstr("dns.servers in " + *options_.config_file + ":4: expected list"));

  options_.config_file.reset();
  options_.env = {{"REPLBOOT_MYSQL_PORT", "33o6"}, {"REPLBOOT_BACKUP_TLS", "maybe"}};
  options_.flags["mysql.startup_timeout"] = "soon";
  options_.flag_names["mysql.startup_timeout"] = "--startup-timeout";
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  const std::string& e = loaded.error().message();
  EXPECT_THAT(e, HasSubstr("mysql.port in environment variable REPLBOOT_MYSQL_PORT: expected an "
                           "integer, got '33o6'"));
  EXPECT_THAT(e,
              HasSubstr("backup.tls in environment variable REPLBOOT_BACKUP_TLS: expected true or "
                        "false"));
  EXPECT_THAT(e, HasSubstr("mysql.startup_timeout in --startup-timeout"));
}

TEST_F(ConfigTest, OptionValueOfWrongType) {
  options_.config_file = WriteToml("[mysql.options]\nplugin_load = [\"a\"]\n");
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(),
              HasSubstr("mysql.options.plugin_load in " + *options_.config_file + ":2"));
}

TEST_F(ConfigTest, TomlSyntaxErrorNamesFileLineColumn) {
  options_.config_file = WriteToml("[mysql]\nport = = 3\n");
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr(*options_.config_file + ":2:"));
}

TEST_F(ConfigTest, ValidateCollectsEveryProblem) {
  options_.config_file = WriteToml(R"(
[mysql]
port = 70000
startup_timeout = 0
datadir = "relative/dir"
[mysql.options]
server_id = 7
"bad name" = 1
[dns]
policy = "random"
tries = 0
[log]
level = "loud"
format = "xml"
[node]
flavour = "postgres"
)");
  options_.env = {{"REPLBOOT_BACKUP_PORT", "0"}, {"REPLBOOT_BACKUP_FANOUT_WINDOW_MS", "-1"}};
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  const std::string& m = loaded.error().message();
  EXPECT_THAT(m, HasSubstr("12 configuration problems"));
  EXPECT_THAT(m, HasSubstr("backup.fanout_window_ms = -1 (from environment variable "
                           "REPLBOOT_BACKUP_FANOUT_WINDOW_MS): must be between 0 and 60000"));
  EXPECT_THAT(m, HasSubstr("mysql.port = 70000 (from " + *options_.config_file +
                           ":3): must be between 1 and 65535"));
  EXPECT_THAT(m, HasSubstr("backup.port = 0 (from environment variable REPLBOOT_BACKUP_PORT)"));
  EXPECT_THAT(m, HasSubstr("mysql.startup_timeout = 0"));
  EXPECT_THAT(m, HasSubstr("mysql.datadir = \"relative/dir\""));
  EXPECT_THAT(m, HasSubstr("mysql.options.server_id"));
  EXPECT_THAT(m, HasSubstr("mysql.options.bad name"));
  EXPECT_THAT(m, HasSubstr("dns.policy = \"random\""));
  EXPECT_THAT(m, HasSubstr("dns.tries = 0"));
  EXPECT_THAT(m, HasSubstr("log.level = \"loud\""));
  EXPECT_THAT(m, HasSubstr("log.format = \"xml\""));
  EXPECT_THAT(m, HasSubstr("node.flavour = \"postgres\""));
}

TEST_F(ConfigTest, RecloneSettings) {
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_TRUE(loaded->config.replication.auto_reclone);
  EXPECT_EQ(loaded->config.replication.reclone_after, 300);
  EXPECT_EQ(loaded->config.replication.reclone_min_interval, 3600);

  options_.config_file =
      WriteToml("[replication]\nauto_reclone = false\nreclone_after = 5\nreclone_min_interval = 0\n");
  loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_FALSE(loaded->config.replication.auto_reclone);
  EXPECT_EQ(loaded->config.replication.reclone_after, 5);
  EXPECT_EQ(loaded->config.replication.reclone_min_interval, 0);

  // Strict: a wrong type, a typo and an out-of-range value are each named.
  options_.config_file = WriteToml(
      "[replication]\nauto_reclone = \"yes please\"\nreclone_after = 0\n"
      "reclone_min_interval = -1\nreclone_afterr = 3\n");
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr("replication.auto_reclone"));
  EXPECT_THAT(loaded.error().message(), HasSubstr("replication.reclone_afterr"));
  options_.config_file = WriteToml("[replication]\nreclone_after = 0\nreclone_min_interval = -1\n");
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr("replication.reclone_after = 0"));
  EXPECT_THAT(loaded.error().message(), HasSubstr("replication.reclone_min_interval = -1"));
}

// The admission caps: one address can never hold more than half of a cap (the peers'
// probes and the kubelet's need the rest), and the settings come from the environment too.
TEST_F(ConfigTest, AdmissionCapsLeaveRoomForOtherAddresses) {
  options_.env = {{"REPLBOOT_BACKUP_MAX_UNAUTHENTICATED", "10"},
                  {"REPLBOOT_BACKUP_MAX_UNAUTHENTICATED_PER_ADDRESS", "5"},
                  {"REPLBOOT_BACKUP_HANDSHAKE_THREADS", "6"},
                  {"REPLBOOT_BACKUP_FANOUT_BUFFER_MB", "16"},
                  {"REPLBOOT_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "32"},
                  {"REPLBOOT_HTTP_REQUEST_TIMEOUT_MS", "2500"}};
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.backup.max_unauthenticated, 10);
  EXPECT_EQ(loaded->config.backup.max_unauthenticated_per_address, 5);
  EXPECT_EQ(loaded->config.backup.handshake_threads, 6);
  EXPECT_EQ(loaded->config.backup.fanout_buffer_mb, 16);
  EXPECT_EQ(loaded->config.http.max_connections_per_address, 32);
  EXPECT_EQ(loaded->config.http.request_timeout_ms, 2500);

  options_.env["REPLBOOT_BACKUP_MAX_UNAUTHENTICATED_PER_ADDRESS"] = "6";
  options_.env["REPLBOOT_HTTP_MAX_CONNECTIONS_PER_ADDRESS"] = "33";
  options_.env["REPLBOOT_BACKUP_HANDSHAKE_THREADS"] = "0";
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  const std::string& m = loaded.error().message();
  EXPECT_THAT(m, HasSubstr("backup.max_unauthenticated_per_address = 6 (from environment variable "
                           "REPLBOOT_BACKUP_MAX_UNAUTHENTICATED_PER_ADDRESS): must be between 1 "
                           "and 5"));
  EXPECT_THAT(m, HasSubstr("http.max_connections_per_address = 33"));
  EXPECT_THAT(m, HasSubstr("must be between 1 and 32"));
  EXPECT_THAT(m, HasSubstr("backup.handshake_threads = 0"));
  EXPECT_THAT(m, HasSubstr("3 configuration problems"));
}

TEST_F(ConfigTest, ValidateListenAddressesAndTls) {
  LoadedConfig loaded;
  loaded.config.node.hostname = "mysql-0";
  EXPECT_TRUE(Validate(loaded).ok()) << Validate(loaded).ToString();
  loaded.config.backup.listen = "0.0.0.0";
  loaded.config.http.listen = "0.0.0.0:99999";
  loaded.config.backup.tls = true;
  loaded.config.dns.servers = {"127.0.0.1:0", "[::1]:53", "::1", "[::1]", "10.0.0.1"};
  loaded.config.mysql.options["x"] = "a\nserver-id=1";
  Status s = Validate(loaded);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("backup.listen = \"0.0.0.0\""));
  EXPECT_THAT(s.message(), HasSubstr("http.listen = \"0.0.0.0:99999\""));
  EXPECT_THAT(s.message(), HasSubstr("backup.tls_cert"));
  EXPECT_THAT(s.message(), HasSubstr("backup.tls_key"));
  EXPECT_THAT(s.message(), HasSubstr("dns.servers = \"127.0.0.1:0\""));
  EXPECT_THAT(s.message(), Not(HasSubstr("[::1]:53")));
  EXPECT_THAT(s.message(), HasSubstr("mysql.options.x"));
  EXPECT_THAT(s.message(), HasSubstr("6 configuration problems"));
}

TEST_F(ConfigTest, ValidateReplicationTlsFiles) {
  LoadedConfig loaded;
  loaded.config.node.hostname = "mysql-1";
  loaded.config.replication.tls = true;
  loaded.config.replication.tls_ca = "/etc/replboot/tls/ca.pem";
  loaded.config.replication.tls_cert = "/etc/replboot/tls/mysql-1.pem";
  loaded.config.replication.tls_key = "/etc/replboot/tls/mysql-1.key";
  EXPECT_TRUE(Validate(loaded).ok()) << Validate(loaded).ToString();

  // A CA without TLS would look like verification to whoever set it.
  loaded.config.replication.tls = false;
  Status s = Validate(loaded);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(),
              HasSubstr("replication.tls_ca = \"/etc/replboot/tls/ca.pem\" (from default): "
                        "needs replication.tls = true"));
  EXPECT_THAT(s.message(), HasSubstr("3 configuration problems"));

  loaded.config.replication.tls = true;
  loaded.config.replication.tls_ca = "tls/ca.pem";  // mysqld would read it from the datadir
  loaded.config.replication.tls_key.clear();
  s = Validate(loaded);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("replication.tls_ca = \"tls/ca.pem\""));
  EXPECT_THAT(s.message(), HasSubstr("must be an absolute path"));
  EXPECT_THAT(s.message(), HasSubstr("replication.tls_key = \"\""));
  EXPECT_THAT(s.message(), HasSubstr("2 configuration problems"));
}

TEST_F(ConfigTest, ReplicationTlsFromTheEnvironment) {
  options_.env = {{"REPLBOOT_REPLICATION_TLS", "true"},
                  {"REPLBOOT_REPLICATION_TLS_CA", "/tls/ca.pem"}};
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_TRUE(loaded->config.replication.tls);
  EXPECT_EQ(loaded->config.replication.tls_ca, "/tls/ca.pem");
}

TEST_F(ConfigTest, ValidateAppDatabases) {
  LoadedConfig loaded;
  loaded.config.node.hostname = "mysql-0";
  EXPECT_EQ(loaded.config.cluster.app_databases, std::vector<std::string>{"app"});
  loaded.config.cluster.app_databases = {"shop", "my_app", "*"};
  EXPECT_TRUE(Validate(loaded).ok()) << Validate(loaded).ToString();
  loaded.config.cluster.app_databases = {"mysql", "a`b", "", "db.x", std::string(65, 'd'), "ok"};
  Status s = Validate(loaded);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(),
              HasSubstr("cluster.app_databases = \"mysql\" (from default): is a system schema"));
  EXPECT_THAT(s.message(), HasSubstr("cluster.app_databases = \"a`b\""));
  EXPECT_THAT(s.message(), HasSubstr("cluster.app_databases = \"db.x\""));
  EXPECT_THAT(s.message(), Not(HasSubstr("\"ok\"")));
  EXPECT_THAT(s.message(), HasSubstr("5 configuration problems"));
}

TEST_F(ConfigTest, HostnameDefaultsToGethostname) {
  options_.flags.clear();
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  char buf[256] = {};
  ASSERT_EQ(::gethostname(buf, sizeof(buf) - 1), 0);
  EXPECT_EQ(loaded->config.node.hostname, buf);
  EXPECT_EQ(loaded->origins.at("node.hostname").description, "gethostname()");
}

TEST_F(ConfigTest, ShowRedactsSecrets) {
  options_.env = {{"REPLBOOT_MYSQL_ROOT_PASSWORD", "s3cr3t-root"},
                  {"REPLBOOT_BACKUP_SECRET", "s3cr3t-backup-of-32-bytes-length"}};
  options_.sets = {"mysql.options.max_connections=20"};
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  std::string shown = ShowConfig(*loaded);
  EXPECT_THAT(shown, Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(shown, HasSubstr("mysql.root_password = <redacted>  # environment variable "
                               "REPLBOOT_MYSQL_ROOT_PASSWORD\n"));
  EXPECT_THAT(shown, HasSubstr("backup.secret = <redacted>"));
  EXPECT_THAT(shown, HasSubstr("replication.password = \"\"\n"));
  EXPECT_THAT(shown, HasSubstr("mysql.port = 3306\n"));
  EXPECT_THAT(shown, HasSubstr("node.hostname = \"mysql-1\"  # flag for node.hostname\n"));
  EXPECT_THAT(shown, HasSubstr("dns.servers = []\n"));
  EXPECT_THAT(shown, HasSubstr("mysql.options.max_connections = \"20\"  # --set "
                               "mysql.options.max_connections\n"));
}

TEST_F(ConfigTest, SecretValueNeverInErrors) {
  // A misspelt password variable is an error; its value must not be echoed.
  options_.env = {{"REPLBOOT_MYSQL_ROOT_PASSWRD", "s3cr3t"}};
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(loaded.error().message(), HasSubstr("did you mean mysql.root_password?"));
}

// Every spelling mysqld resolves to a managed option is refused, on a replica too, where
// read_only is what keeps it from diverging.
TEST_F(ConfigTest, ManagedOptionsAreRefusedInEverySpelling) {
  const char* spellings[] = {
      "read_only",
      "read-only",
      "READ_ONLY",
      "skip-read-only",
      "loose-read_only",
      "loose-skip-read-only",
      "enable-read-only",
      "disable_read_only",
      "maximum-read_only",
      "autoset-read_only",
      "read_o",
      "super-read-only",
      "Skip_Super_Read_Only",
      "server-id",
      "loose_server_id",
      "PORT",
      "loose-datadir",
      "Socket",
      "bind-address",
      "skip-bind-address",
  };
  for (const char* name : spellings) {
    options_.sets = {std::string("mysql.options.") + name + "=1"};
    options_.flags["node.hostname"] = "mysql-2";
    auto loaded = LoadConfig(options_);
    ASSERT_FALSE(loaded) << name << " was accepted";
    EXPECT_THAT(loaded.error().message(), HasSubstr(std::string("mysql.options.") + name))
        << loaded.error().message();
    EXPECT_THAT(loaded.error().message(), HasSubstr("replboot manages this option"));
  }
  // Options that only look alike pass.
  options_.sets = {"mysql.options.skip-name-resolve=1", "mysql.options.port_open_timeout=5",
                   "mysql.options.read_buffer_size=1M", "mysql.options.loose-innodb-foo=1",
                   "mysql.options.server_audit_logging=1"};
  auto loaded = LoadConfig(options_);
  EXPECT_TRUE(loaded) << loaded.error().ToString();
}

TEST(CanonicalOptionNameTest, StripsWhatMysqldStrips) {
  EXPECT_EQ(CanonicalOptionName("loose-Skip-Read-Only"), "read_only");
  EXPECT_EQ(CanonicalOptionName("enable-log_bin"), "log_bin");
  EXPECT_EQ(CanonicalOptionName("skip"), "skip");
  EXPECT_EQ(CanonicalOptionName("loose-"), "loose_");
  EXPECT_EQ(CanonicalOptionName("max_connections"), "max_connections");
}

TEST_F(ConfigTest, ShortBackupSecretIsAnErrorThatSaysSoWithoutTheSecret) {
  options_.env = {{"REPLBOOT_BACKUP_SECRET", "fifteen-bytes!!"}};
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr("backup.secret = <redacted>"));
  EXPECT_THAT(loaded.error().message(), HasSubstr("is 15 bytes; it must be at least 16 bytes"));
  EXPECT_THAT(loaded.error().message(), Not(HasSubstr("fifteen")));

  options_.env = {{"REPLBOOT_BACKUP_SECRET", "sixteen-bytes-ok"}};
  EXPECT_TRUE(LoadConfig(options_));
  // Unset stays valid here (commands that need the secret say so themselves).
  options_.env.clear();
  EXPECT_TRUE(LoadConfig(options_));

  EXPECT_TRUE(CheckBackupSecret("", "x").ok());
  EXPECT_TRUE(CheckBackupSecret("0123456789abcdef", "x").ok());
  Status s = CheckBackupSecret("0123456789abcde", "/run/secrets/backup-secret");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("/run/secrets/backup-secret"));
  EXPECT_THAT(s.message(), Not(HasSubstr("0123456789")));
}

TEST_F(ConfigTest, ResolveSecret) {
  auto inline_only = ResolveSecret("inline", "", "mysql.root_password");
  ASSERT_TRUE(inline_only);
  EXPECT_EQ(*inline_only, "inline");

  std::string file = WriteToml("from-file\n", "secret");
  auto from_file = ResolveSecret("inline", file, "mysql.root_password");
  ASSERT_TRUE(from_file);
  EXPECT_EQ(*from_file, "from-file");

  auto missing = ResolveSecret("", tmp_.Path("missing"), "mysql.root_password");
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message(), HasSubstr("mysql.root_password"));
  EXPECT_THAT(missing.error().message(), HasSubstr(tmp_.Path("missing")));
}

TEST(ProcessEnvironmentTest, OnlyReplbootVariables) {
  ASSERT_EQ(::setenv("REPLBOOT_TEST_PROCESS_ENV", "x=y", 1), 0);
  auto env = ProcessEnvironment();
  ::unsetenv("REPLBOOT_TEST_PROCESS_ENV");
  EXPECT_EQ(env.at("REPLBOOT_TEST_PROCESS_ENV"), "x=y");
  for (const auto& [name, value] : env) EXPECT_TRUE(name.starts_with("REPLBOOT_")) << name;
}

TEST(PlaceholderTest, RefusesWhatNobodyChose) {
  for (std::string_view v :
       {"CHANGE-ME-backup-secret", "change_me", "Change Me Please", "changeme", "x",
        "xxxxxxxxxxxxxxxxxxxxxxxx", "0000000000000000", "<placeholder>", "REPLACE-ME-now",
        "secret", "Secret!", "password", "PASSWD", "example", "changeit"}) {
    EXPECT_TRUE(LooksLikePlaceholder(v)) << v;
  }
  for (std::string_view v :
       {"", "a-secret-of-sixteen-or-more-bytes", "root-pw-xxxxxxxx", "secret-1f2e3d4c5b6a",
        "my password is long", "examples-are-not-secrets", "ab", "Zq8Zq8Zq8Zq8"}) {
    EXPECT_FALSE(LooksLikePlaceholder(v)) << v;
  }
}

// The values k8s/secret.yaml ships are public: each must be refused.
TEST(PlaceholderTest, EveryShippedSecretIsRefused) {
  std::ifstream in(std::string(REPLBOOT_CONF_TESTDATA) + "/../../k8s/secret.yaml");
  ASSERT_TRUE(in) << "k8s/secret.yaml";
  std::string line;
  bool in_data = false;
  int values = 0;
  while (std::getline(in, line)) {
    if (line == "stringData:") {
      in_data = true;
    } else if (in_data && line.starts_with("  ")) {
      std::string value = line.substr(line.find(':') + 1);
      value.erase(0, value.find_first_not_of(' '));
      EXPECT_TRUE(LooksLikePlaceholder(value)) << line;
      ++values;
    } else {
      in_data = false;  // the next document ("---") or key
    }
  }
  // mysql-secrets (5) and mysql-archive (the backups' key and the store's credentials, 3).
  EXPECT_EQ(values, 8);
}

TEST_F(ConfigTest, PlaceholderSecretIsAnErrorNamingTheSettingAndOrigin) {
  options_.env = {{"REPLBOOT_BACKUP_SECRET", "CHANGE-ME-backup-secret"},
                  {"REPLBOOT_MYSQL_ROOT_PASSWORD", "CHANGE-ME-root-password"}};
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  const std::string& m = loaded.error().message();
  EXPECT_THAT(m, HasSubstr("backup.secret = <redacted> (from environment variable "
                           "REPLBOOT_BACKUP_SECRET)"));
  EXPECT_THAT(m, HasSubstr("mysql.root_password = <redacted> (from environment variable "
                           "REPLBOOT_MYSQL_ROOT_PASSWORD)"));
  EXPECT_THAT(m, HasSubstr("looks like a placeholder"));
  EXPECT_THAT(m, Not(HasSubstr("CHANGE-ME-")));

  // Beside a file the inline value is not used: the file's content is what counts.
  std::string file = WriteToml("CHANGE-ME-replication-password\n", "repl-password");
  options_.env = {{"REPLBOOT_REPLICATION_PASSWORD", "changeme"},
                  {"REPLBOOT_REPLICATION_PASSWORD_FILE", file}};
  ASSERT_TRUE(LoadConfig(options_));
  auto resolved = ResolveSecret("changeme", file, "replication.password");
  ASSERT_FALSE(resolved);
  EXPECT_EQ(resolved.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(resolved.error().message(), HasSubstr("replication.password from " + file));
  EXPECT_THAT(resolved.error().message(), Not(HasSubstr("CHANGE-ME-")));

  auto inline_value = ResolveSecret("xxxxxxxx", "", "cluster.app_password");
  ASSERT_FALSE(inline_value);
  EXPECT_THAT(inline_value.error().message(),
              HasSubstr("cluster.app_password from the configuration"));
  EXPECT_THAT(inline_value.error().message(), Not(HasSubstr("xxxxxxxx")));
}

TEST(DescribeSettingsTest, EveryKeyHasEnvAndDescription) {
  auto settings = DescribeSettings();
  ASSERT_GT(settings.size(), 40u);
  for (const SettingInfo& s : settings) {
    EXPECT_FALSE(s.description.empty()) << s.key;
    EXPECT_TRUE(s.env.starts_with("REPLBOOT_")) << s.key;
  }
  auto port = std::find_if(settings.begin(), settings.end(),
                           [](const SettingInfo& s) { return s.key == "mysql.port"; });
  ASSERT_NE(port, settings.end());
  EXPECT_EQ(port->env, "REPLBOOT_MYSQL_PORT");
  EXPECT_EQ(port->default_value, "3306");
}

// backup.compress: auto by default; off, zstd, zstd:N (1-19) taken; anything else named with
// where it came from.
TEST_F(ConfigTest, BackupCompressIsCheckedStrictly) {
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.backup.compress, "auto");
  for (const char* good : {"off", "auto", "zstd", "zstd:1", "zstd:19"}) {
    options_.env = {{"REPLBOOT_BACKUP_COMPRESS", good}};
    loaded = LoadConfig(options_);
    ASSERT_TRUE(loaded) << good << ": " << loaded.error().ToString();
    EXPECT_EQ(loaded->config.backup.compress, good);
  }
  for (const char* bad : {"zstd:0", "zstd:20", "zstd:", "zstd:+3", "zstd:3 ", "ZSTD", "lz4", "",
                          "zstd:003", "zstd:03", "on"}) {
    options_.env = {{"REPLBOOT_BACKUP_COMPRESS", bad}};
    loaded = LoadConfig(options_);
    ASSERT_FALSE(loaded) << bad;
    EXPECT_THAT(loaded.error().message(),
                HasSubstr(fmt::format("backup.compress = \"{}\" (from environment variable "
                                      "REPLBOOT_BACKUP_COMPRESS)",
                                      bad)));
  }
}

// [archive]: a store needs a key; absurd sizes, levels and relative paths are each named.
TEST_F(ConfigTest, ArchiveSettingsAreChecked) {
  options_.config_file = WriteToml(
      "[archive]\nstore = \"file:///backups\"\nkey_file = \"/run/secrets/backup-key\"\n"
      "keep_last = 3\nkeep_days = 14\n");
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.archive.keep_last, 3);
  EXPECT_EQ(loaded->config.archive.object_size_mb, 16);

  options_.config_file = WriteToml(
      "[archive]\nstore = \"s3://bkt/p\"\nobject_size_mb = 0\ncompression_level = 99\n"
      "keep_last = -1\naddressing = \"sideways\"\naccess_key_file = \"keys/id\"\n"
      "ca_file = \"ca.pem\"\nscratch_dir = \"scratch\"\n");
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  const std::string& m = loaded.error().message();
  EXPECT_THAT(m, HasSubstr("archive.key_file"));  // required with a store
  EXPECT_THAT(m, HasSubstr("archive.object_size_mb = 0"));
  EXPECT_THAT(m, HasSubstr("archive.compression_level = 99"));
  EXPECT_THAT(m, HasSubstr("archive.keep_last = -1"));
  EXPECT_THAT(m, HasSubstr("archive.addressing"));
  EXPECT_THAT(m, HasSubstr("archive.access_key_file"));  // relative, and without its secret
  EXPECT_THAT(m, HasSubstr("archive.ca_file"));
  EXPECT_THAT(m, HasSubstr("archive.scratch_dir"));
}

// The donor-load and fan-out settings of issue 22, and the restore-test interval: absurd
// values are named, none reaches a server.
TEST_F(ConfigTest, DonorLoadFanoutAndRestoreTestSettingsAreChecked) {
  options_.config_file = WriteToml(
      "[backup]\ntool_nice = 25\ntool_io_priority = \"realtime\"\nmin_send_rate_kib = -1\n"
      "fanout_grace_ms = 5000\nfanout_slow_window_ms = 1000\n"
      "[archive]\nrestore_test_interval = 5\n");
  auto loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  const std::string& m = loaded.error().message();
  EXPECT_THAT(m, HasSubstr("backup.tool_nice = 25"));
  EXPECT_THAT(m, HasSubstr("backup.tool_io_priority"));
  EXPECT_THAT(m, HasSubstr("backup.min_send_rate_kib = -1"));
  EXPECT_THAT(m, HasSubstr("backup.fanout_slow_window_ms = 1000"));  // shorter than the grace
  EXPECT_THAT(m, HasSubstr("archive.restore_test_interval = 5"));

  options_.config_file = WriteToml("[backup]\ntool_nice = 0\ntool_io_priority = \"idle\"\n"
                                   "min_send_rate_kib = 0\n[archive]\nrestore_test_interval = 0\n");
  loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.backup.tool_io_priority, "idle");
  EXPECT_EQ(loaded->config.archive.restore_test_interval, 0);
}

// archive.schedule is parsed at load (archive/schedule.h), with the turn settings' ranges.
TEST_F(ConfigTest, ArchiveScheduleIsParsedAtLoad) {
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.archive.schedule, "off");
  EXPECT_EQ(loaded->config.archive.claim_step, 30);
  EXPECT_EQ(loaded->config.archive.claim_timeout, 3600);
  EXPECT_EQ(loaded->config.archive.retry_backoff, 30);

  options_.config_file = WriteToml(
      "[archive]\nstore = \"file:///backups\"\nkey_file = \"/run/secrets/backup-key\"\n"
      "schedule = \"every 20s\"\nclaim_step = 3\nclaim_timeout = 30\nretry_backoff = 2\n");
  loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_EQ(loaded->config.archive.schedule, "every 20s");
  EXPECT_EQ(loaded->config.archive.claim_step, 3);

  options_.config_file = WriteToml(
      "[archive]\nstore = \"file:///backups\"\nkey_file = \"/run/secrets/backup-key\"\n"
      "schedule = \"every 5s\"\nclaim_step = 0\nclaim_timeout = 1\nretry_backoff = 0\n");
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  std::string m = loaded.error().message();
  EXPECT_THAT(m, HasSubstr("archive.schedule = \"every 5s\""));
  EXPECT_THAT(m, HasSubstr("shorter than 10 seconds"));
  EXPECT_THAT(m, HasSubstr("archive.claim_step = 0"));
  EXPECT_THAT(m, HasSubstr("archive.claim_timeout = 1"));
  EXPECT_THAT(m, HasSubstr("archive.retry_backoff = 0"));

  // A schedule with nowhere to put the backups is a mistake, not "off".
  options_.config_file = WriteToml("[archive]\nschedule = \"daily 02:00\"\n");
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  m = loaded.error().message();
  EXPECT_THAT(m, HasSubstr("archive.schedule = \"daily 02:00\""));
  EXPECT_THAT(m, HasSubstr("needs archive.store"));
  options_.config_file = WriteToml("[archive]\nschedule = \"hourly\"\n");
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  EXPECT_THAT(loaded.error().message(), HasSubstr("unknown form"));
}

// The binlog archive's settings (issue 24): off by default, needs a store, absurd intervals,
// sizes and lease timeouts named.
TEST_F(ConfigTest, BinlogArchiveSettingsAreChecked) {
  auto loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_FALSE(loaded->config.archive.binlog);
  EXPECT_EQ(loaded->config.archive.binlog_seal_interval_ms, 2000);
  EXPECT_EQ(loaded->config.archive.binlog_seal_bytes, 16 << 20);
  EXPECT_EQ(loaded->config.archive.binlog_lease_timeout, 30);

  options_.config_file = WriteToml(
      "[archive]\nbinlog = true\nbinlog_seal_interval_ms = 50\nbinlog_seal_bytes = 1000\n"
      "binlog_lease_timeout = 1\n");
  loaded = LoadConfig(options_);
  ASSERT_FALSE(loaded);
  const std::string& m = loaded.error().message();
  EXPECT_THAT(m, HasSubstr("archive.binlog = true"));
  EXPECT_THAT(m, HasSubstr("needs archive.store"));
  EXPECT_THAT(m, HasSubstr("archive.binlog_seal_interval_ms = 50"));
  EXPECT_THAT(m, HasSubstr("archive.binlog_seal_bytes = 1000"));
  EXPECT_THAT(m, HasSubstr("archive.binlog_lease_timeout = 1"));

  options_.config_file = WriteToml(
      "[archive]\nstore = \"file:///backups\"\nkey_file = \"/run/secrets/backup-key\"\n"
      "binlog = true\nbinlog_seal_interval_ms = 1000\nbinlog_seal_bytes = 1048576\n"
      "binlog_lease_timeout = 10\n");
  loaded = LoadConfig(options_);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  EXPECT_TRUE(loaded->config.archive.binlog);
  EXPECT_EQ(loaded->config.archive.binlog_seal_interval_ms, 1000);
  EXPECT_EQ(loaded->config.archive.binlog_lease_timeout, 10);
  options_.config_file = WriteToml("[archive]\nbinlog = \"yes\"\n");
  ASSERT_FALSE(LoadConfig(options_));
}

}  // namespace
}  // namespace replboot::conf

