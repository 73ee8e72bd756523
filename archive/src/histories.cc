#include "replboot/archive/histories.h"

#include <openssl/rand.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "crypto.h"
#include "json_fields.h"
#include "replboot/binlog/gtid.h"
#include "replboot/archive/layout.h"

namespace replboot::archive {
namespace {

using nlohmann::json;
using internal::FieldReader;

constexpr std::string_view kHistoryDomain = "replboot binlog history v1\n";
constexpr std::string_view kJsonSuffix = ".json";
constexpr size_t kMaxStateChars = 1 << 16;
constexpr size_t kMaxTargetChars = 128;

internal::Key32 HistoryMacKey(const BackupKey& key) {
  internal::Key32 out{};
  internal::Hkdf(key.bytes, "replboot binlog archive v1: history HMAC-SHA256", out);
  return out;
}

std::string MacOf(const json& body, const BackupKey& key) {
  std::string text(kHistoryDomain);
  text += body.dump(-1, ' ', false, json::error_handler_t::replace);
  return internal::HmacSha256Hex(HistoryMacKey(key), text);
}

json Body(const HistoryRecord& r, const BackupKey& key) {
  return json{{"format", 1},
              {"id", r.id},
              {"cluster_id", r.cluster_id},
              {"parent", r.parent},
              {"branch_state", r.branch_state},
              {"backup_id", r.backup_id},
              {"target", r.target},
              {"created_at_ms", r.created_at_ms},
              {"key_id", key.id}};
}

// Characters a target description may hold: what the CLI writes ("time 2026-…Z", "gtid 0-1-2",
// "latest"), nothing a SQL literal would need escaped.
bool SafeText(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '-' || c == ':' || c == ' ' || c == ',' || c == '.' || c == '+' || c == '_';
  });
}

}  // namespace

bool IsHistoryId(std::string_view text) {
  if (text.empty() || text.size() > kMaxHistoryIdChars || text[0] == '-') return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
  });
}

Result<std::string> RootHistoryId(std::string_view cluster_id) {
  if (!IsHistoryId(cluster_id)) {
    return Error(StatusCode::kInvalidArgument,
                 "cluster id \"{}\" cannot name a history (1..64 of [0-9A-Za-z-])",
                 cluster_id.substr(0, 80));
  }
  return std::string(cluster_id);
}

std::string NewHistoryId(std::chrono::system_clock::time_point when) {
  uint8_t random[4] = {};
  if (RAND_bytes(random, sizeof random) != 1) {
    // The time alone still names it; two restores within one second then collide, and the
    // second's WriteHistory (PutIfAbsent) says so.
    return NewBackupId(when) + "-00000000";
  }
  return NewBackupId(when) + "-" + internal::Hex(random);
}

std::string HistoryKey(std::string_view id) {
  return fmt::format("{}{}{}", kHistoriesPrefix, id, kJsonSuffix);
}

std::string SerializeHistory(const HistoryRecord& record, const BackupKey& key) {
  json body = Body(record, key);
  body["mac"] = MacOf(body, key);
  return body.dump(1, ' ', false, json::error_handler_t::replace);
}

Result<HistoryRecord> ParseHistory(std::string_view text, std::string_view id,
                                   const BackupKey& key) {
  const std::string where = fmt::format("history record {}", HistoryKey(id));
  if (text.size() > kMaxHistoryRecordBytes) {
    return Error(StatusCode::kCorruption, "{}: {} bytes, at most {}", where, text.size(),
                 kMaxHistoryRecordBytes);
  }
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return Error(StatusCode::kCorruption, "{}: not a JSON object", where);
  }
  auto mac = body.find("mac");
  if (mac == body.end() || !mac->is_string()) {
    return Error(StatusCode::kCorruption, "{}: no \"mac\"", where);
  }
  const std::string given = mac->get<std::string>();
  body.erase("mac");
  auto key_id = body.find("key_id");
  if (key_id != body.end() && key_id->is_string() && key_id->get<std::string>() != key.id) {
    return Error(StatusCode::kPermissionDenied, "{} was made with key {}, this node's key is {}",
                 where, key_id->get<std::string>().substr(0, 16), key.id);
  }
  if (!internal::ConstantTimeEqual(given, MacOf(body, key))) {
    return Error(StatusCode::kCorruption,
                 "{} fails its MAC (changed, or not written by a holder of the key)", where);
  }
  FieldReader r(body, where);
  r.OnlyFields({"format", "id", "cluster_id", "parent", "branch_state", "backup_id", "target",
                "created_at_ms", "key_id"});
  HistoryRecord h;
  r.Unsigned("format", 1, 1);
  h.id = r.String("id", kMaxHistoryIdChars);
  h.cluster_id = r.String("cluster_id", kMaxHistoryIdChars);
  h.parent = r.String("parent", kMaxHistoryIdChars);
  h.branch_state = r.String("branch_state", kMaxStateChars);
  h.backup_id = r.String("backup_id", 16);
  h.target = r.String("target", kMaxTargetChars);
  h.created_at_ms = r.Time("created_at_ms", 1);
  r.String("key_id", 16);
  if (r.ok() && h.id != id) r.Fail(fmt::format("{}: it names history \"{}\"", where, h.id));
  if (r.ok() && (!IsHistoryId(h.id) || !IsHistoryId(h.cluster_id) || !IsHistoryId(h.parent))) {
    r.Fail(where + ": an id that is not a history id");
  }
  if (r.ok() && h.parent == h.id) r.Fail(where + ": it is its own parent");
  if (r.ok() && !IsBackupId(h.backup_id)) r.Fail(where + ": \"backup_id\" is not a backup id");
  if (r.ok() && !binlog::GtidState::Parse(h.branch_state)) r.Fail(where + ": \"branch_state\" is not a GTID state");
  if (r.ok() && !SafeText(h.target)) r.Fail(where + ": \"target\" holds an unexpected character");
  if (!r.ok()) return Error(StatusCode::kCorruption, "{}", r.error());
  return h;
}

