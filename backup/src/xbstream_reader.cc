#include "replboot/backup/xbstream_reader.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <fmt/ranges.h>

#include "crc32.h"
#include "replboot/base/log.h"

namespace replboot::backup {
namespace {

// Byte map of the fixed part every chunk starts with.
constexpr size_t kFlagsOffset = 8;
constexpr size_t kTypeOffset = 9;
constexpr size_t kPathLenOffset = 10;
constexpr size_t kFixedHeaderSize = 14;
// Type-specific fields after the path.
constexpr size_t kPayloadFieldsSize = 8 + 8 + 4;         // length, offset, crc
constexpr size_t kSparseFieldsSize = 4 + 8 + 8 + 4;      // entries, length, offset, crc
constexpr size_t kSeekFieldsSize = 8;                    // target offset
constexpr size_t kRenameFieldsSize = 4;                  // new path length
constexpr size_t kSparseEntrySize = 8;                   // u32 skip, u32 len
// Payload bytes handed to the sink per call (see ConsumePayload).
constexpr uint64_t kPieceSize = 256 * 1024;

uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
uint64_t LoadU64(const uint8_t* p) {
  return static_cast<uint64_t>(LoadU32(p)) | static_cast<uint64_t>(LoadU32(p + 4)) << 32;
}

std::string Printable(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u < 0x7f) return fmt::format("0x{:02x} ('{}')", u, c);
  return fmt::format("0x{:02x}", u);
}

std::string HexBytes(const uint8_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", p[i]);
  return out;
}

// A path for an error message: control bytes escaped, long ones cut.
std::string ShowPath(std::string_view path) {
  std::string shown;
  for (char c : path.substr(0, 100)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      shown += c;
    } else {
      shown += fmt::format("\\x{:02x}", u);
    }
  }
  if (path.size() > 100) shown += "...";
  return shown;
}

// Removes "." components, so "./ibdata1" and "ibdata1" name one file.
std::string NormalizePath(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(start, slash - start);
    if (part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    start = slash + 1;
  }
  return out;
}

}  // namespace

Status CheckStreamPath(std::string_view path) {
  auto bad = [&](std::string_view why) {
    return Status(StatusCode::kCorruption,
                  fmt::format("unsafe path '{}' in stream: {}", ShowPath(path), why));
  };
  if (path.empty()) return bad("empty");
  if (path.size() > kMaxPathLength) return bad(fmt::format("{} bytes, more than {}", path.size(), kMaxPathLength));
  if (path.front() == '/') return bad("absolute");
  if (path.find('\0') != std::string_view::npos) return bad("contains NUL");
  if (path.find('\\') != std::string_view::npos) return bad("contains a backslash");
  size_t start = 0;
  bool any = false;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view part = path.substr(start, slash - start);
    if (part.empty()) return bad("empty component");
    if (part == "..") return bad("'..' component");
    if (part != ".") any = true;
    start = slash + 1;
  }
  if (!any) return bad("names no file");
  return Status::Ok();
}

XbstreamReader::XbstreamReader(const Options& options, XbstreamSink* sink)
    : options_(options), sink_(sink) {
  header_.reserve(kFixedHeaderSize + kMaxPathLength + kSparseFieldsSize + kMaxPathLength);
  header_want_ = kFixedHeaderSize;
}

std::string XbstreamReader::Where() const {
  if (path_.empty()) return fmt::format("chunk at stream offset {}", chunk_.stream_offset);
  return fmt::format("{} chunk at stream offset {}", path_, chunk_.stream_offset);
}

Status XbstreamReader::Fail(Status status) {
  state_ = State::kFailed;
  failure_ = std::move(status);
  return failure_;
}

Status XbstreamReader::SinkError(const Status& status) const {
  return status.WithContext(fmt::format("'{}' {}", chunk_.type_byte, Where()));
}

