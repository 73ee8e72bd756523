#include "replboot/daemon/bootstrap.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "replboot/base/datadir_files.h"
#include "replboot/base/files.h"
#include "replboot/clone/cluster_id.h"
#include "replboot/clone/datadir.h"
#include "replboot/daemon/primary_recovery.h"
#include "replboot/db/client.h"
#include "replboot/replication/configure.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::daemon {
namespace {

using conf::Role;
using ::replboot::testing::TempDir;

using A = BootstrapAction;
using D = clone::DirState;

DatadirFacts Facts(D datadir, D staging = D::kAbsent, bool old = false, bool replaces = false,
                   bool root_pending = false) {
  DatadirFacts f;
  f.paths.datadir = datadir;
  f.paths.staging = staging;
  f.paths.old_present = old;
  f.paths.staging_replaces = replaces;
  f.root_password_pending = root_pending;
  return f;
}

// Every row of the one table (bootstrap.h), for both roles where the role does not matter.
TEST(DecideBootstrapTest, RecoveryRowsComeFirstForEitherRole) {
  for (Role role : {Role::kPrimary, Role::kReplica}) {
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kAbsent, D::kCommitted), true), A::kFinishSwap);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kEmpty, D::kCommitted, true), true), A::kFinishSwap);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kData, D::kCommitted, false, true), true),
              A::kFinishSwap);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kData, D::kCommitted, true, true), true),
              A::kDiscardStaging);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kData, D::kCommitted), true), A::kDiscardStaging);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kAbsent, D::kData), true), A::kDiscardStaging);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kCommitted, D::kEmpty), true), A::kDiscardStaging);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kAbsent, D::kAbsent, true), true), A::kRestoreOld);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kEmpty, D::kAbsent, true), true), A::kRestoreOld);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kCommitted, D::kAbsent, true), true), A::kDropOld);
    // A staging dir wins over a pending root password: settle the paths first.
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kData, D::kData, false, false, true), true),
              A::kDiscardStaging);
    EXPECT_EQ(DecideBootstrap(role, Facts(D::kData, D::kAbsent, false, false, true), true),
              A::kFinishInitialize);
  }
}

TEST(DecideBootstrapTest, FinalRows) {
  struct Row {
    Role role;
    D datadir;
    bool can_clone;
    bool force;
    A want;
  };
  const Row rows[] = {
      {Role::kPrimary, D::kAbsent, false, false, A::kInitialize},
      {Role::kPrimary, D::kEmpty, false, false, A::kInitialize},
      {Role::kPrimary, D::kEmpty, true, false, A::kAskPeers},  // a lost volume? ask first
      {Role::kPrimary, D::kAbsent, true, false, A::kAskPeers},
      {Role::kPrimary, D::kData, true, false, A::kUseAsIs},
      {Role::kPrimary, D::kData, true, true, A::kUseAsIs},  // a primary never clones
      {Role::kPrimary, D::kCommitted, true, false, A::kUseAsIs},
      {Role::kReplica, D::kEmpty, true, false, A::kClone},
      {Role::kReplica, D::kAbsent, true, false, A::kClone},
      {Role::kReplica, D::kEmpty, false, false, A::kNoClone},
      {Role::kReplica, D::kData, true, false, A::kUseAsIs},
      {Role::kReplica, D::kCommitted, true, false, A::kUseAsIs},
      {Role::kReplica, D::kData, true, true, A::kClone},  // force-reclone keeps it aside
      {Role::kReplica, D::kCommitted, true, true, A::kClone},
      {Role::kReplica, D::kData, false, true, A::kNoClone},
  };
  for (const Row& r : rows) {
    A got = DecideBootstrap(r.role, Facts(r.datadir), r.can_clone, r.force);
    EXPECT_EQ(got, r.want) << conf::RoleName(r.role) << " datadir=" << clone::DirStateName(r.datadir)
                           << " clone=" << r.can_clone << " force=" << r.force << " got "
                           << BootstrapActionName(got);
  }
}

TEST(ReadDatadirFactsTest, MissingEmptyPendingData) {
  TempDir tmp("bootstrap-test");
  std::string datadir = tmp.Path("data");
  auto missing = ReadDatadirFacts(datadir);
  ASSERT_TRUE(missing) << missing.error().ToString();
  EXPECT_EQ(missing->paths.datadir, D::kAbsent);
  EXPECT_FALSE(missing->root_password_pending);

  ASSERT_EQ(::mkdir(datadir.c_str(), 0750), 0);
  EXPECT_EQ(ReadDatadirFacts(datadir)->paths.datadir, D::kEmpty);

  ASSERT_TRUE(files::WriteFileAtomic(datadir + "/ibdata1", "x").ok());
  EXPECT_EQ(ReadDatadirFacts(datadir)->paths.datadir, D::kData);

  ASSERT_TRUE(files::WriteFileAtomic(datadir + "/" + kRootPasswordPendingMarker, "x").ok());
  EXPECT_TRUE(ReadDatadirFacts(datadir)->root_password_pending);
}

