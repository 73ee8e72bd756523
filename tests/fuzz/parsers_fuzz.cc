// libFuzzer target for replboot's small parsers of hostile text: whatever a peer, the stream's
// metadata files, an HTTP client or a server variable can hand them. The first byte picks the
// parser; each must give an error or a value that keeps its promises (round trips, set laws,
// ranges), never a crash, a sanitizer report or an allocation driven by a length field.
//
// Build: CC=clang CXX=clang++ cmake -DREPLBOOT_FUZZ=ON ... && ninja parsers_fuzz
// Run:   scripts/ci-fuzz (runs it after the xbstream fuzzer).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/api/query.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/clone/protocol.h"
#include "wire_compression.h"  // clone/src: the ZDATA decompressor
#include "replboot/conf/identity.h"
#include "replboot/replication/gtid.h"
#include "replboot/replication/position.h"

namespace {

using replboot::Flavour;
using replboot::replication::GtidRelation;
using replboot::replication::GtidSet;

void Check(bool ok) {
  if (!ok) std::abort();
}

Flavour FlavourOf(uint8_t selector) { return selector & 1 ? Flavour::kMySQL : Flavour::kMariaDB; }

// Two sets separated by '|': the set laws Relate, Minus and Contains promise.
void FuzzGtid(std::string_view text, Flavour flavour) {
  size_t bar = text.find('|');
  auto a = GtidSet::Parse(text.substr(0, bar), flavour);
  if (!a) return;
  auto again = GtidSet::Parse(a->ToString(), flavour);
  Check(again.has_value() && *again == *a);
  Check(Relate(*a, *a) == GtidRelation::kEqual);
  if (bar == std::string_view::npos) return;
  auto b = GtidSet::Parse(text.substr(bar + 1), flavour);
  if (!b) return;
  GtidSet a_only = a->Minus(*b);
  Check(a->Contains(a_only));
  Check(a_only.Minus(*a).empty());
  Check(a_only.TransactionCount() <= a->TransactionCount());
  Check(b->Minus(*b).empty());
  GtidRelation relation = Relate(*a, *b);
  Check((relation == GtidRelation::kEqual) == (a_only.empty() && b->Minus(*a).empty()));
  Check((relation == GtidRelation::kAhead || relation == GtidRelation::kEqual) ==
        a->Contains(*b));
}

void FuzzPosition(std::string_view text, Flavour flavour, bool slave_info) {
  auto position = slave_info ? replboot::replication::ParseSlaveInfo(text, "fuzz", flavour)
                             : replboot::replication::ParseBinlogInfo(text, "fuzz", flavour);
  if (!position) return;
  auto gtid = replboot::replication::NormalizeGtid(position->gtid, flavour);
  Check(gtid.has_value() && *gtid == position->gtid);
}

void FuzzQuery(std::string_view text) {
  for (const auto& [key, value] : replboot::api::ParseQuery(text)) {
    auto number = replboot::api::ParseNumberParam(key, value, 0, 60);
    if (number) Check(std::isfinite(*number) && *number >= 0 && *number <= 60);
  }
}

void FuzzProtocol(std::string_view text) {
  namespace clone = replboot::clone;
  if (text.size() >= clone::kFrameHeaderSize) {
    auto header = clone::DecodeFrameHeader(
        std::span<const uint8_t, clone::kFrameHeaderSize>(
            reinterpret_cast<const uint8_t*>(text.data()), clone::kFrameHeaderSize));
    if (header) Check(header->length <= clone::kMaxDataPayload);
  }
  if (auto hello = clone::ParseHello(text)) {
    Check(hello->client.name.size() <= clone::kMaxNodeName);
    Check(hello->version >= clone::kMinProtocolVersion && hello->version <= clone::kProtocolVersion);
    Check(hello->compress.level >= 0 && hello->compress.level <= clone::kMaxRequestLevel);
    // Strict: the one encoding of what was parsed is the input itself.
    Check(clone::EncodeHello(hello->mode, hello->client, hello->compress, hello->resume,
                              hello->version) == text);
    Check((hello->mode == clone::HelloMode::kResume) == hello->resume.has_value());
  }
  if (auto setting = clone::ParseCompressSetting(text)) {
    Check(clone::CompressRequestText(*setting) == text ||
          (text == "zstd" && setting->level == 1));
  }
  {
    // A ZDATA payload as a hostile donor could send it (after its tag verified): the output
    // never passes the bound, and a refusal leaves nothing behind.
    static auto decompressor = clone::FrameDecompressor::Create();
    std::vector<uint8_t> out;
    const replboot::Status s = decompressor->Decompress(
        std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()), 0, &out);
    Check(out.size() <= clone::kMaxFrameContent);
    Check(s.ok() || out.empty());
  }
  if (auto identity = clone::ParseNodeIdentity(text)) {
    Check(identity->name.size() <= clone::kMaxNodeName);
    Check(!identity->ordinal || (*identity->ordinal >= 0 && *identity->ordinal <= 0xffffffffLL));
    Check(clone::EncodeNodeIdentity(*identity) == text);
  }
  if (auto challenge = clone::ParseChallenge(text)) {
    Check(clone::EncodeChallenge(challenge->server_nonce, challenge->server) == text);
  }
  if (auto header = clone::DecodeStreamHeader(text)) {
    auto again = clone::DecodeStreamHeader(clone::EncodeStreamHeader(*header));
    Check(again.has_value() && again->estimated_bytes == header->estimated_bytes &&
          again->server_version == header->server_version &&
          again->cluster_id == header->cluster_id &&
          again->compression == header->compression &&
          again->compression_level == header->compression_level);
    Check(header->compression_level >= 0 && header->compression_level <= clone::kMaxGrantedLevel);
    Check(header->cluster_id.empty() || clone::ValidClusterId(header->cluster_id));
  }
  if (auto info = clone::DecodeProbeInfo(text)) {
    auto again = clone::DecodeProbeInfo(clone::EncodeProbeInfo(*info));
    Check(again.has_value() && again->busy == info->busy && again->flavour == info->flavour &&
          again->cluster_id == info->cluster_id && again->role == info->role &&
          again->has_data == info->has_data &&
          again->gtid_binlog_state == info->gtid_binlog_state &&
          again->gtid_current_pos == info->gtid_current_pos);
    // What the primary's recovery decides by has its one form (protocol.h).
    Check(info->cluster_id.empty() || clone::ValidClusterId(info->cluster_id));
    Check(info->gtid_binlog_state.size() <= clone::kMaxGtidText);
  }
  if (auto trailer = clone::DecodeStreamTrailer(text)) {
    auto again = clone::DecodeStreamTrailer(clone::EncodeStreamTrailer(*trailer));
    Check(again.has_value() && again->bytes == trailer->bytes && again->ok() == trailer->ok() &&
          again->wire_bytes == trailer->wire_bytes);
  }
  (void)clone::DecodeErrorMessage(text);
  (void)clone::MajorMinor(text);
}

void FuzzIdentity(std::string_view text) {
  auto identity = replboot::conf::ParseIdentity(std::string(text), 0);
  if (identity) Check(identity->server_id != 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t selector = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (selector % 8) {
    case 0:
    case 1:
      FuzzGtid(text, FlavourOf(selector));
      break;
    case 2:
    case 3:
      FuzzPosition(text, FlavourOf(selector), (selector >> 3) & 1);
      break;
    case 4:
      FuzzQuery(text);
      break;
    case 5:
    case 6:
      FuzzProtocol(text);
      break;
    case 7:
      FuzzIdentity(text);
      break;
  }
  return 0;
}
