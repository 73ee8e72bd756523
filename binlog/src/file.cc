#include "replboot/binlog/file.h"

#include <fmt/format.h>

#include <cstring>
#include <optional>
#include <string>

#include "replboot/binlog/events.h"

namespace replboot::binlog {

Result<ParsedBinlog> ParseBinlog(std::span<const uint8_t> file, std::string_view name,
                                 bool allow_tail) {
  auto corrupt = [&](size_t offset, std::string_view what) {
    return Error(StatusCode::kCorruption, "{} at offset {}: {}", name, offset, what);
  };
  if (file.size() < sizeof kBinlogMagic ||
      std::memcmp(file.data(), kBinlogMagic, sizeof kBinlogMagic) != 0) {
    return corrupt(0, "not a binlog file (no fe 62 69 6e magic)");
  }
  ParsedBinlog out;
  std::optional<FormatDescription> fd;
  ChecksumAlg alg = ChecksumAlg::kOff;
  // The transaction being read.
  std::optional<BinlogTransaction> open;
  GtidEvent open_gtid;
  size_t pos = sizeof kBinlogMagic;
  while (pos < file.size()) {
    const size_t left = file.size() - pos;
    if (left < kHeaderSize) {
      if (!allow_tail) return corrupt(pos, "a truncated event header");
      break;
    }
    // event_size (header bytes 9..12), bounded before the event is taken.
    const uint8_t* sz = file.data() + pos + 9;
    const uint32_t size = uint32_t{sz[0]} | uint32_t{sz[1]} << 8 | uint32_t{sz[2]} << 16 |
                          uint32_t{sz[3]} << 24;
    const uint8_t type = file[pos + 4];
    if (size < kHeaderSize || size > kMaxEventSize) {
      return corrupt(pos, fmt::format("{} event claims {} bytes", EventTypeName(type), size));
    }
    if (size > left) {
      if (!allow_tail) {
        return corrupt(pos, fmt::format("{} event claims {} bytes, {} are left",
                                        EventTypeName(type), size, left));
      }
      break;
    }
    const std::span<const uint8_t> event = file.subspan(pos, size);
    if (!fd) {
      if (type != kFormatDescriptionEvent) {
        return corrupt(pos, fmt::format("the first event is {}, not Format_description",
                                        EventTypeName(type)));
      }
      // The server sets "in use" in the active file's header after computing the checksum
      // and clears it on close: the checksum is over the flag cleared.
      std::vector<uint8_t> copy(event.begin(), event.end());
      copy[17] &= static_cast<uint8_t>(~kFlagInUse);
      auto parsed = ParseFormatDescription(copy);
      if (!parsed) return corrupt(pos, parsed.error().message());
      out.server_id = uint32_t{copy[5]} | uint32_t{copy[6]} << 8 | uint32_t{copy[7]} << 16 |
                      uint32_t{copy[8]} << 24;
      out.server_version = parsed->server_version;
      fd = std::move(*parsed);
      alg = fd->checksum;
      out.checksums = alg == ChecksumAlg::kCrc32;
      pos += size;
      out.format_end = pos;
      out.complete_end = pos;
      continue;
    }
    auto header = ParseHeader(event, alg);
    if (!header) return corrupt(pos, header.error().message());
    if (Status s = VerifyChecksum(event, alg); !s.ok()) return corrupt(pos, s.message());
    const auto body = Body(event, alg);
    if (type == kStartEncryptionEvent) {
      return corrupt(pos, "an encrypted binlog (encrypt_binlog) cannot be archived");
    }
    if (type == kFormatDescriptionEvent) return corrupt(pos, "a second Format_description event");
    if (type == kGtidEvent) {
      if (open) {
        return corrupt(pos, "a GTID event inside the transaction of " + open->gtid.ToString());
      }
      auto g = ParseGtid(*header, body);
      if (!g) return corrupt(pos, g.error().message());
      open_gtid = *g;
      open = BinlogTransaction{Gtid{g->domain, g->server_id, g->seq}, g->timestamp, pos, 0};
      pos += size;
      continue;
    }
    if (!open) {
      if (type == kGtidListEvent && !out.has_gtid_list && out.transactions.empty()) {
        auto list = ParseGtidList(body);
        if (!list) return corrupt(pos, list.error().message());
        if (list->entries.size() > kMaxPositionEntries) {
          return corrupt(pos, fmt::format("a Gtid_list event of {} GTIDs (at most {})",
                                          list->entries.size(), kMaxPositionEntries));
        }
        for (const auto& e : list->entries) out.gtid_list.Record(e.domain, e.server_id, e.seq);
        out.has_gtid_list = true;
      }
      out.outside_events.push_back(type);
      pos += size;
      out.complete_end = pos;
      continue;
    }
    auto ends = EndsGroupOf(open_gtid, *header, body, *fd);
    if (!ends) return corrupt(pos, ends.error().message());
    pos += size;
    if (*ends) {
      open->length = pos - open->offset;
      out.transactions.push_back(*open);
      open.reset();
      out.complete_end = pos;
    }
  }
  if (!fd) return corrupt(pos, "no Format_description event");
  out.incomplete_tail = file.size() - out.complete_end;
  if (out.incomplete_tail > 0 && !allow_tail) {
    return corrupt(out.complete_end,
                   open ? "the transaction of " + open->gtid.ToString() + " does not end"
                        : std::string("bytes after the last event"));
  }
  return out;
}

}  // namespace replboot::binlog
