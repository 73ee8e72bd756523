#include "replboot/backup/xbstream_extractor.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>

#include "background_sync.h"
#include "replboot/base/log.h"
#include "xbstream_decompressor.h"

namespace replboot::backup {
namespace {

constexpr mode_t kFileMode = 0640;
constexpr mode_t kDirMode = 0750;
// Files past their 'E' whose fsync is queued on the background thread; beyond this the
// writer waits, so a stream of many small files does not hold many descriptors.
constexpr size_t kMaxPendingSync = 64;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string_view Parent(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

// Why a member cannot be extracted at all, or "" when it can.
std::string RefusalReason(std::string_view path) {
  if (EndsWith(path, ".xbcrypt")) {
    return "it is encrypted (xtrabackup --encrypt) and replboot does not decrypt backups; "
           "reconfigure the donor without --encrypt";
  }
  if (EndsWith(path, ".qp")) {
    return "it is qpress/QuickLZ-compressed (--compress) and replboot cannot decompress qpress; "
           "reconfigure the donor without --compress (or with --compress=zstd on XtraBackup)";
  }
  return "";
}

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

Status WriteAll(int fd, const uint8_t* data, size_t n, uint64_t offset, std::string_view path) {
  while (n > 0) {
    ssize_t w = pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, fmt::format("write {} at file offset {}", path, offset));
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<XbstreamExtractor>> XbstreamExtractor::Create(const std::string& target_dir,
                                                                     const ExtractOptions& options) {
  int fd = open(target_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error(ErrnoStatus(errno, fmt::format("open target directory {}", target_dir)));
  return std::unique_ptr<XbstreamExtractor>(new XbstreamExtractor(fd, target_dir, options));
}

XbstreamExtractor::XbstreamExtractor(int root_fd, std::string root, const ExtractOptions& options)
    : root_fd_(root_fd),
      root_(std::move(root)),
      options_(options),
      sync_(std::make_unique<BackgroundSync>(root_)) {
  fd_budget_ = options.max_open_fds;
  if (fd_budget_ == 0) {
    struct rlimit rl {};
    rlim_t limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    if (limit == RLIM_INFINITY || limit > 65536) limit = 65536;
    fd_budget_ = std::max<size_t>(static_cast<size_t>(limit) / 4, 8);
  }
}

XbstreamExtractor::~XbstreamExtractor() {
  for (auto& [path, file] : files_) {
    file.decompressor.reset();  // joins the worker before its descriptor closes
    if (file.fd >= 0) close(file.fd);
  }
  sync_.reset();  // stops the thread; closes what it still held
  close(root_fd_);
}

void XbstreamExtractor::MarkDirty(std::string_view path) { dirty_dirs_.emplace(Parent(path)); }

// Opens directory `dir` (relative to the target, "" is the target itself) by walking
// it one component at a time, refusing symlinks (O_NOFOLLOW) and anything that is
// not a directory; with `create`, missing directories are made (0750).
Result<int> XbstreamExtractor::OpenDirectory(std::string_view dir, bool create) {
  UniqueFd fd(fcntl(root_fd_, F_DUPFD_CLOEXEC, 0));
  if (fd.get() < 0) return Error(ErrnoStatus(errno, "dup target directory descriptor"));
  size_t start = 0;
  while (start < dir.size()) {
    size_t slash = dir.find('/', start);
    if (slash == std::string_view::npos) slash = dir.size();
    std::string part(dir.substr(start, slash - start));
    std::string_view so_far = dir.substr(0, slash);
    start = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return Error(StatusCode::kCorruption, "unsafe path {}: '..' component", dir);
    int next = openat(fd.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      if (mkdirat(fd.get(), part.c_str(), kDirMode) != 0 && errno != EEXIST) {
        return Error(ErrnoStatus(errno, fmt::format("create directory {} in {}", so_far, root_)));
      }
      dirty_dirs_.emplace(Parent(so_far));
      next = openat(fd.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      int err = errno;
      if (err == ELOOP || err == ENOTDIR) {
        return Error(StatusCode::kCorruption,
                     "{} in {} is a symlink or not a directory (refusing to follow it)", so_far,
                     root_);
      }
      return Error(ErrnoStatus(err, fmt::format("open directory {} in {}", so_far, root_)));
    }
    fd.reset(next);
  }
  return fd.release();
}

Status XbstreamExtractor::CheckReserved(std::string_view path, std::string_view what) const {
  if (options_.reserved_names.empty()) return Status::Ok();
  // The component that lands at the top of the target: OpenDirectory skips "" and ".",
  // so "./x" and "//x" name the same file as "x".
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(start, slash - start);
    start = slash + 1;
    if (part.empty() || part == ".") continue;
    for (const auto& name : options_.reserved_names) {
      if (part == name) {
        return Status(StatusCode::kCorruption,
                      fmt::format("stream member {} ({}) collides with {}, a name reserved "
                                  "for the extracting program's own state in {}",
                                  log::Printable(path), what, log::Printable(name), root_));
      }
    }
    break;
  }
  return Status::Ok();
}

// The descriptor of `path`'s directory (the caller closes it); *leaf is its last component.
Result<int> XbstreamExtractor::OpenParent(std::string_view path, bool create, std::string* leaf) {
  size_t slash = path.rfind('/');
  *leaf = std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
  if (leaf->empty() || *leaf == "." || *leaf == "..") {
    return Error(StatusCode::kCorruption, "unsafe path {}: no file name", path);
  }
  return OpenDirectory(Parent(path), create);
}

Status XbstreamExtractor::EvictIfNeeded() {
  while (open_fds_ + sync_->held() >= fd_budget_) {
    if (size_t held = sync_->held(); held > 0) {
      sync_->WaitHeldBelow(held);  // a queued fsync or writeback finishes and closes its fd
      continue;
    }
    // Close the least recently used writable file; it is reopened when needed.
    OpenFile* victim = nullptr;
    for (auto& [path, file] : files_) {
      if (file.fd >= 0 && !file.decompressor && (!victim || file.last_use < victim->last_use)) {
        victim = &file;
      }
    }
    if (!victim) {
      return Status(StatusCode::kIOError,
                    fmt::format("more than {} files are being written at once (descriptor budget)",
                                fd_budget_));
    }
    close(victim->fd);
    victim->fd = -1;
    --open_fds_;
  }
  return Status::Ok();
}

Status XbstreamExtractor::EnsureFd(std::string_view path, OpenFile& file) {
  file.last_use = ++use_clock_;
  if (file.fd >= 0) return Status::Ok();
  if (Status s = EvictIfNeeded(); !s.ok()) return s;
  std::string leaf;
  auto parent = OpenParent(file.out_path, false, &leaf);
  if (!parent) return parent.error();
  UniqueFd dir(*parent);
  int fd = openat(dir.get(), leaf.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, fmt::format("reopen {} in {}", file.out_path, root_));
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_dev != file.dev || st.st_ino != file.ino) {
    close(fd);
    return Status(StatusCode::kIOError,
                  fmt::format("{} in {} was replaced while being extracted", path, root_));
  }
  file.fd = fd;
  ++open_fds_;
  return Status::Ok();
}

// Opens (creating) the file a chunk names, the first time it is seen in its life.
Result<XbstreamExtractor::OpenFile*> XbstreamExtractor::Open(const ChunkHeader& chunk,
                                                             bool truncate) {
  std::string path(chunk.path);
  if (std::string why = RefusalReason(path); !why.empty()) {
    return Error(StatusCode::kInvalidArgument, "cannot extract {}: {}", path, why);
  }
  OpenFile file;
  file.out_path = path;
  Codec codec = Codec::kZstd;
  bool compressed = false;
  if (options_.decompress && (EndsWith(path, ".zst") || EndsWith(path, ".lz4"))) {
    compressed = true;
    codec = EndsWith(path, ".zst") ? Codec::kZstd : Codec::kLz4;
    file.out_path = path.substr(0, path.size() - 4);
    if (Status s = CheckStreamPath(file.out_path); !s.ok()) return Error(s);
  }
  if (Status s = CheckReserved(file.out_path, "file"); !s.ok()) return Error(s);
  if (Status s = EvictIfNeeded(); !s.ok()) return Error(s);
  std::string leaf;
  auto parent = OpenParent(file.out_path, true, &leaf);
  if (!parent) return Error(parent.error());
  UniqueFd dir(*parent);
  int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  // MariaDB's rewrite flag reopens a file the stream already wrote; otherwise a
  // name that exists is an error, never a silent overwrite.
  flags |= chunk.rewrite() ? (truncate ? O_TRUNC : 0) : O_EXCL;
  int fd = openat(dir.get(), leaf.c_str(), flags, kFileMode);
  if (fd < 0) {
    int err = errno;
    if (err == EEXIST) {
      return Error(StatusCode::kCorruption,
                   "{} already exists in {} (the stream names it twice without the rewrite flag)",
                   file.out_path, root_);
    }
    if (err == ELOOP) {
      return Error(StatusCode::kCorruption, "{} in {} is a symlink (refusing to follow it)",
                   file.out_path, root_);
    }
    return Error(ErrnoStatus(err, fmt::format("create {} in {}", file.out_path, root_)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Error(StatusCode::kCorruption, "{} in {} is not a regular file", file.out_path, root_);
  }
  file.fd = fd;
  file.dev = st.st_dev;
  file.ino = st.st_ino;
  file.last_use = ++use_clock_;
  ++open_fds_;
  MarkDirty(file.out_path);
  AppendJournal(&journal_, kJournalCreate, file.out_path);
  if (compressed) {
    file.decompressor = std::make_unique<Decompressor>(fd, file.out_path, codec);
  }
  auto [it, inserted] = files_.emplace(path, std::move(file));
  (void)inserted;  // the reader never starts a file twice before its 'E'
  return &it->second;
}

Result<XbstreamExtractor::OpenFile*> XbstreamExtractor::Find(const ChunkHeader& chunk) {
  auto it = files_.find(std::string(chunk.path));
  if (it == files_.end()) return Open(chunk, true);
  REPLBOOT_RETURN_IF_ERROR(EnsureFd(chunk.path, it->second));
  return &it->second;
}

Result<XbstreamExtractor::FileMap::iterator> XbstreamExtractor::FindOrOpen(const ChunkHeader& chunk,
                                                                           bool truncate) {
  auto it = files_.find(std::string(chunk.path));
  if (it != files_.end()) return it;
  auto file = Open(chunk, truncate);
  if (!file) return Error(file.error());
  return files_.find(std::string(chunk.path));
}

Status XbstreamExtractor::OnPayloadBegin(const ChunkHeader& chunk) {
  auto file = Find(chunk);
  if (!file) return file.error();
  if ((*file)->decompressor && chunk.type == ChunkType::kSparse) {
    return Status(StatusCode::kCorruption,
                  fmt::format("sparse chunk for compressed member {}", chunk.path));
  }
  return Status::Ok();
}

Status XbstreamExtractor::OnPayload(const ChunkHeader& chunk, uint64_t file_offset,
                                    std::span<const uint8_t> data) {
  auto it = files_.find(std::string(chunk.path));
  if (it == files_.end()) {
    return Status(StatusCode::kInternal, fmt::format("payload for {} before its start", chunk.path));
  }
  OpenFile& file = it->second;
  if (file.decompressor) return file.decompressor->Push(data);
  if (file.fd < 0) REPLBOOT_RETURN_STATUS_IF_ERROR(EnsureFd(chunk.path, file));
  REPLBOOT_RETURN_STATUS_IF_ERROR(
      WriteAll(file.fd, data.data(), data.size(), file_offset, file.out_path));
  file.written_end = std::max(file.written_end, file_offset + data.size());
  stats_.bytes_written += data.size();
  return Status::Ok();
}

Status XbstreamExtractor::OnPayloadEnd(const ChunkHeader& chunk) {
  auto it = files_.find(std::string(chunk.path));
  if (it == files_.end()) return Status::Ok();
  OpenFile& file = it->second;
  if (file.decompressor) return Status::Ok();  // sizes there are of the compressed bytes
  file.logical_end = std::max(file.logical_end, chunk.end_offset);
  if (options_.early_writeback && file.fd >= 0 && chunk.length >= (1u << 20)) {
    // On the background thread: even SYNC_FILE_RANGE_WRITE does the filesystem's block
    // allocation and builds the I/O in the caller, and waits when the device queue is full.
    // Errors surface at the fsync. Each queued range holds a descriptor: bounded like fsyncs.
    if (sync_->held() >= kMaxPendingSync) sync_->WaitHeldBelow(kMaxPendingSync);
    return sync_->Writeback(file.fd, chunk.offset, chunk.end_offset - chunk.offset);
  }
  return Status::Ok();
}

Status XbstreamExtractor::OnSeek(const ChunkHeader& chunk) {
  // A seek opens a file like a payload would, but never truncates it.
  auto it = FindOrOpen(chunk, /*truncate=*/false);
  if (!it) return it.error();
  if ((*it)->second.decompressor) {
    return Status(StatusCode::kCorruption,
                  fmt::format("seek inside compressed member {}", chunk.path));
  }
  return Status::Ok();
}

Status XbstreamExtractor::OnEof(const ChunkHeader& chunk) {
  // A file with no payload at all is an 'E' alone.
  auto it = FindOrOpen(chunk, /*truncate=*/true);
  if (!it) return it.error();
  OpenFile file = std::move((*it)->second);
  files_.erase(*it);
  std::string path(chunk.path);
  Status status;
  if (file.decompressor) {
    uint64_t written = 0;
    status = file.decompressor->Finish(&written);
    file.decompressor.reset();
    stats_.bytes_written += written;
  }
  if (status.ok() && file.fd < 0) status = EnsureFd(path, file);
  if (status.ok() && file.logical_end > file.written_end) {
    // A sparse file that ends in a hole: its size is set here, not by a write.
    if (ftruncate(file.fd, static_cast<off_t>(file.logical_end)) != 0) {
      status = ErrnoStatus(errno, fmt::format("set size of {} to {}", file.out_path,
                                              file.logical_end));
    }
  }
  if (!status.ok()) {
    if (file.fd >= 0) {
      close(file.fd);
      --open_fds_;
    }
    return status;
  }
  --open_fds_;
  ++stats_.files;
  return QueueSync(file.fd, file.out_path);
}

Status XbstreamExtractor::QueueSync(int fd, const std::string& path) {
  if (sync_->held() >= kMaxPendingSync) sync_->WaitHeldBelow(kMaxPendingSync);
  // The fsync runs beside the next files' writes; an earlier file's failed fsync ends the
  // extraction here instead of at Commit.
  return sync_->SyncAndClose(fd, path);
}

Status XbstreamExtractor::OnRename(const ChunkHeader& chunk) {
  REPLBOOT_RETURN_STATUS_IF_ERROR(CheckReserved(chunk.new_path, "rename target"));
  if (options_.before_irreversible) REPLBOOT_RETURN_STATUS_IF_ERROR(options_.before_irreversible());
  std::string from_leaf, to_leaf;
  auto from = OpenParent(chunk.path, false, &from_leaf);
  if (!from) return from.error();
  UniqueFd from_dir(*from);
  auto to = OpenParent(chunk.new_path, true, &to_leaf);
  if (!to) return to.error();
  UniqueFd to_dir(*to);
  struct stat st {};
  if (fstatat(from_dir.get(), from_leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, fmt::format("rename {} to {} in {}", chunk.path, chunk.new_path,
                                          root_));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status(StatusCode::kCorruption,
                  fmt::format("rename {} in {}: not a regular file", chunk.path, root_));
  }
  if (renameat(from_dir.get(), from_leaf.c_str(), to_dir.get(), to_leaf.c_str()) != 0) {
    return ErrnoStatus(errno, fmt::format("rename {} to {} in {}", chunk.path, chunk.new_path,
                                          root_));
  }
  MarkDirty(chunk.path);
  MarkDirty(chunk.new_path);
  AppendJournal(&journal_, kJournalRename, chunk.path, chunk.new_path);
  return Status::Ok();
}

Status XbstreamExtractor::OnDelete(const ChunkHeader& chunk) {
  REPLBOOT_RETURN_STATUS_IF_ERROR(CheckReserved(chunk.path, "delete"));
  if (options_.before_irreversible) REPLBOOT_RETURN_STATUS_IF_ERROR(options_.before_irreversible());
  std::string leaf;
  auto parent = OpenParent(chunk.path, false, &leaf);
  if (!parent) return parent.error();
  UniqueFd dir(*parent);
  // unlinkat without AT_REMOVEDIR removes files (or a planted symlink itself), never
  // a directory, and never follows anything.
  if (unlinkat(dir.get(), leaf.c_str(), 0) != 0) {
    return ErrnoStatus(errno, fmt::format("delete {} in {}", chunk.path, root_));
  }
  MarkDirty(chunk.path);
  AppendJournal(&journal_, kJournalDelete, chunk.path);
  return Status::Ok();
}

Status XbstreamExtractor::OnChunkEnd(uint64_t stream_offset) {
  if (options_.on_chunk_end) return options_.on_chunk_end(stream_offset);
  return Status::Ok();
}

Status XbstreamExtractor::SyncDirtyDirs() {
  for (const std::string& dir_path : dirty_dirs_) {
    auto dir = OpenDirectory(dir_path, false);
    if (!dir) return dir.error();
    int fd = *dir;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0) return ErrnoStatus(err, fmt::format("fsync directory {} in {}", dir_path, root_));
  }
  return Status::Ok();
}

Status XbstreamExtractor::MakeDurable(std::vector<PartialFile>* open, std::string* journal) {
  open->clear();
  REPLBOOT_RETURN_STATUS_IF_ERROR(sync_->Drain());
  for (auto& [path, file] : files_) {
    if (file.decompressor) {
      return Status(StatusCode::kInvalidArgument,
                    fmt::format("no durable point inside compressed member {}", path));
    }
    REPLBOOT_RETURN_STATUS_IF_ERROR(EnsureFd(path, file));
    if (::fdatasync(file.fd) != 0)
      return ErrnoStatus(errno, fmt::format("fsync {} in {}", file.out_path, root_));
    open->push_back({path, file.written_end, file.logical_end});
  }
  REPLBOOT_RETURN_STATUS_IF_ERROR(SyncDirtyDirs());
  dirty_dirs_.clear();
  journal->swap(journal_);
  journal_.clear();
  return Status::Ok();
}

Status XbstreamExtractor::ResumeFiles(const std::vector<PartialFile>& resumed) {
  for (const PartialFile& p : resumed) {
    REPLBOOT_RETURN_STATUS_IF_ERROR(CheckStreamPath(p.path));
    if (files_.count(p.path) != 0)
      return Status(StatusCode::kCorruption, fmt::format("{} resumed twice", p.path));
    if (p.written_end > kMaxFileOffset || p.logical_end > kMaxFileOffset)
      return Status(StatusCode::kCorruption, fmt::format("resume size of {} out of range", p.path));
    REPLBOOT_RETURN_STATUS_IF_ERROR(EvictIfNeeded());
    std::string leaf;
    auto parent = OpenParent(p.path, false, &leaf);
    if (!parent) return parent.error();
    UniqueFd dir(*parent);
    int fd = openat(dir.get(), leaf.c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, fmt::format("reopen {} in {} to resume", p.path, root_));
    UniqueFd owned(fd);
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      return Status(StatusCode::kCorruption,
                    fmt::format("{} in {} is not a regular file", p.path, root_));
    }
    if (static_cast<uint64_t>(st.st_size) < p.written_end) {
      return Status(StatusCode::kCorruption,
                    fmt::format("{} in {} holds {} bytes, less than its durable {}", p.path,
                                root_, st.st_size, p.written_end));
    }
    if (ftruncate(fd, static_cast<off_t>(p.written_end)) != 0)
      return ErrnoStatus(errno, fmt::format("cut {} back to {} bytes", p.path, p.written_end));
    OpenFile file;
    file.fd = owned.release();
    file.dev = st.st_dev;
    file.ino = st.st_ino;
    file.out_path = p.path;
    file.written_end = p.written_end;
    file.logical_end = p.logical_end;
    file.last_use = ++use_clock_;
    ++open_fds_;
    files_.emplace(p.path, std::move(file));
  }
  return Status::Ok();
}

void AppendJournal(std::string* journal, uint8_t kind, std::string_view path,
                   std::string_view new_path) {
  auto put = [&](std::string_view text) {
    const auto n = static_cast<uint16_t>(std::min<size_t>(text.size(), kMaxPathLength));
    journal->push_back(static_cast<char>(n & 0xff));
    journal->push_back(static_cast<char>(n >> 8));
    journal->append(text.substr(0, n));
  };
  journal->push_back(static_cast<char>(kind));
  put(path);
  if (kind == kJournalRename) put(new_path);
}

Result<std::set<std::string>> ReplayJournal(std::string_view journal, size_t max_names) {
  std::set<std::string> names;
  size_t pos = 0;
  auto take = [&](std::string* out) -> Status {
    if (journal.size() - pos < 2)
      return Status(StatusCode::kCorruption, fmt::format("journal truncated at byte {}", pos));
    const size_t n = static_cast<uint8_t>(journal[pos]) |
                     (static_cast<size_t>(static_cast<uint8_t>(journal[pos + 1])) << 8);
    pos += 2;
    if (n > kMaxPathLength || journal.size() - pos < n)
      return Status(StatusCode::kCorruption, fmt::format("journal path at byte {} is cut or too long", pos));
    *out = std::string(journal.substr(pos, n));
    pos += n;
    if (Status s = CheckStreamPath(*out); !s.ok()) return s.WithContext("journal");
    return Status::Ok();
  };
  while (pos < journal.size()) {
    const auto kind = static_cast<uint8_t>(journal[pos++]);
    std::string path, new_path;
    REPLBOOT_RETURN_IF_ERROR(take(&path));
    switch (kind) {
      case kJournalCreate:
        names.insert(std::move(path));
        break;
      case kJournalDelete:
        names.erase(path);
        break;
      case kJournalRename:
        REPLBOOT_RETURN_IF_ERROR(take(&new_path));
        names.erase(path);
        names.insert(std::move(new_path));
        break;
      default:
        return Error(StatusCode::kCorruption, "journal record of unknown kind {} at byte {}", kind,
                     pos - 1);
    }
    if (names.size() > max_names)
      return Error(StatusCode::kCorruption, "journal names more than {} files", max_names);
  }
  return names;
}

Status XbstreamExtractor::Commit() {
  if (!files_.empty()) {
    return Status(StatusCode::kCorruption,
                  fmt::format("{} file(s) in {} never got their end-of-file chunk", files_.size(),
                              root_));
  }
  const auto wait_start = std::chrono::steady_clock::now();
  Status synced = sync_->Drain();
  stats_.commit_wait_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count();
  const BackgroundSync::Stats sync_stats = sync_->stats();
  stats_.fsyncs = sync_stats.fsyncs;
  stats_.fsync_seconds = sync_stats.fsync_seconds;
  REPLBOOT_RETURN_STATUS_IF_ERROR(synced);
  // Every directory whose entries changed (created files, subdirectories, renames).
  REPLBOOT_RETURN_STATUS_IF_ERROR(SyncDirtyDirs());
  return Status::Ok();
}

Result<ExtractResult> ExtractStream(int fd, std::string_view source_name,
                                    const std::string& target_dir, const ExtractOptions& options) {
  auto extractor = XbstreamExtractor::Create(target_dir, options);
  if (!extractor) return Error(extractor.error());
  XbstreamReader::Options reader_options;
  reader_options.flavour = options.flavour;
  XbstreamReader reader(reader_options, extractor->get());
  ExtractResult result;
  struct stat st {};
  off_t start = 0;
  if (options.map_regular_files && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (start = lseek(fd, 0, SEEK_CUR)) >= 0 && st.st_size > start) {
    // A regular file is mapped window by window instead of read(): the checksum and
    // the writes then use the page cache's pages directly, which saves copying
    // every byte once. Windows stay small so that mapped pages (which count as
    // resident) keep the peak RSS low.
    const uint64_t window = std::max<uint64_t>(2 * static_cast<uint64_t>(options.read_size), 1u << 20);
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t pos = static_cast<uint64_t>(start);
    const uint64_t end = static_cast<uint64_t>(st.st_size);
    while (pos < end) {
      uint64_t base = pos / page * page;
      size_t len = static_cast<size_t>(std::min<uint64_t>(window, end - base));
      void* map = mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd,
                       static_cast<off_t>(base));
      if (map == MAP_FAILED) {
        return Error(ErrnoStatus(errno, fmt::format("map {} at stream offset {}", source_name,
                                                    pos - static_cast<uint64_t>(start))));
      }
      const uint8_t* p = static_cast<const uint8_t*>(map) + (pos - base);
      size_t n = len - static_cast<size_t>(pos - base);
      Status fed = reader.Feed(p, n);
      munmap(map, len);
      REPLBOOT_RETURN_IF_ERROR(fed);
      pos += n;
      result.stream_bytes += n;
    }
    (void)lseek(fd, static_cast<off_t>(end), SEEK_SET);
  } else {
    size_t size = std::max<size_t>(options.read_size, 4096);
    std::unique_ptr<uint8_t, decltype(&std::free)> buffer(
        static_cast<uint8_t*>(std::aligned_alloc(4096, (size + 4095) / 4096 * 4096)), &std::free);
    if (!buffer) return Error(StatusCode::kIOError, "cannot allocate a {} byte read buffer", size);
    while (true) {
      ssize_t n = read(fd, buffer.get(), size);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error(ErrnoStatus(errno, fmt::format("read {} at stream offset {}", source_name,
                                                    result.stream_bytes)));
      }
      if (n == 0) break;
      result.stream_bytes += static_cast<uint64_t>(n);
      REPLBOOT_RETURN_IF_ERROR(reader.Feed(buffer.get(), static_cast<size_t>(n)));
    }
  }
  REPLBOOT_RETURN_IF_ERROR(reader.Finish());
  REPLBOOT_RETURN_IF_ERROR((*extractor)->Commit());
  result.reader = reader.stats();
  result.extractor = (*extractor)->stats();
  return result;
}

}  // namespace replboot::backup
