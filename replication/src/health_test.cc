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

// Scheduled backups: what to alert on (last success, failures by kind), the progress of the
// one running, and the taker rule's state in /status.
TEST(HealthTest, ArchiveInJsonAndMetrics) {
  Snapshot s;
  std::string m = SnapshotMetrics(s);
  // Never set: 0, every failure kind present at 0, nothing in progress.
  EXPECT_NE(m.find("replboot_backup_last_success_timestamp_seconds 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_last_restore_test_timestamp_seconds 0\n"), std::string::npos);
  for (const char* kind : kBackupFailureKinds) {
    EXPECT_NE(m.find(fmt::format("replboot_backup_failures_total{{kind=\"{}\"}} 0\n", kind)),
              std::string::npos)
        << kind;
  }
  EXPECT_NE(m.find("replboot_backup_in_progress 0\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backup_progress_eta_seconds NaN\n"), std::string::npos);
  EXPECT_EQ(SnapshotJson(s, 30)["archive"]["state"], "off");

  s.archive.enabled = true;
  s.archive.schedule = "every 20s";
  s.archive.state = "taking";
  s.archive.slot_id = "20261207T101500Z";
  s.archive.turn = "slot 20261207T101500Z: turn holder mysql-1 (this node)";
  s.archive.in_progress = true;
  s.archive.progress_bytes = 1'000'000;
  s.archive.progress_bytes_per_second = 250'000.4;
  s.archive.expected_bytes = 2'000'000;
  s.archive.eta_seconds = 4;
  s.archive.last_success_at = 1'796'623'650;
  s.archive.last_restore_test_at = 1'796'600'000;
  s.archive.failures["store_denied"] = 2;
  s.archive.failures["store_full"] = 1;
  s.archive.taken = 3;
  m = SnapshotMetrics(s);
  EXPECT_NE(m.find("replboot_backup_last_success_timestamp_seconds 1796623650\n"),
            std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_last_restore_test_timestamp_seconds 1796600000\n"),
            std::string::npos);
  EXPECT_NE(m.find("replboot_backup_failures_total{kind=\"store_denied\"} 2\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backup_failures_total{kind=\"store_full\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backup_failures_total{kind=\"source\"} 0\n"), std::string::npos);
  EXPECT_NE(m.find("# TYPE replboot_backup_failures_total counter\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backup_in_progress 1\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backup_progress_bytes 1000000\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backup_progress_rate_bytes_per_second 250000\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backup_progress_eta_seconds 4\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_backups_taken_total 3\n"), std::string::npos);
  auto j = SnapshotJson(s, 30);
  EXPECT_EQ(j["archive"]["schedule"], "every 20s");
  EXPECT_EQ(j["archive"]["state"], "taking");
  EXPECT_EQ(j["archive"]["turn"], "slot 20261207T101500Z: turn holder mysql-1 (this node)");
  EXPECT_EQ(j["archive"]["failures"]["store_denied"], 2);
  EXPECT_EQ(j["archive"]["failures"]["other"], 0);
  EXPECT_EQ(j["archive"]["eta_seconds"], 4.0);
  EXPECT_EQ(j["archive"]["last_success_at"], 1'796'623'650);
}

// Compression on the wire, both sides: what was granted, stream against wire bytes, the ratio.
TEST(HealthTest, CompressionInJsonAndMetrics) {
  Snapshot s;
  s.backup.stream_bytes_sent = 3000;
  s.backup.wire_bytes_sent = 1000;
  s.backup.receivers = {{.run = 2, .name = "mysql-3", .peer = "10.0.0.3:4000", .state = "streaming",
                         .bytes_sent = 800, .wire_bytes_sent = 200, .compression = "auto:3",
                         .reason = ""}};
  s.clone.phase = "streaming";
  s.clone.bytes = 900;
  s.clone.wire_bytes = 300;
  s.clone.compression = "zstd:1";
  auto j = SnapshotJson(s, 30);
  EXPECT_EQ(j["backup"]["wire_bytes_sent"], 1000);
  EXPECT_EQ(j["backup"]["compression_ratio"], 3.0);
  EXPECT_EQ(j["backup"]["receivers"][0]["compression"], "auto:3");
  EXPECT_EQ(j["backup"]["receivers"][0]["wire_bytes_sent"], 200);
  EXPECT_EQ(j["backup"]["receivers"][0]["compression_ratio"], 4.0);
  EXPECT_EQ(j["clone"]["compression"], "zstd:1");
  EXPECT_EQ(j["clone"]["wire_bytes"], 300);
  EXPECT_EQ(j["clone"]["compression_ratio"], 3.0);
  std::string m = SnapshotMetrics(s);
  EXPECT_NE(m.find("replboot_backup_wire_bytes_total 1000\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_sent_bytes_total 3000\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_clone_wire_bytes 300\n"), std::string::npos) << m;
  // Nothing on the wire yet: no ratio to speak of.
  Snapshot empty;
  EXPECT_EQ(SnapshotJson(empty, 30)["clone"]["compression_ratio"], 0.0);
}

// The donor's side: runs against backups served, who is receiving, who was dropped; the
// receiver's side: whether its bytes come from a shared run.
TEST(HealthTest, BackupRunsAndReceiversInJsonAndMetrics) {
  Snapshot s;
  s.backups_served = 3;
  s.backup.runs = 1;
  s.backup.receivers_dropped = 1;
  s.backup.stream_bytes_sent = 123456;
  s.backup.resumes = 2;
  s.backup.resent_bytes = 4096;
  s.backup.receivers_detached = 3;
  s.backup.resume_spool_bytes = 777;
  s.backup.resume_window_seconds = 180;
  s.backup.receivers = {{.run = 1, .name = "mysql-2", .peer = "10.0.0.2:4000", .state = "streaming",
                         .bytes_sent = 100, .wire_bytes_sent = 0, .compression = "", .reason = ""},
                        {.run = 1, .name = "", .peer = "10.0.0.3:4000", .state = "done",
                         .bytes_sent = 200, .wire_bytes_sent = 0, .compression = "", .reason = ""}};
  s.backup.ended = {{.run = 1, .name = "my\"odd", .peer = "10.0.0.4:4000", .state = "dropped",
                     .bytes_sent = 5, .wire_bytes_sent = 0, .compression = "", .reason = "its 8 MiB buffer stayed full"}};
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
  EXPECT_NE(m.find("replboot_backup_sent_bytes_total 123456\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_resumes_total 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_resent_bytes_total 4096\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_receivers_detached_total 3\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_resume_spool_bytes 777\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_backup_resume_window_seconds 180\n"), std::string::npos) << m;
  EXPECT_EQ(j["backup"]["resume"]["resumes"], 2);
  EXPECT_EQ(j["backup"]["resume"]["window_seconds"], 180);
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

TEST(BootstrapStatusTest, APrimaryAskingItsPeersSaysWhyMysqldIsDown) {
  Snapshot s;
  s.node = Primary();
  s.mysqld_error = "Can't connect to local server through socket";
  s.bootstrap.plan = "wait";
  s.bootstrap.reason = "waiting_for_peers";
  s.bootstrap.detail = "mysql-1.mysql in DNS but not answering yet";
  s.bootstrap.rounds = 3;
  for (const Decision& d : {DecideHealth(s), DecideReady(s, 30), DecidePrimary(s)}) {
    EXPECT_FALSE(d.ok);
    EXPECT_EQ(d.reason,
              "asking the peers before initializing (waiting_for_peers): mysql-1.mysql in DNS "
              "but not answering yet")
        << d.reason;
  }
  auto j = SnapshotJson(s, 30);
  EXPECT_EQ(j["bootstrap"]["plan"], "wait");
  EXPECT_EQ(j["bootstrap"]["reason"], "waiting_for_peers");
  EXPECT_EQ(j["bootstrap"]["rounds"], 3);
  // Decided: a mysqld that does not answer is a mysqld problem again.
  s.bootstrap.plan = "clone";
  EXPECT_EQ(DecideHealth(s).reason,
            "mysqld is not answering: Can't connect to local server through socket");
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

db::ReplicaState Failing(const std::string& io, int64_t io_errno, const std::string& io_error,
                         const std::string& sql = "Yes", int64_t sql_errno = 0,
                         const std::string& sql_error = "") {
  db::ReplicaState r;
  r.source_host = "mysql-0.mysql";
  r.source_port = 3306;
  r.io_running = io;
  r.sql_running = sql;
  r.last_io_errno = io_errno;
  r.last_io_error = io_error;
  r.last_sql_errno = sql_errno;
  r.last_sql_error = sql_error;
  return r;
}

// MariaDB's messages are what mariadbd 10.11 sets (the purge one is also seen by the
// integration test day_two_test.py); MySQL's are recorded-looking samples written from the
// MySQL 8.0/8.4 reference manuals and error-message lists (no MySQL server here).
TEST(ClassifyReplicationTest, SourcePurgedBinlogs) {
  const char* purged[] = {
      // MariaDB, GTID replication (sql_repl.cc, gtid_find_binlog_pos).
      "Got fatal error 1236 from master when reading data from binary log: 'Could not find GTID "
      "state requested by slave in any binlog files. Probably the slave state is too old and "
      "required binlog files have been purged.'",
      // File/position replication, either flavour.
      "Got fatal error 1236 from master when reading data from binary log: 'Could not find "
      "first log file name in binary log index file'",
      // MySQL 8.0 before 8.0.22.
      "Got fatal error 1236 from master when reading data from binary log: 'The slave is "
      "connecting using CHANGE MASTER TO MASTER_AUTO_POSITION = 1, but the master has purged "
      "binary logs containing GTIDs that the slave requires.'",
  };
  for (const char* message : purged) {
    FailureClass c = ClassifyReplication(Failing("No", 1236, message));
    EXPECT_EQ(c.failure, ReplicationFailure::kSourcePurged) << message;
    EXPECT_NE(c.reason.find("error 1236"), std::string::npos) << c.reason;
  }
  // MySQL 8.0.22+ / 8.4: ER_SERVER_SOURCE_FATAL_ERROR_READING_BINLOG.
  FailureClass c = ClassifyReplication(Failing(
      "No", 13114,
      "Got fatal error 1236 from source when reading data from binary log: 'Cannot replicate "
      "because the source purged required binary logs. Replicate the missing transactions from "
      "elsewhere, or provision a new replica from backup. Consider increasing the source's "
      "binary log expiration period. The GTID set sent by the replica is "
      "'3e11fa47-71ca-11e1-9e33-c80aa9429562:1-50', and the missing transactions are "
      "'3e11fa47-71ca-11e1-9e33-c80aa9429562:51-60'.'"));
  EXPECT_EQ(c.failure, ReplicationFailure::kSourcePurged) << c.reason;
}

TEST(ClassifyReplicationTest, DivergedHistories) {
  const char* diverged[] = {
      // MariaDB: the replica asks for a GTID the primary never logged (an errant write).
      "Got fatal error 1236 from master when reading data from binary log: 'Error: connecting "
      "slave requested to start from GTID 0-102-522, which is not in the master's binlog'",
      "Got fatal error 1236 from master when reading data from binary log: 'Error: connecting "
      "slave requested to start from GTID 0-102-522, which is not in the master's binlog. Since "
      "the master's binlog contains GTIDs with higher sequence numbers, it probably means that "
      "the slave has diverged due to executing extra erroneous transactions'",
      "Got fatal error 1236 from master when reading data from binary log: 'The binlog on the "
      "master is missing the GTID 0-102-522 requested by the slave (even though a subsequent "
      "sequence number does exist), and GTID strict mode is enabled'",
      // MySQL 8.0.22+: more GTIDs than the source.
      "Got fatal error 1236 from source when reading data from binary log: 'Replica has more "
      "GTIDs than the source has, using the source's SERVER_UUID. This may indicate that the "
      "end of the binary log was truncated or that the last binary log file was lost, e.g., "
      "after a power or disk failure when sync_binlog != 1.'",
  };
  for (const char* message : diverged) {
    EXPECT_EQ(ClassifyReplication(Failing("No", 1236, message)).failure,
              ReplicationFailure::kDiverged)
        << message;
  }
  // MariaDB's SQL thread in GTID strict mode after a write on the replica.
  FailureClass c = ClassifyReplication(Failing(
      "Yes", 0, "", "No", 1950,
      "An attempt was made to binlog GTID 0-100-522 which would create an out-of-order sequence "
      "number with existing GTID 0-102-522, and gtid strict mode is enabled"));
  EXPECT_EQ(c.failure, ReplicationFailure::kDiverged);
  EXPECT_NE(c.reason.find("0-102-522"), std::string::npos) << c.reason;
}

TEST(ClassifyReplicationTest, TransientWaits) {
  EXPECT_EQ(ClassifyReplication(
                Failing("Connecting", 2003,
                        "error connecting to master 'repl@mysql-0.mysql:3306' - retry-time: 1  "
                        "maximum-retries: 100000  message: Can't connect to server on "
                        "'mysql-0.mysql' (111 \"Connection refused\")"))
                .failure,
            ReplicationFailure::kTransient);
  // The source shutting down, then the IO thread retries.
  EXPECT_EQ(ClassifyReplication(Failing("Connecting", 2013, "Lost connection to server")).failure,
            ReplicationFailure::kTransient);
  // A wrong password: mariadbd retries it too (the Secret may be rolled out next).
  EXPECT_EQ(ClassifyReplication(Failing("Connecting", 1045, "Access denied for user")).failure,
            ReplicationFailure::kTransient);
  // Gave up retrying a network error: still nothing a re-clone mends.
  EXPECT_EQ(ClassifyReplication(Failing("No", 2003, "Can't connect")).failure,
            ReplicationFailure::kTransient);
  // Connecting with no error yet (the first attempt).
  EXPECT_EQ(ClassifyReplication(Failing("Connecting", 0, "")).failure,
            ReplicationFailure::kTransient);
}

TEST(ClassifyReplicationTest, StoppedApplyErrorOtherAndNone) {
  EXPECT_EQ(ClassifyReplication(std::nullopt).failure, ReplicationFailure::kNotConfigured);
  EXPECT_EQ(ClassifyReplication(Failing("Yes", 0, "")).failure, ReplicationFailure::kNone);
  EXPECT_EQ(ClassifyReplication(Failing("No", 0, "", "No")).failure, ReplicationFailure::kStopped);
  EXPECT_EQ(ClassifyReplication(
                Failing("Yes", 0, "", "No", 1062,
                        "Could not execute Write_rows_v1 event on table app.t; Duplicate entry "
                        "'7' for key 'PRIMARY'"))
                .failure,
            ReplicationFailure::kApplyError);
  // An apply error wins over a purge: the data already differ.
  EXPECT_EQ(ClassifyReplication(Failing("No", 1236,
                                        "Could not find GTID state requested by slave in any "
                                        "binlog files. ... have been purged.",
                                        "No", 1032, "Can't find record in 't'"))
                .failure,
            ReplicationFailure::kApplyError);
  EXPECT_EQ(ClassifyReplication(
                Failing("No", 1236,
                        "log event entry exceeded max_allowed_packet; Increase "
                        "max_allowed_packet on master"))
                .failure,
            ReplicationFailure::kOther);
  EXPECT_EQ(ClassifyReplication(Failing("No", 1593, "equal server ids")).failure,
            ReplicationFailure::kOther);
}

TEST(RecoveryViewTest, DivergedReplicaIsNeverReadyAndSaysWhy) {
  FakeSession fake;
  Server(&fake, "1");
  fake.OnRows("SHOW SLAVE STATUS", {Status("Yes", "Yes", "0")});
  fake.OnRows("SELECT TIMESTAMPDIFF", {MakeRow({{"lag", "0.1"}})});
  Snapshot s = CollectSnapshot(fake, Replica());
  ASSERT_TRUE(DecideReady(s, 30).ok);
  s.recovery.state = "diverged";
  s.recovery.diverged = true;
  s.recovery.errant_gtids = "0-101-13";
  s.recovery.errant_transactions = 1;
  s.recovery.divergences_detected = 1;
  s.recovery.reason = "diverged from the primary: errant transactions: 0-101-13";
  Decision ready = DecideReady(s, 30);
  EXPECT_FALSE(ready.ok);
  EXPECT_NE(ready.reason.find("0-101-13"), std::string::npos) << ready.reason;
  EXPECT_FALSE(DecideReplica(s, 30).ok);
  EXPECT_TRUE(DecideHealth(s).ok);
  nlohmann::json j = SnapshotJson(s, 30);
  EXPECT_EQ(j["recovery"]["errant_gtids"], "0-101-13");
  EXPECT_EQ(j["ready"], false);
  std::string metrics = SnapshotMetrics(s);
  EXPECT_NE(metrics.find("replboot_replica_diverged 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("replboot_replica_errant_transactions 1"), std::string::npos);
  EXPECT_NE(metrics.find("replboot_replica_divergences_total 1"), std::string::npos);
}

TEST(RecoveryViewTest, RecloningIsAliveButNotReady) {
  Snapshot s;
  s.node = Replica();
  s.mysqld_up = false;
  s.mysqld_error = "can't connect";
  EXPECT_FALSE(DecideHealth(s).ok);
  s.recovery.state = "recloning";
  s.recovery.reason = "the primary no longer has the binlogs this replica needs";
  s.recovery.reclones = 2;
  Decision health = DecideHealth(s);
  EXPECT_TRUE(health.ok);
  EXPECT_NE(health.reason.find("re-cloning"), std::string::npos) << health.reason;
  Decision ready = DecideReady(s, 30);
  EXPECT_FALSE(ready.ok);
  EXPECT_NE(ready.reason.find("re-cloning: the primary no longer"), std::string::npos)
      << ready.reason;
  std::string metrics = SnapshotMetrics(s);
  EXPECT_NE(metrics.find("replboot_reclone_active 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("replboot_reclones_total 2"), std::string::npos) << metrics;
}

// A primary waiting for its peers: the wait, and whom it waits for by why, in /metrics and
// /status.
TEST(HealthTest, AWaitingPrimaryInMetricsAndStatus) {
  Snapshot s;
  s.node.role = NodeRole::kPrimary;
  s.bootstrap.plan = "wait";
  s.bootstrap.reason = "waiting_for_peers";
  s.bootstrap.waited_seconds = 42.4;
  s.bootstrap.waiting_for = {{"mysql-1.mysql", "refused_our_secret", "x"},
                             {"mysql-2.mysql", "refused_our_secret", "y"},
                             {"mysql-3.mysql", "silent", "z"}};
  std::string m = SnapshotMetrics(s);
  EXPECT_NE(m.find("replboot_bootstrap_waiting 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_bootstrap_waited_seconds 42\n"), std::string::npos) << m;
  EXPECT_NE(m.find("replboot_bootstrap_waiting_peers{why=\"refused_our_secret\"} 2\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("replboot_bootstrap_waiting_peers{why=\"silent\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("replboot_bootstrap_waiting_peers{why=\"answered_error\"} 0\n"),
            std::string::npos);
  auto j = SnapshotJson(s, 30);
  ASSERT_EQ(j["bootstrap"]["waiting_for"].size(), 3u);
  EXPECT_EQ(j["bootstrap"]["waiting_for"][2]["why"], "silent");
  EXPECT_FALSE(DecideReady(s, 30).ok);
  s.bootstrap.plan = "clone";
  EXPECT_NE(SnapshotMetrics(s).find("replboot_bootstrap_waiting 0\n"), std::string::npos);
  EXPECT_NE(SnapshotMetrics(s).find("replboot_bootstrap_waiting_peers{why=\"silent\"} 0\n"),
            std::string::npos);
}

}  // namespace
}  // namespace replboot::replication
