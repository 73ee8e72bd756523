// The backup key: one secret, read once from a file (a Kubernetes Secret mount), from which
// every key the archive uses is derived. Objects are sealed and manifests MACed with separate
// subkeys of it (archive/src/crypto.h), so no single derived key serves two purposes.
//
// The secret is text (e.g. `openssl rand -hex 32`), not raw key bytes, so that an operator can
// create, copy and compare it with ordinary tools. Every node of a cluster must hold the same
// secret to read the cluster's backups; `id` tells which key made a backup without revealing it.
#ifndef REPLBOOT_ARCHIVE_KEYS_H_
#define REPLBOOT_ARCHIVE_KEYS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "replboot/base/status.h"

namespace replboot::archive {

// The shortest secret a key file may hold, in characters (32 hex digits = 128 bits).
inline constexpr size_t kMinSecretChars = 32;
// The longest: a key file is one line of text, not a document.
inline constexpr size_t kMaxSecretChars = 4096;

struct BackupKey {
  // HKDF-SHA256 of the secret text, info "replboot backup encryption v1". Never logged.
  std::array<uint8_t, 32> bytes{};
  // 16 lowercase hex digits naming the key (another derivation of `bytes`: one-way, so it
  // reveals nothing of the key); recorded in every manifest.
  std::string id;
};

// Reads the secret from `path`, one trailing newline ("\n" or "\r\n") trimmed. Refuses, with a
// kInvalidArgument naming the file and never its content: an empty file, fewer than
// kMinSecretChars characters, more than kMaxSecretChars, and obvious placeholders (one
// character repeated, a short pattern repeated, "changeme" and the like). A missing or
// unreadable file is the error of the read (kNotFound, kPermissionDenied, kIOError).
Result<BackupKey> LoadKeyFile(const std::string& path);

// The key of `secret` as LoadKeyFile derives it, without its checks: for tests and tools.
BackupKey KeyFromSecret(std::string_view secret);

}  // namespace replboot::archive

#endif  // REPLBOOT_ARCHIVE_KEYS_H_
