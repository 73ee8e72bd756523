#include "replboot/archive/writer.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "crypto.h"
#include "replboot/archive/layout.h"
#include "replboot/archive/object.h"
#include "replboot/base/log.h"

namespace replboot::archive {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// The hand-off between the caller's thread (the producer: fills `filling`) and the worker
// (seals and uploads). `slot` is the one filled object handed over: the producer waits while
// it is taken, and the worker frees it once the object is sealed, so the buffers alive are
// `filling`, `slot` (or `spare`, the slot's buffer back for reuse) and the sealed bytes.
struct BackupWriter::State {
  enum class Phase { kOpen, kFinished, kFailed, kAborted };
  struct Filled {
    uint64_t index = 0;
    std::vector<uint8_t> bytes;
  };

  State(store::ObjectStore& s, WriterOptions o) : store(s), options(std::move(o)) {}

  store::ObjectStore& store;
  const WriterOptions options;
  const int64_t created_at_ms = NowMs();
  const std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
  Phase phase = Phase::kOpen;  // the caller's thread only

  // Producer only.
  std::vector<uint8_t> filling;
  uint64_t next_index = 0;

  mutable std::mutex mu;
  std::condition_variable_any changed;
  std::optional<Filled> slot;
  std::vector<uint8_t> spare;
  bool input_ended = false;
  bool aborting = false;
  Status worker_error;
  std::vector<ObjectEntry> uploaded;  // in index order
  uint64_t uploaded_logical = 0, uploaded_stored = 0;
  size_t buffered = 0, max_buffered = 0;

  std::thread worker;

  void AddBuffered(size_t bytes) {
    std::lock_guard lock(mu);
    buffered += bytes;
    max_buffered = std::max(max_buffered, buffered);
  }
  void SubBuffered(size_t bytes) {
    std::lock_guard lock(mu);
    buffered -= bytes;
  }

  std::string What(uint64_t index) const {
    return fmt::format("object {} of backup {}", index, options.backup_id);
  }

  void Fail(Status status) {
    std::lock_guard lock(mu);
    if (worker_error.ok()) worker_error = std::move(status);
    changed.notify_all();
  }

  void Work() {
    for (;;) {
      uint64_t index = 0;
      std::span<const uint8_t> plaintext;  // valid until the slot is reset
      {
        std::unique_lock lock(mu);
        changed.wait(lock, [&] { return slot.has_value() || input_ended || aborting; });
        if (aborting || !slot) return;
        // The producer leaves the slot alone until it is reset: seal from it in place.
        index = slot->index;
        plaintext = slot->bytes;
      }
      auto sealed =
          SealObject(options.key, options.backup_id, index, plaintext, options.zstd_level);
      if (sealed) AddBuffered(sealed->capacity());
      const uint64_t logical = plaintext.size();
      plaintext = {};
      {
        std::lock_guard lock(mu);
        if (spare.capacity() == 0) {
          spare = std::move(slot->bytes);
          spare.clear();
        } else {
          buffered -= slot->bytes.capacity();
        }
        slot.reset();
        changed.notify_all();
      }
      if (!sealed) return Fail(sealed.error());
      const size_t sealed_capacity = sealed->capacity();
      if (Aborting()) return SubBuffered(sealed_capacity);
      if (options.stop.stop_requested()) {
        SubBuffered(sealed_capacity);
        return Fail(
            Status(StatusCode::kCancelled, fmt::format("backup {} cancelled", options.backup_id)));
      }
      ObjectEntry entry{index, logical, sealed->size(), internal::Sha256Hex(*sealed)};
      Status put = store.Put(ObjectKey(options.backup_id, index), *sealed);
      sealed = {};
      SubBuffered(sealed_capacity);
      if (!put.ok()) {
        return Fail(
            put.WithContext(fmt::format("uploading {} to {}", What(index), store.Describe())));
      }
      WriterProgress progress;
      {
        std::lock_guard lock(mu);
        uploaded_logical += entry.logical_bytes;
        uploaded_stored += entry.stored_bytes;
        uploaded.push_back(std::move(entry));
        progress.logical_bytes = uploaded_logical;
        progress.stored_bytes = uploaded_stored;
        progress.objects = uploaded.size();
      }
      progress.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - created).count();
      if (progress.seconds > 0) {
        progress.logical_bytes_per_second =
            static_cast<double>(progress.logical_bytes) / progress.seconds;
      }
      if (options.on_progress) options.on_progress(progress);
    }
  }

  bool Aborting() const {
    std::lock_guard lock(mu);
    return aborting;
  }

  Status WorkerError() const {
    std::lock_guard lock(mu);
    return worker_error;
  }

