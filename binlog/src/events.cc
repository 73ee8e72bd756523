#include "replboot/binlog/events.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>

namespace replboot::binlog {

namespace {

uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t U32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t U64(const uint8_t* p) {
  return static_cast<uint64_t>(U32(p)) | (static_cast<uint64_t>(U32(p + 4)) << 32);
}

uint32_t Crc(std::span<const uint8_t> bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes a uInt length: an event is at most 1 GiB, which fits.
  crc = crc32(crc, bytes.data(), static_cast<uInt>(bytes.size()));
  return static_cast<uint32_t>(crc);
}

// FD body offsets (after the 19-byte header).
constexpr size_t kFdServerVersionLen = 50;
constexpr size_t kFdFixed = 2 + kFdServerVersionLen + 4 + 1;  // version, server, created, hlen
constexpr size_t kGtidBodyMin = 8 + 4 + 1;
constexpr size_t kQueryPostHeaderMin = 4 + 4 + 1 + 2 + 2;
constexpr size_t kRotatePostHeader = 8;
// A file name in a Rotate event: FN_REFLEN on the server.
constexpr size_t kMaxFileName = 512;

}  // namespace

std::string EventTypeName(uint8_t type) {
  switch (type) {
    case kQueryEvent: return "Query";
    case kStopEvent: return "Stop";
    case kRotateEvent: return "Rotate";
    case kIntvarEvent: return "Intvar";
    case kRandEvent: return "Rand";
    case kUserVarEvent: return "User_var";
    case kFormatDescriptionEvent: return "Format_description";
    case kXidEvent: return "Xid";
    case kTableMapEvent: return "Table_map";
    case kHeartbeatEvent: return "Heartbeat";
    case kAnnotateRowsEvent: return "Annotate_rows";
    case kBinlogCheckpointEvent: return "Binlog_checkpoint";
    case kGtidEvent: return "Gtid";
    case kGtidListEvent: return "Gtid_list";
    case kStartEncryptionEvent: return "Start_encryption";
    case kQueryCompressedEvent: return "Query_compressed";
    case kXaPrepareEvent: return "XA_prepare";
    default: return fmt::format("type {}", type);
  }
}

Result<EventHeader> ParseHeader(std::span<const uint8_t> event, ChecksumAlg alg) {
  if (event.size() < kHeaderSize) {
    return Error(StatusCode::kCorruption, "event of {} bytes is shorter than its {}-byte header",
                 event.size(), kHeaderSize);
  }
  EventHeader h;
  const uint8_t* p = event.data();
  h.timestamp = U32(p);
  h.type = p[4];
  h.server_id = U32(p + 5);
  h.size = U32(p + 9);
  h.log_pos = U32(p + 13);
  h.flags = U16(p + 17);
  if (h.size > kMaxEventSize) {
    return Error(StatusCode::kCorruption, "{} event says it has {} bytes, over the {} maximum",
                 EventTypeName(h.type), h.size, kMaxEventSize);
  }
  if (h.size != event.size()) {
    return Error(StatusCode::kCorruption, "{} event says it has {} bytes but {} arrived",
                 EventTypeName(h.type), h.size, event.size());
  }
  const size_t min = kHeaderSize + (alg == ChecksumAlg::kCrc32 ? kChecksumSize : 0);
  if (h.size < min) {
    return Error(StatusCode::kCorruption, "{} event of {} bytes has no room for its checksum",
                 EventTypeName(h.type), h.size);
  }
  return h;
}

Status VerifyChecksum(std::span<const uint8_t> event, ChecksumAlg alg) {
  if (alg != ChecksumAlg::kCrc32) return Status::Ok();
  if (event.size() < kHeaderSize + kChecksumSize) {
    return Status(StatusCode::kCorruption,
                  fmt::format("event of {} bytes has no room for its checksum", event.size()));
  }
  const size_t n = event.size() - kChecksumSize;
  const uint32_t want = U32(event.data() + n);
  const uint32_t got = Crc(event.first(n));
  if (want != got) {
    return Status(StatusCode::kCorruption,
                  fmt::format("{} event has a wrong CRC-32 (carries {:08x}, its bytes give {:08x})",
                              EventTypeName(event[4]), want, got));
  }
  return Status::Ok();
}

std::span<const uint8_t> Body(std::span<const uint8_t> event, ChecksumAlg alg) {
  const size_t tail = alg == ChecksumAlg::kCrc32 ? kChecksumSize : 0;
  if (event.size() < kHeaderSize + tail) return {};
  return event.subspan(kHeaderSize, event.size() - kHeaderSize - tail);
}

void Reseal(std::span<uint8_t> event, ChecksumAlg alg) {
  if (alg != ChecksumAlg::kCrc32 || event.size() < kHeaderSize + kChecksumSize) return;
  const size_t n = event.size() - kChecksumSize;
  const uint32_t crc = Crc(event.first(n));
  for (int i = 0; i < 4; ++i) event[n + i] = static_cast<uint8_t>(crc >> (8 * i));
}

uint8_t FormatDescription::PostHeaderLength(uint8_t type) const {
  if (type == 0 || type > post_header_lengths.size()) return 0;
  return post_header_lengths[type - 1];
}

Result<FormatDescription> ParseFormatDescription(std::span<const uint8_t> event) {
  // The FD always carries the algorithm byte and 4 checksum bytes, whatever the algorithm.
  auto header = ParseHeader(event, ChecksumAlg::kCrc32);
  if (!header) return Error(header.error());
  if (header->type != kFormatDescriptionEvent) {
    return Error(StatusCode::kCorruption, "expected a Format_description event, got {}",
                 EventTypeName(header->type));
  }
  const size_t body = event.size() - kHeaderSize;
  if (body < kFdFixed + 1 + kChecksumSize) {
    return Error(StatusCode::kCorruption,
                 "Format_description event of {} bytes is too short for its fixed fields",
                 event.size());
  }
  const uint8_t* p = event.data() + kHeaderSize;
  FormatDescription fd;
  fd.binlog_version = U16(p);
  if (fd.binlog_version != 4) {
    return Error(StatusCode::kCorruption,
                 "Format_description event says binlog version {}; only 4 is read",
                 fd.binlog_version);
  }
  const char* sv = reinterpret_cast<const char*>(p + 2);
  fd.server_version.assign(sv, strnlen(sv, kFdServerVersionLen));
  for (char c : fd.server_version) {
    if (!std::isprint(static_cast<unsigned char>(c))) {
      return Error(StatusCode::kCorruption,
                   "Format_description event's server version has a non-printable byte");
    }
  }
  fd.created = U32(p + 2 + kFdServerVersionLen);
  const uint8_t header_length = p[2 + kFdServerVersionLen + 4];
  if (header_length != kHeaderSize) {
    return Error(StatusCode::kCorruption,
                 "Format_description event says events have a {}-byte header; only {} is read",
                 header_length, kHeaderSize);
  }
  const size_t n_types = body - kFdFixed - 1 - kChecksumSize;
  fd.post_header_lengths.assign(p + kFdFixed, p + kFdFixed + n_types);
  const uint8_t alg = p[kFdFixed + n_types];
  if (alg != 0 && alg != 1) {
    return Error(StatusCode::kCorruption,
                 "Format_description event names checksum algorithm {} (known: 0 off, 1 CRC32)",
                 alg);
  }
  fd.checksum = static_cast<ChecksumAlg>(alg);
  // The types whose bodies are read must have the post-header this parser knows.
  if (fd.PostHeaderLength(kQueryEvent) < kQueryPostHeaderMin) {
    return Error(StatusCode::kCorruption,
                 "Format_description event gives Query events a {}-byte post-header (at least "
                 "{} expected)",
                 fd.PostHeaderLength(kQueryEvent), kQueryPostHeaderMin);
  }
  REPLBOOT_RETURN_IF_ERROR(VerifyChecksum(event, fd.checksum));
  return fd;
}

std::string GtidEvent::ToString() const { return fmt::format("{}-{}-{}", domain, server_id, seq); }

Result<GtidEvent> ParseGtid(const EventHeader& header, std::span<const uint8_t> body) {
  if (body.size() < kGtidBodyMin) {
    return Error(StatusCode::kCorruption, "Gtid event body of {} bytes (at least {} expected)",
                 body.size(), kGtidBodyMin);
  }
  GtidEvent g;
  g.seq = U64(body.data());
  g.domain = U32(body.data() + 8);
  g.flags = body[12];
  g.server_id = header.server_id;
  g.timestamp = header.timestamp;
  if (g.seq == 0) return Error(StatusCode::kCorruption, "Gtid event with sequence number 0");
  if ((g.flags & kGtidGroupCommitId) != 0 && body.size() < kGtidBodyMin + 8) {
    return Error(StatusCode::kCorruption,
                 "Gtid event {} says it has a commit id but its body ends after {} bytes",
                 g.ToString(), body.size());
  }
  return g;
}

Result<QueryEvent> ParseQuery(std::span<const uint8_t> body, uint8_t post_header_length) {
  if (post_header_length < kQueryPostHeaderMin || body.size() < post_header_length) {
    return Error(StatusCode::kCorruption,
                 "Query event body of {} bytes is shorter than its {}-byte post-header",
                 body.size(), post_header_length);
  }
  const uint8_t db_len = body[8];
  const uint16_t status_len = U16(body.data() + 11);
  const size_t db_at = size_t{post_header_length} + status_len;
  // db, its NUL, then the statement (possibly empty).
  if (db_at + db_len + 1 > body.size()) {
    return Error(StatusCode::kCorruption,
                 "Query event's status variables ({} bytes) and database name ({} bytes) run "
                 "past its {}-byte body",
                 status_len, db_len, body.size());
  }
  if (body[db_at + db_len] != 0) {
    return Error(StatusCode::kCorruption, "Query event's database name is not NUL-terminated");
  }
  QueryEvent q;
  q.db = std::string_view(reinterpret_cast<const char*>(body.data() + db_at), db_len);
  const size_t stmt_at = db_at + db_len + 1;
  q.statement = std::string_view(reinterpret_cast<const char*>(body.data() + stmt_at),
                                 body.size() - stmt_at);
  return q;
}

Result<RotateEvent> ParseRotate(std::span<const uint8_t> body) {
  if (body.size() < kRotatePostHeader + 1) {
    return Error(StatusCode::kCorruption, "Rotate event body of {} bytes names no file",
                 body.size());
  }
  if (body.size() - kRotatePostHeader > kMaxFileName) {
    return Error(StatusCode::kCorruption, "Rotate event names a file of {} bytes (at most {})",
                 body.size() - kRotatePostHeader, kMaxFileName);
  }
  RotateEvent r;
  r.position = U64(body.data());
  r.file.assign(reinterpret_cast<const char*>(body.data() + kRotatePostHeader),
                body.size() - kRotatePostHeader);
  for (char c : r.file) {
    if (!std::isprint(static_cast<unsigned char>(c))) {
      return Error(StatusCode::kCorruption, "Rotate event's file name has a non-printable byte");
    }
  }
  return r;
}

Result<GtidListEvent> ParseGtidList(std::span<const uint8_t> body) {
  if (body.size() < 4) {
    return Error(StatusCode::kCorruption, "Gtid_list event body of {} bytes has no count",
                 body.size());
  }
  const uint32_t count = U32(body.data()) & 0x0fffffffu;
  // Checked before anything is allocated: the entries must be there. 10.11 pads an empty
  // list with 2 bytes (testdata/crc32.binlog), so bytes after the entries are allowed.
  if (uint64_t{count} * 16 > body.size() - 4) {
    return Error(StatusCode::kCorruption,
                 "Gtid_list event says {} entries but its body holds {} bytes", count,
                 body.size());
  }
  GtidListEvent list;
  list.entries.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* p = body.data() + 4 + size_t{i} * 16;
    list.entries.push_back({U32(p), U32(p + 4), U64(p + 8)});
  }
  return list;
}

