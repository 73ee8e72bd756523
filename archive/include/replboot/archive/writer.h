// Writes one backup into an object store: the stream's bytes go in through Write() as they
// arrive, are cut into objects of exactly `object_bytes` (the last one shorter), compressed as
// they come and sealed (object.h) by one thread of the writer's own and uploaded by another,
// which reads each object back from the store and checks it (size, SHA-256) right after its
// upload, while the next one is compressed; Finish() waits for the last, lists the store's
// objects of the backup against those read back, then writes the manifest, last. Until then
// there is no backup, only objects a catalog lists as incomplete.
//
// Memory is bounded whatever the backup's size and never holds an object's plaintext: a few
// 1 MiB pieces of the stream (at most 4 queued, one being filled, one being compressed), two
// sealed buffers (one being compressed into, one being uploaded) and the object being read
// back: 6 MiB + 3 x MaxStoredBytes(object_bytes) at most, of which a sealed buffer's resident
// part is only what its compressed object covers. When the store is slower than the stream,
// Write() waits for room: the backup runs at the store's pace instead of buffering it.
//
// The writer refuses a backup id that already has anything in the store. Two nodes that might
// take the same (scheduled) id settle who does first, with a claim (catalog.h ClaimBackup).
#ifndef REPLBOOT_ARCHIVE_WRITER_H_
#define REPLBOOT_ARCHIVE_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stop_token>
#include <string>

#include "replboot/archive/keys.h"
#include "replboot/archive/manifest.h"
#include "replboot/base/status.h"
#include "replboot/store/object_store.h"

namespace replboot::archive {

struct WriterProgress {
  uint64_t logical_bytes = 0;  // stream bytes in uploaded objects
  uint64_t stored_bytes = 0;   // bytes those objects take in the store
  uint64_t objects = 0;        // objects uploaded
  double seconds = 0;          // since Create()
  double logical_bytes_per_second = 0;
};

struct WriterOptions {
  std::string backup_id;  // IsBackupId(); e.g. NewBackupId(now) or SlotBackupId(slot)
  BackupKey key;
  size_t object_bytes = 16 << 20;  // kMinObjectBytes..kMaxObjectBytes
  int zstd_level = 1;              // 1..19
  // Called on the writer's upload thread after each object is uploaded and read back: keep it
  // short, and synchronise what it touches.
  std::function<void(const WriterProgress&)> on_progress;
  // Write() and Finish() return kCancelled once a stop is requested; the writer uploads no
  // further object.
  std::stop_token stop;
  // Called by Finish() once every object is uploaded and read back, just before the manifest
  // is written: an error fails Finish() (no manifest; Abort() cleans up). A scheduled backup
  // checks there that its slot was not taken over.
  std::function<Status()> before_manifest;
};

// Write(), Finish() and Abort() are called from one thread (the one receiving the stream).
// `store` must outlive the writer.
class BackupWriter {
 public:
  // Checks the options and that the store holds nothing under backups/<id>/ (one List).
  static Result<std::unique_ptr<BackupWriter>> Create(store::ObjectStore& store,
                                                      WriterOptions options);
  BackupWriter(const BackupWriter&) = delete;
  BackupWriter& operator=(const BackupWriter&) = delete;
  // Abort() unless Finish() succeeded.
  ~BackupWriter();

  // Takes the next bytes of the stream (copied; `bytes` may be reused on return). Returns at
  // once unless a full object waits for the worker, then waits for it. A failed seal or upload
  // fails the next Write() (and Finish()) with its error (the store retries what may pass;
  // the writer does not retry objects); so do a stop and a call after Finish() or Abort().
  Status Write(std::span<const uint8_t> bytes);

  // Ends the stream: uploads the last object and waits until every object was read back
  // (Get) and matched its size and SHA-256, lists the backup's objects (each present once, with
  // its size, no other), then writes the manifest (PutIfAbsent, so an existing one is never
  // replaced) and returns it. `metadata` supplies what the writer
  // cannot know (cluster, node, flavour, versions, position; started/finished_at_ms, set to
  // Create's and Finish's time when 0); the writer fills backup_id, key_id, compression,
  // object_bytes, objects and the totals. Any failure: an error and no manifest (Abort() or
  // the destructor then removes the objects).
  Result<Manifest> Finish(Manifest metadata);

  // Stops the worker and removes whatever this writer uploaded (best effort, logged). A no-op
  // after a successful Finish().
  void Abort();

  // Bytes of buffers the writer holds now, and the most it ever held: the bound above, made
  // visible for tests and metrics.
  size_t buffered_bytes() const;
  size_t max_buffered_bytes() const;

 private:
  struct State;
  explicit BackupWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_WRITER_H_
