// What a backup learns from the stream on its way to the store (daemon-internal): every chunk
// is parsed by backup/'s reader, so its header and checksum are checked before the backup is
// called whole, and the tools' position files at the top of the stream are kept for the
// manifest. Each position file is a few hundred bytes; they are capped, so a hostile stream
// cannot make the receiver hold more.
#ifndef REPLBOOT_DAEMON_BACKUP_STREAM_INSPECTOR_H_
#define REPLBOOT_DAEMON_BACKUP_STREAM_INSPECTOR_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "replboot/backup/xbstream_reader.h"
#include "replboot/base/status.h"
#include "replboot/base/flavour.h"
#include "replboot/replication/position.h"

namespace replboot::daemon {

inline constexpr size_t kMaxPositionFileBytes = 64 << 10;

class BackupStreamInspector : public backup::XbstreamSink {
 public:
  Status OnPayloadBegin(const backup::ChunkHeader&) override { return Status::Ok(); }
  // kCorruption naming the file when a position file would pass kMaxPositionFileBytes.
  Status OnPayload(const backup::ChunkHeader& chunk, uint64_t file_offset,
                   std::span<const uint8_t> data) override;
  Status OnPayloadEnd(const backup::ChunkHeader&) override { return Status::Ok(); }
  Status OnEof(const backup::ChunkHeader&) override { return Status::Ok(); }
  Status OnSeek(const backup::ChunkHeader&) override { return Status::Ok(); }
  Status OnRename(const backup::ChunkHeader&) override { return Status::Ok(); }
  Status OnDelete(const backup::ChunkHeader&) override { return Status::Ok(); }

  // The position a server restored from this backup continues from: a replica's backup
  // carries its place in the primary (slave_info), the primary's its own (binlog_info); an
  // empty position when the stream had neither.
  Result<replication::Position> Position(Flavour flavour) const;

 private:
  std::map<std::string, std::string, std::less<>> files_;
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_BACKUP_STREAM_INSPECTOR_H_
