#include "replboot/archive/writer.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <zstd.h>

#include "crypto.h"
#include "replboot/archive/layout.h"
#include "replboot/archive/object.h"
#include "object_internal.h"
#include "replboot/base/log.h"

namespace replboot::archive {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// Three threads, each handing things to the next:
//
//   caller (producer)  copies the stream into pieces of at most kPieceBytes (never across an
//                      object's end) and queues them, waiting while kQueuedPieces wait
//   sealer             compresses the pieces of an object as they come (zstd's streaming API,
//                      the object's size pledged, so the frame is what SealObject makes) into
//                      a free sealed buffer, recycles each piece, and at the object's end seals
//                      it and hands it over in `to_upload`
//   uploader           uploads it, gives the buffer back to `free_sealed`, then reads the object
//                      back from the store and checks its size and SHA-256 before it counts as
//                      uploaded
//
// so zstd on object N+1 runs while object N is written, fsynced and read back (a file store's
// fsync or an S3 PUT is a wait, not work), and no buffer of an object's plaintext is ever
// held: the stream's bytes wait in a few pieces. The buffers alive are the pieces (queued, in
// filling, in compression), kSealedBuffers sealed buffers and the read-back object; a sealed
// buffer has room for MaxStoredBytes but only what the compressed object covers is ever
// touched (allocated without initialising), so the resident part follows the compression.
//
// The last object is shorter than its pledge: it is flushed, its blocks decompressed again
// into a buffer of its size (the stream's end, when the others are free) and sealed whole.
struct BackupWriter::State {
  enum class Phase { kOpen, kFinished, kFailed, kAborted };
  struct Piece {
    uint64_t index = 0;       // the object it belongs to
    bool ends_object = false;  // the object's last piece (full, or the stream ended)
    std::vector<uint8_t> bytes;
  };
  struct Sealed {
    uint64_t index = 0;
    uint64_t logical = 0;
    std::unique_ptr<uint8_t[]> buffer;  // sealed_capacity bytes
    size_t size = 0;
  };
  // One being sealed into while the other is uploaded.
  static constexpr size_t kSealedBuffers = 2;
  static constexpr size_t kPieceBytes = 1 << 20;
  static constexpr size_t kQueuedPieces = 4;

  State(store::ObjectStore& s, WriterOptions o)
      : store(s),
        options(std::move(o)),
        sealed_capacity(MaxStoredBytes(options.object_bytes)),
        piece_bytes(std::min(kPieceBytes, options.object_bytes)) {}
  ~State() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }

  store::ObjectStore& store;
  const WriterOptions options;
  const size_t sealed_capacity;
  const size_t piece_bytes;
  const int64_t created_at_ms = NowMs();
  const std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
  Phase phase = Phase::kOpen;  // the caller's thread only

  // Producer only.
  Piece filling;
  uint64_t next_index = 0;   // objects begun (the one being filled included once it has bytes)
  uint64_t in_object = 0;    // bytes of object next_index - 1 so far; 0: none begun

  // Sealer only.
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;

  mutable std::mutex mu;
  std::condition_variable_any changed;
  std::deque<Piece> queued;
  std::vector<std::vector<uint8_t>> free_pieces;
  size_t pieces_allocated = 0;
  std::optional<Sealed> to_upload;
  std::vector<std::unique_ptr<uint8_t[]>> free_sealed;
  size_t sealed_allocated = 0;
  bool input_ended = false;
  bool sealing_done = false;  // the sealer handed over every object
  bool aborting = false;
  Status worker_error;
  std::vector<ObjectEntry> uploaded;  // in index order, each read back and checked
  uint64_t uploaded_logical = 0, uploaded_stored = 0;
  size_t buffered = 0, max_buffered = 0;

  std::thread sealer, uploader;

