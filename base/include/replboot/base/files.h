// Small filesystem helpers whose durability rules the rest of replboot relies on.
#ifndef REPLBOOT_BASE_FILES_H_
#define REPLBOOT_BASE_FILES_H_

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "replboot/base/status.h"

namespace replboot::files {

Result<std::string> ReadFile(const std::string& path);

// The directory holding `path` ("." for a bare name); a trailing '/' names the dir itself.
std::string ParentDir(const std::string& path);

// Writes `content` to `path` so that a reader sees the old file or the new one, never a
// mix: temp file in the same directory (created with `mode`, so a secret is never
// world-readable even briefly), fsync, rename, fsync of the directory. Safe as root in a
// directory another user can write: the temp name is random and created with
// O_EXCL|O_NOFOLLOW, and the rename replaces a symlink planted at `path` instead of
// following it.
Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode = 0644);

// 16 hex characters from getrandom(2): a temp name nobody can guess (with O_EXCL|O_NOFOLLOW,
// a file or symlink planted in a directory another user can write is never opened).
Result<std::string> RandomHexName();

// write(2) until all of `data` is out, EINTR retried; errors name `what` (ENOSPC: kNoSpace).
Status WriteAll(int fd, std::span<const uint8_t> data, const std::string& what);

// A private directory `<parent>/<prefix>XXXXXX` (mkdtemp: random name, mode 0700) for
// secret files (an option file, an init file), locked (flock) while this object lives and
// removed with everything in it on Remove() or destruction. A process killed before that
// leaves it unlocked: SweepStaleTempDirs removes such leftovers at the next start and never
// the live ones of another process sharing `parent` (the nodes of a local cluster share
// /tmp). The lock is not inherited by exec'd children.
class OwnedTempDir {
 public:
  static Result<OwnedTempDir> Create(const std::string& parent, const std::string& prefix);
  OwnedTempDir(OwnedTempDir&& other) noexcept;
  OwnedTempDir& operator=(OwnedTempDir&& other) noexcept;
  OwnedTempDir(const OwnedTempDir&) = delete;
  OwnedTempDir& operator=(const OwnedTempDir&) = delete;
  ~OwnedTempDir();

  const std::string& path() const { return path_; }
  // Removes the tree without following symlinks; ok when already removed.
  Status Remove();

 private:
  OwnedTempDir() = default;
  std::string path_;
  int lock_fd_ = -1;
};

// Removes every directory `<parent>/<prefix>*` that no live OwnedTempDir holds (its owner
// was killed), without following symlinks. Returns how many it removed; a missing parent
// removes none.
Result<int> SweepStaleTempDirs(const std::string& parent, const std::string& prefix);

// WriteFileAtomic inside the directory open as `dir_fd` (`dir` names it in errors): `name`
// is a plain file name.
Status WriteFileAtomicAt(int dir_fd, const std::string& dir, const std::string& name,
                         std::string_view content, mode_t mode = 0644);

// Like `mkdir -p path` (new directories get `mode`, less the umask); returns an O_DIRECTORY
// descriptor of `path` for the caller to close. Directories it creates are opened with
// O_NOFOLLOW, so a symlink swapped in for one of them is refused, not followed.
Result<int> MakeDirs(const std::string& path, mode_t mode);

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