Status XbstreamReader::Feed(const uint8_t* data, size_t n) {
  while (n > 0) {
    switch (state_) {
      case State::kFailed:
        return failure_;
      case State::kFixedHeader:
      case State::kVarHeader:
      case State::kSparseMap: {
        size_t have = state_ == State::kSparseMap ? sparse_map_.size() : header_.size();
        size_t want = state_ == State::kSparseMap ? sparse_entries_ * kSparseEntrySize : header_want_;
        size_t take = std::min(n, want - have);
        if (state_ == State::kSparseMap) {
          sparse_map_.insert(sparse_map_.end(), data, data + take);
        } else {
          header_.insert(header_.end(), data, data + take);
        }
        data += take;
        n -= take;
        stream_offset_ += take;
        if (have + take < want) break;
        Status s = state_ == State::kFixedHeader ? OnFixedHeader()
                   : state_ == State::kVarHeader ? OnVarHeader()
                                                 : OnSparseMap();
        if (!s.ok()) return Fail(std::move(s));
        break;
      }
      case State::kPayload: {
        Status s = ConsumePayload(data, n);
        if (!s.ok()) return Fail(std::move(s));
        break;
      }
    }
  }
  // A chunk whose header was complete and whose payload is empty ends without more input.
  if (state_ == State::kPayload && payload_left_ == 0) {
    Status s = EndPayload();
    if (!s.ok()) return Fail(std::move(s));
  }
  return state_ == State::kFailed ? failure_ : Status::Ok();
}

Status XbstreamReader::OnFixedHeader() {
  const uint8_t* h = header_.data();
  chunk_ = ChunkHeader{};
  chunk_.stream_offset = stream_offset_ - kFixedHeaderSize;
  path_.clear();
  new_path_.clear();
  if (std::memcmp(h, kXbstreamMagic, kXbstreamMagicSize) != 0) {
    return Status(StatusCode::kCorruption,
                  fmt::format("bad chunk magic at stream offset {}: expected XBSTCK01, got {} "
                              "(not an xbstream, or out of step after a damaged chunk)",
                              chunk_.stream_offset, HexBytes(h, kXbstreamMagicSize)));
  }
  chunk_.flags = h[kFlagsOffset];
  chunk_.type_byte = static_cast<char>(h[kTypeOffset]);
  uint32_t path_len = LoadU32(h + kPathLenOffset);
  bool mariadb = options_.flavour == Flavour::kMariaDB;

  uint8_t known_flags = kChunkFlagIgnorable | (mariadb ? kChunkFlagRewrite : 0);
  if ((chunk_.flags & ~known_flags) != 0) {
    return Status(StatusCode::kCorruption,
                  fmt::format("unknown chunk flags 0x{:02x} in a {} stream at stream offset {}",
                              chunk_.flags, FlavourName(options_.flavour), chunk_.stream_offset));
  }
  size_t fields = 0;
  switch (chunk_.type_byte) {
    case 'P':
      chunk_.type = ChunkType::kPayload;
      fields = kPayloadFieldsSize;
      break;
    case 'E':
      chunk_.type = ChunkType::kEof;
      break;
    case 'S':
      chunk_.type = mariadb ? ChunkType::kSeek : ChunkType::kSparse;
      fields = mariadb ? kSeekFieldsSize : kSparseFieldsSize;
      break;
    case 'R':
    case 'D':
      if (mariadb) {
        chunk_.type = chunk_.type_byte == 'R' ? ChunkType::kRename : ChunkType::kDelete;
        fields = chunk_.type_byte == 'R' ? kRenameFieldsSize : 0;
        break;
      }
      [[fallthrough]];
    default:
      // The length of a chunk of unknown type cannot be known, whatever its flags: the
      // ignorable flag was meant to let readers skip such chunks, but no framing for
      // them was ever defined (both reference readers assume 'P' framing and then
      // write the bytes into the file). So nothing after it can be trusted.
      return Status(StatusCode::kCorruption,
                    fmt::format("unknown chunk type {}{} in a {} stream at stream offset {} "
                                "(its length cannot be known, so the stream cannot be read past it)",
                                Printable(chunk_.type_byte),
                                (chunk_.flags & kChunkFlagIgnorable) ? " (flagged ignorable)" : "",
                                FlavourName(options_.flavour), chunk_.stream_offset));
  }
  if (path_len > kMaxPathLength) {
    return Status(StatusCode::kCorruption,
                  fmt::format("path length {} is too large (max {}) in '{}' chunk at stream offset {}",
                              path_len, kMaxPathLength, chunk_.type_byte, chunk_.stream_offset));
  }
  header_want_ = kFixedHeaderSize + path_len + fields;
  rename_len_known_ = false;
  state_ = State::kVarHeader;
  if (header_want_ == header_.size()) return OnVarHeader();  // cannot happen: path >= 1 byte
  return Status::Ok();
}

