#include "replboot/clone/datadir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "replboot/base/files.h"
#include "replboot/base/log.h"

namespace replboot::clone {

namespace {

auto Log() { return log::Get("clone"); }

std::string Trim(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

Result<DirState> StateOf(const std::string& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return DirState::kAbsent;
    return Error(ErrnoStatus(errno, fmt::format("stat {}", dir)));
  }
  if (!S_ISDIR(st.st_mode))
    return Error(StatusCode::kInvalidArgument, "{} is not a directory", dir);
  auto empty = files::IsEmptyDir(dir);
  if (!empty) return Error(empty.error());
  if (*empty) return DirState::kEmpty;
  if (Exists(dir + "/" + std::string(kMarkerName))) return DirState::kCommitted;
  return DirState::kData;
}

Status Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    return ErrnoStatus(errno, fmt::format("rename {} to {}", from, to));
  return Status::Ok();
}

}  // namespace

std::string StagingPath(const std::string& datadir) {
  return Trim(datadir) + std::string(kStagingSuffix);
}
std::string OldPath(const std::string& datadir) { return Trim(datadir) + std::string(kOldSuffix); }

std::string_view DirStateName(DirState state) {
  switch (state) {
    case DirState::kAbsent:
      return "absent";
    case DirState::kEmpty:
      return "empty";
    case DirState::kCommitted:
      return "committed";
    case DirState::kData:
      return "data";
  }
  return "unknown";
}

Result<DatadirInspection> InspectDatadir(const std::string& datadir_in) {
  const std::string datadir = Trim(datadir_in);
  DatadirInspection out;
  auto d = StateOf(datadir);
  if (!d) return Error(d.error());
  out.datadir = *d;
  auto s = StateOf(StagingPath(datadir));
  if (!s) return Error(s.error());
  out.staging = *s;
  if (out.staging == DirState::kCommitted) {
    auto text = files::ReadFile(StagingPath(datadir) + "/" + std::string(kMarkerName));
    if (!text) return Error(text.error());
    try {
      out.staging_replaces = nlohmann::json::parse(*text).value("replace", false);
    } catch (const nlohmann::json::exception&) {
      // A marker we cannot read is not a commit: the staging dir will be discarded.
      out.staging = DirState::kData;
    }
  }
  if (out.staging == DirState::kData) {
    struct stat st;
    const std::string point =
        StagingPath(datadir) + "/" + std::string(datadir_files::kResumeState);
    out.staging_resumable = ::lstat(point.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }
  out.old_present = Exists(OldPath(datadir));
  return out;
}

Status WriteMarker(const std::string& staging, const std::string& json) {
  Status s = files::WriteFileAtomic(staging + "/" + std::string(kMarkerName), json, 0644);
  if (!s.ok()) return s;
  s = files::FsyncDir(staging);
  if (!s.ok()) return s;
  return files::FsyncDir(files::ParentDir(staging));
}

Status FinishSwap(const std::string& datadir_in) {
  const std::string datadir = Trim(datadir_in);
  const std::string staging = StagingPath(datadir);
  const std::string old = OldPath(datadir);
  auto d = StateOf(datadir);
  if (!d) return d.error();
  if (*d == DirState::kEmpty) {
    // rename(2) replaces an empty directory atomically; nothing to keep.
  } else if (*d != DirState::kAbsent) {
    if (Exists(old)) {
      return Status(
          StatusCode::kInvalidArgument,
          fmt::format("{} exists and {} holds data: refusing to overwrite either", old, datadir));
    }
    Status s = Rename(datadir, old);
    if (!s.ok()) return s;
    Log()->info("event=datadir_kept_aside path={}", log::Quote(old));
  }
  Status s = Rename(staging, datadir);
  if (!s.ok()) return s;
  s = files::FsyncDir(files::ParentDir(datadir));
  if (!s.ok()) return s;
  Log()->info("event=clone_committed datadir={}", log::Quote(datadir));
  if (Exists(old)) {
    s = files::RemoveAll(old);
    if (!s.ok()) return s;
    Log()->info("event=old_datadir_removed path={}", log::Quote(old));
  }
  return Status::Ok();
}

Status DiscardStaging(const std::string& datadir) {
  const std::string staging = StagingPath(Trim(datadir));
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::RemoveAll(staging));
  Log()->info("event=staging_discarded path={}", log::Quote(staging));
  return Status::Ok();
}

Status RestoreOld(const std::string& datadir_in) {
  const std::string datadir = Trim(datadir_in);
  auto d = StateOf(datadir);
  if (!d) return d.error();
  if (*d == DirState::kEmpty) REPLBOOT_RETURN_STATUS_IF_ERROR(files::RemoveAll(datadir));
  REPLBOOT_RETURN_STATUS_IF_ERROR(Rename(OldPath(datadir), datadir));
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::FsyncDir(files::ParentDir(datadir)));
  Log()->info("event=old_datadir_restored datadir={}", log::Quote(datadir));
  return Status::Ok();
}

Status DropOld(const std::string& datadir) {
  const std::string old = OldPath(Trim(datadir));
  REPLBOOT_RETURN_STATUS_IF_ERROR(files::RemoveAll(old));
  Log()->info("event=old_datadir_removed path={}", log::Quote(old));
  return Status::Ok();
}

}  // namespace replboot::clone