Status WriteHistory(store::ObjectStore& store, const BackupKey& key, const HistoryRecord& record) {
  if (!IsHistoryId(record.id) || !IsHistoryId(record.parent) || !IsHistoryId(record.cluster_id) ||
      !SafeText(record.target) || !binlog::GtidState::Parse(record.branch_state)) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("history record {}: a field out of its form", record.id));
  }
  const std::string text = SerializeHistory(record, key);
  auto written = store.PutIfAbsent(
      HistoryKey(record.id),
      std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  if (!written) return written.error().WithContext("writing " + HistoryKey(record.id));
  if (!*written) {
    return Status(StatusCode::kInvalidArgument,
                  fmt::format("{} exists already in {}", HistoryKey(record.id), store.Describe()));
  }
  return Status::Ok();
}

Result<std::vector<HistoryRecord>> ListHistories(store::ObjectStore& store, const BackupKey& key,
                                                 std::string_view cluster_id) {
  auto listed = store.List(std::string(kHistoriesPrefix));
  if (!listed) return Error(listed.error().WithContext("listing histories"));
  std::vector<HistoryRecord> out;
  for (const auto& info : *listed) {
    std::string_view name = info.key;
    name.remove_prefix(kHistoriesPrefix.size());
    if (!name.ends_with(kJsonSuffix)) continue;
    name.remove_suffix(kJsonSuffix.size());
    if (!IsHistoryId(name)) continue;  // not of the layout: not ours to read
    auto body = store.Get(info.key, kMaxHistoryRecordBytes);
    if (!body) return Error(body.error().WithContext("reading " + info.key));
    auto record = ParseHistory(
        std::string_view(reinterpret_cast<const char*>(body->data()), body->size()), name, key);
    if (!record) return Error(record.error());
    if (record->cluster_id == cluster_id) out.push_back(std::move(*record));
  }
  std::sort(out.begin(), out.end(), [](const HistoryRecord& a, const HistoryRecord& b) {
    return a.created_at_ms != b.created_at_ms ? a.created_at_ms < b.created_at_ms : a.id < b.id;
  });
  return out;
}

std::string HistoryAt(const std::vector<HistoryRecord>& records, std::string_view root,
                      int64_t at_ms) {
  std::string current(root);
  for (const auto& r : records) {
    if (r.created_at_ms <= at_ms) current = r.id;
  }
  return current;
}

Result<std::vector<Lineage>> LineageOf(const std::vector<HistoryRecord>& records,
                                       std::string_view root, std::string_view history) {
  std::vector<Lineage> out;
  std::set<std::string> seen;
  std::string at(history);
  std::string branch;
  for (;;) {
    if (!seen.insert(at).second) {
      return Error(StatusCode::kCorruption, "the history records loop at {}", at);
    }
    out.push_back(Lineage{at, branch});
    if (at == root) return out;
    auto it = std::find_if(records.begin(), records.end(),
                           [&](const HistoryRecord& r) { return r.id == at; });
    if (it == records.end()) {
      return Error(StatusCode::kNotFound, "history {} is not in the store (histories/{}.json)", at,
                   at);
    }
    branch = it->branch_state;
    at = it->parent;
  }
}

Result<std::string> HistoryFromAnswer(const std::vector<std::optional<std::string>>& ids,
                                      std::string_view cluster_id) {
  if (ids.empty()) return RootHistoryId(cluster_id);
  if (ids.size() > 1) {
    return Error(StatusCode::kCorruption, "replboot.history holds {} rows, one is expected",
                 ids.size());
  }
  if (!ids[0] || !IsHistoryId(*ids[0])) {
    return Error(StatusCode::kCorruption, "replboot.history holds \"{}\", not a history id",
                 ids[0].value_or("NULL").substr(0, 80));
  }
  return *ids[0];
}

std::vector<std::string> HistoryTableStatements(const HistoryRecord& r) {
  // Every value is of a checked form (ids, a GTID state, a backup id, SafeText): none holds a
  // quote or a backslash.
  auto q = [](std::string_view v) { return fmt::format("'{}'", v); };
  return {
      "CREATE DATABASE IF NOT EXISTS replboot",
      "CREATE TABLE IF NOT EXISTS replboot.history (id VARCHAR(64) NOT NULL PRIMARY KEY, "
      "parent VARCHAR(64) NOT NULL, branch_state TEXT NOT NULL, backup_id VARCHAR(16) NOT NULL, "
      "target VARCHAR(128) NOT NULL, created_at_ms BIGINT NOT NULL) ENGINE=InnoDB",
      "BEGIN",
      "DELETE FROM replboot.history",
      fmt::format("INSERT INTO replboot.history VALUES ({}, {}, {}, {}, {}, {})", q(r.id),
                  q(r.parent), q(r.branch_state), q(r.backup_id), q(r.target), r.created_at_ms),
      "COMMIT",
  };
}

}  // namespace replboot::archive
