// FileStore: objects are files under a root directory, a key's '/' separating subdirectories.
//
// Every path is walked one component at a time from a descriptor of the root, each opened
// with O_NOFOLLOW: whoever else can write inside the volume cannot make us read or write
// outside it with a symlink. Temp files are named "<name>.tmp.<16 hex>" (the name
// WriteFileAtomicAt uses), which List skips and no key may end with.
#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "replboot/base/files.h"
#include "store_internal.h"

namespace replboot::store {

namespace {

constexpr mode_t kDirMode = 0700;
constexpr mode_t kFileMode = 0640;
constexpr size_t kMaxDepth = 256;

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// "<name>.tmp.<16 lower-case hex>"
bool IsTempName(std::string_view name) {
  constexpr size_t kSuffix = 5 + 16;  // ".tmp." + hex
  if (name.size() <= kSuffix) return false;
  std::string_view tail = name.substr(name.size() - kSuffix);
  if (!tail.starts_with(".tmp.")) return false;
  return std::all_of(tail.begin() + 5, tail.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::vector<std::string> SplitKey(const std::string& key) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= key.size()) {
    size_t end = key.find('/', pos);
    if (end == std::string::npos) end = key.size();
    parts.push_back(key.substr(pos, end - pos));
    pos = end + 1;
  }
  return parts;
}

class FileStore : public ObjectStore {
 public:
  FileStore(std::string root, UniqueFd root_fd) : root_(std::move(root)), root_fd_(std::move(root_fd)) {}

  std::string Describe() const override { return "file://" + root_; }

  Status Put(const std::string& key, std::span<const uint8_t> body) override {
    const std::string what = "put " + key + " in " + Describe();
    REPLBOOT_RETURN_STATUS_IF_ERROR(CheckFileKey(key));
    auto dirs = Walk(key, /*create=*/true);
    if (!dirs) return Fail(what, dirs.error());
    Status s = files::WriteFileAtomicAt(
        dirs->back().get(), DirPath(key), SplitKey(key).back(),
        std::string_view(reinterpret_cast<const char*>(body.data()), body.size()), kFileMode);
    return s.ok() ? s : Fail(what, s);
  }

  Result<bool> PutIfAbsent(const std::string& key, std::span<const uint8_t> body) override {
    const std::string what = "put-if-absent " + key + " in " + Describe();
    REPLBOOT_RETURN_IF_ERROR(CheckFileKey(key));
    auto dirs = Walk(key, /*create=*/true);
    if (!dirs) return Error(Fail(what, dirs.error()));
    const int dir_fd = dirs->back().get();
    const std::string dir = DirPath(key);
    const std::string name = SplitKey(key).back();
    auto suffix = files::RandomHexName();
    if (!suffix) return Error(suffix.error());
    const std::string tmp = name + ".tmp." + *suffix;
    // The whole body is durable under the temp name before link(2) makes it visible, so a
    // reader (or a crash) never sees part of it; link fails with EEXIST when `name` exists,
    // whoever made it, which rename would not.
    UniqueFd fd(::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         kFileMode));
    if (fd.get() < 0) return Error(Fail(what, ErrnoStatus(errno, "create " + dir + "/" + tmp)));
    auto cleanup = [&](Status s) {
      fd.reset();
      ::unlinkat(dir_fd, tmp.c_str(), 0);
      return Error(Fail(what, s));
    };
    if (::fchmod(fd.get(), kFileMode) != 0) return cleanup(ErrnoStatus(errno, "chmod " + tmp));
    if (Status s = files::WriteAll(fd.get(), body, dir + "/" + tmp); !s.ok()) return cleanup(s);
    if (::fsync(fd.get()) != 0) return cleanup(ErrnoStatus(errno, "fsync " + dir + "/" + tmp));
    fd.reset();
    bool written = true;
    if (::linkat(dir_fd, tmp.c_str(), dir_fd, name.c_str(), 0) != 0) {
      if (errno != EEXIST) return cleanup(ErrnoStatus(errno, "link " + tmp + " to " + dir + "/" + name));
      written = false;
    }
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    if (::fsync(dir_fd) != 0) return Error(Fail(what, ErrnoStatus(errno, "fsync directory " + dir)));
    return written;
  }

