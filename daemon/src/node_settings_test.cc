// The one wiring point: settings resolved once reach each library's typed options, and the
// typed endpoints are parsed strictly.
#include "replboot/daemon/node_settings.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "replboot/base/process.h"
#include "replboot/daemon/recovery_watcher.h"
#include "replboot/daemon/replication_wiring.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::daemon {
namespace {

using std::chrono::milliseconds;

conf::Config BaseConfig() {
  conf::Config c;
  c.node.hostname = "mysql-2";
  c.node.flavour = "mariadb";
  c.backup.secret = "a-secret-of-sixteen-or-more-bytes";
  c.backup.password = "pw";
  c.backup.idle_timeout = 42;
  c.backup.fanout_window_ms = 1234;
  c.backup.fanout_max_receivers = 5;
  c.backup.fanout_buffer_mb = 3;
  c.backup.fanout_grace_ms = 777;
  c.backup.tool_nice = 7;
  c.backup.min_send_rate_kib = 100;
  c.backup.tool_io_priority = "idle";
  c.backup.fanout_slow_window_ms = 7777;
  c.backup.max_unauthenticated = 20;
  c.backup.max_unauthenticated_per_address = 6;
  c.backup.handshake_threads = 7;
  c.backup.listen = "127.0.0.1:4000";
  return c;
}

SettingsNeeds NoUser() { return {.identity = true, .flavour = true, .mysql_user = false}; }

TEST(NodeSettingsTest, SharedValuesReachBothSides) {
  auto settings = ResolveSettings(BaseConfig(), NoUser());
  ASSERT_TRUE(settings) << settings.error().ToString();
  EXPECT_EQ(settings->identity.ordinal, 2);
  auto server = ServerOptionsFor(*settings);
  ASSERT_TRUE(server) << server.error().ToString();
  auto client = CloneOptionsFor(*settings);
  ASSERT_TRUE(client) << client.error().ToString();
  EXPECT_EQ(server->secret, "a-secret-of-sixteen-or-more-bytes");
  EXPECT_EQ(client->secret, server->secret);
  EXPECT_EQ(server->flavour, Flavour::kMariaDB);
  EXPECT_EQ(client->flavour, Flavour::kMariaDB);
  EXPECT_EQ(server->idle_timeout, std::chrono::seconds(42));
  EXPECT_EQ(client->idle_timeout, std::chrono::seconds(42));
  EXPECT_EQ(server->password, "pw");
  EXPECT_EQ(server->fanout_window, std::chrono::milliseconds(1234));
  EXPECT_EQ(server->fanout_max_receivers, 5);
  EXPECT_EQ(server->fanout_buffer_bytes, 3 << 20);
  EXPECT_EQ(server->fanout_grace, std::chrono::milliseconds(777));
  EXPECT_EQ(server->tool_nice, 7);
  EXPECT_EQ(server->min_send_rate_bytes, 100 << 10);
  EXPECT_EQ(server->tool_io_priority, process::SpawnOptions::IoPriority::kIdle);
  EXPECT_EQ(server->fanout_slow_window, std::chrono::milliseconds(7777));
  EXPECT_EQ(server->max_unauthenticated, 20);
  EXPECT_EQ(server->max_unauthenticated_per_address, 6);
  EXPECT_EQ(server->handshake_threads, 7);
  EXPECT_EQ(client->client_name, "mysql-2");
  EXPECT_EQ(server->listen.port(), 4000);
  EXPECT_EQ(server->listen.address().to_string(), "127.0.0.1");
  EXPECT_FALSE(client->tls.enabled);
  EXPECT_EQ(client->tls_context, nullptr);
}

TEST(NodeSettingsTest, BackupParallelDefaultsToHalfTheUsableCpus) {
  EXPECT_EQ(DefaultBackupParallel(1), 1);
  EXPECT_EQ(DefaultBackupParallel(2), 1);
  EXPECT_EQ(DefaultBackupParallel(3), 1);
  EXPECT_EQ(DefaultBackupParallel(8), 4);
  auto settings = ResolveSettings(BaseConfig(), NoUser());
  ASSERT_TRUE(settings) << settings.error().ToString();
  auto server = ServerOptionsFor(*settings);
  ASSERT_TRUE(server) << server.error().ToString();
  EXPECT_EQ(server->parallel, DefaultBackupParallel(process::UsableCpus()));  // 0: the default
  conf::Config c = BaseConfig();
  c.backup.parallel = 3;
  settings = ResolveSettings(c, NoUser());
  ASSERT_TRUE(settings) << settings.error().ToString();
  server = ServerOptionsFor(*settings);
  ASSERT_TRUE(server) << server.error().ToString();
  EXPECT_EQ(server->parallel, 3);
}

TEST(NodeSettingsTest, SecretsAreReadOnceFromTheirFiles) {
  testing::TempDir dir("node-settings");
  const std::string file = dir.Path("secret");
  { std::ofstream(file) << "from-the-file-0123456789\n"; }
  conf::Config c = BaseConfig();
  c.backup.secret.clear();
  c.backup.secret_file = file;
  auto settings = ResolveSettings(c, NoUser());
  ASSERT_TRUE(settings) << settings.error().ToString();
  std::remove(file.c_str());  // read once: the options no longer need the file
  auto client = CloneOptionsFor(*settings);
  ASSERT_TRUE(client) << client.error().ToString();
  EXPECT_EQ(client->secret, "from-the-file-0123456789");
}

TEST(NodeSettingsTest, NoSecretNoBackupOptions) {
  conf::Config c = BaseConfig();
  c.backup.secret.clear();
  auto settings = ResolveSettings(c, NoUser());
  ASSERT_TRUE(settings);
  auto server = ServerOptionsFor(*settings);
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().message().find("backup.secret"), std::string::npos);
  auto prober = MakeAuthenticatedProber(*settings, milliseconds(100));
  ASSERT_TRUE(prober);
  EXPECT_EQ(*prober, nullptr);  // the caller falls back to a TCP connect
}

