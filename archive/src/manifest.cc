#include "replboot/archive/manifest.h"

#include <cmath>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "crypto.h"
#include "json_fields.h"
#include "manifest_mac.h"
#include "replboot/archive/layout.h"
#include "replboot/archive/object.h"

namespace replboot::archive {
namespace {

using nlohmann::json;

constexpr size_t kMaxNameChars = 256;
constexpr size_t kMaxGtidChars = 1 << 20;

constexpr std::string_view kManifestDomain = "replboot backup manifest v1\n";
constexpr std::string_view kChecksDomain = "replboot backup checks v1\n";

std::string MacOfBody(const json& body, internal::MacKind kind, const BackupKey& key) {
  std::string text(kind == internal::MacKind::kManifest ? kManifestDomain : kChecksDomain);
  // Parsed documents hold valid UTF-8 only; `replace` keeps a caller's bad bytes from throwing.
  text += body.dump(-1, ' ', false, json::error_handler_t::replace);
  return internal::HmacSha256Hex(internal::MacKey(key), text);
}

using internal::FieldReader;

// The parts every document shares: parse, format, key id, MAC. On success `*body` is the
// document without its "mac" and `*backup_id` the id it names (checked later, with the rest).
Status OpenDocument(std::string_view text, internal::MacKind kind, const BackupKey& key,
                    std::string_view what, uint64_t max_bytes, json* body, std::string* backup_id) {
  backup_id->assign(1, '?');  // (not `= "?"`: GCC 12 -Wrestrict false positive)
  auto corrupt = [&](std::string message) {
    return Status(StatusCode::kCorruption,
                  fmt::format("{} of backup {}: {}", what, *backup_id, message));
  };
  if (text.size() > max_bytes) {
    return corrupt(fmt::format("{} bytes, over the limit of {}", text.size(), max_bytes));
  }
  *body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) return corrupt("not valid JSON");
  if (!body->is_object()) return corrupt("not a JSON object");
  if (auto it = body->find("backup_id");
      it != body->end() && it->is_string() && IsBackupId(it->get_ref<const std::string&>())) {
    *backup_id = it->get<std::string>();
  }
  auto format = body->find("format");
  if (format == body->end() || !format->is_number_unsigned()) {
    return corrupt("\"format\" is missing or not a number");
  }
  if (format->get<uint64_t>() != kManifestFormat) {
    return corrupt(fmt::format("format {}, this replboot reads format {}", format->get<uint64_t>(),
                               kManifestFormat));
  }
  auto key_id = body->find("key_id");
  if (key_id == body->end() || !key_id->is_string() ||
      !internal::IsLowerHex(key_id->get_ref<const std::string&>(), 16)) {
    return corrupt("\"key_id\" is missing or not 16 hex digits");
  }
  if (key_id->get_ref<const std::string&>() != key.id) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("{} of backup {} was made with key {}, this node's key is {}", what,
                              *backup_id, key_id->get_ref<const std::string&>(), key.id));
  }
  auto mac = body->find("mac");
  if (mac == body->end() || !mac->is_string() ||
      !internal::IsLowerHex(mac->get_ref<const std::string&>(), 64)) {
    return corrupt("\"mac\" is missing or not 64 hex digits");
  }
  const std::string claimed = mac->get<std::string>();
  body->erase("mac");
  if (!internal::ConstantTimeEqual(claimed, MacOfBody(*body, kind, key))) {
    return Status(StatusCode::kCorruption,
                  fmt::format("{} of backup {} fails its MAC (changed, or not written by a "
                              "holder of the key)",
                              what, *backup_id));
  }
  return Status::Ok();
}

bool ParseCompression(std::string_view text) {
  constexpr std::string_view kZstd = "zstd:";
  if (!text.starts_with(kZstd)) return false;
  text.remove_prefix(kZstd.size());
  if (text.empty() || text.size() > 2 || text[0] == '0') return false;
  int level = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    level = level * 10 + (c - '0');
  }
  return level >= 1 && level <= 22;
}

}  // namespace