Status XbstreamReader::OnVarHeader() {
  const uint8_t* h = header_.data();
  uint32_t path_len = LoadU32(h + kPathLenOffset);
  if (chunk_.type == ChunkType::kRename && !rename_len_known_) {
    // The new path's length is known only now; read that many more bytes.
    uint32_t new_len = LoadU32(h + kFixedHeaderSize + path_len);
    if (new_len > kMaxPathLength) {
      return Status(StatusCode::kCorruption,
                    fmt::format("new path length {} is too large (max {}) in rename chunk at "
                                "stream offset {}",
                                new_len, kMaxPathLength, chunk_.stream_offset));
    }
    rename_len_known_ = true;
    if (new_len > 0) {
      header_want_ += new_len;
      return Status::Ok();
    }
  }
  std::string_view raw_path(reinterpret_cast<const char*>(h + kFixedHeaderSize), path_len);
  if (Status s = CheckStreamPath(raw_path); !s.ok()) {
    return s.WithContext(fmt::format("'{}' chunk at stream offset {}", chunk_.type_byte,
                                     chunk_.stream_offset));
  }
  path_ = NormalizePath(raw_path);
  chunk_.path = path_;
  const uint8_t* f = h + kFixedHeaderSize + path_len;
  ++stats_.chunks;

  switch (chunk_.type) {
    case ChunkType::kPayload:
      chunk_.length = LoadU64(f);
      chunk_.offset = LoadU64(f + 8);
      chunk_.checksum = LoadU32(f + 16);
      return BeginPayload();
    case ChunkType::kSparse: {
      uint32_t entries = LoadU32(f);
      chunk_.length = LoadU64(f + 4);
      chunk_.offset = LoadU64(f + 12);
      chunk_.checksum = LoadU32(f + 20);
      if (entries > options_.max_sparse_entries) {
        return Status(StatusCode::kCorruption,
                      fmt::format("sparse map of {} entries is larger than the limit {} in {}",
                                  entries, options_.max_sparse_entries, Where()));
      }
      sparse_entries_ = entries;
      sparse_map_.clear();
      if (entries == 0) return OnSparseMap();
      sparse_map_.reserve(entries * kSparseEntrySize);
      state_ = State::kSparseMap;
      return Status::Ok();
    }
    case ChunkType::kEof: {
      auto it = open_files_.find(path_);
      if (it != open_files_.end()) open_files_.erase(it);
      ++stats_.files_completed;
      if (Status s = sink_->OnEof(chunk_); !s.ok()) return SinkError(s);
      return EndChunk();
    }
    case ChunkType::kSeek: {
      chunk_.offset = LoadU64(f);
      if (chunk_.offset > kMaxFileOffset) {
        return Status(StatusCode::kCorruption,
                      fmt::format("seek to offset {} is out of range in {}", chunk_.offset, Where()));
      }
      auto it = open_files_.find(path_);
      if (it == open_files_.end()) {
        if (open_files_.size() >= options_.max_open_files) {
          return Status(StatusCode::kCorruption,
                        fmt::format("more than {} files open at once at {}",
                                    options_.max_open_files, Where()));
        }
        open_files_.emplace(path_, chunk_.offset);
      } else {
        it->second = chunk_.offset;
      }
      if (Status s = sink_->OnSeek(chunk_); !s.ok()) return SinkError(s);
      return EndChunk();
    }
    case ChunkType::kRename:
    case ChunkType::kDelete: {
      if (open_files_.count(path_) != 0) {
        return Status(StatusCode::kCorruption,
                      fmt::format("{} of a file that is still open (no 'E' yet) in {}",
                                  chunk_.type == ChunkType::kRename ? "rename" : "delete",
                                  Where()));
      }
      if (chunk_.type == ChunkType::kRename) {
        uint32_t new_len = LoadU32(f);
        std::string_view raw_new(reinterpret_cast<const char*>(f + kRenameFieldsSize), new_len);
        if (Status s = CheckStreamPath(raw_new); !s.ok()) {
          return s.WithContext(fmt::format("rename target in {}", Where()));
        }
        new_path_ = NormalizePath(raw_new);
        chunk_.new_path = new_path_;
        if (open_files_.count(new_path_) != 0) {
          return Status(StatusCode::kCorruption,
                        fmt::format("rename onto {}, a file that is still open, in {}", new_path_,
                                    Where()));
        }
        if (Status s = sink_->OnRename(chunk_); !s.ok()) return SinkError(s);
      } else {
        if (Status s = sink_->OnDelete(chunk_); !s.ok()) return SinkError(s);
      }
      return EndChunk();
    }
  }
  return Status(StatusCode::kInternal, "unhandled chunk type");
}

