#include "replboot/clone/protocol.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace replboot::clone {
namespace {

Nonce Filled(uint8_t v) {
  Nonce n;
  n.fill(v);
  return n;
}

// One session's handshake as both ends see it: the HELLO and CHALLENGE payloads, the
// client's nonce and an optional channel binding.
struct Session {
  std::string hello = EncodeHello(HelloMode::kProbe, {"mysql-3", 3});
  std::string challenge = EncodeChallenge(Filled(1), {"mysql-1", 1});
  Nonce client_nonce = Filled(2);
  std::vector<uint8_t> binding;
  Transcript View() const { return {hello, challenge, client_nonce, binding}; }
};

TEST(AuthTest, RightSecretMatches) {
  Session s;
  EXPECT_TRUE(MacEqual(ClientMac("secret", s.View()), ClientMac("secret", s.View())));
  EXPECT_TRUE(MacEqual(ServerMac("secret", s.View()), ServerMac("secret", s.View())));
}

TEST(AuthTest, WrongSecretFails) {
  Session s;
  EXPECT_FALSE(MacEqual(ClientMac("secret", s.View()), ClientMac("secreT", s.View())));
  EXPECT_FALSE(MacEqual(ClientMac("secret", s.View()), ClientMac("", s.View())));
}

TEST(AuthTest, TamperedNonceFails) {
  Session s;
  const Mac good = ClientMac("secret", s.View());
  Session server_nonce = s;
  server_nonce.challenge[17] ^= 0x01;
  EXPECT_FALSE(MacEqual(good, ClientMac("secret", server_nonce.View())));
  Session client_nonce = s;
  client_nonce.client_nonce[0] ^= 0x80;
  EXPECT_FALSE(MacEqual(good, ClientMac("secret", client_nonce.View())));
}

// What a relay may change in the clear: the mode, the client's name or ordinal, the server's
// identity. Each changes both MACs and the stream key, so neither end accepts the other's.
TEST(AuthTest, EveryFieldOfHelloAndChallengeIsCovered) {
  const Session original;
  std::vector<Session> tampered(5, original);
  tampered[0].hello = EncodeHello(HelloMode::kBackup, {"mysql-3", 3});
  tampered[1].hello = EncodeHello(HelloMode::kProbe, {"mysql-4", 3});
  tampered[2].hello = EncodeHello(HelloMode::kProbe, {"mysql-3", std::nullopt});
  tampered[3].challenge = EncodeChallenge(Filled(1), {"mysql-2", 2});
  tampered[4].challenge = EncodeChallenge(Filled(1), {"mysql-1", std::nullopt});
  for (const Session& t : tampered) {
    EXPECT_FALSE(MacEqual(ClientMac("k", original.View()), ClientMac("k", t.View())));
    EXPECT_FALSE(MacEqual(ServerMac("k", original.View()), ServerMac("k", t.View())));
    EXPECT_NE(DeriveStreamKey("k", original.View()), DeriveStreamKey("k", t.View()));
  }
}

// Bytes moved from the end of one field to the start of the next make another transcript:
// every field carries its length.
TEST(AuthTest, TranscriptEncodingIsUnambiguous) {
  Transcript a{"ab", "c", Filled(1), {}};
  Transcript b{"a", "bc", Filled(1), {}};
  EXPECT_NE(EncodeTranscript("l", a), EncodeTranscript("l", b));
  EXPECT_FALSE(MacEqual(ClientMac("k", a), ClientMac("k", b)));
  // The label is length-prefixed too: it cannot absorb the HELLO.
  EXPECT_NE(EncodeTranscript("la", b),
            EncodeTranscript("l", Transcript{"ab", "bc", Filled(1), {}}));
  const std::string encoded = EncodeTranscript("l", a);
  // lp("l") ‖ lp("ab") ‖ lp("c") ‖ lp(nonce) ‖ lp(""), lp(x) = u32 BE ‖ x
  EXPECT_EQ(encoded.size(), 5 * 4 + 1 + 2 + 1 + kNonceSize);
  EXPECT_EQ(encoded.substr(0, 5), std::string("\0\0\0\1l", 5));
  EXPECT_EQ(encoded.substr(5, 6), std::string("\0\0\0\2ab", 6));
}

TEST(AuthTest, ServerProofCannotBeReflectedAsClientResponse) {
  // The same transcript in both roles: the labels differ, so the MACs differ.
  Session s;
  EXPECT_FALSE(MacEqual(ClientMac("k", s.View()), ServerMac("k", s.View())));
  EXPECT_NE(kClientLabel, kServerLabel);
  EXPECT_NE(kClientLabel, kStreamKeyLabel);
}

TEST(AuthTest, MacEqualRejectsLengthMismatch) {
  Mac m = ClientMac("k", Session().View());
  EXPECT_FALSE(MacEqual(m, std::span<const uint8_t>(m.data(), m.size() - 1)));
}

TEST(AuthTest, NoncesAreFresh) {
  auto a = RandomNonce();
  auto b = RandomNonce();
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
}

// A sender and a receiver of one session, and a few frames as the donor sends them.
class FrameTagTest : public ::testing::Test {
 protected:
  static FrameAuthenticator Make(std::string_view secret, uint8_t nonce_fill = 1) {
    const std::string hello = EncodeHello();
    const std::string challenge = EncodeChallenge(Filled(nonce_fill));
    auto a = FrameAuthenticator::Create(
        DeriveStreamKey(secret, Transcript{hello, challenge, Filled(9), {}}));
    EXPECT_TRUE(a);
    return std::move(*a);
  }
  static std::vector<uint8_t> Bytes(std::string_view text) {
    return std::vector<uint8_t>(text.begin(), text.end());
  }
  struct Sent {
    FrameType type;
    std::vector<uint8_t> payload;
    Tag tag;
  };
  std::vector<Sent> SendAll(FrameAuthenticator& sender) {
    std::vector<Sent> out;
    for (auto [type, text] : std::vector<std::pair<FrameType, std::string_view>>{
             {FrameType::kHeader, "{\"flavour\":\"mariadb\"}"},
             {FrameType::kData, "XBSTCK01 first chunk"},
             {FrameType::kData, "XBSTCK01 second chunk"},
             {FrameType::kTrailer, "{\"exit_code\":0}"}}) {
      auto tag = sender.Seal(type, Bytes(text));
      EXPECT_TRUE(tag);
      out.push_back({type, Bytes(text), *tag});
    }
    return out;
  }
};

TEST_F(FrameTagTest, TheFramesAsSentAreAccepted) {
  auto sender = Make("secret");
  auto receiver = Make("secret");
  for (const auto& f : SendAll(sender)) {
    EXPECT_TRUE(receiver.Check(f.type, f.payload, f.tag).ok());
  }
  EXPECT_EQ(receiver.frames(), 4u);
}

TEST_F(FrameTagTest, FlippedDataByteIsRefused) {
  auto sender = Make("secret");
  auto receiver = Make("secret");
  auto frames = SendAll(sender);
  ASSERT_TRUE(receiver.Check(frames[0].type, frames[0].payload, frames[0].tag).ok());
  frames[1].payload[3] ^= 0x01;
  Status s = receiver.Check(frames[1].type, frames[1].payload, frames[1].tag);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("DATA frame #1"), std::string::npos) << s.message();
  // A flipped tag byte, or a payload cut short, just the same.
  auto receiver2 = Make("secret");
  auto sender2 = Make("secret");
  frames = SendAll(sender2);
  frames[0].tag[15] ^= 0x80;
  EXPECT_FALSE(receiver2.Check(frames[0].type, frames[0].payload, frames[0].tag).ok());
  frames[0].tag[15] ^= 0x80;
  frames[0].payload.pop_back();
  EXPECT_FALSE(receiver2.Check(frames[0].type, frames[0].payload, frames[0].tag).ok());
}

