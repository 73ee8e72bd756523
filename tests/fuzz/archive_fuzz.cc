// libFuzzer target for the archive's parsers of what an object store hands back: manifests,
// checks and sealed objects, under one fixed key. Every byte from a store is hostile: each must
// give an error or a value that keeps its promises (round trips, bounds), never a crash, a
// sanitizer report or an allocation driven by a size field. The first byte picks the target:
//   0  ParseManifest of the bytes as they are (fails the MAC unless it is a valid one)
//   1  the bytes as JSON, re-MACed with the key: the strict checks behind the MAC
//   2, 3  the same for ParseChecks
//   4  OpenObject of the bytes (fails the tag unless valid): header and bounds checks
//   5  the bytes sealed as an object's payload: the zstd checks behind the tag
//   6  the bytes sealed and opened (a round trip), then one byte changed (must fail)
//   7  ParseSegmentKey of the text: what parses prints back as the same key
//   8  ParseBinlog of the bytes (strict, then as a live file's tail), then CutBinlogFile
//   9  OpenSegment of the bytes under a fixed segment key (fails the tag unless valid)
//   10 ParseHistory of the text (the MAC, then the strict fields)
//   11 the bytes as a GTID position and state, and as a --time / --gtid target
//
// Build: CC=clang CXX=clang++ cmake -DREPLBOOT_FUZZ=ON ... && ninja archive_fuzz
// Run:   scripts/ci-fuzz (on the seeds in tests/fuzz/archive_corpus, from
//        make_archive_corpus.py).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <span>
#include <string_view>
#include <vector>

#include "manifest_mac.h"
#include "object_internal.h"
#include "replboot/archive/keys.h"
#include "replboot/archive/manifest.h"
#include "replboot/archive/object.h"
#include "replboot/archive/binlog_archive.h"
#include "replboot/binlog/file.h"
#include "replboot/binlog/gtid.h"
#include "replboot/archive/histories.h"
#include "replboot/archive/pitr.h"

namespace {

using replboot::archive::BackupKey;
using replboot::archive::internal::MacKind;

constexpr std::string_view kBackupId = "20261207T061500Z";
constexpr uint64_t kMaxLogical = 1 << 20;

void Check(bool ok) {
  if (!ok) std::abort();
}

const BackupKey& Key() {
  static const BackupKey key =
      replboot::archive::KeyFromSecret("archive fuzz key, fixed: 0123456789abcdef");
  return key;
}

void FuzzManifest(std::string_view text, bool remac) {
  std::string input(text);
  if (remac) {
    auto document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) return;
    // The key id, too, is the key's: mode 0 covers a foreign one.
    if (document.is_object()) document["key_id"] = Key().id;
    input = replboot::archive::internal::Remac(std::move(document), MacKind::kManifest, Key());
  }
  auto manifest = replboot::archive::ParseManifest(input, Key());
  if (!manifest) return;
  // What parses keeps the promises a reader relies on.
  uint64_t logical = 0, stored = 0;
  for (size_t i = 0; i < manifest->objects.size(); ++i) {
    const auto& o = manifest->objects[i];
    Check(o.index == i);
    Check(o.logical_bytes <= manifest->object_bytes);
    Check(o.stored_bytes <= replboot::archive::MaxStoredBytes(o.logical_bytes));
    logical += o.logical_bytes;
    stored += o.stored_bytes;
  }
  Check(logical == manifest->logical_bytes && stored == manifest->stored_bytes);
  Check(manifest->key_id == Key().id);
  auto again = replboot::archive::ParseManifest(
      replboot::archive::SerializeManifest(*manifest, Key()), Key());
  Check(again.has_value() && *again == *manifest);
}

void FuzzChecks(std::string_view text, bool remac) {
  std::string input(text);
  if (remac) {
    auto document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded()) return;
    if (document.is_object()) document["key_id"] = Key().id;
    input = replboot::archive::internal::Remac(std::move(document), MacKind::kChecks, Key());
  }
  auto checks = replboot::archive::ParseChecks(input, kBackupId, Key());
  if (!checks) return;
  auto again = replboot::archive::ParseChecks(
      replboot::archive::SerializeChecks(*checks, kBackupId, Key()), kBackupId, Key());
  Check(again.has_value() && *again == *checks);
}

void FuzzOpen(std::span<const uint8_t> bytes, uint64_t index) {
  auto opened = replboot::archive::OpenObject(Key(), kBackupId, index, bytes, kMaxLogical);
  if (opened) Check(opened->size() <= kMaxLogical);
}

void FuzzBehindTheTag(std::span<const uint8_t> bytes) {
  if (bytes.size() < 4) return;
  // The header's logical size from the first bytes, up to the limit and a little over.
  const uint64_t logical =
      (uint64_t{bytes[0]} | uint64_t{bytes[1]} << 8 | uint64_t{bytes[2]} << 16) %
      (kMaxLogical + 16);
  auto sealed =
      replboot::archive::internal::SealFrame(Key(), kBackupId, 7, logical, bytes.subspan(3));
  Check(!sealed.empty());
  auto opened = replboot::archive::OpenObject(Key(), kBackupId, 7, sealed, kMaxLogical);
  if (opened) Check(opened->size() == logical);
}

