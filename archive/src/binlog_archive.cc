#include "replboot/archive/binlog_archive.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "crypto.h"
#include "json_fields.h"
#include "replboot/archive/histories.h"
#include "replboot/archive/object.h"
#include "replboot/binlog/events.h"
#include "replboot/binlog/file.h"
#include "replboot/binlog/gtid.h"

namespace replboot::archive {
namespace {

using nlohmann::json;

constexpr uint8_t kSegmentMagic[4] = {'R', 'B', 'S', 'G'};
constexpr uint8_t kSegmentVersion = 1;
constexpr size_t kSegmentHeaderBytes = 9;
constexpr int kZstdLevel = 3;
constexpr std::string_view kEmptyPosition = "empty";
constexpr uint64_t kMaxCommitTime = UINT32_MAX;  // the event header's field
constexpr size_t kMaxVersionChars = 256;
constexpr size_t kMaxStateChars = 1 << 15;
// Where an event header's flags are (binlog/events.h: bytes 17..18 of the header).
constexpr size_t kFlagsOffset = 17;

constexpr uint64_t kMaxSegmentLogical =
    kSegmentHeaderBytes + kMaxSegmentMetaBytes + kMaxSegmentBinlogBytes;

BackupKey SegmentKey(const BackupKey& backup_key) {
  BackupKey k;
  internal::Hkdf(backup_key.bytes, "replboot binlog archive v1: segment AES-256-GCM", k.bytes);
  k.id = backup_key.id;
  return k;
}

// What the tag binds besides the ciphertext (as a backup's id is bound in object.h): the
// cluster and the whole key, which names the history, the range, the GTIDs and the times.
std::string SegmentAad(std::string_view cluster_id, std::string_view key) {
  return fmt::format("replboot binlog segment v1 cluster={} key={}", cluster_id, key);
}

std::string KeyPosition(const GtidPosition& position) {
  if (position.empty()) return std::string(kEmptyPosition);
  std::string out;
  for (const auto& [domain, gtid] : position) {
    if (!out.empty()) out += '.';
    out += gtid.ToString();
  }
  return out;
}

std::optional<GtidPosition> ParseKeyPosition(std::string_view text) {
  GtidPosition position;
  if (text == kEmptyPosition) return position;
  while (!text.empty()) {
    const size_t dot = text.find('.');
    auto gtid = binlog::ParseGtid(text.substr(0, dot));
    if (!gtid) return std::nullopt;
    // Canonical: domains in increasing order, each once.
    if (!position.empty() && position.rbegin()->first >= gtid->domain) return std::nullopt;
    position.emplace(gtid->domain, *gtid);
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
    if (text.empty()) return std::nullopt;
    if (position.size() > binlog::kMaxPositionEntries) return std::nullopt;
  }
  return position;
}

std::optional<uint64_t> FixedDigits(std::string_view text, size_t width) {
  if (text.size() != width) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::string KeyOf(const SegmentInfo& i, const GtidPosition& start, const GtidPosition& end) {
  return fmt::format("{}{:020}-{:020}_{}-{}_{}_{}_{}_{}_{}{}", SegmentsPrefix(i.history),
                     i.start_ordinal, i.end_ordinal, i.first_commit_time, i.last_commit_time,
                     i.transactions, i.first_gtid, i.last_gtid, KeyPosition(start),
                     KeyPosition(end), kSegmentSuffix);
}

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = text.find(sep);
    out.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return out;
    text.remove_prefix(at + 1);
  }
}

bool PrintableAscii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

json MetaOf(const BinlogSegment& s, std::string_view cluster_id) {
  return json{{"format", 1},
              {"history", s.history},
              {"cluster_id", cluster_id},
              {"start_state", s.start_state},
              {"end_state", s.end_state},
              {"first_gtid", s.first_gtid},
              {"last_gtid", s.last_gtid},
              {"first_commit_time", s.first_commit_time},
              {"last_commit_time", s.last_commit_time},
              {"transactions", s.transactions},
              {"server_id", s.server_id},
              {"server_version", s.server_version},
              {"binlog_bytes", s.binlog.size()}};
}

}  // namespace

