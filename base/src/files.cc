#include "replboot/base/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <vector>

namespace replboot::files {

namespace fs = std::filesystem;

std::string ParentDir(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  auto parent = std::filesystem::path(trimmed).parent_path().string();
  return parent.empty() ? "." : parent;
}

Result<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(ErrnoStatus(errno, "open " + path));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Error(ErrnoStatus(err, "read " + path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open directory " + dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, "fsync directory " + dir);
  return Status::Ok();
}

Result<std::string> RandomHexName() {
  unsigned char bytes[8];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error(ErrnoStatus(errno, "getrandom"));
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

Status WriteAll(int fd, std::span<const uint8_t> data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write " + what);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status WriteFileAtomicAt(int dir_fd, const std::string& dir, const std::string& name,
                         std::string_view content, mode_t mode) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return Status(StatusCode::kInvalidArgument, "write " + dir + "/" + name + ": not a file name");
  }
  std::string tmp_name;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    auto suffix = RandomHexName();
    if (!suffix) return suffix.error();
    tmp_name = name + ".tmp." + *suffix;
    fd = ::openat(dir_fd, tmp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  mode);
    if (fd < 0 && (errno != EEXIST || attempt >= 16)) {
      return ErrnoStatus(errno, "create " + dir + "/" + tmp_name);
    }
  }
  const std::string tmp = dir + "/" + tmp_name;
  auto fail = [&](Status s) {
    if (fd >= 0) ::close(fd);
    ::unlinkat(dir_fd, tmp_name.c_str(), 0);
    return s;
  };
  // open() applies the umask; set the exact mode asked for.
  if (::fchmod(fd, mode) != 0) return fail(ErrnoStatus(errno, "chmod " + tmp));
  if (Status s = WriteAll(fd, std::span(reinterpret_cast<const uint8_t*>(content.data()),
                                         content.size()), tmp);
      !s.ok()) {
    return fail(s);
  }
  if (::fsync(fd) != 0) return fail(ErrnoStatus(errno, "fsync " + tmp));
  ::close(fd);
  fd = -1;
  // rename replaces whatever is at `name` (a symlink included) instead of writing through it.
  if (::renameat(dir_fd, tmp_name.c_str(), dir_fd, name.c_str()) != 0) {
    return fail(ErrnoStatus(errno, "rename " + tmp + " to " + dir + "/" + name));
  }
  if (::fsync(dir_fd) != 0) return ErrnoStatus(errno, "fsync directory " + dir);
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode) {
  fs::path target(path);
  std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  // Everything happens relative to this one directory handle: the directory cannot be
  // swapped for another between creating the temp file and renaming it.
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus(errno, "open directory " + dir);
  Status s = WriteFileAtomicAt(dir_fd, dir, target.filename().string(), content, mode);
  ::close(dir_fd);
  return s;
}

Result<int> MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return Error(StatusCode::kInvalidArgument, "create directory: empty path");
  std::string walked = path[0] == '/' ? "/" : ".";
  int fd = ::open(walked.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error(ErrnoStatus(errno, "open directory " + walked));
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    walked = walked == "/" ? "/" + part : walked + "/" + part;
    bool created = ::mkdirat(fd, part.c_str(), mode) == 0;
    if (!created && errno != EEXIST) {
      int err = errno;
      ::close(fd);
      return Error(ErrnoStatus(err, "create directory " + walked));
    }
    // A directory made here is opened without following a symlink: one put in its place
    // (by whoever can write the parent) is refused. Existing ones are the operator's layout.
    int next =
        ::openat(fd, part.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (created ? O_NOFOLLOW : 0));
    int err = errno;
    ::close(fd);
    if (next < 0) return Error(ErrnoStatus(err, "open directory " + walked));
    fd = next;
  }
  return fd;
}

Status RemoveAll(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return ErrnoStatus(ec.value(), "remove " + path);
  return Status::Ok();
}

Result<uint64_t> FreeBytes(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return Error(ErrnoStatus(errno, "statvfs " + path));
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

Result<bool> IsEmptyDir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  auto it = fs::directory_iterator(dir, ec);
  if (ec) return Error(ErrnoStatus(ec.value(), "list " + dir));
  return it == fs::directory_iterator();
}

namespace {

// Removes everything inside the directory open as `dir_fd`, without following a symlink (a
// symlink is unlinked itself): another user may write inside the tree while it is removed.
Status RemoveContentsAt(int dir_fd, const std::string& where) {
  int list_fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (list_fd < 0) return ErrnoStatus(errno, "dup " + where);
  DIR* d = ::fdopendir(list_fd);
  if (d == nullptr) {
    int err = errno;
    ::close(list_fd);
    return ErrnoStatus(err, "list " + where);
  }
  Status result = Status::Ok();
  while (result.ok()) {
    errno = 0;
    struct dirent* e = ::readdir(d);
    if (e == nullptr) {
      if (errno != 0) result = ErrnoStatus(errno, "list " + where);
      break;
    }
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = where + "/" + name;
    if (::unlinkat(dir_fd, name.c_str(), 0) == 0 || errno == ENOENT) continue;
    if (errno != EISDIR) {
      result = ErrnoStatus(errno, "remove " + path);
      break;
    }
    int sub = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
      result = ErrnoStatus(errno, "open directory " + path);
      break;
    }
    result = RemoveContentsAt(sub, path);
    ::close(sub);
    if (result.ok() && ::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      result = ErrnoStatus(errno, "remove directory " + path);
    }
  }
  ::closedir(d);
  return result;
}

