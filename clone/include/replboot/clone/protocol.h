// The backup protocol between a donor's BackupServer and a cloning replica, version 4 (a
// server speaks versions 3 and 4; see "Versions").
//
// Every message is a frame: | type u8 | length u32 big-endian | payload (length bytes) |,
// and every frame the server sends after PROOF also carries a tag:
//                           | type u8 | length u32 BE | payload | tag (16 bytes) |.
// Control frames carry at most kMaxControlPayload bytes; DATA frames at most kMaxDataPayload.
//
//   client                                   server
//   [TLS handshake, when backup.tls = true on both sides]
//   HELLO     "replboot-backup" ‖ version u16 BE ‖ mode u8 ‖ identity(client)
//             [‖ compress u8 ‖ level u8, version 4 only]                         →
//                                            ←  CHALLENGE server_nonce (32) ‖ identity(server)
//   RESPONSE  mac_c (32) ‖ client_nonce (32)       →
//       mac_c = HMAC-SHA256(secret, transcript(kClientLabel))
//                                            ←  PROOF mac_s (32)         (or ERROR auth_failed)
//       mac_s = HMAC-SHA256(secret, transcript(kServerLabel))
//   --- from here on every server frame is tagged (see "Why tags") ---
//   mode 0 (backup):
//                                            ←  HEADER JSON   (or ERROR busy / backup_failed)
//                                            ←  DATA raw xbstream bytes, or ZDATA (the same
//                                               bytes as one zstd frame, when the HEADER
//                                               granted compression), repeated
//                                            ←  TRAILER JSON
//   mode 2 (resume, below; version 4): HELLO's compression request is followed by the
//       resume request  resume_id (16) ‖ run_id u64 BE ‖ frame_offset u64 BE ‖ chain (32)
//                                            ←  HEADER JSON (resumed_from = frame_offset, the
//                                               run's grant), DATA/ZDATA from frame_offset
//                                               on, TRAILER
//                                               (or ERROR resume_refused: start afresh)
//   mode 1 (probe):
//                                            ←  PROBE_INFO JSON (flavour, server_version, tool,
//                                               busy; the node's cluster position: cluster_id,
//                                               has_data, role, GTID state), then the server
//                                               closes
//
//   identity  = name_len u8 ‖ name ‖ has_ordinal u8 (0 | 1) ‖ [ordinal u32 BE, when 1]
//       name: the node's name (its pod's host name, e.g. mysql-2), at most kMaxNodeName bytes
//       of [A-Za-z0-9.:_-], empty when it has none; ordinal: its StatefulSet ordinal. Both are
//       optional (`replboot clone` by hand, a test server). Parsed strictly: nothing may
//       follow it, in HELLO or CHALLENGE.
//   transcript(label) = lp(label) ‖ lp(HELLO payload) ‖ lp(CHALLENGE payload) ‖
//                       lp(client_nonce) ‖ lp(ekm),     lp(x) = length u32 BE ‖ x
//       the HELLO and CHALLENGE payloads exactly as they crossed the wire.
//
// Why challenge-response: the secret never crosses the wire, and both nonces are fresh, so
// a recorded session cannot be replayed against either side. The two MACs use different
// labels so a server's proof can never be reflected as a client's response.
//
// Why a transcript (version 3): up to version 2 the MACs covered the nonces only, so what
// HELLO and CHALLENGE said around them was not authenticated. A host on the path could
// change a HELLO's mode or name, or, worse, hand every probe meant for mysql-1 to mysql-2
// (same secret, real answers, but from the least advanced node), which a primary that lost
// its volume would then clone. Now both MACs and the stream key cover both messages as sent,
// so a change to either fails the authentication at both ends, and the server states which
// node it is: a client that knows which node it meant (discovery probes candidate k, a clone
// the donor it chose) refuses any other, naming both. Every field is length-prefixed, so no
// two different transcripts encode alike (a name's last byte can never pass for a nonce's
// first). The client compares the stated identity before it sends its RESPONSE, so that a
// wrong node starts nothing; its PROOF then proves the identity was the server's own.
//
// Why tags (version 2): the handshake proves who is at the other end only at that moment.
// Without TLS anybody on the path can let the real handshake through and then substitute
// his own HEADER, DATA and TRAILER (a whole other datadir with a consistent trailer). So
// every frame after PROOF is authenticated with a key only the two ends know:
//       stream_key = HMAC-SHA256(secret, transcript(kStreamKeyLabel))
//       tag_i      = AES-256-GMAC(stream_key, iv = 0x00000000 ‖ i as u64 BE,
//                                 aad = type ‖ length ‖ payload)
// where i counts the tagged frames from 0 (the first frame after PROOF). The counter makes
// a dropped, repeated or reordered frame fail its tag, the type and length in the tag make
// a DATA frame unusable as a TRAILER, and the TRAILER (tagged like the rest, carrying the
// byte count) makes a cut stream fail. The key is fresh per session (both nonces), so an iv
// never repeats under one key. The replica checks each frame's tag before any of its bytes
// reach the extractor, and commits only after a tagged TRAILER. GMAC rather than HMAC:
// with AES-NI and PCLMULQDQ it runs at several GB/s, so the donor's CPU, not the MAC, bounds
// the stream; the price is that the donor reads the stream into memory (no splice(2)).
//
// Why a probe mode: discovery must pick a donor that would actually serve us (same secret,
// a compatible server version, not busy), which a TCP connect cannot tell. A probe runs the
// same mutual authentication and gets the facts the pre-flight needs, but the server never
// starts the backup tool for it. A HELLO without the mode byte means backup. A server
// refuses a HELLO of another version with ERROR protocol, which the client reports as such.
//
// Why `ekm` (channel binding): with TLS, ekm is 32 bytes of keying material exported from
// the TLS session (RFC 5705/8446, label kTlsExporterLabel, no context); without TLS it is
// empty. When backup.tls_ca is not set, nobody verifies certificates, so a man in the middle
// could terminate TLS towards each side and relay the HELLO/CHALLENGE/RESPONSE/PROOF frames
// unchanged, reading the stream. The two TLS sessions he would run have different keying
// material, so a MAC computed by the real client over its session does not verify at the
// real server (and the other way round): the relayed authentication fails without the
// secret ever being exposed. With a CA the binding costs nothing and still ties the secret
// (and the stream key) to this very connection.
//
// Versions: a server takes a HELLO of version 3 or 4 and answers any other with ERROR
// protocol. Version 4 adds compression on the wire (below) and mode 2, resume (below); a
// client that asks for neither sends a version 3 HELLO, which every server since version 3
// takes, and a client whose version 4 backup HELLO was refused with ERROR protocol (a donor
// that predates it) connects again with a version 3 HELLO, i.e. without compression. A resume
// HELLO is always version 4 (a version 3 HELLO of mode 2 is refused as an unknown mode, as
// every version 3 donor refuses it); a donor that answers it with ERROR protocol cannot hold
// the run (it predates resume), so the receiver discards its staging dir and clones afresh,
// through the same fallback. That ERROR is not
// authenticated, so a host on the path can make a clone uncompressed: never less safe, only
// slower. A version 3 HELLO gets a HEADER without the grant and plain DATA frames, as before.
//
// Compression on the wire (version 4, backup.compress on the receiving side): the HELLO asks
//       compress = 0 off | 1 zstd (level = the level it wants, 1..kMaxRequestLevel) |
//                  2 auto (level 0: the donor picks per window among off, 1 and 3)
// and the donor says in the HEADER what it granted ("compression": "off" | "zstd" | "auto",
// "compression_level": the fixed level, or auto's highest), never more than was asked and
// never above kMaxGrantedLevel (what its CPU budget allows; backup_server.h says when it grants
// none). Both are inside the MACs and tags like everything else. When compression is granted,
// each chunk of the tool's output goes either as a DATA frame (as it is: the donor chose no
// compression for this window, or zstd did not make it smaller) or as a ZDATA frame whose
// payload is exactly one zstd frame of that chunk: independent frames, so the level can change
// between any two and each one's bytes are bounded on their own. The tag covers the ZDATA
// payload as sent (compressed); the receiver checks it first, so nothing unauthenticated is
// ever decompressed, then decompresses it streaming into at most kMaxFrameContent bytes
// (a frame that would produce more is refused by name before more is allocated: a donor
// cannot make a zip bomb allocate), with a zstd window of at most 2^kMaxWindowLog, and
// feeds the result to the extractor. The TRAILER's byte count stays the stream's own bytes
// (after decompression); when compression was granted, its `wire_bytes` is what the DATA and
// ZDATA payloads held, which the receiver checks too.
// A ZDATA frame without a grant, or a grant that was not asked for, fails the stream.
// Why resume (mode 2): a link that drops at 95 % of a long clone must not cost the whole copy
// again. The donor keeps a run whose receiver went away open for backup.resume_window, its tool
// still running (its redo copy must keep up, or the backup is invalid), spooling what it
// writes to a bounded file beside its datadir; the receiver records durable points in its
// staging dir (the extraction state at an xbstream chunk boundary, every file it counts
// fsynced). The request rides in the HELLO, so both MACs cover it like the rest of the
// HELLO; it names the receiver's stream (resume_id, random per receiver, from its HEADER) and
// the DATA frame the durable point falls in, and proves the receiver got every frame before
// it: chain is the resume chain (ResumeChain*) over the tags of those frames, which only the
// two ends of those sessions know. Offsets and sizes count the stream's own bytes (a ZDATA
// frame's after decompression), the tags are those of the frames as sent (DATA or ZDATA), so
// the chain does not depend on the grant. A resumed stream keeps its run's grant: the
// backlog and the spool hold the frames as the run made them (backup_server.cc says why), so
// the resumed HEADER grants what the first one did, and a resume HELLO whose compression
// request that grant does not answer (CheckGrant) is refused like any other. A donor that does not hold that stream at that frame (it
// restarted, the window closed, the spool filled, a forged offset) answers ERROR
// resume_refused, and the receiver discards its staging dir and clones afresh. The resumed
// HEADER says where it starts (resumed_from) under the new session's tag, so a relay cannot
// shift it either; the receiver drops the bytes of that frame before its durable point.
//
// Why a TRAILER: xbstream has no end marker, so a stream cut at a chunk boundary looks
// complete. Only the trailer (the backup tool's exit status and its last stderr line,
// which ends in "completed OK!", and the DATA byte count) says the stream is whole.
#ifndef REPLBOOT_CLONE_PROTOCOL_H_
#define REPLBOOT_CLONE_PROTOCOL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "replboot/base/status.h"

