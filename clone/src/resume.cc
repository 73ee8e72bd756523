#include "resume.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "replboot/base/files.h"
#include "replboot/base/log.h"

namespace replboot::clone {

namespace {

using nlohmann::json;

constexpr int kResumeStateVersion = 1;
// Past this the numbers in the state are not offsets of any stream.
constexpr uint64_t kMaxOffset = uint64_t{1} << 62;

Status Bad(std::string_view what) {
  return Status(StatusCode::kCorruption, fmt::format("resume state: {}", what));
}

// The object's keys, exactly `keys`.
Status ExactKeys(const json& j, std::initializer_list<std::string_view> keys, std::string_view what) {
  if (!j.is_object()) return Bad(fmt::format("{} is not an object", what));
  if (j.size() != keys.size()) return Bad(fmt::format("{} has {} keys, not {}", what, j.size(), keys.size()));
  for (std::string_view key : keys) {
    if (!j.contains(std::string(key))) return Bad(fmt::format("{} lacks {}", what, log::Printable(key)));
  }
  return Status::Ok();
}

Status Unsigned(const json& j, std::string_view key, uint64_t max, uint64_t* out) {
  const json& v = j.at(std::string(key));
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    return Bad(fmt::format("{} is not a non-negative integer", log::Printable(key)));
  *out = v.get<uint64_t>();
  if (*out > max) return Bad(fmt::format("{} = {} is out of range", log::Printable(key), *out));
  return Status::Ok();
}

Status Text(const json& j, std::string_view key, size_t max, std::string* out) {
  const json& v = j.at(std::string(key));
  if (!v.is_string()) return Bad(fmt::format("{} is not a string", log::Printable(key)));
  *out = v.get<std::string>();
  if (out->size() > max) return Bad(fmt::format("{} is longer than {} bytes", log::Printable(key), max));
  return Status::Ok();
}

template <size_t N>
Status Hex(const json& j, std::string_view key, std::array<uint8_t, N>* out) {
  std::string text;
  REPLBOOT_RETURN_STATUS_IF_ERROR(Text(j, key, 2 * N, &text));
  if (!HexDecode(text, *out)) return Bad(fmt::format("{} is not {} hex digits", log::Printable(key), 2 * N));
  return Status::Ok();
}

}  // namespace

std::string EncodeResumeState(const ResumeState& s) {
  json files = json::array();
  for (const auto& f : s.open_files) {
    files.push_back({{"path", f.path}, {"next", f.next}, {"written", f.written}, {"logical", f.logical}});
  }
  json j = {{"version", kResumeStateVersion},
            {"donor", s.donor},
            {"header", s.header},
            {"run_id", s.run_id},
            {"resume_id", HexEncode(s.resume_id)},
            {"offset", s.offset},
            {"frame_offset", s.frame_offset},
            {"chain", HexEncode(s.chain)},
            {"journal_bytes", s.journal_bytes},
            {"checkpoint_bytes", s.checkpoint_bytes},
            {"open_files", files}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ResumeState> ParseResumeState(std::string_view text) {
  if (text.size() > kMaxResumeStateBytes) return Error(Bad("file too large"));
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(Bad("not JSON"));
  REPLBOOT_RETURN_IF_ERROR(ExactKeys(j,
                                     {"version", "donor", "header", "run_id", "resume_id", "offset",
                                      "frame_offset", "chain", "journal_bytes", "checkpoint_bytes",
                                      "open_files"},
                                     "the state"));
  ResumeState s;
  uint64_t version = 0;
  REPLBOOT_RETURN_IF_ERROR(Unsigned(j, "version", 1000, &version));
  if (version != kResumeStateVersion) return Error(Bad(fmt::format("version {} is not {}", version, kResumeStateVersion)));
  REPLBOOT_RETURN_IF_ERROR(Text(j, "donor", 300, &s.donor));
  REPLBOOT_RETURN_IF_ERROR(Text(j, "header", kMaxControlPayload, &s.header));
  REPLBOOT_RETURN_IF_ERROR(Unsigned(j, "run_id", kMaxOffset, &s.run_id));
  REPLBOOT_RETURN_IF_ERROR(Hex(j, "resume_id", &s.resume_id));
  REPLBOOT_RETURN_IF_ERROR(Unsigned(j, "offset", kMaxOffset, &s.offset));
  REPLBOOT_RETURN_IF_ERROR(Unsigned(j, "frame_offset", kMaxOffset, &s.frame_offset));
  REPLBOOT_RETURN_IF_ERROR(Hex(j, "chain", &s.chain));
  REPLBOOT_RETURN_IF_ERROR(Unsigned(j, "journal_bytes", kMaxJournalBytes, &s.journal_bytes));
  REPLBOOT_RETURN_IF_ERROR(Unsigned(j, "checkpoint_bytes", kMaxCheckpointBytes, &s.checkpoint_bytes));
  if (s.frame_offset > s.offset || s.offset - s.frame_offset >= kMaxDataPayload)
    return Error(Bad(fmt::format("offset {} is not inside the frame at {}", s.offset, s.frame_offset)));
  if (s.offset == 0) return Error(Bad("a durable point at byte 0"));
  auto header = DecodeStreamHeader(s.header);
  if (!header) return Error(Bad(fmt::format("header: {}", header.error().message())));
  if (header->resume_id != HexEncode(s.resume_id) || header->run_id != s.run_id)
    return Error(Bad("the header names another stream"));
  const json& files = j.at("open_files");
  if (!files.is_array()) return Error(Bad("\"open_files\" is not an array"));
  if (files.size() > kMaxResumeOpenFiles)
    return Error(Bad(fmt::format("{} open files, more than {}", files.size(), kMaxResumeOpenFiles)));
  std::set<std::string> seen;
  for (const json& f : files) {
    REPLBOOT_RETURN_IF_ERROR(ExactKeys(f, {"path", "next", "written", "logical"}, "an open file"));
    ResumeOpenFile file;
    REPLBOOT_RETURN_IF_ERROR(Text(f, "path", backup::kMaxPathLength, &file.path));
    if (Status st = backup::CheckStreamPath(file.path); !st.ok()) return Error(Bad(st.message()));
    REPLBOOT_RETURN_IF_ERROR(Unsigned(f, "next", kMaxOffset, &file.next));
    REPLBOOT_RETURN_IF_ERROR(Unsigned(f, "written", kMaxOffset, &file.written));
    REPLBOOT_RETURN_IF_ERROR(Unsigned(f, "logical", kMaxOffset, &file.logical));
    if (file.written > file.logical && file.logical != 0)
      return Error(Bad(fmt::format("{} has more bytes written than its size", file.path)));
    if (!seen.insert(file.path).second) return Error(Bad(fmt::format("{} is listed twice", file.path)));
    s.open_files.push_back(std::move(file));
  }
  return s;
}

void FrameLog::Add(const Frame& frame) {
  std::lock_guard lock(mu_);
  frames_.push_back(frame);
}

std::optional<std::pair<uint64_t, ResumeChain>> FrameLog::Locate(uint64_t offset) {
  std::lock_guard lock(mu_);
  while (!frames_.empty() && frames_.front().offset + frames_.front().size < offset) frames_.pop_front();
  for (const Frame& f : frames_) {
    if (offset >= f.offset && offset < f.offset + f.size) return std::pair{f.offset, f.before};
  }
  if (!frames_.empty() && frames_.back().offset + frames_.back().size == offset)
    return std::pair{offset, frames_.back().after};
  return std::nullopt;
}

bool HasResumePoint(const std::string& staging) {
  struct stat st {};
  const std::string path = staging + "/" + std::string(kResumeStateName);
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<ResumeState> LoadResumePoint(const std::string& staging) {
  const std::string state_path = staging + "/" + std::string(kResumeStateName);
  const std::string journal_path = staging + "/" + std::string(kResumeJournalName);
  auto read_bounded = [](const std::string& path, uint64_t max) -> Result<std::string> {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return Error(ErrnoStatus(errno, "open " + path));
    struct stat st {};
    std::string out;
    Status s;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      s = Status(StatusCode::kCorruption, fmt::format("{} is not a regular file", path));
    } else if (static_cast<uint64_t>(st.st_size) > max) {
      s = Status(StatusCode::kCorruption, fmt::format("{} holds {} bytes, more than {}", path, st.st_size, max));
    } else {
      out.resize(static_cast<size_t>(st.st_size));
      size_t got = 0;
      while (got < out.size()) {
        ssize_t n = ::read(fd, out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          s = n < 0 ? ErrnoStatus(errno, "read " + path)
                    : Status(StatusCode::kCorruption, fmt::format("{} shrank while read", path));
          break;
        }
        got += static_cast<size_t>(n);
      }
    }
    ::close(fd);
    if (!s.ok()) return Error(s);
    return out;
  };
  auto text = read_bounded(state_path, kMaxResumeStateBytes);
  if (!text) return Error(text.error());
  auto state = ParseResumeState(*text);
  if (!state) return Error(state.error());
  // The journal may hold records past the state (a checkpoint cut short): only its prefix counts.
  auto journal = read_bounded(journal_path, kMaxJournalBytes + kMaxJournalBytes);
  if (!journal) return Error(journal.error());
  if (journal->size() < state->journal_bytes) {
    return Error(StatusCode::kCorruption, "resume journal holds {} bytes, the state counts {}",
                 journal->size(), state->journal_bytes);
  }
  auto names = backup::ReplayJournal(std::string_view(*journal).substr(0, state->journal_bytes),
                                     kMaxJournalNames);
  if (!names) return Error(names.error().WithContext("resume journal"));
  for (const auto& f : state->open_files) {
    if (names->count(f.path) == 0)
      return Error(StatusCode::kCorruption, "resume state: open file {} was never created", f.path);
  }
  // Walk the dir: keep what the journal leaves, remove other regular files, refuse anything
  // else (a symlink, a fifo: not ours).
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> extra;
  size_t kept = 0;
  for (auto it = fs::recursive_directory_iterator(staging, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::file_status st = it->symlink_status(ec);
    if (ec) break;
    if (fs::is_directory(st)) continue;
    const std::string rel = fs::relative(it->path(), staging, ec).generic_string();
    if (ec) break;
    if (!fs::is_regular_file(st)) {
      return Error(StatusCode::kCorruption, "{} in {} is neither a file nor a directory", rel, staging);
    }
    if (rel == kResumeStateName || rel == kResumeJournalName) continue;
    if (names->count(rel) != 0) {
      ++kept;
    } else {
      extra.push_back(it->path());
    }
  }
  if (ec) return Error(StatusCode::kIOError, "walking {}: {}", staging, ec.message());
  if (kept != names->size()) {
    return Error(StatusCode::kCorruption, "{} of the {} files the resume journal counts are missing from {}",
                 names->size() - kept, names->size(), staging);
  }
  for (const auto& path : extra) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return Error(ErrnoStatus(errno, "remove " + path.string()));
  }
  if (::truncate(journal_path.c_str(), static_cast<off_t>(state->journal_bytes)) != 0)
    return Error(ErrnoStatus(errno, "cut " + journal_path));
  // Durable before anything new lands: a kill now finds the same point again.
  for (const auto& path : extra) {
    if (Status s = files::FsyncDir(path.parent_path().string()); !s.ok()) return Error(s);
  }
  return state;
}

}  // namespace replboot::clone