  void AddBuffered(size_t bytes) {
    std::lock_guard lock(mu);
    AddBufferedLocked(bytes);
  }
  void AddBufferedLocked(size_t bytes) {
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

  // Under `mu`: the threads give up.
  bool Stopping() const { return aborting || !worker_error.ok(); }

  Status Cancelled() const {
    return Status(StatusCode::kCancelled, fmt::format("backup {} cancelled", options.backup_id));
  }

  // A free sealed buffer (waiting while both are in use); null when stopping.
  std::unique_ptr<uint8_t[]> TakeSealedBuffer() {
    std::unique_lock lock(mu);
    changed.wait(lock, [&] {
      return !free_sealed.empty() || sealed_allocated < kSealedBuffers || Stopping();
    });
    if (Stopping()) return nullptr;
    if (!free_sealed.empty()) {
      auto buffer = std::move(free_sealed.back());
      free_sealed.pop_back();
      return buffer;
    }
    sealed_allocated++;
    AddBufferedLocked(sealed_capacity);
    // Not value-initialised: untouched pages stay out of the resident set.
    return std::unique_ptr<uint8_t[]>(new uint8_t[sealed_capacity]);
  }

  Status ZstdError(uint64_t index, size_t code) const {
    return Status(StatusCode::kInternal, fmt::format("sealing {}: zstd: {}", What(index),
                                                     ZSTD_getErrorName(code)));
  }

  // Starts object `index`'s frame of `pledged` bytes (the object size: a shorter last object
  // is redone).
  Status BeginFrame(uint64_t index, uint64_t pledged) {
    if (cctx == nullptr) cctx = ZSTD_createCCtx();
    if (cctx == nullptr) {
      return Status(StatusCode::kInternal, fmt::format("sealing {}: ZSTD_createCCtx failed",
                                                       What(index)));
    }
    size_t rc = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
                                                       options.zstd_level);
    if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setPledgedSrcSize(cctx, pledged);
    return ZSTD_isError(rc) ? ZstdError(index, rc) : Status::Ok();
  }

  // Compresses `in` (or, with `mode` other than continue, ends or flushes the frame) into the
  // frame at buffer[kObjectHeaderBytes + *frame_bytes ...].
  Status Compress(uint64_t index, std::span<const uint8_t> in, ZSTD_EndDirective mode,
                  uint8_t* buffer, size_t* frame_bytes) {
    const size_t room = sealed_capacity - kObjectHeaderBytes - kObjectTagBytes;
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    for (;;) {
      ZSTD_outBuffer output{buffer + kObjectHeaderBytes, room, *frame_bytes};
      const size_t left = ZSTD_compressStream2(cctx, &output, &input, mode);
      *frame_bytes = output.pos;
      if (ZSTD_isError(left)) return ZstdError(index, left);
      const bool done = mode == ZSTD_e_continue ? input.pos == input.size : left == 0;
      if (done) return Status::Ok();
      if (output.pos == output.size) {
        return Status(StatusCode::kInternal,
                      fmt::format("sealing {}: the frame is over {} bytes", What(index), room));
      }
    }
  }

  // The last object, shorter than its pledge: its frame so far (flushed) decompressed again,
  // piece by piece, into a new frame of its size in the other sealed buffer, which is then
  // sealed (the old one goes back). No buffer of the object's plaintext either.
  Result<size_t> RedoShortObject(uint64_t index, uint64_t logical,
                                 std::unique_ptr<uint8_t[]>* buffer, size_t frame_bytes) {
    if (dctx == nullptr) dctx = ZSTD_createDCtx();
    if (dctx == nullptr) {
      return Error(StatusCode::kInternal, "sealing {}: ZSTD_createDCtx failed", What(index));
    }
    std::unique_ptr<uint8_t[]> redone = TakeSealedBuffer();
    if (!redone) return Error(Cancelled());
    auto give_back = [&](std::unique_ptr<uint8_t[]> unused) {
      std::lock_guard lock(mu);
      free_sealed.push_back(std::move(unused));
      changed.notify_all();
    };
    REPLBOOT_RETURN_IF_ERROR(BeginFrame(index, logical));
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    std::vector<uint8_t> piece(piece_bytes);
    AddBuffered(piece.capacity());
    ZSTD_inBuffer input{buffer->get() + kObjectHeaderBytes, frame_bytes, 0};
    uint64_t total = 0;
    size_t redone_bytes = 0;
    Status status;
    while (status.ok() && total < logical) {
      ZSTD_outBuffer output{piece.data(), piece.size(), 0};
      const size_t rc = ZSTD_decompressStream(dctx, &output, &input);
      if (ZSTD_isError(rc)) {
        status = ZstdError(index, rc);
      } else if (output.pos == 0 && input.pos == input.size) {
        status = Status(StatusCode::kInternal, fmt::format("sealing {}: {} bytes came back of {}",
                                                           What(index), total, logical));
      } else {
        total += output.pos;
        status = Compress(index, std::span(piece.data(), output.pos), ZSTD_e_continue,
                          redone.get(), &redone_bytes);
      }
    }
    SubBuffered(piece.capacity());
    if (status.ok()) status = Compress(index, {}, ZSTD_e_end, redone.get(), &redone_bytes);
    if (!status.ok()) {
      give_back(std::move(redone));
      return Error(status);
    }
    auto sealed = internal::SealFrameInPlace(options.key, options.backup_id, index, logical,
                                             redone_bytes, std::span(redone.get(), sealed_capacity));
    std::swap(*buffer, redone);
    give_back(std::move(redone));
    return sealed;
  }

