#include "replboot/clone/protocol.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "replboot/base/log.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/replication/gtid.h"

namespace replboot::clone {

std::string_view FrameTypeName(FrameType type) {
  switch (type) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kChallenge:
      return "CHALLENGE";
    case FrameType::kResponse:
      return "RESPONSE";
    case FrameType::kProof:
      return "PROOF";
    case FrameType::kHeader:
      return "HEADER";
    case FrameType::kError:
      return "ERROR";
    case FrameType::kData:
      return "DATA";
    case FrameType::kTrailer:
      return "TRAILER";
    case FrameType::kProbeInfo:
      return "PROBE_INFO";
    case FrameType::kZData:
      return "ZDATA";
  }
  return "UNKNOWN";
}

std::array<uint8_t, kFrameHeaderSize> EncodeFrameHeader(FrameType type, uint32_t length) {
  return {static_cast<uint8_t>(type), static_cast<uint8_t>(length >> 24),
          static_cast<uint8_t>(length >> 16), static_cast<uint8_t>(length >> 8),
          static_cast<uint8_t>(length)};
}

std::string EncodeFrame(FrameType type, std::string_view payload) {
  auto header = EncodeFrameHeader(type, static_cast<uint32_t>(payload.size()));
  std::string out(reinterpret_cast<const char*>(header.data()), header.size());
  out.append(payload);
  return out;
}

Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t, kFrameHeaderSize> bytes) {
  uint8_t type = bytes[0];
  uint32_t length = (uint32_t{bytes[1]} << 24) | (uint32_t{bytes[2]} << 16) |
                    (uint32_t{bytes[3]} << 8) | uint32_t{bytes[4]};
  if (type < static_cast<uint8_t>(FrameType::kHello) ||
      type > static_cast<uint8_t>(FrameType::kZData)) {
    return Error(StatusCode::kCorruption, "unknown frame type {}", type);
  }
  auto frame_type = static_cast<FrameType>(type);
  uint32_t limit = frame_type == FrameType::kData || frame_type == FrameType::kZData
                       ? kMaxDataPayload
                       : kMaxControlPayload;
  if (length > limit) {
    return Error(StatusCode::kCorruption, "{} frame of {} bytes exceeds the limit of {}",
                 FrameTypeName(frame_type), length, limit);
  }
  return FrameHeader{frame_type, length};
}

Result<Nonce> RandomNonce() {
  Nonce nonce;
  if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) {
    return Error(StatusCode::kInternal, "RAND_bytes failed: no random nonce");
  }
  return nonce;
}

namespace {

void AppendU32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

void AppendLengthPrefixed(std::string& out, std::string_view bytes) {
  AppendU32(out, static_cast<uint32_t>(bytes.size()));
  out.append(bytes);
}

std::string_view AsChars(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

Mac Hmac(std::string_view secret, std::string_view label, const Transcript& transcript) {
  std::string message = EncodeTranscript(label, transcript);
  Mac mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(), &length);
  OPENSSL_cleanse(message.data(), message.size());
  return mac;
}

}  // namespace

std::string EncodeTranscript(std::string_view label, const Transcript& transcript) {
  std::string out;
  out.reserve(5 * 4 + label.size() + transcript.hello.size() + transcript.challenge.size() +
              kNonceSize + transcript.binding.size());
  AppendLengthPrefixed(out, label);
  AppendLengthPrefixed(out, transcript.hello);
  AppendLengthPrefixed(out, transcript.challenge);
  AppendLengthPrefixed(out, AsChars(transcript.client_nonce));
  AppendLengthPrefixed(out, AsChars(transcript.binding));
  return out;
}

Mac ClientMac(std::string_view secret, const Transcript& transcript) {
  return Hmac(secret, kClientLabel, transcript);
}

Mac ServerMac(std::string_view secret, const Transcript& transcript) {
  return Hmac(secret, kServerLabel, transcript);
}

StreamKey DeriveStreamKey(std::string_view secret, const Transcript& transcript) {
  return Hmac(secret, kStreamKeyLabel, transcript);
}

