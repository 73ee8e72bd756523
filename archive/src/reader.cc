#include "replboot/archive/reader.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "crypto.h"
#include "replboot/archive/layout.h"
#include "replboot/archive/object.h"
#include "object_internal.h"

namespace replboot::archive {
namespace {

Status CheckKeyId(const Manifest& manifest, const BackupKey& key) {
  if (manifest.key_id == key.id) return Status::Ok();
  return Status(StatusCode::kPermissionDenied,
                fmt::format("backup {} was made with key {}, this node's key is {}",
                            manifest.backup_id, manifest.key_id, key.id));
}

// What the sink gets per call: an object is decompressed piece by piece straight into it, so
// no buffer of an object's logical size (16 MiB by default) is held at all.
constexpr size_t kSinkPieceBytes = 1 << 20;

// An object fetched, checked against the manifest and authenticated: its zstd frame lies in
// `stored` (decrypted in place).
struct FetchedObject {
  std::vector<uint8_t> stored;
  internal::OpenedFrame frame;
};

// Fetches object `e` and checks it against the manifest; `open` also authenticates it in
// place (tag, one zstd frame of the manifest's logical size), ready to decompress.
Result<FetchedObject> FetchObject(store::ObjectStore& store, const Manifest& manifest,
                                  const BackupKey& key, const ObjectEntry& e, bool open) {
  const std::string object_key = ObjectKey(manifest.backup_id, e.index);
  const std::string what = fmt::format("object {} of backup {}", e.index, manifest.backup_id);
  // At most the manifest's size: a store that returns more is refused without being read whole.
  auto stored = store.Get(object_key, e.stored_bytes);
  if (!stored) {
    if (stored.error().code() == StatusCode::kNotFound) {
      return Error(StatusCode::kNotFound, "{} is missing (key {} in {})", what, object_key,
                   store.Describe());
    }
    return Error(stored.error().WithContext("reading " + what));
  }
  if (stored->size() != e.stored_bytes) {
    return Error(StatusCode::kCorruption, "{}: {} bytes in the store, the manifest says {}", what,
                 stored->size(), e.stored_bytes);
  }
  if (internal::Sha256Hex(*stored) != e.sha256) {
    return Error(StatusCode::kCorruption,
                 "{}: its SHA-256 is not the manifest's (changed or replaced in the store)", what);
  }
  FetchedObject out{std::move(*stored), {}};
  if (!open) return out;
  auto frame = internal::AuthenticateInPlace(key, manifest.backup_id, e.index, out.stored,
                                             manifest.object_bytes);
  if (!frame) return Error(frame.error());
  if (frame->logical != e.logical_bytes) {
    return Error(StatusCode::kCorruption, "{}: {} logical bytes, the manifest says {}", what,
                 frame->logical, e.logical_bytes);
  }
  out.frame = *frame;  // points into out.stored's heap buffer, which moves with the vector
  return out;
}

// The prefetcher: fetches the objects in order, each into `ready` once the reader took the
// one before, so one object is decompressed into the sink while the next is fetched and
// checked (two stored objects in memory at most).
class Prefetcher {
 public:
  Prefetcher(store::ObjectStore& store, const Manifest& manifest, const BackupKey& key)
      : store_(store), manifest_(manifest), key_(key) {
    worker_ = std::thread([this] { Run(); });
  }
  ~Prefetcher() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      changed_.notify_all();
    }
    worker_.join();
  }

  // The next object, waiting for it; kCancelled once `stop` is requested.
  Result<FetchedObject> Next(const std::stop_token& stop) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, stop, [&] { return ready_.has_value(); });
    if (!ready_) {
      return Error(StatusCode::kCancelled, "reading backup {} cancelled", manifest_.backup_id);
    }
    Result<FetchedObject> out = std::move(*ready_);
    ready_.reset();
    changed_.notify_all();
    return out;
  }

 private:
  void Run() {
    for (const ObjectEntry& e : manifest_.objects) {
      auto fetched = FetchObject(store_, manifest_, key_, e, /*open=*/true);
      const bool failed = !fetched.has_value();
      std::unique_lock lock(mu_);
      changed_.wait(lock, [&] { return !ready_ || stopping_; });
      if (stopping_) return;
      ready_ = std::move(fetched);
      changed_.notify_all();
      if (failed) return;
      // Wait until the reader took it before fetching the next: one ahead, not more.
      changed_.wait(lock, [&] { return !ready_ || stopping_; });
      if (stopping_) return;
    }
  }

  store::ObjectStore& store_;
  const Manifest& manifest_;
  const BackupKey& key_;
  std::mutex mu_;
  std::condition_variable_any changed_;
  std::optional<Result<FetchedObject>> ready_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace

Status ReadBackup(store::ObjectStore& store, const Manifest& manifest, const BackupKey& key,
                  const std::function<Status(std::span<const uint8_t>)>& sink,
                  const ReadOptions& options) {
  REPLBOOT_RETURN_STATUS_IF_ERROR(CheckKeyId(manifest, key));
  const auto start = std::chrono::steady_clock::now();
  ReadProgress progress;
  progress.objects_total = manifest.objects.size();
  progress.logical_total = manifest.logical_bytes;
  if (manifest.objects.empty()) return Status::Ok();
  Prefetcher prefetcher(store, manifest, key);
  for (const ObjectEntry& e : manifest.objects) {
    if (options.stop.stop_requested()) {
      return Status(StatusCode::kCancelled,
                    fmt::format("reading backup {} cancelled", manifest.backup_id));
    }
    auto object = prefetcher.Next(options.stop);
    if (!object) return object.error();
    Status written = internal::DecompressFrame(
        manifest.backup_id, e.index, object->frame, kSinkPieceBytes,
        [&](std::span<const uint8_t> piece) -> Status {
          if (options.stop.stop_requested()) {
            return Status(StatusCode::kCancelled,
                          fmt::format("reading backup {} cancelled", manifest.backup_id));
          }
          return sink(piece);
        });
    REPLBOOT_RETURN_STATUS_IF_ERROR(written);
    progress.objects++;
    progress.logical_bytes += object->frame.logical;
    progress.stored_bytes += e.stored_bytes;
    progress.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress.seconds > 0) {
      progress.logical_bytes_per_second =
          static_cast<double>(progress.logical_bytes) / progress.seconds;
    }
    if (options.on_progress) options.on_progress(progress);
  }
  return Status::Ok();
}

Status VerifyBackup(store::ObjectStore& store, const Manifest& manifest, const BackupKey& key,
                    bool deep) {
  REPLBOOT_RETURN_STATUS_IF_ERROR(CheckKeyId(manifest, key));
  for (const ObjectEntry& e : manifest.objects) {
    auto checked = FetchObject(store, manifest, key, e, deep);
    if (!checked) return checked.error();
    if (deep) {
      REPLBOOT_RETURN_STATUS_IF_ERROR(internal::DecompressFrame(
          manifest.backup_id, e.index, checked->frame, kSinkPieceBytes,
          [](std::span<const uint8_t>) { return Status::Ok(); }));
    }
  }
  return Status::Ok();
}

}  // namespace replboot::archive
