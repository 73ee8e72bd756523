// Reads a backup back as the stream it was written from: objects fetched in index order,
// one prefetched ahead on a worker thread, and each one checked before a byte of it reaches
// the sink: present, its size and SHA-256 those of the manifest, its tag (it is this object of
// this backup, sealed with this key), one zstd frame of its logical size. It is then
// decompressed into the sink in pieces of at most 1 MiB (memory: two stored objects and a
// piece, never an object's logical size). A failure stops the read at that object, naming
// it; the sink has then seen exactly the objects before it (only a frame that passed its tag
// yet does not decompress to its size, which only a holder of the key could make, is failed
// after part of it went to the sink).
#ifndef REPLBOOT_ARCHIVE_READER_H_
#define REPLBOOT_ARCHIVE_READER_H_

#include <cstdint>
#include <functional>
#include <span>
#include <stop_token>

#include "replboot/archive/keys.h"
#include "replboot/archive/manifest.h"
#include "replboot/base/status.h"
#include "replboot/store/object_store.h"

namespace replboot::archive {

struct ReadProgress {
  uint64_t objects = 0;  // objects passed to the sink
  uint64_t objects_total = 0;
  uint64_t logical_bytes = 0;  // bytes passed to the sink
  uint64_t logical_total = 0;
  uint64_t stored_bytes = 0;  // bytes of those objects in the store
  double seconds = 0;
  double logical_bytes_per_second = 0;
};

struct ReadOptions {
  // Called on the calling thread after each object went to the sink.
  std::function<void(const ReadProgress&)> on_progress;
  // Ends the read with kCancelled between objects.
  std::stop_token stop;
};

// Passes the backup's stream to `sink`, in order, at most 1 MiB per call; a sink error
// ends the read with that error. `manifest` comes from ParseManifest/LoadManifest (trusted:
// it passed its MAC). kPermissionDenied when it was made with another key; kNotFound "object
// N of backup X is missing (key …)"; kCorruption for an object that fails a check.
Status ReadBackup(store::ObjectStore& store, const Manifest& manifest, const BackupKey& key,
                  const std::function<Status(std::span<const uint8_t>)>& sink,
                  const ReadOptions& options);

// Checks every object of the backup: present, with the manifest's size and SHA-256; `deep`
// also opens each one (tag, zstd, logical size), which costs what a restore's reading does.
// Returns the first failure, named as ReadBackup names it.
Status VerifyBackup(store::ObjectStore& store, const Manifest& manifest, const BackupKey& key,
                    bool deep);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_READER_H_
