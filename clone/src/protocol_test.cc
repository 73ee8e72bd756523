#include "replboot/clone/protocol.h"

#include <gtest/gtest.h>

namespace replboot::clone {
namespace {

Nonce Filled(uint8_t v) {
  Nonce n;
  n.fill(v);
  return n;
}

TEST(AuthTest, RightSecretMatches) {
  Nonce s = Filled(1), c = Filled(2);
  EXPECT_TRUE(MacEqual(ClientMac("secret", s, c), ClientMac("secret", s, c)));
  EXPECT_TRUE(MacEqual(ServerMac("secret", c, s), ServerMac("secret", c, s)));
}

TEST(AuthTest, WrongSecretFails) {
  Nonce s = Filled(1), c = Filled(2);
  EXPECT_FALSE(MacEqual(ClientMac("secret", s, c), ClientMac("secreT", s, c)));
  EXPECT_FALSE(MacEqual(ClientMac("secret", s, c), ClientMac("", s, c)));
}

TEST(AuthTest, TamperedNonceFails) {
  Nonce s = Filled(1), c = Filled(2);
  Mac good = ClientMac("secret", s, c);
  Nonce s2 = s;
  s2[17] ^= 0x01;
  EXPECT_FALSE(MacEqual(good, ClientMac("secret", s2, c)));
  Nonce c2 = c;
  c2[0] ^= 0x80;
  EXPECT_FALSE(MacEqual(good, ClientMac("secret", s, c2)));
}

TEST(AuthTest, ServerProofCannotBeReflectedAsClientResponse) {
  // Same nonces in swapped roles: the labels differ, so the MACs differ.
  Nonce a = Filled(3);
  EXPECT_FALSE(MacEqual(ClientMac("k", a, a), ServerMac("k", a, a)));
}

TEST(AuthTest, MacEqualRejectsLengthMismatch) {
  Mac m = ClientMac("k", Filled(1), Filled(2));
  EXPECT_FALSE(MacEqual(m, std::span<const uint8_t>(m.data(), m.size() - 1)));
}

TEST(AuthTest, NoncesAreFresh) {
  auto a = RandomNonce();
  auto b = RandomNonce();
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
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
  raw[0] = 10;
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
  h[kHelloMagic.size() + 1] = 2;
  EXPECT_EQ(CheckHello(h).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckHello("GET / HTTP/1.1\r\n").error().code(), StatusCode::kCorruption);
}

TEST(HelloTest, ProbeModeAndMissingModeMeansBackup) {
  auto probe = CheckHello(EncodeHello(HelloMode::kProbe));
  ASSERT_TRUE(probe);
  EXPECT_EQ(*probe, HelloMode::kProbe);
  // The first clients sent no mode byte: they asked for a backup.
  std::string old = EncodeHello();
  old.pop_back();
  auto mode = CheckHello(old);
  ASSERT_TRUE(mode);
  EXPECT_EQ(*mode, HelloMode::kBackup);
  std::string unknown = EncodeHello();
  unknown.back() = 7;
  EXPECT_EQ(CheckHello(unknown).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckHello(EncodeHello() + "x").error().code(), StatusCode::kCorruption);
}

TEST(HelloTest, ChannelBindingChangesBothMacs) {
  Nonce s{}, c{};
  s.fill(1);
  c.fill(2);
  std::array<uint8_t, kChannelBindingSize> a{}, b{};
  b[31] = 1;
  EXPECT_TRUE(MacEqual(ClientMac("k", s, c, a), ClientMac("k", s, c, a)));
  EXPECT_FALSE(MacEqual(ClientMac("k", s, c, a), ClientMac("k", s, c, b)));
  EXPECT_FALSE(MacEqual(ClientMac("k", s, c, a), ClientMac("k", s, c)));
  EXPECT_FALSE(MacEqual(ServerMac("k", c, s, a), ServerMac("k", c, s, b)));
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
