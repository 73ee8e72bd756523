// The restore test's rules that need no server: where its scratch dir may be, the space it
// needs, what the throwaway server is told, leftovers of a killed run, and which backup a
// schedule tests next.
#include "replboot/daemon/restore_test.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "replboot/archive/keys.h"
#include "replboot/store/object_store.h"
#include "replboot/testing/fake_session.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::daemon {
namespace {

namespace fs = std::filesystem;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

using testing::TempDir;

TEST(ScratchDirForTest, DefaultsBesideTheDatadir) {
  auto dir = ScratchDirFor("/var/lib/mysql", "");
  ASSERT_TRUE(dir) << dir.error().ToString();
  EXPECT_EQ(*dir, "/var/lib/mysql.replboot-restore-test");
  dir = ScratchDirFor("/var/lib/mysql/", "");
  ASSERT_TRUE(dir) << dir.error().ToString();
  EXPECT_EQ(*dir, "/var/lib/mysql.replboot-restore-test");
  dir = ScratchDirFor("/var/lib/mysql", "/scratch/rt/");
  ASSERT_TRUE(dir) << dir.error().ToString();
  EXPECT_EQ(*dir, "/scratch/rt");
}

TEST(ScratchDirForTest, NeverTheDatadirInsideItOrAboveIt) {
  struct Case {
    const char* scratch;
    const char* message;
  } cases[] = {
      {"/var/lib/mysql", "the same as /var/lib/mysql"},
      {"/var/lib/mysql/", "the same as"},
      {"/var/lib/mysql/test", "inside /var/lib/mysql"},
      {"/var/lib/mysql/a/../b", "inside"},
      {"/var/lib", "holds /var/lib/mysql"},
      {"/", "holds"},
      {"/var/lib/mysql.replboot-staging", "the same as /var/lib/mysql.replboot-staging"},
      {"/var/lib/mysql.replboot-old/x", "inside /var/lib/mysql.replboot-old"},
  };
  for (const auto& c : cases) {
    auto dir = ScratchDirFor("/var/lib/mysql", c.scratch);
    ASSERT_FALSE(dir) << c.scratch;
    EXPECT_EQ(dir.error().code(), StatusCode::kInvalidArgument) << c.scratch;
    EXPECT_TRUE(Contains(dir.error().message(), c.message)) << dir.error().message();
  }
  // A sibling whose name starts like the datadir's is not inside it.
  EXPECT_TRUE(ScratchDirFor("/var/lib/mysql", "/var/lib/mysql2"));
}

TEST(ScratchDirForTest, RelativePathsAreRefused) {
  auto dir = ScratchDirFor("/var/lib/mysql", "scratch");
  ASSERT_FALSE(dir);
  EXPECT_TRUE(Contains(dir.error().message(), "not an absolute path"));
  EXPECT_FALSE(ScratchDirFor("var/lib/mysql", ""));
}

TEST(ScratchDirForTest, ASymlinkToTheDatadirIsSeenThrough) {
  TempDir tmp("rtest");
  fs::create_directories(tmp.Path("data"));
  fs::create_directory_symlink(tmp.Path("data"), tmp.Path("alias"));
  auto dir = ScratchDirFor(tmp.Path("data"), tmp.Path("alias/scratch"));
  ASSERT_FALSE(dir);
  EXPECT_TRUE(Contains(dir.error().message(), "inside")) << dir.error().message();
}

TEST(CheckScratchSpaceTest, NamesTheShortfall) {
  EXPECT_TRUE(CheckScratchSpace("/s", 10ull << 30, 1ull << 30).ok());
  Status s = CheckScratchSpace("/s", 1ull << 30, 1ull << 30);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNoSpace);
  // 1 GiB × 1.05 + 256 MiB = 1331.2 MiB needed, 1024 free.
  EXPECT_TRUE(Contains(s.message(), "needs 1331.2 MiB")) << s.message();
  EXPECT_TRUE(Contains(s.message(), "1024.0 MiB are free: 307.2 MiB short")) << s.message();
}

