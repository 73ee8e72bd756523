// CRC-32 as in ISO 3309 / zlib crc32(): reflected polynomial 0xEDB88320, initial and
// final XOR 0xFFFFFFFF. This is the checksum of every xbstream payload (not CRC-32C).
#ifndef REPLBOOT_BACKUP_CRC32_H_
#define REPLBOOT_BACKUP_CRC32_H_

#include <cstddef>
#include <cstdint>

namespace replboot::backup {

// Continues `crc` (0 to start) over `data`, exactly like zlib's crc32(crc, data, n).
// Uses carry-less multiplication (PCLMULQDQ) when the CPU has it, because the
// checksum runs over every byte of a multi-GiB backup and zlib's table code is
// several times slower; falls back to zlib otherwise.
uint32_t Crc32(uint32_t crc, const uint8_t* data, size_t n);

}  // namespace replboot::backup

#endif  // REPLBOOT_BACKUP_CRC32_H_