  // Hands `filling` to the worker, waiting while the slot is taken.
  Status HandOff() {
    if (next_index >= kMaxObjects) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("backup {} would take more than {} objects of {} bytes",
                                options.backup_id, kMaxObjects, options.object_bytes));
    }
    std::unique_lock lock(mu);
    changed.wait(lock, options.stop, [&] { return !slot || !worker_error.ok(); });
    if (!worker_error.ok()) return worker_error;
    if (options.stop.stop_requested()) {
      return Status(StatusCode::kCancelled, fmt::format("backup {} cancelled", options.backup_id));
    }
    slot = Filled{next_index++, std::move(filling)};
    filling = std::move(spare);
    spare = {};
    changed.notify_all();
    return Status::Ok();
  }

  void EnsureFilling() {
    if (filling.capacity() >= options.object_bytes) return;
    size_t old = filling.capacity();
    filling.reserve(options.object_bytes);
    AddBuffered(filling.capacity() - old);
  }

  void StopWorker(bool abort) {
    {
      std::lock_guard lock(mu);
      input_ended = true;
      aborting = aborting || abort;
      changed.notify_all();
    }
    if (worker.joinable()) worker.join();
  }

  void ReleaseBuffers() {
    std::lock_guard lock(mu);
    buffered -= filling.capacity() + spare.capacity();
    filling = {};
    spare = {};
  }

  // Every object is in the store, exactly once, with the size and digest it was uploaded with.
  Status VerifyUploads() {
    auto listed = store.List(ObjectsPrefix(options.backup_id));
    if (!listed) {
      return listed.error().WithContext(fmt::format("listing the objects of backup {} in {}",
                                                    options.backup_id, store.Describe()));
    }
    std::map<std::string, uint64_t> sizes;
    for (const auto& info : *listed) sizes[info.key] = info.size;
    for (const ObjectEntry& e : uploaded) {
      auto it = sizes.find(ObjectKey(options.backup_id, e.index));
      if (it == sizes.end()) {
        return Status(StatusCode::kCorruption, fmt::format("{} is missing from {} after its upload",
                                                           What(e.index), store.Describe()));
      }
      sizes.erase(it);
    }
    if (!sizes.empty()) {
      return Status(
          StatusCode::kCorruption,
          fmt::format("{} holds {} object(s) of backup {} this writer did not upload "
                      "(e.g. {}): another writer of the same id?",
                      store.Describe(), sizes.size(), options.backup_id, sizes.begin()->first));
    }
    for (const ObjectEntry& e : uploaded) {
      if (options.stop.stop_requested()) {
        return Status(StatusCode::kCancelled,
                      fmt::format("backup {} cancelled", options.backup_id));
      }
      auto got = store.Get(ObjectKey(options.backup_id, e.index), e.stored_bytes);
      if (!got) {
        return got.error().WithContext(fmt::format("reading back {}", What(e.index)));
      }
      AddBuffered(got->capacity());
      const bool same = got->size() == e.stored_bytes && internal::Sha256Hex(*got) == e.sha256;
      SubBuffered(got->capacity());
      if (!same) {
        return Status(StatusCode::kCorruption,
                      fmt::format("{} read back from {} differs from what was uploaded",
                                  What(e.index), store.Describe()));
      }
    }
    return Status::Ok();
  }

  // Removes every object under the backup's prefix (those this writer uploaded, and one whose
  // upload failed halfway, if the store kept it).
  void RemoveUploads() {
    auto log = log::Get("archive");
    std::vector<std::string> keys;
    if (auto listed = store.List(ObjectsPrefix(options.backup_id))) {
      for (const auto& info : *listed) keys.push_back(info.key);
    } else {
      for (const ObjectEntry& e : uploaded) keys.push_back(ObjectKey(options.backup_id, e.index));
    }
    size_t failed = 0;
    Status first;
    for (const std::string& key : keys) {
      Status removed = store.Delete(key);
      if (!removed.ok() && failed++ == 0) first = removed;
    }
    if (failed > 0) {
      log->warn("event=backup_abort_cleanup_failed backup={} objects={} failed={} error={}",
                options.backup_id, keys.size(), failed, log::Quote(first.ToString()));
    } else if (!keys.empty()) {
      log->info("event=backup_aborted backup={} objects_removed={}", options.backup_id,
                keys.size());
    }
  }
};

BackupWriter::BackupWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}

BackupWriter::~BackupWriter() { Abort(); }

Result<std::unique_ptr<BackupWriter>> BackupWriter::Create(store::ObjectStore& store,
                                                           WriterOptions options) {
  if (!IsBackupId(options.backup_id)) {
    return Error(StatusCode::kInvalidArgument, "\"{}\" is not a backup id (like 20261207T061500Z)",
                 options.backup_id);
  }
  if (options.object_bytes < kMinObjectBytes || options.object_bytes > kMaxObjectBytes) {
    return Error(StatusCode::kInvalidArgument, "object size {} is outside {}..{} bytes",
                 options.object_bytes, kMinObjectBytes, kMaxObjectBytes);
  }
  if (options.zstd_level < 1 || options.zstd_level > 19) {
    return Error(StatusCode::kInvalidArgument, "zstd level {} is outside 1..19",
                 options.zstd_level);
  }
  if (!internal::IsLowerHex(options.key.id, 16)) {
    return Error(StatusCode::kInvalidArgument, "the backup key has no id (not a derived key)");
  }
  auto existing = store.List(BackupPrefix(options.backup_id));
  if (!existing) {
    return Error(existing.error().WithContext(
        fmt::format("checking that backup {} is new in {}", options.backup_id, store.Describe())));
  }
  if (!existing->empty()) {
    return Error(StatusCode::kInvalidArgument,
                 "backup {} already exists in {} ({} object(s) under {})", options.backup_id,
                 store.Describe(), existing->size(), BackupPrefix(options.backup_id));
  }
  auto state = std::make_unique<State>(store, std::move(options));
  State* raw = state.get();
  raw->worker = std::thread([raw] { raw->Work(); });
  return std::unique_ptr<BackupWriter>(new BackupWriter(std::move(state)));
}

