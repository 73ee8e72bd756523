// The primary's decision with an empty datadir (primary_recovery.h), one test per row of its
// table, and the promotion's statements. No server, no DNS.
#include "replboot/daemon/primary_recovery.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "replboot/daemon/node_settings.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::daemon {
namespace {

constexpr char kThis[] = "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
constexpr char kOther[] = "7a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d";
using Dns = PeerFacts::Dns;

PeerFacts Absent(int64_t ordinal) {
  PeerFacts p;
  p.ordinal = ordinal;
  p.name = "mysql-" + std::to_string(ordinal) + ".mysql";
  p.dns = Dns::kAbsent;
  return p;
}

PeerFacts Silent(int64_t ordinal, Dns dns = Dns::kPresent) {
  PeerFacts p = Absent(ordinal);
  p.dns = dns;
  p.detail = "unreachable: connection refused";
  return p;
}

PeerFacts Answering(int64_t ordinal, const std::string& cluster_id, const std::string& gtid,
                    bool has_data = true) {
  PeerFacts p = Silent(ordinal);
  clone::ProbeInfo info;
  info.flavour = "mariadb";
  info.server_version = "10.11.19-MariaDB";
  info.role = "replica";
  info.cluster_id = cluster_id;
  info.has_data = has_data;
  info.gtid_binlog_state = gtid;
  info.gtid_current_pos = gtid;
  p.answer = info;
  return p;
}

db::Dialect Dialect84() { return db::Dialect(Flavour::kMySQL, 80403); }

RecoveryDecision Decide(const std::vector<PeerFacts>& peers, bool wait_over = false) {
  return DecidePrimaryRecovery(peers, Flavour::kMariaDB, wait_over);
}

TEST(DecidePrimaryRecoveryTest, NoPeerInDnsInitializesAtOnce) {
  auto d = Decide({Absent(1), Absent(2), Absent(3)});
  EXPECT_EQ(d.plan, RecoveryPlan::kInitialize);
  EXPECT_EQ(d.reason, "no_peers_in_dns");
  EXPECT_EQ(Decide({}).reason, "no_peers_in_dns");
}

TEST(DecidePrimaryRecoveryTest, PeersInDnsButSilentAreWaitedForThenInitialized) {
  for (Dns dns : {Dns::kPresent, Dns::kUnknown}) {  // unknown: the DNS server is failing
    std::vector<PeerFacts> peers = {Silent(1, dns), Absent(2)};
    auto waiting = Decide(peers);
    EXPECT_EQ(waiting.plan, RecoveryPlan::kWait);
    EXPECT_EQ(waiting.reason, "waiting_for_peers");
    EXPECT_NE(waiting.detail.find("mysql-1.mysql"), std::string::npos) << waiting.detail;
    auto timed_out = Decide(peers, /*wait_over=*/true);
    EXPECT_EQ(timed_out.plan, RecoveryPlan::kInitialize);
    EXPECT_EQ(timed_out.reason, "no_data_within_wait");
  }
}

TEST(DecidePrimaryRecoveryTest, PeersThatAnswerWithoutDataInitializeAtOnce) {
  auto d = Decide({Answering(1, "", "", /*has_data=*/false), Absent(2)});
  EXPECT_EQ(d.plan, RecoveryPlan::kInitialize);
  EXPECT_EQ(d.reason, "peers_without_data");
}

TEST(DecidePrimaryRecoveryTest, ClonesTheMostAdvancedPeer) {
  auto d = Decide({Answering(1, kThis, "0-100-50"), Answering(2, kThis, "0-100-57"), Absent(3)});
  ASSERT_EQ(d.plan, RecoveryPlan::kClone);
  EXPECT_EQ(d.reason, "most_advanced_peer");
  ASSERT_TRUE(d.donor);
  EXPECT_EQ(*d.donor, 1u);
  EXPECT_NE(d.detail.find("mysql-2.mysql"), std::string::npos) << d.detail;
}

TEST(DecidePrimaryRecoveryTest, TiesGoToTheLowestOrdinal) {
  auto d = Decide({Answering(1, kThis, "0-100-57,0-101-2"), Answering(2, kThis, "0-101-2,0-100-57"),
                   Answering(3, kThis, "0-100-57,0-101-2")});
  ASSERT_EQ(d.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*d.donor, 0u);
}

TEST(DecidePrimaryRecoveryTest, DivergedHistoriesTakeTheMostTransactionsThenTheLowestOrdinal) {
  // mysql-1 has an errant transaction of its own, mysql-2 more of the primary's.
  auto d = Decide({Answering(1, kThis, "0-100-50,0-101-1"), Answering(2, kThis, "0-100-57")});
  ASSERT_EQ(d.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*d.donor, 1u);
  EXPECT_NE(d.detail.find("diverged"), std::string::npos) << d.detail;
  auto tie = Decide({Answering(1, kThis, "0-100-50,0-101-7"), Answering(2, kThis, "0-100-57")});
  ASSERT_EQ(tie.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*tie.donor, 0u);
}

TEST(DecidePrimaryRecoveryTest, WaitsForSilentPeersThatMayBeFurtherAheadWithinTheWait) {
  std::vector<PeerFacts> peers = {Answering(1, kThis, "0-100-50"), Silent(2)};
  auto d = Decide(peers);
  EXPECT_EQ(d.plan, RecoveryPlan::kWait);
  EXPECT_EQ(d.reason, "waiting_for_peers");
  auto over = Decide(peers, /*wait_over=*/true);
  ASSERT_EQ(over.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*over.donor, 0u);
}

TEST(DecidePrimaryRecoveryTest, DataOfTwoClustersIsAConflictNeverAnInitialize) {
  std::vector<PeerFacts> peers = {Answering(1, kThis, "0-100-57"), Answering(2, kOther, "0-7-3")};
  for (bool wait_over : {false, true}) {
    auto d = Decide(peers, wait_over);
    EXPECT_EQ(d.plan, RecoveryPlan::kConflict);
    EXPECT_EQ(d.reason, "clusters_conflict");
    EXPECT_NE(d.detail.find(kThis), std::string::npos) << d.detail;
    EXPECT_NE(d.detail.find(kOther), std::string::npos) << d.detail;
  }
}

TEST(DecidePrimaryRecoveryTest, IdlessDataBesideThisClustersIsNotACandidate) {
  // mysql-2 is further ahead, but its data carries no id while mysql-1's does.
  auto d = Decide({Answering(1, kThis, "0-100-50"), Answering(2, "", "0-100-90")});
  ASSERT_EQ(d.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*d.donor, 0u);
}

TEST(DecidePrimaryRecoveryTest, AClusterFromBeforeIdsIsStillRecovered) {
  auto d = Decide({Answering(1, "", "0-100-50"), Answering(2, "", "0-100-57")});
  ASSERT_EQ(d.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*d.donor, 1u);
  EXPECT_NE(d.detail.find("before ids"), std::string::npos) << d.detail;
}

TEST(DecidePrimaryRecoveryTest, APeerThatCouldNeverServeTheCloneHoldsNoDataForThis) {
  PeerFacts other_version = Answering(1, kThis, "0-100-57");
  other_version.refusal = "donor runs server 10.6.18 but the local mariabackup is 10.11";
  auto d = Decide({other_version, Absent(2)});
  EXPECT_EQ(d.plan, RecoveryPlan::kInitialize);
  EXPECT_EQ(d.reason, "peers_without_data");
  auto with_another = Decide({other_version, Answering(2, kThis, "0-100-50")});
  ASSERT_EQ(with_another.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*with_another.donor, 1u);
}

TEST(PromotionStatementsTest, ForgetTheSourceThenContinueTheHistory) {
  const std::string escapes = db::kBackslashEscapesSql;
  const db::Dialect mariadb(Flavour::kMariaDB, 0);
  EXPECT_EQ(PromotionStatements(mariadb, "0-100-57,0-101-2"),
            (std::vector<std::string>{escapes, "RESET SLAVE ALL", "RESET MASTER",
                                      "SET GLOBAL gtid_binlog_state = '0-100-57,0-101-2'"}));
  // A donor that never logged a transaction: nothing to continue.
  EXPECT_EQ(PromotionStatements(mariadb, ""),
            (std::vector<std::string>{escapes, "RESET SLAVE ALL"}));
  EXPECT_EQ(PromotionStatements(Dialect84(), "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57"),
            (std::vector<std::string>{
                escapes, "RESET REPLICA ALL", "RESET BINARY LOGS AND GTIDS",
                "SET GLOBAL gtid_purged = '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57'"}));
  EXPECT_EQ(PromotionStatements(db::Dialect(Flavour::kMySQL, 80036), "")[1], "RESET REPLICA ALL");
}

// The marker's GTID state reaches the init file normalised: mysqld reads that file line by
// line, and a state written over several lines (as the server wraps long sets) would split the
// statement.
TEST(PromotionInitSqlTest, TheMarkersStateIsNormalisedOntoOneLine) {
  testing::TempDir dir("promotion-sql");
  NodeSettings settings;
  settings.config.mysql.datadir = dir.path();
  settings.flavour = Flavour::kMariaDB;
  std::ofstream(dir.path() + "/" + kPromotionMarker)
      << R"({"gtid_state": "0-100-57,\n 0-101-2"})";
  auto sql = PromotionInitSql(settings);
  ASSERT_TRUE(sql) << sql.error().ToString();
  ASSERT_TRUE(sql->has_value());
  EXPECT_NE((*sql)->find("SET GLOBAL gtid_binlog_state = '0-100-57,0-101-2';\n"), std::string::npos)
      << **sql;
  std::ofstream(dir.path() + "/" + kPromotionMarker) << R"({"gtid_state": "0-100-57'; DROP"})";
  auto bad = PromotionInitSql(settings);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace replboot::daemon