TEST_F(FrameTagTest, DroppedFrameIsRefused) {
  auto sender = Make("secret");
  auto receiver = Make("secret");
  auto frames = SendAll(sender);
  ASSERT_TRUE(receiver.Check(frames[0].type, frames[0].payload, frames[0].tag).ok());
  // Frame 1 never arrives: frame 2 is checked as frame 1 and fails.
  EXPECT_EQ(receiver.Check(frames[2].type, frames[2].payload, frames[2].tag).code(),
            StatusCode::kPermissionDenied);
}

TEST_F(FrameTagTest, ReplayedOrReorderedFrameIsRefused) {
  auto sender = Make("secret");
  auto frames = SendAll(sender);
  auto replay = Make("secret");
  ASSERT_TRUE(replay.Check(frames[0].type, frames[0].payload, frames[0].tag).ok());
  ASSERT_TRUE(replay.Check(frames[1].type, frames[1].payload, frames[1].tag).ok());
  EXPECT_FALSE(replay.Check(frames[1].type, frames[1].payload, frames[1].tag).ok());
  auto reorder = Make("secret");
  ASSERT_TRUE(reorder.Check(frames[0].type, frames[0].payload, frames[0].tag).ok());
  EXPECT_FALSE(reorder.Check(frames[2].type, frames[2].payload, frames[2].tag).ok());
  // A frame of one session is worthless in another (other nonces, other key).
  auto other_session = Make("secret", 2);
  EXPECT_FALSE(other_session.Check(frames[0].type, frames[0].payload, frames[0].tag).ok());
}