// SettleDatadir on real directories: the recovery rows are carried out until a final one.
class SettleDatadirTest : public ::testing::Test {
 protected:
  void Put(const std::string& path, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << content;
  }
  std::string Read(const std::string& path) {
    auto r = files::ReadFile(path);
    return r ? *r : "<missing>";
  }

  TempDir tmp_{"settle-test"};
  const std::string datadir_ = tmp_.Path("data");
};

TEST_F(SettleDatadirTest, CommitReplacesEmptyDatadir) {
  std::filesystem::create_directories(datadir_);
  Put(clone::StagingPath(datadir_) + "/ibdata1", "new");
  ASSERT_TRUE(clone::WriteMarker(clone::StagingPath(datadir_), "{}").ok());
  auto action = SettleDatadir(datadir_, Role::kReplica, true);
  ASSERT_TRUE(action) << action.error().ToString();
  EXPECT_EQ(*action, BootstrapAction::kUseAsIs);
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "new");
}

TEST_F(SettleDatadirTest, UncommittedStagingIsDiscardedAndDataKept) {
  Put(datadir_ + "/ibdata1", "mine");
  Put(clone::StagingPath(datadir_) + "/ibdata1", "partial");
  auto action = SettleDatadir(datadir_, Role::kReplica, true);
  ASSERT_TRUE(action);
  EXPECT_EQ(*action, BootstrapAction::kUseAsIs);
  EXPECT_FALSE(std::filesystem::exists(clone::StagingPath(datadir_)));
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "mine");
}

TEST_F(SettleDatadirTest, KilledBetweenTheTwoRenamesFinishesTheSwap) {
  // datadir already moved aside, committed staging not yet renamed.
  Put(clone::OldPath(datadir_) + "/ibdata1", "old");
  Put(clone::StagingPath(datadir_) + "/ibdata1", "new");
  ASSERT_TRUE(clone::WriteMarker(clone::StagingPath(datadir_), "{\"replace\": true}").ok());
  auto action = SettleDatadir(datadir_, Role::kReplica, true);
  ASSERT_TRUE(action);
  EXPECT_EQ(*action, BootstrapAction::kUseAsIs);
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "new");
  EXPECT_FALSE(std::filesystem::exists(clone::OldPath(datadir_)));
}

TEST_F(SettleDatadirTest, UncommittedForceRecloneRestoresOld) {
  Put(clone::OldPath(datadir_) + "/ibdata1", "old");
  Put(clone::StagingPath(datadir_) + "/ibdata1", "partial");
  auto action = SettleDatadir(datadir_, Role::kReplica, true);
  ASSERT_TRUE(action);
  EXPECT_EQ(*action, BootstrapAction::kUseAsIs);
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "old");
  EXPECT_FALSE(std::filesystem::exists(clone::StagingPath(datadir_)));
}

TEST_F(SettleDatadirTest, EmptyReplicaDatadirAsksForClone) {
  std::filesystem::create_directories(datadir_);
  auto action = SettleDatadir(datadir_, Role::kReplica, true);
  ASSERT_TRUE(action);
  EXPECT_EQ(*action, BootstrapAction::kClone);
  EXPECT_EQ(*SettleDatadir(datadir_, Role::kPrimary, true), BootstrapAction::kAskPeers);
  EXPECT_EQ(*SettleDatadir(datadir_, Role::kPrimary, false), BootstrapAction::kInitialize);
}

TEST(RootPasswordInitSqlTest, SetsPasswordAndDropsPasswordlessUsers) {
  std::string sql = RootPasswordInitSql("s3cret", {"buildhost"});
  // The binlog must not keep the password: logging is off before the first statement.
  EXPECT_EQ(sql.rfind("SET SESSION sql_log_bin=0;\n", 0), 0u) << sql;
  // The literals below use backslash escapes, whatever sql_mode the server was given.
  EXPECT_NE(
      sql.find(std::string("\n") + db::kBackslashEscapesSql + ";\nSET NAMES utf8mb4;\nALTER USER"),
      std::string::npos)
      << sql;
  EXPECT_NE(sql.find("ALTER USER 'root'@'localhost' IDENTIFIED BY 's3cret';\n"), std::string::npos)
      << sql;
  EXPECT_NE(sql.find("CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY 's3cret';\n"),
            std::string::npos);
  EXPECT_NE(sql.find("GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;\n"),
            std::string::npos);
  EXPECT_NE(sql.find("DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', ''@'localhost', "
                     "'root'@'buildhost', ''@'buildhost';\n"),
            std::string::npos)
      << sql;
}

TEST(RootPasswordInitSqlTest, EscapesThePasswordAndKeepsOneStatementPerLine) {
  std::string sql = RootPasswordInitSql("it's\\a\npw", {});
  EXPECT_NE(sql.find("IDENTIFIED BY 'it\\'s\\\\a\\npw';"), std::string::npos) << sql;
  // mysqld reads an init file line by line: every line is one whole statement.
  size_t start = 0;
  while (start < sql.size()) {
    size_t end = sql.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "last line not terminated";
    std::string line = sql.substr(start, end - start);
    EXPECT_TRUE(line.ends_with(";")) << line;
    start = end + 1;
  }
  // localhost is never dropped even if it is the machine name.
  EXPECT_EQ(RootPasswordInitSql("x", {"localhost"}).find("'root'@'localhost',"), std::string::npos);
}

