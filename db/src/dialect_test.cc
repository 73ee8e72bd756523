#include "replboot/db/dialect.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "replboot/testing/fake_session.h"
#include "replboot/testing/vertical_row.h"

namespace replboot::db {
namespace {

using ::replboot::testing::FakeSession;
using ::replboot::testing::MakeRow;
using ::replboot::testing::ReadVerticalRow;

const std::string kData = REPLBOOT_DB_TESTDATA;

Row Sample(const std::string& name) {
  auto row = ReadVerticalRow(kData + "/" + name);
  EXPECT_TRUE(row.has_value()) << name << ": " << row.error().ToString();
  return row ? *row : Row();
}

TEST(ServerVersionTest, Parses) {
  EXPECT_EQ(ParseServerVersion("10.11.19-MariaDB-0+deb12u1").value(), 101119);
  EXPECT_EQ(ParseServerVersion("10.11.19-MariaDB-0+deb12u1-log").value(), 101119);
  EXPECT_EQ(ParseServerVersion("8.4.3").value(), 80403);
  EXPECT_EQ(ParseServerVersion("8.0.36-28").value(), 80036);
  EXPECT_FALSE(ParseServerVersion("MariaDB").has_value());
  EXPECT_FALSE(ParseServerVersion("10.11").has_value());
  EXPECT_FALSE(ParseServerVersion("").has_value());
  EXPECT_FALSE(ParseServerVersion("99999.1.1").has_value());  // a part has at most 4 digits
}

// Every statement and column of a dialect, so one table per server is read at a glance.
struct Expected {
  std::string show, start, start_sql, change, host_option, public_key, reset, gtid_start, executed,
      wait;
  std::vector<std::string> columns;  // host, port, io, sql, behind, io state, retrieved
};

void ExpectDialect(const Dialect& d, const Expected& e) {
  SCOPED_TRACE(d.Describe());
  EXPECT_EQ(d.ShowReplicaStatus(), e.show);
  EXPECT_EQ(d.StartReplica(), e.start);
  EXPECT_EQ(d.StartSqlThread(), e.start_sql);
  EXPECT_EQ(d.ChangeSourceTo(), e.change);
  EXPECT_EQ(d.SourceOption("HOST"), e.host_option);
  EXPECT_EQ(d.GetSourcePublicKeyOption(), e.public_key);
  EXPECT_EQ(d.ResetBinaryLogsAndGtids(), e.reset);
  EXPECT_EQ(d.GtidStartVariable(), e.gtid_start);
  EXPECT_EQ(d.ExecutedGtidExpression(), e.executed);
  EXPECT_EQ(d.WaitForGtid("G'1", 5), e.wait);
  const ReplicaStatusColumns& c = d.Columns();
  EXPECT_EQ((std::vector<std::string>{c.source_host, c.source_port, c.io_running, c.sql_running,
                                      c.seconds_behind, c.io_state, c.retrieved_gtid}),
            e.columns);
}

const std::vector<std::string> kSlaveColumns = {
    "Master_Host",           "Master_Port",    "Slave_IO_Running", "Slave_SQL_Running",
    "Seconds_Behind_Master", "Slave_IO_State", "Gtid_IO_Pos"};
const std::vector<std::string> kReplicaColumns = {
    "Source_Host",           "Source_Port",      "Replica_IO_Running", "Replica_SQL_Running",
    "Seconds_Behind_Source", "Replica_IO_State", "Retrieved_Gtid_Set"};

TEST(DialectTest, MariaDbKeepsTheSlaveSpellingsInEveryVersion) {
  Expected e{"SHOW SLAVE STATUS",
             "START SLAVE",
             "START SLAVE SQL_THREAD",
             "CHANGE MASTER TO",
             "MASTER_HOST",
             "GET_MASTER_PUBLIC_KEY",
             "RESET MASTER",
             "gtid_slave_pos",
             "@@GLOBAL.gtid_current_pos",
             "SELECT MASTER_GTID_WAIT('G\\'1', 5) AS r",
             kSlaveColumns};
  for (int version : {100611, 101119, 110402, 0})
    ExpectDialect(Dialect(Flavour::kMariaDB, version), e);
  EXPECT_EQ(Dialect(Flavour::kMariaDB, 101119).Describe(), "MariaDB 10.11.19");
  EXPECT_EQ(Dialect(Flavour::kMariaDB, 101119).BackupGrants(),
            (std::vector<std::string>{
                "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR, "
                "REPLICATION SLAVE ADMIN ON *.*"}));
}

TEST(DialectTest, MySql80UsesTheReplicaSpellingsFrom8022And8023) {
  Expected current{"SHOW REPLICA STATUS",
                   "START REPLICA",
                   "START REPLICA SQL_THREAD",
                   "CHANGE REPLICATION SOURCE TO",
                   "SOURCE_HOST",
                   "GET_SOURCE_PUBLIC_KEY",
                   "RESET MASTER",
                   "gtid_purged",
                   "@@GLOBAL.gtid_executed",
                   "SELECT WAIT_FOR_EXECUTED_GTID_SET('G\\'1', 5) AS r",
                   kReplicaColumns};
  ExpectDialect(Dialect(Flavour::kMySQL, 80036), current);
  EXPECT_EQ(Dialect(Flavour::kMySQL, 80036).Describe(), "MySQL 8.0.36");

  // 8.0.22: SHOW/START REPLICA and the Replica_* columns, but still CHANGE MASTER TO.
  Expected r8022 = current;
  r8022.change = "CHANGE MASTER TO";
  r8022.host_option = "MASTER_HOST";
  r8022.public_key = "GET_MASTER_PUBLIC_KEY";
  ExpectDialect(Dialect(Flavour::kMySQL, 80022), r8022);

  // 8.0.21: the SLAVE spellings with MySQL's own GTID column and functions.
  Expected r8021 = r8022;
  r8021.show = "SHOW SLAVE STATUS";
  r8021.start = "START SLAVE";
  r8021.start_sql = "START SLAVE SQL_THREAD";
  r8021.columns = kSlaveColumns;
  r8021.columns.back() = "Retrieved_Gtid_Set";
  ExpectDialect(Dialect(Flavour::kMySQL, 80021), r8021);
  EXPECT_EQ(Dialect(Flavour::kMySQL, 80036).BackupGrants(),
            (std::vector<std::string>{
                "BACKUP_ADMIN, PROCESS, RELOAD, LOCK TABLES, REPLICATION CLIENT, "
                "REPLICATION_SLAVE_ADMIN ON *.*",
                "SELECT ON performance_schema.log_status"}));
}

// A replica's clone taking over as the primary: forget the inherited source, and continue the
// donor's GTID history in a new binlog (states as the servers print them).
TEST(DialectTest, TakingOverAClonedHistory) {
  const Dialect mariadb(Flavour::kMariaDB, 101119);
  EXPECT_EQ(mariadb.GtidStateQuery(),
            "SELECT @@GLOBAL.gtid_binlog_state AS binlog_state, "
            "@@GLOBAL.gtid_current_pos AS current_pos");
  EXPECT_EQ(mariadb.StopReplica(), "STOP SLAVE");
  EXPECT_EQ(mariadb.ResetReplicaAll(), "RESET SLAVE ALL");
  EXPECT_EQ(mariadb.ContinueGtidHistory("0-100-57,0-101-3"),
            (std::vector<std::string>{"RESET MASTER",
                                      "SET GLOBAL gtid_binlog_state = '0-100-57,0-101-3'"}));

  const std::string mysql_state =
      "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57,\n"
      "9d7b8a6c-71ca-11e1-9e33-c80aa9429562:1-3";
  for (int version : {80036, 80021}) {
    const Dialect mysql(Flavour::kMySQL, version);
    EXPECT_EQ(mysql.GtidStateQuery(),
              "SELECT @@GLOBAL.gtid_executed AS binlog_state, "
              "@@GLOBAL.gtid_executed AS current_pos");
    EXPECT_EQ(mysql.ContinueGtidHistory(mysql_state),
              (std::vector<std::string>{
                  "RESET MASTER",
                  "SET GLOBAL gtid_purged = '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57,\\n"
                  "9d7b8a6c-71ca-11e1-9e33-c80aa9429562:1-3'"}));
  }
  EXPECT_EQ(Dialect(Flavour::kMySQL, 80036).ResetReplicaAll(), "RESET REPLICA ALL");
  EXPECT_EQ(Dialect(Flavour::kMySQL, 80036).StopReplica(), "STOP REPLICA");
  EXPECT_EQ(Dialect(Flavour::kMySQL, 80021).ResetReplicaAll(), "RESET SLAVE ALL");
  const Dialect mysql84(Flavour::kMySQL, 80403);
  EXPECT_EQ(mysql84.ResetReplicaAll(), "RESET REPLICA ALL");
  EXPECT_EQ(mysql84.ContinueGtidHistory("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5").front(),
            "RESET BINARY LOGS AND GTIDS");
  // A quote in a state cannot end the literal.
  EXPECT_EQ(mariadb.ContinueGtidHistory("0-1-1' OR '1").back(),
            "SET GLOBAL gtid_binlog_state = '0-1-1\\' OR \\'1'");
}

TEST(DialectTest, MySql84HasOnlyTheNewSpellings) {
  Expected e{"SHOW REPLICA STATUS",
             "START REPLICA",
             "START REPLICA SQL_THREAD",
             "CHANGE REPLICATION SOURCE TO",
             "SOURCE_HOST",
             "GET_SOURCE_PUBLIC_KEY",
             "RESET BINARY LOGS AND GTIDS",
             "gtid_purged",
             "@@GLOBAL.gtid_executed",
             "SELECT WAIT_FOR_EXECUTED_GTID_SET('G\\'1', 5) AS r",
             kReplicaColumns};
  ExpectDialect(Dialect(Flavour::kMySQL, 80403), e);
  // An unknown version gets the newest syntax: what 8.4 (which removed the old one) accepts.
  ExpectDialect(Dialect(Flavour::kMySQL, 0), e);
  EXPECT_EQ(Dialect(Flavour::kMySQL, 0).Describe(), "MySQL (version unknown)");
}

TEST(DialectTest, WaitResultsMeanWhatEachFlavourSays) {
  Dialect maria(Flavour::kMariaDB, 101119);
  Dialect mysql(Flavour::kMySQL, 80403);
  EXPECT_EQ(maria.WaitTimedOut("0"), false);
  EXPECT_EQ(maria.WaitTimedOut("-1"), true);
  EXPECT_EQ(maria.WaitTimedOut("1"), std::nullopt);
  EXPECT_EQ(mysql.WaitTimedOut("0"), false);
  EXPECT_EQ(mysql.WaitTimedOut("1"), true);
  EXPECT_EQ(mysql.WaitTimedOut("-1"), std::nullopt);
  EXPECT_EQ(mysql.WaitTimedOut(std::nullopt), std::nullopt);  // NULL: an error on the server
}

TEST(ReplicaStateTest, RecordedMariaDb1011Samples) {
  Dialect d(Flavour::kMariaDB, 101119);
  auto stopped = ParseReplicaState(Sample("mariadb-10.11/show-slave-status-stopped"), d);
  ASSERT_TRUE(stopped.has_value()) << stopped.error().ToString();
  EXPECT_EQ(stopped->source_host, "mysql-0.mysql");
  EXPECT_EQ(stopped->source_port, 3306);
  EXPECT_EQ(stopped->WhyNotRunning(), "IO thread No; SQL thread No");
  EXPECT_EQ(stopped->seconds_behind, std::nullopt);

  auto connecting = ParseReplicaState(Sample("mariadb-10.11/show-slave-status-connecting"), d);
  ASSERT_TRUE(connecting.has_value()) << connecting.error().ToString();
  EXPECT_FALSE(connecting->IoRunning());
  EXPECT_TRUE(connecting->SqlRunning());
  EXPECT_EQ(connecting->io_state, "Connecting to master");
  EXPECT_EQ(connecting->last_io_errno, 2005);
  EXPECT_EQ(connecting->WhyNotRunning().rfind("IO thread Connecting: error 2005: error connecting "
                                              "to master 'replboot_repl@mysql-0.mysql:3306'",
                                              0),
            0u)
      << connecting->WhyNotRunning();
}

TEST(ReplicaStateTest, MySqlSamplesPerVersion) {
  for (const auto& [name, version] : std::vector<std::pair<std::string, int>>{
           {"mysql-8.4/show-replica-status-running", 80403},
           {"mysql-8.0/show-replica-status-running", 80036},
           {"mysql-8.0/show-slave-status-8.0.21-running", 80021}}) {
    SCOPED_TRACE(name);
    auto s = ParseReplicaState(Sample(name), Dialect(Flavour::kMySQL, version));
    ASSERT_TRUE(s.has_value()) << s.error().ToString();
    EXPECT_EQ(s->source_host, "mysql-0.mysql");
    EXPECT_EQ(s->source_port, 3306);
    EXPECT_TRUE(s->IoRunning());
    EXPECT_TRUE(s->SqlRunning());
    EXPECT_EQ(s->WhyNotRunning(), "");
    EXPECT_TRUE(s->seconds_behind.has_value());
    EXPECT_NE(s->retrieved_gtid.find(":6-18"), std::string::npos) << s->retrieved_gtid;
    EXPECT_EQ(s->io_state.rfind("Waiting for ", 0), 0u) << s->io_state;
  }
  auto connecting = ParseReplicaState(Sample("mysql-8.4/show-replica-status-connecting"),
                                      Dialect(Flavour::kMySQL, 80403));
  ASSERT_TRUE(connecting.has_value());
  EXPECT_EQ(connecting->seconds_behind, std::nullopt);
  EXPECT_EQ(connecting->WhyNotRunning().rfind("IO thread Connecting: error 2003: Error connecting "
                                              "to source",
                                              0),
            0u)
      << connecting->WhyNotRunning();
  auto sql_error = ParseReplicaState(Sample("mysql-8.0/show-replica-status-sql-error"),
                                     Dialect(Flavour::kMySQL, 80036));
  ASSERT_TRUE(sql_error.has_value());
  EXPECT_EQ(sql_error->WhyNotRunning(),
            "SQL thread No: error 1062: Error 'Duplicate entry '5' for key 't.PRIMARY'' on query. "
            "Default database: 'app'. Query: 'INSERT INTO t VALUES (5)'");
}

TEST(ReplicaStateTest, AnotherDialectsRowIsAnErrorNamingTheColumn) {
  // A MariaDB row read as MySQL 8.4 (node.flavour wrong), and an 8.4 row read as MariaDB.
  auto as_mysql = ParseReplicaState(Sample("mariadb-10.11/show-slave-status-connecting"),
                                    Dialect(Flavour::kMySQL, 80403));
  ASSERT_FALSE(as_mysql.has_value());
  EXPECT_EQ(as_mysql.error().code(), StatusCode::kInternal);
  EXPECT_NE(as_mysql.error().message().find("SHOW REPLICA STATUS has no column Source_Host"),
            std::string::npos)
      << as_mysql.error().message();
  auto as_maria = ParseReplicaState(Sample("mysql-8.4/show-replica-status-running"),
                                    Dialect(Flavour::kMariaDB, 101119));
  ASSERT_FALSE(as_maria.has_value());
  EXPECT_NE(as_maria.error().message().find("no column Master_Host"), std::string::npos);
}

TEST(ReplicaStateTest, ReadSendsTheDialectsStatement) {
  for (const auto& [dialect, sample] : std::vector<std::pair<Dialect, std::string>>{
           {Dialect(Flavour::kMariaDB, 101119), "mariadb-10.11/show-slave-status-connecting"},
           {Dialect(Flavour::kMySQL, 80036), "mysql-8.0/show-replica-status-running"},
           {Dialect(Flavour::kMySQL, 80403), "mysql-8.4/show-replica-status-running"}}) {
    SCOPED_TRACE(dialect.Describe());
    FakeSession fake;
    fake.OnRows(dialect.ShowReplicaStatus(), {Sample(sample)});
    auto state = ReadReplicaState(fake, dialect);
    ASSERT_TRUE(state.has_value()) << state.error().ToString();
    ASSERT_TRUE(state->has_value());
    EXPECT_EQ((*state)->source_host, "mysql-0.mysql");
    EXPECT_EQ(fake.executed, std::vector<std::string>{dialect.ShowReplicaStatus()});
  }
  // No row, or a row with an empty host (after RESET SLAVE): not configured.
  FakeSession none;
  none.OnRows("SHOW SLAVE STATUS", {});
  EXPECT_EQ(ReadReplicaState(none, Dialect(Flavour::kMariaDB, 101119)).value(), std::nullopt);
  FakeSession reset;
  reset.OnRows("SHOW SLAVE STATUS", {MakeRow({{"Master_Host", ""}, {"Slave_IO_Running", "No"}})});
  EXPECT_EQ(ReadReplicaState(reset, Dialect(Flavour::kMariaDB, 101119)).value(), std::nullopt);
  FakeSession failing;
  failing.OnError("SHOW REPLICA STATUS", Status(StatusCode::kPermissionDenied, "error 1227"), 1227);
  auto failed = ReadReplicaState(failing, Dialect(Flavour::kMySQL, 80403));
  ASSERT_FALSE(failed.has_value());
  EXPECT_NE(failed.error().message().find("SHOW REPLICA STATUS"), std::string::npos);
}

TEST(ReadDialectTest, FromTheServersVersion) {
  FakeSession fake;
  fake.OnRows("SELECT VERSION()", {MakeRow({{"v", "8.4.3"}})});
  auto d = ReadDialect(fake, Flavour::kMySQL);
  ASSERT_TRUE(d.has_value()) << d.error().ToString();
  EXPECT_EQ(d->version(), 80403);
  EXPECT_EQ(d->ShowReplicaStatus(), "SHOW REPLICA STATUS");
  FakeSession garbage;
  garbage.OnRows("SELECT VERSION()", {MakeRow({{"v", "unknown"}})});
  EXPECT_EQ(ReadDialect(garbage, Flavour::kMySQL).error().code(), StatusCode::kInvalidArgument);
}

TEST(DialectTest, GtidHistoryReadsEachFlavoursVariables) {
  const std::string maria = Dialect(Flavour::kMariaDB, 101119).SelectGtidHistory();
  EXPECT_NE(maria.find("@@GLOBAL.gtid_binlog_state AS binlog_state"), std::string::npos);
  EXPECT_NE(maria.find("@@GLOBAL.gtid_slave_pos AS slave_pos"), std::string::npos);
  EXPECT_NE(maria.find("@@GLOBAL.log_slave_updates AS log_replica_updates"), std::string::npos);
  for (int version : {80036, 80403, 0}) {
    const std::string mysql = Dialect(Flavour::kMySQL, version).SelectGtidHistory();
    EXPECT_NE(mysql.find("@@GLOBAL.gtid_executed AS binlog_state"), std::string::npos) << mysql;
    EXPECT_EQ(mysql.find("gtid_slave_pos"), std::string::npos) << mysql;
  }
}

}  // namespace
}  // namespace replboot::db
