// Server and clone options from the configuration: the shared resolution (secret, flavour,
// TLS, idle timeout) reaches both sides, and backup.tls = true is accepted.
#include "replboot/clone/config_options.h"

#include <gtest/gtest.h>

#include "replboot/base/files.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::clone {
namespace {

conf::Config TlsConfig() {
  conf::Config c;
  c.node.hostname = "mysql-1";
  c.node.flavour = "mariadb";
  c.backup.secret = "s3cret-of-32-bytes-for-the-test";
  c.backup.password = "pw";
  c.backup.idle_timeout = 42;
  c.backup.tls = true;
  c.backup.tls_cert = "/tls/node.pem";
  c.backup.tls_key = "/tls/node.key";
  c.backup.tls_ca = "/tls/ca.pem";
  return c;
}

TEST(ConfigOptionsTest, TlsIsAcceptedAndReachesBothSides) {
  conf::Config c = TlsConfig();
  auto server = ServerOptionsFromConfig(c);
  ASSERT_TRUE(server) << server.error().ToString();
  auto client = CloneOptionsFromConfig(c);
  ASSERT_TRUE(client) << client.error().ToString();
  for (const TlsOptions* tls : {&server->tls, &client->tls}) {
    EXPECT_TRUE(tls->enabled);
    EXPECT_EQ(tls->cert, "/tls/node.pem");
    EXPECT_EQ(tls->key, "/tls/node.key");
    EXPECT_EQ(tls->ca, "/tls/ca.pem");
  }
  EXPECT_EQ(server->secret, "s3cret-of-32-bytes-for-the-test");
  EXPECT_EQ(client->secret, "s3cret-of-32-bytes-for-the-test");
  EXPECT_EQ(server->flavour, "mariadb");
  EXPECT_EQ(client->flavour, "mariadb");
  EXPECT_EQ(server->idle_timeout, std::chrono::seconds(42));
  EXPECT_EQ(client->idle_timeout, std::chrono::seconds(42));
}

TEST(ConfigOptionsTest, TlsOffByDefault) {
  conf::Config c = TlsConfig();
  c.backup.tls = false;
  auto client = CloneOptionsFromConfig(c);
  ASSERT_TRUE(client);
  EXPECT_FALSE(client->tls.enabled);
}

TEST(ConfigOptionsTest, BothSidesRequireTheSecret) {
  conf::Config c = TlsConfig();
  c.backup.secret.clear();
  EXPECT_EQ(ServerOptionsFromConfig(c).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CloneOptionsFromConfig(c).error().code(), StatusCode::kInvalidArgument);
  auto secret = BackupSecret(c);
  ASSERT_TRUE(secret);
  EXPECT_TRUE(secret->empty());
}

TEST(ConfigOptionsTest, AShortSecretFromAFileIsRefusedNamingTheFile) {
  replboot::testing::TempDir tmp("config-options-test");
  conf::Config c = TlsConfig();
  c.backup.secret_file = tmp.Path("backup-secret");
  ASSERT_TRUE(files::WriteFileAtomic(c.backup.secret_file, "short-secret\n", 0600).ok());
  auto secret = BackupSecret(c);
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(secret.error().message().find(c.backup.secret_file), std::string::npos);
  EXPECT_NE(secret.error().message().find("at least 16 bytes"), std::string::npos);
  EXPECT_EQ(secret.error().message().find("short-secret"), std::string::npos);
  EXPECT_FALSE(ServerOptionsFromConfig(c));
  EXPECT_FALSE(CloneOptionsFromConfig(c));

  ASSERT_TRUE(files::WriteFileAtomic(c.backup.secret_file, "sixteen-bytes-ok\n", 0600).ok());
  ASSERT_TRUE(BackupSecret(c));
  EXPECT_EQ(*BackupSecret(c), "sixteen-bytes-ok");
}

}  // namespace
}  // namespace replboot::clone