TEST_F(FrameTagTest, ForgedTrailerIsRefused) {
  auto sender = Make("secret");
  auto frames = SendAll(sender);
  auto receiver = Make("secret");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(receiver.Check(frames[i].type, frames[i].payload, frames[i].tag).ok());
  // Tagged by somebody without the secret...
  auto forger = Make("not-the-secret");
  for (int i = 0; i < 3; ++i) (void)forger.Seal(frames[i].type, frames[i].payload);
  auto forged = Bytes("{\"exit_code\":0,\"bytes\":41}");
  auto forged_tag = forger.Seal(FrameType::kTrailer, forged);
  ASSERT_TRUE(forged_tag);
  EXPECT_FALSE(receiver.Check(FrameType::kTrailer, forged, *forged_tag).ok());
  // ...or the real trailer's tag on other contents, or a DATA frame passed off as a trailer.
  EXPECT_FALSE(receiver.Check(FrameType::kTrailer, forged, frames[3].tag).ok());
  auto data_as_trailer = Make("secret");
  EXPECT_FALSE(data_as_trailer.Check(FrameType::kTrailer, frames[0].payload, frames[0].tag).ok());
  EXPECT_TRUE(receiver.Check(frames[3].type, frames[3].payload, frames[3].tag).ok());
}

TEST_F(FrameTagTest, TheKeyDependsOnSecretNoncesAndChannelBinding) {
  Session s;
  const StreamKey plain = DeriveStreamKey("k", s.View());
  EXPECT_NE(plain, DeriveStreamKey("k2", s.View()));
  Session other_nonce = s;
  other_nonce.client_nonce = Filled(1);
  EXPECT_NE(plain, DeriveStreamKey("k", other_nonce.View()));
  Session bound = s;
  bound.binding.assign(kChannelBindingSize, 0);
  bound.binding[0] = 1;
  EXPECT_NE(plain, DeriveStreamKey("k", bound.View()));
  // Never equal to the handshake's MACs over the same transcript.
  EXPECT_NE(Mac(plain), ServerMac("k", s.View()));
  EXPECT_NE(Mac(plain), ClientMac("k", s.View()));
}

TEST(HelloTest, ClientIdentityRoundTripsAndIsSanitized) {
  auto hello = ParseHello(EncodeHello(HelloMode::kBackup, {"mysql-2", 2}));
  ASSERT_TRUE(hello) << hello.error().ToString();
  EXPECT_EQ(hello->client, (NodeIdentity{"mysql-2", 2}));
  hello = ParseHello(EncodeHello(HelloMode::kProbe, {"evil host\nlevel=error", std::nullopt}));
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->mode, HelloMode::kProbe);
  EXPECT_EQ(hello->client.name, "evil_host_level_error");
  EXPECT_FALSE(hello->client.ordinal);
  EXPECT_EQ(
      ParseHello(EncodeHello(HelloMode::kBackup, {std::string(200, 'a'), 1}))->client.name.size(),
      kMaxClientName);
  // Ordinals a StatefulSet cannot give are not sent.
  EXPECT_FALSE(ParseHello(EncodeHello(HelloMode::kBackup, {"x", -1}))->client.ordinal);
  EXPECT_FALSE(
      ParseHello(EncodeHello(HelloMode::kBackup, {"x", int64_t{1} << 32}))->client.ordinal);
  EXPECT_EQ(ParseHello(EncodeHello(HelloMode::kBackup, {"", 4294967295}))->client.ordinal,
            4294967295);
  std::string bad = EncodeHello(HelloMode::kBackup, {"ab", std::nullopt});
  bad[bad.size() - 2] = ' ';  // the name's last byte
  EXPECT_EQ(ParseHello(bad).error().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseHello(EncodeHello(HelloMode::kBackup, {"ab", 1}) + "c").error().code(),
            StatusCode::kCorruption);
}

// The identity parser on its own: every malformed form is kCorruption, before any length in
// it is trusted.
TEST(IdentityTest, MalformedIdentitiesAreRefused) {
  const std::string good = EncodeNodeIdentity({"mysql-1", 1});
  ASSERT_EQ(good, std::string("\x07mysql-1\x01\0\0\0\x01", 13));
  ASSERT_TRUE(ParseNodeIdentity(good));
  EXPECT_EQ(*ParseNodeIdentity(std::string("\0\0", 2)), NodeIdentity{});
  const std::vector<std::string> malformed = {
      "",                                          // nothing
      std::string("\0", 1),                        // no ordinal flag
      std::string("\x07mysql-1", 8),               // no ordinal flag after the name
      std::string("\x08mysql-1\x01", 9),           // a name longer than the bytes
      std::string("\x07mysql 1\0", 9),             // a space in the name
      std::string("\x07mysql-1\x02", 9),           // an unknown flag
      std::string("\x07mysql-1\x01\0\0\x01", 12),  // a short ordinal
      good + "x",                                  // trailing bytes
      std::string("\x07mysql-1\0\0\0\0\x01", 13),  // an ordinal without the flag
      std::string(1, static_cast<char>(kMaxNodeName + 1)) + std::string(kMaxNodeName + 1, 'a') +
          std::string("\0", 1),  // a name over the limit
  };
  for (const auto& bytes : malformed) {
    auto parsed = ParseNodeIdentity(bytes);
    ASSERT_FALSE(parsed) << "accepted " << ::testing::PrintToString(bytes);
    EXPECT_EQ(parsed.error().code(), StatusCode::kCorruption);
  }
}