TEST(NodeSettingsTest, AShortSecretFromAFileIsRefusedNamingTheFile) {
  testing::TempDir dir("node-settings");
  conf::Config c = BaseConfig();
  c.backup.secret.clear();
  c.backup.secret_file = dir.Path("backup-secret");
  { std::ofstream(c.backup.secret_file) << "short-secret\n"; }
  auto settings = ResolveSettings(c, NoUser());
  ASSERT_FALSE(settings);
  EXPECT_EQ(settings.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(settings.error().message().find(c.backup.secret_file), std::string::npos)
      << settings.error().message();
}

TEST(NodeSettingsTest, TlsFilesAreLoadedOnceAtResolveAndNamedWhenMissing) {
  conf::Config c = BaseConfig();
  c.backup.tls = true;
  c.backup.tls_cert = "/nonexistent/node.pem";
  c.backup.tls_key = "/nonexistent/node.key";
  auto settings = ResolveSettings(c, NoUser());
  ASSERT_FALSE(settings);
  EXPECT_NE(settings.error().message().find("/nonexistent/node.pem"), std::string::npos)
      << settings.error().message();
}

// The handshake names both ends (protocol.h): the server its node and ordinal in CHALLENGE,
// the client its ordinal in HELLO, both from the identity.
TEST(NodeSettingsTest, TheIdentityNamesBothEndsOfTheHandshake) {
  auto settings = ResolveSettings(BaseConfig(), NoUser());
  ASSERT_TRUE(settings) << settings.error().ToString();
  auto server = ServerOptionsFor(*settings);
  auto client = CloneOptionsFor(*settings);
  ASSERT_TRUE(server && client);
  EXPECT_EQ(server->node_name, "mysql-2");
  EXPECT_EQ(server->node_ordinal, 2);
  EXPECT_EQ(client->client_ordinal, 2);
  EXPECT_FALSE(client->expected_ordinal);  // set per donor, by discovery and the clone
  // `serve-backup` and `clone` resolve no identity: the server still states a StatefulSet
  // name's ordinal, never one made up for another name; the client states none.
  settings =
      ResolveSettings(BaseConfig(), {.identity = false, .flavour = true, .mysql_user = false});
  ASSERT_TRUE(settings);
  server = ServerOptionsFor(*settings);
  client = CloneOptionsFor(*settings);
  ASSERT_TRUE(server && client);
  EXPECT_EQ(server->node_name, "mysql-2");
  EXPECT_EQ(server->node_ordinal, 2);
  EXPECT_FALSE(client->client_ordinal);
  conf::Config c = BaseConfig();
  c.node.hostname = "buildhost";
  settings = ResolveSettings(c, {.identity = false, .flavour = true, .mysql_user = false});
  ASSERT_TRUE(settings);
  server = ServerOptionsFor(*settings);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->node_name, "buildhost");
  EXPECT_FALSE(server->node_ordinal);
}

