// One object of a backup: a slice of the stream, compressed (one zstd frame) and sealed with
// AES-256-GCM under the backup key's object subkey.
//
//   offset  size  field
//   0       4     magic "RBAO" (replboot archive object)
//   4       1     version (1)
//   5       8     logical size: bytes of the slice before compression, little-endian
//   13      12    nonce, random (RAND_bytes) for every object
//   25      n     ciphertext of the zstd frame
//   25+n    16    GCM tag
//
// The tag authenticates, besides the ciphertext, the magic, the version, the logical size, the
// backup id and the object's index (the AAD; see object.cc): an object opens only as the
// object it was sealed as, so objects cannot be changed, swapped, reordered or moved from one
// backup to another, and a wrong key is detected, all before a byte is decompressed.
#ifndef REPLBOOT_ARCHIVE_OBJECT_H_
#define REPLBOOT_ARCHIVE_OBJECT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "replboot/archive/keys.h"
#include "replboot/base/status.h"

namespace replboot::archive {

inline constexpr size_t kObjectHeaderBytes = 25;
inline constexpr size_t kObjectTagBytes = 16;

// The most stored bytes an object of `logical_bytes` can take (zstd's bound plus the header
// and the tag): what a reader may accept for it.
uint64_t MaxStoredBytes(uint64_t logical_bytes);

// Compresses `plaintext` at `zstd_level` and seals it as object `index` of `backup_id`.
// kInvalidArgument for a zstd level zstd refuses; kInternal when OpenSSL or zstd fail.
Result<std::vector<uint8_t>> SealObject(const BackupKey& key, std::string_view backup_id,
                                        uint64_t index, std::span<const uint8_t> plaintext,
                                        int zstd_level);

// Authenticates and decompresses `stored`, which must be object `index` of `backup_id`, of at
// most `max_logical` bytes. kCorruption, "object N of backup ID: …", naming the reason: bad
// magic, unknown version, truncated, a logical size over max_logical, authentication failed
// (changed, or sealed with another key), a zstd error, a size mismatch. No byte is
// decompressed before the tag checks, and decompression never writes more than the logical size.
Result<std::vector<uint8_t>> OpenObject(const BackupKey& key, std::string_view backup_id,
                                        uint64_t index, std::span<const uint8_t> stored,
                                        uint64_t max_logical);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_OBJECT_H_