TEST(IdentityTest, TextNamesWhatIsKnown) {
  EXPECT_EQ(NodeIdentityText({"mysql-2", 2}), "mysql-2 (ordinal 2)");
  EXPECT_EQ(NodeIdentityText({"mysql-2", std::nullopt}), "mysql-2 (no ordinal)");
  EXPECT_EQ(NodeIdentityText({"", 2}), "ordinal 2");
  EXPECT_EQ(NodeIdentityText({}), "a node with no identity");
}

TEST(ChallengeTest, RoundTripAndMalformedIdentity) {
  Nonce nonce = Filled(7);
  auto challenge = ParseChallenge(EncodeChallenge(nonce, {"mysql-1", 1}));
  ASSERT_TRUE(challenge) << challenge.error().ToString();
  EXPECT_EQ(challenge->server_nonce, nonce);
  EXPECT_EQ(challenge->server, (NodeIdentity{"mysql-1", 1}));
  challenge = ParseChallenge(EncodeChallenge(nonce));
  ASSERT_TRUE(challenge);
  EXPECT_EQ(challenge->server, NodeIdentity{});
  // A version 2 CHALLENGE (the bare nonce), a short one, one with a bad name or a tail.
  EXPECT_EQ(ParseChallenge(std::string(kNonceSize, 'n')).error().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseChallenge(std::string(kNonceSize - 1, 'n')).error().code(),
            StatusCode::kCorruption);
  std::string bad = EncodeChallenge(nonce, {"mysql-1", 1});
  bad[kNonceSize + 3] = '\n';
  EXPECT_EQ(ParseChallenge(bad).error().code(), StatusCode::kCorruption);
  EXPECT_EQ(
      ParseChallenge(EncodeChallenge(nonce, {"mysql-1", 1}) + std::string(1, '\0')).error().code(),
      StatusCode::kCorruption);
}

TEST(FramingTest, HeaderRoundTrip) {
  auto raw = EncodeFrameHeader(FrameType::kData, 0x01020304 & (kMaxDataPayload - 1));
  auto h = DecodeFrameHeader(raw);
  ASSERT_TRUE(h) << h.error().ToString();
  EXPECT_EQ(h->type, FrameType::kData);
  EXPECT_EQ(h->length, 0x01020304u & (kMaxDataPayload - 1));
  EXPECT_EQ(raw[1], 0x00);  // big-endian
}

TEST(FramingTest, UnknownTypeIsCorruption) {
  std::array<uint8_t, kFrameHeaderSize> raw = {0, 0, 0, 0, 1};
  EXPECT_EQ(DecodeFrameHeader(raw).error().code(), StatusCode::kCorruption);
  raw[0] = 11;  // 10 is ZDATA since version 4
  EXPECT_EQ(DecodeFrameHeader(raw).error().code(), StatusCode::kCorruption);
}

TEST(FramingTest, OversizedControlFrameRejectedBeforeAllocation) {
  auto raw = EncodeFrameHeader(FrameType::kHeader, kMaxControlPayload + 1);
  auto h = DecodeFrameHeader(raw);
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code(), StatusCode::kCorruption);
  EXPECT_NE(h.error().message().find("HEADER"), std::string::npos);
  EXPECT_TRUE(DecodeFrameHeader(EncodeFrameHeader(FrameType::kData, kMaxDataPayload)));
  EXPECT_FALSE(DecodeFrameHeader(EncodeFrameHeader(FrameType::kData, kMaxDataPayload + 1)));
}

TEST(FramingTest, EncodeFrameCarriesPayload) {
  std::string f = EncodeFrame(FrameType::kError, "abc");
  ASSERT_EQ(f.size(), kFrameHeaderSize + 3);
  EXPECT_EQ(f.substr(kFrameHeaderSize), "abc");
  EXPECT_EQ(static_cast<uint8_t>(f[4]), 3);
}

TEST(HelloTest, RoundTripAndVersionMismatch) {
  auto mode = CheckHello(EncodeHello());
  ASSERT_TRUE(mode) << mode.error().ToString();
  EXPECT_EQ(*mode, HelloMode::kBackup);
  std::string h = EncodeHello();
  h[kHelloMagic.size() + 1] = 1;  // version 1: untagged frames
  EXPECT_EQ(CheckHello(h).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckHello("GET / HTTP/1.1\r\n").error().code(), StatusCode::kCorruption);
}

