#include "replboot/archive/pitr.h"

#include <algorithm>
#include <chrono>

namespace replboot::archive {
namespace {

bool Digits(std::string_view text, size_t pos, size_t count, int* value) {
  if (pos + count > text.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    v = v * 10 + (text[i] - '0');
  }
  *value = v;
  return true;
}

std::string TimeOrDash(int64_t seconds) { return seconds > 0 ? FormatTime(seconds) : "-"; }

GtidPosition PositionOf(const std::string& text) {
  auto p = binlog::ParsePosition(text);
  return p ? *p : GtidPosition{};
}

struct Walk {
  std::vector<ChainSegment> steps;
  GtidPosition reach;
  int64_t reach_time = 0;
  std::optional<Gap> gap;
  bool reached = false;  // the target (kTime, kGtid) is within what the steps hold
};

// The phase a backup starts in, or npos when its history is not in the chain or it lies past
// its history's branch point.
size_t PhaseOf(const std::vector<ChainPhase>& chain, const BackupPoint& b) {
  for (size_t i = 0; i < chain.size(); ++i) {
    if (chain[i].history != b.history) continue;
    if (chain[i].cap && !binlog::PositionCovers(*chain[i].cap, b.position)) return std::string::npos;
    return i;
  }
  return std::string::npos;
}

Walk WalkFrom(const std::vector<ChainPhase>& chain, size_t phase, const BackupPoint& backup,
              const RestoreTarget& target) {
  Walk w;
  w.reach = backup.position;
  w.reach_time = backup.finished_at_ms / 1000;
  for (size_t i = phase; i < chain.size(); ++i) {
    const ChainPhase& p = chain[i];
    for (;;) {
      if (p.cap && binlog::PositionCovers(w.reach, *p.cap)) break;  // at the branch: the child goes on
      const SegmentInfo* best = nullptr;
      const SegmentInfo* after_gap = nullptr;
      for (const auto& s : p.segments) {
        const GtidPosition start = PositionOf(s.start_state);
        const GtidPosition end = PositionOf(s.end_state);
        if (binlog::PositionCovers(w.reach, end)) continue;  // behind us
        if (binlog::PositionCovers(w.reach, start)) {
          if (!best || s.end_ordinal > best->end_ordinal) best = &s;
        } else if (!after_gap || s.start_ordinal < after_gap->start_ordinal) {
          after_gap = &s;
        }
      }
      if (!best) {
        // Nothing continues the position. In an ancestor that is a gap before its branch
        // point; in the last history, a gap when a later segment exists, else the chain's end.
        if (after_gap || p.cap) {
          Gap g;
          g.history = p.history;
          g.after_state = binlog::PositionToString(w.reach);
          g.after_time = w.reach_time;
          if (after_gap) {
            g.before_state = after_gap->start_state;
            g.before_time = after_gap->first_commit_time;
            g.before_key = after_gap->key;
          }
          w.gap = g;
        }
        if (target.kind == RestoreTarget::Kind::kTime) {
          w.reached = !w.gap && target.time <= w.reach_time;
        } else if (target.kind == RestoreTarget::Kind::kGtid) {
          w.reached = binlog::PositionCovers(w.reach, target.gtid);
        }
        return w;
      }
      if (target.kind == RestoreTarget::Kind::kTime && best->first_commit_time > target.time) {
        w.reached = true;  // the cut is before this segment
        return w;
      }
      w.steps.push_back(ChainSegment{*best, p.cap});
      GtidPosition end = PositionOf(best->end_state);
      if (p.cap && binlog::PositionCovers(end, *p.cap)) end = *p.cap;
      if (target.kind == RestoreTarget::Kind::kTime && best->last_commit_time > target.time) {
        w.reached = true;  // the cut is inside this segment
        return w;
      }
      if (target.kind == RestoreTarget::Kind::kGtid && binlog::PositionCovers(end, target.gtid)) {
        w.reached = true;
        return w;
      }
      w.reach = std::move(end);
      w.reach_time = std::max(w.reach_time, best->last_commit_time);
    }
  }
  if (target.kind == RestoreTarget::Kind::kTime) w.reached = target.time <= w.reach_time;
  if (target.kind == RestoreTarget::Kind::kGtid) w.reached = binlog::PositionCovers(w.reach, target.gtid);
  return w;
}

std::vector<std::pair<size_t, BackupPoint>> Usable(const std::vector<ChainPhase>& chain,
                                                   std::vector<BackupPoint> backups) {
  std::vector<std::pair<size_t, BackupPoint>> out;
  for (auto& b : backups) {
    const size_t phase = PhaseOf(chain, b);
    if (phase != std::string::npos) out.emplace_back(phase, std::move(b));
  }
  // Oldest first: by phase (history order), then position, then finish.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    const uint64_t oa = binlog::PositionOrdinal(a.second.position), ob = binlog::PositionOrdinal(b.second.position);
    if (oa != ob) return oa < ob;
    if (a.second.finished_at_ms != b.second.finished_at_ms)
      return a.second.finished_at_ms < b.second.finished_at_ms;
    return a.second.id < b.second.id;
  });
  return out;
}

}  // namespace

