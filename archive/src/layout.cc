#include "replboot/archive/layout.h"

#include <fmt/format.h>

namespace replboot::archive {
namespace {

using std::chrono::days;
using std::chrono::floor;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::system_clock;

bool Digits(std::string_view text, size_t pos, size_t count, int* value) {
  int v = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    v = v * 10 + (text[i] - '0');
  }
  *value = v;
  return true;
}

// system_clock counts nanoseconds in 64 bits, up to 2262: ids stop well before.
constexpr int kLastYear = 2199;

}  // namespace

std::string BackupPrefix(std::string_view backup_id) {
  return fmt::format("{}{}/", kBackupsPrefix, backup_id);
}
std::string ManifestKey(std::string_view backup_id) {
  return BackupPrefix(backup_id) + "manifest.json";
}
std::string ObjectsPrefix(std::string_view backup_id) {
  return BackupPrefix(backup_id) + "objects/";
}
std::string ObjectKey(std::string_view backup_id, uint64_t index) {
  return fmt::format("{}{:08d}", ObjectsPrefix(backup_id), index);
}
std::string ChecksKey(std::string_view backup_id) {
  return BackupPrefix(backup_id) + "checks.json";
}
std::string ClaimKey(std::string_view backup_id) {
  return fmt::format("{}{}", kClaimsPrefix, backup_id);
}

std::string NewBackupId(system_clock::time_point when) {
  auto secs = floor<seconds>(when);
  auto day = floor<days>(secs);
  std::chrono::year_month_day ymd{day};
  std::chrono::hh_mm_ss hms{secs - day};
  return fmt::format("{:04d}{:02d}{:02d}T{:02d}{:02d}{:02d}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

std::optional<system_clock::time_point> BackupIdTime(std::string_view text) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') return std::nullopt;
  int year, month, day, hour, minute, second;
  if (!Digits(text, 0, 4, &year) || !Digits(text, 4, 2, &month) || !Digits(text, 6, 2, &day) ||
      !Digits(text, 9, 2, &hour) || !Digits(text, 11, 2, &minute) ||
      !Digits(text, 13, 2, &second)) {
    return std::nullopt;
  }
  std::chrono::year_month_day ymd{std::chrono::year(year), std::chrono::month(month),
                                  std::chrono::day(day)};
  if (year < 1970 || year > kLastYear || !ymd.ok() || hour > 23 || minute > 59 || second > 59)
    return std::nullopt;
  return sys_days(ymd) + std::chrono::hours(hour) + std::chrono::minutes(minute) + seconds(second);
}

bool IsBackupId(std::string_view text) { return BackupIdTime(text).has_value(); }

std::optional<BackupKeyParts> SplitBackupKey(std::string_view key) {
  if (!key.starts_with(kBackupsPrefix)) return std::nullopt;
  key.remove_prefix(kBackupsPrefix.size());
  size_t slash = key.find('/');
  if (slash == std::string_view::npos || slash + 1 == key.size()) return std::nullopt;
  std::string_view id = key.substr(0, slash);
  if (!IsBackupId(id)) return std::nullopt;
  return BackupKeyParts{std::string(id), std::string(key.substr(slash + 1))};
}

std::optional<uint64_t> ObjectIndexOf(std::string_view rest) {
  constexpr std::string_view kObjects = "objects/";
  if (!rest.starts_with(kObjects) || rest.size() != kObjects.size() + 8) return std::nullopt;
  uint64_t index = 0;
  for (char c : rest.substr(kObjects.size())) {
    if (c < '0' || c > '9') return std::nullopt;
    index = index * 10 + static_cast<uint64_t>(c - '0');
  }
  return index;
}

}  // namespace replboot::archive
