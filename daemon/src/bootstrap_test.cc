#include "replboot/daemon/bootstrap.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "replboot/base/files.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::daemon {
namespace {

using conf::Role;
using ::replboot::testing::TempDir;

TEST(DecideBootstrapTest, Table) {
  struct Row {
    Role role;
    DatadirState state;
    bool can_clone;
    BootstrapAction want;
  };
  const Row rows[] = {
      {Role::kPrimary, DatadirState::kEmpty, false, BootstrapAction::kInitialize},
      {Role::kPrimary, DatadirState::kEmpty, true, BootstrapAction::kInitialize},
      {Role::kPrimary, DatadirState::kRootPasswordPending, false,
       BootstrapAction::kFinishInitialize},
      {Role::kPrimary, DatadirState::kInitialized, false, BootstrapAction::kUseAsIs},
      {Role::kPrimary, DatadirState::kInitialized, true, BootstrapAction::kUseAsIs},
      {Role::kReplica, DatadirState::kEmpty, true, BootstrapAction::kClone},
      {Role::kReplica, DatadirState::kEmpty, false, BootstrapAction::kNoClone},
      {Role::kReplica, DatadirState::kRootPasswordPending, true,
       BootstrapAction::kFinishInitialize},
      {Role::kReplica, DatadirState::kInitialized, true, BootstrapAction::kUseAsIs},
      {Role::kReplica, DatadirState::kInitialized, false, BootstrapAction::kUseAsIs},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(DecideBootstrap(r.role, r.state, r.can_clone), r.want)
        << conf::RoleName(r.role) << " state=" << static_cast<int>(r.state)
        << " clone=" << r.can_clone << " got "
        << BootstrapActionName(DecideBootstrap(r.role, r.state, r.can_clone));
  }
}

TEST(InspectDatadirTest, MissingEmptyPendingInitialized) {
  TempDir tmp("bootstrap-test");
  std::string datadir = tmp.Path("data");
  auto missing = InspectDatadir(datadir);
  ASSERT_TRUE(missing) << missing.error().ToString();
  EXPECT_EQ(*missing, DatadirState::kEmpty);

  ASSERT_EQ(::mkdir(datadir.c_str(), 0750), 0);
  EXPECT_EQ(*InspectDatadir(datadir), DatadirState::kEmpty);

  ASSERT_TRUE(files::WriteFileAtomic(datadir + "/ibdata1", "x").ok());
  EXPECT_EQ(*InspectDatadir(datadir), DatadirState::kInitialized);

  ASSERT_TRUE(files::WriteFileAtomic(datadir + "/" + kRootPasswordPendingMarker, "x").ok());
  EXPECT_EQ(*InspectDatadir(datadir), DatadirState::kRootPasswordPending);
}

TEST(RootPasswordInitSqlTest, SetsPasswordAndDropsPasswordlessUsers) {
  std::string sql = RootPasswordInitSql("s3cret", {"buildhost"});
  // The binlog must not keep the password: logging is off before the first statement.
  EXPECT_EQ(sql.rfind("SET SESSION sql_log_bin=0;\n", 0), 0u) << sql;
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

}  // namespace
}  // namespace replboot::daemon
