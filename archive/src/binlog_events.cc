#include "replboot/archive/binlog_events.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cstring>
#include <optional>

namespace replboot::archive {
namespace {

// A decimal number of at most `max`: digits only, no leading zero unless it is "0".
std::optional<uint64_t> StrictNumber(std::string_view text, uint64_t max) {
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

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 64)) out.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
  if (text.size() > 64) out += "…";
  return out;
}

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

uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint64_t Le64(const uint8_t* p) { return uint64_t{Le32(p)} | uint64_t{Le32(p + 4)} << 32; }

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = MakeCrcTable();

// GTID event flags (MariaDB log_event.h, Gtid_log_event).
constexpr uint8_t kGtidStandalone = 1;
constexpr uint8_t kGtidPreparedXa = 64;

// Format_description payload: binlog version (2), server version (50), create time (4),
// header length (1), then one post-header length per event type; its last 5 bytes are the
// checksum algorithm (1) and the checksum (4).
constexpr size_t kFdeHeaderLengthOffset = 2 + 50 + 4;
constexpr size_t kFdePostHeadersOffset = kFdeHeaderLengthOffset + 1;
constexpr uint8_t kChecksumCrc32 = 1;

}  // namespace

std::string Gtid::ToString() const { return fmt::format("{}-{}-{}", domain, server_id, sequence); }

Result<Gtid> ParseGtid(std::string_view text) {
  auto bad = [&] {
    return Error(StatusCode::kInvalidArgument,
                 "\"{}\" is not a MariaDB GTID (domain-server_id-sequence, decimal)",
                 Printable(text));
  };
  const size_t first = text.find('-');
  if (first == std::string_view::npos) return bad();
  const size_t second = text.find('-', first + 1);
  if (second == std::string_view::npos || text.find('-', second + 1) != std::string_view::npos)
    return bad();
  auto domain = StrictNumber(text.substr(0, first), UINT32_MAX);
  auto server = StrictNumber(text.substr(first + 1, second - first - 1), UINT32_MAX);
  auto sequence = StrictNumber(text.substr(second + 1), UINT64_MAX);
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

Result<GtidState> ParseState(std::string_view text) {
  GtidState state;
  Status s = ForEachEntry(text, [&](const Gtid& gtid) {
    auto [it, fresh] = state.try_emplace({gtid.domain, gtid.server_id}, gtid.sequence);
    if (!fresh) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("domain {} server {} twice in a GTID state", gtid.domain,
                                gtid.server_id));
    }
    return Status::Ok();
  });
  if (!s.ok()) return Error(s);
  return state;
}

std::string StateToString(const GtidState& state) {
  std::string out;
  for (const auto& [ds, sequence] : state) {
    if (!out.empty()) out += ',';
    out += fmt::format("{}-{}-{}", ds.first, ds.second, sequence);
  }
  return out;
}

GtidPosition StatePosition(const GtidState& state) {
  GtidPosition position;
  for (const auto& [ds, sequence] : state) Advance(position, Gtid{ds.first, ds.second, sequence});
  return position;
}

void Advance(GtidState& state, const Gtid& gtid) {
  state[{gtid.domain, gtid.server_id}] = gtid.sequence;
}

