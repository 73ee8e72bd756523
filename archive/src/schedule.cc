#include "replboot/archive/schedule.h"

#include <algorithm>

#include "replboot/archive/layout.h"

namespace replboot::archive {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

// Seconds exist for tests and small clusters that want a backup every few seconds of
// replication; below 10 s a backup of even an empty server (the tool's start, the upload, the
// read-back) would overrun its own slot, and the nodes' turns would not fit in it.
constexpr seconds kMinInterval{10};
constexpr seconds kMaxInterval{366 * 86'400};

tl::unexpected<Status> Bad(std::string_view text, std::string_view why) {
  return Error(StatusCode::kInvalidArgument,
               "schedule \"{}\": {}; expected \"off\", \"every <N>m\", \"every <N>h\", "
               "\"every <N>d\", \"every <N>s\" (at least 10s) or \"daily HH:MM\" (UTC)",
               text, why);
}

// A decimal number without sign or leading zeros, at most 9 digits.
std::optional<int64_t> Number(std::string_view text) {
  if (text.empty() || text.size() > 9 || (text[0] == '0')) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

std::string Schedule::ToString() const {
  switch (kind) {
    case Kind::kOff:
      return "off";
    case Kind::kEvery: {
      int64_t s = interval.count();
      if (s % 86'400 == 0) return fmt::format("every {}d", s / 86'400);
      if (s % 3'600 == 0) return fmt::format("every {}h", s / 3'600);
      if (s % 60 == 0) return fmt::format("every {}m", s / 60);
      return fmt::format("every {}s", s);
    }
    case Kind::kDaily:
      return fmt::format("daily {:02d}:{:02d}", time_of_day.count() / 60, time_of_day.count() % 60);
  }
  return "off";
}

Result<Schedule> ParseSchedule(std::string_view text) {
  Schedule schedule;
  if (text == "off") return schedule;
  constexpr std::string_view kEvery = "every ", kDaily = "daily ";
  if (text.starts_with(kEvery)) {
    std::string_view rest = text.substr(kEvery.size());
    if (rest.empty()) return Bad(text, "no interval");
    const char unit = rest.back();
    int64_t unit_seconds = unit == 's'   ? 1
                           : unit == 'm' ? 60
                           : unit == 'h' ? 3'600
                           : unit == 'd' ? 86'400
                                         : 0;
    if (unit_seconds == 0) return Bad(text, "the interval's unit is not s, m, h or d");
    auto n = Number(rest.substr(0, rest.size() - 1));
    if (!n) return Bad(text, "the interval is not a positive whole number");
    seconds interval{*n * unit_seconds};
    if (interval < kMinInterval) return Bad(text, "the interval is shorter than 10 seconds");
    if (interval > kMaxInterval) return Bad(text, "the interval is longer than 366 days");
    schedule.kind = Schedule::Kind::kEvery;
    schedule.interval = interval;
    return schedule;
  }
  if (text.starts_with(kDaily)) {
    std::string_view hhmm = text.substr(kDaily.size());
    auto digit = [&](size_t i) { return hhmm[i] >= '0' && hhmm[i] <= '9'; };
    if (hhmm.size() != 5 || hhmm[2] != ':' || !digit(0) || !digit(1) || !digit(3) || !digit(4)) {
      return Bad(text, "the time is not HH:MM");
    }
    int hours = (hhmm[0] - '0') * 10 + (hhmm[1] - '0');
    int minutes = (hhmm[3] - '0') * 10 + (hhmm[4] - '0');
    if (hours > 23 || minutes > 59) return Bad(text, "no such time of day");
    schedule.kind = Schedule::Kind::kDaily;
    schedule.time_of_day = std::chrono::minutes(hours * 60 + minutes);
    return schedule;
  }
  return Bad(text, "unknown form");
}

std::optional<system_clock::time_point> NextSlot(const Schedule& schedule,
                                                 system_clock::time_point after) {
  // Whole seconds at or before `after`: the next slot is then strictly after `after`.
  const int64_t now = std::chrono::floor<seconds>(after).time_since_epoch().count();
  int64_t period = 0, offset = 0;
  switch (schedule.kind) {
    case Schedule::Kind::kOff:
      return std::nullopt;
    case Schedule::Kind::kEvery:
      period = schedule.interval.count();
      break;
    case Schedule::Kind::kDaily:
      period = 86'400;
      offset = std::chrono::duration_cast<seconds>(schedule.time_of_day).count();
      break;
  }
  if (period <= 0) return std::nullopt;
  const int64_t next = (FloorDiv(now - offset, period) + 1) * period + offset;
  return system_clock::time_point(seconds(next));
}

std::string SlotBackupId(system_clock::time_point slot) { return NewBackupId(slot); }

seconds SlotPeriod(const Schedule& schedule) {
  switch (schedule.kind) {
    case Schedule::Kind::kOff:
      return seconds(0);
    case Schedule::Kind::kEvery:
      return schedule.interval;
    case Schedule::Kind::kDaily:
      return seconds(86'400);
  }
  return seconds(0);
}

int64_t SlotIndex(const Schedule& schedule, system_clock::time_point slot) {
  const int64_t period = SlotPeriod(schedule).count();
  if (period <= 0) return 0;
  return FloorDiv(std::chrono::floor<seconds>(slot).time_since_epoch().count(), period);
}

int MaxSlotAttempts(const Schedule& schedule) {
  const int64_t period = SlotPeriod(schedule).count();
  return static_cast<int>(std::clamp<int64_t>(period / 2, 1, kMaxSlotAttempts));
}

std::string SlotAttemptId(system_clock::time_point slot, int attempt) {
  return NewBackupId(std::chrono::floor<seconds>(slot) + seconds(attempt));
}

}  // namespace replboot::archive