TEST(ScratchServerOptionsTest, KeepsWhatTheDatadirNeedsDropsWhatWritesOrConnects) {
  const std::map<std::string, std::string> options = {
      {"innodb_page_size", "32k"},
      {"lower_case_table_names", "1"},
      {"plugin_load_add", "file_key_management"},
      {"loose-file-key-management-filename", "/etc/keys.txt"},
      {"innodb_data_file_path", "ibdata1:12M:autoextend"},
      {"character_set_server", "utf8mb4"},
      {"log_error", "/var/log/mysql.err"},
      {"tmpdir", "/tmp"},
      {"innodb_log_group_home_dir", "/var/lib/redo"},
      {"innodb-undo-directory", "/var/lib/undo"},
      {"general_log_file", "/var/log/general.log"},
      {"log-bin", "/var/lib/binlog/bin"},
      {"init_file", "/etc/init.sql"},
      {"gtid_strict_mode", "ON"},
      {"innodb_buffer_pool_size", "8G"},
      {"skip-networking", "0"},
      {"event_scheduler", "ON"},
  };
  auto kept = ScratchServerOptions(options);
  std::vector<std::string> names;
  for (const auto& [name, value] : kept) names.push_back(name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"character_set_server", "innodb_data_file_path",
                                      "innodb_page_size", "loose-file-key-management-filename",
                                      "lower_case_table_names", "plugin_load_add"}));
  // The system tablespace by absolute path is the live server's own file.
  EXPECT_TRUE(ScratchServerOptions({{"innodb_data_file_path", "/data/ibdata1:12M"}}).empty());
}

TEST(ScratchServerConfigTest, SocketOnlyNoBinlogNoReplicationOverridesLast) {
  ScratchServerPaths paths{.datadir = "/s/data",
                           .socket = "/s/mysqld.sock",
                           .pid_file = "/s/mysqld.pid",
                           .error_log = "/s/mysqld.err",
                           .tmpdir = "/s/tmp"};
  auto config = ScratchServerConfig(Flavour::kMariaDB, paths,
                                    {{"innodb_page_size", "32k"}, {"port", "3306"}});
  ASSERT_TRUE(config) << config.error().ToString();
  for (const char* line :
       {"[mysqld]\n", "datadir=/s/data\n", "socket=/s/mysqld.sock\n", "tmpdir=/s/tmp\n",
        "log-error=/s/mysqld.err\n", "skip-networking\n", "skip-log-bin\n", "skip-slave-start\n",
        "skip-grant-tables\n", "innodb-buffer-pool-size=64M\n", "innodb_page_size=32k\n"}) {
    EXPECT_TRUE(Contains(*config, line)) << line << " not in\n" << *config;
  }
  EXPECT_FALSE(Contains(*config, "port=")) << *config;
  EXPECT_LT(config->find("innodb_page_size"), config->find("datadir="));
  auto mysql = ScratchServerConfig(Flavour::kMySQL, paths, {});
  ASSERT_TRUE(mysql);
  EXPECT_TRUE(Contains(*mysql, "skip-replica-start\n"));
  EXPECT_TRUE(Contains(*mysql, "mysqlx=OFF\n"));
}

// --- the table check, on a scripted session ---

using testing::FakeSession;
using testing::MakeRow;

db::Row TableRow(const std::string& schema, const std::string& table, const std::string& rows) {
  return MakeRow({{"TABLE_SCHEMA", schema}, {"TABLE_NAME", table}, {"TABLE_ROWS", rows}});
}
db::Row CheckRow(const std::string& type, const std::string& text) {
  return MakeRow({{"Table", "t"}, {"Op", "check"}, {"Msg_type", type}, {"Msg_text", text}});
}

class CheckRestoredTablesTest : public ::testing::Test {
 protected:
  CheckRestoredTablesTest() {
    session_.OnRows("SELECT TABLE_SCHEMA",
                    {TableRow("app", "t", "300"), TableRow("app", "we`ird", "2"),
                     TableRow("mysql", "user", "4")});
    session_.OnRows("CHECK TABLE", {CheckRow("status", "OK")});
    session_.OnRows("SELECT @@GLOBAL.gtid_current_pos",
                    {MakeRow({{"@@GLOBAL.gtid_current_pos", "0-100-25"}})});
  }
  FakeSession session_;
};

TEST_F(CheckRestoredTablesTest, ChecksEveryTableCountsThemAndReadsThePosition) {
  auto checked = CheckRestoredTables(session_, Flavour::kMariaDB, {});
  ASSERT_TRUE(checked) << checked.error().ToString();
  EXPECT_EQ(checked->tables, 3u);
  EXPECT_EQ(checked->schemas, 2u);
  EXPECT_EQ(checked->approximate_rows, 306u);
  EXPECT_EQ(checked->gtid, "0-100-25");
  EXPECT_NE(std::find(session_.executed.begin(), session_.executed.end(),
                      "CHECK TABLE `app`.`we``ird` QUICK"),
            session_.executed.end());
}

