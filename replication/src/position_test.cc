#include "replboot/replication/position.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/files.h"

namespace replboot::replication {
namespace {

const std::string kData = REPLBOOT_REPLICATION_TESTDATA;

constexpr const char* kBinlogInfo = "xtrabackup_binlog_info";
constexpr const char* kSlaveInfo = "xtrabackup_slave_info";

struct Sample {
  std::string dir;
  Flavour flavour;
  std::string gtid;
  std::string log_file;
  uint64_t log_pos;
  std::string origin;  // the file in `dir` the position must come from
};

// Every recorded sample and the position it must yield (ReadClonePosition picks the file).
std::vector<Sample> Samples() {
  using enum Flavour;
  const std::string mysql_two_uuids =
      "0a5e3b4c-7a1f-11ee-9d2c-0242ac120002:1-294615096,c6881cf4-7a1f-11ee-8e41-0242ac120003:"
      "1-1156346";
  const std::string mysql_uuid = "c777888a-b6df-11e2-a604-080027635ef5:1-4";
  // clang-format off
  return {
      {"mariadb-10.11/primary-gtid", kMariaDB, "0-7-7", "mysql-bin.000001", 1623, kBinlogInfo},
      {"mariadb-10.11/primary-multidomain", kMariaDB, "0-1-100,1-2-50", "mysql-bin.000004", 2210, kBinlogInfo},
      {"mariadb-10.11/primary-two-fields", kMariaDB, "", "mysql-bin.000001", 329, kBinlogInfo},
      {"mariadb-10.6/primary-empty-gtid", kMariaDB, "", "mysql-bin.000002", 385, kBinlogInfo},
      {"mariadb-10.11/galera-sst", kMariaDB, "0-3-1207", "mysql-bin.000009", 8841, kBinlogInfo},
      {"mariadb-10.11/replica-slave-pos", kMariaDB, "0-7-9", "", 0, kSlaveInfo},
      {"mariadb-10.11/replica-no-gtid", kMariaDB, "", "mysql-bin.000001", 1954, kSlaveInfo},
      {"mariadb-11.4/primary-gtid", kMariaDB, "0-100-42", "mysql-bin.000003", 5512, "mariadb_backup_binlog_info"},
      {"mariadb-11.4/replica-slave-pos", kMariaDB, "0-100-42,2-100-7", "", 0, "mariadb_backup_slave_info"},
      {"mysql-8.0/primary-gtid-off", kMySQL, "", "mysql-bin.000003", 1234, kBinlogInfo},
      {"mysql-8.0/primary-gtid", kMySQL, mysql_uuid, "mysql-bin.000002", 1232, kBinlogInfo},
      {"mysql-8.0/primary-gtid-multiline", kMySQL, mysql_two_uuids, "binlog.000012", 197, kBinlogInfo},
      {"mysql-8.0/replica-auto-position-old", kMySQL, mysql_uuid, "", 0, kSlaveInfo},
      {"mysql-8.0/replica-file-pos-old", kMySQL, "", "mysql-bin.000003", 1234, kSlaveInfo},
      {"mysql-8.4/primary-gtid", kMySQL, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11-18", "binlog.000005", 2811, kBinlogInfo},
      {"mysql-8.4/replica-auto-position", kMySQL, mysql_two_uuids, "", 0, kSlaveInfo},
      {"mysql-8.4/replica-file-pos", kMySQL, "", "mysql-bin.000003", 1234, kSlaveInfo},
  };
  // clang-format on
}

TEST(PositionTest, EveryRecordedSampleParses) {
  for (const Sample& s : Samples()) {
    SCOPED_TRACE(s.dir);
    auto position = ReadClonePosition(kData + "/" + s.dir, s.flavour);
    ASSERT_TRUE(position.has_value()) << position.error().ToString();
    EXPECT_EQ(position->gtid, s.gtid);
    EXPECT_EQ(position->log_file, s.log_file);
    EXPECT_EQ(position->log_pos, s.log_pos);
    EXPECT_EQ(position->origin, kData + "/" + s.dir + "/" + s.origin);
  }
}

struct Bad {
  std::string file;  // under malformed/
  int line;
  std::string says;
};

TEST(PositionTest, MalformedSamplesNameFileAndLine) {
  std::vector<Bad> bad = {
      {"binlog-bad-pos/xtrabackup_binlog_info", 1, "not a binlog position"},
      {"binlog-bad-gtid/xtrabackup_binlog_info", 1, "'0-7' is not a MariaDB GTID"},
      {"binlog-dup-domain/xtrabackup_binlog_info", 1, "domain 0 appears twice"},
      {"binlog-one-field/xtrabackup_binlog_info", 1, "found 1 field"},
      {"binlog-empty/xtrabackup_binlog_info", 1, "empty"},
      {"binlog-sst-bad-last/xtrabackup_binlog_info", 2, "'0-3-x'"},
      {"binlog-mysql-bad-uuid/xtrabackup_binlog_info", 1, "c6881cf4-7a1f-11ee:1-1156346"},
      {"binlog-mysql-cut/xtrabackup_binlog_info", 1, "trailing ','"},
      {"slave-unterminated/xtrabackup_slave_info", 2, "not terminated by ';'"},
      {"slave-injection/xtrabackup_slave_info", 2, "unsupported statement starting with 'DROP'"},
      {"slave-named-connection/xtrabackup_slave_info", 2, "named replication connection 'other'"},
      {"slave-pos-without-file/xtrabackup_slave_info", 1, "must be given together"},
      {"slave-auto-position-no-gtid/xtrabackup_slave_info", 2, "without a SET GLOBAL"},
      {"slave-bad-interval/xtrabackup_slave_info", 1, "'5-4'"},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.file);
    std::string path = kData + "/malformed/" + b.file;
    auto content = files::ReadFile(path);
    ASSERT_TRUE(content.has_value());
    Flavour flavour =
        b.file.find("mysql") != std::string::npos || b.file.find("interval") != std::string::npos
            ? Flavour::kMySQL
            : Flavour::kMariaDB;
    auto position = b.file.find("slave") == 0 ? ParseSlaveInfo(*content, path, flavour)
                                              : ParseBinlogInfo(*content, path, flavour);
    ASSERT_FALSE(position.has_value()) << "parsed: gtid=" << position->gtid;
    EXPECT_EQ(position.error().code(), StatusCode::kCorruption);
    const std::string& msg = position.error().message();
    EXPECT_EQ(msg.rfind(path + ":" + std::to_string(b.line) + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(b.says), std::string::npos) << msg;
  }
}

TEST(PositionTest, SlaveInfoPreferredOverBinlogInfoOfAReplicaClone) {
  // The donor replica's own binlog position means nothing to the primary.
  auto position = ReadClonePosition(kData + "/mariadb-10.11/replica-slave-pos", Flavour::kMariaDB);
  ASSERT_TRUE(position.has_value());
  EXPECT_FALSE(position->HasFilePos());
  EXPECT_EQ(position->gtid, "0-7-9");
}

TEST(PositionTest, MissingFilesAreNotFound) {
  auto position = ReadClonePosition(kData + "/malformed", Flavour::kMariaDB);
  ASSERT_FALSE(position.has_value());
  EXPECT_EQ(position.error().code(), StatusCode::kNotFound);
}

TEST(PositionTest, BinlogInfoForms) {
  auto p = ParseBinlogInfo("mysql-bin.000001\t1623\t0-7-7\r\n", "f", Flavour::kMariaDB);
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->gtid, "0-7-7");
  p = ParseBinlogInfo("mysql-bin.000003 1234\n", "f", Flavour::kMySQL);  // space separated
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->log_pos, 1234u);
  p = ParseBinlogInfo("mysql-bin.000003\t1234\t[]\n", "f", Flavour::kMariaDB);
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->HasGtid());
}

