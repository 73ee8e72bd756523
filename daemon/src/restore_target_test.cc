#include "replboot/daemon/restore_target.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace replboot::daemon {
namespace {

using ::testing::HasSubstr;

TEST(RestoreTargetTest, LatestTimeAndGtid) {
  for (const char* latest : {"", "latest"}) {
    auto t = ParseRestoreTarget(latest);
    ASSERT_TRUE(t) << latest;
    EXPECT_EQ(t->kind, archive::RestoreTarget::Kind::kLatest);
  }
  auto time = ParseRestoreTarget("2026-12-06T10:41:59Z");
  ASSERT_TRUE(time) << time.error().message();
  EXPECT_EQ(time->kind, archive::RestoreTarget::Kind::kTime);
  EXPECT_EQ(archive::FormatTime(time->time), "2026-12-06T10:41:59Z");
  auto gtid = ParseRestoreTarget("0-100-41,1-100-7");
  ASSERT_TRUE(gtid) << gtid.error().message();
  EXPECT_EQ(gtid->kind, archive::RestoreTarget::Kind::kGtid);
  EXPECT_EQ(gtid->gtid.size(), 2u);
}

TEST(RestoreTargetTest, BadValuesAreRefusedNamingTheSetting) {
  for (const char* bad :
       {"Latest", " latest", "2026-12-06 10:41:59", "2026-13-06T10:41:59Z", "2026-12-06T10:41:59",
        "2026-12-06T10:41:59.5Z", "0-100", "0-100-41,", "01-100-41", "-1-100-41", "yesterday",
        "0-100-99999999999999999999"}) {
    auto t = ParseRestoreTarget(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(t.error().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(t.error().message(), HasSubstr("restore.target")) << bad;
  }
}

}  // namespace
}  // namespace replboot::daemon