namespace replboot::clone {

inline constexpr uint16_t kProtocolVersion = 4;
// The oldest HELLO a server still takes (see "Versions").
inline constexpr uint16_t kMinProtocolVersion = 3;
inline constexpr std::string_view kHelloMagic = "replboot-backup";
// The three uses of the transcript, each under its own label.
inline constexpr std::string_view kClientLabel = "replboot-backup-v3 client";
inline constexpr std::string_view kServerLabel = "replboot-backup-v3 server";
inline constexpr size_t kNonceSize = 32;
inline constexpr size_t kMacSize = 32;
inline constexpr size_t kFrameHeaderSize = 5;
inline constexpr uint32_t kMaxControlPayload = 64 * 1024;
// A DATA frame is held whole until its tag is checked: this bounds that buffer. The donor
// reads its tool's pipe (1 MiB) into frames of at most this size, so every donor since
// protocol v2 stays within it; the receiver refuses a longer frame before allocating.
inline constexpr uint32_t kMaxDataPayload = 1024 * 1024;
// What one ZDATA frame may decompress to: one chunk of the tool's output, as a DATA frame
// would carry it.
inline constexpr uint32_t kMaxFrameContent = kMaxDataPayload;
// The zstd window a ZDATA frame may need (its chunk is at most 1 MiB, so 2^20 is all a donor
// uses); a frame header asking for more is refused before the window is allocated.
inline constexpr int kMaxWindowLog = 20;
// Compression levels a receiver may ask for, and the most a donor grants (zstd -3 runs at
// about 150-250 MB/s per core; above it the donor's CPU, not the link, would set the pace).
inline constexpr int kMaxRequestLevel = 19;
inline constexpr int kMaxGrantedLevel = 3;
inline constexpr std::string_view kStreamKeyLabel = "replboot-backup-v3 stream server-to-client";
inline constexpr size_t kTagSize = 16;
inline constexpr std::string_view kTlsExporterLabel = "EXPORTER-replboot-backup";
inline constexpr size_t kChannelBindingSize = 32;
// The first byte a TLS client sends (a handshake record): a plaintext server seeing it
// knows the peer has backup.tls = true.
inline constexpr uint8_t kTlsHandshakeRecord = 0x16;

enum class FrameType : uint8_t {
  kHello = 1,
  kChallenge = 2,
  kResponse = 3,
  kProof = 4,
  kHeader = 5,
  kError = 6,
  kData = 7,
  kTrailer = 8,
  kProbeInfo = 9,
  kZData = 10,  // version 4: a DATA frame's bytes as one zstd frame
};
std::string_view FrameTypeName(FrameType type);

using Nonce = std::array<uint8_t, kNonceSize>;
using Mac = std::array<uint8_t, kMacSize>;

// The 5-byte frame header for `type` and `length`.
std::array<uint8_t, kFrameHeaderSize> EncodeFrameHeader(FrameType type, uint32_t length);
// A whole control frame.
std::string EncodeFrame(FrameType type, std::string_view payload);

struct FrameHeader {
  FrameType type;
  uint32_t length;
};
// Decodes and bounds-checks a frame header; kCorruption for an unknown type or a length
// over the type's limit (checked before anything is allocated).
Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t, kFrameHeaderSize> bytes);

