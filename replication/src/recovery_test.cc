#include "replboot/replication/recovery.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "replboot/base/files.h"
#include "replboot/testing/fake_session.h"

namespace replboot::replication {
namespace {

using std::chrono::seconds;
using F = ReplicationFailure;

FailureClass Failure(F f) { return {f, std::string(ReplicationFailureName(f)) + " details"}; }

RecoveryFacts Facts(F f, seconds failing_for = seconds(0)) {
  RecoveryFacts facts;
  facts.failure = Failure(f);
  facts.failing_for = failing_for;
  facts.gtid_checked = true;
  return facts;
}

RecloneGuards Guards() {
  RecloneGuards g;
  g.enabled = true;
  g.after = seconds(60);
  g.min_interval = seconds(600);
  return g;
}

// Each failure class → wait / re-clone / report, without errant GTIDs and past reclone_after.
TEST(DecideRecoveryTest, EachFailureClassHasItsAction) {
  struct Row {
    F failure;
    const char* state;
    RecoveryAction action;
  } rows[] = {
      {F::kNone, "healthy", RecoveryAction::kNone},
      {F::kNotConfigured, "waiting", RecoveryAction::kWait},
      {F::kTransient, "waiting", RecoveryAction::kWait},
      {F::kStopped, "waiting", RecoveryAction::kWait},
      {F::kSourcePurged, "reclone", RecoveryAction::kReclone},
      {F::kDiverged, "diverged", RecoveryAction::kReport},
      {F::kApplyError, "failed", RecoveryAction::kReport},
      {F::kOther, "failed", RecoveryAction::kReport},
  };
  for (const Row& row : rows) {
    RecoveryDecision d = DecideRecovery(Facts(row.failure, seconds(3600)), Guards());
    EXPECT_EQ(d.state, row.state) << ReplicationFailureName(row.failure);
    EXPECT_EQ(d.action, row.action) << ReplicationFailureName(row.failure);
    if (row.failure != F::kNone) {
      // The server's own words are in the reason.
      EXPECT_NE(d.reason.find("details"), std::string::npos) << d.reason;
    }
  }
}

TEST(DecideRecoveryTest, PurgedWaitsForRecloneAfterThenReclones) {
  RecoveryDecision d = DecideRecovery(Facts(F::kSourcePurged, seconds(20)), Guards());
  EXPECT_EQ(d.state, "reclone_pending");
  EXPECT_EQ(d.action, RecoveryAction::kWait);
  ASSERT_TRUE(d.reclone_in.has_value());
  EXPECT_EQ(*d.reclone_in, seconds(40));
  EXPECT_NE(d.reason.find("re-clone in 40 s"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("binlogs"), std::string::npos) << d.reason;

  d = DecideRecovery(Facts(F::kSourcePurged, seconds(60)), Guards());
  EXPECT_EQ(d.action, RecoveryAction::kReclone) << d.reason;
  EXPECT_EQ(d.state, "reclone");
}

TEST(DecideRecoveryTest, SwitchOffRefuses) {
  RecloneGuards g = Guards();
  g.enabled = false;
  RecoveryDecision d = DecideRecovery(Facts(F::kSourcePurged, seconds(3600)), g);
  EXPECT_EQ(d.state, "reclone_refused");
  EXPECT_EQ(d.action, RecoveryAction::kReport);
  EXPECT_NE(d.reason.find("replication.auto_reclone is off"), std::string::npos) << d.reason;
}

TEST(DecideRecoveryTest, IntervalSinceTheLastRecloneRefusesUntilItPassed) {
  RecoveryFacts f = Facts(F::kSourcePurged, seconds(3600));
  f.since_last_reclone = seconds(100);
  RecoveryDecision d = DecideRecovery(f, Guards());
  EXPECT_EQ(d.state, "reclone_refused");
  EXPECT_EQ(d.action, RecoveryAction::kWait);
  ASSERT_TRUE(d.reclone_in.has_value());
  EXPECT_EQ(*d.reclone_in, seconds(500));
  EXPECT_NE(d.reason.find("reclone_min_interval"), std::string::npos) << d.reason;

  f.since_last_reclone = seconds(600);
  EXPECT_EQ(DecideRecovery(f, Guards()).action, RecoveryAction::kReclone);
  f.since_last_reclone.reset();  // never re-cloned
  EXPECT_EQ(DecideRecovery(f, Guards()).action, RecoveryAction::kReclone);
}

// The old datadir stays until the new clone commits: the free space (which the old data
// already takes from) must hold the whole new clone, whatever the old datadir's size.
TEST(DecideRecoveryTest, NotEnoughFreeSpaceRefusesUntilThereIs) {
  RecoveryFacts f = Facts(F::kSourcePurged, seconds(3600));
  f.space = RecloneSpace{RecloneBytesNeeded(10'000'000, 1.05, std::nullopt), 10'000'000,
                         "/var/lib/mysql"};
  RecoveryDecision d = DecideRecovery(f, Guards());
  EXPECT_EQ(d.state, "reclone_refused");
  EXPECT_EQ(d.action, RecoveryAction::kReport);
  EXPECT_FALSE(d.reclone_in.has_value());
  EXPECT_NE(d.reason.find("not enough free space"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("about 10500000 bytes"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("/var/lib/mysql has 10000000 free"), std::string::npos) << d.reason;
  EXPECT_NE(d.reason.find("binlogs"), std::string::npos) << d.reason;

  f.space->free = 10'500'000;  // the disk grew (or was cleaned up): go ahead
  EXPECT_EQ(DecideRecovery(f, Guards()).action, RecoveryAction::kReclone);
  f.space.reset();  // not measured: the clone's own pre-flight decides
  EXPECT_EQ(DecideRecovery(f, Guards()).action, RecoveryAction::kReclone);

  // The other guards speak first: a countdown or the interval is not a space problem.
  f = Facts(F::kSourcePurged, seconds(10));
  f.space = RecloneSpace{100, 1, "/d"};
  EXPECT_EQ(DecideRecovery(f, Guards()).state, "reclone_pending");
  f.failing_for = seconds(3600);
  f.since_last_reclone = seconds(1);
  EXPECT_EQ(DecideRecovery(f, Guards()).action, RecoveryAction::kWait);
}

TEST(RecloneBytesNeededTest, EstimateWithMarginAndMoreThanAtARefusal) {
  EXPECT_EQ(RecloneBytesNeeded(1'000'000, 1.05, std::nullopt), 1'050'000u);
  EXPECT_EQ(RecloneBytesNeeded(0, 1.05, std::nullopt), 0u);
  // The clone refused with 2 MB free although the estimate fit: the donor has more; wait
  // until the free space grew by the margin part at least.
  EXPECT_EQ(RecloneBytesNeeded(1'000'000, 1.05, 2'000'000), 2'050'000u);
  EXPECT_EQ(RecloneBytesNeeded(1'000'000, 1.05, 10), 1'050'000u);
  EXPECT_EQ(RecloneBytesNeeded(0, 1.0, 7), 8u);  // never "as much as at the refusal"
}

TEST(DecideRecoveryTest, ErrantTransactionsAreReportedNeverRecloned) {
  for (F failure : {F::kNone, F::kSourcePurged, F::kDiverged, F::kTransient, F::kApplyError}) {
    RecoveryFacts f = Facts(failure, seconds(3600));
    f.diverged = true;
    f.divergence = "errant transactions: it holds 1 transaction the primary lacks (0-102-7)";
    RecoveryDecision d = DecideRecovery(f, Guards());
    EXPECT_EQ(d.action, RecoveryAction::kReport) << ReplicationFailureName(failure);
    EXPECT_NE(d.reason.find("0-102-7"), std::string::npos) << d.reason;
    if (failure == F::kSourcePurged) {
      EXPECT_EQ(d.state, "reclone_refused");
      EXPECT_NE(d.reason.find("re-clone refused"), std::string::npos) << d.reason;
    } else {
      EXPECT_EQ(d.state, "diverged");
    }
  }
}

TEST(DecideRecoveryTest, NoRecloneBeforeTheGtidComparison) {
  RecoveryFacts f = Facts(F::kSourcePurged, seconds(3600));
  f.gtid_checked = false;
  RecoveryDecision d = DecideRecovery(f, Guards());
  EXPECT_EQ(d.state, "reclone_pending");
  EXPECT_EQ(d.action, RecoveryAction::kWait);
  EXPECT_NE(d.reason.find("GTID comparison"), std::string::npos) << d.reason;
}

GtidHistory Maria(std::string binlog_state, std::string slave_pos = "", bool log_bin = true,
                  bool updates = true) {
  return GtidHistory{std::move(binlog_state), std::move(slave_pos), log_bin, updates};
}

TEST(CompareWithPrimaryTest, MariaDbReplicaBehindOrEqualIsNoDivergence) {
  auto d = CompareWithPrimary(Maria("0-100-500", "0-100-500"), Maria("0-100-520"),
                              Flavour::kMariaDB);
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_FALSE(d->diverged());
  EXPECT_EQ(d->relation, GtidRelation::kBehind);
  EXPECT_TRUE(d->description.empty());
  // A fresh clone: nothing in its own binlog yet, the clone's position applied.
  d = CompareWithPrimary(Maria("", "0-100-520"), Maria("0-100-520"), Flavour::kMariaDB);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->relation, GtidRelation::kEqual);
}

TEST(CompareWithPrimaryTest, MariaDbWriteOnTheReplicaIsErrant) {
  // Written on mysql-2 (server_id 102) with read_only off: the next number of domain 0.
  auto d = CompareWithPrimary(Maria("0-100-521,0-102-522", "0-100-521"), Maria("0-100-530"),
                              Flavour::kMariaDB);
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_TRUE(d->diverged());
  EXPECT_EQ(d->relation, GtidRelation::kDiverged);
  EXPECT_NE(d->description.find("errant transactions"), std::string::npos) << d->description;
  EXPECT_NE(d->description.find("0-102-"), std::string::npos) << d->description;
  EXPECT_NE(d->errant.ToString().find("0-102-"), std::string::npos) << d->errant.ToString();
}

TEST(CompareWithPrimaryTest, MariaDbWithoutLogSlaveUpdatesStillSeesErrantWrites) {
  // log_slave_updates off: the binlog holds only what was written locally.
  auto d = CompareWithPrimary(Maria("0-102-522", "0-100-521", true, false), Maria("0-100-530"),
                              Flavour::kMariaDB);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->diverged());
  EXPECT_NE(d->description.find("0-102-"), std::string::npos) << d->description;
}

TEST(CompareWithPrimaryTest, MariaDbPrimaryThatCameBackEmptyIsBehindTheReplica) {
  auto d = CompareWithPrimary(Maria("0-100-600", "0-100-600"), Maria(""), Flavour::kMariaDB);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->diverged());
  EXPECT_EQ(d->relation, GtidRelation::kAhead);
  EXPECT_NE(d->description.find("ahead of the primary"), std::string::npos) << d->description;
  // Seen through the slave position alone when the replica logs no binlog.
  d = CompareWithPrimary(Maria("", "0-100-600", false, false), Maria("0-100-10"),
                         Flavour::kMariaDB);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->relation, GtidRelation::kAhead);
  EXPECT_FALSE(d->note.empty());
}

TEST(CompareWithPrimaryTest, MariaDbPrimaryPositionCountsWithItsBinlogState) {
  // A primary whose data came from a clone: the history is in its slave position.
  auto d = CompareWithPrimary(Maria("0-100-600", "0-100-600"), Maria("0-100-601", "0-100-600"),
                              Flavour::kMariaDB);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->diverged()) << d->description;
}

