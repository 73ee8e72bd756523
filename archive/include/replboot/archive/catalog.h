// The backups in a store, as the layout (layout.h) holds them: what is there, which are
// complete, the newest of a cluster, and removing one. A backup is complete when its manifest
// parses (MAC, key, every field) and the listing shows each of its objects at its size; no
// object is read here (reader.h VerifyBackup does that).
#ifndef REPLBOOT_ARCHIVE_CATALOG_H_
#define REPLBOOT_ARCHIVE_CATALOG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/archive/keys.h"
#include "replboot/archive/manifest.h"
#include "replboot/base/status.h"
#include "replboot/store/object_store.h"

namespace replboot::archive {

struct BackupEntry {
  std::string id;
  std::optional<Manifest> manifest;  // when it parsed
  // Why the backup is not complete ("no manifest (incomplete, or being written)", the
  // manifest's parse error, objects missing), or a problem with its checks ("checks.json: …",
  // which leaves it complete). "" when none.
  std::string problem;
  std::optional<BackupChecks> checks;  // when checks.json exists and parsed
  bool complete = false;
  uint64_t stored_objects = 0;  // object keys the listing shows
};

// Every backup id under "backups/", oldest first: one List, then each manifest (and checks)
// fetched. Keys that are not of the layout are ignored. A store error (unavailable, denied)
// fails the whole listing; a bad document only its entry.
Result<std::vector<BackupEntry>> ListBackups(store::ObjectStore& store, const BackupKey& key);

// The manifest of backup `id`, checked to be that backup's. kNotFound when it has none.
Result<Manifest> LoadManifest(store::ObjectStore& store, const BackupKey& key, std::string_view id);

// The newest complete backup of `cluster_id` (by finished_at_ms, then id). kNotFound when
// there is none.
Result<Manifest> LatestBackup(store::ObjectStore& store, const BackupKey& key,
                              std::string_view cluster_id);
// The same choice among entries already listed; nullptr when there is none.
const Manifest* NewestComplete(const std::vector<BackupEntry>& entries,
                               std::string_view cluster_id);

// Removes backup `id`: the manifest FIRST (from then on no reader takes it for whole), then its
// objects, its checks, anything else under its prefix, and its claim. Deleting again finishes
// a deletion that was cut short.
Status DeleteBackup(store::ObjectStore& store, std::string_view id);

// Records `checks` for backup `id`, which must have a manifest this key reads. The errors are
// stored as ParseChecks reads them: printable ASCII (a line break becomes " | ", any other
// byte '?'), cut at kMaxCheckErrorChars, so a tool's multi-line message or a UTF-8 path never
// makes the record unreadable.
Status WriteChecks(store::ObjectStore& store, const BackupKey& key, std::string_view id,
                   const BackupChecks& checks);
Result<std::optional<BackupChecks>> LoadChecks(store::ObjectStore& store, const BackupKey& key,
                                               std::string_view id);

// Claims backup `id` for `node` (PutIfAbsent of claims/<id>): true when this call won it, false
// when another node holds it. Nodes that compute the same scheduled id take it once.
Result<bool> ClaimBackup(store::ObjectStore& store, std::string_view id, std::string_view node,
                         int64_t now_ms);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_CATALOG_H_