// Fresh random bytes from OpenSSL's CSPRNG; kInternal when it fails.
Result<Nonce> RandomNonce();

// What both MACs and the stream key cover (see "Why a transcript"). The views point into
// the caller's buffers, which must outlive the call they are passed to.
struct Transcript {
  std::string_view hello;      // the HELLO payload as sent (client) or received (server)
  std::string_view challenge;  // the CHALLENGE payload: server nonce ‖ server identity
  Nonce client_nonce{};
  std::span<const uint8_t> binding;  // the TLS channel binding (see above); empty without TLS
};
// lp(label) ‖ lp(hello) ‖ lp(challenge) ‖ lp(client_nonce) ‖ lp(binding): the bytes HMACed.
std::string EncodeTranscript(std::string_view label, const Transcript& transcript);

Mac ClientMac(std::string_view secret, const Transcript& transcript);
Mac ServerMac(std::string_view secret, const Transcript& transcript);
using StreamKey = std::array<uint8_t, 32>;
using Tag = std::array<uint8_t, kTagSize>;
// The key of the server's tagged frames (see "Why tags").
StreamKey DeriveStreamKey(std::string_view secret, const Transcript& transcript);

// Tags (sender) or checks (receiver) the frames of one direction of one session, in order.
class FrameAuthenticator {
 public:
  // kInternal when OpenSSL cannot set up AES-256-GCM.
  static Result<FrameAuthenticator> Create(const StreamKey& key);
  FrameAuthenticator(FrameAuthenticator&&) noexcept;
  FrameAuthenticator& operator=(FrameAuthenticator&&) noexcept;
  ~FrameAuthenticator();

