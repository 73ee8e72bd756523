// The store implementations behind OpenStore, and the text helpers they share.
#ifndef REPLBOOT_STORE_STORE_INTERNAL_H_
#define REPLBOOT_STORE_STORE_INTERNAL_H_

#include <memory>
#include <string>
#include <string_view>

#include "replboot/base/status.h"
#include "replboot/store/object_store.h"

namespace replboot::store {

// `root` is an absolute directory path, already checked (no "..", no "//"); created (0700)
// when missing.
Result<std::unique_ptr<ObjectStore>> OpenFileStore(const std::string& root);

// `options.url` is an s3:// URL; checks everything, reads the credentials, contacts nothing.
Result<std::unique_ptr<ObjectStore>> OpenS3Store(const StoreOptions& options);

// Text from a remote peer made safe for a log line or an error message: printable ASCII
// only (anything else becomes '?'), at most `max` characters ("..." marks a cut).
std::string Printable(std::string_view text, size_t max = 200);

}  // namespace replboot::store

#endif  // REPLBOOT_STORE_STORE_INTERNAL_H_
