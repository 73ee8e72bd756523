// The manifest of a backup (backups/<id>/manifest.json) and its later records
// (backups/<id>/checks.json), as JSON with an HMAC-SHA256 "mac" under the backup key's MAC
// subkey over a canonical serialization (the document without "mac", keys sorted, compact).
//
// The manifest is written last, after every object was uploaded and read back: a backup
// exists once its manifest does. It lists each object's logical and stored sizes and the
// SHA-256 of its stored bytes, so a reader checks an object before opening it, and the MAC
// makes the whole list tamper-evident: an object removed, added or replaced, or a field
// edited, is detected by a reader holding the key.
//
// Parsing is strict because the store is hostile: every field present with its type, no
// unknown field, numbers in range, objects indexed 0..n-1 in order and cut at object_bytes,
// sums equal to the totals, ids and hex well-formed, sizes bounded.
#ifndef REPLBOOT_ARCHIVE_MANIFEST_H_
#define REPLBOOT_ARCHIVE_MANIFEST_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/archive/keys.h"
#include "replboot/base/status.h"

namespace replboot::archive {

inline constexpr int kManifestFormat = 1;
// Bounds of WriterOptions::object_bytes, and of what a manifest may claim.
inline constexpr uint64_t kMinObjectBytes = 4096;
inline constexpr uint64_t kMaxObjectBytes = uint64_t{1} << 30;
// At most this many objects (16 TiB of 16 MiB objects): the manifest stays under ~150 MiB.
inline constexpr uint64_t kMaxObjects = 1'000'000;
// What a reader accepts for manifest.json and checks.json (Get's max_bytes).
inline constexpr uint64_t kMaxManifestBytes = 256ull << 20;
inline constexpr uint64_t kMaxChecksBytes = 1ull << 20;

struct ObjectEntry {
  uint64_t index = 0;
  uint64_t logical_bytes = 0;
  uint64_t stored_bytes = 0;
  std::string sha256;  // lowercase hex of the STORED bytes

  bool operator==(const ObjectEntry&) const = default;
};

struct Manifest {
  int format = kManifestFormat;
  std::string backup_id;
  std::string cluster_id;
  std::string node;
  std::string flavour;  // "mariadb" | "mysql"
  std::string server_version;
  std::string tool_version;
  std::string gtid_position;
  std::string binlog_file;
  uint64_t binlog_position = 0;
  int64_t started_at_ms = 0;  // Unix ms; 0 < started_at_ms <= finished_at_ms
  int64_t finished_at_ms = 0;
  uint64_t logical_bytes = 0;  // sum of the objects' logical_bytes: the stream's length
  uint64_t stored_bytes = 0;   // sum of the objects' stored_bytes
  std::string key_id;          // BackupKey::id of the key that sealed the objects
  std::string compression;     // "zstd:<level>", e.g. "zstd:1"
  uint64_t object_bytes = 0;   // the cut: every object but the last holds exactly this much
  std::vector<ObjectEntry> objects;

  bool operator==(const Manifest&) const = default;
};

// The manifest as JSON with its "mac". The manifest should pass ParseManifest (the writer
// checks that before it uploads one); nothing here validates it.
std::string SerializeManifest(const Manifest& manifest, const BackupKey& key);

// Strict parse (see above). kPermissionDenied "manifest of backup X was made with key A, this
// node's key is B" when key ids differ; kCorruption "manifest of backup X fails its MAC
// (changed, or not written by a holder of the key)"; kCorruption naming the field for any
// other defect.
Result<Manifest> ParseManifest(std::string_view json, const BackupKey& key);

// The longest error a checks record holds (verify_error, restore_test_error).
inline constexpr size_t kMaxCheckErrorChars = 4096;

// What was found out about a backup after it was taken. A time of 0 means "never".
struct BackupChecks {
  int64_t verified_at_ms = 0;
  std::string verify_error;  // "" when the last verification passed
  int64_t restore_tested_at_ms = 0;
  std::string restore_test_error;
  uint64_t restore_test_tables = 0;
  uint64_t restore_test_rows = 0;
  double restore_test_seconds = 0;

  bool operator==(const BackupChecks&) const = default;
};

// Checks are bound to their backup: the MAC covers `backup_id` and the key id, so the checks of
// one backup cannot be copied next to another one (ParseChecks then fails).
std::string SerializeChecks(const BackupChecks& checks, std::string_view backup_id,
                            const BackupKey& key);
Result<BackupChecks> ParseChecks(std::string_view json, std::string_view backup_id,
                                 const BackupKey& key);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_MANIFEST_H_