  // The next frame's tag; advances the counter.
  Result<Tag> Seal(FrameType type, std::span<const uint8_t> payload);
  // kPermissionDenied when `tag` is not the tag of the next frame with this type and
  // payload; the counter advances only on success (a receiver gives up on failure anyway).
  Status Check(FrameType type, std::span<const uint8_t> payload, std::span<const uint8_t> tag);
  // Frames tagged or checked so far.
  uint64_t frames() const { return counter_; }

 private:
  explicit FrameAuthenticator(void* ctx) : ctx_(ctx) {}
  Result<Tag> Compute(FrameType type, std::span<const uint8_t> payload);
  void* ctx_ = nullptr;  // EVP_CIPHER_CTX, keyed once
  uint64_t counter_ = 0;
};

// Constant-time comparison (CRYPTO_memcmp), so timing does not leak how much matched.
bool MacEqual(std::span<const uint8_t> a, std::span<const uint8_t> b);

enum class HelloMode : uint8_t { kBackup = 0, kProbe = 1, kResume = 2 };

// The resume chain (see "Why resume"): chain_0 = HMAC(key, "start"), then for each DATA
// frame sent to (or checked by) one receiver, chain_{i+1} = HMAC(key, chain_i ‖ offset u64 BE
// ‖ size u32 BE ‖ tag_i), key = HMAC-SHA256(secret, kResumeKeyLabel ‖ resume_id). offset is
// the frame's first byte in the stream; across a resume the chain goes on over the new
// session's tags.
inline constexpr std::string_view kResumeKeyLabel = "replboot-backup-v3 resume";
inline constexpr size_t kResumeIdSize = 16;
using ResumeId = std::array<uint8_t, kResumeIdSize>;
using ResumeChain = std::array<uint8_t, 32>;
ResumeChain ResumeKey(std::string_view secret, const ResumeId& id);
ResumeChain ResumeChainStart(const ResumeChain& key);
ResumeChain ResumeChainNext(const ResumeChain& key, const ResumeChain& chain, uint64_t offset,
                            uint32_t size, std::span<const uint8_t> tag);
