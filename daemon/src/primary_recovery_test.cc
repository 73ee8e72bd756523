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

// Fail closed: a peer that is in DNS but gives no answer may hold every row. No timeout
// turns that into an empty primary.
TEST(DecidePrimaryRecoveryTest, PeersInDnsButSilentAreWaitedForAsLongAsItTakes) {
  for (Dns dns : {Dns::kPresent, Dns::kUnknown}) {  // unknown: the DNS server is failing
    std::vector<PeerFacts> peers = {Silent(1, dns), Absent(2)};
    for (bool wait_over : {false, true}) {
      auto waiting = Decide(peers, wait_over);
      EXPECT_EQ(waiting.plan, RecoveryPlan::kWait);
      EXPECT_EQ(waiting.reason, "waiting_for_peers");
      EXPECT_NE(waiting.detail.find("mysql-1.mysql"), std::string::npos) << waiting.detail;
      EXPECT_NE(waiting.detail.find(kInitializeEmptyPhrase), std::string::npos) << waiting.detail;
      ASSERT_EQ(waiting.waiting_for.size(), 1u);
      EXPECT_EQ(waiting.waiting_for[0].name, "mysql-1.mysql");
      EXPECT_EQ(waiting.waiting_for[0].why, dns == Dns::kPresent ? "silent" : "dns_failing");
    }
  }
}

TEST(DecidePrimaryRecoveryTest, APeerThatRefusesOurSecretIsWaitedFor) {
  PeerFacts rotated = Silent(1);
  rotated.auth_refused = true;
  rotated.detail = "refused: authentication failed at 127.0.0.11:3307";
  auto d = Decide({rotated, Answering(2, "", "", /*has_data=*/false)}, /*wait_over=*/true);
  EXPECT_EQ(d.plan, RecoveryPlan::kWait);
  ASSERT_EQ(d.waiting_for.size(), 1u);
  EXPECT_EQ(d.waiting_for[0].why, "refused_our_secret");
  EXPECT_NE(d.waiting_for[0].detail.find("authentication failed"), std::string::npos);
}

// Its backup user missing, max_connections, mysqld stopped for a re-clone: the answer says
// nothing of the data, whatever has_data says (older peers said false on any error).
TEST(DecidePrimaryRecoveryTest, AnAnswerWithAnErrorIsNoAnswerAboutTheData) {
  for (bool has_data : {true, false}) {
    PeerFacts broken = Answering(1, kThis, "", has_data);
    broken.answer->error = "cannot query the local server: Access denied for user";
    auto d = Decide({broken, Absent(2)}, /*wait_over=*/true);
    EXPECT_EQ(d.plan, RecoveryPlan::kWait) << has_data;
    ASSERT_EQ(d.waiting_for.size(), 1u);
    EXPECT_EQ(d.waiting_for[0].why, "answered_error");
    EXPECT_NE(d.waiting_for[0].detail.find("Access denied"), std::string::npos);
  }
  // Beside a peer that answers with data, it is waited for within recover_wait only.
  PeerFacts broken = Answering(2, kThis, "");
  broken.answer->error = "cannot query the local server: Too many connections";
  std::vector<PeerFacts> peers = {Answering(1, kThis, "0-100-50"), broken};
  EXPECT_EQ(Decide(peers).plan, RecoveryPlan::kWait);
  auto over = Decide(peers, /*wait_over=*/true);
  ASSERT_EQ(over.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*over.donor, 0u);
}

// A StatefulSet has no holes: ordinal 1 missing from DNS while 2 is there is a pod being
// recreated, not a cluster of one.
TEST(DecidePrimaryRecoveryTest, AHoleInDnsBelowAPresentOrdinalIsWaitedFor) {
  auto d = Decide({Absent(1), Answering(2, "", "", /*has_data=*/false), Absent(3)}, true);
  EXPECT_EQ(d.plan, RecoveryPlan::kWait);
  ASSERT_EQ(d.waiting_for.size(), 1u);
  EXPECT_EQ(d.waiting_for[0].name, "mysql-1.mysql");
  EXPECT_EQ(d.waiting_for[0].why, "not_in_dns_yet");
}