  void Seal() {
    std::unique_ptr<uint8_t[]> buffer;  // the object being compressed into, if begun
    uint64_t index = 0, logical = 0;
    size_t frame_bytes = 0;
    for (;;) {
      Piece piece;
      {
        std::unique_lock lock(mu);
        changed.wait(lock, [&] { return !queued.empty() || input_ended || Stopping(); });
        if (Stopping()) return;
        if (queued.empty()) {
          sealing_done = true;
          changed.notify_all();
          return;
        }
        piece = std::move(queued.front());
        queued.pop_front();
        changed.notify_all();
      }
      if (!buffer) {
        buffer = TakeSealedBuffer();
        if (!buffer) return;
        index = piece.index;
        logical = 0;
        frame_bytes = 0;
        if (Status s = BeginFrame(index, options.object_bytes); !s.ok()) return Fail(s);
      }
      Status compressed = Compress(index, piece.bytes, ZSTD_e_continue, buffer.get(), &frame_bytes);
      logical += piece.bytes.size();
      const bool ends = piece.ends_object;
      {
        std::lock_guard lock(mu);
        piece.bytes.clear();
        if (piece.bytes.capacity() >= piece_bytes) free_pieces.push_back(std::move(piece.bytes));
        changed.notify_all();
      }
      if (!compressed.ok()) return Fail(compressed);
      if (!ends) continue;
      Result<size_t> sealed = 0;
      if (logical == options.object_bytes) {
        Status ended = Compress(index, {}, ZSTD_e_end, buffer.get(), &frame_bytes);
        if (!ended.ok()) return Fail(ended);
        sealed = internal::SealFrameInPlace(options.key, options.backup_id, index, logical,
                                            frame_bytes, std::span(buffer.get(), sealed_capacity));
      } else {
        Status flushed = Compress(index, {}, ZSTD_e_flush, buffer.get(), &frame_bytes);
        if (!flushed.ok()) return Fail(flushed);
        sealed = RedoShortObject(index, logical, &buffer, frame_bytes);
      }
      if (!sealed) return Fail(sealed.error());
      std::unique_lock lock(mu);
      changed.wait(lock, [&] { return !to_upload.has_value() || Stopping(); });
      if (Stopping()) return;
      to_upload = Sealed{index, logical, std::move(buffer), *sealed};
      buffer = nullptr;
      changed.notify_all();
    }
  }