  Result<std::vector<uint8_t>> Get(const std::string& key, uint64_t max_bytes) override {
    const std::string what = "get " + key + " in " + Describe();
    REPLBOOT_RETURN_IF_ERROR(CheckFileKey(key));
    auto dirs = Walk(key, /*create=*/false);
    if (!dirs) return Error(Fail(what, dirs.error()));
    const std::string path = DirPath(key) + "/" + SplitKey(key).back();
    UniqueFd fd(::openat(dirs->back().get(), SplitKey(key).back().c_str(),
                         O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) {
      if (errno == ENOENT) return Error(StatusCode::kNotFound, "{}: no such object", what);
      if (errno == ELOOP) return Error(StatusCode::kIOError, "{}: {} is a symlink", what, path);
      return Error(Fail(what, ErrnoStatus(errno, "open " + path)));
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Error(Fail(what, ErrnoStatus(errno, "stat " + path)));
    if (!S_ISREG(st.st_mode)) return Error(StatusCode::kIOError, "{}: {} is not a regular file", what, path);
    if (static_cast<uint64_t>(st.st_size) > max_bytes) {
      return Error(StatusCode::kCorruption, "{}: the object is {} bytes, over the {} allowed", what,
                   st.st_size, max_bytes);
    }
    std::vector<uint8_t> out;
    out.reserve(static_cast<size_t>(st.st_size));
    uint8_t buf[65536];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error(Fail(what, ErrnoStatus(errno, "read " + path)));
      }
      if (n == 0) break;
      if (out.size() + static_cast<size_t>(n) > max_bytes) {  // it grew while we read
        return Error(StatusCode::kCorruption, "{}: the object is over the {} bytes allowed", what,
                     max_bytes);
      }
      out.insert(out.end(), buf, buf + n);
    }
    return out;
  }

  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    const std::string what = "list " + prefix + " in " + Describe();
    if (prefix.find('\0') != std::string::npos || prefix.starts_with('/')) {
      return Error(StatusCode::kInvalidArgument, "{}: bad prefix", what);
    }
    // Start in the deepest directory the prefix names whole ("a/b/" of "a/b/c").
    const size_t slash = prefix.rfind('/');
    const std::string start = slash == std::string::npos ? "" : prefix.substr(0, slash + 1);
    std::vector<ObjectInfo> out;
    // A new open file description, not a dup: readdir moves the offset a dup would share.
    UniqueFd dir(::openat(root_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) return Error(ErrnoStatus(errno, "open " + root_));
    if (!start.empty()) {
      auto dirs = Walk(start + "x", /*create=*/false);
      if (!dirs) {
        if (dirs.error().code() == StatusCode::kNotFound) return out;
        return Error(Fail(what, dirs.error()));
      }
      dir = std::move(dirs->back());
    }
    REPLBOOT_RETURN_IF_ERROR(ListDir(std::move(dir), start, prefix, 0, &out).WithContext(what));
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return out;
  }

  Status Delete(const std::string& key) override {
    const std::string what = "delete " + key + " in " + Describe();
    REPLBOOT_RETURN_STATUS_IF_ERROR(CheckFileKey(key));
    auto dirs = Walk(key, /*create=*/false);
    if (!dirs) {
      if (dirs.error().code() == StatusCode::kNotFound) return Status::Ok();
      return Fail(what, dirs.error());
    }
    const std::vector<std::string> parts = SplitKey(key);
    if (::unlinkat(dirs->back().get(), parts.back().c_str(), 0) != 0) {
      if (errno == ENOENT) return Status::Ok();
      return Fail(what, ErrnoStatus(errno, "remove " + DirPath(key) + "/" + parts.back()));
    }
    if (::fsync(dirs->back().get()) != 0) return Fail(what, ErrnoStatus(errno, "fsync " + DirPath(key)));
    // Best effort: parents left empty go too (another writer may be filling one: ENOTEMPTY,
    // or may recreate it right after; Put walks again and recreates what it needs).
    for (size_t i = parts.size() - 1; i-- > 0;) {
      if (::unlinkat((*dirs)[i].get(), parts[i].c_str(), AT_REMOVEDIR) != 0) break;
      ::fsync((*dirs)[i].get());
    }
    return Status::Ok();
  }

 private:
  Status CheckFileKey(const std::string& key) const {
    REPLBOOT_RETURN_STATUS_IF_ERROR(CheckKey(key));
    for (const auto& part : SplitKey(key)) {
      if (part.empty() || IsTempName(part)) {
        return Status(StatusCode::kInvalidArgument,
                      "object key \"" + Printable(key) + "\": " +
                          (part.empty() ? "ends with '/'" : "a component is named like a temp file (*.tmp.<16 hex>)"));
      }
    }
    return Status::Ok();
  }

