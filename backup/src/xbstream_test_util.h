// Test helpers: a byte-exact xbstream builder and a sink that records events.
#ifndef REPLBOOT_BACKUP_XBSTREAM_TEST_UTIL_H_
#define REPLBOOT_BACKUP_XBSTREAM_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "replboot/backup/xbstream_reader.h"

namespace replboot::backup::testing {

// Builds streams chunk by chunk, exactly as the writers lay them out.
class StreamBuilder {
 public:
  // 'P': `offset` is the file offset; flags default to none.
  StreamBuilder& Payload(std::string_view path, std::string_view data, uint64_t offset,
                         uint8_t flags = 0);
  StreamBuilder& Eof(std::string_view path, uint8_t flags = 0);
  // Percona sparse 'S': map of (skip, len); `data` is the concatenated non-hole bytes.
  StreamBuilder& Sparse(std::string_view path, uint64_t offset,
                        const std::vector<std::pair<uint32_t, uint32_t>>& map, std::string_view data);
  StreamBuilder& Seek(std::string_view path, uint64_t offset);
  StreamBuilder& Rename(std::string_view from, std::string_view to);
  StreamBuilder& Delete(std::string_view path);
  // A whole file: 'P' chunks of at most `chunk` bytes, then 'E'.
  StreamBuilder& File(std::string_view path, std::string_view content, size_t chunk = 1 << 20);
  // Any header: magic, flags, type, path, then `rest` verbatim.
  StreamBuilder& Raw(char type, uint8_t flags, std::string_view path, std::string_view rest);
  StreamBuilder& Bytes(std::string_view bytes);

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::string str() const { return std::string(bytes_.begin(), bytes_.end()); }
  // [begin, end) stream ranges of payload bytes, for bit-flip tests.
  const std::vector<std::pair<size_t, size_t>>& payload_ranges() const { return payload_ranges_; }

 private:
  void Header(char type, uint8_t flags, std::string_view path);
  void U32(uint32_t v);
  void U64(uint64_t v);

  std::vector<uint8_t> bytes_;
  std::vector<std::pair<size_t, size_t>> payload_ranges_;
};

std::string U32Bytes(uint32_t v);
std::string U64Bytes(uint64_t v);

// `n` bytes of a non-repeating-looking pattern that depends on `seed`.
std::string Pattern(size_t n, char seed);

// A stream with some file open at every chunk boundary but the last, so that a
// cut anywhere is detectable: every strict prefix of it is a truncated stream.
StreamBuilder OpenAtEveryBoundaryStream();
// The first `len` bytes of `bytes`.
std::vector<uint8_t> Prefix(const std::vector<uint8_t>& bytes, size_t len);

// Records every event as a line, and rebuilds files in memory (holes as zeros).
class RecordingSink : public XbstreamSink {
 public:
  Status OnPayloadBegin(const ChunkHeader& chunk) override;
  Status OnPayload(const ChunkHeader& chunk, uint64_t file_offset,
                   std::span<const uint8_t> data) override;
  Status OnPayloadEnd(const ChunkHeader& chunk) override;
  Status OnEof(const ChunkHeader& chunk) override;
  Status OnSeek(const ChunkHeader& chunk) override;
  Status OnRename(const ChunkHeader& chunk) override;
  Status OnDelete(const ChunkHeader& chunk) override;

  std::vector<std::string> events;      // "begin a 0 5", "end a", "eof a", ...
  std::map<std::string, std::string> files;
  std::vector<std::string> ended;       // paths in 'E' order
  uint64_t payload_bytes = 0;
};

// Feeds `data` to a fresh reader in pieces of `piece` bytes (0: all at once) and
// finishes it; returns the first error.
Status ReadAll(const std::vector<uint8_t>& data, XbstreamSink* sink,
               Flavour flavour = Flavour::kMariaDB, size_t piece = 0);

}  // namespace replboot::backup::testing

#endif  // REPLBOOT_BACKUP_XBSTREAM_TEST_UTIL_H_