struct Rejected {
  std::string input;
  Flavour flavour;
};

TEST(PositionTest, BinlogInfoRejects) {
  const std::vector<Rejected> rejected = {
      {"mysql-bin.000003\t3\n", Flavour::kMariaDB},  // position < 4
      {"../etc/x\t1234\n", Flavour::kMariaDB},
      {"a\t4\tb\tc\n", Flavour::kMariaDB},
      // A MariaDB GTID is not accepted as a MySQL set and the other way round.
      {"b.1\t4\t0-1-2\n", Flavour::kMySQL},
      {"b.1\t4\tc777888a-b6df-11e2-a604-080027635ef5:1-4\n", Flavour::kMariaDB},
  };
  for (const Rejected& r : rejected) {
    EXPECT_FALSE(ParseBinlogInfo(r.input, "f", r.flavour).has_value()) << r.input;
  }
}

TEST(PositionTest, SlaveInfoForms) {
  auto p = ParseSlaveInfo(
      "set global GTID_SLAVE_POS='1-2-3' ; change master '' to MASTER_USE_GTID=current_pos;", "f",
      Flavour::kMariaDB);
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->gtid, "1-2-3");
  p = ParseSlaveInfo(
      "SET @@GLOBAL.gtid_purged='+c777888a-b6df-11e2-a604-080027635ef5:1-4';\n"
      "CHANGE REPLICATION SOURCE TO SOURCE_AUTO_POSITION=1 FOR CHANNEL '';\n",
      "f", Flavour::kMySQL);
  ASSERT_TRUE(p.has_value()) << p.error().ToString();
  EXPECT_EQ(p->gtid, "c777888a-b6df-11e2-a604-080027635ef5:1-4");
  auto channel = ParseSlaveInfo(
      "CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='b.1', SOURCE_LOG_POS=4 FOR CHANNEL 'x';", "f",
      Flavour::kMySQL);
  ASSERT_FALSE(channel.has_value());
  EXPECT_NE(channel.error().message().find("channel 'x'"), std::string::npos);
  for (std::string_view input : {
           // Quotes inside the file cannot end the statement early.
           "SET GLOBAL gtid_slave_pos='0-1-2'; DROP TABLE t; --';",
           "",
           "CHANGE MASTER TO MASTER_HOST='evil', MASTER_LOG_FILE='b.1', MASTER_LOG_POS=4;",
       }) {
    EXPECT_FALSE(ParseSlaveInfo(input, "f", Flavour::kMariaDB).has_value()) << input;
  }
}

