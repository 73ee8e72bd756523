// The MAC of manifests and checks, for the tests and the fuzzer: with it they can make
// documents that pass the MAC and so reach the strict checks behind it.
#ifndef REPLBOOT_ARCHIVE_MANIFEST_MAC_H_
#define REPLBOOT_ARCHIVE_MANIFEST_MAC_H_

#include <nlohmann/json.hpp>
#include <string>

#include "replboot/archive/keys.h"

namespace replboot::archive::internal {

enum class MacKind { kManifest, kChecks };

// The "mac" of `document` (its "mac" member, if any, left out).
std::string DocumentMac(const nlohmann::json& document, MacKind kind, const BackupKey& key);

// `document` with its "mac" replaced by the right one, dumped.
std::string Remac(nlohmann::json document, MacKind kind, const BackupKey& key);

}  // namespace replboot::archive::internal

#endif  // REPLBOOT_ARCHIVE_MANIFEST_MAC_H_
