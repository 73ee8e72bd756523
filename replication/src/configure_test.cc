#include "replboot/replication/configure.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "replboot/base/files.h"
#include "replboot/replication/users.h"
#include "replboot/testing/fake_session.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::replication {
namespace {

using ::replboot::testing::TempDir;
using testing::FakeSession;
using testing::MakeRow;

db::Row MariaStatus(const std::string& host, const std::string& io, const std::string& sql,
                    std::optional<std::string> behind = std::nullopt,
                    const std::string& io_err = "", int sql_errno = 0) {
  return MakeRow({{"Slave_IO_State", ""},
                  {"Master_Host", host},
                  {"Master_Port", "3306"},
                  {"Slave_IO_Running", io},
                  {"Slave_SQL_Running", sql},
                  {"Last_IO_Errno", io_err.empty() ? "0" : "2003"},
                  {"Last_IO_Error", io_err},
                  {"Last_SQL_Errno", std::to_string(sql_errno)},
                  {"Last_SQL_Error", sql_errno ? "Duplicate entry '1' for key 'PRIMARY'" : ""},
                  {"Seconds_Behind_Master", behind},
                  {"Gtid_IO_Pos", "0-100-5"}});
}

ReplicaSetup MakeSetup(const std::string& datadir) {
  ReplicaSetup s;
  s.flavour = Flavour::kMariaDB;
  s.source.host = "mysql-0.mysql";
  s.source.user = "replboot_repl";
  s.source.password = "pw-secret";
  s.datadir = datadir;
  s.start_deadline = std::chrono::milliseconds(300);
  s.poll_interval = std::chrono::milliseconds(5);
  return s;
}

Position Gtid(const std::string& gtid) {
  Position p;
  p.gtid = gtid;
  p.origin = "test";
  return p;
}

// A MariaDB that has no replication until CHANGE MASTER, then runs it after START SLAVE.
void ScriptFreshMariaDb(FakeSession* fake, bool* changed, bool* started) {
  fake->OnRows("SELECT VERSION()", {MakeRow({{"v", "10.11.19-MariaDB"}})});
  fake->On("SHOW SLAVE STATUS",
           [changed, started](const std::string&) -> Result<std::vector<db::Row>> {
             if (!*changed) return std::vector<db::Row>{};
             return std::vector<db::Row>{*started ? MariaStatus("mysql-0.mysql", "Yes", "Yes", "0")
                                                  : MariaStatus("mysql-0.mysql", "No", "No")};
           });
  fake->On("CHANGE MASTER", [changed](const std::string&) -> Result<std::vector<db::Row>> {
    *changed = true;
    return std::vector<db::Row>{};
  });
  fake->On("START SLAVE", [started](const std::string&) -> Result<std::vector<db::Row>> {
    *started = true;
    return std::vector<db::Row>{};
  });
}

int Count(const std::vector<std::string>& v, const std::string& prefix) {
  return static_cast<int>(std::count_if(
      v.begin(), v.end(), [&](const std::string& s) { return s.rfind(prefix, 0) == 0; }));
}

TEST(ConfigureTest, ConfiguresOnceAndRecordsWithoutPassword) {
  TempDir dir("configure-test");
  FakeSession fake;
  bool changed = false, started = false;
  ScriptFreshMariaDb(&fake, &changed, &started);
  auto outcome = ConfigureReplica(fake, Gtid("0-100-7"), MakeSetup(dir.path()));
  ASSERT_TRUE(outcome.has_value()) << outcome.error().ToString();
  EXPECT_EQ(*outcome, ConfigureOutcome::kConfigured);
  EXPECT_EQ(Count(fake.executed, "SET GLOBAL gtid_slave_pos='0-100-7'"), 1);
  EXPECT_EQ(Count(fake.executed, "CHANGE MASTER TO"), 1);
  auto record = files::ReadFile(dir.Path(kIntentFileName));
  ASSERT_TRUE(record.has_value());
  EXPECT_NE(record->find("\"state\": \"configured\""), std::string::npos) << *record;
  EXPECT_NE(record->find("\"threads_running\": true"), std::string::npos) << *record;
  EXPECT_EQ(record->find("pw-secret"), std::string::npos) << *record;
  EXPECT_EQ(std::filesystem::status(dir.Path(kIntentFileName)).permissions() &
                std::filesystem::perms::others_read,
            std::filesystem::perms::none);

  // A second call (a restart) finds replication configured and does not CHANGE MASTER again.
  fake.executed.clear();
  outcome = ConfigureReplica(fake, Gtid("0-100-7"), MakeSetup(dir.path()));
  ASSERT_TRUE(outcome.has_value()) << outcome.error().ToString();
  EXPECT_EQ(*outcome, ConfigureOutcome::kAlreadyConfigured);
  EXPECT_EQ(Count(fake.executed, "CHANGE MASTER"), 0);
  EXPECT_EQ(Count(fake.executed, "SET GLOBAL"), 0);
  EXPECT_EQ(Count(fake.executed, "START SLAVE"), 0);  // already running
}

TEST(ConfigureTest, AlreadyConfiguredButStoppedIsStartedNotReconfigured) {
  TempDir dir("configure-test");
  FakeSession fake;
  bool started = false;
  fake.OnRows("SELECT VERSION()", {MakeRow({{"v", "10.11.19-MariaDB"}})});
  fake.On("SHOW SLAVE STATUS", [&](const std::string&) -> Result<std::vector<db::Row>> {
    return std::vector<db::Row>{started ? MariaStatus("mysql-0.mysql", "Yes", "Yes", "0")
                                        : MariaStatus("mysql-0.mysql", "No", "No")};
  });
  fake.On("START SLAVE", [&](const std::string&) -> Result<std::vector<db::Row>> {
    started = true;
    return std::vector<db::Row>{};
  });
  auto outcome = SetupReplica(fake, MakeSetup(dir.path()));  // no position files needed
  ASSERT_TRUE(outcome.has_value()) << outcome.error().ToString();
  EXPECT_EQ(*outcome, ConfigureOutcome::kAlreadyConfigured);
  EXPECT_EQ(Count(fake.executed, "START SLAVE"), 1);
  EXPECT_EQ(Count(fake.executed, "CHANGE MASTER"), 0);
}

TEST(ConfigureTest, RefusesToReconfigureAfterAResetByHand) {
  TempDir dir("configure-test");
  ASSERT_TRUE(files::WriteFileAtomic(dir.Path(kIntentFileName), R"({"state": "configured"})").ok());
  FakeSession fake;
  fake.OnRows("SELECT VERSION()", {MakeRow({{"v", "10.11.19-MariaDB"}})});
  auto outcome = ConfigureReplica(fake, Gtid("0-100-7"), MakeSetup(dir.path()));
  ASSERT_FALSE(outcome.has_value());
  EXPECT_NE(outcome.error().message().find("refusing"), std::string::npos);
  EXPECT_EQ(Count(fake.executed, "CHANGE MASTER"), 0);
}

TEST(ConfigureTest, IntentWithoutConfiguredReplicationIsRedone) {
  TempDir dir("configure-test");
  ASSERT_TRUE(files::WriteFileAtomic(dir.Path(kIntentFileName), R"({"state": "intent"})").ok());
  FakeSession fake;
  bool changed = false, started = false;
  ScriptFreshMariaDb(&fake, &changed, &started);
  auto outcome = ConfigureReplica(fake, Gtid("0-100-7"), MakeSetup(dir.path()));
  ASSERT_TRUE(outcome.has_value()) << outcome.error().ToString();
  EXPECT_EQ(Count(fake.executed, "CHANGE MASTER"), 1);
}

TEST(ConfigureTest, ThreadsNotRunningByTheDeadlineIsAnErrorWithTheReason) {
  TempDir dir("configure-test");
  FakeSession fake;
  bool changed = false;
  fake.OnRows("SELECT VERSION()", {MakeRow({{"v", "10.11.19-MariaDB"}})});
  fake.On("SHOW SLAVE STATUS", [&](const std::string&) -> Result<std::vector<db::Row>> {
    if (!changed) return std::vector<db::Row>{};
    return std::vector<db::Row>{MariaStatus("mysql-0.mysql", "Connecting", "Yes", std::nullopt,
                                            "Can't connect to server on 'mysql-0.mysql'")};
  });
  fake.On("CHANGE MASTER", [&](const std::string&) -> Result<std::vector<db::Row>> {
    changed = true;
    return std::vector<db::Row>{};
  });
  auto outcome = ConfigureReplica(fake, Gtid("0-100-7"), MakeSetup(dir.path()));
  ASSERT_FALSE(outcome.has_value());
  EXPECT_EQ(outcome.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(outcome.error().message().find("IO thread Connecting: error 2003: Can't connect"),
            std::string::npos)
      << outcome.error().message();
  auto record = files::ReadFile(dir.Path(kIntentFileName));
  ASSERT_TRUE(record.has_value());
  EXPECT_NE(record->find("\"threads_running\": false"), std::string::npos) << *record;
}

TEST(ConfigureTest, SqlThreadErrorFailsWithoutWaitingForTheDeadline) {
  FakeSession fake;
  fake.OnRows("SHOW SLAVE STATUS",
              {MariaStatus("mysql-0.mysql", "Yes", "No", std::nullopt, "", 1062)});
  auto start = std::chrono::steady_clock::now();
  Status status = WaitForReplicaThreads(fake, db::Dialect(Flavour::kMariaDB, 101119),
                                        std::chrono::seconds(30), std::chrono::milliseconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("SQL thread No: error 1062: Duplicate entry"), std::string::npos)
      << status.message();
}

TEST(ConfigureTest, FailedStatementIsReportedRedacted) {
  TempDir dir("configure-test");
  FakeSession fake;
  fake.OnRows("SELECT VERSION()", {MakeRow({{"v", "10.11.19-MariaDB"}})});
  fake.OnError("CHANGE MASTER", Status(StatusCode::kInternal, "error 1198"), 1198);
  auto outcome = ConfigureReplica(fake, Gtid("0-100-7"), MakeSetup(dir.path()));
  ASSERT_FALSE(outcome.has_value());
  EXPECT_NE(outcome.error().message().find("MASTER_PASSWORD='<redacted>'"), std::string::npos);
  EXPECT_EQ(outcome.error().message().find("pw-secret"), std::string::npos);
}

TEST(ConfigureTest, MySqlUsesReplicaStatementsAndResetsOnlyWhenNeeded) {
  TempDir dir("configure-test");
  FakeSession fake;
  bool changed = false;
  fake.OnRows("SELECT VERSION()", {MakeRow({{"v", "8.4.3"}})});
  fake.OnRows("SELECT @@GLOBAL.gtid_executed",
              {MakeRow({{"g", "c777888a-b6df-11e2-a604-080027635ef5:1-4"}})});
  fake.On("SHOW REPLICA STATUS", [&](const std::string&) -> Result<std::vector<db::Row>> {
    if (!changed) return std::vector<db::Row>{};
    return std::vector<db::Row>{MakeRow({{"Source_Host", "mysql-0.mysql"},
                                         {"Replica_IO_Running", "Yes"},
                                         {"Replica_SQL_Running", "Yes"},
                                         {"Seconds_Behind_Source", "0"}})};
  });
  fake.On("CHANGE REPLICATION SOURCE", [&](const std::string&) -> Result<std::vector<db::Row>> {
    changed = true;
    return std::vector<db::Row>{};
  });
  ReplicaSetup setup = MakeSetup(dir.path());
  setup.flavour = Flavour::kMySQL;
  auto outcome = ConfigureReplica(fake, Gtid("c777888a-b6df-11e2-a604-080027635ef5:1-4"), setup);
  ASSERT_TRUE(outcome.has_value()) << outcome.error().ToString();
  EXPECT_EQ(Count(fake.executed, "RESET"), 0);
  EXPECT_EQ(Count(fake.executed, "SET GLOBAL gtid_purged"), 0);
  EXPECT_EQ(Count(fake.executed, "START REPLICA"), 1);
}

TEST(UsersTest, StatementsPerFlavourAndRedaction) {
  Accounts a;
  a.replication = {"replboot_repl", "r-pw"};
  a.backup = {"replboot_backup", "b-pw"};
  a.app = {"app", "a-pw"};
  auto maria = UserStatements(Flavour::kMariaDB, a);
  std::vector<std::string> sql;
  for (const auto& s : maria) {
    sql.push_back(s.sql);
    EXPECT_EQ(s.redacted.find("-pw"), std::string::npos) << s.redacted;
  }
  // MariaDB binlogs the statement text: the clear password must not be in it, only its
  // mysql_native_password hash (SELECT PASSWORD('r-pw') on a server gives the same value).
  // (Python: '*' + hashlib.sha1(hashlib.sha1(b'r-pw').digest()).hexdigest().upper())
  const std::string hash = "'*2F4A96DF2106889A0B9951DBB76E8195EF3AE517'";
  for (const auto& s : sql) EXPECT_EQ(s.find("r-pw"), std::string::npos) << s;
  EXPECT_EQ(
      Count(sql, "CREATE USER IF NOT EXISTS 'replboot_repl'@'%' IDENTIFIED BY PASSWORD " + hash),
      1);
  EXPECT_EQ(Count(sql, "ALTER USER 'replboot_repl'@'%' IDENTIFIED BY PASSWORD " + hash), 1);
  EXPECT_EQ(Count(sql, "GRANT REPLICATION SLAVE ON *.* TO 'replboot_repl'@'%'"), 1);
  EXPECT_EQ(Count(sql,
                  "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR, "
                  "REPLICATION SLAVE ADMIN ON *.* TO 'replboot_backup'@'localhost'"),
            1);
  EXPECT_EQ(Count(sql, "CREATE TABLE IF NOT EXISTS replboot.heartbeat"), 1);
  for (const auto& s : sql) {
    // The backup account may restart a replica's SQL thread, and nothing more of the kind.
    if (s.find("'replboot_backup'") != std::string::npos && s.rfind("GRANT", 0) == 0) {
      EXPECT_EQ(s.find("SUPER"), std::string::npos);
      EXPECT_EQ(s.find("ALL"), std::string::npos);
      EXPECT_EQ(s.find("REPLICATION SLAVE ON"), std::string::npos);
    }
    if (s.find("'app'") != std::string::npos && s.rfind("GRANT", 0) == 0) {
      EXPECT_EQ(s.find("SUPER"), std::string::npos);
      EXPECT_EQ(s.find("READ_ONLY"), std::string::npos);
      EXPECT_EQ(s.find("ALL"), std::string::npos);
    }
  }
  std::vector<std::string> my;
  for (const auto& s : UserStatements(Flavour::kMySQL, a)) my.push_back(s.sql);
  EXPECT_EQ(Count(my, "ALTER USER 'replboot_repl'@'%' IDENTIFIED BY 'r-pw'"), 1);
  EXPECT_EQ(
      Count(my,
            "GRANT BACKUP_ADMIN, PROCESS, RELOAD, LOCK TABLES, REPLICATION CLIENT, "
            "REPLICATION_SLAVE_ADMIN ON *.* TO 'replboot_backup'@'localhost'"),
      1);
  EXPECT_EQ(
      Count(my, "GRANT SELECT ON performance_schema.log_status TO 'replboot_backup'@'localhost'"),
      1);
  a.app.user.clear();
  for (const auto& s : UserStatements(Flavour::kMariaDB, a))
    EXPECT_EQ(s.sql.find("'app'"), std::string::npos);
}

TEST(UsersTest, EnsureUsersStopsAtTheFirstErrorRedacted) {
  Accounts a;
  a.replication = {"replboot_repl", "r-pw"};
  a.backup = {"replboot_backup", "b-pw"};
  FakeSession fake;
  fake.OnError("CREATE USER IF NOT EXISTS 'replboot_backup'",
               Status(StatusCode::kPermissionDenied, "denied"), 1227);
  Status status = EnsureUsers(fake, Flavour::kMariaDB, a);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(status.message().find("IDENTIFIED BY '<redacted>'"), std::string::npos)
      << status.message();
  EXPECT_EQ(status.message().find("b-pw"), std::string::npos);
}

}  // namespace
}  // namespace replboot::replication
