// For tests and the fuzzer: an object around any bytes, sealed as SealObject seals a zstd
// frame, so that what lies behind the tag (the zstd checks) can be exercised.
#ifndef REPLBOOT_ARCHIVE_OBJECT_INTERNAL_H_
#define REPLBOOT_ARCHIVE_OBJECT_INTERNAL_H_

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "replboot/archive/keys.h"

namespace replboot::archive::internal {

// Object `index` of `backup_id` whose header says `logical` and whose sealed payload is
// `frame` (not necessarily zstd). Empty when OpenSSL fails.
std::vector<uint8_t> SealFrame(const BackupKey& key, std::string_view backup_id, uint64_t index,
                               uint64_t logical, std::span<const uint8_t> frame);

}  // namespace replboot::archive::internal

#endif  // REPLBOOT_ARCHIVE_OBJECT_INTERNAL_H_