TEST_F(CheckRestoredTablesTest, ATableThatFailsIsNamedWithTheServersWords) {
  session_.OnRows("CHECK TABLE `app`.`t`",
                  {CheckRow("warning", "InnoDB: Index 'PRIMARY' is marked as corrupted"),
                   CheckRow("error", "Corrupt")});
  auto checked = CheckRestoredTables(session_, Flavour::kMariaDB, {});
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error().code(), StatusCode::kCorruption);
  EXPECT_EQ(checked.error().message(), "table app.t fails CHECK TABLE: error: Corrupt");
}

TEST_F(CheckRestoredTablesTest, AStatusOtherThanOkFails) {
  session_.OnRows("CHECK TABLE `mysql`.`user`", {CheckRow("status", "Operation failed")});
  auto checked = CheckRestoredTables(session_, Flavour::kMariaDB, {});
  ASSERT_FALSE(checked);
  EXPECT_TRUE(Contains(checked.error().message(), "mysql.user")) << checked.error().message();
  // A note (an engine that cannot check) is not a failure.
  session_.OnRows("CHECK TABLE `mysql`.`user`",
                  {CheckRow("note", "The storage engine for the table doesn't support check")});
  EXPECT_TRUE(CheckRestoredTables(session_, Flavour::kMariaDB, {}));
}

TEST_F(CheckRestoredTablesTest, ATableThatDoesNotOpenIsNamed) {
  session_.OnError(
      "CHECK TABLE `app`.`we``ird`",
      Status(StatusCode::kInternal, "error 1932 (42S02): Table doesn't exist in engine"), 1932);
  auto checked = CheckRestoredTables(session_, Flavour::kMariaDB, {});
  ASSERT_FALSE(checked);
  EXPECT_TRUE(Contains(checked.error().message(), "CHECK TABLE app.we`ird: error 1932"))
      << checked.error().message();
}

TEST_F(CheckRestoredTablesTest, StopsBetweenTables) {
  std::stop_source stop;
  stop.request_stop();
  auto checked = CheckRestoredTables(session_, Flavour::kMariaDB, stop.get_token());
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error().code(), StatusCode::kCancelled);
}

TEST_F(CheckRestoredTablesTest, MySqlsPositionIsGtidExecuted) {
  session_.OnRows(
      "SELECT @@GLOBAL.gtid_executed",
      {MakeRow({{"@@GLOBAL.gtid_executed", "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5"}})});
  auto checked = CheckRestoredTables(session_, Flavour::kMySQL, {});
  ASSERT_TRUE(checked) << checked.error().ToString();
  EXPECT_EQ(checked->gtid, "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5");
}

TEST(CompareRestoredGtidTest, EqualBehindNotComparableOrAhead) {
  EXPECT_EQ(CompareRestoredGtid("0-100-25", "0-100-25", Flavour::kMariaDB), "equal");
  EXPECT_EQ(CompareRestoredGtid("0-100-20", "0-100-25", Flavour::kMariaDB), "behind");
  EXPECT_EQ(CompareRestoredGtid("", "0-100-25", Flavour::kMariaDB), "not comparable");
  EXPECT_EQ(CompareRestoredGtid("0-100-25", "", Flavour::kMariaDB), "not comparable");
  auto ahead = CompareRestoredGtid("0-100-30", "0-100-25", Flavour::kMariaDB);
  ASSERT_FALSE(ahead);
  EXPECT_EQ(ahead.error().code(), StatusCode::kCorruption);
  EXPECT_TRUE(Contains(ahead.error().message(), "0-100-30 is not within the backup's 0-100-25"))
      << ahead.error().message();
  EXPECT_FALSE(CompareRestoredGtid("0-100-25,1-101-3", "0-100-25", Flavour::kMariaDB));
  // MariaDB positions compare per domain: a promoted former replica's old gtid_slave_pos is
  // behind its binlog position whatever the server ids.
  EXPECT_EQ(CompareRestoredGtid("0-100-10", "0-101-50", Flavour::kMariaDB), "behind");
  EXPECT_EQ(CompareRestoredGtid("0-101-50", "0-100-10, 1-5-7", Flavour::kMariaDB).error().code(),
            StatusCode::kCorruption);
  EXPECT_EQ(CompareRestoredGtid("0-100-25,1-5-7", "1-5-7,0-100-25", Flavour::kMariaDB), "equal");
  EXPECT_EQ(CompareRestoredGtid("0-100-25", "0-100-25,1-5-7", Flavour::kMariaDB), "behind");
  EXPECT_FALSE(CompareRestoredGtid("0-100-25", "0-101-25", Flavour::kMariaDB));
  EXPECT_FALSE(CompareRestoredGtid("garbage", "0-100-25", Flavour::kMariaDB));
  const std::string uuid = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
  EXPECT_EQ(CompareRestoredGtid(uuid + ":1-5", uuid + ":1-5", Flavour::kMySQL), "equal");
  EXPECT_EQ(CompareRestoredGtid(uuid + ":1-3", uuid + ":1-5", Flavour::kMySQL), "behind");
}