  void Upload() {
    for (;;) {
      Sealed object;
      {
        std::unique_lock lock(mu);
        changed.wait(lock, [&] { return to_upload.has_value() || sealing_done || Stopping(); });
        if (Stopping() || !to_upload) return;
        object = std::move(*to_upload);
        to_upload.reset();
        changed.notify_all();
      }
      if (options.stop.stop_requested()) return Fail(Cancelled());
      const std::span<const uint8_t> bytes(object.buffer.get(), object.size);
      ObjectEntry entry{object.index, object.logical, object.size, internal::Sha256Hex(bytes)};
      const std::string key = ObjectKey(options.backup_id, object.index);
      Status put = store.Put(key, bytes);
      {
        // The buffer is free for the next seal while this object is read back.
        std::lock_guard lock(mu);
        free_sealed.push_back(std::move(object.buffer));
        changed.notify_all();
      }
      if (!put.ok()) {
        return Fail(
            put.WithContext(fmt::format("uploading {} to {}", What(object.index), store.Describe())));
      }
      if (Status checked = ReadBack(entry); !checked.ok()) return Fail(checked);
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

  // The object as the store returns it now: the size and SHA-256 it was uploaded with.
  Status ReadBack(const ObjectEntry& e) {
    auto got = store.Get(ObjectKey(options.backup_id, e.index), e.stored_bytes);
    if (!got) return got.error().WithContext(fmt::format("reading back {}", What(e.index)));
    AddBuffered(got->capacity());
    const bool same = got->size() == e.stored_bytes && internal::Sha256Hex(*got) == e.sha256;
    SubBuffered(got->capacity());
    if (!same) {
      return Status(StatusCode::kCorruption,
                    fmt::format("{} read back from {} differs from what was uploaded",
                                What(e.index), store.Describe()));
    }
    return Status::Ok();
  }

  Status WorkerError() const {
    std::lock_guard lock(mu);
    return worker_error;
  }

  // Queues `filling` for the sealer, waiting while kQueuedPieces wait.
  Status HandOff(bool ends_object) {
    std::unique_lock lock(mu);
    changed.wait(lock, options.stop,
                 [&] { return queued.size() < kQueuedPieces || !worker_error.ok(); });
    if (!worker_error.ok()) return worker_error;
    if (options.stop.stop_requested()) return Cancelled();
    filling.ends_object = ends_object;
    queued.push_back(std::move(filling));
    filling = Piece{};
    changed.notify_all();
    return Status::Ok();
  }

  // A piece to fill for the current object, recycled when one is free.
  void EnsureFilling() {
    if (filling.bytes.capacity() >= piece_bytes) return;
    std::lock_guard lock(mu);
    if (!free_pieces.empty()) {
      filling.bytes = std::move(free_pieces.back());
      free_pieces.pop_back();
      return;
    }
    filling.bytes.reserve(piece_bytes);
    pieces_allocated++;
    AddBufferedLocked(filling.bytes.capacity());
  }

  // Copies `bytes` into pieces, queueing each full one and the last one of each object.
  Status Take(std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
      if (in_object == 0) {
        if (next_index >= kMaxObjects) {
          return Status(StatusCode::kInvalidArgument,
                        fmt::format("backup {} would take more than {} objects of {} bytes",
                                    options.backup_id, kMaxObjects, options.object_bytes));
        }
        next_index++;
      }
      EnsureFilling();
      filling.index = next_index - 1;
      const size_t take = std::min({bytes.size(), piece_bytes - filling.bytes.size(),
                                    static_cast<size_t>(options.object_bytes - in_object)});
      filling.bytes.insert(filling.bytes.end(), bytes.begin(),
                           bytes.begin() + static_cast<ptrdiff_t>(take));
      bytes = bytes.subspan(take);
      in_object += take;
      const bool ends = in_object == options.object_bytes;
      if (ends || filling.bytes.size() == piece_bytes) {
        REPLBOOT_RETURN_STATUS_IF_ERROR(HandOff(ends));
        if (ends) in_object = 0;
      }
    }
    return Status::Ok();
  }

  // The stream ended: the object begun, if any, ends with what it has.
  Status EndStream() {
    if (in_object == 0) return Status::Ok();
    filling.index = next_index - 1;
    in_object = 0;
    return HandOff(/*ends_object=*/true);
  }

  // Ends both threads: once every object is uploaded and read back, or at once with `abort`.
  void StopWorkers(bool abort) {
    {
      std::lock_guard lock(mu);
      input_ended = true;
      aborting = aborting || abort;
      changed.notify_all();
    }
    if (sealer.joinable()) sealer.join();
    if (uploader.joinable()) uploader.join();
  }

  // After StopWorkers.
  void ReleaseBuffers() {
    std::lock_guard lock(mu);
    buffered -= pieces_allocated * piece_bytes + sealed_allocated * sealed_capacity;
    pieces_allocated = sealed_allocated = 0;
    filling = Piece{};
    queued.clear();
    free_pieces.clear();
    free_sealed.clear();
    to_upload.reset();
  }

  // Every object this writer uploaded (each was read back and checked right after its upload)
  // is in the store, exactly once, with its size, and no other object is under the backup.
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
      if (it->second != e.stored_bytes) {
        return Status(StatusCode::kCorruption,
                      fmt::format("{} has {} bytes in {}, {} were uploaded and read back",
                                  What(e.index), it->second, store.Describe(), e.stored_bytes));
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
  raw->uploader = std::thread([raw] { raw->Upload(); });
  raw->sealer = std::thread([raw] { raw->Seal(); });
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
  return s.Take(bytes);
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
  Status handed = s.EndStream();
  s.StopWorkers(/*abort=*/!handed.ok());
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
  s.StopWorkers(/*abort=*/true);
  s.ReleaseBuffers();
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
