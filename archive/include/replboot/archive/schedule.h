// When backups are taken (pure): "off", "every <N>s|m|h|d" (at least 10 seconds), or
// "daily HH:MM" (UTC). Slots are computed from the clock alone — intervals aligned to the Unix
// epoch, daily times in UTC — so every node of a cluster computes the same slots, and from a
// slot the same backup id (SlotBackupId): whichever node claims it, there is one backup per slot.
#ifndef REPLBOOT_ARCHIVE_SCHEDULE_H_
#define REPLBOOT_ARCHIVE_SCHEDULE_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "replboot/base/status.h"

namespace replboot::archive {

struct Schedule {
  enum class Kind { kOff, kEvery, kDaily };
  Kind kind = Kind::kOff;
  std::chrono::seconds interval{0};     // kEvery: 10 s .. 366 days
  std::chrono::minutes time_of_day{0};  // kDaily: minutes after 00:00 UTC

  // The text ParseSchedule reads back to this schedule ("off", "every 90m", "every 20s",
  // "daily 06:15").
  std::string ToString() const;
  bool operator==(const Schedule&) const = default;
};

// Strict: exactly one of the forms above, lowercase, one space, no leading zeros in N, two
// digits each in HH:MM. kInvalidArgument naming the text and the accepted forms.
Result<Schedule> ParseSchedule(std::string_view text);

// The first slot strictly after `after`, whole seconds; nullopt for "off".
std::optional<std::chrono::system_clock::time_point> NextSlot(
    const Schedule& schedule, std::chrono::system_clock::time_point after);

// The id of the backup of `slot`: NewBackupId(slot).
std::string SlotBackupId(std::chrono::system_clock::time_point slot);

// The time between two slots: the interval, or a day; 0 for "off".
std::chrono::seconds SlotPeriod(const Schedule& schedule);
// The slot's number: whole periods since the epoch (the same on every node; the scheduler's
// turns go round by it). 0 for "off".
int64_t SlotIndex(const Schedule& schedule, std::chrono::system_clock::time_point slot);

// A slot whose attempt failed (the store down, the taker killed) is tried again within the
// slot under a new id, so that a half-written attempt never has to be overwritten: attempt k
// (0 = SlotBackupId) is the id of the slot's second k. At most min(kMaxSlotAttempts,
// period / 2) attempts, so an attempt's id never reaches the next slot's.
inline constexpr int kMaxSlotAttempts = 8;
int MaxSlotAttempts(const Schedule& schedule);
std::string SlotAttemptId(std::chrono::system_clock::time_point slot, int attempt);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_SCHEDULE_H_
