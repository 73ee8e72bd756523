// Where a backup lives in the store (every key relative to the store's prefix):
//
//   backups/<id>/objects/00000000     the stream's bytes, cut into sealed objects (object.h)
//   backups/<id>/objects/00000001     …
//   backups/<id>/manifest.json        written LAST: a backup exists once this does (manifest.h)
//   backups/<id>/checks.json          later records: verified, restore-tested (manifest.h)
//   claims/<id>                       who took the backup (for a scheduled slot, the node
//                                     whose PutIfAbsent won)
//   binlogs/<history>/<range>.seg     the binlog archive: sealed segments of whole transactions,
//                                     named by their GTID range, times and positions so a listing
//                                     orders and checks the chain (binlog_archive.h)
//   histories/<id>.json               a history a point-in-time restore began: parent, branch
//                                     point, backup, target, time; MACed (histories.h)
//
// A backup id is the UTC second its slot or start names, "20261207T061500Z": ids sort in time
// order, and every node computes the same id for the same scheduled slot (schedule.h).
#ifndef REPLBOOT_ARCHIVE_LAYOUT_H_
#define REPLBOOT_ARCHIVE_LAYOUT_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace replboot::archive {

inline constexpr std::string_view kBackupsPrefix = "backups/";
inline constexpr std::string_view kClaimsPrefix = "claims/";
// Object indexes are written with 8 digits, so keys sort in index order: at most 10^8 objects
// (1.5 PiB of 16 MiB objects). The manifest's limit (manifest.h) is lower still.
inline constexpr uint64_t kMaxObjectIndex = 99'999'999;

// "backups/<id>/"
std::string BackupPrefix(std::string_view backup_id);
// "backups/<id>/manifest.json"
std::string ManifestKey(std::string_view backup_id);
// "backups/<id>/objects/" and "backups/<id>/objects/<index as 8 digits>"
std::string ObjectsPrefix(std::string_view backup_id);
std::string ObjectKey(std::string_view backup_id, uint64_t index);
// "backups/<id>/checks.json"
std::string ChecksKey(std::string_view backup_id);
// "claims/<id>"
std::string ClaimKey(std::string_view backup_id);

// "YYYYMMDDTHHMMSSZ" of `when` in UTC, rounded down to the second.
std::string NewBackupId(std::chrono::system_clock::time_point when);
// Exactly the form NewBackupId makes, of a real date and time (years 1970–2199, month and day
// of the calendar, hours < 24, minutes and seconds < 60).
bool IsBackupId(std::string_view text);
// The instant an id names; nullopt when !IsBackupId(text).
std::optional<std::chrono::system_clock::time_point> BackupIdTime(std::string_view text);

// What a key under "backups/" is: the id and the rest of the key, e.g. {"2026…Z", "manifest.json"}.
// nullopt when the key is not "backups/<valid id>/<something>".
struct BackupKeyParts {
  std::string backup_id;
  std::string rest;
};
std::optional<BackupKeyParts> SplitBackupKey(std::string_view key);
// The index of "objects/<8 digits>" (the `rest` of an object key); nullopt otherwise.
std::optional<uint64_t> ObjectIndexOf(std::string_view rest);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_LAYOUT_H_
