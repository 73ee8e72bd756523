#include "replboot/archive/catalog.h"

#include <map>
#include <nlohmann/json.hpp>
#include <span>

#include "replboot/archive/layout.h"

namespace replboot::archive {
namespace {

std::string_view AsText(const std::vector<uint8_t>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::span<const uint8_t> AsBytes(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

Status CheckId(std::string_view id) {
  if (IsBackupId(id)) return Status::Ok();
  return Status(StatusCode::kInvalidArgument,
                fmt::format("\"{}\" is not a backup id (like 20261207T061500Z)", id));
}

// What a store error means for one entry: a document that is too large or vanished is that
// entry's problem; anything else (the store is down, access denied) fails the listing.
bool IsEntryProblem(const Status& status) {
  return status.code() == StatusCode::kNotFound || status.code() == StatusCode::kCorruption;
}

// A manifest read from backups/<id>/manifest.json: it must parse and be that backup's.
Result<Manifest> ParseStoredManifest(const std::vector<uint8_t>& bytes, const BackupKey& key,
                                     std::string_view id) {
  auto manifest = ParseManifest(AsText(bytes), key);
  if (!manifest) return manifest;
  if (manifest->backup_id != id) {
    return Error(StatusCode::kCorruption,
                 "the manifest at {} is the manifest of backup {} (copied or moved there)",
                 ManifestKey(id), manifest->backup_id);
  }
  return manifest;
}

struct Listed {
  bool has_manifest = false;
  bool has_checks = false;
  std::map<uint64_t, uint64_t> object_sizes;
};

}  // namespace

Result<std::vector<BackupEntry>> ListBackups(store::ObjectStore& store, const BackupKey& key) {
  auto listed = store.List(std::string(kBackupsPrefix));
  if (!listed) {
    return Error(listed.error().WithContext("listing the backups in " + store.Describe()));
  }
  std::map<std::string, Listed> ids;
  for (const store::ObjectInfo& info : *listed) {
    auto parts = SplitBackupKey(info.key);
    if (!parts) continue;
    Listed& l = ids[parts->backup_id];
    if (parts->rest == "manifest.json") {
      l.has_manifest = true;
    } else if (parts->rest == "checks.json") {
      l.has_checks = true;
    } else if (auto index = ObjectIndexOf(parts->rest)) {
      l.object_sizes[*index] = info.size;
    }
  }

  std::vector<BackupEntry> entries;
  for (auto& [id, l] : ids) {
    BackupEntry entry;
    entry.id = id;
    entry.stored_objects = l.object_sizes.size();
    if (!l.has_manifest) {
      entry.problem = l.object_sizes.empty() ? "no manifest and no objects"
                                             : "no manifest (incomplete, or being written)";
    } else if (auto bytes = store.Get(ManifestKey(id), kMaxManifestBytes); !bytes) {
      if (!IsEntryProblem(bytes.error())) {
        return Error(bytes.error().WithContext(
            fmt::format("reading the manifest of backup {} from {}", id, store.Describe())));
      }
      entry.problem = "manifest.json: " + bytes.error().message();
    } else if (auto manifest = ParseStoredManifest(*bytes, key, id); !manifest) {
      entry.problem = manifest.error().message();
    } else {
      uint64_t missing = 0, wrong_size = 0;
      for (const ObjectEntry& o : manifest->objects) {
        auto it = l.object_sizes.find(o.index);
        if (it == l.object_sizes.end()) {
          missing++;
        } else if (it->second != o.stored_bytes) {
          wrong_size++;
        }
      }
      if (missing > 0 || wrong_size > 0) {
        entry.problem = fmt::format("{} of its {} objects missing, {} of another size", missing,
                                    manifest->objects.size(), wrong_size);
      } else {
        entry.complete = true;
      }
      entry.manifest = std::move(*manifest);
    }
    if (l.has_checks && entry.manifest) {
      auto bytes = store.Get(ChecksKey(id), kMaxChecksBytes);
      if (!bytes && !IsEntryProblem(bytes.error())) {
        return Error(bytes.error().WithContext(
            fmt::format("reading the checks of backup {} from {}", id, store.Describe())));
      }
      auto checks = bytes ? ParseChecks(AsText(*bytes), id, key) : Error(bytes.error());
      if (checks) {
        entry.checks = std::move(*checks);
      } else if (entry.problem.empty()) {
        entry.problem = "checks.json: " + checks.error().message();
      }
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<Manifest> LoadManifest(store::ObjectStore& store, const BackupKey& key,
                              std::string_view id) {
  REPLBOOT_RETURN_IF_ERROR(CheckId(id));
  const std::string manifest_key = ManifestKey(id);
  auto bytes = store.Get(manifest_key, kMaxManifestBytes);
  if (!bytes) {
    if (bytes.error().code() == StatusCode::kNotFound) {
      return Error(StatusCode::kNotFound, "backup {} has no manifest in {} (not a complete backup)",
                   id, store.Describe());
    }
    return Error(bytes.error().WithContext(
        fmt::format("reading the manifest of backup {} from {}", id, store.Describe())));
  }
  return ParseStoredManifest(*bytes, key, id);
}

const Manifest* NewestComplete(const std::vector<BackupEntry>& entries,
                               std::string_view cluster_id) {
  const Manifest* latest = nullptr;
  for (const BackupEntry& e : entries) {
    if (!e.complete || e.manifest->cluster_id != cluster_id) continue;
    if (latest == nullptr || e.manifest->finished_at_ms > latest->finished_at_ms ||
        (e.manifest->finished_at_ms == latest->finished_at_ms &&
         e.manifest->backup_id > latest->backup_id)) {
      latest = &*e.manifest;
    }
  }
  return latest;
}

Result<Manifest> LatestBackup(store::ObjectStore& store, const BackupKey& key,
                              std::string_view cluster_id) {
  auto entries = ListBackups(store, key);
  if (!entries) return Error(entries.error());
  const Manifest* latest = NewestComplete(*entries, cluster_id);
  if (latest == nullptr) {
    return Error(StatusCode::kNotFound, "no complete backup of cluster {} in {}", cluster_id,
                 store.Describe());
  }
  return *latest;
}

Status DeleteBackup(store::ObjectStore& store, std::string_view id) {
  REPLBOOT_RETURN_STATUS_IF_ERROR(CheckId(id));
  auto context = [&](const Status& status) {
    return status.WithContext(fmt::format("deleting backup {} from {}", id, store.Describe()));
  };
  Status removed = store.Delete(ManifestKey(id));
  if (!removed.ok()) return context(removed);
  auto listed = store.List(BackupPrefix(id));
  if (!listed) return context(listed.error());
  // Objects first, then the rest (checks.json, strays): the listing is sorted, so take objects
  // in a first pass.
  for (int pass = 0; pass < 2; ++pass) {
    for (const store::ObjectInfo& info : *listed) {
      const bool is_object = info.key.starts_with(ObjectsPrefix(id));
      if (is_object != (pass == 0)) continue;
      removed = store.Delete(info.key);
      if (!removed.ok()) return context(removed);
    }
  }
  removed = store.Delete(ClaimKey(id));
  if (!removed.ok()) return context(removed);
  return Status::Ok();
}

namespace {

std::string RecordableError(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      if (i + 1 < text.size()) out += " | ";
    } else if (c == '\t') {
      out += ' ';
    } else if (c >= 0x20 && c <= 0x7e) {
      out += static_cast<char>(c);
    } else if (c != '\r') {
      out += '?';
    }
  }
  if (out.size() > kMaxCheckErrorChars) {
    out.resize(kMaxCheckErrorChars - 3);
    out += "...";
  }
  return out;
}

}  // namespace

Status WriteChecks(store::ObjectStore& store, const BackupKey& key, std::string_view id,
                   const BackupChecks& checks) {
  auto manifest = LoadManifest(store, key, id);
  if (!manifest) return manifest.error().WithContext("recording checks");
  BackupChecks recorded = checks;
  recorded.verify_error = RecordableError(checks.verify_error);
  recorded.restore_test_error = RecordableError(checks.restore_test_error);
  std::string text = SerializeChecks(recorded, id, key);
  Status put = store.Put(ChecksKey(id), AsBytes(text));
  if (!put.ok()) {
    return put.WithContext(
        fmt::format("writing the checks of backup {} to {}", id, store.Describe()));
  }
  return Status::Ok();
}

Result<std::optional<BackupChecks>> LoadChecks(store::ObjectStore& store, const BackupKey& key,
                                               std::string_view id) {
  REPLBOOT_RETURN_IF_ERROR(CheckId(id));
  auto bytes = store.Get(ChecksKey(id), kMaxChecksBytes);
  if (!bytes) {
    if (bytes.error().code() == StatusCode::kNotFound) return std::optional<BackupChecks>();
    return Error(bytes.error().WithContext(
        fmt::format("reading the checks of backup {} from {}", id, store.Describe())));
  }
  auto checks = ParseChecks(AsText(*bytes), id, key);
  if (!checks) return Error(checks.error());
  return std::optional<BackupChecks>(std::move(*checks));
}

Result<bool> ClaimBackup(store::ObjectStore& store, std::string_view id, std::string_view node,
                         int64_t now_ms) {
  REPLBOOT_RETURN_IF_ERROR(CheckId(id));
  nlohmann::json claim = {{"backup_id", id}, {"node", node}, {"claimed_at_ms", now_ms}};
  std::string text = claim.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto won = store.PutIfAbsent(ClaimKey(id), AsBytes(text));
  if (!won) {
    return Error(
        won.error().WithContext(fmt::format("claiming backup {} in {}", id, store.Describe())));
  }
  return *won;
}

}  // namespace replboot::archive