bool EndsGroup(std::string_view s) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
    while (!v.empty() && (std::isspace(static_cast<unsigned char>(v.back())) || v.back() == ';'))
      v.remove_suffix(1);
    return v;
  };
  auto iequals_prefix = [](std::string_view v, std::string_view prefix) {
    if (v.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (std::toupper(static_cast<unsigned char>(v[i])) != prefix[i]) return false;
    }
    return true;
  };
  s = trim(s);
  if (s.size() == 6 && iequals_prefix(s, "COMMIT")) return true;
  if (s.size() == 8 && iequals_prefix(s, "ROLLBACK")) return true;
  return iequals_prefix(s, "XA COMMIT") || iequals_prefix(s, "XA ROLLBACK");
}

Result<bool> EndsGroupOf(const GtidEvent& gtid, const EventHeader& header,
                         std::span<const uint8_t> body, const FormatDescription& fd) {
  switch (header.type) {
    case kXidEvent:
    case kXaPrepareEvent:
      return true;
    case kQueryEvent: {
      auto q = ParseQuery(body, fd.PostHeaderLength(kQueryEvent));
      if (!q) return Error(q.error());
      return gtid.standalone() || EndsGroup(q->statement);
    }
    case kQueryCompressedEvent:
      return gtid.standalone();
    default:
      return false;
  }
}

}  // namespace replboot::binlog