// Leftovers and refusals, before anything is downloaded: a backup too big for the disk never
// reaches the store's objects.
class RestoreTestScratchTest : public ::testing::Test {
 protected:
  RestoreTestScratchTest() {
    archive_.store = store::MakeMemoryStore();
    archive_.key = archive::KeyFromSecret("a test key of at least thirty-two characters");
    settings_.flavour = Flavour::kMariaDB;
    settings_.config.mysql.datadir = tmp_.Path("data");
    fs::create_directories(tmp_.Path("data"));
    manifest_.backup_id = "20261207T061500Z";
    manifest_.flavour = "mariadb";
    manifest_.logical_bytes = uint64_t{1} << 60;  // no disk has an exbibyte free
  }
  std::string Scratch() const { return tmp_.Path("data.replboot-restore-test"); }

  TempDir tmp_{"rtest"};
  Archive archive_;
  NodeSettings settings_;
  archive::Manifest manifest_;
};

TEST_F(RestoreTestScratchTest, ALeftoverIsRemovedAndTooLittleSpaceIsNamed) {
  fs::create_directories(Scratch() + "/data/app");
  std::ofstream(Scratch() + "/" + kScratchMarker) << "{}\n";
  std::ofstream(Scratch() + "/data/app/t.ibd") << "left by a killed run";
  auto report = RestoreTestBackup(settings_, archive_, manifest_, {});
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code(), StatusCode::kNoSpace);
  EXPECT_TRUE(Contains(report.error().message(), "short")) << report.error().message();
  EXPECT_FALSE(fs::exists(Scratch())) << "the leftover and this run's scratch dir are gone";
  EXPECT_TRUE(fs::exists(tmp_.Path("data")));
  // Nothing said about the backup: no checks record.
  auto checks = archive::LoadChecks(*archive_.store, archive_.key, manifest_.backup_id);
  EXPECT_TRUE(!checks || !*checks);
}

TEST_F(RestoreTestScratchTest, ADirectoryItDidNotMakeIsLeftAlone) {
  fs::create_directories(Scratch());
  std::ofstream(Scratch() + "/precious") << "the operator's";
  auto report = RestoreTestBackup(settings_, archive_, manifest_, {});
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(report.error().message(), "not made by a restore test"));
  EXPECT_TRUE(fs::exists(Scratch() + "/precious"));
}

TEST_F(RestoreTestScratchTest, AScratchDirInTheDatadirIsRefused) {
  settings_.config.archive.scratch_dir = tmp_.Path("data/rt");
  auto report = RestoreTestBackup(settings_, archive_, manifest_, {});
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(tmp_.Path("data/rt")));
}

TEST_F(RestoreTestScratchTest, ASocketPathTooLongIsRefusedBeforeTheDownload) {
  settings_.config.archive.scratch_dir = tmp_.Path(std::string(110, 's'));
  manifest_.logical_bytes = 1000;
  auto report = RestoreTestBackup(settings_, archive_, manifest_, {});
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(report.error().message(), "longer than a unix socket allows"))
      << report.error().message();
  EXPECT_FALSE(fs::exists(settings_.config.archive.scratch_dir));
}

TEST_F(RestoreTestScratchTest, AnotherFlavoursBackupIsRefused) {
  manifest_.flavour = "mysql";
  auto report = RestoreTestBackup(settings_, archive_, manifest_, {});
  ASSERT_FALSE(report);
  EXPECT_TRUE(Contains(report.error().message(), "of a mysql server"));
}