Status XbstreamReader::OnSparseMap() {
  // Validate the whole map before anything is written: the lengths must add up to
  // the payload, and the skips must keep the file inside off_t.
  uint64_t total_len = 0;
  uint64_t end = chunk_.offset;
  for (size_t i = 0; i < sparse_entries_; ++i) {
    const uint8_t* e = sparse_map_.data() + i * kSparseEntrySize;
    uint64_t skip = LoadU32(e);
    uint64_t len = LoadU32(e + 4);
    total_len += len;
    end += skip + len;  // at most 2^20 * 2^33 added to < 2^64: cannot wrap before the check
    if (end > kMaxFileOffset || chunk_.offset > kMaxFileOffset) {
      return Status(StatusCode::kCorruption,
                    fmt::format("sparse map entry {} runs past the largest file offset in {}", i,
                                Where()));
    }
  }
  if (total_len != chunk_.length) {
    return Status(StatusCode::kCorruption,
                  fmt::format("sparse map covers {} bytes but the payload is {} bytes in {}",
                              total_len, chunk_.length, Where()));
  }
  return BeginPayload();
}

Status XbstreamReader::BeginPayload() {
  bool sparse = chunk_.type == ChunkType::kSparse;
  if (chunk_.offset > kMaxFileOffset || chunk_.length > kMaxFileOffset - chunk_.offset) {
    return Status(StatusCode::kCorruption,
                  fmt::format("payload of {} bytes at file offset {} is out of range in {}",
                              chunk_.length, chunk_.offset, Where()));
  }
  uint64_t end = chunk_.offset + chunk_.length;
  crc_ = 0;
  sparse_index_ = 0;
  sparse_left_ = 0;
  if (sparse) {
    end = chunk_.offset;
    for (size_t i = 0; i < sparse_entries_; ++i) {
      const uint8_t* e = sparse_map_.data() + i * kSparseEntrySize;
      end += static_cast<uint64_t>(LoadU32(e)) + LoadU32(e + 4);
    }
    // The checksum covers the map, then the payload.
    crc_ = Crc32(0, sparse_map_.data(), sparse_map_.size());
  }
  chunk_.end_offset = end;
  payload_left_ = chunk_.length;
  file_offset_ = chunk_.offset;
  state_ = State::kPayload;

  auto it = open_files_.find(path_);
  uint64_t expected = it == open_files_.end() ? 0 : it->second;
  if (chunk_.offset != expected) {
    return Status(StatusCode::kCorruption,
                  fmt::format("out-of-order chunk in {}: file offset {}, expected {}", Where(),
                              chunk_.offset, expected));
  }
  if (it == open_files_.end()) {
    if (open_files_.size() >= options_.max_open_files) {
      return Status(StatusCode::kCorruption, fmt::format("more than {} files open at once at {}",
                                                         options_.max_open_files, Where()));
    }
    it = open_files_.emplace(path_, expected).first;
  }
  it->second = end;
  if (Status s = sink_->OnPayloadBegin(chunk_); !s.ok()) return SinkError(s);
  return Status::Ok();
}

Status XbstreamReader::ConsumePayload(const uint8_t*& data, size_t& n) {
  // At most kPieceSize at a time: the checksum pulls the bytes into the CPU cache
  // and the sink's write copies them while they are still there, instead of both
  // streaming a multi-MiB buffer from memory.
  size_t take = static_cast<size_t>(std::min<uint64_t>({n, payload_left_, kPieceSize}));
  if (take > 0) {
    crc_ = Crc32(crc_, data, take);
    {
      if (chunk_.type == ChunkType::kSparse) {
        // Split the piece at map entries; each skip leaves a hole.
        const uint8_t* p = data;
        size_t left = take;
        while (left > 0) {
          while (sparse_left_ == 0) {
            const uint8_t* e = sparse_map_.data() + sparse_index_ * kSparseEntrySize;
            file_offset_ += LoadU32(e);
            sparse_left_ = LoadU32(e + 4);
            ++sparse_index_;
          }
          size_t piece = static_cast<size_t>(std::min<uint64_t>(left, sparse_left_));
          if (Status s = sink_->OnPayload(chunk_, file_offset_, {p, piece}); !s.ok()) {
            return SinkError(s);
          }
          p += piece;
          left -= piece;
          file_offset_ += piece;
          sparse_left_ -= piece;
        }
      } else {
        if (Status s = sink_->OnPayload(chunk_, file_offset_, {data, take}); !s.ok()) {
          return SinkError(s);
        }
        file_offset_ += take;
      }
    }
    data += take;
    n -= take;
    stream_offset_ += take;
    payload_left_ -= take;
    stats_.payload_bytes += take;
  }
  if (payload_left_ == 0) return EndPayload();
  return Status::Ok();
}

