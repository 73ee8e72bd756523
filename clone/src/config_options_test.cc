// Server and clone options from the configuration: the shared resolution (secret, flavour,
// TLS, idle timeout) reaches both sides, and backup.tls = true is accepted.
#include "replboot/clone/config_options.h"

#include <gtest/gtest.h>

namespace replboot::clone {
namespace {

conf::Config TlsConfig() {
  conf::Config c;
  c.node.hostname = "mysql-1";
  c.node.flavour = "mariadb";
  c.backup.secret = "s3cret";
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
  EXPECT_EQ(server->secret, "s3cret");
  EXPECT_EQ(client->secret, "s3cret");
  EXPECT_EQ(server->flavour, Flavour::kMariaDB);
  EXPECT_EQ(client->flavour, Flavour::kMariaDB);
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

}  // namespace
}  // namespace replboot::clone