Result<FrameAuthenticator> FrameAuthenticator::Create(const StreamKey& key) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return Error(StatusCode::kInternal, "EVP_CIPHER_CTX_new failed");
  FrameAuthenticator auth(ctx);  // frees ctx on every path below
  // The key schedule once; each frame only sets its iv.
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, key.data(), nullptr) != 1) {
    return Error(StatusCode::kInternal, "AES-256-GCM setup failed");
  }
  return auth;
}

FrameAuthenticator::FrameAuthenticator(FrameAuthenticator&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), counter_(other.counter_) {}

FrameAuthenticator& FrameAuthenticator::operator=(FrameAuthenticator&& other) noexcept {
  if (this != &other) {
    if (ctx_ != nullptr) EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx_));
    ctx_ = std::exchange(other.ctx_, nullptr);
    counter_ = other.counter_;
  }
  return *this;
}

FrameAuthenticator::~FrameAuthenticator() {
  if (ctx_ != nullptr) EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx_));
}

Result<Tag> FrameAuthenticator::Compute(FrameType type, std::span<const uint8_t> payload) {
  auto* ctx = static_cast<EVP_CIPHER_CTX*>(ctx_);
  std::array<uint8_t, 12> iv{};
  for (int i = 0; i < 8; ++i) iv[4 + i] = static_cast<uint8_t>(counter_ >> (56 - 8 * i));
  auto header = EncodeFrameHeader(type, static_cast<uint32_t>(payload.size()));
  int out = 0;
  Tag tag{};
  // GMAC: GCM over additional data only (the header, then the payload), no plaintext.
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.data()) != 1 ||
      EVP_EncryptUpdate(ctx, nullptr, &out, header.data(), static_cast<int>(header.size())) != 1 ||
      (!payload.empty() && EVP_EncryptUpdate(ctx, nullptr, &out, payload.data(),
                                             static_cast<int>(payload.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx, nullptr, &out) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag.size()), tag.data()) !=
          1) {
    return Error(StatusCode::kInternal, "AES-256-GMAC of frame {} failed", counter_);
  }
  return tag;
}

Result<Tag> FrameAuthenticator::Seal(FrameType type, std::span<const uint8_t> payload) {
  auto tag = Compute(type, payload);
  if (tag) ++counter_;
  return tag;
}

Status FrameAuthenticator::Check(FrameType type, std::span<const uint8_t> payload,
                                 std::span<const uint8_t> tag) {
  auto expected = Compute(type, payload);
  if (!expected) return expected.error();
  if (!MacEqual(*expected, tag)) {
    return Status(StatusCode::kPermissionDenied,
                  fmt::format("{} frame #{} ({} bytes) has a wrong tag", FrameTypeName(type),
                              counter_, payload.size()));
  }
  ++counter_;
  return Status::Ok();
}

bool MacEqual(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

bool NodeNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ||
         c == ':';
}

}  // namespace

std::string NodeIdentityText(const NodeIdentity& identity) {
  if (identity.name.empty()) {
    return identity.ordinal ? fmt::format("ordinal {}", *identity.ordinal)
                            : "a node with no identity";
  }
  return identity.ordinal ? fmt::format("{} (ordinal {})", identity.name, *identity.ordinal)
                          : fmt::format("{} (no ordinal)", identity.name);
}

std::string EncodeNodeIdentity(const NodeIdentity& identity) {
  std::string name(std::string_view(identity.name).substr(0, kMaxNodeName));
  for (char& c : name) {
    if (!NodeNameChar(c)) c = '_';
  }
  std::string out;
  out.push_back(static_cast<char>(name.size()));
  out.append(name);
  const bool has_ordinal = identity.ordinal && *identity.ordinal >= 0 &&
                           *identity.ordinal <= int64_t{std::numeric_limits<uint32_t>::max()};
  out.push_back(has_ordinal ? 1 : 0);
  if (has_ordinal) AppendU32(out, static_cast<uint32_t>(*identity.ordinal));
  return out;
}

