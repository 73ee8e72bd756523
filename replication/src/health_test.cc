#include "replboot/replication/health.h"

#include <gtest/gtest.h>

#include "replboot/testing/fake_session.h"
#include "replboot/testing/vertical_row.h"

namespace replboot::replication {
namespace {

using testing::FakeSession;
using testing::MakeRow;

NodeInfo Replica() {
  NodeInfo n;
  n.role = NodeRole::kReplica;
  n.ordinal = 1;
  n.server_id = 101;
  return n;
}
NodeInfo Primary() {
  NodeInfo n;
  n.role = NodeRole::kPrimary;
  n.server_id = 100;
  return n;
}

db::Row Status(const std::string& io, const std::string& sql, std::optional<std::string> behind) {
  return MakeRow({{"Master_Host", "mysql-0.mysql"},
                  {"Master_Port", "3306"},
                  {"Slave_IO_Running", io},
                  {"Slave_SQL_Running", sql},
                  {"Seconds_Behind_Master", behind},
                  {"Last_IO_Errno", "0"},
                  {"Last_IO_Error", ""},
                  {"Last_SQL_Errno", "0"},
                  {"Last_SQL_Error", ""}});
}

void Server(FakeSession* fake, const std::string& ro) {
  fake->OnRows("SELECT @@GLOBAL.read_only",
               {MakeRow({{"ro", ro}, {"v", "10.11.19-MariaDB"}, {"g", "0-100-12"}})});
}

TEST(HealthTest, ReplicaWithFreshHeartbeatIsReady) {
  FakeSession fake;
  Server(&fake, "1");
  fake.OnRows("SHOW SLAVE STATUS", {Status("Yes", "Yes", "7")});
  fake.OnRows("SELECT TIMESTAMPDIFF", {MakeRow({{"lag", "0.4200"}})});
  Snapshot s = CollectSnapshot(fake, Replica());
  EXPECT_TRUE(s.mysqld_up);
  EXPECT_EQ(s.gtid_position, "0-100-12");
  ASSERT_TRUE(s.lag_seconds.has_value());
  EXPECT_DOUBLE_EQ(*s.lag_seconds, 0.42);  // the heartbeat wins over Seconds_Behind_Master
  EXPECT_EQ(s.lag_source, "heartbeat");
  EXPECT_TRUE(DecideReady(s, 30).ok);
  EXPECT_TRUE(DecideReplica(s, 30).ok);
  EXPECT_FALSE(DecideReplica(s, 0.1).ok);  // ?lag= tighter than the lag
  EXPECT_FALSE(DecidePrimary(s).ok);
  EXPECT_TRUE(DecideHealth(s).ok);
}

TEST(HealthTest, NoHeartbeatFallsBackToSecondsBehindMaster) {
  FakeSession fake;
  Server(&fake, "1");
  fake.OnRows("SHOW SLAVE STATUS", {Status("Yes", "Yes", "45")});
  fake.OnError("SELECT TIMESTAMPDIFF",
               replboot::Status(StatusCode::kInternal, "1146 no such table"), 1146);
  Snapshot s = CollectSnapshot(fake, Replica());
  ASSERT_TRUE(s.lag_seconds.has_value());
  EXPECT_EQ(*s.lag_seconds, 45);
  EXPECT_EQ(s.lag_source, "seconds_behind_master");
  Decision d = DecideReady(s, 30);
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.reason.find("exceeds 30"), std::string::npos) << d.reason;
}

TEST(HealthTest, StoppedIoThreadMeansUnknownLagNeverWithinBounds) {
  FakeSession fake;
  Server(&fake, "1");
  fake.OnRows("SHOW SLAVE STATUS", {Status("No", "Yes", std::nullopt)});
  fake.OnRows("SELECT TIMESTAMPDIFF",
              {MakeRow({{"lag", "0.1"}})});  // stale but "small": must not count
  Snapshot s = CollectSnapshot(fake, Replica());
  EXPECT_FALSE(s.lag_seconds.has_value());
  Decision d = DecideReplica(s, 1e9);
  EXPECT_FALSE(d.ok);
  EXPECT_EQ(d.reason, "IO thread No");
  EXPECT_FALSE(DecideReady(s, 1e9).ok);
}

TEST(HealthTest, NullLagWithThreadsRunningIsUnknown) {
  FakeSession fake;
  Server(&fake, "1");
  fake.OnRows("SHOW SLAVE STATUS", {Status("Yes", "Yes", std::nullopt)});
  fake.OnRows("SELECT TIMESTAMPDIFF", {});
  Snapshot s = CollectSnapshot(fake, Replica());
  EXPECT_FALSE(s.lag_seconds.has_value());
  EXPECT_EQ(DecideReady(s, 30).reason, "replication lag is unknown");
}

// The recorded SHOW SLAVE/REPLICA STATUS rows of db/testdata: the snapshot sends the statement
// of the server's flavour and version, reads its column names, and decides from them.
TEST(HealthTest, RecordedStatusRowsPerFlavourAndVersion) {
  struct Case {
    Flavour flavour;
    std::string version, show, gtid_variable, sample;
    bool ready;
    std::string reason;
  };
  for (const Case& c :
       std::vector<Case>{{Flavour::kMariaDB, "10.11.19-MariaDB-0+deb12u1-log", "SHOW SLAVE STATUS",
                          "gtid_current_pos", "mariadb-10.11/show-slave-status-connecting", false,
                          "IO thread Connecting: error 2005: error connecting to master"},
                         {Flavour::kMySQL, "8.0.21", "SHOW SLAVE STATUS", "gtid_executed",
                          "mysql-8.0/show-slave-status-8.0.21-running", true,
                          "replicating, lag 0.000s (seconds_behind_master)"},
                         {Flavour::kMySQL, "8.0.36-28", "SHOW REPLICA STATUS", "gtid_executed",
                          "mysql-8.0/show-replica-status-sql-error", false,
                          "SQL thread No: error 1062: Error 'Duplicate entry '5'"},
                         {Flavour::kMySQL, "8.4.3", "SHOW REPLICA STATUS", "gtid_executed",
                          "mysql-8.4/show-replica-status-running", true,
                          "replicating, lag 2.000s (seconds_behind_master)"}}) {
    SCOPED_TRACE(c.sample);
    auto row =
        ::replboot::testing::ReadVerticalRow(std::string(REPLBOOT_DB_TESTDATA) + "/" + c.sample);
    ASSERT_TRUE(row.has_value()) << row.error().ToString();
    FakeSession fake;
    fake.OnRows("SELECT @@GLOBAL.read_only", {MakeRow({{"ro", "1"}, {"v", c.version}, {"g", ""}})});
    fake.OnRows(c.show, {*row});
    fake.OnError("SELECT TIMESTAMPDIFF",
                 replboot::Status(StatusCode::kInternal, "1146 no such table"), 1146);
    NodeInfo node = Replica();
    node.flavour = c.flavour;
    Snapshot s = CollectSnapshot(fake, node);
    ASSERT_FALSE(fake.executed.empty());
    EXPECT_NE(fake.executed[0].find(c.gtid_variable), std::string::npos) << fake.executed[0];
    ASSERT_TRUE(s.replica.has_value()) << s.last_error;
    EXPECT_EQ(s.replica->source_host, "mysql-0.mysql");
    Decision ready = DecideReady(s, 30);
    EXPECT_EQ(ready.ok, c.ready) << ready.reason;
    EXPECT_EQ(ready.reason.rfind(c.reason, 0), 0u) << ready.reason;
  }
}

TEST(HealthTest, UnconfiguredReplicaIsNotReadyAndSaysWhy) {
  FakeSession fake;
  Server(&fake, "1");
  Snapshot s = CollectSnapshot(fake, Replica());
  s.last_error = "replication threads not running within 60000 ms: IO thread Connecting";
  Decision d = DecideReady(s, 30);
  EXPECT_FALSE(d.ok);
  EXPECT_NE(d.reason.find("IO thread Connecting"), std::string::npos);
}

TEST(HealthTest, PrimaryDecisions) {
  FakeSession fake;
  Server(&fake, "0");
  Snapshot s = CollectSnapshot(fake, Primary());
  EXPECT_TRUE(DecidePrimary(s).ok);
  EXPECT_TRUE(DecideReady(s, 30).ok);
  EXPECT_FALSE(DecideReplica(s, 30).ok);
  FakeSession ro;
  Server(&ro, "1");
  Snapshot read_only = CollectSnapshot(ro, Primary());
  EXPECT_FALSE(DecidePrimary(read_only).ok);
  EXPECT_EQ(DecidePrimary(read_only).reason, "the primary is read-only");
}

TEST(HealthTest, DownServerIsUnhealthy) {
  FakeSession fake;
  fake.OnError("SELECT @@GLOBAL.read_only",
               replboot::Status(StatusCode::kUnavailable, "server gone"), 2006);
  Snapshot s = CollectSnapshot(fake, Primary());
  EXPECT_FALSE(s.mysqld_up);
  EXPECT_FALSE(DecideHealth(s).ok);
  EXPECT_NE(DecideHealth(s).reason.find("server gone"), std::string::npos);
  EXPECT_FALSE(DecideReady(s, 30).ok);
}

TEST(HealthTest, JsonAndMetrics) {
  FakeSession fake;
  Server(&fake, "1");
  fake.OnRows("SHOW SLAVE STATUS", {Status("Yes", "Yes", "0")});
  fake.OnRows("SELECT TIMESTAMPDIFF", {MakeRow({{"lag", "1.5"}})});
  Snapshot s = CollectSnapshot(fake, Replica());
  s.clone.bytes = 1234;
  s.backups_served = 2;
  auto j = SnapshotJson(s, 30);
  EXPECT_EQ(j["role"], "replica");
  EXPECT_EQ(j["server_id"], 101);
  EXPECT_EQ(j["lag_seconds"], 1.5);
  EXPECT_EQ(j["replication"]["io_running"], "Yes");
  EXPECT_EQ(j["ready"], true);
  EXPECT_EQ(j["clone"]["bytes"], 1234);
  std::string m = SnapshotMetrics(s);
  EXPECT_NE(m.find("replboot_replication_lag_seconds 1.500000\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_replication_thread_running{thread=\"io\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_clone_bytes 1234\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backups_served_total 2\n"), std::string::npos);
}

// The donor's side: runs against backups served, who is receiving, who was dropped; the
// receiver's side: whether its bytes come from a shared run.
TEST(HealthTest, BackupRunsAndReceiversInJsonAndMetrics) {
  Snapshot s;
  s.backups_served = 3;
  s.backup.runs = 1;
  s.backup.receivers_dropped = 1;
  s.backup.receivers = {{.run = 1, .name = "mysql-2", .peer = "10.0.0.2:4000", .state = "streaming",
                         .bytes_sent = 100, .reason = ""},
                        {.run = 1, .name = "", .peer = "10.0.0.3:4000", .state = "done",
                         .bytes_sent = 200, .reason = ""}};
  s.backup.ended = {{.run = 1, .name = "my\"odd", .peer = "10.0.0.4:4000", .state = "dropped",
                     .bytes_sent = 5, .reason = "its 8 MiB buffer stayed full"}};
  s.clone.phase = "streaming";
  s.clone.donor = "10.0.0.1:3307";
  s.clone.donor_run = 4;
  s.clone.donor_run_receivers = 4;
  auto j = SnapshotJson(s, 30);
  EXPECT_EQ(j["backup"]["runs"], 1);
  EXPECT_EQ(j["backup"]["served"], 3);
  EXPECT_EQ(j["backup"]["receivers"][0]["name"], "mysql-2");
  EXPECT_EQ(j["backup"]["receivers"][1]["bytes_sent"], 200);
  EXPECT_EQ(j["backup"]["ended"][0]["reason"], "its 8 MiB buffer stayed full");
  EXPECT_EQ(j["clone"]["donor_run_receivers"], 4);
  EXPECT_EQ(j["clone"]["donor_run_shared"], true);
  std::string m = SnapshotMetrics(s);
  EXPECT_NE(m.find("replboot_backup_runs_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_receivers_dropped_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_receiver_bytes{run=\"1\",receiver=\"mysql-2\","
                   "state=\"streaming\"} 100\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("receiver=\"10.0.0.3:4000\",state=\"done\"} 200\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_clone_donor_run_receivers 4\n"), std::string::npos) << m;
  EXPECT_NE(DescribeClone(s.clone).find("streaming from 10.0.0.1:3307 (a backup shared by 4 "
                                        "replicas)"),
            std::string::npos)
      << DescribeClone(s.clone);
}

TEST(CloneProgressTest, DescribesEachPhase) {
  CloneProgress::View c;
  EXPECT_EQ(DescribeClone(c), "none");
  c.phase = "discovering";
  c.attempts = 2;
  c.error = "authentication failed at mysql-1.mysql:3307";
  EXPECT_EQ(DescribeClone(c),
            "discovering (attempt 2), last error: authentication failed at mysql-1.mysql:3307");
  c = {};
  c.phase = "streaming";
  c.donor = "mysql-1.mysql:3307";
  c.bytes = 3ull << 29;  // 1.5 GiB
  c.total_bytes = 3ull << 30;
  c.bytes_per_second = 200e6;
  c.eta_seconds = 8;
  c.attempts = 1;
  EXPECT_EQ(DescribeClone(c),
            "streaming from mysql-1.mysql:3307: 1.50 GiB of 3.00 GiB (50%), 200.0 MB/s, ETA 8s");
  // A donor that stopped sending: stalled, no rate, no ETA.
  c.bytes_per_second = 0;
  c.eta_seconds.reset();
  c.stalled_seconds = 12;
  EXPECT_EQ(DescribeClone(c),
            "streaming from mysql-1.mysql:3307: 1.50 GiB of 3.00 GiB (50%), stalled for 12s");
  c.stalled_seconds.reset();
  c.phase = "preparing";
  EXPECT_EQ(DescribeClone(c), "preparing from mysql-1.mysql:3307: 1.50 GiB of 3.00 GiB (50%)");
  c.total_bytes = 0;
  c.bytes = 5 << 20;
  EXPECT_EQ(DescribeClone(c), "preparing from mysql-1.mysql:3307: 5.0 MiB");
}

TEST(CloneProgressTest, ActivePhasesExplainWhyMysqldIsDown) {
  Snapshot s;
  s.node = Replica();
  s.mysqld_error = "Can't connect to local server through socket";
  s.clone.phase = "streaming";
  s.clone.donor = "mysql-0.mysql:3307";
  s.clone.bytes = 1024;
  for (const Decision& d : {DecideHealth(s), DecideReady(s, 30), DecideReplica(s, 30)}) {
    EXPECT_FALSE(d.ok);
    EXPECT_EQ(d.reason, "cloning: streaming from mysql-0.mysql:3307: 1024 bytes") << d.reason;
  }
  auto j = SnapshotJson(s, 30);
  EXPECT_EQ(j["clone"]["active"], true);
  EXPECT_EQ(j["clone"]["eta_seconds"], nullptr);
  EXPECT_NE(SnapshotMetrics(s).find("replboot_clone_active 1\n"), std::string::npos);
  // Done: the clone is history, and a mysqld that does not answer is a mysqld problem.
  s.clone.phase = "done";
  EXPECT_EQ(DecideHealth(s).reason,
            "mysqld is not answering: Can't connect to local server through socket");
  EXPECT_NE(SnapshotMetrics(s).find("replboot_clone_active 0\n"), std::string::npos);
}

TEST(HealthTest, NotReadyUntilSetUp) {
  Snapshot s;
  s.node = Replica();
  s.mysqld_up = true;
  s.read_only = false;
  s.set_up = false;
  EXPECT_TRUE(DecideHealth(s).ok);
  EXPECT_EQ(DecideReady(s, 30).reason, "mysqld is up; replboot is still setting up replication");
  EXPECT_FALSE(DecideReplica(s, 30).ok);
  s.node.role = NodeRole::kPrimary;
  // Writable, but the application account may not exist yet: not a primary to route to.
  Decision primary = DecidePrimary(s);
  EXPECT_FALSE(primary.ok);
  EXPECT_EQ(primary.reason, "mysqld is up; replboot is still setting up its accounts");
  s.set_up = true;
  EXPECT_TRUE(DecidePrimary(s).ok);
  EXPECT_EQ(SnapshotJson(s, 30)["set_up"], true);
}

TEST(WaitForGtidTest, MapsResultsPerFlavour) {
  FakeSession fake;
  fake.OnRows("SELECT MASTER_GTID_WAIT('0-100-5', 3)", {MakeRow({{"r", "0"}})});
  EXPECT_EQ(WaitForGtid(fake, Flavour::kMariaDB, "0-100-5", std::chrono::seconds(3)).value(),
            WaitResult::kReached);
  fake.OnRows("SELECT MASTER_GTID_WAIT('0-100-6', 3)", {MakeRow({{"r", "-1"}})});
  EXPECT_EQ(WaitForGtid(fake, Flavour::kMariaDB, "0-100-6", std::chrono::seconds(3)).value(),
            WaitResult::kTimedOut);
  fake.OnRows("SELECT WAIT_FOR_EXECUTED_GTID_SET", {MakeRow({{"r", "1"}})});
  EXPECT_EQ(WaitForGtid(fake, Flavour::kMySQL, "c777888a-b6df-11e2-a604-080027635ef5:1-4",
                        std::chrono::seconds(1))
                .value(),
            WaitResult::kTimedOut);
  auto bad =
      WaitForGtid(fake, Flavour::kMariaDB, "0-100-5'); DROP TABLE x; --", std::chrono::seconds(1));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), StatusCode::kInvalidArgument);
}