std::string HexEncode(std::span<const uint8_t> bytes);
// Exactly 2 × out.size() lower- or upper-case hex digits; false otherwise.
bool HexDecode(std::string_view text, std::span<uint8_t> out);

// What a resuming receiver asks for (in its HELLO, mode kResume).
struct ResumeRequest {
  ResumeId resume_id{};
  uint64_t run_id = 0;
  uint64_t frame_offset = 0;  // the first byte of the DATA frame its durable point is in
  ResumeChain chain{};        // the resume chain before that frame
  bool operator==(const ResumeRequest&) const = default;
};
inline constexpr size_t kResumeRequestSize = kResumeIdSize + 8 + 8 + 32;

// Compression on the wire (see "Compression on the wire").
enum class CompressMode : uint8_t { kOff = 0, kZstd = 1, kAuto = 2 };
struct CompressRequest {
  CompressMode mode = CompressMode::kOff;
  int level = 0;  // kZstd: 1..kMaxRequestLevel; else 0
  bool operator==(const CompressRequest&) const = default;
};
// "off", "zstd:3", "auto".
std::string CompressRequestText(const CompressRequest& request);
// backup.compress: "off", "auto", "zstd" (level 1) or "zstd:N" (N in 1..kMaxRequestLevel,
// digits only); kInvalidArgument naming what is wrong for anything else.
Result<CompressRequest> ParseCompressSetting(std::string_view text);