void FuzzRoundTrip(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  const int level = 1 + bytes[0] % 5;
  auto plaintext = bytes.subspan(1);
  auto sealed = replboot::archive::SealObject(Key(), kBackupId, 3, plaintext, level);
  Check(sealed.has_value());
  Check(sealed->size() <= replboot::archive::MaxStoredBytes(plaintext.size()));
  auto opened = replboot::archive::OpenObject(Key(), kBackupId, 3, *sealed, plaintext.size());
  Check(opened.has_value() &&
        std::equal(opened->begin(), opened->end(), plaintext.begin(), plaintext.end()));
  std::vector<uint8_t> changed = *sealed;
  changed[bytes[0] * 7919u % changed.size()] ^= static_cast<uint8_t>(1 + bytes.size() % 255);
  Check(!replboot::archive::OpenObject(Key(), kBackupId, 3, changed, kMaxLogical).has_value());
  Check(!replboot::archive::OpenObject(Key(), kBackupId, 4, *sealed, kMaxLogical).has_value());
}

void FuzzSegmentKey(std::string_view text) {
  auto info = replboot::archive::ParseSegmentKey(text);
  if (!info) return;
  Check(info->key == text);
  Check(info->end_ordinal > info->start_ordinal && info->transactions >= 1);
  auto again = replboot::archive::ParseSegmentKey(info->key);
  Check(again.has_value() && *again == *info);
}

void FuzzBinlog(std::span<const uint8_t> bytes) {
  auto strict = replboot::binlog::ParseBinlog(bytes, "fuzz");
  auto live = replboot::binlog::ParseBinlog(bytes, "fuzz", /*allow_tail=*/true);
  if (strict) {
    Check(live.has_value() && live->transactions.size() == strict->transactions.size());
    for (const auto& t : strict->transactions) Check(t.offset + t.length <= bytes.size());
  }
  if (!live) return;
  Check(live->complete_end + live->incomplete_tail == bytes.size());
  replboot::archive::CutOptions options;
  options.history = "fuzz";
  options.max_segment_bytes = 4096;
  auto segments = replboot::archive::CutBinlogFile(bytes, "fuzz", options);
  if (!segments) return;
  for (const auto& s : *segments) {
    Check(s.binlog.size() <= options.max_segment_bytes);
    // Every cut segment keeps the contract Put checks (or names why not: a zero time, …).
    (void)replboot::archive::SegmentInfoOf(s);
  }
}

void FuzzOpenSegment(std::span<const uint8_t> bytes) {
  static const auto info = [] {
    replboot::archive::SegmentInfo i;
    i.key = "binlogs/fuzz/00000000000000000000-00000000000000000001_1-1_1_0-1-1_0-1-1_empty_0-1-1.seg";
    i.history = "fuzz";
    i.end_state = i.first_gtid = i.last_gtid = "0-1-1";
    i.first_commit_time = i.last_commit_time = 1;
    i.transactions = 1;
    i.end_ordinal = 1;
    return i;
  }();
  auto opened = replboot::archive::OpenSegment(Key(), "fuzz-cluster", info, bytes);
  if (opened) Check(opened->binlog.size() <= replboot::archive::kMaxSegmentBinlogBytes);
}

void FuzzHistory(std::string_view text) {
  auto record = replboot::archive::ParseHistory(text, "fuzz", Key());
  if (!record) return;
  auto again = replboot::archive::ParseHistory(replboot::archive::SerializeHistory(*record, Key()),
                                               "fuzz", Key());
  Check(again.has_value() && *again == *record);
}

void FuzzTargets(std::string_view text) {
  if (auto p = replboot::binlog::ParsePosition(text); p) {
    auto again = replboot::binlog::ParsePosition(replboot::binlog::PositionToString(*p));
    Check(again.has_value() && *again == *p);
  }
  if (auto s = replboot::binlog::GtidState::Parse(text); s) {
    auto again = replboot::binlog::GtidState::Parse(s->ToString());
    Check(again.has_value() && *again == *s);
  }
  if (auto t = replboot::archive::ParseTimeTarget(text); t) {
    auto again = replboot::archive::ParseTimeTarget(replboot::archive::FormatTime(t->time));
    Check(again.has_value() && again->time == t->time);
  }
  (void)replboot::archive::ParseGtidTarget(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  std::span<const uint8_t> bytes(data + 1, size - 1);
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  switch (selector % 12) {
    case 0:
      FuzzManifest(text, false);
      break;
    case 1:
      FuzzManifest(text, true);
      break;
    case 2:
      FuzzChecks(text, false);
      break;
    case 3:
      FuzzChecks(text, true);
      break;
    case 4:
      FuzzOpen(bytes, selector / 12);
      break;
    case 5:
      FuzzBehindTheTag(bytes);
      break;
    case 6:
      FuzzRoundTrip(bytes);
      break;
    case 7:
      FuzzSegmentKey(text);
      break;
    case 8:
      FuzzBinlog(bytes);
      break;
    case 9:
      FuzzOpenSegment(bytes);
      break;
    case 10:
      FuzzHistory(text);
      break;
    case 11:
      FuzzTargets(text);
      break;
  }
  return 0;
}