TEST(WaitForGtidTest, MariaDbPrimaryComparesItsBinlogPosition) {
  EXPECT_TRUE(MariaDbGtidReached("0-100-12,1-100-3", "0-100-12"));
  EXPECT_TRUE(MariaDbGtidReached("0-100-12", "0-101-11"));  // per domain, server id aside
  EXPECT_FALSE(MariaDbGtidReached("0-100-12", "0-100-13"));
  EXPECT_FALSE(MariaDbGtidReached("0-100-12", "1-100-1"));  // unknown domain
  FakeSession fake;
  fake.OnRows("SELECT @@GLOBAL.gtid_binlog_pos", {MakeRow({{"p", "0-100-12"}})});
  EXPECT_EQ(
      WaitForGtid(fake, Flavour::kMariaDB, "0-100-12", std::chrono::seconds(1), NodeRole::kPrimary)
          .value(),
      WaitResult::kReached);
  EXPECT_EQ(
      WaitForGtid(fake, Flavour::kMariaDB, "0-100-99", std::chrono::seconds(0), NodeRole::kPrimary)
          .value(),
      WaitResult::kTimedOut);
  for (const auto& sql : fake.executed) EXPECT_EQ(sql.find("MASTER_GTID_WAIT"), std::string::npos);
}

}  // namespace
}  // namespace replboot::replication