// How a node names itself in the handshake (see "identity" above): the client in HELLO,
// the server in CHALLENGE.
inline constexpr size_t kMaxNodeName = 64;
inline constexpr size_t kMaxClientName = kMaxNodeName;
struct NodeIdentity {
  std::string name;                // "mysql-2"; "" when the node has none
  std::optional<int64_t> ordinal;  // 2; none when the node has none
  bool operator==(const NodeIdentity&) const = default;
};
// "mysql-2 (ordinal 2)", "mysql-2 (no ordinal)", "ordinal 2", "a node with no identity".
std::string NodeIdentityText(const NodeIdentity& identity);
// The name is cut to kMaxNodeName bytes and characters outside the allowed set become '_';
// an ordinal outside [0, 2^32) (none a StatefulSet gives: conf::ParseIdentity bounds it by
// the 32-bit server id) is sent as none.
std::string EncodeNodeIdentity(const NodeIdentity& identity);
// Exactly one identity encoding and nothing after it; kCorruption naming what is wrong.
Result<NodeIdentity> ParseNodeIdentity(std::string_view bytes);

// Version 3 when `compress` asks for nothing and mode is not kResume (every server takes
// it), else version 4 with the request (and, for kResume, `resume` after it); `version`
// forces one (3 drops both requests).
std::string EncodeHello(HelloMode mode = HelloMode::kBackup, const NodeIdentity& client = {},
                        const CompressRequest& compress = {},
                        const std::optional<ResumeRequest>& resume = std::nullopt,
                        std::optional<uint16_t> version = std::nullopt);
struct Hello {
  HelloMode mode = HelloMode::kBackup;
  NodeIdentity client;  // as claimed; authenticated only once the client's MAC verified
  uint16_t version = kMinProtocolVersion;
  CompressRequest compress;  // off in a version 3 HELLO
  std::optional<ResumeRequest> resume;  // mode kResume only (exactly kResumeRequestSize bytes)
};
// kCorruption when the magic, the identity, the compression request or the length is
// malformed; kInvalidArgument for a protocol version outside [kMinProtocolVersion,
// kProtocolVersion] (checked first: such a client's HELLO gets ERROR protocol) or an unknown
// mode.
Result<Hello> ParseHello(std::string_view payload);
// The mode the client asks for; errors as ParseHello.
Result<HelloMode> CheckHello(std::string_view payload);

struct Challenge {
  Nonce server_nonce{};
  NodeIdentity server;  // as claimed; authenticated only by the server's PROOF
};
std::string EncodeChallenge(const Nonce& server_nonce, const NodeIdentity& server = {});
// kCorruption when shorter than a nonce or the identity after it is malformed.
Result<Challenge> ParseChallenge(std::string_view payload);

// What the donor tells the replica before the stream, for the pre-flight and progress.
struct StreamHeader {
  uint16_t protocol = kProtocolVersion;
  std::string flavour;           // "mariadb" | "mysql"
  std::string server_version;    // SELECT VERSION(), e.g. "10.11.19-MariaDB"
  std::string tool;              // "mariabackup" | "xtrabackup"
  std::string tool_version;      // first line of `<tool> --version`
  uint64_t estimated_bytes = 0;  // what the backup will stream (EstimateBackupBytes)
  // The donor's cluster id (cluster_id.h), which the replica writes into its clone; "" when
  // the donor has none (a datadir from before cluster ids). Absent from older donors' JSON.
  std::string cluster_id;
  // The donor's backup run this stream belongs to (backup_server.h, "fan-out") and how many
  // receivers it started with: more than 1 means the tool's output is shared. 0 and 0 from a
  // donor that does not say (both optional in the JSON).
  uint64_t run_id = 0;
  uint64_t run_receivers = 0;
  // What the donor granted of the HELLO's compression request ("Compression on the wire"):
  // "off" (also when absent: older donors), "zstd" at compression_level, or "auto" up to it.
  std::string compression = "off";
  int compression_level = 0;
  // Resume (see "Why resume"; absent from donors without it: "" and 0). resume_id: this
  // receiver's stream (32 hex digits); checkpoint_bytes: how often the receiver records a
  // durable point (the donor keeps about that much plus what is in flight to resend);
  // resumed_from: in a resumed stream, the offset of its first DATA byte.
  std::string resume_id;
  uint64_t checkpoint_bytes = 0;
  uint64_t resumed_from = 0;
};
// Whether a HEADER's grant answers `asked`: off always does; zstd at a level in
// [1, min(asked, kMaxGrantedLevel)] answers zstd:asked; zstd or auto up to kMaxGrantedLevel
// answers auto. kCorruption naming both otherwise.
Status CheckGrant(const StreamHeader& header, const CompressRequest& asked);
std::string EncodeStreamHeader(const StreamHeader& header);
Result<StreamHeader> DecodeStreamHeader(std::string_view payload);