std::string SegmentsPrefix(std::string_view history) {
  return fmt::format("{}{}/", kBinlogsPrefix, history);
}

Result<SegmentInfo> SegmentInfoOf(const BinlogSegment& s) {
  auto bad = [&](std::string what) {
    return Error(StatusCode::kInvalidArgument, "binlog segment {}..{} of history {}: {}",
                 s.first_gtid.substr(0, 64), s.last_gtid.substr(0, 64), s.history.substr(0, 64),
                 what);
  };
  if (!IsHistoryId(s.history)) return bad("the history is not a history id");
  if (s.binlog.size() > kMaxSegmentBinlogBytes) {
    return bad(fmt::format("{} bytes of binlog, at most {}", s.binlog.size(),
                           kMaxSegmentBinlogBytes));
  }
  if (s.server_version.size() > kMaxVersionChars || !PrintableAscii(s.server_version)) {
    return bad("the server version is not a short line of printable ASCII");
  }
  if (s.start_state.size() > kMaxStateChars || s.end_state.size() > kMaxStateChars) {
    return bad("a GTID state over 32 KiB");
  }
  auto start = GtidState::Parse(s.start_state);
  if (!start) return bad("start_state: " + start.error().message());
  auto end = GtidState::Parse(s.end_state);
  if (!end) return bad("end_state: " + end.error().message());
  auto first = binlog::ParseGtid(s.first_gtid);
  if (!first) return bad("first_gtid: " + first.error().message());
  auto last = binlog::ParseGtid(s.last_gtid);
  if (!last) return bad("last_gtid: " + last.error().message());
  if (s.first_commit_time < 0 || s.last_commit_time < 0 ||
      static_cast<uint64_t>(s.first_commit_time) > kMaxCommitTime ||
      static_cast<uint64_t>(s.last_commit_time) > kMaxCommitTime) {
    return bad("a commit time outside 0..2^32-1");
  }
  auto parsed = binlog::ParseBinlog(s.binlog, "its binlog");
  if (!parsed) return bad(parsed.error().message());
  if (!parsed->outside_events.empty()) {
    return bad(fmt::format("its binlog holds an event of type {} outside any transaction",
                           parsed->outside_events.front()));
  }
  const auto& txns = parsed->transactions;
  if (txns.empty()) return bad("no transaction");
  if (txns.size() != s.transactions) {
    return bad(fmt::format("its binlog holds {} transactions, the segment says {}", txns.size(),
                           s.transactions));
  }
  if (txns.front().gtid != *first || txns.back().gtid != *last) {
    return bad(fmt::format("its binlog runs {}..{}, the segment says {}..{}",
                           txns.front().gtid.ToString(), txns.back().gtid.ToString(),
                           s.first_gtid, s.last_gtid));
  }
  if (txns.front().commit_time != s.first_commit_time ||
      txns.back().commit_time != s.last_commit_time) {
    return bad(fmt::format("its binlog's commit times are {}..{}, the segment says {}..{}",
                           txns.front().commit_time, txns.back().commit_time,
                           s.first_commit_time, s.last_commit_time));
  }
  GtidState state = *start;
  for (const auto& t : txns) state.Record(t.gtid);
  if (state != *end) {
    return bad(fmt::format("start_state {} with its transactions is {}, not end_state {}",
                           s.start_state, state.ToString(), s.end_state));
  }
  const GtidPosition start_position = start->Position();
  const GtidPosition end_position = end->Position();
  SegmentInfo info;
  info.history = s.history;
  info.start_state = binlog::PositionToString(start_position);
  info.end_state = binlog::PositionToString(end_position);
  info.first_gtid = first->ToString();
  info.last_gtid = last->ToString();
  info.first_commit_time = s.first_commit_time;
  info.last_commit_time = s.last_commit_time;
  info.transactions = s.transactions;
  info.start_ordinal = binlog::PositionOrdinal(start_position);
  info.end_ordinal = binlog::PositionOrdinal(end_position);
  if (info.end_ordinal <= info.start_ordinal ||
      info.end_ordinal - info.start_ordinal < info.transactions ||
      !binlog::PositionCovers(end_position, start_position)) {
    return bad(fmt::format("its positions {} → {} do not move forward by its {} transactions",
                           info.start_state, info.end_state, info.transactions));
  }
  info.key = KeyOf(info, start_position, end_position);
  if (info.key.size() > kMaxSegmentKeyChars) {
    return bad(fmt::format("its key would be {} characters, at most {} (too many domains)",
                           info.key.size(), kMaxSegmentKeyChars));
  }
  return info;
}

