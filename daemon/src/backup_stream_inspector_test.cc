#include "backup_stream_inspector.h"

#include <gtest/gtest.h>

#include <string>

#include "xbstream_test_util.h"

namespace replboot::daemon {
namespace {

using backup::testing::ReadAll;
using backup::testing::StreamBuilder;

TEST(BackupStreamInspectorTest, AReplicasBackupContinuesFromItsPlaceInThePrimary) {
  StreamBuilder stream;
  stream.File("ibdata1", std::string(4096, 'x'))
      .File("xtrabackup_binlog_info", "mysql-bin.000003\t385\t0-11-40\n")
      .File("xtrabackup_slave_info",
            "SET GLOBAL gtid_slave_pos = '0-10-57';\nCHANGE MASTER TO master_use_gtid = slave_pos;\n",
            /*chunk=*/16);  // in several chunks, at increasing offsets
  BackupStreamInspector inspector;
  ASSERT_TRUE(ReadAll(stream.bytes(), &inspector).ok());
  auto position = inspector.Position(Flavour::kMariaDB);
  ASSERT_TRUE(position.has_value()) << position.error().ToString();
  EXPECT_EQ(position->gtid, "0-10-57");

  // A slave_info that does not parse fails the backup rather than falling back to the
  // replica's own binlog position; an empty one (a primary's) does fall back.
  BackupStreamInspector truncated;
  ASSERT_TRUE(ReadAll(StreamBuilder()
                          .File("xtrabackup_binlog_info", "mysql-bin.000003\t385\t0-11-40\n")
                          .File("xtrabackup_slave_info", "SET GLOBAL gtid_slave_pos = '0-10-57'")
                          .bytes(),
                      &truncated)
                  .ok());
  auto refused = truncated.Position(Flavour::kMariaDB);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find("xtrabackup_slave_info"), std::string::npos)
      << refused.error().ToString();
  BackupStreamInspector empty;
  ASSERT_TRUE(ReadAll(StreamBuilder()
                          .File("xtrabackup_binlog_info", "mysql-bin.000003\t385\t0-11-40\n")
                          .File("xtrabackup_slave_info", "\n")
                          .bytes(),
                      &empty)
                  .ok());
  auto own = empty.Position(Flavour::kMariaDB);
  ASSERT_TRUE(own.has_value()) << own.error().ToString();
  EXPECT_EQ(own->gtid, "0-11-40");
}

TEST(BackupStreamInspectorTest, APrimarysBackupContinuesFromItsOwnBinlog) {
  StreamBuilder stream;
  stream.File("mariadb_backup_binlog_info", "mysql-bin.000003\t385\t0-10-40\n");
  BackupStreamInspector inspector;
  ASSERT_TRUE(ReadAll(stream.bytes(), &inspector).ok());
  auto position = inspector.Position(Flavour::kMariaDB);
  ASSERT_TRUE(position.has_value()) << position.error().ToString();
  EXPECT_EQ(position->gtid, "0-10-40");
  EXPECT_EQ(position->log_file, "mysql-bin.000003");

  BackupStreamInspector none;
  ASSERT_TRUE(ReadAll(StreamBuilder().File("ibdata1", "x").bytes(), &none).ok());
  auto empty = none.Position(Flavour::kMariaDB);
  ASSERT_TRUE(empty.has_value());
  EXPECT_FALSE(empty->HasGtid() || empty->HasFilePos());
}

TEST(BackupStreamInspectorTest, AnOversizedPositionFileIsRefusedByName) {
  // Just at the cap is kept; one byte more, or a chunk placed past it, is refused.
  StreamBuilder at_cap;
  at_cap.File("xtrabackup_slave_info", std::string(kMaxPositionFileBytes, ' '), 4096);
  BackupStreamInspector kept;
  EXPECT_TRUE(ReadAll(at_cap.bytes(), &kept).ok());

  StreamBuilder over;
  over.File("xtrabackup_slave_info", std::string(kMaxPositionFileBytes + 1, ' '), 4096);
  BackupStreamInspector refused;
  Status s = ReadAll(over.bytes(), &refused);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("xtrabackup_slave_info in the stream is over 65536 bytes"),
            std::string::npos)
      << s.ToString();

  // A far offset must not wrap the bound nor allocate: refused before anything is kept.
  StreamBuilder far;
  far.Payload("mariadb_backup_binlog_info", "abc", (uint64_t{1} << 62));
  BackupStreamInspector far_refused;
  EXPECT_EQ(ReadAll(far.bytes(), &far_refused).code(), StatusCode::kCorruption);

  // Other files pass whatever their size: the cap is for what the receiver keeps.
  StreamBuilder big_data;
  big_data.File("ibdata1", std::string(kMaxPositionFileBytes * 2, 'd'));
  BackupStreamInspector data;
  EXPECT_TRUE(ReadAll(big_data.bytes(), &data).ok());
}

}  // namespace
}  // namespace replboot::daemon
