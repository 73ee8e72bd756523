// Compression on the wire, piece by piece: the chunk compressor, the receiver's bounded
// decompressor (every refusal by name), `auto`'s rule and the donor's grant.
#include "wire_compression.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <string>
#include <vector>

namespace replboot::clone {
namespace {

using std::chrono::milliseconds;

std::vector<uint8_t> Text(size_t n) {
  std::vector<uint8_t> out(n);
  const std::string words = "replboot clones a datadir over its own protocol; ";
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(words[(i * 7 + i / 97) % words.size()]);
  return out;
}

// A zstd frame made outside the donor's compressor, with the knobs a hostile donor could turn.
std::vector<uint8_t> RawZstd(const std::vector<uint8_t>& in, bool content_size, int window_log = 0) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size ? 1 : 0);
  if (window_log > 0) ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
  std::vector<uint8_t> out(ZSTD_compressBound(in.size()));
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  // Streaming, so the content size is unknown to the frame when content_size is off.
  while (ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end) != 0) {
  }
  out.resize(ob.pos);
  ZSTD_freeCCtx(c);
  return out;
}

TEST(ChunkCompressorTest, RoundTripsAndSendsIncompressibleChunksAsTheyAre) {
  auto compressor = ChunkCompressor::Create();
  ASSERT_TRUE(compressor);
  auto decompressor = FrameDecompressor::Create();
  ASSERT_TRUE(decompressor);
  const std::vector<uint8_t> chunk = Text(kMaxFrameContent);
  for (int level : {1, 3}) {
    std::vector<uint8_t> room(kMaxFrameContent);
    auto n = compressor->Compress(level, chunk, room);
    ASSERT_TRUE(n) << n.error().ToString();
    ASSERT_GT(*n, 0u);
    EXPECT_LT(*n, chunk.size() / 2);
    room.resize(*n);
    std::vector<uint8_t> out;
    Status s = decompressor->Decompress(room, 0, &out);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(out, chunk);
  }
  // Random bytes do not shrink: 0, the chunk goes as a DATA frame.
  std::vector<uint8_t> noise(64 << 10);
  uint32_t x = 12345;
  for (auto& b : noise) b = static_cast<uint8_t>((x = x * 1103515245 + 12345) >> 24);
  std::vector<uint8_t> room(noise.size());
  auto n = compressor->Compress(1, noise, room);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
}