// What the donor answers a probe: enough for the replica's pre-flight, nothing started.
struct ProbeInfo {
  std::string flavour;
  std::string server_version;  // "" when `error` is set
  std::string tool;
  bool busy = false;  // max_concurrent backups running: a backup now would be refused
  int64_t active = 0;
  int64_t max_concurrent = 0;
  std::string error;  // the donor cannot serve now (e.g. its server does not answer)
  // The node's place in the cluster, for a primary that lost its datadir (the fields are
  // absent from older peers' JSON: "", false, "" then).
  std::string cluster_id;  // "" when the node has none; else a lower-case UUID
  bool has_data = false;   // its datadir holds data (the disk says, not its server)
  std::string role;        // "primary" | "replica" | ""
  // MariaDB: @@gtid_binlog_state (every (domain, server_id) ever logged) and
  // @@gtid_current_pos; MySQL: @@gtid_executed in both. "" when unknown.
  std::string gtid_binlog_state;
  std::string gtid_current_pos;
  // Whether the node could be a replica's donor now (the daemon's readiness: set up,
  // replicating within the lag bound, or a ready primary), and if not, why, in words. A
  // diverged node (it holds GTIDs the primary lacks) never is: a clone of it carries the
  // divergence on. Absent from older peers' JSON: false, "", false.
  bool ready = false;
  std::string not_ready_reason;
  bool diverged = false;
  // Who answered: the identity the handshake authenticated (filled by the prober, not part
  // of the JSON).
  NodeIdentity node;
};
// Longest not_ready_reason a probe answer may carry.
inline constexpr size_t kMaxProbeReason = 1024;
// Longest GTID text a probe answer may carry (a set of a few hundred sources); longer is
// kCorruption, as is one that is not a GTID set of the answer's flavour.
inline constexpr size_t kMaxGtidText = 16 * 1024;
std::string EncodeProbeInfo(const ProbeInfo& info);
Result<ProbeInfo> DecodeProbeInfo(std::string_view payload);

struct StreamTrailer {
  int exit_code = -1;
  int signal = 0;
  std::string last_line;  // last stderr line of the backup tool
  uint64_t bytes = 0;     // stream bytes sent (DATA payloads, ZDATA ones decompressed)
  // DATA and ZDATA payload bytes as sent (absent from older donors: 0, then not checked).
  uint64_t wire_bytes = 0;
  bool ok() const;        // exit 0, no signal, last line says "completed OK!"
};
std::string EncodeStreamTrailer(const StreamTrailer& trailer);
Result<StreamTrailer> DecodeStreamTrailer(std::string_view payload);

// ERROR frames: a stable code ("auth_failed", "busy", "backup_failed", "protocol") and text.
struct ErrorMessage {
  std::string code;
  std::string message;
};
std::string EncodeErrorMessage(const ErrorMessage& error);
ErrorMessage DecodeErrorMessage(std::string_view payload);

// "10.11" from "10.11.19-MariaDB-0+deb12u1" or from "mariabackup based on MariaDB server
// 10.11.19-MariaDB Linux (x86_64)": the first X.Y[.Z] in the text. nullopt when none.
std::optional<std::string> MajorMinor(std::string_view version_text);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_PROTOCOL_H_
