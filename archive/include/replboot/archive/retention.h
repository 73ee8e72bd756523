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

#include "replboot/archive/binlog_archive.h"
#include "replboot/archive/histories.h"
#include "replboot/archive/pitr.h"

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

// Which binlog segments to keep once the backups to keep are known: every segment a kept
// backup needs to reach any point after it, and nothing older. Per history H:
//   - a kept backup in an ancestor of H, at or before the point where the path to H leaves
//     that ancestor, walks into H from H's start: all of H is kept;
//   - else the kept backups in H itself: what ends at or before the oldest of them goes
//     (a backup holds it), the rest is kept;
//   - else no kept backup can reach H: all of H goes (its branch's backups are gone).
// With no kept backup at all nothing goes (a store being set up, or a listing gone wrong).
struct SegmentRetentionPlan {
  std::vector<SegmentInfo> remove;
  std::map<std::string, std::string> why;  // per history: the rule that applied
};
SegmentRetentionPlan PlanSegmentRetention(
    const std::vector<HistoryRecord>& histories, const std::string& root,
    const std::map<std::string, std::vector<SegmentInfo>>& segments,
    const std::vector<BackupPoint>& kept);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_RETENTION_H_