TEST(DecidePrimaryRecoveryTest, TheOperatorsOverrideInitializesWhateverThePeersSay) {
  PeerFacts rotated = Silent(1);
  rotated.auth_refused = true;
  for (const auto& peers : std::vector<std::vector<PeerFacts>>{
           {rotated}, {Answering(1, kThis, "0-100-5")}, {Answering(1, kThis, "0-1-1"),
                                                         Answering(2, kOther, "0-2-2")}}) {
    auto d = DecidePrimaryRecovery(peers, Flavour::kMariaDB, false, /*initialize_override=*/true);
    EXPECT_EQ(d.plan, RecoveryPlan::kInitialize);
    EXPECT_EQ(d.reason, "operator_override");
  }
}

// With log_slave_updates off a replica's binlog state is empty: its position says what it
// executed.
TEST(DecidePrimaryRecoveryTest, RanksByWhatAPeerExecutedNotOnlyWhatItLogged) {
  PeerFacts behind = Answering(1, kThis, "");
  behind.answer->gtid_current_pos = "0-100-50";
  PeerFacts ahead = Answering(2, kThis, "");
  ahead.answer->gtid_current_pos = "0-100-57";
  auto d = Decide({behind, ahead});
  ASSERT_EQ(d.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*d.donor, 1u);
  EXPECT_NE(d.detail.find("0-100-57"), std::string::npos) << d.detail;
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

TEST(DecidePrimaryRecoveryTest, APeerThatCouldNeverServeTheCloneStillHoldsData) {
  PeerFacts other_version = Answering(1, kThis, "0-100-57");
  other_version.refusal = "donor runs server 10.6.18 but the local mariabackup is 10.11";
  // Alone, it keeps the primary from initializing: its data may be the cluster's.
  auto d = Decide({other_version, Absent(2)}, /*wait_over=*/true);
  EXPECT_EQ(d.plan, RecoveryPlan::kWait);
  ASSERT_EQ(d.waiting_for.size(), 1u);
  EXPECT_EQ(d.waiting_for[0].why, "cannot_serve");
  // Beside a peer that can serve the clone, it is not a candidate and not waited for.
  auto with_another = Decide({other_version, Answering(2, kThis, "0-100-50")});
  ASSERT_EQ(with_another.plan, RecoveryPlan::kClone);
  EXPECT_EQ(*with_another.donor, 1u);
}

TEST(StoreRetryDelayTest, DoublesFromTheRoundIntervalUpToTheCap) {
  using std::chrono::milliseconds;
  RecoveryOptions options;  // 2 s rounds, 60 s cap
  EXPECT_EQ(StoreRetryDelay(options, 1), milliseconds(2'000));
  EXPECT_EQ(StoreRetryDelay(options, 2), milliseconds(4'000));
  EXPECT_EQ(StoreRetryDelay(options, 5), milliseconds(32'000));
  EXPECT_EQ(StoreRetryDelay(options, 6), milliseconds(60'000));
  EXPECT_EQ(StoreRetryDelay(options, 1'000'000), milliseconds(60'000));  // no overflow
  options.round_interval = milliseconds(100);
  options.store_retry_max = milliseconds(50);  // a cap below the round: the round wins
  EXPECT_EQ(StoreRetryDelay(options, 3), milliseconds(100));
}

TEST(InitializeEmptyOverrideTest, TheFileSitsBesideTheDatadir) {
  EXPECT_EQ(InitializeEmptyOverridePath("/var/lib/mysql/data"),
            "/var/lib/mysql/data.replboot-initialize-empty");
  EXPECT_EQ(InitializeEmptyOverridePath("/var/lib/mysql/data/"),
            "/var/lib/mysql/data.replboot-initialize-empty");
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