Result<NodeIdentity> ParseNodeIdentity(std::string_view bytes) {
  if (bytes.empty()) return Error(StatusCode::kCorruption, "identity: no name length");
  const size_t name_length = static_cast<uint8_t>(bytes[0]);
  if (name_length > kMaxNodeName) {
    return Error(StatusCode::kCorruption, "identity: a name of {} bytes (at most {})", name_length,
                 kMaxNodeName);
  }
  // The length is checked against what is there before any of it is read.
  if (bytes.size() < 1 + name_length + 1) {
    return Error(StatusCode::kCorruption, "identity: {} bytes, too short for a {}-byte name",
                 bytes.size(), name_length);
  }
  NodeIdentity identity;
  std::string_view name = bytes.substr(1, name_length);
  if (!std::all_of(name.begin(), name.end(), NodeNameChar)) {
    return Error(StatusCode::kCorruption,
                 "identity: the name has a character outside [A-Za-z0-9.:_-]");
  }
  identity.name = std::string(name);
  std::string_view rest = bytes.substr(1 + name_length);
  const auto has_ordinal = static_cast<uint8_t>(rest[0]);
  rest.remove_prefix(1);
  if (has_ordinal > 1) {
    return Error(StatusCode::kCorruption, "identity: ordinal flag {} (0 or 1)", has_ordinal);
  }
  const size_t expected = has_ordinal == 1 ? 4 : 0;
  if (rest.size() != expected) {
    return Error(StatusCode::kCorruption, "identity: {} bytes after the ordinal flag, not {}",
                 rest.size(), expected);
  }
  if (has_ordinal == 1) {
    uint32_t ordinal = 0;
    for (char c : rest) ordinal = (ordinal << 8) | static_cast<uint8_t>(c);
    identity.ordinal = int64_t{ordinal};
  }
  return identity;
}

std::string CompressRequestText(const CompressRequest& request) {
  switch (request.mode) {
    case CompressMode::kOff:
      return "off";
    case CompressMode::kZstd:
      return fmt::format("zstd:{}", request.level);
    case CompressMode::kAuto:
      return "auto";
  }
  return "unknown";
}

Result<CompressRequest> ParseCompressSetting(std::string_view text) {
  if (text == "off") return CompressRequest{};
  if (text == "auto") return CompressRequest{CompressMode::kAuto, 0};
  if (text == "zstd") return CompressRequest{CompressMode::kZstd, 1};
  constexpr std::string_view kPrefix = "zstd:";
  if (text.substr(0, kPrefix.size()) == kPrefix) {
    std::string_view digits = text.substr(kPrefix.size());
    int level = 0;
    // Digits only, no sign, no leading zero: one spelling per level.
    const bool all_digits = !digits.empty() && digits.size() <= 2 && digits[0] != '0' &&
                            std::all_of(digits.begin(), digits.end(), [](char c) {
                              return std::isdigit(static_cast<unsigned char>(c));
                            });
    if (all_digits) {
      for (char c : digits) level = level * 10 + (c - '0');
    }
    if (!all_digits || level < 1 || level > kMaxRequestLevel) {
      return Error(StatusCode::kInvalidArgument, "zstd level {} is not a number in 1..{}",
                   log::Printable(digits.substr(0, 16)), kMaxRequestLevel);
    }
    return CompressRequest{CompressMode::kZstd, level};
  }
  return Error(StatusCode::kInvalidArgument, "{} is none of auto, off, zstd, zstd:LEVEL",
               log::Printable(text.substr(0, 32)));
}

std::string EncodeHello(HelloMode mode, const NodeIdentity& client,
                        const CompressRequest& compress,
                        const std::optional<ResumeRequest>& resume,
                        std::optional<uint16_t> version) {
  const bool plain = compress.mode == CompressMode::kOff && mode != HelloMode::kResume;
  const uint16_t v = version.value_or(plain ? kMinProtocolVersion : kProtocolVersion);
  std::string out(kHelloMagic);
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(mode));
  out.append(EncodeNodeIdentity(client));
  if (v >= 4) {
    out.push_back(static_cast<char>(compress.mode));
    out.push_back(static_cast<char>(std::clamp(compress.level, 0, 255)));
  }
  if (v >= 4 && mode == HelloMode::kResume && resume) {
    out.append(reinterpret_cast<const char*>(resume->resume_id.data()), kResumeIdSize);
    for (uint64_t x : {resume->run_id, resume->frame_offset}) {
      for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
    }
    out.append(reinterpret_cast<const char*>(resume->chain.data()), resume->chain.size());
  }
  return out;
}

