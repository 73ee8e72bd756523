// Which backups to keep (pure: the caller lists them, decides, and deletes).
//
// A backup is kept when either rule that is on keeps it: among the newest `keep_last`, or
// younger than `keep_days`. Both rules off keeps everything. Two guards override the rules:
//   - the newest verified backup is never removed, whatever the settings;
//   - a backup is removed only when a NEWER verified backup exists, so a run of failed or
//     unverified backups never costs the last good one (nor anything older than it that the
//     rules would otherwise drop before a good one replaced it).
// Unverified backups (incomplete ones are never verified) never count as the newest verified.
#ifndef REPLBOOT_ARCHIVE_RETENTION_H_
#define REPLBOOT_ARCHIVE_RETENTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace replboot::archive {

struct RetentionPolicy {
  int keep_last = 0;  // 0 = rule off
  int keep_days = 0;  // 0 = rule off
};

struct RetentionItem {
  std::string id;
  int64_t finished_at_ms = 0;
  bool verified = false;  // complete, and its last verification passed
};

struct RetentionPlan {
  std::vector<std::string> keep, remove;   // newest first
  std::map<std::string, std::string> why;  // every id: the reason it is kept or removed
};

RetentionPlan PlanRetention(std::vector<RetentionItem> items, RetentionPolicy policy,
                            int64_t now_ms);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_RETENTION_H_
