#include "replboot/binlog/file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "binlog_test_util.h"
#include "replboot/binlog/events.h"

namespace replboot::binlog {
namespace {

using ::testing::HasSubstr;
using namespace replboot::binlog::testing;

// The recorded files (testdata/README.md) cut into their transactions as a segment check and
// `replboot binlog archive-file` read them.
TEST(BinlogFileTest, RecordedFileGivesItsTransactions) {
  auto file = ReadFile("mariadb-10.11/crc32.binlog");
  auto parsed = ParseBinlog(file, "crc32.binlog");
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_TRUE(parsed->checksums);
  EXPECT_EQ(parsed->server_id, 100u);
  EXPECT_THAT(parsed->server_version, HasSubstr("10.11.19-MariaDB"));
  std::vector<std::string> gtids;
  for (const auto& t : parsed->transactions) gtids.push_back(t.gtid.ToString());
  // The two DDL (standalone), the row transactions, the MyISAM group ending in COMMIT.
  EXPECT_EQ(gtids, (std::vector<std::string>{"0-100-1", "0-100-2", "0-100-3", "0-100-4",
                                             "0-100-5", "0-100-6", "1-100-1", "0-100-7"}));
  EXPECT_TRUE(parsed->has_gtid_list);
  EXPECT_TRUE(parsed->gtid_list.empty());
  EXPECT_EQ(parsed->incomplete_tail, 0u);
  EXPECT_EQ(parsed->outside_events.back(), kRotateEvent);
}

TEST(BinlogFileTest, NoChecksumFileStartsFromItsGtidList) {
  auto parsed = ParseBinlog(ReadFile("mariadb-10.11/no-checksum.binlog"), "no-checksum.binlog");
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_FALSE(parsed->checksums);
  EXPECT_EQ(parsed->gtid_list.ToString(), "0-100-7,1-100-1");
  ASSERT_EQ(parsed->transactions.size(), 1u);
  EXPECT_EQ(parsed->transactions[0].gtid.ToString(), "0-100-8");
}

TEST(BinlogFileTest, ActiveFilesInUseFlagAndTornTail) {
  auto file = ReadFile("mariadb-10.11/crc32.binlog");
  file[4 + 17] |= kFlagInUse;  // set by the server after the checksum was computed
  ASSERT_TRUE(ParseBinlog(file, "active"));
  file[4 + kHeaderSize + 3] ^= 1;  // a real change in the Format_description fails
  auto bad = ParseBinlog(file, "active");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message(), HasSubstr("active at offset 4"));
  file[4 + kHeaderSize + 3] ^= 1;
  const auto whole = ParseBinlog(file, "active");
  ASSERT_TRUE(whole);
  // Cut inside the last transaction: only with allow_tail, and only the whole ones.
  const auto& last = whole->transactions.back();
  file.resize(last.offset + last.length - 3);
  auto strict = ParseBinlog(file, "active");
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().code(), StatusCode::kCorruption);
  auto live = ParseBinlog(file, "active", /*allow_tail=*/true);
  ASSERT_TRUE(live) << live.error().ToString();
  EXPECT_EQ(live->transactions.size(), whole->transactions.size() - 1);
  EXPECT_EQ(live->complete_end, last.offset);
  EXPECT_EQ(live->incomplete_tail, file.size() - last.offset);
}

}  // namespace
}  // namespace replboot::binlog