std::string FormatTime(int64_t seconds) {
  using namespace std::chrono;
  const sys_seconds t{std::chrono::seconds(seconds)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                     hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

Result<RestoreTarget> ParseTimeTarget(std::string_view text) {
  auto bad = [&] {
    return Error(StatusCode::kInvalidArgument,
                 "--time \"{}\" is not an RFC 3339 time with seconds and a zone, like "
                 "2026-12-06T10:41:59Z or 2026-12-06T11:41:59+01:00",
                 text.substr(0, 64));
  };
  int y, mo, d, h, mi, s;
  if (text.size() < 20 || !Digits(text, 0, 4, &y) || text[4] != '-' || !Digits(text, 5, 2, &mo) ||
      text[7] != '-' || !Digits(text, 8, 2, &d) || text[10] != 'T' || !Digits(text, 11, 2, &h) ||
      text[13] != ':' || !Digits(text, 14, 2, &mi) || text[16] != ':' || !Digits(text, 17, 2, &s)) {
    return bad();
  }
  int offset_minutes = 0;
  const std::string_view zone = text.substr(19);
  if (zone == "Z") {
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh, om;
    if (!Digits(zone, 1, 2, &oh) || !Digits(zone, 4, 2, &om) || oh > 23 || om > 59) return bad();
    offset_minutes = (zone[0] == '+' ? 1 : -1) * (oh * 60 + om);
  } else {
    return bad();
  }
  using namespace std::chrono;
  const year_month_day ymd{year(y), month(static_cast<unsigned>(mo)),
                           day(static_cast<unsigned>(d))};
  if (y < 1970 || y > 2199 || !ymd.ok() || h > 23 || mi > 59 || s > 59) return bad();
  const auto t = sys_days(ymd) + hours(h) + minutes(mi) + seconds(s) - minutes(offset_minutes);
  RestoreTarget target;
  target.kind = RestoreTarget::Kind::kTime;
  target.time = duration_cast<seconds>(t.time_since_epoch()).count();
  if (target.time < 0) return bad();
  target.text = "time " + FormatTime(target.time);
  return target;
}

Result<RestoreTarget> ParseGtidTarget(std::string_view text) {
  auto position = binlog::ParsePosition(text);
  if (!position) return Error(position.error().WithContext("--gtid"));
  if (position->empty()) {
    return Error(StatusCode::kInvalidArgument, "--gtid names no GTID (e.g. --gtid 0-100-41)");
  }
  RestoreTarget target;
  target.kind = RestoreTarget::Kind::kGtid;
  target.gtid = *position;
  target.text = "gtid " + binlog::PositionToString(*position);
  return target;
}

Result<std::vector<ChainPhase>> BuildChain(
    const std::vector<Lineage>& lineage, const std::vector<std::vector<SegmentInfo>>& segments_of) {
  std::vector<ChainPhase> chain;
  if (segments_of.size() != lineage.size()) {
    return Error(StatusCode::kInternal, "{} segment lists for a lineage of {}", segments_of.size(),
                 lineage.size());
  }
  // Newest first in; oldest first out.
  for (size_t k = lineage.size(); k-- > 0;) {
    ChainPhase phase;
    phase.history = lineage[k].history;
    if (!lineage[k].branch_state.empty()) {
      auto state = GtidState::Parse(lineage[k].branch_state);
      if (!state) {
        return Error(StatusCode::kCorruption, "the branch point of history {} off {}: {}",
                     k > 0 ? lineage[k - 1].history : "?", lineage[k].history,
                     state.error().message());
      }
      phase.cap = state->Position();
    }
    phase.segments = segments_of[k];
    chain.push_back(std::move(phase));
  }
  return chain;
}

std::string Gap::Describe() const {
  if (before_key.empty()) {
    return fmt::format("history {} ends at {} ({}) before its branch point", history, after_state,
                       TimeOrDash(after_time));
  }
  return fmt::format("a gap in history {} after {} ({}): the next segment starts at {} ({})",
                     history, after_state.empty() ? "the start" : after_state,
                     TimeOrDash(after_time), before_state.empty() ? "the start" : before_state,
                     TimeOrDash(before_time));
}

std::string RestorableRange::Describe() const {
  return fmt::format("{} ({}, backup {}) .. {} ({})", TimeOrDash(from_time),
                     from_state.empty() ? "no GTID" : from_state, from_backup, TimeOrDash(to_time),
                     to_state.empty() ? "no GTID" : to_state);
}

std::string ChainReport::Describe() const {
  if (ranges.empty()) return "nothing is restorable: no backup in this history's chain";
  std::string out = "restorable ";
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (i > 0) out += " and ";
    out += ranges[i].Describe();
  }
  for (const auto& g : gaps) out += "; " + g.Describe();
  return out;
}

ChainReport CheckChain(const std::vector<ChainPhase>& chain, std::vector<BackupPoint> backups) {
  ChainReport report;
  for (const auto& p : chain) report.segments += p.segments.size();
  RestoreTarget latest;
  for (auto& [phase, b] : Usable(chain, std::move(backups))) {
    Walk w = WalkFrom(chain, phase, b, latest);
    RestorableRange r{b.id, binlog::PositionToString(b.position), b.finished_at_ms / 1000,
                      binlog::PositionToString(w.reach), w.reach_time};
    if (!report.ranges.empty() &&
        binlog::PositionCovers(PositionOf(report.ranges.back().to_state), b.position) &&
        binlog::PositionCovers(w.reach, PositionOf(report.ranges.back().to_state))) {
      // Within the previous range: it only extends it.
      report.ranges.back().to_state = r.to_state;
      report.ranges.back().to_time = std::max(report.ranges.back().to_time, r.to_time);
    } else {
      report.ranges.push_back(std::move(r));
    }
    if (w.gap) {
      const bool known = std::any_of(report.gaps.begin(), report.gaps.end(), [&](const Gap& g) {
        return g.after_state == w.gap->after_state && g.before_key == w.gap->before_key;
      });
      if (!known) report.gaps.push_back(*w.gap);
    }
  }
  // A gap a later backup bridged still is one (its transactions are lost for any target in
  // it); one behind the newest range's start says nothing new, but is kept: it is a hole.
  return report;
}

Result<RestorePlan> PlanRestore(const std::vector<ChainPhase>& chain,
                                std::vector<BackupPoint> backups, const RestoreTarget& target) {
  const std::string history = chain.empty() ? "?" : chain.back().history;
  const ChainReport report = CheckChain(chain, backups);
  auto usable = Usable(chain, std::move(backups));
  auto refuse = [&](std::string why) {
    return Error(StatusCode::kInvalidArgument, "{} cannot be restored in history {}: {}; {}",
                 target.text, history, why, report.Describe());
  };
  if (usable.empty()) return refuse("no backup belongs to its chain");
  // Newest first.
  std::reverse(usable.begin(), usable.end());
  const std::pair<size_t, BackupPoint>* chosen = nullptr;
  for (const auto& u : usable) {
    const BackupPoint& b = u.second;
    const bool eligible =
        target.kind == RestoreTarget::Kind::kLatest ||
        (target.kind == RestoreTarget::Kind::kTime && b.finished_at_ms / 1000 <= target.time) ||
        (target.kind == RestoreTarget::Kind::kGtid && binlog::PositionCovers(target.gtid, b.position));
    if (eligible) {
      chosen = &u;
      break;
    }
  }
  if (!chosen) return refuse("it is before the oldest backup");
  Walk w = WalkFrom(chain, chosen->first, chosen->second, target);
  if (target.kind != RestoreTarget::Kind::kLatest && !w.reached) {
    return refuse(w.gap ? "it lies past " + w.gap->Describe()
                        : fmt::format("it is past the end of the archive ({} at {})",
                                      binlog::PositionToString(w.reach), TimeOrDash(w.reach_time)));
  }
  RestorePlan plan;
  plan.backup = chosen->second;
  plan.target = target;
  plan.segments = std::move(w.steps);
  plan.reach_state = binlog::PositionToString(w.reach);
  plan.reach_time = w.reach_time;
  if (target.kind == RestoreTarget::Kind::kLatest) plan.stopped_by_gap = w.gap;
  return plan;
}

}  // namespace replboot::archive
