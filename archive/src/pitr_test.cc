#include "replboot/archive/pitr.h"

#include <gtest/gtest.h>

#include "binlog_test_util.h"

namespace replboot::archive {
namespace {

using testing::MakeSegment;

constexpr char kRoot[] = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
constexpr uint32_t kT0 = 1'800'000'000;  // segment n's transaction s commits at kT0 + s

SegmentInfo Seg(const std::string& history, uint64_t first, uint64_t last) {
  auto info = SegmentInfoOf(MakeSegment(history, first, last, kT0));
  EXPECT_TRUE(info) << info.error().message();
  return *info;
}

BackupPoint Backup(const std::string& id, const std::string& history, uint64_t seq) {
  BackupPoint b;
  b.id = id;
  b.history = history;
  b.gtid_position = fmt::format("0-100-{}", seq);
  b.position = *binlog::ParsePosition(b.gtid_position);
  b.started_at_ms = (int64_t{kT0} + static_cast<int64_t>(seq)) * 1000 - 500;
  b.finished_at_ms = (int64_t{kT0} + static_cast<int64_t>(seq)) * 1000;
  return b;
}

std::vector<ChainPhase> RootChain(std::vector<SegmentInfo> segments) {
  auto chain = BuildChain({Lineage{kRoot, ""}}, {std::move(segments)});
  EXPECT_TRUE(chain);
  return *chain;
}

TEST(RestoreTargetTest, TimesAreParsedStrictly) {
  auto t = ParseTimeTarget("2026-12-06T10:41:59Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(FormatTime(t->time), "2026-12-06T10:41:59Z");
  auto offset = ParseTimeTarget("2026-12-06T11:41:59+01:00");
  ASSERT_TRUE(offset);
  EXPECT_EQ(offset->time, t->time);
  for (const char* bad : {"", "2026-12-06", "2026-12-06 10:41:59Z", "2026-12-06T10:41:59",
                          "2026-02-30T10:41:59Z", "2026-12-06T24:00:00Z", "2026-12-06T10:41:59.5Z",
                          "2026-12-06T10:41:59z", "2026-12-06T10:41:59+0100", "+2026-12-06T10:41:59Z",
                          "1969-12-31T23:59:59Z"}) {
    EXPECT_FALSE(ParseTimeTarget(bad)) << bad;
  }
  EXPECT_TRUE(ParseGtidTarget("0-100-41,1-100-2"));
  EXPECT_FALSE(ParseGtidTarget(""));
  EXPECT_FALSE(ParseGtidTarget("0-100"));
}

TEST(PlanRestoreTest, TimeTargetTakesTheNewestBackupBeforeItAndTheSegmentsUpToIt) {
  auto chain = RootChain({Seg(kRoot, 1, 10), Seg(kRoot, 11, 20), Seg(kRoot, 21, 30)});
  std::vector<BackupPoint> backups = {Backup("20261207T000000Z", kRoot, 5),
                                      Backup("20261207T010000Z", kRoot, 15)};
  RestoreTarget t{RestoreTarget::Kind::kTime, kT0 + 24, {}, "time x"};
  auto plan = PlanRestore(chain, backups, t);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->backup.id, "20261207T010000Z");
  ASSERT_EQ(plan->segments.size(), 2u);
  EXPECT_EQ(plan->segments[0].info.first_gtid, "0-100-11");  // holds 15: the replay skips 11..15
  EXPECT_EQ(plan->segments[1].info.first_gtid, "0-100-21");  // cut after 24

  // Before the newer backup finished: the older one.
  t.time = kT0 + 12;
  plan = PlanRestore(chain, backups, t);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->backup.id, "20261207T000000Z");
  ASSERT_EQ(plan->segments.size(), 2u);

  // A segment boundary: nothing of the next segment.
  t.time = kT0 + 20;
  plan = PlanRestore(chain, backups, t);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->segments.size(), 1u);
  EXPECT_EQ(plan->reach_state, "0-100-20");
}

