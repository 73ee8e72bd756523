#include "xbstream_test_util.h"

#include <zlib.h>

#include <algorithm>

namespace replboot::backup::testing {

std::string U32Bytes(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string U64Bytes(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 13 + (i >> 9));
  return s;
}

StreamBuilder OpenAtEveryBoundaryStream() {
  StreamBuilder b;
  b.Payload("big", Pattern(40, 'a'), 0)
      .Payload("db/small", Pattern(9, 'b'), 0)
      .Eof("db/small")
      .Payload("big", Pattern(30, 'c'), 40)
      .Eof("big");
  return b;
}

std::vector<uint8_t> Prefix(const std::vector<uint8_t>& bytes, size_t len) {
  return std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len));
}

void StreamBuilder::U32(uint32_t v) { Bytes(U32Bytes(v)); }
void StreamBuilder::U64(uint64_t v) { Bytes(U64Bytes(v)); }

StreamBuilder& StreamBuilder::Bytes(std::string_view b) {
  bytes_.insert(bytes_.end(), b.begin(), b.end());
  return *this;
}

void StreamBuilder::Header(char type, uint8_t flags, std::string_view path) {
  Bytes("XBSTCK01");
  bytes_.push_back(flags);
  bytes_.push_back(static_cast<uint8_t>(type));
  U32(static_cast<uint32_t>(path.size()));
  Bytes(path);
}

StreamBuilder& StreamBuilder::Raw(char type, uint8_t flags, std::string_view path,
                                  std::string_view rest) {
  Header(type, flags, path);
  return Bytes(rest);
}

StreamBuilder& StreamBuilder::Payload(std::string_view path, std::string_view data, uint64_t offset,
                                      uint8_t flags) {
  Header('P', flags, path);
  U64(data.size());
  U64(offset);
  U32(static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size()))));
  payload_ranges_.emplace_back(bytes_.size(), bytes_.size() + data.size());
  return Bytes(data);
}

StreamBuilder& StreamBuilder::Eof(std::string_view path, uint8_t flags) {
  Header('E', flags, path);
  return *this;
}

StreamBuilder& StreamBuilder::Sparse(std::string_view path, uint64_t offset,
                                     const std::vector<std::pair<uint32_t, uint32_t>>& map,
                                     std::string_view data) {
  Header('S', 0, path);
  std::string map_bytes;
  for (auto [skip, len] : map) map_bytes += U32Bytes(skip) + U32Bytes(len);
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(map_bytes.data()),
                    static_cast<uInt>(map_bytes.size()));
  crc = crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size()));
  U32(static_cast<uint32_t>(map.size()));
  U64(data.size());
  U64(offset);
  U32(static_cast<uint32_t>(crc));
  Bytes(map_bytes);
  payload_ranges_.emplace_back(bytes_.size(), bytes_.size() + data.size());
  return Bytes(data);
}

StreamBuilder& StreamBuilder::Seek(std::string_view path, uint64_t offset) {
  Header('S', 0, path);
  U64(offset);
  return *this;
}

StreamBuilder& StreamBuilder::Rename(std::string_view from, std::string_view to) {
  Header('R', 0, from);
  U32(static_cast<uint32_t>(to.size()));
  return Bytes(to);
}

StreamBuilder& StreamBuilder::Delete(std::string_view path) {
  Header('D', 0, path);
  return *this;
}

StreamBuilder& StreamBuilder::File(std::string_view path, std::string_view content, size_t chunk) {
  for (size_t off = 0; off < content.size(); off += chunk) {
    Payload(path, content.substr(off, chunk), off);
  }
  return Eof(path);
}

Status RecordingSink::OnPayloadBegin(const ChunkHeader& c) {
  events.push_back(fmt::format("begin {} {} {}", c.path, c.offset, c.length));
  return Status::Ok();
}
Status RecordingSink::OnPayload(const ChunkHeader& c, uint64_t file_offset,
                                std::span<const uint8_t> data) {
  std::string& f = files[std::string(c.path)];
  if (f.size() < file_offset + data.size()) f.resize(file_offset + data.size(), '\0');
  std::copy(data.begin(), data.end(), f.begin() + static_cast<std::ptrdiff_t>(file_offset));
  payload_bytes += data.size();
  return Status::Ok();
}
Status RecordingSink::OnPayloadEnd(const ChunkHeader& c) {
  std::string& f = files[std::string(c.path)];
  if (f.size() < c.end_offset) f.resize(c.end_offset, '\0');
  events.push_back(fmt::format("end {} {}", c.path, c.end_offset));
  return Status::Ok();
}
Status RecordingSink::OnEof(const ChunkHeader& c) {
  files[std::string(c.path)];
  ended.emplace_back(c.path);
  events.push_back(fmt::format("eof {}", c.path));
  return Status::Ok();
}
Status RecordingSink::OnSeek(const ChunkHeader& c) {
  events.push_back(fmt::format("seek {} {}", c.path, c.offset));
  return Status::Ok();
}
Status RecordingSink::OnRename(const ChunkHeader& c) {
  events.push_back(fmt::format("rename {} {}", c.path, c.new_path));
  auto node = files.extract(std::string(c.path));
  if (!node.empty()) {
    node.key() = std::string(c.new_path);
    files.insert(std::move(node));
  }
  return Status::Ok();
}
Status RecordingSink::OnDelete(const ChunkHeader& c) {
  events.push_back(fmt::format("delete {}", c.path));
  files.erase(std::string(c.path));
  return Status::Ok();
}

Status ReadAll(const std::vector<uint8_t>& data, XbstreamSink* sink, Flavour flavour,
               size_t piece) {
  XbstreamReader::Options options;
  options.flavour = flavour;
  XbstreamReader reader(options, sink);
  if (piece == 0) piece = std::max<size_t>(data.size(), 1);
  for (size_t off = 0; off < data.size(); off += piece) {
    size_t n = std::min(piece, data.size() - off);
    if (Status s = reader.Feed(data.data() + off, n); !s.ok()) return s;
  }
  return reader.Finish();
}

}  // namespace replboot::backup::testing
