// Backups outside the cluster, wired from the configuration: the store and key of [archive],
// a backup taken from a node's backup server into the store, a restore from the store into a
// datadir, and the retention that follows a verified backup.
//
//   take:     claim the backup's id in the store (claims/<id>, written only if absent: two
//             nodes never upload one backup) → the donor's authenticated stream (the clone
//             protocol, clone/stream.h) → parsed on the way (every chunk's checksum, the
//             position files) → archive/'s writer (objects, read back and checked) → the
//             manifest, last
//   restore:  the manifest (MAC, key, cluster) → every object present → objects fetched,
//             checked, decrypted, in order → the clone's extractor into a staging dir →
//             --prepare → cluster id (and, for a primary, the promotion marker) → commit
//             marker → swap: the same never-a-half-datadir rules as a clone
#ifndef REPLBOOT_DAEMON_BACKUPS_H_
#define REPLBOOT_DAEMON_BACKUPS_H_

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "replboot/archive/catalog.h"
#include "replboot/archive/keys.h"
#include "replboot/archive/manifest.h"
#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/store/object_store.h"

namespace replboot::daemon {

// The store and the key of [archive], opened once.
struct Archive {
  std::unique_ptr<store::ObjectStore> store;
  archive::BackupKey key;
};
// kInvalidArgument when [archive] has no store, or its key or credentials cannot be read.
Result<std::unique_ptr<Archive>> OpenArchive(const NodeSettings& settings, std::stop_token stop = {});

struct TakeBackupOptions {
  std::string backup_id;     // archive::NewBackupId / SlotBackupId
  clone::Endpoint from;      // the backup server streaming it (usually this node's own)
  std::optional<int64_t> from_ordinal;
  std::stop_token stop;
  // Called with the writer's progress from the receiving thread.
  std::function<void(uint64_t logical_bytes, uint64_t stored_bytes, double bytes_per_second)>
      on_progress;
  // The caller claimed backup_id already (the scheduler claims before it takes).
  bool claimed = false;
  // Called once every object is uploaded and read back, before the manifest is written
  // (archive::WriterOptions::before_manifest): an error abandons the backup (no manifest). The scheduler checks there that no other node
  // took the slot over meanwhile.
  std::function<Status()> before_manifest;
  // The expected stream size (the previous backup's), for the ETA in the progress log; 0
  // unknown.
  uint64_t expected_bytes = 0;
};
// Ok with the manifest written; kAlreadyExists-like kInvalidArgument when another node
// claimed the id. A failure leaves no manifest: the backup does not exist.
Result<archive::Manifest> TakeBackup(const NodeSettings& settings, Archive& archive,
                                     const TakeBackupOptions& options);

// "latest" (the newest complete backup of `cluster`, or of the store's only cluster when
// `cluster` is "") or an id. Errors name what the store holds.
Result<archive::Manifest> ChooseBackup(Archive& archive, const std::string& which,
                                       const std::string& cluster);

struct RestoreOptions {
  std::string datadir;
  // The datadir will be the primary: the promotion marker (primary_recovery.h) goes in with
  // the restore, so its first start continues the backup's GTID history and clears the
  // replica's source.
  bool as_primary = true;
  std::stop_token stop;
  clone::CloneProgressCallback on_progress;
  // A point-in-time restore (pitr_restore.h): run on the prepared staging dir before the
  // promotion marker and the commit (the replay); an error discards the staging dir.
  std::function<Status(const std::string& staging)> before_marker;
  // The GTID state the promotion marker names, when not the backup's own (the replay's end).
  std::optional<std::string> gtid_state;
  // More fields for the promotion marker (a new history: primary_recovery.h FinishPromotion).
  nlohmann::json marker_extra = nlohmann::json::object();
};
Result<clone::CloneResult> RestoreBackup(const NodeSettings& settings, Archive& archive,
                                         const archive::Manifest& manifest,
                                         const RestoreOptions& options);

// Applies archive.keep_last / keep_days (archive/retention.h) to the complete, verified
// backups; `dry_run` only returns the plan. Backups without a manifest (abandoned) older than
// a day go too.
Result<std::vector<std::string>> PruneBackups(const NodeSettings& settings, Archive& archive,
                                              bool dry_run);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_BACKUPS_H_
