#include "replboot/replication/statements.h"

#include <gtest/gtest.h>

namespace replboot::replication {
namespace {

const std::string kData = REPLBOOT_REPLICATION_TESTDATA;
const std::string kPassword = "s3cr'et\\pw";

SourceOptions Source(bool tls = false) {
  SourceOptions s;
  s.host = "mysql-0.mysql";
  s.port = 3306;
  s.user = "replboot_repl";
  s.password = kPassword;
  s.connect_retry = 5;
  s.tls = tls;
  return s;
}

ServerInfo Server(Flavour flavour, int version, std::string executed = "") {
  return ServerInfo{db::Dialect(flavour, version), std::move(executed)};
}

std::vector<std::string> Sql(const std::string& dir, Flavour flavour, const ServerInfo& server,
                             bool tls = false) {
  auto position = ReadClonePosition(kData + "/" + dir, flavour);
  EXPECT_TRUE(position.has_value()) << dir << ": " << position.error().ToString();
  if (!position) return {};
  auto statements = ReplicaStatements(*position, Source(tls), server);
  EXPECT_TRUE(statements.has_value()) << statements.error().ToString();
  std::vector<std::string> out;
  for (const auto& s : *statements) {
    // The redacted form never shows the password, and differs from sql only there.
    EXPECT_EQ(s.redacted.find("s3cr"), std::string::npos) << s.redacted;
    out.push_back(s.sql);
  }
  return out;
}

const std::string kPw = "MASTER_PASSWORD='s3cr\\'et\\\\pw'";
const std::string kSrcPw = "SOURCE_PASSWORD='s3cr\\'et\\\\pw'";

TEST(StatementsTest, MariaDbGtidSamples) {
  auto maria = Server(Flavour::kMariaDB, 101119);
  struct Case {
    std::string dir, gtid;
  };
  for (const Case& c : std::vector<Case>{{"mariadb-10.11/primary-gtid", "0-7-7"},
                                         {"mariadb-10.11/primary-multidomain", "0-1-100,1-2-50"},
                                         {"mariadb-10.11/galera-sst", "0-3-1207"},
                                         {"mariadb-10.11/replica-slave-pos", "0-7-9"},
                                         {"mariadb-11.4/primary-gtid", "0-100-42"},
                                         {"mariadb-11.4/replica-slave-pos", "0-100-42,2-100-7"}}) {
    SCOPED_TRACE(c.dir);
    EXPECT_EQ(
        Sql(c.dir, Flavour::kMariaDB, maria),
        (std::vector<std::string>{"SET GLOBAL gtid_slave_pos='" + c.gtid + "'",
                                  "CHANGE MASTER TO MASTER_HOST='mysql-0.mysql', MASTER_PORT=3306, "
                                  "MASTER_USER='replboot_repl', " +
                                      kPw + ", MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5",
                                  "START SLAVE"}));
  }
}

TEST(StatementsTest, MariaDbFilePosSamples) {
  auto maria = Server(Flavour::kMariaDB, 100611);
  struct Case {
    std::string dir, file;
    int pos;
  };
  for (const Case& c :
       std::vector<Case>{{"mariadb-10.11/primary-two-fields", "mysql-bin.000001", 329},
                         {"mariadb-10.6/primary-empty-gtid", "mysql-bin.000002", 385},
                         {"mariadb-10.11/replica-no-gtid", "mysql-bin.000001", 1954}}) {
    SCOPED_TRACE(c.dir);
    EXPECT_EQ(
        Sql(c.dir, Flavour::kMariaDB, maria, /*tls=*/true),
        (std::vector<std::string>{"CHANGE MASTER TO MASTER_HOST='mysql-0.mysql', MASTER_PORT=3306, "
                                  "MASTER_USER='replboot_repl', " +
                                      kPw + ", MASTER_LOG_FILE='" + c.file +
                                      "', MASTER_LOG_POS=" + std::to_string(c.pos) +
                                      ", MASTER_USE_GTID=no, MASTER_CONNECT_RETRY=5, MASTER_SSL=1",
                                  "START SLAVE"}));
  }
}

const std::string kMultiSet =
    "0a5e3b4c-7a1f-11ee-9d2c-0242ac120002:1-294615096,c6881cf4-7a1f-11ee-8e41-0242ac120003:1-"
    "1156346";

TEST(StatementsTest, MySqlGtidSamples) {
  struct Case {
    std::string dir, gtid;
  };
  for (const Case& c : std::vector<Case>{
           {"mysql-8.0/primary-gtid", "c777888a-b6df-11e2-a604-080027635ef5:1-4"},
           {"mysql-8.0/primary-gtid-multiline", kMultiSet},
           {"mysql-8.0/replica-auto-position-old", "c777888a-b6df-11e2-a604-080027635ef5:1-4"},
           {"mysql-8.4/primary-gtid", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11-18"},
           {"mysql-8.4/replica-auto-position", kMultiSet}}) {
    SCOPED_TRACE(c.dir);
    const std::string change =
        "CHANGE REPLICATION SOURCE TO SOURCE_HOST='mysql-0.mysql', SOURCE_PORT=3306, "
        "SOURCE_USER='replboot_repl', " +
        kSrcPw + ", SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=5";
    // A fresh replica: gtid_executed empty, no reset needed.
    EXPECT_EQ(Sql(c.dir, Flavour::kMySQL, Server(Flavour::kMySQL, 80036)),
              (std::vector<std::string>{"SET GLOBAL gtid_purged='" + c.gtid + "'", change,
                                        "START REPLICA"}));
    // The restored clone already holds exactly that set: nothing to purge.
    EXPECT_EQ(Sql(c.dir, Flavour::kMySQL, Server(Flavour::kMySQL, 80036, c.gtid)),
              (std::vector<std::string>{change, "START REPLICA"}));
    // Something else is there: reset first (8.4 renamed RESET MASTER).
    EXPECT_EQ(Sql(c.dir, Flavour::kMySQL,
                  Server(Flavour::kMySQL, 80036, "11111111-1111-1111-1111-111111111111:1")),
              (std::vector<std::string>{"RESET MASTER", "SET GLOBAL gtid_purged='" + c.gtid + "'",
                                        change, "START REPLICA"}));
    EXPECT_EQ(Sql(c.dir, Flavour::kMySQL,
                  Server(Flavour::kMySQL, 80400, "11111111-1111-1111-1111-111111111111:1"))[0],
              "RESET BINARY LOGS AND GTIDS");
  }
}

TEST(StatementsTest, MySqlFilePosSamplesAndOldSyntax) {
  for (const std::string dir : {"mysql-8.0/primary-gtid-off", "mysql-8.0/replica-file-pos-old",
                                "mysql-8.4/replica-file-pos"}) {
    SCOPED_TRACE(dir);
    EXPECT_EQ(Sql(dir, Flavour::kMySQL, Server(Flavour::kMySQL, 80400), /*tls=*/true),
              (std::vector<std::string>{
                  "CHANGE REPLICATION SOURCE TO SOURCE_HOST='mysql-0.mysql', SOURCE_PORT=3306, "
                  "SOURCE_USER='replboot_repl', " +
                      kSrcPw +
                      ", SOURCE_LOG_FILE='mysql-bin.000003', SOURCE_LOG_POS=1234, "
                      "GET_SOURCE_PUBLIC_KEY=1, "
                      "SOURCE_CONNECT_RETRY=5, SOURCE_SSL=1",
                  "START REPLICA"}));
  }
  // 8.0 before 8.0.23 has no CHANGE REPLICATION SOURCE; START REPLICA came one release
  // earlier (8.0.22), before that it is START SLAVE.
  const std::string old_change =
      "CHANGE MASTER TO MASTER_HOST='mysql-0.mysql', MASTER_PORT=3306, "
      "MASTER_USER='replboot_repl', " +
      kPw + ", MASTER_AUTO_POSITION=1, GET_MASTER_PUBLIC_KEY=1, MASTER_CONNECT_RETRY=5";
  const std::string purge = "SET GLOBAL gtid_purged='c777888a-b6df-11e2-a604-080027635ef5:1-4'";
  EXPECT_EQ(
      Sql("mysql-8.0/replica-auto-position-old", Flavour::kMySQL, Server(Flavour::kMySQL, 80022)),
      (std::vector<std::string>{purge, old_change, "START REPLICA"}));
  EXPECT_EQ(
      Sql("mysql-8.0/replica-auto-position-old", Flavour::kMySQL, Server(Flavour::kMySQL, 80021)),
      (std::vector<std::string>{purge, old_change, "START SLAVE"}));
}

// The CHANGE statement of a GTID position with `source`, for one server.
std::string ChangeWith(const SourceOptions& source, const ServerInfo& server) {
  Position p;
  p.gtid = server.dialect.flavour() == Flavour::kMariaDB
               ? "0-1-5"
               : "c777888a-b6df-11e2-a604-080027635ef5:1-4";
  auto statements = ReplicaStatements(p, source, server);
  EXPECT_TRUE(statements.has_value()) << statements.error().ToString();
  if (!statements) return "";
  for (const auto& s : *statements) {
    if (s.sql.starts_with("CHANGE ")) return s.sql;
  }
  ADD_FAILURE() << "no CHANGE statement";
  return "";
}

TEST(StatementsTest, TlsWithCaVerifiesTheSourceInEveryDialect) {
  SourceOptions source = Source(/*tls=*/true);
  // A quote in a path is escaped, not a way out of the literal.
  source.tls_ca = "/etc/replboot/tls/it's-ca.pem";
  const std::string ca = "'/etc/replboot/tls/it\\'s-ca.pem'";
  struct Case {
    Flavour flavour;
    int version;
    std::string tail;
  };
  for (const Case& c : std::vector<Case>{
           {Flavour::kMariaDB, 101119,
            "MASTER_CONNECT_RETRY=5, MASTER_SSL=1, MASTER_SSL_CA=" + ca +
                ", MASTER_SSL_VERIFY_SERVER_CERT=1"},
           {Flavour::kMySQL, 80022,  // before CHANGE REPLICATION SOURCE (8.0.23)
            "MASTER_CONNECT_RETRY=5, MASTER_SSL=1, MASTER_SSL_CA=" + ca +
                ", MASTER_SSL_VERIFY_SERVER_CERT=1"},
           {Flavour::kMySQL, 80036,
            "SOURCE_CONNECT_RETRY=5, SOURCE_SSL=1, SOURCE_SSL_CA=" + ca +
                ", SOURCE_SSL_VERIFY_SERVER_CERT=1"},
           {Flavour::kMySQL, 80403,
            "SOURCE_CONNECT_RETRY=5, SOURCE_SSL=1, SOURCE_SSL_CA=" + ca +
                ", SOURCE_SSL_VERIFY_SERVER_CERT=1"}}) {
    SCOPED_TRACE(c.version);
    std::string change = ChangeWith(source, Server(c.flavour, c.version));
    EXPECT_TRUE(change.ends_with(c.tail)) << change;
  }
}

TEST(StatementsTest, TlsClientCertificateAndNoCa) {
  SourceOptions source = Source(/*tls=*/true);
  source.tls_cert = "/tls/mysql-1.pem";
  source.tls_key = "/tls/mysql-1.key";
  // No CA: encrypted, nothing verified (and no VERIFY without a CA to verify against).
  EXPECT_TRUE(ChangeWith(source, Server(Flavour::kMariaDB, 101119))
                  .ends_with("MASTER_CONNECT_RETRY=5, MASTER_SSL=1, "
                             "MASTER_SSL_CERT='/tls/mysql-1.pem', "
                             "MASTER_SSL_KEY='/tls/mysql-1.key'"));
  source.tls_ca = "/tls/ca.pem";
  EXPECT_TRUE(ChangeWith(source, Server(Flavour::kMySQL, 80400))
                  .ends_with("SOURCE_SSL=1, SOURCE_SSL_CA='/tls/ca.pem', "
                             "SOURCE_SSL_VERIFY_SERVER_CERT=1, "
                             "SOURCE_SSL_CERT='/tls/mysql-1.pem', "
                             "SOURCE_SSL_KEY='/tls/mysql-1.key'"));
  // TLS off: the files are not mentioned at all.
  source.tls = false;
  std::string plain = ChangeWith(source, Server(Flavour::kMariaDB, 101119));
  EXPECT_EQ(plain.find("SSL"), std::string::npos) << plain;
}

TEST(StatementsTest, RedactedRenderingHidesOnlyThePassword) {
  Position p;
  p.gtid = "0-1-5";
  auto statements = ReplicaStatements(p, Source(), Server(Flavour::kMariaDB, 101119));
  ASSERT_TRUE(statements.has_value());
  ASSERT_EQ(statements->size(), 3u);
  EXPECT_EQ((*statements)[1].redacted,
            "CHANGE MASTER TO MASTER_HOST='mysql-0.mysql', MASTER_PORT=3306, "
            "MASTER_USER='replboot_repl', "
            "MASTER_PASSWORD='<redacted>', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=5");
  EXPECT_EQ((*statements)[0].redacted, (*statements)[0].sql);
}

TEST(StatementsTest, RefusesIncompleteInput) {
  Position empty;
  EXPECT_FALSE(ReplicaStatements(empty, Source(), Server(Flavour::kMariaDB, 0)).has_value());
  Position p;
  p.gtid = "0-1-5";
  SourceOptions no_host = Source();
  no_host.host.clear();
  EXPECT_FALSE(ReplicaStatements(p, no_host, Server(Flavour::kMariaDB, 0)).has_value());
  SourceOptions bad_port = Source();
  bad_port.port = 70000;
  EXPECT_FALSE(ReplicaStatements(p, bad_port, Server(Flavour::kMariaDB, 0)).has_value());
}

}  // namespace
}  // namespace replboot::replication