// A version 2 client's HELLO, byte for byte: refused for its version (the server answers
// ERROR protocol), not parsed as a version 3 one.
TEST(HelloTest, VersionTwoHelloIsRefusedForItsVersion) {
  std::string v2 = std::string(kHelloMagic) + std::string("\0\x02\x01\x07mysql-2", 11);
  auto hello = ParseHello(v2);
  ASSERT_FALSE(hello);
  EXPECT_EQ(hello.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(hello.error().message().find("protocol version 2, this server speaks 3"),
            std::string::npos)
      << hello.error().message();
}

TEST(HelloTest, ModeIsRequiredAndChecked) {
  auto probe = CheckHello(EncodeHello(HelloMode::kProbe));
  ASSERT_TRUE(probe);
  EXPECT_EQ(*probe, HelloMode::kProbe);
  // Version 2 let a HELLO end after the version (a backup); version 3 wants every field.
  std::string bare = std::string(kHelloMagic) + std::string("\0\x03", 2);
  EXPECT_EQ(CheckHello(bare).error().code(), StatusCode::kCorruption);
  EXPECT_EQ(CheckHello(bare + std::string(1, '\0')).error().code(), StatusCode::kCorruption);
  std::string unknown = EncodeHello();
  unknown[kHelloMagic.size() + 2] = 7;
  EXPECT_EQ(CheckHello(unknown).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckHello(EncodeHello() + "x").error().code(), StatusCode::kCorruption);
}

TEST(HelloTest, ChannelBindingChangesBothMacs) {
  Session a, b;
  a.binding.assign(kChannelBindingSize, 0);
  b.binding = a.binding;
  b.binding[31] = 1;
  Session none;
  EXPECT_TRUE(MacEqual(ClientMac("k", a.View()), ClientMac("k", a.View())));
  EXPECT_FALSE(MacEqual(ClientMac("k", a.View()), ClientMac("k", b.View())));
  EXPECT_FALSE(MacEqual(ClientMac("k", a.View()), ClientMac("k", none.View())));
  EXPECT_FALSE(MacEqual(ServerMac("k", a.View()), ServerMac("k", b.View())));
}

TEST(ProbeInfoTest, RoundTrip) {
  ProbeInfo info;
  info.flavour = "mariadb";
  info.server_version = "10.11.19-MariaDB";
  info.tool = "mariabackup";
  info.busy = true;
  info.active = 1;
  info.max_concurrent = 1;
  auto back = DecodeProbeInfo(EncodeProbeInfo(info));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->server_version, info.server_version);
  EXPECT_TRUE(back->busy);
  EXPECT_EQ(back->max_concurrent, 1);
  EXPECT_EQ(DecodeProbeInfo("{").error().code(), StatusCode::kCorruption);
}

TEST(ProbeInfoTest, ClusterPositionRoundTrips) {
  ProbeInfo info;
  info.flavour = "mariadb";
  info.server_version = "10.11.19-MariaDB";
  info.tool = "mariabackup";
  info.cluster_id = "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
  info.has_data = true;
  info.role = "replica";
  info.gtid_binlog_state = "0-100-57,0-101-2";
  info.gtid_current_pos = "0-100-57";
  auto back = DecodeProbeInfo(EncodeProbeInfo(info));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->cluster_id, info.cluster_id);
  EXPECT_TRUE(back->has_data);
  EXPECT_EQ(back->role, "replica");
  EXPECT_EQ(back->gtid_binlog_state, info.gtid_binlog_state);
  EXPECT_EQ(back->gtid_current_pos, info.gtid_current_pos);
  EXPECT_FALSE(back->ready);
  EXPECT_FALSE(back->diverged);

  info.ready = false;
  info.diverged = true;
  info.not_ready_reason = "holds 0-102-1, which the primary lacks";
  back = DecodeProbeInfo(EncodeProbeInfo(info));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_TRUE(back->diverged);
  EXPECT_EQ(back->not_ready_reason, info.not_ready_reason);
  info.ready = true;
  info.diverged = false;
  back = DecodeProbeInfo(EncodeProbeInfo(info));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_TRUE(back->ready);

  info.flavour = "mysql";
  info.gtid_binlog_state = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7";
  info.gtid_current_pos = info.gtid_binlog_state;
  back = DecodeProbeInfo(EncodeProbeInfo(info));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->gtid_binlog_state, info.gtid_binlog_state);
}

TEST(ProbeInfoTest, OlderPeersWithoutClusterPositionDecode) {
  auto back = DecodeProbeInfo(
      R"({"flavour":"mariadb","server_version":"10.11.19-MariaDB","tool":"mariabackup",)"
      R"("busy":false})");
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->cluster_id, "");
  EXPECT_FALSE(back->has_data);
  EXPECT_EQ(back->role, "");
  EXPECT_EQ(back->gtid_binlog_state, "");
}