TEST(FrameDecompressorTest, FramePastTheBoundIsRefusedByName) {
  auto d = FrameDecompressor::Create();
  ASSERT_TRUE(d);
  const std::vector<uint8_t> big(kMaxFrameContent + 1, 'z');
  std::vector<uint8_t> out;
  // It says so in its header: refused before anything is decompressed.
  Status s = d->Decompress(RawZstd(big, true), 7, &out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("ZDATA frame #7"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("decompresses past 1048576 bytes"), std::string::npos) << s.message();
  // It does not say, and keeps to the window a donor may use (a larger one is refused as
  // such, below): refused once the output would pass the bound, with no more allocated.
  std::vector<uint8_t> bomb(64u << 20, 0);
  const std::vector<uint8_t> compressed = RawZstd(bomb, false, kMaxWindowLog);
  ASSERT_LT(compressed.size(), 16u << 10);  // 64 MiB in a few KiB: a zip bomb
  out.clear();
  out.shrink_to_fit();
  s = d->Decompress(compressed, 8, &out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("ZDATA frame #8"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("decompresses past 1048576 bytes"), std::string::npos) << s.message();
  EXPECT_LE(out.capacity(), kMaxFrameContent);
  // Exactly at the bound passes, after the refusals (the context was reset).
  const std::vector<uint8_t> full = Text(kMaxFrameContent);
  s = d->Decompress(RawZstd(full, false), 9, &out);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(out, full);
}

TEST(FrameDecompressorTest, TruncatedFrameIsRefused) {
  auto d = FrameDecompressor::Create();
  ASSERT_TRUE(d);
  std::vector<uint8_t> frame = RawZstd(Text(200'000), true);
  for (size_t cut : {size_t{1}, size_t{3}, frame.size() / 2}) {
    std::vector<uint8_t> part(frame.begin(), frame.end() - static_cast<ptrdiff_t>(cut));
    std::vector<uint8_t> out;
    Status s = d->Decompress(part, 3, &out);
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << cut;
    EXPECT_NE(s.message().find("ends inside a zstd frame (truncated)"), std::string::npos)
        << cut << ": " << s.message();
  }
  std::vector<uint8_t> out;
  EXPECT_TRUE(d->Decompress(frame, 4, &out).ok());
}

TEST(FrameDecompressorTest, GarbageEmptyAndHugeWindowsAreRefused) {
  auto d = FrameDecompressor::Create();
  ASSERT_TRUE(d);
  std::vector<uint8_t> out;
  Status s = d->Decompress({}, 0, &out);
  EXPECT_NE(s.message().find("is empty"), std::string::npos) << s.message();
  const std::vector<uint8_t> garbage = Text(1000);
  s = d->Decompress(garbage, 1, &out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("is not a valid zstd frame"), std::string::npos) << s.message();
  // A frame that asks for a 16 MiB window (no content size: the window stays as asked).
  s = d->Decompress(RawZstd(Text(4 << 20), false, 24), 2, &out);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("ZDATA frame #2"), std::string::npos) << s.message();
  // Two whole frames in one payload are taken (zstd concatenates them), within the bound.
  std::vector<uint8_t> two = RawZstd(Text(1000), true);
  const std::vector<uint8_t> second = RawZstd(Text(500), true);
  two.insert(two.end(), second.begin(), second.end());
  ASSERT_TRUE(d->Decompress(two, 3, &out).ok());
  EXPECT_EQ(out.size(), 1500u);
}

WindowMeasure Window(int blocked_ms, int compressing_ms, int receiver_ms) {
  return {milliseconds(1000), milliseconds(blocked_ms), milliseconds(compressing_ms),
          milliseconds(receiver_ms)};
}

TEST(AutoLevelTest, LinkBoundClimbsCompressorBoundFallsAndHolds) {
  AutoLevel a(3);
  EXPECT_EQ(a.level(), 0);  // a run starts off
  EXPECT_EQ(a.Next(Window(900, 0, 0)).reason, "link-bound");
  EXPECT_EQ(a.level(), 1);
  EXPECT_EQ(a.Next(Window(600, 300, 0)).level, 3);
  // The compressor now sets the pace: down to 1, and 3 is not tried again for a while.
  auto d = a.Next(Window(0, 900, 0));
  EXPECT_EQ(d.level, 1);
  EXPECT_EQ(d.reason, "compressor-bound");
  for (int i = 0; i < kAutoHoldWindows - 1; ++i) {
    EXPECT_EQ(a.Next(Window(900, 200, 0)).level, 1) << i;
  }
  EXPECT_EQ(a.Next(Window(900, 200, 0)).level, 3);
}

TEST(AutoLevelTest, ToolBoundKeepsAndReceiverBoundFalls) {
  AutoLevel a(3);
  // The tool sets the pace (the producer waits for it): nothing to gain, nothing changes.
  EXPECT_EQ(a.Next(Window(0, 0, 0)).level, 0);
  EXPECT_EQ(a.Next(Window(500, 0, 0)).level, 1);
  EXPECT_EQ(a.Next(Window(0, 300, 0)).level, 1);
  EXPECT_TRUE(a.Next(Window(0, 300, 0)).reason.empty());
  // Blocked, but the receiver's window held TCP: the receiver, not the link.
  auto d = a.Next(Window(900, 100, 800));
  EXPECT_EQ(d.level, 0);
  EXPECT_EQ(d.reason, "receiver-bound");
  EXPECT_EQ(a.Next(Window(900, 0, 800)).level, 0);
  // A grant up to 1 never goes to 3.
  AutoLevel one(1);
  EXPECT_EQ(one.Next(Window(900, 0, 0)).level, 1);
  EXPECT_EQ(one.Next(Window(900, 0, 0)).level, 1);
}

TEST(GrantTest, OneModeForTheRunWithinTheBudget) {
  const CompressRequest off{}, autoc{CompressMode::kAuto, 0}, z9{CompressMode::kZstd, 9},
      z1{CompressMode::kZstd, 1};
  EXPECT_EQ(DecideGrant({off}, 4, 2).mode, "off");
  EXPECT_EQ(DecideGrant({off}, 4, 2).reason, "not asked");
  Grant g = DecideGrant({z9}, 4, 2);
  EXPECT_EQ(g.mode, "zstd");
  EXPECT_EQ(g.level, kMaxGrantedLevel);
  g = DecideGrant({autoc}, 4, 2);
  EXPECT_EQ(g.mode, "auto");
  EXPECT_EQ(g.level, kMaxGrantedLevel);
  g = DecideGrant({autoc, z1}, 4, 2);
  EXPECT_EQ(g.mode, "zstd");
  EXPECT_EQ(g.level, 1);
  g = DecideGrant({autoc, off}, 4, 2);
  EXPECT_EQ(g.mode, "off");
  EXPECT_NE(g.reason.find("shared run"), std::string::npos) << g.reason;
  g = DecideGrant({autoc}, 2, 2);
  EXPECT_EQ(g.mode, "off");
  EXPECT_NE(g.reason.find("--parallel=2 takes all 2 CPUs"), std::string::npos) << g.reason;
}

}  // namespace
}  // namespace replboot::clone