namespace internal {

std::string DocumentMac(const json& document, MacKind kind, const BackupKey& key) {
  json body = document;
  if (body.is_object()) body.erase("mac");
  return MacOfBody(body, kind, key);
}

std::string Remac(json document, MacKind kind, const BackupKey& key) {
  if (document.is_object()) document["mac"] = DocumentMac(document, kind, key);
  return document.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace internal

std::string SerializeManifest(const Manifest& m, const BackupKey& key) {
  json objects = json::array();
  for (const ObjectEntry& o : m.objects) {
    objects.push_back({{"index", o.index},
                       {"logical_bytes", o.logical_bytes},
                       {"stored_bytes", o.stored_bytes},
                       {"sha256", o.sha256}});
  }
  json body = {{"format", m.format},
               {"backup_id", m.backup_id},
               {"cluster_id", m.cluster_id},
               {"node", m.node},
               {"flavour", m.flavour},
               {"server_version", m.server_version},
               {"tool_version", m.tool_version},
               {"gtid_position", m.gtid_position},
               {"binlog_file", m.binlog_file},
               {"binlog_position", m.binlog_position},
               {"started_at_ms", m.started_at_ms},
               {"finished_at_ms", m.finished_at_ms},
               {"logical_bytes", m.logical_bytes},
               {"stored_bytes", m.stored_bytes},
               {"key_id", key.id},
               {"compression", m.compression},
               {"object_bytes", m.object_bytes},
               {"objects", std::move(objects)}};
  body["mac"] = MacOfBody(body, internal::MacKind::kManifest, key);
  // One object per line keeps a large manifest readable with ordinary tools.
  return body.dump(1, ' ', false, json::error_handler_t::replace);
}

Result<Manifest> ParseManifest(std::string_view text, const BackupKey& key) {
  json body;
  std::string id;
  REPLBOOT_RETURN_IF_ERROR(OpenDocument(text, internal::MacKind::kManifest, key, "manifest",
                                        kMaxManifestBytes, &body, &id));
  const std::string where = "manifest of backup " + id;
  FieldReader r(body, where);
  r.OnlyFields({"format", "backup_id", "cluster_id", "node", "flavour", "server_version",
                "tool_version", "gtid_position", "binlog_file", "binlog_position", "started_at_ms",
                "finished_at_ms", "logical_bytes", "stored_bytes", "key_id", "compression",
                "object_bytes", "objects"});
  Manifest m;
  m.format = static_cast<int>(r.Unsigned("format", kManifestFormat, kManifestFormat));
  m.backup_id = r.String("backup_id", 16);
  if (r.ok() && !IsBackupId(m.backup_id)) r.Fail(where + ": \"backup_id\" is not a backup id");
  m.cluster_id = r.String("cluster_id", kMaxNameChars, false, false);
  m.node = r.String("node", kMaxNameChars, false, false);
  m.flavour = r.String("flavour", 16);
  if (r.ok() && m.flavour != "mariadb" && m.flavour != "mysql") {
    r.Fail(where + ": \"flavour\" is neither \"mariadb\" nor \"mysql\"");
  }
  m.server_version = r.String("server_version", kMaxNameChars);
  m.tool_version = r.String("tool_version", kMaxNameChars);
  m.gtid_position = r.String("gtid_position", kMaxGtidChars, /*allow_newline=*/true);
  m.binlog_file = r.String("binlog_file", kMaxNameChars);
  m.binlog_position = r.Unsigned("binlog_position", 0, UINT64_MAX);
  m.started_at_ms = r.Time("started_at_ms", 1);
  m.finished_at_ms = r.Time("finished_at_ms", 1);
  if (r.ok() && m.finished_at_ms < m.started_at_ms) {
    r.Fail(where + ": \"finished_at_ms\" is before \"started_at_ms\"");
  }
  m.logical_bytes = r.Unsigned("logical_bytes", 0, UINT64_MAX);
  m.stored_bytes = r.Unsigned("stored_bytes", 0, UINT64_MAX);
  m.key_id = r.String("key_id", 16);
  m.compression = r.String("compression", 8);
  if (r.ok() && !ParseCompression(m.compression)) {
    r.Fail(where + ": \"compression\" is not \"zstd:<level 1..22>\"");
  }
  m.object_bytes = r.Unsigned("object_bytes", kMinObjectBytes, kMaxObjectBytes);
  const json* objects = r.Array("objects");
  if (r.ok() && objects->size() > kMaxObjects) {
    r.Fail(fmt::format("{}: {} objects, at most {} allowed", where, objects->size(), kMaxObjects));
  }
  if (!r.ok()) return Error(StatusCode::kCorruption, "{}", r.error());

  uint64_t logical_sum = 0, stored_sum = 0;
  m.objects.reserve(objects->size());
  for (size_t i = 0; i < objects->size(); ++i) {
    const json& item = (*objects)[i];
    const std::string item_where = fmt::format("{}: object {}", where, i);
    if (!item.is_object()) {
      return Error(StatusCode::kCorruption, "{} is not a JSON object", item_where);
    }
    FieldReader o(item, item_where);
    o.OnlyFields({"index", "logical_bytes", "stored_bytes", "sha256"});
    ObjectEntry e;
    e.index = o.Unsigned("index", 0, kMaxObjectIndex);
    if (o.ok() && e.index != i) o.Fail(fmt::format("{} has index {}", item_where, e.index));
    // The writer cuts every object but the last at exactly object_bytes.
    const bool last = i + 1 == objects->size();
    e.logical_bytes = o.Unsigned("logical_bytes", last ? 1 : m.object_bytes, m.object_bytes);
    e.stored_bytes = o.Unsigned("stored_bytes", kObjectHeaderBytes + kObjectTagBytes,
                                MaxStoredBytes(o.ok() ? e.logical_bytes : 0));
    e.sha256 = o.String("sha256", 64);
    if (o.ok() && !internal::IsLowerHex(e.sha256, 64)) {
      o.Fail(item_where + ": \"sha256\" is not 64 hex digits");
    }
    if (!o.ok()) return Error(StatusCode::kCorruption, "{}", o.error());
    // Each term is at most 1 GiB and there are at most 10^6 of them: no overflow.
    logical_sum += e.logical_bytes;
    stored_sum += e.stored_bytes;
    m.objects.push_back(std::move(e));
  }
  if (logical_sum != m.logical_bytes) {
    return Error(StatusCode::kCorruption,
                 "{}: its objects hold {} logical bytes, \"logical_bytes\" says {}", where,
                 logical_sum, m.logical_bytes);
  }
  if (stored_sum != m.stored_bytes) {
    return Error(StatusCode::kCorruption,
                 "{}: its objects hold {} stored bytes, \"stored_bytes\" says {}", where,
                 stored_sum, m.stored_bytes);
  }
  return m;
}

std::string SerializeChecks(const BackupChecks& c, std::string_view backup_id,
                            const BackupKey& key) {
  json body = {{"format", kManifestFormat},
               {"backup_id", backup_id},
               {"key_id", key.id},
               {"verified_at_ms", c.verified_at_ms},
               {"verify_error", c.verify_error},
               {"restore_tested_at_ms", c.restore_tested_at_ms},
               {"restore_test_error", c.restore_test_error},
               {"restore_test_tables", c.restore_test_tables},
               {"restore_test_rows", c.restore_test_rows},
               {"restore_test_seconds", c.restore_test_seconds}};
  body["mac"] = MacOfBody(body, internal::MacKind::kChecks, key);
  return body.dump(1, ' ', false, json::error_handler_t::replace);
}

Result<BackupChecks> ParseChecks(std::string_view text, std::string_view backup_id,
                                 const BackupKey& key) {
  json body;
  std::string id;
  REPLBOOT_RETURN_IF_ERROR(
      OpenDocument(text, internal::MacKind::kChecks, key, "checks", kMaxChecksBytes, &body, &id));
  const std::string where = "checks of backup " + id;
  FieldReader r(body, where);
  r.OnlyFields({"format", "backup_id", "key_id", "verified_at_ms", "verify_error",
                "restore_tested_at_ms", "restore_test_error", "restore_test_tables",
                "restore_test_rows", "restore_test_seconds"});
  std::string named = r.String("backup_id", 16);
  if (r.ok() && named != backup_id) {
    r.Fail(fmt::format("{}: they are the checks of backup \"{}\", not of {} (copied here?)", where,
                       named, backup_id));
  }
  BackupChecks c;
  c.verified_at_ms = r.Time("verified_at_ms", 0);
  c.verify_error = r.String("verify_error", kMaxCheckErrorChars);
  c.restore_tested_at_ms = r.Time("restore_tested_at_ms", 0);
  c.restore_test_error = r.String("restore_test_error", kMaxCheckErrorChars);
  c.restore_test_tables = r.Unsigned("restore_test_tables", 0, UINT64_MAX);
  c.restore_test_rows = r.Unsigned("restore_test_rows", 0, UINT64_MAX);
  c.restore_test_seconds = r.Seconds("restore_test_seconds");
  if (!r.ok()) return Error(StatusCode::kCorruption, "{}", r.error());
  return c;
}

}  // namespace replboot::archive