std::optional<SegmentInfo> ParseSegmentKey(std::string_view key) {
  if (key.size() > kMaxSegmentKeyChars || !key.starts_with(kBinlogsPrefix)) return std::nullopt;
  std::string_view rest = key.substr(kBinlogsPrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view history = rest.substr(0, slash);
  std::string_view name = rest.substr(slash + 1);
  if (!IsHistoryId(history) || !name.ends_with(kSegmentSuffix)) return std::nullopt;
  name.remove_suffix(kSegmentSuffix.size());
  const auto fields = Split(name, '_');
  if (fields.size() != 7) return std::nullopt;
  const auto ords = Split(fields[0], '-');
  const auto times = Split(fields[1], '-');
  if (ords.size() != 2 || times.size() != 2) return std::nullopt;
  auto start_ord = FixedDigits(ords[0], 20);
  auto end_ord = FixedDigits(ords[1], 20);
  auto first_time = binlog::ParseDecimal(times[0], kMaxCommitTime);
  auto last_time = binlog::ParseDecimal(times[1], kMaxCommitTime);
  auto txns = binlog::ParseDecimal(fields[2], UINT64_MAX);
  auto first = binlog::ParseGtid(fields[3]);
  auto last = binlog::ParseGtid(fields[4]);
  auto start = ParseKeyPosition(fields[5]);
  auto end = ParseKeyPosition(fields[6]);
  if (!start_ord || !end_ord || !first_time || !last_time || !txns || !first || !last || !start ||
      !end) {
    return std::nullopt;
  }
  SegmentInfo info;
  info.history = std::string(history);
  info.start_state = binlog::PositionToString(*start);
  info.end_state = binlog::PositionToString(*end);
  info.first_gtid = first->ToString();
  info.last_gtid = last->ToString();
  info.first_commit_time = static_cast<int64_t>(*first_time);
  info.last_commit_time = static_cast<int64_t>(*last_time);
  info.transactions = *txns;
  info.start_ordinal = *start_ord;
  info.end_ordinal = *end_ord;
  // The same rules as a segment Put accepts, then the canonical spelling.
  if (info.transactions == 0 || binlog::PositionOrdinal(*start) != *start_ord ||
      binlog::PositionOrdinal(*end) != *end_ord || *end_ord <= *start_ord ||
      *end_ord - *start_ord < info.transactions || !binlog::PositionCovers(*end, *start)) {
    return std::nullopt;
  }
  info.key = KeyOf(info, *start, *end);
  if (info.key != key) return std::nullopt;
  return info;
}

Result<std::vector<uint8_t>> SealSegment(const BackupKey& backup_key, std::string_view cluster_id,
                                         const SegmentInfo& info, const BinlogSegment& segment) {
  const std::string meta = MetaOf(segment, cluster_id).dump();
  if (meta.size() > kMaxSegmentMetaBytes) {
    return Error(StatusCode::kInvalidArgument, "binlog segment {}: metadata of {} bytes", info.key,
                 meta.size());
  }
  std::vector<uint8_t> plain(kSegmentHeaderBytes + meta.size() + segment.binlog.size());
  std::memcpy(plain.data(), kSegmentMagic, 4);
  plain[4] = kSegmentVersion;
  for (int i = 0; i < 4; ++i) plain[5 + i] = static_cast<uint8_t>(meta.size() >> (8 * i));
  std::memcpy(plain.data() + kSegmentHeaderBytes, meta.data(), meta.size());
  if (!segment.binlog.empty()) {
    std::memcpy(plain.data() + kSegmentHeaderBytes + meta.size(), segment.binlog.data(),
                segment.binlog.size());
  }
  auto sealed =
      SealObject(SegmentKey(backup_key), SegmentAad(cluster_id, info.key), 0, plain, kZstdLevel);
  if (!sealed) return Error(sealed.error().WithContext("binlog segment " + info.key));
  return sealed;
}

Result<BinlogSegment> OpenSegment(const BackupKey& backup_key, std::string_view cluster_id,
                                  const SegmentInfo& info, std::span<const uint8_t> stored) {
  auto corrupt = [&](std::string what) {
    return Error(StatusCode::kCorruption, "binlog segment {}: {}", info.key, what);
  };
  const std::string aad = SegmentAad(cluster_id, info.key);
  auto plain = OpenObject(SegmentKey(backup_key), aad, 0, stored, kMaxSegmentLogical);
  if (!plain) {
    // The object layer names "object 0 of backup <aad>": say which segment instead.
    std::string why = plain.error().message();
    const std::string prefix = fmt::format("object 0 of backup {}: ", aad);
    if (why.starts_with(prefix)) why = why.substr(prefix.size());
    if (why.starts_with("authentication failed")) {
      why = "authentication failed: changed, renamed or moved from another history or range, or "
            "sealed with another key or for another cluster";
    }
    return Error(plain.error().code(), "binlog segment {}: {}", info.key, why);
  }
  const auto& p = *plain;
  if (p.size() < kSegmentHeaderBytes || std::memcmp(p.data(), kSegmentMagic, 4) != 0) {
    return corrupt("not a binlog segment (bad magic)");
  }
  if (p[4] != kSegmentVersion) return corrupt(fmt::format("unknown segment version {}", p[4]));
  const uint32_t meta_bytes =
      uint32_t{p[5]} | uint32_t{p[6]} << 8 | uint32_t{p[7]} << 16 | uint32_t{p[8]} << 24;
  if (meta_bytes > kMaxSegmentMetaBytes || meta_bytes > p.size() - kSegmentHeaderBytes) {
    return corrupt(fmt::format("metadata of {} bytes in a segment of {}", meta_bytes, p.size()));
  }
  const std::string_view meta_text(reinterpret_cast<const char*>(p.data()) + kSegmentHeaderBytes,
                                   meta_bytes);
  json meta = json::parse(meta_text, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) return corrupt("metadata is not a JSON object");
  internal::FieldReader r(meta, "binlog segment " + info.key + " metadata");
  r.OnlyFields({"format", "history", "cluster_id", "start_state", "end_state", "first_gtid",
                "last_gtid", "first_commit_time", "last_commit_time", "transactions", "server_id",
                "server_version", "binlog_bytes"});
  BinlogSegment s;
  r.Unsigned("format", 1, 1);
  s.history = r.String("history", kMaxHistoryIdChars);
  const std::string meta_cluster = r.String("cluster_id", 256);
  s.start_state = r.String("start_state", kMaxStateChars);
  s.end_state = r.String("end_state", kMaxStateChars);
  s.first_gtid = r.String("first_gtid", 64);
  s.last_gtid = r.String("last_gtid", 64);
  s.first_commit_time = static_cast<int64_t>(r.Unsigned("first_commit_time", 0, kMaxCommitTime));
  s.last_commit_time = static_cast<int64_t>(r.Unsigned("last_commit_time", 0, kMaxCommitTime));
  s.transactions = r.Unsigned("transactions", 1, UINT64_MAX);
  s.server_id = static_cast<uint32_t>(r.Unsigned("server_id", 0, UINT32_MAX));
  s.server_version = r.String("server_version", kMaxVersionChars);
  const uint64_t binlog_bytes = r.Unsigned("binlog_bytes", 0, kMaxSegmentBinlogBytes);
  if (!r.ok()) return Error(StatusCode::kCorruption, "{}", r.error());
  if (binlog_bytes != p.size() - kSegmentHeaderBytes - meta_bytes) {
    return corrupt(fmt::format("the metadata says {} bytes of binlog, {} follow it", binlog_bytes,
                               p.size() - kSegmentHeaderBytes - meta_bytes));
  }
  if (meta_cluster != cluster_id) {
    return corrupt(fmt::format("sealed for cluster {}, not {}", meta_cluster, cluster_id));
  }
  s.binlog.assign(p.begin() + kSegmentHeaderBytes + meta_bytes, p.end());
  auto checked = SegmentInfoOf(s);
  if (!checked) return corrupt(checked.error().message());
  SegmentInfo expect = info;
  expect.stored_bytes = 0;
  if (*checked != expect) {
    return corrupt(fmt::format("its content is segment {}", checked->key));
  }
  return s;
}

Result<std::vector<BinlogSegment>> CutBinlogFile(std::span<const uint8_t> file,
                                                 std::string_view name,
                                                 const CutOptions& options) {
  auto parsed = binlog::ParseBinlog(file, name, options.allow_tail);
  if (!parsed) return Error(parsed.error());
  if (!parsed->has_gtid_list) {
    return Error(StatusCode::kCorruption,
                 "{}: no Gtid_list event before its first transaction (not a MariaDB binlog "
                 "file, or one cut from its start)",
                 name);
  }
  if (options.max_segment_bytes < 1024 || options.max_segment_bytes > kMaxSegmentBinlogBytes) {
    return Error(StatusCode::kInvalidArgument, "a segment size of {} bytes is outside 1 KiB..{}",
                 options.max_segment_bytes, kMaxSegmentBinlogBytes);
  }
  const std::span<const uint8_t> format = file.first(parsed->format_end);
  const uint32_t server_id = parsed->server_id;
  const std::string version =
      options.server_version.empty() ? parsed->server_version : options.server_version;
  std::vector<BinlogSegment> out;
  GtidState state = parsed->gtid_list;
  std::optional<BinlogSegment> current;
  auto close = [&] {
    if (!current) return;
    current->end_state = state.ToString();
    out.push_back(std::move(*current));
    current.reset();
  };
  for (const auto& t : parsed->transactions) {
    auto covered = options.skip.find(t.gtid.domain);
    if (covered != options.skip.end() && t.gtid.sequence <= covered->second.sequence) {
      if (current) close();
      state.Record(t.gtid);
      continue;
    }
    if (format.size() + t.length > options.max_segment_bytes) {
      return Error(StatusCode::kInvalidArgument,
                   "{}: transaction {} at offset {} is {} bytes, over a segment's {}", name,
                   t.gtid.ToString(), t.offset, t.length, options.max_segment_bytes);
    }
    if (current && current->binlog.size() + t.length > options.max_segment_bytes) close();
    if (!current) {
      current.emplace();
      current->history = options.history;
      current->binlog.assign(format.begin(), format.end());
      // A segment is a closed file: the active file's "in use" flag goes (the checksum is
      // over it cleared; a replication stream sends it cleared too).
      current->binlog[sizeof binlog::kBinlogMagic + kFlagsOffset] &=
          static_cast<uint8_t>(~binlog::kFlagInUse);
      current->start_state = state.ToString();
      current->first_gtid = t.gtid.ToString();
      current->first_commit_time = t.commit_time;
      current->server_id = server_id;
      current->server_version = version;
    }
    current->binlog.insert(current->binlog.end(), file.begin() + static_cast<ptrdiff_t>(t.offset),
                           file.begin() + static_cast<ptrdiff_t>(t.offset + t.length));
    current->last_gtid = t.gtid.ToString();
    current->last_commit_time = t.commit_time;
    ++current->transactions;
    state.Record(t.gtid);
  }
  close();
  return out;
}

BinlogArchive::BinlogArchive(store::ObjectStore& store, BackupKey key, std::string cluster_id)
    : store_(store), key_(std::move(key)), cluster_id_(std::move(cluster_id)) {}

Result<SegmentInfo> BinlogArchive::Put(const BinlogSegment& segment) {
  auto info = SegmentInfoOf(segment);
  if (!info) return Error(info.error());
  auto sealed = SealSegment(key_, cluster_id_, *info, segment);
  if (!sealed) return Error(sealed.error());
  auto written = store_.PutIfAbsent(info->key, *sealed);
  if (!written) return Error(written.error().WithContext("uploading binlog segment " + info->key));
  const uint64_t max_stored = MaxStoredBytes(kMaxSegmentLogical);
  if (!*written) {
    // A retry of an upload that went through, or a leftover that does not open: the first is
    // done, the second is replaced by this one.
    auto there = store_.Get(info->key, max_stored);
    if (!there) return Error(there.error().WithContext("reading binlog segment " + info->key));
    auto opened = OpenSegment(key_, cluster_id_, *info, *there);
    if (opened) {
      info->stored_bytes = there->size();
      return info;
    }
    if (Status s = store_.Put(info->key, *sealed); !s.ok())
      return Error(s.WithContext("replacing binlog segment " + info->key));
  }
  auto back = store_.Get(info->key, max_stored);
  if (!back) return Error(back.error().WithContext("reading back binlog segment " + info->key));
  auto opened = OpenSegment(key_, cluster_id_, *info, *back);
  if (!opened) return Error(opened.error().WithContext("read back"));
  if (opened->binlog != segment.binlog) {
    return Error(StatusCode::kCorruption, "binlog segment {}: read back, its binlog differs",
                 info->key);
  }
  info->stored_bytes = back->size();
  return info;
}

Result<std::vector<SegmentInfo>> BinlogArchive::List(const std::string& history) {
  if (!IsHistoryId(history)) {
    return Error(StatusCode::kInvalidArgument, "\"{}\" is not a history id", history.substr(0, 80));
  }
  auto listed = store_.List(SegmentsPrefix(history));
  if (!listed) return Error(listed.error().WithContext("listing binlog segments of " + history));
  std::vector<SegmentInfo> out;
  ignored_keys_ = 0;
  for (const auto& object : *listed) {
    auto info = ParseSegmentKey(object.key);
    if (!info || info->history != history) {
      ++ignored_keys_;
      continue;
    }
    info->stored_bytes = object.size;
    out.push_back(std::move(*info));
  }
  std::sort(out.begin(), out.end(), [](const SegmentInfo& a, const SegmentInfo& b) {
    if (a.start_ordinal != b.start_ordinal) return a.start_ordinal < b.start_ordinal;
    if (a.end_ordinal != b.end_ordinal) return a.end_ordinal < b.end_ordinal;
    return a.key < b.key;
  });
  return out;
}

Result<std::optional<SegmentInfo>> BinlogArchive::Newest(const std::string& history) {
  auto all = List(history);
  if (!all) return Error(all.error());
  if (all->empty()) return std::optional<SegmentInfo>();
  auto it = std::max_element(all->begin(), all->end(), [](const auto& a, const auto& b) {
    return a.end_ordinal != b.end_ordinal ? a.end_ordinal < b.end_ordinal : a.key < b.key;
  });
  return std::optional<SegmentInfo>(*it);
}

Result<BinlogSegment> BinlogArchive::Open(const SegmentInfo& info) {
  const uint64_t max_stored = MaxStoredBytes(kMaxSegmentLogical);
  auto stored = store_.Get(info.key, max_stored);
  if (!stored) {
    return Error(stored.error().WithContext("binlog segment " + info.key));
  }
  return OpenSegment(key_, cluster_id_, info, *stored);
}

Status BinlogArchive::Delete(const SegmentInfo& info) {
  if (!ParseSegmentKey(info.key)) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("\"{}\" is not a binlog segment's key", info.key.substr(0, 120)));
  }
  return store_.Delete(info.key);
}

}  // namespace replboot::archive