TEST(NormalizeGtidTest, Accepts) {
  EXPECT_EQ(NormalizeGtid(" 0-1-100, 1-2-50\n", Flavour::kMariaDB).value(), "0-1-100,1-2-50");
  EXPECT_EQ(NormalizeGtid("", Flavour::kMariaDB).value(), "");
  EXPECT_EQ(NormalizeGtid("3E11FA47-71CA-11E1-9E33-C80AA9429562:23", Flavour::kMySQL).value(),
            "3E11FA47-71CA-11E1-9E33-C80AA9429562:23");
  EXPECT_TRUE(NormalizeGtid("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:tag_1:7-9", Flavour::kMySQL)
                  .has_value());
}

TEST(NormalizeGtidTest, Rejects) {
  const std::vector<Rejected> rejected = {
      {"0-1-100,", Flavour::kMariaDB},
      {"0-1--1", Flavour::kMariaDB},
      {"4294967296-1-1", Flavour::kMariaDB},  // domain is 32 bits
      {"0-1-2-3", Flavour::kMariaDB},
      {"3e11fa47-71ca-11e1-9e33-c80aa9429562", Flavour::kMySQL},
      {"3e11fa47-71ca-11e1-9e33-c80aa9429562:0", Flavour::kMySQL},
      {"3e11fa47-71ca-11e1-9e33-c80aa9429562:tag", Flavour::kMySQL},
      {"zz11fa47-71ca-11e1-9e33-c80aa9429562:1", Flavour::kMySQL},
  };
  for (const Rejected& r : rejected) {
    EXPECT_FALSE(NormalizeGtid(r.input, r.flavour).has_value()) << r.input;
  }
}

}  // namespace
}  // namespace replboot::replication
