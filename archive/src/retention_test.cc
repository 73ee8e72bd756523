#include "replboot/archive/retention.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>

#include "replboot/archive/layout.h"

namespace replboot::archive {
namespace {

using ::testing::ElementsAreArray;

constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kHourMs = 3'600'000;
// 2026-12-01 00:00:00 UTC.
constexpr int64_t kMonthStartMs = 1'796'083'200'000;
// The month's last check: day 30 at 07:00, an hour after the day's backup would finish.
constexpr int64_t kNowMs = kMonthStartMs + 30 * kDayMs + 7 * kHourMs;

std::string IdOfDay(int day) {
  return NewBackupId(std::chrono::system_clock::time_point(
      std::chrono::milliseconds(kMonthStartMs + day * kDayMs + 6 * kHourMs)));
}

// A month of daily backups (days 0..29, each finished at 06:00 UTC), verified as `verified`
// says, in shuffled order (the plan must not depend on it).
std::vector<RetentionItem> Month(const std::function<bool(int)>& verified) {
  std::vector<RetentionItem> items;
  for (int day = 0; day < 30; ++day) {
    items.push_back({IdOfDay(day), kMonthStartMs + day * kDayMs + 6 * kHourMs, verified(day)});
  }
  std::shuffle(items.begin(), items.end(), std::mt19937(7));
  return items;
}

// Ids of days [first, last], newest first (the plan's order).
std::vector<std::string> Days(int first, int last) {
  std::vector<std::string> ids;
  for (int day = last; day >= first; --day) ids.push_back(IdOfDay(day));
  return ids;
}

auto AllVerified = [](int) { return true; };

TEST(Retention, BothRulesOffKeepsEverything) {
  auto plan = PlanRetention(Month(AllVerified), {}, kNowMs);
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(0, 29)));
  EXPECT_TRUE(plan.remove.empty());
  EXPECT_EQ(plan.why.size(), 30u);
}

TEST(Retention, KeepLast) {
  auto plan = PlanRetention(Month(AllVerified), {.keep_last = 7}, kNowMs);
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(23, 29)));
  EXPECT_THAT(plan.remove, ElementsAreArray(Days(0, 22)));
  EXPECT_EQ(plan.why[IdOfDay(29)], "among the newest 7");
  EXPECT_EQ(plan.why[IdOfDay(0)],
            "outside the retention rules, and a newer verified backup exists");
}

TEST(Retention, KeepDays) {
  // Day 20's backup is 10 days and an hour old: out; day 21's is 9 days and an hour old.
  auto plan = PlanRetention(Month(AllVerified), {.keep_days = 10}, kNowMs);
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(21, 29)));
  EXPECT_THAT(plan.remove, ElementsAreArray(Days(0, 20)));
  EXPECT_EQ(plan.why[IdOfDay(21)], "younger than 10 days");
}

TEST(Retention, EitherRuleKeepsWhenBothAreSet) {
  auto plan = PlanRetention(Month(AllVerified), {.keep_last = 3, .keep_days = 5}, kNowMs);
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(26, 29)));
  plan = PlanRetention(Month(AllVerified), {.keep_last = 10, .keep_days = 2}, kNowMs);
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(20, 29)));
  EXPECT_THAT(plan.remove, ElementsAreArray(Days(0, 19)));
}

// Verification has failed for the last ten days: the newest verified backup (day 19) stays,
// and so does every unverified one newer than it; what is older than day 19 goes.
TEST(Retention, TheNewestVerifiedBackupIsNeverRemoved) {
  auto plan = PlanRetention(Month([](int day) { return day < 20; }), {.keep_last = 3}, kNowMs);
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(19, 29)));
  EXPECT_THAT(plan.remove, ElementsAreArray(Days(0, 18)));
  EXPECT_EQ(plan.why[IdOfDay(19)], "the newest verified backup");
  EXPECT_EQ(plan.why[IdOfDay(24)], "no newer verified backup exists");

  // Even with a rule of one day, whose window holds no backup at all at this hour.
  plan =
      PlanRetention(Month([](int day) { return day < 20; }), {.keep_days = 1}, kNowMs + 2 * kDayMs);
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(19, 29)));
}

