#include "replboot/replication/gtid.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace replboot::replication {
namespace {

GtidSet Maria(std::string_view text) {
  auto set = GtidSet::Parse(text, Flavour::kMariaDB);
  EXPECT_TRUE(set.has_value()) << text << ": " << set.error().message();
  return set.value_or(*GtidSet::Parse("", Flavour::kMariaDB));
}

GtidSet MySql(std::string_view text) {
  auto set = GtidSet::Parse(text, Flavour::kMySQL);
  EXPECT_TRUE(set.has_value()) << text << ": " << set.error().message();
  return set.value_or(*GtidSet::Parse("", Flavour::kMySQL));
}

constexpr char kA[] = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
constexpr char kB[] = "5c8f9b7e-0d3a-11ef-8a1b-0242ac120002";

TEST(GtidSetTest, MariaDbListsNormaliseAndPrintAsTheServerWritesThem) {
  EXPECT_EQ(Maria(" 0-1-100,\n 0-2-5 ").ToString(), "0-1-100,0-2-5");
  EXPECT_EQ(Maria("").ToString(), "");
  EXPECT_TRUE(Maria("").empty());
  EXPECT_TRUE(Maria("0-1-0").empty());  // a position before the first transaction
  EXPECT_EQ(Maria("0-1-100,1-1-3").TransactionCount(), 103u);
}

TEST(GtidSetTest, MySqlSetsMergeIntervalsAndLowerTheUuid) {
  std::string upper = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
  EXPECT_EQ(MySql(upper + ":1-5:6-9:11").ToString(), std::string(kA) + ":1-9:11");
  EXPECT_EQ(MySql(std::string(kA) + ":7,\n" + kA + ":1-6").ToString(), std::string(kA) + ":1-7");
  EXPECT_EQ(MySql(std::string(kA) + ":1-9:11").TransactionCount(), 10u);
  // MySQL 8.4 tagged GTIDs are a source of their own.
  GtidSet tagged = MySql(std::string(kA) + ":1-3:nightly:1-2");
  EXPECT_EQ(tagged.ToString(), std::string(kA) + ":1-3," + kA + ":nightly:1-2");
  EXPECT_EQ(tagged.TransactionCount(), 5u);
}

TEST(GtidSetTest, RefusesWhatNoServerWritesNamingTheElement) {
  for (std::string_view bad : {"0-1", "0-1-x", "0-1-100,", ",0-1-1", "0-1--1", "4294967296-1-1",
                               "0-1-18446744073709551616", "0-1-5,0-1-7", "0-1-+5", "0-1-1-1"}) {
    auto set = GtidSet::Parse(bad, Flavour::kMariaDB);
    ASSERT_FALSE(set.has_value()) << bad;
    EXPECT_EQ(set.error().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(set.error().message().find("element"), std::string::npos) << set.error().message();
  }
  std::string a = kA;
  for (const std::string& bad : std::vector<std::string>{a, a + ":", a + ":0", a + ":5-3", a + ":1-9223372036854775808",
                          a + ":1-2-3", "3e11fa47:1-5", a + ":9bad:1", a + ":1-5;DROP",
                          std::string("g") + a.substr(1) + ":1"}) {
    auto set = GtidSet::Parse(bad, Flavour::kMySQL);
    ASSERT_FALSE(set.has_value()) << bad;
    EXPECT_EQ(set.error().code(), StatusCode::kInvalidArgument);
  }
}

TEST(GtidSetTest, AReplicaBehindItsPrimary) {
  EXPECT_EQ(Relate(Maria("0-1-90"), Maria("0-1-100")), GtidRelation::kBehind);
  EXPECT_EQ(Relate(Maria("0-1-100"), Maria("0-1-100")), GtidRelation::kEqual);
  EXPECT_EQ(Relate(Maria(""), Maria("0-1-100")), GtidRelation::kBehind);
  EXPECT_EQ(Relate(MySql(std::string(kA) + ":1-5"), MySql(std::string(kA) + ":1-9")),
            GtidRelation::kBehind);
}

TEST(GtidSetTest, AWriteOnAReplicaStaysErrantAfterThePrimaryOvertakesItsSequenceNumber) {
  // The replica (server 2) wrote 0-2-101 with read_only off; the primary went on to 0-1-150.
  GtidSet replica = Maria("0-1-100,0-2-101");
  GtidSet primary = Maria("0-1-150");
  EXPECT_EQ(Relate(replica, primary), GtidRelation::kDiverged);
  EXPECT_EQ(replica.Minus(primary).ToString(), "0-2-101");
  // Before the primary wrote anything more, the replica is simply ahead.
  EXPECT_EQ(Relate(replica, Maria("0-1-100")), GtidRelation::kAhead);
}

TEST(GtidSetTest, APrimaryThatCameBackEmptyIsBehindEveryReplica) {
  EXPECT_EQ(Relate(Maria("0-1-100"), Maria("0-1-3")), GtidRelation::kAhead);
  EXPECT_EQ(Maria("0-1-100").Minus(Maria("0-1-3")).ToString(), "0-1-4..100");
}

TEST(GtidSetTest, MySqlErrantTransactionsAreTheDifference) {
  GtidSet replica = MySql(std::string(kA) + ":1-100," + kB + ":1-2");
  GtidSet primary = MySql(std::string(kA) + ":1-150");
  EXPECT_EQ(Relate(replica, primary), GtidRelation::kDiverged);
  EXPECT_EQ(replica.Minus(primary).ToString(), std::string(kB) + ":1-2");
  // Holes are kept: a purged middle is not "contained".
  GtidSet holed = MySql(std::string(kA) + ":1-10:20-30");
  EXPECT_EQ(MySql(std::string(kA) + ":1-30").Minus(holed).ToString(), std::string(kA) + ":11-19");
  EXPECT_FALSE(holed.Contains(MySql(std::string(kA) + ":15")));
  EXPECT_TRUE(holed.Contains(MySql(std::string(kA) + ":5:25-30")));
}

TEST(GtidSetTest, UnionHoldsBothAndMergesIntervals) {
  auto a = Maria("0-100-57,1-7-3");
  auto b = Maria("0-100-60,0-101-2");
  GtidSet both = a.Union(b);
  EXPECT_EQ(both.ToString(), "0-100-60,0-101-2,1-7-3");
  EXPECT_TRUE(both.Contains(a));
  EXPECT_TRUE(both.Contains(b));
  // A replica that does not log what it applies: an empty binlog state, its position holds it.
  EXPECT_EQ(Maria("").Union(Maria("0-100-57")), Maria("0-100-57"));
  EXPECT_TRUE(Maria("0-100-0").Union(Maria("")).empty());
  EXPECT_EQ(MySql(std::string(kA) + ":1-5").Union(MySql(std::string(kA) + ":6-9:12")).ToString(),
            std::string(kA) + ":1-9:12");
  // Sets of two flavours never mix.
  EXPECT_EQ(Maria("0-1-5").Union(MySql(std::string(kA) + ":1")), Maria("0-1-5"));
}

TEST(GtidSetTest, MinusSplitsIntervalsAtEveryHole) {
  GtidSet a = MySql(std::string(kA) + ":1-100");
  GtidSet b = MySql(std::string(kA) + ":2:10-20:50-60:100");
  EXPECT_EQ(a.Minus(b).ToString(), std::string(kA) + ":1:3-9:21-49:61-99");
  EXPECT_EQ(a.Minus(b).TransactionCount() + b.TransactionCount(), 100u);
  EXPECT_TRUE(a.Minus(a).empty());
  EXPECT_EQ(b.Minus(a).ToString(), "");
}

}  // namespace
}  // namespace replboot::replication
