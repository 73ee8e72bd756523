// The application user's grants: per database from cluster.app_databases, converged.
#include "replboot/replication/users.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

TEST(AppGrantsTest, EachDatabaseIsCreatedAndGrantedAfterARevoke) {
  auto sql = AppStatements({"app", "my_shop"});
  ASSERT_EQ(sql.size(), 8u);
  EXPECT_EQ(sql[0], "CREATE DATABASE IF NOT EXISTS replboot");
  EXPECT_EQ(sql[1], "CREATE DATABASE IF NOT EXISTS `app`");
  EXPECT_EQ(sql[2], "CREATE DATABASE IF NOT EXISTS `my_shop`");
  EXPECT_EQ(sql[3].rfind("CREATE USER IF NOT EXISTS 'app'@'%'", 0), 0u) << sql[3];
  EXPECT_EQ(sql[4].rfind("ALTER USER 'app'@'%'", 0), 0u) << sql[4];
  // Revoked first, so a database taken out of the setting loses its grants.
  EXPECT_EQ(sql[5], "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'app'@'%'");
  EXPECT_EQ(sql[6], "GRANT " + kPrivileges + " ON `app`.* TO 'app'@'%'");
  // '_' is a wildcard in GRANT database names: escaped, so only my_shop itself is granted.
  EXPECT_EQ(sql[7], "GRANT " + kPrivileges + " ON `my\\_shop`.* TO 'app'@'%'");
}

TEST(AppGrantsTest, StarMeansEveryDatabaseAndCreatesNone) {
  auto sql = AppStatements({"app", "*"});
  EXPECT_EQ(sql.back(), "GRANT " + kPrivileges + " ON *.* TO 'app'@'%'");
  for (const auto& s : sql) EXPECT_EQ(s.find("`app`"), std::string::npos) << s;
}

TEST(AppGrantsTest, NoDatabasesLeavesALoginWithoutGrants) {
  auto sql = AppStatements({});
  EXPECT_EQ(sql.back(), "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'app'@'%'");
}

TEST(AppGrantsTest, BackticksInANameCannotCloseTheIdentifier) {
  auto sql = AppStatements({"a`b"});
  EXPECT_EQ(sql[1], "CREATE DATABASE IF NOT EXISTS `a``b`");
  EXPECT_EQ(sql.back(), "GRANT " + kPrivileges + " ON `a``b`.* TO 'app'@'%'");
}

}  // namespace
}  // namespace replboot::replication
