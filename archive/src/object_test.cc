#include "replboot/archive/object.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_frameHeaderSize
#include <zstd.h>

#include <random>

#include "memory_store_test_util.h"
#include "object_internal.h"

namespace replboot::archive {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kId = "20261207T061500Z";
const BackupKey& Key() {
  static const BackupKey key = KeyFromSecret("object test secret 0123456789abcdef0123456789");
  return key;
}

std::vector<uint8_t> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

std::vector<uint8_t> Seal(std::span<const uint8_t> plaintext, uint64_t index = 3) {
  auto sealed = SealObject(Key(), kId, index, plaintext, 1);
  EXPECT_TRUE(sealed.has_value()) << sealed.error().ToString();
  return sealed ? *sealed : std::vector<uint8_t>();
}

void ExpectCorrupt(const Result<std::vector<uint8_t>>& opened, std::string_view reason,
                   uint64_t index = 3) {
  ASSERT_FALSE(opened.has_value()) << "opened although " << reason;
  EXPECT_EQ(opened.error().code(), StatusCode::kCorruption);
  EXPECT_THAT(opened.error().message(),
              HasSubstr(fmt::format("object {} of backup {}: ", index, kId)));
  EXPECT_THAT(opened.error().message(), HasSubstr(reason));
}

TEST(Object, RoundTripsAnySize) {
  for (size_t n : {0, 1, 100, 4096, 65537}) {
    for (auto plaintext : {Random(n, 1), testing::SysbenchLikeBytes(n, 2)}) {
      auto sealed = Seal(plaintext);
      auto opened = OpenObject(Key(), kId, 3, sealed, 65537);
      ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
      EXPECT_EQ(*opened, plaintext);
      EXPECT_LE(sealed.size(), MaxStoredBytes(n));
    }
  }
}

TEST(Object, LayoutIsTheDocumentedOne) {
  auto plaintext = testing::SysbenchLikeBytes(50000, 3);
  auto sealed = Seal(plaintext);
  ASSERT_GE(sealed.size(), kObjectHeaderBytes + kObjectTagBytes);
  EXPECT_EQ(std::string(sealed.begin(), sealed.begin() + 4), "RBAO");
  EXPECT_EQ(sealed[4], 1);
  uint64_t logical = 0;
  for (int i = 7; i >= 0; --i) logical = (logical << 8) | sealed[5 + i];
  EXPECT_EQ(logical, 50000u);
  // Compressed: sysbench-like pages shrink.
  EXPECT_LT(sealed.size(), plaintext.size() * 3 / 4);
}

TEST(Object, EverySealHasItsOwnNonce) {
  auto plaintext = Random(1000, 4);
  auto a = Seal(plaintext), b = Seal(plaintext);
  EXPECT_NE(std::vector<uint8_t>(a.begin() + 13, a.begin() + 25),
            std::vector<uint8_t>(b.begin() + 13, b.begin() + 25));
  EXPECT_NE(a, b);
}

// Each byte changed, wherever it is, is detected and named.
TEST(Object, EveryChangedByteIsDetected) {
  auto sealed = Seal(testing::SysbenchLikeBytes(3000, 5));
  for (size_t i = 0; i < sealed.size(); ++i) {
    auto changed = sealed;
    changed[i] ^= 0x01;
    auto opened = OpenObject(Key(), kId, 3, changed, 1 << 20);
    // A changed logical size may first exceed the limit; anything else fails the tag.
    const bool too_large = i >= 5 && i < 13 && (3000 ^ (uint64_t{1} << (8 * (i - 5)))) > (1 << 20);
    std::string_view reason = i < 4    ? "bad magic"
                              : i == 4 ? "unknown object version"
                              : too_large
                                  ? "over the limit of 1048576 bytes"
                                  : "authentication failed: changed, or sealed with another key";
    ExpectCorrupt(opened, reason);
  }
}

TEST(Object, TruncatedOrExtendedIsDetected) {
  auto sealed = Seal(Random(500, 6));
  for (size_t n = 0; n < sealed.size(); ++n) {
    auto opened = OpenObject(Key(), kId, 3, std::span(sealed).first(n), 1 << 20);
    ExpectCorrupt(opened, n < 4 ? "bad magic" : n < 41 ? "truncated" : "authentication failed");
  }
  auto longer = sealed;
  longer.push_back(0);
  ExpectCorrupt(OpenObject(Key(), kId, 3, longer, 1 << 20), "authentication failed");
}

TEST(Object, OpensOnlyAsTheObjectItWasSealedAs) {
  auto sealed = Seal(Random(500, 7), 3);
  ExpectCorrupt(OpenObject(Key(), kId, 4, sealed, 1 << 20), "authentication failed", 4);
  ExpectCorrupt(OpenObject(Key(), kId, 2, sealed, 1 << 20), "authentication failed", 2);
  auto other_backup = OpenObject(Key(), "20261207T061501Z", 3, sealed, 1 << 20);
  ASSERT_FALSE(other_backup.has_value());
  EXPECT_THAT(other_backup.error().message(),
              HasSubstr("object 3 of backup 20261207T061501Z: authentication failed"));
  ExpectCorrupt(OpenObject(KeyFromSecret("another secret entirely, 0123456789abcdef"), kId, 3,
                           sealed, 1 << 20),
                "sealed with another key");
}

TEST(Object, LogicalSizeIsBoundedBeforeAnythingElse) {
  auto sealed = Seal(Random(5000, 8));
  ExpectCorrupt(OpenObject(Key(), kId, 3, sealed, 4999),
                "logical size 5000 over the limit of 4999");
  EXPECT_TRUE(OpenObject(Key(), kId, 3, sealed, 5000).has_value());
}

// What the tag lets through must still be exactly one zstd frame of the logical size: such
// objects only a key holder can make, so they are made here with the sealing primitive.
TEST(Object, ZstdDefectsBehindAValidTagAreNamed) {
  auto plaintext = testing::SysbenchLikeBytes(4000, 9);
  std::vector<uint8_t> frame(ZSTD_compressBound(plaintext.size()));
  frame.resize(ZSTD_compress(frame.data(), frame.size(), plaintext.data(), plaintext.size(), 1));

  auto good = internal::SealFrame(Key(), kId, 3, 4000, frame);
  ASSERT_TRUE(OpenObject(Key(), kId, 3, good, 4000).has_value());

  ExpectCorrupt(OpenObject(Key(), kId, 3, internal::SealFrame(Key(), kId, 3, 3999, frame), 4000),
                "size mismatch: the zstd frame holds 4000 bytes, the header says 3999");
  std::vector<uint8_t> junk(100, 0x42);
  ExpectCorrupt(OpenObject(Key(), kId, 3, internal::SealFrame(Key(), kId, 3, 100, junk), 4000),
                "zstd: not a frame with a content size");
  auto trailing = frame;
  trailing.insert(trailing.end(), 10, 0);
  ExpectCorrupt(OpenObject(Key(), kId, 3, internal::SealFrame(Key(), kId, 3, 4000, trailing), 4000),
                "not exactly one frame");
  // A frame whose first block has the reserved block type (content size intact): zstd's own
  // error.
  auto damaged = frame;
  size_t header = ZSTD_frameHeaderSize(damaged.data(), damaged.size());
  ASSERT_FALSE(ZSTD_isError(header));
  damaged[header] |= 0x06;
  ExpectCorrupt(OpenObject(Key(), kId, 3, internal::SealFrame(Key(), kId, 3, 4000, damaged), 4000),
                "zstd: ");
}

TEST(Object, RefusesABadZstdLevel) {
  auto sealed = SealObject(Key(), kId, 0, Random(10, 1), 1000);
  ASSERT_FALSE(sealed.has_value());
  EXPECT_EQ(sealed.error().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace replboot::archive
