// Small filesystem helpers whose durability rules the rest of replboot relies on.
#ifndef REPLBOOT_BASE_FILES_H_
#define REPLBOOT_BASE_FILES_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "replboot/base/status.h"

namespace replboot::files {

Result<std::string> ReadFile(const std::string& path);

// The directory holding `path` ("." for a bare name); a trailing '/' names the dir itself.
std::string ParentDir(const std::string& path);

// Writes `content` to `path` so that a reader sees the old file or the new one, never a
// mix: temp file in the same directory (created with `mode`, so a secret is never
// world-readable even briefly), fsync, rename, fsync of the directory.
Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode = 0644);

// fsync of a directory, so that renames and creations inside it survive a crash.
Status FsyncDir(const std::string& dir);

// Removes a file or a whole tree; a missing path is not an error.
Status RemoveAll(const std::string& path);

// Bytes available to an unprivileged writer on the filesystem holding `path`.
Result<uint64_t> FreeBytes(const std::string& path);

// True when `dir` is missing or holds no entries.
Result<bool> IsEmptyDir(const std::string& dir);

}  // namespace replboot::files

#endif  // REPLBOOT_BASE_FILES_H_
