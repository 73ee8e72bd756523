#include "replboot/archive/retention.h"

#include <fmt/format.h>

#include <algorithm>

namespace replboot::archive {

RetentionPlan PlanRetention(std::vector<RetentionItem> items, RetentionPolicy policy,
                            int64_t now_ms) {
  // Newest first; equal times by id, so the plan does not depend on the input's order.
  std::sort(items.begin(), items.end(), [](const RetentionItem& a, const RetentionItem& b) {
    if (a.finished_at_ms != b.finished_at_ms) return a.finished_at_ms > b.finished_at_ms;
    return a.id > b.id;
  });
  RetentionPlan plan;
  const bool rules_off = policy.keep_last <= 0 && policy.keep_days <= 0;
  const int64_t day_ms = 86'400'000;
  bool newer_verified = false;  // a verified backup newer than the current one was seen
  for (size_t rank = 0; rank < items.size(); ++rank) {
    const RetentionItem& item = items[rank];
    std::string why;
    if (rules_off) {
      why = "no retention rule is set: all backups are kept";
    } else if (policy.keep_last > 0 && rank < static_cast<size_t>(policy.keep_last)) {
      why = fmt::format("among the newest {}", policy.keep_last);
    } else if (policy.keep_days > 0 && now_ms - item.finished_at_ms < policy.keep_days * day_ms) {
      why = fmt::format("younger than {} days", policy.keep_days);
    } else if (item.verified && !newer_verified) {
      why = "the newest verified backup";
    } else if (!newer_verified) {
      why = "no newer verified backup exists";
    }
    if (why.empty()) {
      plan.remove.push_back(item.id);
      plan.why[item.id] = "outside the retention rules, and a newer verified backup exists";
    } else {
      plan.keep.push_back(item.id);
      plan.why[item.id] = std::move(why);
    }
    newer_verified = newer_verified || item.verified;
  }
  return plan;
}

}  // namespace replboot::archive
