#include "crc32.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <vector>

namespace replboot::backup {
namespace {

uint32_t ZlibCrc(uint32_t crc, const uint8_t* p, size_t n) {
  return static_cast<uint32_t>(crc32(crc, p, static_cast<uInt>(n)));
}

TEST(Crc32, KnownVectors) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc32(0, reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xCBF43926u);
  EXPECT_EQ(Crc32(0, nullptr, 0), 0u);
}

// Every length 0..600 at every alignment 0..15, and continuation across splits,
// against zlib: the fast path must be bit-for-bit zlib's crc32().
TEST(Crc32, MatchesZlibForAllLengthsAndAlignments) {
  std::mt19937 rng(42);
  std::vector<uint8_t> buf(700);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t align = 0; align < 16; ++align) {
    for (size_t len = 0; len + align <= 616; ++len) {
      ASSERT_EQ(Crc32(0, buf.data() + align, len), ZlibCrc(0, buf.data() + align, len))
          << "len " << len << " align " << align;
    }
  }
  for (size_t split = 0; split <= 700; split += 7) {
    uint32_t c = Crc32(0, buf.data(), split);
    c = Crc32(c, buf.data() + split, buf.size() - split);
    ASSERT_EQ(c, ZlibCrc(0, buf.data(), buf.size())) << "split " << split;
  }
}

TEST(Crc32, MatchesZlibOnLargeBuffers) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> buf((8u << 20) + 13);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  EXPECT_EQ(Crc32(0, buf.data(), buf.size()), ZlibCrc(0, buf.data(), buf.size()));
  EXPECT_EQ(Crc32(0x12345678, buf.data() + 3, buf.size() - 3),
            ZlibCrc(0x12345678, buf.data() + 3, buf.size() - 3));
}

}  // namespace
}  // namespace replboot::backup