TEST(NodeSettingsTest, ReplicationTlsReachesEveryPeerConnection) {
  testing::TempDir dir("node-settings");
  conf::Config c = BaseConfig();
  c.replication.password = "repl-pw";
  c.replication.tls = true;
  c.replication.tls_ca = dir.Path("ca.pem");
  { std::ofstream(c.replication.tls_ca) << "-----BEGIN CERTIFICATE-----\n"; }
  auto settings = ResolveSettings(c, NoUser());
  ASSERT_TRUE(settings) << settings.error().ToString();
  EXPECT_TRUE(settings->peer_tls.Verified());
  EXPECT_EQ(settings->peer_tls.ca, c.replication.tls_ca);
  // The GTID comparison with the primary goes over TCP with it; the local socket does not.
  auto watcher = RecoveryWatcherOptionsFor(*settings);
  ASSERT_TRUE(watcher) << watcher.error().ToString();
  EXPECT_EQ(watcher->primary.host, "mysql-0.mysql");
  EXPECT_TRUE(watcher->primary.tls.Verified());
  EXPECT_EQ(watcher->primary.tls.ca, c.replication.tls_ca);
  EXPECT_FALSE(watcher->local.tls.enabled);
  EXPECT_FALSE(watcher->local.socket.empty());

  c.replication.tls = false;
  c.replication.tls_ca.clear();
  settings = ResolveSettings(c, NoUser());
  ASSERT_TRUE(settings) << settings.error().ToString();
  EXPECT_FALSE(settings->peer_tls.enabled);
  watcher = RecoveryWatcherOptionsFor(*settings);
  ASSERT_TRUE(watcher) << watcher.error().ToString();
  EXPECT_FALSE(watcher->primary.tls.enabled);
}