// A hostile (if authenticated) peer: every field the recovery decides by has its one form.
TEST(ProbeInfoTest, RefusesMalformedClusterPosition) {
  auto with = [](const std::string& field, const std::string& json_value) {
    return R"({"flavour":"mariadb","server_version":"10.11.19-MariaDB","tool":"mariabackup",)"
           R"("busy":false,")" +
           field + "\":" + json_value + "}";
  };
  for (const auto& payload : {
           with("cluster_id", R"("not-a-uuid")"),
           with("cluster_id", R"("0F8E2C1A-3B4D-4E5F-8A9B-0C1D2E3F4A5B")"),  // upper case
           with("cluster_id", "42"),
           with("role", R"("leader")"),
           with("has_data", R"("yes")"),
           with("ready", R"("true")"),
           with("diverged", "1"),
           with("not_ready_reason", "\"" + std::string(kMaxProbeReason + 1, 'x') + "\""),
           with("gtid_binlog_state", R"("0-100-57; DROP TABLE t")"),
           with("gtid_current_pos", R"("0-100")"),
           with("gtid_binlog_state", "\"0-100-" + std::string(kMaxGtidText, '1') + "\""),
       }) {
    auto decoded = DecodeProbeInfo(payload);
    ASSERT_FALSE(decoded) << payload;
    EXPECT_EQ(decoded.error().code(), StatusCode::kCorruption) << payload;
  }
  // A GTID state needs a flavour to be read by.
  auto unknown = DecodeProbeInfo(
      R"({"flavour":"oracle","server_version":"1","tool":"t","busy":false,)"
      R"("gtid_binlog_state":"0-1-2"})");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), StatusCode::kCorruption);
}

TEST(HeaderTest, CarriesTheClusterId) {
  StreamHeader h;
  h.flavour = "mariadb";
  h.cluster_id = "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
  auto d = DecodeStreamHeader(EncodeStreamHeader(h));
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ(d->cluster_id, h.cluster_id);
  h.cluster_id = "../../etc/passwd";
  auto bad = DecodeStreamHeader(EncodeStreamHeader(h));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), StatusCode::kCorruption);
  // An older donor sends none.
  auto old = DecodeStreamHeader(
      R"({"protocol":2,"flavour":"mariadb","server_version":"v","tool":"t","tool_version":"v",)"
      R"("estimated_bytes":0})");
  ASSERT_TRUE(old) << old.error().ToString();
  EXPECT_EQ(old->cluster_id, "");
}

TEST(HeaderTest, RoundTrip) {
  StreamHeader h;
  h.flavour = "mariadb";
  h.server_version = "10.11.19-MariaDB";
  h.tool = "mariabackup";
  h.tool_version = "mariabackup based on MariaDB server 10.11.19-MariaDB";
  h.estimated_bytes = 5'000'000'000ULL;
  auto d = DecodeStreamHeader(EncodeStreamHeader(h));
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ(d->server_version, h.server_version);
  EXPECT_EQ(d->estimated_bytes, h.estimated_bytes);
  EXPECT_EQ(d->protocol, kProtocolVersion);
  EXPECT_EQ(d->run_id, 0u);
  h.run_id = 7;
  h.run_receivers = 4;
  d = DecodeStreamHeader(EncodeStreamHeader(h));
  ASSERT_TRUE(d) << d.error().ToString();
  EXPECT_EQ(d->run_id, 7u);
  EXPECT_EQ(d->run_receivers, 4u);
  // A donor that does not name its run: both 0; a wrong type is refused.
  auto old = DecodeStreamHeader(
      R"({"protocol":2,"flavour":"mariadb","server_version":"10.11.6","tool":"mariabackup",)"
      R"("tool_version":"x","estimated_bytes":1})");
  ASSERT_TRUE(old) << old.error().ToString();
  EXPECT_EQ(old->run_receivers, 0u);
  EXPECT_FALSE(DecodeStreamHeader(
      R"({"protocol":2,"flavour":"mariadb","server_version":"10.11.6","tool":"mariabackup",)"
      R"("tool_version":"x","estimated_bytes":1,"run_receivers":"four"})"));
  EXPECT_EQ(DecodeStreamHeader("{\"protocol\":1}").error().code(), StatusCode::kCorruption);
  EXPECT_EQ(DecodeStreamHeader("not json").error().code(), StatusCode::kCorruption);
}

TEST(TrailerTest, OkNeedsExitZeroAndCompletedOk) {
  StreamTrailer t;
  t.exit_code = 0;
  t.last_line = "[00] 2026-11-25 13:00:00 completed OK!";
  t.bytes = 42;
  auto d = DecodeStreamTrailer(EncodeStreamTrailer(t));
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->ok());
  EXPECT_EQ(d->bytes, 42u);
  t.exit_code = 1;
  EXPECT_FALSE(t.ok());
  t.exit_code = 0;
  t.signal = 9;
  EXPECT_FALSE(t.ok());
  t.signal = 0;
  t.last_line = "Error: SHOW MASTER STATUS: Access denied";
  EXPECT_FALSE(t.ok());
}

TEST(TrailerTest, InvalidUtf8InLastLineStillEncodes) {
  StreamTrailer t;
  t.last_line = std::string("bad \xff\xfe bytes");
  EXPECT_TRUE(DecodeStreamTrailer(EncodeStreamTrailer(t)));
}

