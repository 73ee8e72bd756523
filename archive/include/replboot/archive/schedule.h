// When backups are taken (pure): "off", "every <N>m|h|d" (at least 5 minutes), or
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
  std::chrono::seconds interval{0};     // kEvery: 5 min .. 366 days
  std::chrono::minutes time_of_day{0};  // kDaily: minutes after 00:00 UTC

  // The text ParseSchedule reads back to this schedule ("off", "every 90m", "daily 06:15").
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

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_SCHEDULE_H_
