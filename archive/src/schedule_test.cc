#include "replboot/archive/schedule.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace replboot::archive {
namespace {

using std::chrono::system_clock;
using ::testing::HasSubstr;

// 2026-12-07 06:07:30 UTC.
constexpr int64_t kBase = 1'796'623'650;

system_clock::time_point At(int64_t seconds, int64_t ms = 0) {
  return system_clock::time_point(std::chrono::seconds(seconds)) + std::chrono::milliseconds(ms);
}

Schedule Parse(std::string_view text) {
  auto schedule = ParseSchedule(text);
  EXPECT_TRUE(schedule.has_value()) << text << ": " << schedule.error().ToString();
  return schedule.value_or(Schedule{});
}

TEST(Schedule, AcceptsTheThreeForms) {
  EXPECT_EQ(Parse("off").kind, Schedule::Kind::kOff);
  EXPECT_EQ(Parse("every 5m").interval, std::chrono::minutes(5));
  EXPECT_EQ(Parse("every 90m").interval, std::chrono::minutes(90));
  EXPECT_EQ(Parse("every 6h").interval, std::chrono::hours(6));
  EXPECT_EQ(Parse("every 1d").interval, std::chrono::hours(24));
  EXPECT_EQ(Parse("every 366d").interval, std::chrono::hours(24 * 366));
  Schedule daily = Parse("daily 06:15");
  EXPECT_EQ(daily.kind, Schedule::Kind::kDaily);
  EXPECT_EQ(daily.time_of_day, std::chrono::minutes(6 * 60 + 15));
  EXPECT_EQ(Parse("daily 00:00").time_of_day, std::chrono::minutes(0));
  EXPECT_EQ(Parse("daily 23:59").time_of_day, std::chrono::minutes(23 * 60 + 59));
  for (const char* text : {"off", "every 5m", "every 90m", "every 6h", "every 2d", "daily 06:15"}) {
    EXPECT_EQ(Parse(text).ToString(), text);
  }
  EXPECT_EQ(Parse("every 120m").ToString(), "every 2h");
  EXPECT_EQ(Parse(Parse("every 120m").ToString()), Parse("every 120m"));
}

TEST(Schedule, RefusesEverythingElseClearly) {
  for (const char* text : {"",
                           "Off",
                           "OFF",
                           "on",
                           "every",
                           "every ",
                           "every 4m",
                           "every 0m",
                           "every 05m",
                           "every 5",
                           "every 5s",
                           "every -5m",
                           "every +5m",
                           "every 5 m",
                           " every 5m",
                           "every 5m ",
                           "every  5m",
                           "Every 5m",
                           "every 5M",
                           "every 1.5h",
                           "every 367d",
                           "every 999999999d",
                           "every 9999999999m",
                           "daily",
                           "daily 6:15",
                           "daily 06:5",
                           "daily 24:00",
                           "daily 06:60",
                           "daily 06:15Z",
                           "daily 06-15",
                           "daily  06:15",
                           "weekly",
                           "hourly",
                           "*/15 * * * *"}) {
    auto schedule = ParseSchedule(text);
    ASSERT_FALSE(schedule.has_value()) << '"' << text << '"';
    EXPECT_EQ(schedule.error().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(schedule.error().message(), HasSubstr(fmt::format("schedule \"{}\": ", text)));
    EXPECT_THAT(schedule.error().message(), HasSubstr("expected \"off\""));
  }
  EXPECT_THAT(ParseSchedule("every 4m").error().message(), HasSubstr("shorter than 5 minutes"));
  EXPECT_THAT(ParseSchedule("daily 24:00").error().message(), HasSubstr("no such time of day"));
}

TEST(Schedule, IntervalSlotsAreAlignedToTheEpoch) {
  Schedule every15 = Parse("every 15m");
  EXPECT_EQ(NextSlot(every15, At(kBase)), At(kBase + 450));  // 06:07:30 → 06:15:00
  EXPECT_EQ(NextSlot(every15, At(kBase + 449, 999)), At(kBase + 450));
  // Strictly after: at the slot itself, the next one.
  EXPECT_EQ(NextSlot(every15, At(kBase + 450)), At(kBase + 450 + 900));
  EXPECT_EQ(SlotBackupId(*NextSlot(every15, At(kBase))), "20261207T061500Z");

  // An interval that does not divide a day still lands on multiples of itself since 1970, so
  // nodes whose clocks read different moments of the same slot agree on it and on its id.
  Schedule every7 = Parse("every 7m");
  for (int64_t t = kBase; t < kBase + 3 * 86'400; t += 97) {
    auto slot = NextSlot(every7, At(t));
    ASSERT_TRUE(slot.has_value());
    const int64_t s =
        std::chrono::duration_cast<std::chrono::seconds>(slot->time_since_epoch()).count();
    ASSERT_EQ(s % 420, 0);
    ASSERT_GT(s, t);
    ASSERT_LE(s, t + 420);
    EXPECT_EQ(NextSlot(every7, At(s - 1)), slot);
    EXPECT_EQ(SlotBackupId(*NextSlot(every7, At(s - 200, 123))), SlotBackupId(*slot));
  }

  // every 1d is midnight UTC.
  EXPECT_EQ(SlotBackupId(*NextSlot(Parse("every 1d"), At(kBase))), "20261208T000000Z");
}

TEST(Schedule, DailySlotsAreAtTheTimeInUtc) {
  Schedule daily = Parse("daily 06:15");
  EXPECT_EQ(SlotBackupId(*NextSlot(daily, At(kBase))), "20261207T061500Z");
  EXPECT_EQ(SlotBackupId(*NextSlot(daily, At(kBase + 450))), "20261208T061500Z");
  EXPECT_EQ(SlotBackupId(*NextSlot(daily, At(kBase + 449, 500))), "20261207T061500Z");
  EXPECT_EQ(SlotBackupId(*NextSlot(daily, At(kBase + 16 * 3600))), "20261208T061500Z");
  // The end of a year, and a leap day.
  EXPECT_EQ(SlotBackupId(*NextSlot(Parse("daily 23:59"), At(1'798'761'540))),
            "20270101T235900Z");  // 2026-12-31T23:59:00Z → the next day's
  EXPECT_EQ(SlotBackupId(*NextSlot(Parse("daily 00:00"), At(1'709'164'800 - 1))),
            "20240229T000000Z");
}

TEST(Schedule, OffHasNoSlot) { EXPECT_FALSE(NextSlot(Parse("off"), At(kBase)).has_value()); }

}  // namespace
}  // namespace replboot::archive