// The directory `path` was created as, still linked under that name (a sweeper may have
// removed it between mkdtemp and the lock).
bool SameDirectory(int fd, const std::string& path) {
  struct stat by_fd {};
  struct stat by_path {};
  return ::fstat(fd, &by_fd) == 0 && ::lstat(path.c_str(), &by_path) == 0 &&
         by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

}  // namespace

Result<OwnedTempDir> OwnedTempDir::Create(const std::string& parent, const std::string& prefix) {
  for (int attempt = 0;; ++attempt) {
    std::string pattern = parent + "/" + prefix + "XXXXXX";
    // mkdtemp: a fresh random name created with mode 0700 (never an existing entry).
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Error(ErrnoStatus(errno, "create private directory in " + parent));
    }
    OwnedTempDir dir;
    dir.path_ = pattern;
    dir.lock_fd_ = ::open(pattern.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir.lock_fd_ < 0) {
      int err = errno;
      ::rmdir(pattern.c_str());
      dir.path_.clear();
      return Error(ErrnoStatus(err, "open directory " + pattern));
    }
    if (::flock(dir.lock_fd_, LOCK_EX | LOCK_NB) == 0 && SameDirectory(dir.lock_fd_, pattern)) {
      return dir;
    }
    // Another start's sweep took it in the instant before the lock: make a new one.
    dir.path_.clear();
    if (attempt >= 3) {
      return Error(StatusCode::kUnavailable, "private directory in {} removed while created",
                   parent);
    }
  }
}

OwnedTempDir::OwnedTempDir(OwnedTempDir&& other) noexcept
    : path_(std::move(other.path_)), lock_fd_(other.lock_fd_) {
  other.path_.clear();
  other.lock_fd_ = -1;
}

OwnedTempDir& OwnedTempDir::operator=(OwnedTempDir&& other) noexcept {
  if (this != &other) {
    (void)Remove();
    path_ = std::move(other.path_);
    lock_fd_ = other.lock_fd_;
    other.path_.clear();
    other.lock_fd_ = -1;
  }
  return *this;
}

OwnedTempDir::~OwnedTempDir() { (void)Remove(); }

Status OwnedTempDir::Remove() {
  Status s = Status::Ok();
  if (!path_.empty() && lock_fd_ >= 0) {
    // Removed through the locked handle, then the name: the lock is held until it is gone.
    s = RemoveContentsAt(lock_fd_, path_);
    if (s.ok() && ::rmdir(path_.c_str()) != 0 && errno != ENOENT) {
      s = ErrnoStatus(errno, "remove directory " + path_);
    }
  }
  if (s.ok()) path_.clear();
  if (lock_fd_ >= 0 && path_.empty()) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
  return s;
}

Result<int> SweepStaleTempDirs(const std::string& parent, const std::string& prefix) {
  int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent_fd < 0) {
    if (errno == ENOENT) return 0;
    return Error(ErrnoStatus(errno, "open directory " + parent));
  }
  std::vector<std::string> names;
  {
    int list_fd = ::fcntl(parent_fd, F_DUPFD_CLOEXEC, 0);
    DIR* d = list_fd < 0 ? nullptr : ::fdopendir(list_fd);
    if (d == nullptr) {
      int err = errno;
      if (list_fd >= 0) ::close(list_fd);
      ::close(parent_fd);
      return Error(ErrnoStatus(err, "list " + parent));
    }
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name.size() > prefix.size() && name.starts_with(prefix)) names.emplace_back(name);
    }
    ::closedir(d);
  }
  int removed = 0;
  Status failure = Status::Ok();
  for (const std::string& name : names) {
    const std::string path = parent + "/" + name;
    // O_NOFOLLOW: a symlink named like ours (planted by whoever can write `parent`) is skipped.
    int fd = ::openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    // A live owner holds the lock: its directory stays.
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      Status s = RemoveContentsAt(fd, path);
      if (s.ok() && ::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        s = ErrnoStatus(errno, "remove directory " + path);
      }
      if (s.ok()) {
        ++removed;
      } else if (failure.ok()) {
        failure = s;
      }
    }
    ::close(fd);
  }
  ::close(parent_fd);
  if (!failure.ok()) return Error(failure);
  return removed;
}

}  // namespace replboot::files
