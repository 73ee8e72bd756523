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
  EXPECT_EQ(Parse("every 10s").interval, std::chrono::seconds(10));
  EXPECT_EQ(Parse("every 4m").interval, std::chrono::minutes(4));
  for (const char* text : {"off", "every 5m", "every 90m", "every 6h", "every 2d", "daily 06:15",
                           "every 20s", "every 10s", "every 61s"}) {
    EXPECT_EQ(Parse(text).ToString(), text);
  }
  EXPECT_EQ(Parse("every 120m").ToString(), "every 2h");
  EXPECT_EQ(Parse(Parse("every 120m").ToString()), Parse("every 120m"));
  EXPECT_EQ(Parse("every 120s").ToString(), "every 2m");
  EXPECT_EQ(Parse("every 7200s").ToString(), "every 2h");
}

TEST(Schedule, RefusesEverythingElseClearly) {
  for (const char* text : {"",
                           "Off",
                           "OFF",
                           "on",
                           "every",
                           "every ",
                           "every 9s",
                           "every 0s",
                           "every 010s",
                           "every 20S",
                           "every 20 s",
                           "every 20sec",
                           "every 1.5s",
                           "every 31622401s",
                           "every 0m",
                           "every 05m",
                           "every 5",
                           "every 5s",
                           "every s",
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
  EXPECT_THAT(ParseSchedule("every 9s").error().message(), HasSubstr("shorter than 10 seconds"));
  EXPECT_THAT(ParseSchedule("every 20x").error().message(), HasSubstr("not s, m, h or d"));
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

TEST(Schedule, SecondsSlotsIndexesAndAttempts) {
  Schedule every20 = Parse("every 20s");
  EXPECT_EQ(NextSlot(every20, At(kBase)), At(kBase + 10));  // 06:07:30 → 06:07:40
  EXPECT_EQ(NextSlot(every20, At(kBase + 10)), At(kBase + 30));
  EXPECT_EQ(SlotPeriod(every20), std::chrono::seconds(20));
  EXPECT_EQ(SlotIndex(every20, At(kBase + 10)), (kBase + 10) / 20);
  // Consecutive slots have consecutive indexes, whatever second of the slot the clock reads.
  EXPECT_EQ(SlotIndex(every20, At(kBase + 30)), SlotIndex(every20, At(kBase + 10)) + 1);
  EXPECT_EQ(SlotIndex(every20, At(kBase + 29, 999)), SlotIndex(every20, At(kBase + 10)));
  EXPECT_EQ(SlotIndex(Parse("daily 06:15"), At(kBase)), kBase / 86'400);
  EXPECT_EQ(SlotPeriod(Parse("daily 06:15")), std::chrono::hours(24));
  EXPECT_EQ(SlotPeriod(Parse("off")), std::chrono::seconds(0));

  // Attempts of a slot have ids of the slot's first seconds, never reaching the next slot.
  EXPECT_EQ(MaxSlotAttempts(every20), 8);
  EXPECT_EQ(MaxSlotAttempts(Parse("every 10s")), 5);
  EXPECT_EQ(MaxSlotAttempts(Parse("daily 06:15")), kMaxSlotAttempts);
  const auto slot = *NextSlot(Parse("every 10s"), At(kBase));
  EXPECT_EQ(SlotAttemptId(slot, 0), SlotBackupId(slot));
  EXPECT_EQ(SlotAttemptId(slot, 0), "20261207T060740Z");
  EXPECT_EQ(SlotAttemptId(slot, 4), "20261207T060744Z");
  EXPECT_LT(SlotAttemptId(slot, MaxSlotAttempts(Parse("every 10s")) - 1),
            SlotBackupId(*NextSlot(Parse("every 10s"), slot)));
}

TEST(Schedule, OffHasNoSlot) { EXPECT_FALSE(NextSlot(Parse("off"), At(kBase)).has_value()); }

}  // namespace
}  // namespace replboot::archive