TEST(HeaderTest, InvalidUtf8InAVersionStillEncodes) {
  StreamHeader h;
  h.tool_version = std::string("mariabackup \xc3\x28 10.11");
  auto decoded = DecodeStreamHeader(EncodeStreamHeader(h));
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_NE(decoded->tool_version.find("10.11"), std::string::npos);
  auto bad = DecodeStreamHeader(R"({"protocol": 1})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.error().message().find("bad stream header"), std::string::npos);
}

TEST(ErrorMessageTest, RoundTripAndGarbage) {
  auto e = DecodeErrorMessage(EncodeErrorMessage({"busy", "1 running"}));
  EXPECT_EQ(e.code, "busy");
  EXPECT_EQ(e.message, "1 running");
  EXPECT_EQ(DecodeErrorMessage("}{").code, "unknown");
}

TEST(VersionTest, MajorMinor) {
  EXPECT_EQ(MajorMinor("10.11.19-MariaDB-0+deb12u1"), "10.11");
  EXPECT_EQ(MajorMinor("mariabackup based on MariaDB server 10.11.19-MariaDB Linux (x86_64)"),
            "10.11");
  EXPECT_EQ(MajorMinor("xtrabackup version 8.0.35-30 based on MySQL server 8.0.35"), "8.0");
  EXPECT_EQ(MajorMinor("8.4.0"), "8.4");
  EXPECT_EQ(MajorMinor("x86_64 v2"), std::nullopt);
  EXPECT_EQ(MajorMinor(""), std::nullopt);
}

}  // namespace
}  // namespace replboot::clone

namespace replboot::clone {
namespace {

// Version 4: the compression request rides at the end of the HELLO; a receiver that asks for
// none still sends the version 3 HELLO every donor takes.
TEST(CompressHelloTest, VersionFourCarriesTheRequestAndOffStaysVersionThree) {
  const std::string off = EncodeHello(HelloMode::kBackup, {"mysql-2", 2});
  EXPECT_EQ(static_cast<uint8_t>(off[kHelloMagic.size() + 1]), 3);
  auto parsed = ParseHello(off);
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(parsed->version, 3);
  EXPECT_EQ(parsed->compress, CompressRequest{});
  for (const CompressRequest& asked :
       {CompressRequest{CompressMode::kZstd, 1}, CompressRequest{CompressMode::kZstd, 19},
        CompressRequest{CompressMode::kAuto, 0}}) {
    const std::string hello = EncodeHello(HelloMode::kBackup, {"mysql-2", 2}, asked);
    EXPECT_EQ(static_cast<uint8_t>(hello[kHelloMagic.size() + 1]), 4);
    EXPECT_EQ(hello.size(), off.size() + 2);
    parsed = ParseHello(hello);
    ASSERT_TRUE(parsed) << parsed.error().ToString();
    EXPECT_EQ(parsed->version, 4);
    EXPECT_EQ(parsed->compress, asked);
    EXPECT_EQ(parsed->client.name, "mysql-2");
    EXPECT_EQ(parsed->client.ordinal, 2);
    EXPECT_EQ(EncodeHello(parsed->mode, parsed->client, parsed->compress, std::nullopt,
                          parsed->version),
              hello);
  }
  // A version 4 HELLO asking for nothing is taken too (one encoding per version).
  parsed = ParseHello(EncodeHello(HelloMode::kProbe, {}, {}, std::nullopt, 4));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->version, 4);
}

// Found by parsers_fuzz (tests/fuzz/parsers_corpus/crash_compress_setting): fmt's {:?} of these
// bytes aborted the process; a setting or a HEADER naming them is an error like any other.
TEST(CompressSettingTest, HostileBytesAreNamedNotFatal) {
  const std::string hostile("\x05(\xb5/\xfd\x04H\x1dit_c)odees a datadir; \x01\x00\xd8replexit_", 40);
  auto parsed = ParseCompressSetting(hostile);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.error().message().find(R"("\x05(\xb5/\xfd\x04H\x1dit_c)odees a datadir; \x01\x00" is none)"),
            std::string::npos)
      << parsed.error().message();
  EXPECT_FALSE(ParseCompressSetting("zstd:" + hostile));
}

