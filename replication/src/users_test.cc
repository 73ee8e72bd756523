// The application user's grants: per database from cluster.app_databases, converged.
#include "replboot/replication/users.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "replboot/testing/fake_session.h"

namespace replboot::replication {
namespace {

std::vector<std::string> AppStatements(std::vector<std::string> databases) {
  Accounts a;
  a.replication = {"replboot_repl", "r-pw"};
  a.backup = {"replboot_backup", "b-pw"};
  a.app = {"app", "a-pw"};
  a.app_databases = std::move(databases);
  std::vector<std::string> out;
  for (const auto& s : UserStatements(Flavour::kMariaDB, a)) {
    if (s.sql.find("'app'@") != std::string::npos || s.sql.rfind("CREATE DATABASE", 0) == 0)
      out.push_back(s.sql);
  }
  return out;
}

const std::string kPrivileges = kAppPrivileges;

TEST(AppGrantsTest, EachDatabaseIsCreatedAndGranted) {
  auto sql = AppStatements({"app", "my_shop"});
  ASSERT_EQ(sql.size(), 8u);
  EXPECT_EQ(sql[0], "CREATE DATABASE IF NOT EXISTS replboot");
  EXPECT_EQ(sql[1], "CREATE DATABASE IF NOT EXISTS `app`");
  EXPECT_EQ(sql[2], "CREATE DATABASE IF NOT EXISTS `my_shop`");
  EXPECT_EQ(sql[3].rfind("CREATE USER IF NOT EXISTS 'app'@'%'", 0), 0u) << sql[3];
  EXPECT_EQ(sql[4].rfind("ALTER USER 'app'@'%'", 0), 0u) << sql[4];
  EXPECT_EQ(sql[5], "GRANT " + kPrivileges + " ON `app`.* TO 'app'@'%'");
  // '_' is a wildcard in GRANT database names: escaped, so only my_shop itself is granted.
  EXPECT_EQ(sql[6], "GRANT " + kPrivileges + " ON `my\\_shop`.* TO 'app'@'%'");
  // After the grants: global privileges (an earlier "*") go, database-level ones stay.
  EXPECT_EQ(sql[7], "REVOKE ALL PRIVILEGES ON *.* FROM 'app'@'%'");
}

TEST(AppGrantsTest, StarMeansEveryDatabaseAndCreatesNone) {
  auto sql = AppStatements({"app", "*"});
  EXPECT_EQ(sql.back(), "GRANT " + kPrivileges + " ON *.* TO 'app'@'%'");
  for (const auto& s : sql) {
    EXPECT_EQ(s.find("`app`"), std::string::npos) << s;
    EXPECT_EQ(s.rfind("REVOKE", 0), std::string::npos) << s;
  }
}

TEST(AppGrantsTest, BackticksInANameCannotCloseTheIdentifier) {
  auto sql = AppStatements({"a`b"});
  EXPECT_EQ(sql[1], "CREATE DATABASE IF NOT EXISTS `a``b`");
  EXPECT_EQ(sql[sql.size() - 2], "GRANT " + kPrivileges + " ON `a``b`.* TO 'app'@'%'");
}

TEST(AppGrantsTest, StaleDatabaseGrantsAreRevokedOthersKept) {
  Accounts a;
  a.app = {"app", "a-pw"};
  a.app_databases = {"app", "my_shop"};
  auto revokes = StaleAppGrantRevokes(a, {"app", "my\\_shop", "old\\_db", "legacy"});
  std::vector<std::string> sql;
  for (const auto& s : revokes) sql.push_back(s.sql);
  EXPECT_EQ(sql, (std::vector<std::string>{"REVOKE ALL PRIVILEGES ON `old\\_db`.* FROM 'app'@'%'",
                                           "REVOKE ALL PRIVILEGES ON `legacy`.* FROM 'app'@'%'"}));
  // With "*" every database-level grant is redundant.
  a.app_databases = {"*"};
  EXPECT_EQ(StaleAppGrantRevokes(a, {"app"}).size(), 1u);
  a.app.user.clear();
  EXPECT_TRUE(StaleAppGrantRevokes(a, {"app"}).empty());
}

TEST(AppGrantsTest, EnsureUsersGrantsBeforeItRevokes) {
  Accounts a;
  a.replication = {"replboot_repl", "r-pw"};
  a.backup = {"replboot_backup", "b-pw"};
  a.app = {"app", "a-pw"};
  a.app_databases = {"app"};
  testing::FakeSession fake;
  fake.OnRows("SELECT Db FROM mysql.db WHERE User = 'app'",
              {testing::MakeRow({{"Db", "app"}}), testing::MakeRow({{"Db", "gone"}})});
  ASSERT_TRUE(EnsureUsers(fake, Flavour::kMariaDB, a).ok());
  auto at = [&](const std::string& prefix) {
    for (size_t i = 0; i < fake.executed.size(); ++i)
      if (fake.executed[i].rfind(prefix, 0) == 0) return static_cast<int>(i);
    return -1;
  };
  int grant = at("GRANT " + kPrivileges + " ON `app`.*");
  int revoke = at("REVOKE ALL PRIVILEGES ON `gone`.*");
  ASSERT_GE(grant, 0);
  ASSERT_GE(revoke, 0);
  EXPECT_LT(grant, revoke);
  EXPECT_EQ(at("REVOKE ALL PRIVILEGES ON `app`.*"), -1);
}

}  // namespace
}  // namespace replboot::replication
