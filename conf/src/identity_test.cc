#include "replboot/conf/identity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace replboot::conf {
namespace {

using ::testing::HasSubstr;

TEST(ParseIdentityTest, PrimaryIsOrdinalZero) {
  auto id = ParseIdentity("mysql-0", 100);
  ASSERT_TRUE(id) << id.error().ToString();
  EXPECT_EQ(id->hostname, "mysql-0");
  EXPECT_EQ(id->prefix, "mysql");
  EXPECT_EQ(id->ordinal, 0);
  EXPECT_EQ(id->server_id, 100u);
  EXPECT_EQ(id->role, Role::kPrimary);
}

TEST(ParseIdentityTest, ReplicaOrdinalAfterLastDash) {
  auto id = ParseIdentity("db-west-12", 100);
  ASSERT_TRUE(id) << id.error().ToString();
  EXPECT_EQ(id->prefix, "db-west");
  EXPECT_EQ(id->ordinal, 12);
  EXPECT_EQ(id->server_id, 112u);
  EXPECT_EQ(id->role, Role::kReplica);
}

TEST(ParseIdentityTest, OnlyFirstLabelOfFqdnCounts) {
  auto id = ParseIdentity("mysql-2.mysql.default.svc.cluster.local", 100);
  ASSERT_TRUE(id) << id.error().ToString();
  EXPECT_EQ(id->hostname, "mysql-2");
  EXPECT_EQ(id->ordinal, 2);
}

TEST(ParseIdentityTest, LargestServerIdFits) {
  auto id = ParseIdentity("mysql-4294967195", 100);
  ASSERT_TRUE(id) << id.error().ToString();
  EXPECT_EQ(id->server_id, 4294967295u);
}

void ExpectRejected(const std::string& hostname, int64_t offset, const std::string& why) {
  auto id = ParseIdentity(hostname, offset);
  ASSERT_FALSE(id) << hostname << " was accepted";
  EXPECT_EQ(id.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(id.error().message(), HasSubstr("'" + hostname + "'"));
  EXPECT_THAT(id.error().message(), HasSubstr("<statefulset>-<ordinal>"));
  EXPECT_THAT(id.error().message(), HasSubstr(why)) << hostname;
}

TEST(ParseIdentityTest, RejectsHostnamesWithoutOrdinal) {
  ExpectRejected("mysql", 100, "no '-<ordinal>' suffix");
  ExpectRejected("mysql-", 100, "nothing follows");
  ExpectRejected("mysql-x", 100, "'x' after the last '-' is not a number");
  ExpectRejected("mysql-2x", 100, "not a number");
  ExpectRejected("mysql--1", 100, "ends with '-'");  // "-1" is no ordinal
  ExpectRejected("mysql-+1", 100, "not a number");
  ExpectRejected("-3", 100, "name before the '-' is empty");
  ExpectRejected("", 100, "empty");
  ExpectRejected("mysql-02", 100, "leading zero");
}

TEST(ParseIdentityTest, RejectsOverflow) {
  // server-id is 32 bits: 4294967196 + 100 does not fit.
  ExpectRejected("mysql-4294967196", 100, "does not fit in 32 bits");
  // Larger than int64: from_chars reports out of range.
  ExpectRejected("mysql-99999999999999999999", 100, "too large");
  ExpectRejected("mysql-9223372036854775807", 100, "does not fit in 32 bits");
  ExpectRejected("mysql-1", 4294967295, "does not fit in 32 bits");
}

TEST(ParseIdentityTest, RejectsServerIdZero) {
  ExpectRejected("mysql-0", 0, "server-id");
  auto replica = ParseIdentity("mysql-1", 0);
  ASSERT_TRUE(replica);
  EXPECT_EQ(replica->server_id, 1u);
}

TEST(ParseIdentityTest, RejectsNegativeOffset) {
  auto id = ParseIdentity("mysql-1", -5);
  ASSERT_FALSE(id);
  EXPECT_THAT(id.error().message(), HasSubstr("server_id_offset"));
}

TEST(IdentityTest, PeerName) {
  auto id = ParseIdentity("db-west-3", 100);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->PeerName(0, "mysql"), "db-west-0.mysql");
  EXPECT_EQ(id->PeerName(2, "db.prod"), "db-west-2.db.prod");
  EXPECT_EQ(id->PeerName(1, ""), "db-west-1");
}

TEST(NamesTest, Role) {
  EXPECT_EQ(RoleName(Role::kPrimary), "primary");
  EXPECT_EQ(RoleName(Role::kReplica), "replica");
}

}  // namespace
}  // namespace replboot::conf