TEST(CompareWithPrimaryTest, MySqlGtidExecuted) {
  const std::string p = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
  const std::string r = "4f22ab58-82db-22f2-af44-d91bb9539673";
  GtidHistory replica{p + ":1-50," + r + ":1", "", true, true};
  GtidHistory primary{p + ":1-60", "", true, true};
  auto d = CompareWithPrimary(replica, primary, Flavour::kMySQL);
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_TRUE(d->diverged());
  EXPECT_NE(d->description.find(r + ":1"), std::string::npos) << d->description;
  replica.binlog_state = p + ":1-50";
  d = CompareWithPrimary(replica, primary, Flavour::kMySQL);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->diverged());
  EXPECT_EQ(d->relation, GtidRelation::kBehind);
}

TEST(CompareWithPrimaryTest, GarbageNamesTheNodeAndVariable) {
  auto d = CompareWithPrimary(Maria("0-100-x"), Maria("0-100-1"), Flavour::kMariaDB);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message().find("replica's gtid_binlog_state"), std::string::npos)
      << d.error().message();
}

TEST(ReadGtidHistoryTest, ReadsTheDialectsColumns) {
  testing::FakeSession fake;
  fake.OnRows("SELECT @@GLOBAL.gtid_binlog_state",
              {testing::MakeRow({{"binlog_state", "0-100-5,0-102-6"},
                                 {"slave_pos", "0-100-5"},
                                 {"log_bin", "1"},
                                 {"log_slave_updates", "0"},
                                 {"log_replica_updates", "0"}})});
  auto h = ReadGtidHistory(fake, Flavour::kMariaDB);
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->binlog_state, "0-100-5,0-102-6");
  EXPECT_EQ(h->slave_pos, "0-100-5");
  EXPECT_TRUE(h->log_bin);
  EXPECT_FALSE(h->log_replica_updates);
}

class RecloneRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = std::filesystem::temp_directory_path() /
            ("replboot-reclone-record-" + std::to_string(::getpid()));
    std::filesystem::create_directories(base_);
    datadir_ = (base_ / "data").string();
  }
  void TearDown() override { std::filesystem::remove_all(base_); }
  std::filesystem::path base_;
  std::string datadir_;
};

TEST_F(RecloneRecordTest, AbsentIsNoRecloneAndWritesRoundTrip) {
  auto r = ReadRecloneRecord(datadir_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count, 0u);
  EXPECT_EQ(RecloneRecordPath(datadir_ + "/"), datadir_ + ".replboot-reclone.json");
  RecloneRecord w{3, 1700000000, 1700000100, true, "binlogs purged"};
  ASSERT_TRUE(WriteRecloneRecord(datadir_, w).ok());
  r = ReadRecloneRecord(datadir_);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->count, 3u);
  EXPECT_EQ(r->last_started_at, 1700000000);
  EXPECT_EQ(r->last_done_at, 1700000100);
  EXPECT_TRUE(r->in_progress);
  EXPECT_EQ(r->reason, "binlogs purged");
}

TEST_F(RecloneRecordTest, MalformedIsAnErrorNamingTheFile) {
  ASSERT_TRUE(files::WriteFileAtomic(RecloneRecordPath(datadir_), "{\"count\": \"many\"}").ok());
  auto r = ReadRecloneRecord(datadir_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption);
  EXPECT_NE(r.error().message().find(".replboot-reclone.json"), std::string::npos);
  ASSERT_TRUE(files::WriteFileAtomic(RecloneRecordPath(datadir_), "not json").ok());
  EXPECT_FALSE(ReadRecloneRecord(datadir_));
}

}  // namespace
}  // namespace replboot::replication
