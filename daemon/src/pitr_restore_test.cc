#include "replboot/daemon/pitr_restore.h"

#include <gtest/gtest.h>

namespace replboot::daemon {
namespace {

namespace ar = archive;

constexpr char kRoot[] = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
constexpr int64_t kT0 = 1'800'000'000;  // transaction s commits at kT0 + s

// A segment of transactions first..last of domain 0 (as the archive lists it: no bytes read).
ar::SegmentInfo Seg(uint64_t first, uint64_t last) {
  ar::SegmentInfo s;
  s.history = kRoot;
  s.start_state = fmt::format("0-100-{}", first - 1);
  s.end_state = fmt::format("0-100-{}", last);
  s.first_gtid = fmt::format("0-100-{}", first);
  s.last_gtid = s.end_state;
  s.first_commit_time = kT0 + static_cast<int64_t>(first);
  s.last_commit_time = kT0 + static_cast<int64_t>(last);
  s.transactions = last - first + 1;
  s.start_ordinal = first - 1;
  s.end_ordinal = last;
  s.key = fmt::format("binlogs/{}/{}-{}.seg", kRoot, first, last);
  return s;
}

// A view of the root history holding `segments` and backups at the positions `seqs`
// (finished as their last transaction committed), oldest first.
ArchiveView View(std::vector<ar::SegmentInfo> segments, const std::vector<uint64_t>& seqs) {
  ArchiveView v;
  v.cluster_id = "c1";
  v.root = v.history = kRoot;
  v.chain.push_back(ar::ChainPhase{kRoot, std::nullopt, std::move(segments)});
  for (size_t i = 0; i < seqs.size(); ++i) {
    ar::BackupPoint b;
    b.id = fmt::format("20261207T0{}0000Z", i);
    b.history = kRoot;
    b.gtid_position = fmt::format("0-100-{}", seqs[i]);
    b.position = *binlog::ParsePosition(b.gtid_position);
    b.finished_at_ms = (kT0 + static_cast<int64_t>(seqs[i])) * 1000;
    b.started_at_ms = b.finished_at_ms - 500;
    ar::Manifest m;
    m.backup_id = b.id;
    m.cluster_id = v.cluster_id;
    m.gtid_position = b.gtid_position;
    v.backups.push_back(b);
    v.manifests.push_back(m);
  }
  if (!v.manifests.empty()) v.newest = v.manifests.back();
  return v;
}

ar::RestoreTarget Latest() {
  ar::RestoreTarget t;
  t.text = "latest";
  return t;
}

TEST(PlanStoreRestoreTest, NothingArchivedRestoresTheNewestBackupAlone) {
  // A store from before the binlog archive: as a bootstrap from the store always did.
  auto plan = PlanStoreRestore(View({}, {5, 15}), Latest());
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->manifest.backup_id, "20261207T010000Z");
  EXPECT_FALSE(plan->pitr);
  EXPECT_EQ(plan->Describe(), "backup 20261207T010000Z alone (no binlog segment archived)");
}

TEST(PlanStoreRestoreTest, LatestWithSegmentsReplaysEverythingAfterTheNewestBackup) {
  auto plan = PlanStoreRestore(View({Seg(1, 10), Seg(11, 20), Seg(21, 30)}, {5, 15}), Latest());
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->manifest.backup_id, "20261207T010000Z");
  ASSERT_TRUE(plan->pitr);
  ASSERT_EQ(plan->pitr->segments.size(), 2u);
  EXPECT_EQ(plan->pitr->segments[0].info.first_gtid, "0-100-11");
  EXPECT_EQ(plan->pitr->reach_state, "0-100-30");
  EXPECT_FALSE(plan->pitr->stopped_by_gap);
  EXPECT_EQ(plan->Describe(), "backup 20261207T010000Z + 2 archived segments to 0-100-30");
}

TEST(PlanStoreRestoreTest, LatestStopsAtAGapAndSaysSo) {
  auto plan = PlanStoreRestore(View({Seg(1, 10), Seg(11, 20), Seg(26, 30)}, {5}), Latest());
  ASSERT_TRUE(plan) << plan.error().message();
  ASSERT_TRUE(plan->pitr);
  EXPECT_EQ(plan->pitr->reach_state, "0-100-20");
  ASSERT_TRUE(plan->pitr->stopped_by_gap);
  EXPECT_NE(plan->Describe().find("the archive ends early: a gap in history"), std::string::npos)
      << plan->Describe();
}

TEST(PlanStoreRestoreTest, GtidAndTimeTargetsPlanExactlyUpToThem) {
  const ArchiveView view = View({Seg(1, 10), Seg(11, 20), Seg(21, 30)}, {5, 15});
  auto gtid = ar::ParseGtidTarget("0-100-12");
  ASSERT_TRUE(gtid);
  auto plan = PlanStoreRestore(view, *gtid);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->manifest.backup_id, "20261207T000000Z");  // the newest that 0-100-12 covers
  ASSERT_TRUE(plan->pitr);
  EXPECT_EQ(plan->pitr->segments.size(), 2u);

  auto time = ar::ParseTimeTarget(ar::FormatTime(kT0 + 24));
  ASSERT_TRUE(time);
  plan = PlanStoreRestore(view, *time);
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_EQ(plan->manifest.backup_id, "20261207T010000Z");
  ASSERT_TRUE(plan->pitr);
  ASSERT_EQ(plan->pitr->segments.size(), 2u);
  EXPECT_EQ(plan->pitr->segments[1].info.first_gtid, "0-100-21");  // cut after 24
}

TEST(PlanStoreRestoreTest, ATargetOutsideTheRangeIsRefusedNamingIt) {
  const ArchiveView view = View({Seg(1, 10), Seg(11, 20)}, {5});
  auto late = ar::ParseTimeTarget(ar::FormatTime(kT0 + 100));
  ASSERT_TRUE(late);
  auto plan = PlanStoreRestore(view, *late);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(plan.error().message().find("past the end of the archive"), std::string::npos)
      << plan.error().message();
  EXPECT_NE(plan.error().message().find("restorable"), std::string::npos) << plan.error().message();

  auto early = ar::ParseGtidTarget("0-100-3");
  ASSERT_TRUE(early);
  plan = PlanStoreRestore(view, *early);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(plan.error().message().find("before the oldest backup"), std::string::npos)
      << plan.error().message();

  // A time or GTID target with nothing archived: only the backup's own point is restorable,
  // so a target past it is refused, never met by the backup alone.
  auto after = ar::ParseGtidTarget("0-100-20");
  ASSERT_TRUE(after);
  plan = PlanStoreRestore(View({}, {5}), *after);
  ASSERT_FALSE(plan);
  EXPECT_EQ(plan.error().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace replboot::daemon