TEST(PlanRestoreTest, TargetsOutsideTheRangeAreRefusedNamingIt) {
  auto chain = RootChain({Seg(kRoot, 1, 10), Seg(kRoot, 11, 20)});
  std::vector<BackupPoint> backups = {Backup("20261207T000000Z", kRoot, 5)};
  RestoreTarget before{RestoreTarget::Kind::kTime, kT0 + 4, {}, "time early"};
  auto a = PlanRestore(chain, backups, before);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.error().message().find("before the oldest backup"), std::string::npos);
  EXPECT_NE(a.error().message().find(FormatTime(kT0 + 5)), std::string::npos) << a.error().message();
  EXPECT_NE(a.error().message().find(FormatTime(kT0 + 20)), std::string::npos);
  RestoreTarget after{RestoreTarget::Kind::kTime, kT0 + 21, {}, "time late"};
  auto b = PlanRestore(chain, backups, after);
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().message().find("past the end of the archive"), std::string::npos)
      << b.error().message();
  auto g = PlanRestore(chain, backups, *ParseGtidTarget("0-100-21"));
  ASSERT_FALSE(g);
  auto ok = PlanRestore(chain, backups, *ParseGtidTarget("0-100-20"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->segments.size(), 2u);
}

TEST(PlanRestoreTest, AGapIsNamedAndRefusesTargetsBehindIt) {
  // 11..20 missing.
  auto chain = RootChain({Seg(kRoot, 1, 10), Seg(kRoot, 21, 30)});
  std::vector<BackupPoint> backups = {Backup("20261207T000000Z", kRoot, 5)};
  auto report = CheckChain(chain, backups);
  ASSERT_EQ(report.gaps.size(), 1u);
  EXPECT_EQ(report.gaps[0].after_state, "0-100-10");
  EXPECT_EQ(report.gaps[0].before_state, "0-100-20");
  ASSERT_EQ(report.ranges.size(), 1u);
  EXPECT_EQ(report.ranges[0].to_state, "0-100-10");
  auto refused = PlanRestore(chain, backups, *ParseGtidTarget("0-100-25"));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("a gap in history"), std::string::npos)
      << refused.error().message();
  // Latest stops at the gap and says so.
  auto latest = PlanRestore(chain, backups, RestoreTarget{});
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->reach_state, "0-100-10");
  ASSERT_TRUE(latest->stopped_by_gap);
  // A backup after the gap starts a new chain.
  backups.push_back(Backup("20261207T020000Z", kRoot, 22));
  report = CheckChain(chain, backups);
  ASSERT_EQ(report.ranges.size(), 2u);
  EXPECT_EQ(report.ranges[1].to_state, "0-100-30");
  EXPECT_TRUE(PlanRestore(chain, backups, *ParseGtidTarget("0-100-25")));
}

TEST(PlanRestoreTest, ABranchFollowsItsParentOnlyUpToTheBranchPoint) {
  // Root: 1..30 archived; restored to 0-100-12, the new history goes on from 13 with GTIDs
  // whose numbers the root's abandoned 13..30 also used.
  const std::string h1 = "20261207T104159Z-0a1b2c3d";
  std::vector<Lineage> lineage = {{h1, ""}, {kRoot, "0-100-12"}};
  std::vector<std::vector<SegmentInfo>> segs = {
      {Seg(h1, 13, 16), Seg(h1, 17, 25)},
      {Seg(kRoot, 1, 10), Seg(kRoot, 11, 20), Seg(kRoot, 21, 30)}};
  auto chain = BuildChain(lineage, segs);
  ASSERT_TRUE(chain);
  std::vector<BackupPoint> backups = {Backup("20261207T000000Z", kRoot, 5),
                                      Backup("20261207T030000Z", kRoot, 25)};  // abandoned
  auto plan = PlanRestore(*chain, backups, *ParseGtidTarget("0-100-18"));
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->backup.id, "20261207T000000Z");  // 25 is past the branch: not this chain's
  ASSERT_EQ(plan->segments.size(), 4u);
  EXPECT_EQ(plan->segments[0].info.history, kRoot);
  EXPECT_EQ(plan->segments[1].info.history, kRoot);  // 11..20, capped at 12
  ASSERT_TRUE(plan->segments[1].cap);
  EXPECT_EQ(binlog::PositionToString(*plan->segments[1].cap), "0-100-12");
  EXPECT_EQ(plan->segments[2].info.history, h1);
  EXPECT_EQ(plan->segments[3].info.key, segs[0][1].key);
  // In the root history the abandoned backup is the newest.
  auto root_chain = RootChain(segs[1]);
  auto root_plan = PlanRestore(root_chain, backups, *ParseGtidTarget("0-100-28"));
  ASSERT_TRUE(root_plan);
  EXPECT_EQ(root_plan->backup.id, "20261207T030000Z");
}

}  // namespace
}  // namespace replboot::archive