namespace {
ResumeChain HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  ResumeChain out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
       out.data(), &len);
  return out;
}
}  // namespace

ResumeChain ResumeKey(std::string_view secret, const ResumeId& id) {
  std::vector<uint8_t> data(kResumeKeyLabel.begin(), kResumeKeyLabel.end());
  data.insert(data.end(), id.begin(), id.end());
  return HmacSha256({reinterpret_cast<const uint8_t*>(secret.data()), secret.size()}, data);
}

ResumeChain ResumeChainStart(const ResumeChain& key) {
  static constexpr uint8_t kStart[] = {'s', 't', 'a', 'r', 't'};
  return HmacSha256(key, kStart);
}

ResumeChain ResumeChainNext(const ResumeChain& key, const ResumeChain& chain, uint64_t offset,
                            uint32_t size, std::span<const uint8_t> tag) {
  std::array<uint8_t, 32 + 8 + 4 + kTagSize> data{};
  std::memcpy(data.data(), chain.data(), 32);
  for (int i = 0; i < 8; ++i) data[32 + i] = static_cast<uint8_t>(offset >> (8 * (7 - i)));
  for (int i = 0; i < 4; ++i) data[40 + i] = static_cast<uint8_t>(size >> (8 * (3 - i)));
  std::memcpy(data.data() + 44, tag.data(), std::min(tag.size(), kTagSize));
  return HmacSha256(key, data);
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

bool HexDecode(std::string_view text, std::span<uint8_t> out) {
  if (text.size() != out.size() * 2) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

Result<Hello> ParseHello(std::string_view payload) {
  const size_t base = kHelloMagic.size() + 2;
  if (payload.size() < base || payload.substr(0, kHelloMagic.size()) != kHelloMagic) {
    return Error(StatusCode::kCorruption, "not a replboot backup client (bad HELLO)");
  }
  uint16_t version =
      static_cast<uint16_t>((static_cast<uint8_t>(payload[kHelloMagic.size()]) << 8) |
                            static_cast<uint8_t>(payload[kHelloMagic.size() + 1]));
  if (version < kMinProtocolVersion || version > kProtocolVersion) {
    return Error(StatusCode::kInvalidArgument,
                 "client speaks protocol version {}, this server speaks {} and {} (upgrade "
                 "every node of the cluster to one version)",
                 version, kMinProtocolVersion, kProtocolVersion);
  }
  if (payload.size() == base) return Error(StatusCode::kCorruption, "HELLO without a mode");
  auto mode = static_cast<uint8_t>(payload[base]);
  if (mode > static_cast<uint8_t>(HelloMode::kResume)) {
    return Error(StatusCode::kInvalidArgument, "unknown HELLO mode {}", mode);
  }
  std::string_view identity = payload.substr(base + 1);
  Hello hello;
  hello.mode = static_cast<HelloMode>(mode);
  hello.version = version;
  if (hello.mode == HelloMode::kResume) {
    // Resume came with version 4: a version 3 donor refuses mode 2 as unknown, and so does
    // this one in a version 3 HELLO (ERROR protocol: the client clones afresh).
    if (version < 4) {
      return Error(StatusCode::kInvalidArgument, "unknown HELLO mode {} in version {}", mode,
                   version);
    }
    // The resume request is the last kResumeRequestSize bytes, after the compression request.
    if (identity.size() < kResumeRequestSize)
      return Error(StatusCode::kCorruption, "bad HELLO: resume request cut short");
    std::string_view r = identity.substr(identity.size() - kResumeRequestSize);
    identity.remove_suffix(kResumeRequestSize);
    auto u64 = [&](size_t at) {
      uint64_t v = 0;
      for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(r[at + i]);
      return v;
    };
    ResumeRequest req;
    std::memcpy(req.resume_id.data(), r.data(), kResumeIdSize);
    req.run_id = u64(kResumeIdSize);
    req.frame_offset = u64(kResumeIdSize + 8);
    std::memcpy(req.chain.data(), r.data() + kResumeIdSize + 16, req.chain.size());
    hello.resume = req;
  }
  if (version >= 4) {
    // The request is the last two bytes: the identity before it is parsed as strictly.
    if (identity.size() < 2) return Error(StatusCode::kCorruption, "HELLO without its compression request");
    const auto compress = static_cast<uint8_t>(identity[identity.size() - 2]);
    const auto level = static_cast<uint8_t>(identity[identity.size() - 1]);
    identity.remove_suffix(2);
    if (compress > static_cast<uint8_t>(CompressMode::kAuto)) {
      return Error(StatusCode::kCorruption, "bad HELLO: unknown compression {}", compress);
    }
    hello.compress.mode = static_cast<CompressMode>(compress);
    hello.compress.level = level;
    const bool level_ok = hello.compress.mode == CompressMode::kZstd
                              ? level >= 1 && level <= kMaxRequestLevel
                              : level == 0;
    if (!level_ok) {
      return Error(StatusCode::kCorruption, "bad HELLO: level {} for compression {}", level,
                   compress);
    }
  }
  auto client = ParseNodeIdentity(identity);
  if (!client) return Error(client.error().WithContext("bad HELLO"));
  hello.client = std::move(*client);
  return hello;
}

Result<HelloMode> CheckHello(std::string_view payload) {
  auto hello = ParseHello(payload);
  if (!hello) return Error(hello.error());
  return hello->mode;
}

std::string EncodeChallenge(const Nonce& server_nonce, const NodeIdentity& server) {
  std::string out(AsChars(server_nonce));
  out.append(EncodeNodeIdentity(server));
  return out;
}

Result<Challenge> ParseChallenge(std::string_view payload) {
  if (payload.size() < kNonceSize) {
    return Error(StatusCode::kCorruption, "CHALLENGE of {} bytes, shorter than its nonce",
                 payload.size());
  }
  Challenge challenge;
  std::memcpy(challenge.server_nonce.data(), payload.data(), kNonceSize);
  auto server = ParseNodeIdentity(payload.substr(kNonceSize));
  if (!server) return Error(server.error().WithContext("bad CHALLENGE"));
  challenge.server = std::move(*server);
  return challenge;
}

namespace {

// Control payloads are JSON. Text from tools and servers may hold invalid UTF-8: it is
// replaced, so that encoding a payload never throws.
std::string DumpPayload(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Parses a control payload and reads it with `read`; any JSON error (syntax, a missing key,
// a wrong type) is kCorruption naming `what`.
template <typename T, typename Read>
Result<T> ParsePayload(std::string_view payload, std::string_view what, Read read) {
  try {
    auto j = nlohmann::json::parse(payload);
    T out;
    read(j, out);
    return out;
  } catch (const nlohmann::json::exception& e) {
    return Error(StatusCode::kCorruption, "bad {}: {}", what, e.what());
  }
}

}  // namespace

std::string EncodeProbeInfo(const ProbeInfo& info) {
  return DumpPayload({{"flavour", info.flavour},
                      {"server_version", info.server_version},
                      {"tool", info.tool},
                      {"busy", info.busy},
                      {"active", info.active},
                      {"max_concurrent", info.max_concurrent},
                      {"error", info.error},
                      {"cluster_id", info.cluster_id},
                      {"has_data", info.has_data},
                      {"role", info.role},
                      {"gtid_binlog_state", info.gtid_binlog_state},
                      {"gtid_current_pos", info.gtid_current_pos},
                      {"ready", info.ready},
                      {"not_ready_reason", info.not_ready_reason},
                      {"diverged", info.diverged}});
}

Result<ProbeInfo> DecodeProbeInfo(std::string_view payload) {
  auto decoded =
      ParsePayload<ProbeInfo>(payload, "probe answer", [](const auto& j, ProbeInfo& info) {
        j.at("flavour").get_to(info.flavour);
        j.at("server_version").get_to(info.server_version);
        j.at("tool").get_to(info.tool);
        j.at("busy").get_to(info.busy);
        info.active = j.value("active", int64_t{0});
        info.max_concurrent = j.value("max_concurrent", int64_t{0});
        info.error = j.value("error", std::string());
        // Cluster position: absent from older peers, strictly typed when present.
        if (j.contains("cluster_id")) j.at("cluster_id").get_to(info.cluster_id);
        if (j.contains("has_data")) j.at("has_data").get_to(info.has_data);
        if (j.contains("role")) j.at("role").get_to(info.role);
        if (j.contains("gtid_binlog_state"))
          j.at("gtid_binlog_state").get_to(info.gtid_binlog_state);
        if (j.contains("gtid_current_pos")) j.at("gtid_current_pos").get_to(info.gtid_current_pos);
        if (j.contains("ready")) j.at("ready").get_to(info.ready);
        if (j.contains("not_ready_reason")) j.at("not_ready_reason").get_to(info.not_ready_reason);
        if (j.contains("diverged")) j.at("diverged").get_to(info.diverged);
      });
  if (!decoded) return decoded;
  // The peer is authenticated but still not trusted with what it says: every field the
  // primary's recovery decides by is checked for its form here.
  const ProbeInfo& info = *decoded;
  if (!info.cluster_id.empty() && !ValidClusterId(info.cluster_id))
    return Error(StatusCode::kCorruption, "bad probe answer: cluster_id is not a UUID");
  if (!info.role.empty() && info.role != "primary" && info.role != "replica")
    return Error(StatusCode::kCorruption, "bad probe answer: role is not primary or replica");
  if (info.not_ready_reason.size() > kMaxProbeReason) {
    return Error(StatusCode::kCorruption, "bad probe answer: not_ready_reason is {} bytes (at most {})",
                 info.not_ready_reason.size(), kMaxProbeReason);
  }
  for (const auto& [name, text] : {std::pair<const char*, const std::string&>{
                                       "gtid_binlog_state", info.gtid_binlog_state},
                                   {"gtid_current_pos", info.gtid_current_pos}}) {
    if (text.size() > kMaxGtidText) {
      return Error(StatusCode::kCorruption, "bad probe answer: {} is {} bytes (at most {})", name,
                   text.size(), kMaxGtidText);
    }
    if (text.empty()) continue;
    const auto flavour = ParseFlavour(info.flavour);
    if (!flavour) {
      return Error(StatusCode::kCorruption,
                   "bad probe answer: a GTID state from an unknown flavour {}",
                   log::Printable(info.flavour.substr(0, 32)));
    }
    if (auto set = replication::GtidSet::Parse(text, *flavour); !set) {
      return Error(StatusCode::kCorruption, "bad probe answer: {}: {}", name,
                   set.error().message());
    }
  }
  return decoded;
}

std::string EncodeStreamHeader(const StreamHeader& header) {
  return DumpPayload({{"protocol", header.protocol},
                      {"flavour", header.flavour},
                      {"server_version", header.server_version},
                      {"tool", header.tool},
                      {"tool_version", header.tool_version},
                      {"estimated_bytes", header.estimated_bytes},
                      {"cluster_id", header.cluster_id},
                      {"run_id", header.run_id},
                      {"run_receivers", header.run_receivers},
                      {"compression", header.compression},
                      {"compression_level", header.compression_level},
                      {"resume_id", header.resume_id},
                      {"checkpoint_bytes", header.checkpoint_bytes},
                      {"resumed_from", header.resumed_from}});
}

Result<StreamHeader> DecodeStreamHeader(std::string_view payload) {
  auto header = ParsePayload<StreamHeader>(payload, "stream header", [](const auto& j, StreamHeader& h) {
    j.at("protocol").get_to(h.protocol);
    j.at("flavour").get_to(h.flavour);
    j.at("server_version").get_to(h.server_version);
    j.at("tool").get_to(h.tool);
    j.at("tool_version").get_to(h.tool_version);
    j.at("estimated_bytes").get_to(h.estimated_bytes);
    if (j.contains("cluster_id")) j.at("cluster_id").get_to(h.cluster_id);
    h.run_id = j.value("run_id", uint64_t{0});
    h.run_receivers = j.value("run_receivers", uint64_t{0});
    // Absent from older donors (off); strictly typed when present.
    if (j.contains("compression")) j.at("compression").get_to(h.compression);
    if (j.contains("compression_level")) j.at("compression_level").get_to(h.compression_level);
    if (j.contains("resume_id")) j.at("resume_id").get_to(h.resume_id);
    h.checkpoint_bytes = j.value("checkpoint_bytes", uint64_t{0});
    h.resumed_from = j.value("resumed_from", uint64_t{0});
  });
  if (header && !header->resume_id.empty()) {
    ResumeId id;
    if (!HexDecode(header->resume_id, id))
      return Error(StatusCode::kCorruption, "bad stream header: resume_id is not 32 hex digits");
  }
  if (header) {
    const std::string& c = header->compression;
    const int level = header->compression_level;
    const bool ok = c == "off"    ? level == 0
                    : c == "zstd" ? level >= 1 && level <= kMaxGrantedLevel
                    : c == "auto" ? level >= 1 && level <= kMaxGrantedLevel
                                  : false;
    if (!ok) {
      return Error(StatusCode::kCorruption, "bad stream header: compression {} at level {}",
                   log::Printable(c.substr(0, 16)), level);
    }
  }
  // The receiver writes the id into its datadir: only the one form an id has.
  if (header && !header->cluster_id.empty() && !ValidClusterId(header->cluster_id))
    return Error(StatusCode::kCorruption, "bad stream header: cluster_id is not a UUID");
  return header;
}

Status CheckGrant(const StreamHeader& header, const CompressRequest& asked) {
  const std::string& c = header.compression;
  bool ok = c == "off";
  if (c == "zstd") {
    ok = (asked.mode == CompressMode::kZstd && header.compression_level <= asked.level) ||
         asked.mode == CompressMode::kAuto;
  } else if (c == "auto") {
    ok = asked.mode == CompressMode::kAuto;
  }
  if (ok) return Status::Ok();
  return Status(StatusCode::kCorruption,
                fmt::format("the donor granted compression {} at level {}, but {} was asked",
                            c, header.compression_level, CompressRequestText(asked)));
}

bool StreamTrailer::ok() const {
  return exit_code == 0 && signal == 0 && last_line.find("completed OK!") != std::string::npos;
}

std::string EncodeStreamTrailer(const StreamTrailer& trailer) {
  return DumpPayload({{"exit_code", trailer.exit_code},
                      {"signal", trailer.signal},
                      {"last_line", trailer.last_line},
                      {"bytes", trailer.bytes},
                      {"wire_bytes", trailer.wire_bytes}});
}

Result<StreamTrailer> DecodeStreamTrailer(std::string_view payload) {
  return ParsePayload<StreamTrailer>(payload, "stream trailer",
                                     [](const auto& j, StreamTrailer& t) {
                                       j.at("exit_code").get_to(t.exit_code);
                                       j.at("signal").get_to(t.signal);
                                       j.at("last_line").get_to(t.last_line);
                                       j.at("bytes").get_to(t.bytes);
                                       if (j.contains("wire_bytes"))
                                         j.at("wire_bytes").get_to(t.wire_bytes);
                                     });
}

std::string EncodeErrorMessage(const ErrorMessage& error) {
  return DumpPayload({{"code", error.code}, {"message", error.message}});
}

ErrorMessage DecodeErrorMessage(std::string_view payload) {
  auto decoded = ParsePayload<ErrorMessage>(payload, "error", [](const auto& j, ErrorMessage& e) {
    e.code = j.value("code", std::string("unknown"));
    e.message = j.value("message", std::string());
  });
  // An error frame is shown to the user whatever it holds.
  return decoded ? *decoded : ErrorMessage{"unknown", std::string(payload.substr(0, 200))};
}

std::optional<std::string> MajorMinor(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) continue;
    if (i > 0 && (std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '.'))
      continue;
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j + 1 >= text.size() || text[j] != '.' ||
        !std::isdigit(static_cast<unsigned char>(text[j + 1]))) {
      i = j;
      continue;
    }
    size_t k = j + 1;
    while (k < text.size() && std::isdigit(static_cast<unsigned char>(text[k]))) ++k;
    return std::string(text.substr(i, k - i));
  }
  return std::nullopt;
}

}  // namespace replboot::clone
