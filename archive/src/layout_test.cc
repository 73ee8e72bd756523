#include "replboot/archive/layout.h"

#include <gtest/gtest.h>

namespace replboot::archive {
namespace {

using std::chrono::system_clock;

system_clock::time_point At(int64_t unix_seconds, int64_t extra_ms = 0) {
  return system_clock::time_point(std::chrono::seconds(unix_seconds)) +
         std::chrono::milliseconds(extra_ms);
}

TEST(Layout, Keys) {
  EXPECT_EQ(ManifestKey("20261207T061500Z"), "backups/20261207T061500Z/manifest.json");
  EXPECT_EQ(ObjectKey("20261207T061500Z", 0), "backups/20261207T061500Z/objects/00000000");
  EXPECT_EQ(ObjectKey("20261207T061500Z", 12345678), "backups/20261207T061500Z/objects/12345678");
  EXPECT_EQ(ChecksKey("20261207T061500Z"), "backups/20261207T061500Z/checks.json");
  EXPECT_EQ(ClaimKey("20261207T061500Z"), "claims/20261207T061500Z");
  EXPECT_EQ(BackupPrefix("20261207T061500Z"), "backups/20261207T061500Z/");
}

TEST(Layout, NewBackupIdIsUtcSeconds) {
  // 2026-12-07 06:15:00 UTC = 1796624100.
  EXPECT_EQ(NewBackupId(At(1796624100)), "20261207T061500Z");
  EXPECT_EQ(NewBackupId(At(1796624100, 999)), "20261207T061500Z");
  EXPECT_EQ(NewBackupId(At(0)), "19700101T000000Z");
  EXPECT_EQ(NewBackupId(At(951782400)), "20000229T000000Z");  // a leap day
  EXPECT_EQ(NewBackupId(At(7258118399)), "21991231T235959Z");
}

TEST(Layout, IsBackupIdIsStrict) {
  EXPECT_TRUE(IsBackupId("20261207T061500Z"));
  EXPECT_TRUE(IsBackupId("20240229T235959Z"));
  for (const char* bad : {"",
                          "20261207T061500",
                          "20261207T061500z",
                          "20261207t061500Z",
                          "2026-12-07T06:15Z",
                          "20261207T061500Z ",
                          " 20261207T061500Z",
                          "20261307T061500Z",
                          "20261200T061500Z",
                          "20261232T061500Z",
                          "20230229T000000Z",
                          "20261207T241500Z",
                          "20261207T066000Z",
                          "20261207T061560Z",
                          "19691231T235959Z",
                          "22000101T000000Z",
                          "99991231T235959Z",
                          "2026120AT061500Z",
                          "20261207T06150+Z",
                          "../../../etc/pa",
                          "202612070T61500Z"}) {
    EXPECT_FALSE(IsBackupId(bad)) << bad;
  }
  EXPECT_EQ(BackupIdTime("20261207T061500Z"), At(1796624100));
  // Every id NewBackupId makes is valid and names its second.
  for (int64_t t = 0; t < 7'258'118'400; t += 86'399 * 37 + 11) {
    std::string id = NewBackupId(At(t));
    ASSERT_TRUE(IsBackupId(id)) << id;
    ASSERT_EQ(BackupIdTime(id), At(t)) << id;
  }
}

TEST(Layout, SplitBackupKey) {
  auto parts = SplitBackupKey("backups/20261207T061500Z/objects/00000003");
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->backup_id, "20261207T061500Z");
  EXPECT_EQ(parts->rest, "objects/00000003");
  EXPECT_EQ(ObjectIndexOf(parts->rest), 3u);
  EXPECT_FALSE(SplitBackupKey("backups/notanid/manifest.json"));
  EXPECT_FALSE(SplitBackupKey("backups/20261207T061500Z/"));
  EXPECT_FALSE(SplitBackupKey("backups/20261207T061500Z"));
  EXPECT_FALSE(SplitBackupKey("claims/20261207T061500Z"));
  EXPECT_FALSE(ObjectIndexOf("objects/0000003"));
  EXPECT_FALSE(ObjectIndexOf("objects/000000003"));
  EXPECT_FALSE(ObjectIndexOf("objects/0000000x"));
  EXPECT_FALSE(ObjectIndexOf("manifest.json"));
}

}  // namespace
}  // namespace replboot::archive