// --- which backup is due ---

constexpr char kA[] = "11111111-1111-4111-8111-111111111111";
constexpr char kB[] = "22222222-2222-4222-8222-222222222222";
constexpr int64_t kDay = 86'400'000;
constexpr int64_t kNow = 100 * kDay;
constexpr std::chrono::seconds kWeek{7 * 86'400};

archive::BackupEntry Entry(const std::string& id, const std::string& cluster, int64_t finished,
                           int64_t tested = 0, const std::string& error = "") {
  archive::BackupEntry e;
  e.id = id;
  e.complete = true;
  e.manifest.emplace();
  e.manifest->backup_id = id;
  e.manifest->cluster_id = cluster;
  e.manifest->finished_at_ms = finished;
  if (tested > 0) {
    e.checks.emplace();
    e.checks->restore_tested_at_ms = tested;
    e.checks->restore_test_error = error;
  }
  return e;
}

TEST(PickBackupDueForRestoreTestTest, NothingInAnEmptyStore) {
  EXPECT_EQ(PickBackupDueForRestoreTest({}, kA, kWeek, kNow), std::nullopt);
}

TEST(PickBackupDueForRestoreTestTest, TheNewestUntestedFirst) {
  std::vector<archive::BackupEntry> entries = {Entry("20260101T000000Z", kA, kNow - 3 * kDay),
                                               Entry("20260102T000000Z", kA, kNow - 2 * kDay),
                                               Entry("20260103T000000Z", kA, kNow - kDay)};
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kA, kWeek, kNow), "20260103T000000Z");
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, "", kWeek, kNow), "20260103T000000Z");
}

TEST(PickBackupDueForRestoreTestTest, APassWithinTheIntervalMeansNothingIsDue) {
  // Daily backups, a weekly test: the one proven two days ago stands for the week.
  std::vector<archive::BackupEntry> entries = {
      Entry("20260101T000000Z", kA, kNow - 3 * kDay, kNow - 2 * kDay),
      Entry("20260102T000000Z", kA, kNow - kDay)};
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kA, kWeek, kNow), std::nullopt);
  // Older than the interval: the newest is due.
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kA, std::chrono::hours(24), kNow),
            "20260102T000000Z");
}

TEST(PickBackupDueForRestoreTestTest, AFreshFailureIsNotRetriedAnOlderOneIsTried) {
  std::vector<archive::BackupEntry> entries = {
      Entry("20260101T000000Z", kA, kNow - 3 * kDay),
      Entry("20260102T000000Z", kA, kNow - kDay, kNow - 1000, "prepare: the tool failed")};
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kA, kWeek, kNow), "20260101T000000Z");
  entries[0] = Entry("20260101T000000Z", kA, kNow - 3 * kDay, kNow - 2000, "table check: x");
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kA, kWeek, kNow), std::nullopt);
  // A failure older than the interval is tried again.
  entries[1].checks->restore_tested_at_ms = kNow - 8 * kDay;
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kA, kWeek, kNow), "20260102T000000Z");
}

TEST(PickBackupDueForRestoreTestTest, OnlyCompleteBackupsOfTheCluster) {
  std::vector<archive::BackupEntry> entries = {Entry("20260101T000000Z", kA, kNow - 3 * kDay),
                                               Entry("20260102T000000Z", kB, kNow - 2 * kDay),
                                               Entry("20260103T000000Z", kA, kNow - kDay)};
  entries[2].complete = false;
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kA, kWeek, kNow), "20260101T000000Z");
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kB, kWeek, kNow), "20260102T000000Z");
  // Another cluster's fresh pass does not stand for this one.
  entries[1] = Entry("20260102T000000Z", kB, kNow - 2 * kDay, kNow - 1000);
  EXPECT_EQ(PickBackupDueForRestoreTest(entries, kA, kWeek, kNow), "20260101T000000Z");
}

TEST(BackupDueForRestoreTestTest, ReadsTheStoresListing) {
  Archive archive;
  archive.store = store::MakeMemoryStore();
  archive.key = archive::KeyFromSecret("a test key of at least thirty-two characters");
  auto due = BackupDueForRestoreTest(archive, kA, kWeek);
  ASSERT_TRUE(due) << due.error().ToString();
  EXPECT_EQ(*due, std::nullopt);
}

}  // namespace
}  // namespace replboot::daemon