TEST(InitFileTest, PrivateModesAndRemoval) {
  TempDir tmp("bootstrap-test");
  std::string dir, path;
  {
    auto file = InitFile::Create(tmp.path(), "ALTER USER ...;\n", std::nullopt, std::nullopt);
    ASSERT_TRUE(file) << file.error().ToString();
    dir = file->dir();
    path = file->path();
    struct stat st;
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(*files::ReadFile(path), "ALTER USER ...;\n");
    EXPECT_EQ(dir.rfind(tmp.path() + "/replboot-init.", 0), 0u) << dir;

    ASSERT_TRUE(file->Remove().ok());
    EXPECT_NE(::access(dir.c_str(), F_OK), 0) << "init dir left behind";
    ASSERT_TRUE(file->Remove().ok());  // twice is fine
  }
  {
    // The destructor removes it too (error paths).
    auto file = InitFile::Create(tmp.path(), "x", std::nullopt, std::nullopt);
    ASSERT_TRUE(file);
    dir = file->dir();
  }
  EXPECT_NE(::access(dir.c_str(), F_OK), 0) << "init dir left behind by destructor";
}

TEST(InitFileTest, MissingParentIsAnErrorNamingIt) {
  auto file = InitFile::Create("/nonexistent/replboot", "x", std::nullopt, std::nullopt);
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().message().find("/nonexistent/replboot"), std::string::npos)
      << file.error().message();
}

TEST(ArgvTest, MysqldDefaultsFileFirstAndNoSecret) {
  auto argv = MysqldArgv("/usr/sbin/mariadbd", "/etc/replboot/replboot.cnf", std::string("mysql"),
                         std::string("/run/mysqld/replboot-init.abc/init.sql"));
  ASSERT_EQ(argv.size(), 4u);
  EXPECT_EQ(argv[0], "/usr/sbin/mariadbd");
  EXPECT_EQ(argv[1], "--defaults-file=/etc/replboot/replboot.cnf");
  EXPECT_EQ(argv[2], "--user=mysql");
  EXPECT_EQ(argv[3], "--init-file=/run/mysqld/replboot-init.abc/init.sql");
  EXPECT_EQ(MysqldArgv("mysqld", "/c.cnf", std::nullopt, std::nullopt).size(), 2u);
}

TEST(ArgvTest, InitializeByFlavour) {
  conf::Config config;
  config.mysql.datadir = "/var/lib/mysql";
  config.mysql.root_password = "never-on-argv";
  auto maria = InitializeArgv(Flavour::kMariaDB, config, "mariadbd",
                              "/etc/replboot/replboot.cnf", std::string("mysql"));
  EXPECT_EQ(maria[0], "mariadb-install-db");
  EXPECT_EQ(maria[1], "--no-defaults");
  auto has = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  EXPECT_TRUE(has(maria, "--datadir=/var/lib/mysql"));
  EXPECT_TRUE(has(maria, "--auth-root-authentication-method=normal"));
  EXPECT_TRUE(has(maria, "--user=mysql"));
  auto mysql = InitializeArgv(Flavour::kMySQL, config, "/usr/sbin/mysqld",
                              "/etc/replboot/replboot.cnf", std::nullopt);
  EXPECT_EQ(mysql[0], "/usr/sbin/mysqld");
  EXPECT_EQ(mysql[1], "--defaults-file=/etc/replboot/replboot.cnf");
  EXPECT_TRUE(has(mysql, "--initialize-insecure"));
  EXPECT_FALSE(has(mysql, "--user=mysql"));
  for (const auto& arg : maria) EXPECT_EQ(arg.find("never-on-argv"), std::string::npos);
  for (const auto& arg : mysql) EXPECT_EQ(arg.find("never-on-argv"), std::string::npos);
}

// Each owner's name for its datadir file is the one in the reserved list (a literal of its
// own would not be refused in a donor's stream).
TEST(DatadirFilesTest, EveryOwnersNameIsReserved) {
  auto reserved = [](std::string_view name) {
    return std::find(datadir_files::kAll.begin(), datadir_files::kAll.end(), name) !=
           datadir_files::kAll.end();
  };
  EXPECT_TRUE(reserved(clone::kMarkerName));
  EXPECT_TRUE(reserved(clone::kClusterIdName));
  EXPECT_TRUE(reserved(replication::kIntentFileName));
  EXPECT_TRUE(reserved(kPromotionMarker));
  EXPECT_TRUE(reserved(kRootPasswordPendingMarker));
  EXPECT_TRUE(reserved(datadir_files::kResumeState));
  EXPECT_TRUE(reserved(datadir_files::kResumeJournal));
  EXPECT_EQ(datadir_files::kAll.size(), 7u);
}

}  // namespace
}  // namespace replboot::daemon
