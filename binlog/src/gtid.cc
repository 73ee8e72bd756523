#include "replboot/binlog/gtid.h"

#include <fmt/format.h>

#include <cctype>
#include <optional>

#include "replboot/base/log.h"

namespace replboot::binlog {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Calls f(gtid) for each entry of a comma-separated GTID list.
template <typename F>
Status ForEachEntry(std::string_view text, F&& f) {
  size_t count = 0;
  text = Trim(text);
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = Trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (++count > kMaxPositionEntries) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("a GTID list of more than {} entries", kMaxPositionEntries));
    }
    auto gtid = ParseGtid(item);
    if (!gtid) return gtid.error();
    REPLBOOT_RETURN_STATUS_IF_ERROR(f(*gtid));
    if (comma != std::string_view::npos && Trim(text).empty()) {
      return Status(StatusCode::kInvalidArgument, "a GTID list ends with ','");
    }
  }
  return Status::Ok();
}

}  // namespace

std::optional<uint64_t> ParseDecimal(std::string_view text, uint64_t max) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (max - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

std::string Gtid::ToString() const { return fmt::format("{}-{}-{}", domain, server_id, sequence); }

Result<Gtid> ParseGtid(std::string_view text) {
  auto bad = [&] {
    return Error(StatusCode::kInvalidArgument,
                 "{} is not a MariaDB GTID (domain-server_id-sequence, decimal)",
                 log::Printable(text.substr(0, 64)));
  };
  const size_t first = text.find('-');
  if (first == std::string_view::npos) return bad();
  const size_t second = text.find('-', first + 1);
  if (second == std::string_view::npos || text.find('-', second + 1) != std::string_view::npos)
    return bad();
  auto domain = ParseDecimal(text.substr(0, first), UINT32_MAX);
  auto server = ParseDecimal(text.substr(first + 1, second - first - 1), UINT32_MAX);
  auto sequence = ParseDecimal(text.substr(second + 1), UINT64_MAX);
  if (!domain || !server || !sequence) return bad();
  return Gtid{static_cast<uint32_t>(*domain), static_cast<uint32_t>(*server), *sequence};
}

Result<GtidPosition> ParsePosition(std::string_view text) {
  GtidPosition position;
  Status s = ForEachEntry(text, [&](const Gtid& gtid) {
    auto [it, fresh] = position.try_emplace(gtid.domain, gtid);
    if (!fresh && gtid.sequence > it->second.sequence) it->second = gtid;
    return Status::Ok();
  });
  if (!s.ok()) return Error(s);
  return position;
}

std::string PositionToString(const GtidPosition& position) {
  std::string out;
  for (const auto& [domain, gtid] : position) {
    if (!out.empty()) out += ',';
    out += gtid.ToString();
  }
  return out;
}

uint64_t PositionOrdinal(const GtidPosition& position) {
  uint64_t sum = 0;
  for (const auto& [domain, gtid] : position) {
    // Saturates rather than wraps: 2^64 transactions are not a concern, a hostile key is.
    sum = gtid.sequence > UINT64_MAX - sum ? UINT64_MAX : sum + gtid.sequence;
  }
  return sum;
}

bool PositionCovers(const GtidPosition& a, const GtidPosition& b) {
  for (const auto& [domain, gtid] : b) {
    auto it = a.find(domain);
    if (it == a.end() || it->second.sequence < gtid.sequence) return false;
  }
  return true;
}

void Advance(GtidPosition& position, const Gtid& gtid) {
  auto [it, fresh] = position.try_emplace(gtid.domain, gtid);
  if (!fresh && gtid.sequence >= it->second.sequence) it->second = gtid;
}

Result<GtidState> GtidState::Parse(std::string_view text) {
  GtidState state;
  Status s = ForEachEntry(text, [&](const Gtid& gtid) {
    if (gtid.sequence == 0) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("GTID state entry {} has sequence number 0", gtid.ToString()));
    }
    if (!state.last_.try_emplace({gtid.domain, gtid.server_id}, gtid.sequence).second) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("GTID state names {}-{} twice", gtid.domain, gtid.server_id));
    }
    return Status::Ok();
  });
  if (!s.ok()) return Error(s);
  return state;
}

std::string GtidState::ToString() const {
  std::string out;
  for (const auto& [key, seq] : last_) {
    if (!out.empty()) out.push_back(',');
    out += fmt::format("{}-{}-{}", key.first, key.second, seq);
  }
  return out;
}

GtidPosition GtidState::Position() const {
  GtidPosition position;
  for (const auto& [key, seq] : last_) Advance(position, Gtid{key.first, key.second, seq});
  return position;
}

std::string GtidState::ConnectPosition() const { return PositionToString(Position()); }

void GtidState::Record(uint32_t domain, uint32_t server_id, uint64_t seq) {
  last_[{domain, server_id}] = seq;
}

bool GtidState::Holds(uint32_t domain, uint32_t server_id, uint64_t seq) const {
  auto it = last_.find({domain, server_id});
  return it != last_.end() && it->second >= seq;
}

}  // namespace replboot::binlog
