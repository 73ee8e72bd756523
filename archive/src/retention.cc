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

SegmentRetentionPlan PlanSegmentRetention(
    const std::vector<HistoryRecord>& histories, const std::string& root,
    const std::map<std::string, std::vector<SegmentInfo>>& segments,
    const std::vector<BackupPoint>& kept) {
  SegmentRetentionPlan plan;
  if (kept.empty()) {
    for (const auto& [history, list] : segments)
      plan.why[history] = "no backup is kept: every segment stays";
    return plan;
  }
  for (const auto& [history, list] : segments) {
    auto lineage = LineageOf(histories, root, history);
    if (!lineage) {
      plan.why[history] = "its ancestry is unknown (" + lineage.error().message() + "): kept";
      continue;
    }
    // From H up: (*lineage)[k].branch_state is where (*lineage)[k-1] left (*lineage)[k].
    bool from_ancestor = false;
    for (size_t k = 1; k < lineage->size() && !from_ancestor; ++k) {
      // The lowest branch point between ancestor k and H: a backup must lie before each.
      std::vector<GtidPosition> caps;
      for (size_t j = 1; j <= k; ++j) {
        auto state = GtidState::Parse((*lineage)[j].branch_state);
        if (state) caps.push_back(state->Position());
      }
      for (const auto& b : kept) {
        if (b.history != (*lineage)[k].history) continue;
        // Only the cap of ancestor k itself matters for where b lies; deeper ones are the
        // positions the walk passes on its way to H.
        if (!caps.empty() && binlog::PositionCovers(caps.back(), b.position)) from_ancestor = true;
      }
    }
    if (from_ancestor) {
      plan.why[history] = "a kept backup of an ancestor reaches it from its start: all kept";
      continue;
    }
    const BackupPoint* oldest = nullptr;
    for (const auto& b : kept) {
      if (b.history != history) continue;
      if (!oldest || binlog::PositionOrdinal(b.position) < binlog::PositionOrdinal(oldest->position)) oldest = &b;
    }
    if (!oldest) {
      for (const auto& s : list) plan.remove.push_back(s);
      plan.why[history] = "no kept backup reaches it: all removed";
      continue;
    }
    size_t removed = 0;
    for (const auto& s : list) {
      auto end = binlog::ParsePosition(s.end_state);
      if (end && binlog::PositionCovers(oldest->position, *end)) {
        plan.remove.push_back(s);
        ++removed;
      }
    }
    plan.why[history] = fmt::format("the oldest kept backup {} holds {} ({} segments end at or "
                                    "before it)",
                                    oldest->id, oldest->gtid_position, removed);
  }
  return plan;
}

}  // namespace replboot::archive
