#include "replboot/replication/gtid.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include <fmt/format.h>

#include "text.h"

namespace replboot::replication {

namespace {

using text::ParseUnsigned;
using text::Split;

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// 8-4-4-4-12 hex digits.
bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

// A MySQL 8.4 tag: a letter or '_', then up to 31 letters, digits or '_'.
bool IsTag(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

using Interval = std::pair<uint64_t, uint64_t>;

// Sorted, with overlapping and adjacent intervals merged.
void Normalize(std::vector<Interval>* intervals) {
  std::sort(intervals->begin(), intervals->end());
  std::vector<Interval> merged;
  for (const Interval& iv : *intervals) {
    if (!merged.empty() && (iv.first <= merged.back().second ||
                            iv.first - merged.back().second == 1)) {
      merged.back().second = std::max(merged.back().second, iv.second);
    } else {
      merged.push_back(iv);
    }
  }
  *intervals = std::move(merged);
}

// a \ b, both normalised.
std::vector<Interval> Subtract(const std::vector<Interval>& a, const std::vector<Interval>& b) {
  std::vector<Interval> out;
  size_t j = 0;
  for (Interval iv : a) {
    uint64_t first = iv.first;
    bool left = true;  // something of iv is still to place
    while (j < b.size() && b[j].second < first) ++j;
    for (size_t k = j; k < b.size() && b[k].first <= iv.second; ++k) {
      if (b[k].first > first) out.emplace_back(first, b[k].first - 1);
      if (b[k].second >= iv.second) {
        left = false;
        break;
      }
      first = b[k].second + 1;
    }
    if (left) out.emplace_back(first, iv.second);
  }
  return out;
}

tl::unexpected<Status> Invalid(std::string_view text, std::string_view element, std::string_view why) {
  return Error(StatusCode::kInvalidArgument, "GTID set '{}': element '{}' {}", text, element, why);
}

}  // namespace

Result<GtidSet> GtidSet::Parse(std::string_view text, Flavour flavour) {
  std::string compact;
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') compact.push_back(c);
  }
  GtidSet set(flavour);
  if (compact.empty()) return set;
  for (std::string_view element : Split(compact, ',')) {
    if (element.empty()) return Invalid(compact, element, "is empty (stray comma)");
    if (flavour == Flavour::kMariaDB) {
      auto parts = Split(element, '-');
      uint32_t domain = 0;
      uint32_t server = 0;
      uint64_t seq = 0;
      if (parts.size() != 3 || !ParseUnsigned(parts[0], &domain) ||
          !ParseUnsigned(parts[1], &server) || !ParseUnsigned(parts[2], &seq)) {
        return Invalid(compact, element, "is not domain-server-sequence (three unsigned numbers)");
      }
      std::string key = fmt::format("{}-{}", domain, server);
      if (set.sources_.contains(key))
        return Invalid(compact, element, "repeats its domain and server id");
      // "d-s-0" (a position before the first transaction) holds no GTID, but keeps its key
      // so that a repeated entry is still noticed.
      set.sources_[key];
      if (seq > 0) set.sources_[key].emplace_back(1, seq);
      continue;
    }
    auto parts = Split(element, ':');
    if (!IsUuid(parts[0])) return Invalid(compact, element, "does not start with a server uuid");
    if (parts.size() < 2) return Invalid(compact, element, "has no interval after its uuid");
    std::string source = Lower(parts[0]);
    for (size_t i = 1; i < parts.size(); ++i) {
      std::string_view part = parts[i];
      if (!part.empty() && !std::isdigit(static_cast<unsigned char>(part[0]))) {
        if (!IsTag(part)) return Invalid(compact, element, fmt::format("has a bad tag '{}'", part));
        source = Lower(parts[0]) + ":" + Lower(part);
        continue;
      }
      auto bounds = Split(part, '-');
      uint64_t first = 0;
      uint64_t last = 0;
      constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
      if (bounds.size() > 2 || !ParseUnsigned(bounds[0], &first) ||
          (bounds.size() == 2 && !ParseUnsigned(bounds[1], &last))) {
        return Invalid(compact, element, fmt::format("has a bad interval '{}'", part));
      }
      if (bounds.size() == 1) last = first;
      if (first == 0 || last > kMax || last < first) {
        return Invalid(compact, element,
                       fmt::format("has interval '{}' outside 1..2^63-1 or reversed", part));
      }
      set.sources_[source].emplace_back(first, last);
    }
  }
  for (auto it = set.sources_.begin(); it != set.sources_.end();) {
    Normalize(&it->second);
    it = it->second.empty() ? set.sources_.erase(it) : std::next(it);
  }
  return set;
}

std::string GtidSet::ToString() const {
  std::string out;
  for (const auto& [source, intervals] : sources_) {
    if (flavour_ == Flavour::kMariaDB) {
      for (const Interval& iv : intervals) {
        if (!out.empty()) out += ',';
        out += iv.first == 1 ? fmt::format("{}-{}", source, iv.second)
                             : fmt::format("{}-{}..{}", source, iv.first, iv.second);
      }
      continue;
    }
    if (!out.empty()) out += ',';
    out += source;
    for (const Interval& iv : intervals) {
      out += iv.first == iv.second ? fmt::format(":{}", iv.first)
                                   : fmt::format(":{}-{}", iv.first, iv.second);
    }
  }
  return out;
}

GtidSet GtidSet::Minus(const GtidSet& other) const {
  GtidSet out(flavour_);
  for (const auto& [source, intervals] : sources_) {
    auto theirs = other.sources_.find(source);
    std::vector<Interval> left =
        theirs == other.sources_.end() ? intervals : Subtract(intervals, theirs->second);
    if (!left.empty()) out.sources_.emplace(source, std::move(left));
  }
  return out;
}

GtidSet GtidSet::Union(const GtidSet& other) const {
  GtidSet out = *this;
  if (other.flavour_ != flavour_) return out;
  for (const auto& [source, intervals] : other.sources_) {
    if (intervals.empty()) continue;
    auto& mine = out.sources_[source];
    mine.insert(mine.end(), intervals.begin(), intervals.end());
    Normalize(&mine);
  }
  return out;
}

bool GtidSet::Contains(const GtidSet& other) const { return other.Minus(*this).empty(); }

uint64_t GtidSet::TransactionCount() const {
  uint64_t count = 0;
  for (const auto& [source, intervals] : sources_) {
    for (const Interval& iv : intervals) count += iv.second - iv.first + 1;
  }
  return count;
}

GtidRelation Relate(const GtidSet& mine, const GtidSet& theirs) {
  bool i_hold_theirs = mine.Contains(theirs);
  bool they_hold_mine = theirs.Contains(mine);
  if (i_hold_theirs && they_hold_mine) return GtidRelation::kEqual;
  if (they_hold_mine) return GtidRelation::kBehind;
  if (i_hold_theirs) return GtidRelation::kAhead;
  return GtidRelation::kDiverged;
}

std::string_view GtidRelationName(GtidRelation relation) {
  switch (relation) {
    case GtidRelation::kEqual:
      return "equal";
    case GtidRelation::kBehind:
      return "behind";
    case GtidRelation::kAhead:
      return "ahead";
    case GtidRelation::kDiverged:
      return "diverged";
  }
  return "unknown";
}

}  // namespace replboot::replication