Status BackupWriter::Write(std::span<const uint8_t> bytes) {
  State& s = *state_;
  if (s.phase != State::Phase::kOpen) {
    return Status(StatusCode::kInternal,
                  fmt::format("backup {}: Write after Finish or Abort", s.options.backup_id));
  }
  REPLBOOT_RETURN_STATUS_IF_ERROR(s.WorkerError());
  if (s.options.stop.stop_requested()) {
    return Status(StatusCode::kCancelled, fmt::format("backup {} cancelled", s.options.backup_id));
  }
  while (!bytes.empty()) {
    s.EnsureFilling();
    size_t take = std::min(bytes.size(), s.options.object_bytes - s.filling.size());
    s.filling.insert(s.filling.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(take));
    bytes = bytes.subspan(take);
    if (s.filling.size() == s.options.object_bytes) REPLBOOT_RETURN_STATUS_IF_ERROR(s.HandOff());
  }
  return Status::Ok();
}

Result<Manifest> BackupWriter::Finish(Manifest metadata) {
  State& s = *state_;
  const std::string& id = s.options.backup_id;
  if (s.phase != State::Phase::kOpen) {
    return Error(StatusCode::kInternal, "backup {}: Finish after Finish or Abort", id);
  }
  if (!metadata.backup_id.empty() && metadata.backup_id != id) {
    return Error(StatusCode::kInvalidArgument, "backup {}: Finish given the metadata of {}", id,
                 metadata.backup_id);
  }
  // From here on a failure leaves the writer failed: Abort() cleans up.
  s.phase = State::Phase::kFailed;
  Status handed = s.filling.empty() ? Status::Ok() : s.HandOff();
  s.StopWorker(/*abort=*/!handed.ok());
  s.ReleaseBuffers();
  REPLBOOT_RETURN_IF_ERROR(handed);
  REPLBOOT_RETURN_IF_ERROR(s.WorkerError());
  if (s.uploaded.size() != s.next_index) {
    return Error(StatusCode::kInternal, "backup {}: {} objects handed over, {} uploaded", id,
                 s.next_index, s.uploaded.size());
  }
  REPLBOOT_RETURN_IF_ERROR(s.VerifyUploads());
  if (s.options.before_manifest) REPLBOOT_RETURN_IF_ERROR(s.options.before_manifest());

  Manifest m = std::move(metadata);
  m.format = kManifestFormat;
  m.backup_id = id;
  m.key_id = s.options.key.id;
  m.compression = fmt::format("zstd:{}", s.options.zstd_level);
  m.object_bytes = s.options.object_bytes;
  m.objects = s.uploaded;
  m.logical_bytes = s.uploaded_logical;
  m.stored_bytes = s.uploaded_stored;
  if (m.started_at_ms == 0) m.started_at_ms = s.created_at_ms;
  if (m.finished_at_ms == 0) m.finished_at_ms = NowMs();
  std::string text = SerializeManifest(m, s.options.key);
  // Never upload a manifest that no reader would accept (bad metadata from the caller).
  if (auto check = ParseManifest(text, s.options.key); !check) {
    return Error(StatusCode::kInvalidArgument, "backup {}: the manifest would not be readable: {}",
                 id, check.error().message());
  }
  auto written = s.store.PutIfAbsent(
      ManifestKey(id), std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  if (!written) {
    return Error(written.error().WithContext(
        fmt::format("writing the manifest of backup {} to {}", id, s.store.Describe())));
  }
  if (!*written) {
    return Error(StatusCode::kInvalidArgument,
                 "backup {}: {} already holds a manifest for this id (another writer?)", id,
                 s.store.Describe());
  }
  s.phase = State::Phase::kFinished;
  return m;
}

void BackupWriter::Abort() {
  State& s = *state_;
  if (s.phase == State::Phase::kFinished || s.phase == State::Phase::kAborted) return;
  s.phase = State::Phase::kAborted;
  s.StopWorker(/*abort=*/true);
  s.ReleaseBuffers();
  {
    std::lock_guard lock(s.mu);
    if (s.slot) {
      s.buffered -= s.slot->bytes.capacity();
      s.slot.reset();
    }
  }
  s.RemoveUploads();
}

size_t BackupWriter::buffered_bytes() const {
  std::lock_guard lock(state_->mu);
  return state_->buffered;
}

size_t BackupWriter::max_buffered_bytes() const {
  std::lock_guard lock(state_->mu);
  return state_->max_buffered;
}

}  // namespace replboot::archive