TEST(NodeSettingsTest, ReplicationTlsFilesMustBeReadable) {
  testing::TempDir dir("node-settings");
  conf::Config c = BaseConfig();
  c.replication.tls = true;
  c.replication.tls_ca = dir.Path("missing-ca.pem");
  auto settings = ResolveSettings(c, NoUser());
  ASSERT_FALSE(settings);
  EXPECT_EQ(settings.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(settings.error().message().find("replication.tls_ca " + c.replication.tls_ca),
            std::string::npos)
      << settings.error().message();
  // An empty file is no CA either (a Secret mounted before its data was written).
  { std::ofstream(c.replication.tls_ca) << ""; }
  settings = ResolveSettings(c, NoUser());
  ASSERT_FALSE(settings);
  EXPECT_NE(settings.error().message().find("not a non-empty regular file"), std::string::npos)
      << settings.error().message();
  c.replication.tls_ca = dir.path();  // a directory
  settings = ResolveSettings(c, NoUser());
  ASSERT_FALSE(settings);
  EXPECT_NE(settings.error().message().find("replication.tls_ca"), std::string::npos);
  // Without a CA: allowed (and logged as unverified).
  c.replication.tls_ca.clear();
  settings = ResolveSettings(c, NoUser());
  ASSERT_TRUE(settings) << settings.error().ToString();
  EXPECT_TRUE(settings->peer_tls.enabled);
  EXPECT_FALSE(settings->peer_tls.Verified());
}

TEST(NodeSettingsTest, BadHostnameIsAnError) {
  conf::Config c = BaseConfig();
  c.node.hostname = "mysql";
  EXPECT_FALSE(ResolveSettings(c, NoUser()));
  // ... unless the command does not need an identity (`replboot clone`).
  EXPECT_TRUE(ResolveSettings(c, {.identity = false, .flavour = true, .mysql_user = false}));
}

TEST(NodeSettingsTest, DiscoverOptionsBuildNamesSrvAndDeadline) {
  conf::Config c = BaseConfig();
  c.cluster.service = "db";
  c.dns.srv_port_name = "backup";
  c.dns.lookup_deadline = 40;
  c.dns.policy = "any-replica";
  c.backup.port = 4001;
  auto settings = ResolveSettings(c, NoUser());
  ASSERT_TRUE(settings);
  auto o = DiscoverOptionsFor(*settings);
  ASSERT_TRUE(o) << o.error().ToString();
  ASSERT_EQ(o->candidates.size(), 2u);
  EXPECT_EQ(o->candidates[0].name, "mysql-1.db");
  EXPECT_EQ(o->srv_name, "_backup._tcp.db");
  EXPECT_EQ(o->default_port, 4001);
  EXPECT_EQ(o->deadline, milliseconds(40000));
  EXPECT_EQ(o->primary_after, milliseconds(20000));
  settings->config.dns.policy = "closest";
  EXPECT_FALSE(DiscoverOptionsFor(*settings));
}

TEST(EndpointTest, BackupEndpointsAreTyped) {
  auto v4 = BackupEndpoint("10.0.0.7", 3307);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->address().to_string(), "10.0.0.7");
  EXPECT_EQ(v4->port(), 3307);
  auto with_port = BackupEndpoint("10.0.0.7:4000", 3307);
  ASSERT_TRUE(with_port);
  EXPECT_EQ(with_port->port(), 4000);
  auto v6 = BackupEndpoint("[::1]:4000", 3307);
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->address().is_v6());
  auto name = BackupEndpoint("localhost:4000", 3307);
  ASSERT_TRUE(name) << name.error().ToString();
  EXPECT_TRUE(name->address().is_loopback());
  for (const char* bad : {"", ":4000", "10.0.0.7:", "10.0.0.7:0", "10.0.0.7:65536",
                          "10.0.0.7:4x", "10.0.0.7:-1", "::1:4000", "[::1", "[::1]4000"}) {
    auto r = BackupEndpoint(bad, 3307);
    EXPECT_FALSE(r) << bad;
  }
}

TEST(EndpointTest, ListenEndpoints) {
  auto any = ListenEndpoint(":3307", "backup.listen");
  ASSERT_TRUE(any);
  EXPECT_EQ(any->address().to_string(), "0.0.0.0");
  auto zero = ListenEndpoint("127.0.0.1:0", "backup.listen");
  ASSERT_TRUE(zero);  // port 0 picks a free one
  auto no_port = ListenEndpoint("127.0.0.1", "backup.listen");
  ASSERT_FALSE(no_port);
  EXPECT_NE(no_port.error().message().find("backup.listen"), std::string::npos);
  EXPECT_FALSE(ListenEndpoint("mysql-0:3307", "backup.listen"));  // an address, not a name
}

TEST(AccountsForTest, ResolvesAndReportsMissing) {
  conf::Config config = BaseConfig();
  config.backup.password.clear();
  auto settings = ResolveSettings(config, NoUser());
  ASSERT_TRUE(settings);
  auto missing = AccountsFor(*settings);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message().find("replication.password"), std::string::npos);
  EXPECT_NE(missing.error().message().find("backup.password"), std::string::npos);
  EXPECT_NE(missing.error().message().find("cluster.app_password"), std::string::npos);
  testing::TempDir dir("accounts-test");
  { std::ofstream(dir.Path("repl")) << "from-file\n"; }
  config.replication.password_file = dir.Path("repl");
  config.backup.password = "b-pw";
  config.cluster.app_password = "a-pw";
  settings = ResolveSettings(config, NoUser());
  ASSERT_TRUE(settings);
  auto ok = AccountsFor(*settings);
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  EXPECT_EQ(ok->replication.password, "from-file");
  EXPECT_EQ(ok->backup.password, "b-pw");
  EXPECT_EQ(ok->app.user, "app");
}

}  // namespace
}  // namespace replboot::daemon