Status XbstreamReader::EndPayload() {
  if (crc_ != chunk_.checksum) {
    return Status(StatusCode::kCorruption,
                  fmt::format("checksum mismatch in {}: expected 0x{:08x}, got 0x{:08x}", Where(),
                              chunk_.checksum, crc_));
  }
  if (Status s = sink_->OnPayloadEnd(chunk_); !s.ok()) return SinkError(s);
  return EndChunk();
}

Status XbstreamReader::EndChunk() {
  header_.clear();
  header_want_ = kFixedHeaderSize;
  sparse_map_.clear();
  sparse_entries_ = 0;
  state_ = State::kFixedHeader;
  if (Status s = sink_->OnChunkEnd(stream_offset_); !s.ok()) return SinkError(s);
  return Status::Ok();
}

Status XbstreamReader::ResumeAt(uint64_t stream_offset, OpenFiles open_files) {
  if (stream_offset_ != 0 || state_ != State::kFixedHeader || !header_.empty()) {
    return Status(StatusCode::kInvalidArgument, "ResumeAt on a reader that was fed already");
  }
  if (stream_offset > kMaxFileOffset) {
    return Status(StatusCode::kCorruption,
                  fmt::format("resume offset {} is out of range", stream_offset));
  }
  if (open_files.size() > options_.max_open_files) {
    return Status(StatusCode::kCorruption,
                  fmt::format("{} open files to resume with, more than {}", open_files.size(),
                              options_.max_open_files));
  }
  for (const auto& [path, next] : open_files) {
    if (Status s = CheckStreamPath(path); !s.ok()) return s.WithContext("resuming");
    if (NormalizePath(path) != path) {
      return Status(StatusCode::kCorruption,
                    fmt::format("resume path {} is not in its normal form", log::Printable(path)));
    }
    if (next > kMaxFileOffset) {
      return Status(StatusCode::kCorruption,
                    fmt::format("resume offset {} of {} is out of range", next, path));
    }
  }
  stream_offset_ = stream_offset;
  open_files_ = std::move(open_files);
  return Status::Ok();
}

Status XbstreamReader::Finish() {
  if (state_ == State::kFailed) return failure_;
  if (stream_offset_ == 0) {
    // mbstream accepts this; but no backup is empty, so it means the sender failed.
    return Fail(Status(StatusCode::kCorruption, "the stream is empty (no chunks at all)"));
  }
  if (state_ != State::kFixedHeader || !header_.empty()) {
    const char* part = state_ == State::kPayload     ? "payload"
                       : state_ == State::kSparseMap ? "sparse map"
                                                     : "header";
    uint64_t at = header_.empty() && state_ == State::kFixedHeader ? stream_offset_
                                                                   : chunk_.stream_offset;
    if (state_ == State::kFixedHeader) at = stream_offset_ - header_.size();
    std::string what = path_.empty() || state_ == State::kFixedHeader
                           ? fmt::format("chunk at stream offset {}", at)
                           : Where();
    return Fail(Status(StatusCode::kCorruption,
                       fmt::format("stream truncated: it ends at stream offset {} inside the {} "
                                   "of the {}",
                                   stream_offset_, part, what)));
  }
  if (!open_files_.empty()) {
    std::vector<std::string> names;
    names.reserve(open_files_.size());
    for (const auto& [name, offset] : open_files_) names.push_back(name);
    std::sort(names.begin(), names.end());
    size_t shown = std::min<size_t>(names.size(), 20);
    std::string list = fmt::format("{}", fmt::join(names.begin(), names.begin() + shown, ", "));
    if (shown < names.size()) list += fmt::format(", ... ({} more)", names.size() - shown);
    return Fail(Status(StatusCode::kCorruption,
                       fmt::format("stream ended at stream offset {} but {} file(s) never got "
                                   "their end-of-file chunk: {}",
                                   stream_offset_, names.size(), list)));
  }
  return Status::Ok();
}

}  // namespace replboot::backup
