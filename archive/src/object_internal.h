// For the writer, tests and the fuzzer: SealObject into a caller's buffer, and an object
// around any bytes, sealed as SealObject seals a zstd frame, so that what lies behind the tag
// (the zstd checks) can be exercised.
#ifndef REPLBOOT_ARCHIVE_OBJECT_INTERNAL_H_
#define REPLBOOT_ARCHIVE_OBJECT_INTERNAL_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "replboot/archive/keys.h"
#include "replboot/base/status.h"

namespace replboot::archive::internal {

// Object `index` of `backup_id` whose header says `logical` and whose sealed payload is
// `frame` (not necessarily zstd). Empty when OpenSSL fails.
std::vector<uint8_t> SealFrame(const BackupKey& key, std::string_view backup_id, uint64_t index,
                               uint64_t logical, std::span<const uint8_t> frame);

// SealObject into `out` (at least MaxStoredBytes(plaintext.size()) bytes), returning the
// sealed object's length: what the writer uses to reuse its buffers. Only the bytes up to
// that length are written, so pages of `out` past the compressed size are never touched.
Result<size_t> SealObjectInto(const BackupKey& key, std::string_view backup_id, uint64_t index,
                              std::span<const uint8_t> plaintext, int zstd_level,
                              std::span<uint8_t> out);

// Seals a zstd frame of `frame_bytes` that the caller compressed into `out` after the header's
// room (out[kObjectHeaderBytes...]): writes the header, encrypts the frame in place and
// appends the tag; returns the object's length. For a frame compressed piece by piece.
Result<size_t> SealFrameInPlace(const BackupKey& key, std::string_view backup_id, uint64_t index,
                                uint64_t logical, size_t frame_bytes, std::span<uint8_t> out);

// A stored object whose tag and frame checks passed (AuthenticateInPlace): `bytes` is its
// zstd frame, in the caller's buffer, declaring `logical` bytes.
struct OpenedFrame {
  std::span<const uint8_t> bytes;
  uint64_t logical = 0;
};

// OpenObject's checks up to decompression, decrypting `stored` in place: magic, version,
// logical size <= max_logical, the tag, exactly one zstd frame declaring the logical size.
// The frame points into `stored`, which must stay live while it is used.
Result<OpenedFrame> AuthenticateInPlace(const BackupKey& key, std::string_view backup_id,
                                        uint64_t index, std::span<uint8_t> stored,
                                        uint64_t max_logical);

// Decompresses an authenticated frame into `sink`, pieces of at most `piece_bytes` (so no
// buffer of the object's logical size is needed); kCorruption when it does not hold exactly
// its logical size (then the sink may have had part of it: only a holder of the key can make
// such a frame). A sink error ends it with that error.
Status DecompressFrame(std::string_view backup_id, uint64_t index, const OpenedFrame& frame,
                       size_t piece_bytes,
                       const std::function<Status(std::span<const uint8_t>)>& sink);

}  // namespace replboot::archive::internal

#endif  // REPLBOOT_ARCHIVE_OBJECT_INTERNAL_H_