TEST(Retention, NothingIsRemovedWithoutAVerifiedBackup) {
  auto plan = PlanRetention(Month([](int) { return false; }), {.keep_last = 1}, kNowMs);
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(0, 29)));
  EXPECT_TRUE(plan.remove.empty());
}

// Every other day verified: an unverified backup outside the rules goes only once a newer
// verified one exists, which is the case for all of them here.
TEST(Retention, UnverifiedBackupsGoOnceANewerVerifiedOneExists) {
  auto plan = PlanRetention(Month([](int day) { return day % 2 == 0; }), {.keep_last = 1}, kNowMs);
  // Day 29 (unverified) by the rule, day 28 as the newest verified.
  EXPECT_THAT(plan.keep, ElementsAreArray(Days(28, 29)));
  EXPECT_THAT(plan.remove, ElementsAreArray(Days(0, 27)));
}

TEST(Retention, EmptyAndSingle) {
  auto plan = PlanRetention({}, {.keep_last = 1}, kNowMs);
  EXPECT_TRUE(plan.keep.empty());
  EXPECT_TRUE(plan.remove.empty());
  plan = PlanRetention({{"20261201T060000Z", kMonthStartMs, false}}, {.keep_days = 1}, kNowMs);
  EXPECT_THAT(plan.keep, ElementsAreArray({"20261201T060000Z"}));
}

}  // namespace
}  // namespace replboot::archive

namespace replboot::archive {
namespace {

SegmentInfo RSeg(const std::string& history, uint64_t first, uint64_t last) {
  SegmentInfo s;
  s.history = history;
  s.key = fmt::format("{}-{}-{}", history, first, last);
  s.start_state = first > 1 ? fmt::format("0-100-{}", first - 1) : "";
  s.end_state = fmt::format("0-100-{}", last);
  return s;
}

BackupPoint RBackup(const std::string& id, const std::string& history, uint64_t seq) {
  BackupPoint b;
  b.id = id;
  b.history = history;
  b.gtid_position = fmt::format("0-100-{}", seq);
  b.position = *binlog::ParsePosition(b.gtid_position);
  return b;
}

std::vector<std::string> Keys(const SegmentRetentionPlan& plan) {
  std::vector<std::string> out;
  for (const auto& s : plan.remove) out.push_back(s.key);
  return out;
}

TEST(SegmentRetentionTest, KeepsWhatTheOldestKeptBackupNeedsAndNothingOlder) {
  std::map<std::string, std::vector<SegmentInfo>> segs = {
      {"root", {RSeg("root", 1, 10), RSeg("root", 11, 20), RSeg("root", 21, 30)}}};
  auto plan = PlanSegmentRetention({}, "root", segs, {RBackup("b2", "root", 15)});
  EXPECT_EQ(Keys(plan), (std::vector<std::string>{"root-1-10"}));
  // On a segment boundary, the segment ending there goes too.
  plan = PlanSegmentRetention({}, "root", segs, {RBackup("b3", "root", 20), RBackup("b4", "root", 28)});
  EXPECT_EQ(Keys(plan), (std::vector<std::string>{"root-1-10", "root-11-20"}));
  // No backup kept: nothing goes.
  EXPECT_TRUE(PlanSegmentRetention({}, "root", segs, {}).remove.empty());
}

TEST(SegmentRetentionTest, BranchesKeepWhatAnAncestorsBackupWalksInto) {
  std::vector<HistoryRecord> records = {
      {"h1", "c", "root", "0-100-12", "20261207T061500Z", "latest", 1000}};
  std::map<std::string, std::vector<SegmentInfo>> segs = {
      {"root", {RSeg("root", 1, 10), RSeg("root", 11, 20)}},
      {"h1", {RSeg("h1", 13, 16), RSeg("h1", 17, 25)}}};
  // A root backup before the branch: h1 is all kept, root before the backup goes.
  auto plan = PlanSegmentRetention(records, "root", segs, {RBackup("b1", "root", 11)});
  EXPECT_EQ(Keys(plan), (std::vector<std::string>{"root-1-10"}));
  // Only an h1 backup is kept: root goes whole, h1 keeps what follows the backup.
  plan = PlanSegmentRetention(records, "root", segs, {RBackup("b9", "h1", 17)});
  EXPECT_EQ(Keys(plan), (std::vector<std::string>{"h1-13-16", "root-1-10", "root-11-20"}));
}

}  // namespace
}  // namespace replboot::archive
