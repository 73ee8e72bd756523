#include "replboot/archive/keys.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "crypto.h"
#include "replboot/base/files.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::archive {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kSecret =
    "3f1c9a7e5b2d4f6081a3c5e7092b4d6f8e0a1c3e5f7092b4d6f8a0c2e4f6a8b0";

class KeyFileTest : public ::testing::Test {
 protected:
  std::string Write(std::string_view content) {
    std::string path = dir_.path() + "/backup.key";
    EXPECT_TRUE(files::WriteFileAtomic(path, content, 0600).ok());
    return path;
  }
  replboot::testing::TempDir dir_{"archive-keys"};
};

TEST(BackupKey, DerivationIsDeterministicAndNamesTheKey) {
  BackupKey a = KeyFromSecret(kSecret), b = KeyFromSecret(kSecret);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.id, b.id);
  EXPECT_TRUE(internal::IsLowerHex(a.id, 16)) << a.id;
  BackupKey other = KeyFromSecret(std::string(kSecret) + "x");
  EXPECT_NE(a.bytes, other.bytes);
  EXPECT_NE(a.id, other.id);
  // The id reveals nothing of the key: it is not a piece of it.
  EXPECT_THAT(internal::Hex(a.bytes), Not(HasSubstr(a.id)));
}

TEST(BackupKey, SubkeysDifferFromTheKeyAndEachOther) {
  BackupKey key = KeyFromSecret(kSecret);
  auto object_key = internal::ObjectKey(key), mac_key = internal::MacKey(key);
  EXPECT_NE(object_key, mac_key);
  EXPECT_NE(object_key, key.bytes);
  EXPECT_NE(mac_key, key.bytes);
}

// RFC 5869 test case 3 (no salt, no info): our HKDF is the standard one.
TEST(BackupKey, HkdfMatchesRfc5869) {
  std::vector<uint8_t> ikm(22, 0x0b);
  uint8_t okm[42];
  internal::Hkdf(ikm, "", okm);
  EXPECT_EQ(internal::Hex(okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
            "9d201395faa4b61a96c8");
}

TEST_F(KeyFileTest, TrailingNewlineIsTrimmed) {
  for (std::string suffix : {"", "\n", "\r\n"}) {
    auto key = LoadKeyFile(Write(std::string(kSecret) + suffix));
    ASSERT_TRUE(key.has_value()) << key.error().ToString();
    EXPECT_EQ(key->id, KeyFromSecret(kSecret).id);
    EXPECT_EQ(key->bytes, KeyFromSecret(kSecret).bytes);
  }
}

TEST_F(KeyFileTest, RefusesWeakContentNamingTheFileNotTheContent) {
  struct Case {
    std::string content;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"", "is empty"},
      {"\n", "is empty"},
      {"short-secret-123", "holds 16 characters, at least 32"},
      {std::string(64, 'a'), "placeholder"},
      {std::string(40, '0') + "\n", "placeholder"},
      {"changemechangemechangemechangeme", "placeholder"},
      {"abcabcabcabcabcabcabcabcabcabcabcabc", "placeholder"},
      {"please-CHANGEME-before-deploying-this-secret", "placeholder"},
      {"<placeholder for the real backup key here>", "placeholder"},
      {std::string(kSecret) + "\n" + std::string(kSecret), "more than one line"},
      {std::string(5000, 'x').replace(0, 1, "y"), "at most 4096"},
  };
  for (const Case& c : cases) {
    const std::string path = Write(c.content);
    auto key = LoadKeyFile(path);
    ASSERT_FALSE(key.has_value()) << c.content;
    EXPECT_EQ(key.error().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(key.error().message(), HasSubstr(path));
    EXPECT_THAT(key.error().message(), HasSubstr(c.reason));
    if (c.content.size() > 2) {
      EXPECT_THAT(key.error().message(), Not(HasSubstr(c.content.substr(0, 12))));
    }
  }
}

TEST_F(KeyFileTest, MissingFileIsNotFound) {
  auto key = LoadKeyFile(dir_.path() + "/absent.key");
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().code(), StatusCode::kNotFound);
  EXPECT_THAT(key.error().message(), HasSubstr("absent.key"));
}

TEST_F(KeyFileTest, AnOpensslRandSecretIsAccepted) {
  // What `openssl rand -base64 32` writes.
  auto key = LoadKeyFile(Write("q2y9Wm1bX0c3Jk4PqV7tR8sZ5nL6hG1dF0eA9cB2xY4=\n"));
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
}

}  // namespace
}  // namespace replboot::archive
