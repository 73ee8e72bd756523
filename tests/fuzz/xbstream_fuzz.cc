// libFuzzer target for the xbstream reader: any bytes, in any split, in either
// flavour, must give an error or a consistent event sequence, never a crash, a
// sanitizer report, or an allocation driven by a length field.
//
// Build: CC=clang CXX=clang++ cmake -DREPLBOOT_FUZZ=ON ... && ninja xbstream_fuzz
// Run:   scripts/ci-fuzz (60 s on the seed corpus in tests/fuzz/corpus).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "replboot/backup/xbstream_reader.h"

namespace {

using replboot::Status;
using replboot::backup::ChunkHeader;
using replboot::backup::ChunkType;

// Checks the reader's promises instead of storing anything.
class CheckingSink : public replboot::backup::XbstreamSink {
 public:
  Status OnPayloadBegin(const ChunkHeader& c) override {
    Check(!in_payload_);
    Check(c.type == ChunkType::kPayload || c.type == ChunkType::kSparse);
    Check(c.end_offset >= c.offset + c.length);
    Check(!c.path.empty() && c.path.size() <= replboot::backup::kMaxPathLength);
    Check(replboot::backup::CheckStreamPath(c.path).ok());
    in_payload_ = true;
    seen_ = 0;
    last_end_ = c.offset;
    return Status::Ok();
  }
  Status OnPayload(const ChunkHeader& c, uint64_t file_offset, std::span<const uint8_t> data) override {
    Check(in_payload_);
    Check(file_offset >= last_end_);
    Check(file_offset + data.size() <= c.end_offset);
    seen_ += data.size();
    Check(seen_ <= c.length);
    last_end_ = file_offset + data.size();
    // Touch every byte so ASan sees any out-of-bounds span.
    volatile uint8_t sink = 0;
    for (uint8_t b : data) sink = sink ^ b;
    (void)sink;
    return Status::Ok();
  }
  Status OnPayloadEnd(const ChunkHeader& c) override {
    Check(in_payload_ && seen_ == c.length);
    in_payload_ = false;
    return Status::Ok();
  }
  Status OnEof(const ChunkHeader& c) override { return Simple(c); }
  Status OnSeek(const ChunkHeader& c) override { return Simple(c); }
  Status OnRename(const ChunkHeader& c) override {
    Check(replboot::backup::CheckStreamPath(c.new_path).ok());
    return Simple(c);
  }
  Status OnDelete(const ChunkHeader& c) override { return Simple(c); }

 private:
  Status Simple(const ChunkHeader& c) {
    Check(!in_payload_);
    Check(replboot::backup::CheckStreamPath(c.path).ok());
    return Status::Ok();
  }
  static void Check(bool ok) {
    if (!ok) std::abort();
  }
  bool in_payload_ = false;
  uint64_t seen_ = 0;
  uint64_t last_end_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the flavour and where the input is split into two Feed calls.
  uint8_t control = data[0];
  ++data;
  --size;
  for (auto flavour : {replboot::Flavour::kMariaDB, replboot::Flavour::kMySQL}) {
    CheckingSink sink;
    replboot::backup::XbstreamReader::Options options;
    options.flavour = flavour;
    options.max_open_files = 64;
    options.max_sparse_entries = 4096;
    replboot::backup::XbstreamReader reader(options, &sink);
    size_t split = size == 0 ? 0 : (static_cast<size_t>(control) * 7919u) % (size + 1);
    Status s = reader.Feed(data, split);
    if (s.ok()) s = reader.Feed(data + split, size - split);
    if (s.ok()) s = reader.Finish();
    if (!s.ok() && s.message().empty()) std::abort();  // every error must say something
  }
  return 0;
}