TEST(CompressHelloTest, MalformedRequestsAndOtherVersionsAreRefused) {
  const std::string good =
      EncodeHello(HelloMode::kBackup, {"ab", 1}, CompressRequest{CompressMode::kZstd, 3});
  auto bad = [&](size_t from_end, char value) {
    std::string h = good;
    h[h.size() - from_end] = value;
    return ParseHello(h);
  };
  EXPECT_EQ(bad(2, 3).error().code(), StatusCode::kCorruption);   // unknown compression
  EXPECT_EQ(bad(1, 0).error().code(), StatusCode::kCorruption);   // zstd at level 0
  EXPECT_EQ(bad(1, 20).error().code(), StatusCode::kCorruption);  // past 19
  std::string auto_level = EncodeHello(HelloMode::kBackup, {"ab", 1}, {CompressMode::kAuto, 0});
  auto_level.back() = 3;
  EXPECT_EQ(ParseHello(auto_level).error().code(), StatusCode::kCorruption);
  // Cut short or one byte long: the identity before the request no longer parses.
  EXPECT_EQ(ParseHello(good.substr(0, good.size() - 1)).error().code(), StatusCode::kCorruption);
  EXPECT_EQ(ParseHello(good + "x").error().code(), StatusCode::kCorruption);
  // A version 3 HELLO with a request appended is not a version 4 one.
  std::string v3_plus = EncodeHello(HelloMode::kBackup, {"ab", 1}) + std::string("\x01\x03", 2);
  EXPECT_EQ(ParseHello(v3_plus).error().code(), StatusCode::kCorruption);
  std::string v5 = good;
  v5[kHelloMagic.size() + 1] = 5;
  auto refused = ParseHello(v5);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("protocol version 5, this server speaks 3 and 4"),
            std::string::npos)
      << refused.error().message();
}

TEST(CompressSettingTest, StrictSpellings) {
  EXPECT_EQ(*ParseCompressSetting("off"), CompressRequest{});
  EXPECT_EQ(*ParseCompressSetting("auto"), (CompressRequest{CompressMode::kAuto, 0}));
  EXPECT_EQ(*ParseCompressSetting("zstd"), (CompressRequest{CompressMode::kZstd, 1}));
  EXPECT_EQ(*ParseCompressSetting("zstd:12"), (CompressRequest{CompressMode::kZstd, 12}));
  for (const char* bad : {"", "zstd:", "zstd:0", "zstd:20", "zstd:03", "zstd:-1", "Zstd", "lz4"}) {
    EXPECT_FALSE(ParseCompressSetting(bad)) << bad;
  }
  EXPECT_EQ(CompressRequestText({CompressMode::kZstd, 7}), "zstd:7");
}

TEST(CompressHeaderTest, GrantRoundTripsAndIsChecked) {
  StreamHeader h;
  h.flavour = "mariadb";
  h.compression = "auto";
  h.compression_level = 3;
  auto decoded = DecodeStreamHeader(EncodeStreamHeader(h));
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_EQ(decoded->compression, "auto");
  EXPECT_EQ(decoded->compression_level, 3);
  // An older donor's HEADER has no grant: off.
  nlohmann::json old = nlohmann::json::parse(EncodeStreamHeader(StreamHeader{}));
  old.erase("compression");
  old.erase("compression_level");
  decoded = DecodeStreamHeader(old.dump());
  ASSERT_TRUE(decoded) << decoded.error().ToString();
  EXPECT_EQ(decoded->compression, "off");
  for (auto [mode, level] : {std::pair<const char*, int>{"zstd", 0}, {"zstd", 4}, {"lz4", 1},
                             {"off", 1}, {"auto", 0}}) {
    StreamHeader b;
    b.compression = mode;
    b.compression_level = level;
    EXPECT_FALSE(DecodeStreamHeader(EncodeStreamHeader(b))) << mode << level;
  }
  auto grant = [](const char* mode, int level) {
    StreamHeader g;
    g.compression = mode;
    g.compression_level = level;
    return g;
  };
  const CompressRequest off{}, autoc{CompressMode::kAuto, 0}, z1{CompressMode::kZstd, 1},
      z9{CompressMode::kZstd, 9};
  EXPECT_TRUE(CheckGrant(grant("off", 0), off).ok());
  EXPECT_TRUE(CheckGrant(grant("off", 0), autoc).ok());
  EXPECT_TRUE(CheckGrant(grant("zstd", 3), z9).ok());
  EXPECT_TRUE(CheckGrant(grant("zstd", 1), autoc).ok());
  EXPECT_TRUE(CheckGrant(grant("auto", 3), autoc).ok());
  EXPECT_EQ(CheckGrant(grant("zstd", 1), off).code(), StatusCode::kCorruption);
  EXPECT_EQ(CheckGrant(grant("zstd", 3), z1).code(), StatusCode::kCorruption);
  EXPECT_EQ(CheckGrant(grant("auto", 3), z9).code(), StatusCode::kCorruption);
  Status s = CheckGrant(grant("auto", 3), off);
  EXPECT_NE(s.message().find("granted compression auto at level 3, but off was asked"),
            std::string::npos)
      << s.message();
}

TEST(CompressHeaderTest, ZDataFramesAreBoundedLikeData) {
  auto ok = DecodeFrameHeader(EncodeFrameHeader(FrameType::kZData, kMaxDataPayload));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->type, FrameType::kZData);
  EXPECT_FALSE(DecodeFrameHeader(EncodeFrameHeader(FrameType::kZData, kMaxDataPayload + 1)));
  EXPECT_FALSE(DecodeFrameHeader(EncodeFrameHeader(static_cast<FrameType>(11), 1)));
  EXPECT_EQ(FrameTypeName(FrameType::kZData), "ZDATA");
}

}  // namespace
}  // namespace replboot::clone