uint32_t BinlogCrc32(std::span<const uint8_t> bytes) {
  uint32_t c = 0xffffffffu;
  for (uint8_t b : bytes) c = kCrcTable[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

Result<ParsedBinlog> ParseBinlog(std::span<const uint8_t> file, std::string_view name,
                                 bool allow_tail) {
  auto corrupt = [&](size_t offset, std::string what) {
    return Error(StatusCode::kCorruption, "{} at offset {}: {}", name, offset, what);
  };
  if (file.size() < sizeof kBinlogMagic ||
      std::memcmp(file.data(), kBinlogMagic, sizeof kBinlogMagic) != 0) {
    return corrupt(0, "not a binlog file (no fe 62 69 6e magic)");
  }
  ParsedBinlog out;
  size_t pos = sizeof kBinlogMagic;
  bool have_format = false;
  std::vector<uint8_t> post_headers;
  // The transaction being read: where it started, its GTID, what ends it.
  std::optional<BinlogTransaction> open;
  bool standalone = false, prepared_xa = false;
  while (pos < file.size()) {
    if (file.size() - pos < kBinlogEventHeaderBytes) {
      if (!allow_tail) return corrupt(pos, "a truncated event header");
      break;
    }
    const uint8_t* h = file.data() + pos;
    const uint32_t size = Le32(h + 9);
    const uint8_t type = h[4];
    if (size < kBinlogEventHeaderBytes || size > kMaxBinlogEventBytes) {
      return corrupt(pos, fmt::format("event of type {} claims {} bytes", type, size));
    }
    if (size > file.size() - pos) {
      if (!allow_tail) {
        return corrupt(pos, fmt::format("event of type {} claims {} bytes, {} are left", type,
                                        size, file.size() - pos));
      }
      break;
    }
    const std::span<const uint8_t> event = file.subspan(pos, size);
    if (!have_format) {
      if (type != kFormatDescriptionEvent) {
        return corrupt(pos, fmt::format("the first event is of type {}, not Format_description",
                                        type));
      }
      if (size < kBinlogEventHeaderBytes + kFdePostHeadersOffset + 5) {
        return corrupt(pos, "a Format_description event too short to read");
      }
      const uint8_t header_length = event[kBinlogEventHeaderBytes + kFdeHeaderLengthOffset];
      if (header_length != kBinlogEventHeaderBytes) {
        return corrupt(pos, fmt::format("event headers of {} bytes (19 expected)", header_length));
      }
      const uint8_t alg = event[size - 5];
      if (alg != 0 && alg != kChecksumCrc32) {
        return corrupt(pos, fmt::format("unknown checksum algorithm {}", alg));
      }
      out.checksums = alg == kChecksumCrc32;
      post_headers.assign(event.begin() + kBinlogEventHeaderBytes + kFdePostHeadersOffset,
                          event.end() - 5);
      have_format = true;
    }
    if (out.checksums) {
      const uint32_t want = Le32(event.data() + size - 4);
      uint32_t got = 0;
      if (size >= kBinlogEventHeaderBytes + 4) {
        if (type == kFormatDescriptionEvent && (h[kBinlogFlagsOffset] & kBinlogInUseFlag) != 0) {
          // The server sets "in use" in the active file's header after the checksum, and
          // clears it on close: the checksum is over the flag cleared.
          std::vector<uint8_t> copy(event.begin(), event.end() - 4);
          copy[kBinlogFlagsOffset] &= static_cast<uint8_t>(~kBinlogInUseFlag);
          got = BinlogCrc32(copy);
        } else {
          got = BinlogCrc32(event.first(size - 4));
        }
      }
      if (size < kBinlogEventHeaderBytes + 4 || got != want) {
        return corrupt(pos, fmt::format("event of type {} fails its CRC32", type));
      }
    }
    const size_t payload_end = size - (out.checksums ? 4 : 0);
    if (pos == sizeof kBinlogMagic) {
      out.format_end = pos + size;
      pos += size;
      continue;
    }
    if (type == kStartEncryptionEvent) {
      return corrupt(pos, "an encrypted binlog (encrypt_binlog) cannot be archived");
    }
    if (type == kFormatDescriptionEvent) return corrupt(pos, "a second Format_description event");
    if (type == kGtidEvent) {
      if (open) return corrupt(pos, "a GTID event inside the transaction of " + open->gtid.ToString());
      if (payload_end < kBinlogEventHeaderBytes + 13) return corrupt(pos, "a GTID event too short");
      const uint8_t* p = event.data() + kBinlogEventHeaderBytes;
      const uint8_t flags = p[12];
      open = BinlogTransaction{Gtid{Le32(p + 8), Le32(h + 5), Le64(p)}, Le32(h), pos, 0};
      if (open->gtid.sequence == 0) return corrupt(pos, "a GTID event with sequence number 0");
      standalone = (flags & kGtidStandalone) != 0;
      prepared_xa = (flags & kGtidPreparedXa) != 0;
      pos += size;
      continue;
    }
    if (!open) {
      if (type == kGtidListEvent && !out.has_gtid_list && out.transactions.empty()) {
        // count u32 (the low 28 bits; the high 4 are flags), then count × (domain u32,
        // server_id u32, sequence u64).
        const size_t body = payload_end - kBinlogEventHeaderBytes;
        const uint8_t* p = event.data() + kBinlogEventHeaderBytes;
        if (body < 4) return corrupt(pos, "a Gtid_list event too short");
        const uint32_t count = Le32(p) & 0x0fffffffu;
        if (count > kMaxPositionEntries || body < 4 + size_t{count} * 16) {
          return corrupt(pos, fmt::format("a Gtid_list event of {} GTIDs in {} bytes", count, body));
        }
        for (uint32_t i = 0; i < count; ++i) {
          const uint8_t* g = p + 4 + size_t{i} * 16;
          Advance(out.gtid_list, Gtid{Le32(g), Le32(g + 4), Le64(g + 8)});
        }
        out.has_gtid_list = true;
      }
      out.outside_events.push_back(type);
      pos += size;
      out.complete_end = pos;
      continue;
    }
    bool ends = false;
    if (standalone) {
      ends = type != kAnnotateRowsEvent;
    } else if (type == kXidEvent) {
      ends = true;
    } else if (type == kXaPrepareEvent) {
      ends = prepared_xa;
    } else if (type == kQueryEvent) {
      const size_t post =
          size_t{type} - 1 < post_headers.size() ? post_headers[size_t{type} - 1] : 13;
      if (post < 13 || payload_end < kBinlogEventHeaderBytes + post) {
        return corrupt(pos, "a Query event too short");
      }
      const uint8_t* p = event.data() + kBinlogEventHeaderBytes;
      const size_t db_len = p[8];
      const size_t status_len = Le16(p + 11);
      const size_t text_at = kBinlogEventHeaderBytes + post + status_len + db_len + 1;
      if (text_at > payload_end) return corrupt(pos, "a Query event's lengths exceed it");
      std::string_view query(reinterpret_cast<const char*>(event.data() + text_at),
                             payload_end - text_at);
      ends = query == "COMMIT" || query == "ROLLBACK" || query.starts_with("XA COMMIT") ||
             query.starts_with("XA ROLLBACK");
    }
    pos += size;
    if (ends) {
      open->length = pos - open->offset;
      out.transactions.push_back(*open);
      open.reset();
      out.complete_end = pos;
    }
  }
  if (!have_format) return corrupt(pos, "no Format_description event");
  if (out.complete_end < out.format_end) out.complete_end = out.format_end;
  out.incomplete_tail = file.size() - out.complete_end;
  if (out.incomplete_tail > 0 && !allow_tail) {
    return corrupt(out.complete_end,
                   open ? "the transaction of " + open->gtid.ToString() + " does not end"
                        : std::string("bytes after the last event"));
  }
  return out;
}

}  // namespace replboot::archive