  // root_/dirs of `key` ("file:///r/a/b" of "a/b/c"), for messages.
  std::string DirPath(const std::string& key) const {
    const size_t slash = key.rfind('/');
    return slash == std::string::npos ? root_ : root_ + "/" + key.substr(0, slash);
  }

  static Status Fail(const std::string& what, const Status& s) {
    if (s.code() == StatusCode::kNoSpace) {
      return Status(StatusCode::kNoSpace, what + ": no space left on the store's volume (" + s.message() + ")");
    }
    return s.WithContext(what);
  }

  // Descriptors of the root and of each directory of `key` (all components but the last),
  // opened without following symlinks; with `create`, missing ones are made (and their
  // parent fsynced, so the new entry survives a crash).
  Result<std::vector<UniqueFd>> Walk(const std::string& key, bool create) const {
    std::vector<UniqueFd> fds;
    fds.emplace_back(::openat(root_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fds.back().get() < 0) return Error(ErrnoStatus(errno, "open " + root_));
    std::vector<std::string> parts = SplitKey(key);
    parts.pop_back();
    std::string walked = root_;
    for (const auto& part : parts) {
      walked += "/" + part;
      const int parent = fds.back().get();
      if (create) {
        if (::mkdirat(parent, part.c_str(), kDirMode) == 0) {
          if (::fsync(parent) != 0) return Error(ErrnoStatus(errno, "fsync directory of " + walked));
        } else if (errno != EEXIST) {
          return Error(ErrnoStatus(errno, "create directory " + walked));
        }
      }
      UniqueFd next(::openat(parent, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (next.get() < 0) {
        if (errno == ENOTDIR || errno == ELOOP) {
          return Error(StatusCode::kIOError,
                       "{} is not a directory (a file or a symlink where the key needs one)", walked);
        }
        return Error(ErrnoStatus(errno, "open directory " + walked));
      }
      fds.push_back(std::move(next));
    }
    return fds;
  }

  // Appends the regular files under `dir` (key prefix `rel`) whose keys start with `prefix`.
  Status ListDir(UniqueFd dir, const std::string& rel, const std::string& prefix, size_t depth,
                 std::vector<ObjectInfo>* out) const {
    if (depth > kMaxDepth) return Status(StatusCode::kIOError, "directories nested too deep under " + rel);
    DIR* d = ::fdopendir(dir.get());
    if (d == nullptr) return ErrnoStatus(errno, "list " + root_ + "/" + rel);
    const int fd = dir.release();  // the DIR owns it now: closedir closes it
    struct Closer {
      DIR* d;
      ~Closer() { ::closedir(d); }
    } closer{d};
    for (;;) {
      errno = 0;
      struct dirent* e = ::readdir(d);
      if (e == nullptr) {
        if (errno != 0) return ErrnoStatus(errno, "list " + root_ + "/" + rel);
        break;
      }
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string key = rel + name;
      struct stat st {};
      if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed meanwhile
        return ErrnoStatus(errno, "stat " + root_ + "/" + key);
      }
      if (S_ISDIR(st.st_mode)) {
        const std::string sub = key + "/";
        if (!sub.starts_with(prefix) && !prefix.starts_with(sub)) continue;
        UniqueFd child(::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (child.get() < 0) {
          if (errno == ENOENT) continue;
          return ErrnoStatus(errno, "open directory " + root_ + "/" + key);
        }
        REPLBOOT_RETURN_STATUS_IF_ERROR(ListDir(std::move(child), sub, prefix, depth + 1, out));
      } else if (S_ISREG(st.st_mode) && !IsTempName(name) && key.starts_with(prefix)) {
        out->push_back(ObjectInfo{key, static_cast<uint64_t>(st.st_size)});
      }
    }
    return Status::Ok();
  }

  const std::string root_;
  const UniqueFd root_fd_;
};

}  // namespace

Result<std::unique_ptr<ObjectStore>> OpenFileStore(const std::string& root) {
  auto fd = files::MakeDirs(root, kDirMode);
  if (!fd) return Error(fd.error().WithContext("open store file://" + root));
  return std::unique_ptr<ObjectStore>(new FileStore(root, UniqueFd(*fd)));
}

}  // namespace replboot::store
