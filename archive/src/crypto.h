// Private primitives of the archive: subkeys of the backup key, HMAC and SHA-256, hex.
// Each derived key has its own HKDF info string, so a key made for one purpose is never
// accepted for another (an object key cannot forge a manifest MAC).
#ifndef REPLBOOT_ARCHIVE_CRYPTO_H_
#define REPLBOOT_ARCHIVE_CRYPTO_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "replboot/archive/keys.h"

namespace replboot::archive::internal {

using Key32 = std::array<uint8_t, 32>;

// HKDF-SHA256 (extract and expand, no salt) of `ikm` with `info`, `out.size()` bytes.
// Aborts only if OpenSSL cannot run HKDF at all (no default provider): nothing works then.
void Hkdf(std::span<const uint8_t> ikm, std::string_view info, std::span<uint8_t> out);

// The AES-256-GCM key of objects.
Key32 ObjectKey(const BackupKey& key);
// The HMAC-SHA256 key of manifests and checks.
Key32 MacKey(const BackupKey& key);

// HMAC-SHA256 of `data` under `key`, as 64 lowercase hex digits.
std::string HmacSha256Hex(const Key32& key, std::string_view data);
// SHA-256 of `data`, as 64 lowercase hex digits.
std::string Sha256Hex(std::span<const uint8_t> data);

std::string Hex(std::span<const uint8_t> bytes);
// True when `text` is exactly `length` lowercase hex digits.
bool IsLowerHex(std::string_view text, size_t length);
// Constant-time equality of two strings of equal length (false when the lengths differ).
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace replboot::archive::internal

#endif  // REPLBOOT_ARCHIVE_CRYPTO_H_
