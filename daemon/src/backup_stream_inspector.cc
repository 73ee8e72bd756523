#include "backup_stream_inspector.h"

#include <algorithm>
#include <fmt/format.h>

namespace replboot::daemon {

namespace {

bool IsPositionFile(std::string_view path) {
  return path == "xtrabackup_binlog_info" || path == "mariadb_backup_binlog_info" ||
         path == "xtrabackup_slave_info" || path == "mariadb_backup_slave_info";
}

}  // namespace

Status BackupStreamInspector::OnPayload(const backup::ChunkHeader& chunk, uint64_t file_offset,
                                        std::span<const uint8_t> data) {
  if (!IsPositionFile(chunk.path)) return Status::Ok();
  // Written so that no offset, however large, wraps the sum.
  if (file_offset > kMaxPositionFileBytes || data.size() > kMaxPositionFileBytes - file_offset) {
    return Status(StatusCode::kCorruption, fmt::format("{} in the stream is over {} bytes",
                                                       chunk.path, kMaxPositionFileBytes));
  }
  std::string& text = files_[std::string(chunk.path)];
  const size_t end = static_cast<size_t>(file_offset) + data.size();
  if (text.size() < end) text.resize(end);
  std::copy(data.begin(), data.end(), text.begin() + static_cast<std::ptrdiff_t>(file_offset));
  return Status::Ok();
}

Result<replication::Position> BackupStreamInspector::Position(Flavour flavour) const {
  for (const char* name : {"xtrabackup_slave_info", "mariadb_backup_slave_info"}) {
    auto it = files_.find(name);
    if (it == files_.end()) continue;
    // A primary's backup may carry an empty one; anything else must parse: falling back
    // to a replica's own binlog position would restore it at the wrong place.
    if (it->second.find_first_not_of(" \t\r\n") == std::string::npos) continue;
    auto p = replication::ParseSlaveInfo(it->second, name, flavour);
    if (!p) return Error(p.error());
    if (p->HasGtid() || p->HasFilePos()) return p;
  }
  for (const char* name : {"xtrabackup_binlog_info", "mariadb_backup_binlog_info"}) {
    auto it = files_.find(name);
    if (it != files_.end()) return replication::ParseBinlogInfo(it->second, name, flavour);
  }
  return replication::Position{};
}

}  // namespace replboot::daemon
