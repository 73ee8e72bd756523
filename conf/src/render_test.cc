#include "replboot/conf/render.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "replboot/base/files.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::conf {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Config GoldenConfig() {
  Config c;
  c.cluster.service = "mysql";
  // Pass-through options appear last, sorted; "1G" and a boolean as the TOML loader
  // renders it.
  c.mysql.options["max_connections"] = "500";
  c.mysql.options["innodb_buffer_pool_size"] = "1G";
  c.mysql.options["performance_schema"] = "OFF";
  return c;
}

struct GoldenCase {
  const char* hostname;
  Flavour flavour;
  const char* file;
};

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, MatchesByteForByte) {
  const GoldenCase& gc = GetParam();
  auto id = ParseIdentity(gc.hostname, 100);
  ASSERT_TRUE(id) << id.error().ToString();
  auto result = RenderMysqldConfig(GoldenConfig(), *id, gc.flavour);
  ASSERT_TRUE(result) << result.error().ToString();
  const std::string& rendered = *result;
  std::string path = std::string(REPLBOOT_CONF_TESTDATA) + "/" + gc.file;
  if (const char* update = ::getenv("REPLBOOT_TEST_UPDATE_GOLDEN"); update && *update == '1') {
    std::ofstream(path, std::ios::binary) << rendered;
  }
  auto golden = files::ReadFile(path);
  ASSERT_TRUE(golden) << golden.error().ToString();
  EXPECT_EQ(rendered, *golden) << "rendered config differs from " << path
                               << " (REPLBOOT_TEST_UPDATE_GOLDEN=1 rewrites it; review the diff)";
}

INSTANTIATE_TEST_SUITE_P(
    FlavoursAndRoles, GoldenTest,
    ::testing::Values(GoldenCase{"mysql-0", Flavour::kMariaDB, "mariadb-primary.cnf"},
                      GoldenCase{"mysql-2", Flavour::kMariaDB, "mariadb-replica.cnf"},
                      GoldenCase{"mysql-0", Flavour::kMySQL, "mysql-primary.cnf"},
                      GoldenCase{"mysql-2", Flavour::kMySQL, "mysql-replica.cnf"}));

std::string Render(const std::string& hostname, Flavour flavour, const Config& c = Config()) {
  auto id = ParseIdentity(hostname, c.node.server_id_offset);
  EXPECT_TRUE(id);
  auto rendered = RenderMysqldConfig(c, *id, flavour);
  EXPECT_TRUE(rendered) << rendered.error().ToString();
  return rendered.value_or("");
}

TEST(RenderTest, RoleAndFlavourSettings) {
  std::string maria_replica = Render("mysql-2", Flavour::kMariaDB);
  EXPECT_THAT(maria_replica, HasSubstr("\nserver-id=102\n"));
  EXPECT_THAT(maria_replica, HasSubstr("\nread_only=ON\n"));
  EXPECT_THAT(maria_replica, HasSubstr("\nlog_slave_updates=ON\n"));
  EXPECT_THAT(maria_replica, HasSubstr("\nskip_slave_start=ON\n"));
  EXPECT_THAT(maria_replica, Not(HasSubstr("gtid_mode")));
  EXPECT_THAT(maria_replica, Not(HasSubstr("super_read_only")));

  std::string maria_primary = Render("mysql-0", Flavour::kMariaDB);
  EXPECT_THAT(maria_primary, HasSubstr("\nserver-id=100\n"));
  EXPECT_THAT(maria_primary, HasSubstr("\nread_only=OFF\n"));
  EXPECT_THAT(maria_primary, HasSubstr("\nlog-bin=mysql-bin\n"));
  EXPECT_THAT(maria_primary, HasSubstr("\nbinlog_format=ROW\n"));

  std::string mysql_replica = Render("mysql-3", Flavour::kMySQL);
  EXPECT_THAT(mysql_replica, HasSubstr("\nsuper_read_only=ON\n"));
  EXPECT_THAT(mysql_replica, HasSubstr("\ngtid_mode=ON\n"));
  EXPECT_THAT(mysql_replica, HasSubstr("\nenforce_gtid_consistency=ON\n"));
  EXPECT_THAT(mysql_replica, HasSubstr("\nskip_replica_start=ON\n"));
  EXPECT_THAT(mysql_replica, HasSubstr("\nrelay_log_recovery=ON\n"));
  EXPECT_THAT(mysql_replica, Not(HasSubstr("slave")));
}

TEST(RenderTest, OptionsComeLastAndAreQuotedWhenNeeded) {
  Config c;
  c.mysql.options["zz_last"] = "1";
  c.mysql.options["aa_first"] = "2";
  c.mysql.options["init_connect"] = "SET NAMES 'utf8mb4' # comment-like";
  c.mysql.options["tmpdir"] = "C:\\tmp";
  c.mysql.datadir = "/data/my sql";
  std::string out = Render("mysql-1", Flavour::kMariaDB, c);
  size_t options = out.find("\n# [mysql.options]: last");
  ASSERT_NE(options, std::string::npos);
  EXPECT_GT(options, out.find("read_only=ON"));
  EXPECT_LT(out.find("aa_first=2"), out.find("zz_last=1"));
  EXPECT_GT(out.find("aa_first=2"), options);
  EXPECT_THAT(out, HasSubstr("\ninit_connect=\"SET NAMES 'utf8mb4' # comment-like\"\n"));
  EXPECT_THAT(out, HasSubstr("\ntmpdir=\"C:\\\\tmp\"\n"));
  EXPECT_THAT(out, HasSubstr("\ndatadir=\"/data/my sql\"\n"));
}

TEST(FlavourTest, FromRealVersionStrings) {
  EXPECT_EQ(FlavourFromVersionText("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu "
                                   "on x86_64 (Debian 12)\n"),
            Flavour::kMariaDB);
  EXPECT_EQ(FlavourFromVersionText("/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL "
                                   "Community Server - GPL)\n"),
            Flavour::kMySQL);
  EXPECT_EQ(FlavourFromVersionText("/usr/sbin/mysqld  Ver 8.4.0-1 for Linux on x86_64 (Percona "
                                   "Server (GPL), Release 1, Revision 4b1d9ed4)\n"),
            Flavour::kMySQL);
  EXPECT_EQ(FlavourFromVersionText("/usr/sbin/mysqld  Ver 10.6.16-MariaDB-0ubuntu0.22.04.1 for "
                                   "debian-linux-gnu on x86_64 (Ubuntu 22.04)"),
            Flavour::kMariaDB);
}

class DetectTest : public ::testing::Test {
 protected:
  // A stand-in server binary that prints `text` for --version and exits `code`.
  std::string FakeServer(const std::string& text, int code = 0) {
    std::string path = tmp_.Path("fake-mysqld");
    std::ofstream(path) << "#!/bin/sh\necho '" << text << "'\nexit " << code << "\n";
    ::chmod(path.c_str(), 0755);
    return path;
  }

  replboot::testing::TempDir tmp_{"render-test"};
};

TEST_F(DetectTest, ConfiguredFlavourWinsWithoutRunningAnything) {
  Config c;
  c.mysql.mysqld = tmp_.Path("does-not-exist");
  c.node.flavour = "mysql";
  auto f = DetectFlavour(c);
  ASSERT_TRUE(f) << f.error().ToString();
  EXPECT_EQ(*f, Flavour::kMySQL);
  c.node.flavour = "mariadb";
  EXPECT_EQ(*DetectFlavour(c), Flavour::kMariaDB);
}

TEST_F(DetectTest, RunsTheServerBinary) {
  Config c;
  c.mysql.mysqld = FakeServer("mysqld  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu");
  auto f = DetectFlavour(c);
  ASSERT_TRUE(f) << f.error().ToString();
  EXPECT_EQ(*f, Flavour::kMariaDB);

  c.mysql.mysqld = FakeServer("/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64");
  f = DetectFlavour(c);
  ASSERT_TRUE(f) << f.error().ToString();
  EXPECT_EQ(*f, Flavour::kMySQL);
}

TEST_F(DetectTest, MissingOrFailingBinaryIsAClearError) {
  Config c;
  c.mysql.mysqld = tmp_.Path("does-not-exist");
  auto f = DetectFlavour(c);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code(), StatusCode::kNotFound);
  EXPECT_THAT(f.error().message(), HasSubstr(tmp_.Path("does-not-exist")));
  EXPECT_THAT(f.error().message(), HasSubstr("node.flavour"));

  c.mysql.mysqld = FakeServer("boom", 3);
  f = DetectFlavour(c);
  ASSERT_FALSE(f);
  EXPECT_THAT(f.error().message(), HasSubstr("exit code 3"));
}

TEST(ServerBinaryTest, ByFlavourUnlessConfigured) {
  Config c;
  EXPECT_EQ(ServerBinary(c, Flavour::kMariaDB), "mariadbd");
  EXPECT_EQ(ServerBinary(c, Flavour::kMySQL), "mysqld");
  c.mysql.mysqld = "/opt/mysql/bin/mysqld";
  EXPECT_EQ(ServerBinary(c, Flavour::kMariaDB), "/opt/mysql/bin/mysqld");
}

TEST_F(DetectTest, WriteMysqldConfigCreatesDirAndFile) {
  std::string dir = tmp_.Path("etc/replboot");
  auto path = WriteMysqldConfig(dir, "[mysqld]\nserver-id=101\n");
  ASSERT_TRUE(path) << path.error().ToString();
  EXPECT_EQ(*path, dir + "/replboot.cnf");
  EXPECT_EQ(*files::ReadFile(*path), "[mysqld]\nserver-id=101\n");
  struct stat st;
  ASSERT_EQ(::stat(path->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);

  // Rewriting replaces the content.
  ASSERT_TRUE(WriteMysqldConfig(dir, "[mysqld]\nserver-id=102\n"));
  EXPECT_EQ(*files::ReadFile(*path), "[mysqld]\nserver-id=102\n");

  // A symlink planted at the file's name is replaced, not written through.
  std::ofstream(tmp_.Path("victim")) << "untouched";
  ASSERT_EQ(::unlink(path->c_str()), 0);
  ASSERT_EQ(::symlink(tmp_.Path("victim").c_str(), path->c_str()), 0);
  ASSERT_TRUE(WriteMysqldConfig(dir, "[mysqld]\nserver-id=103\n"));
  EXPECT_EQ(*files::ReadFile(tmp_.Path("victim")), "untouched");
  ASSERT_EQ(::lstat(path->c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));

  std::ofstream(tmp_.Path("plain-file")) << "x";
  auto bad = WriteMysqldConfig(tmp_.Path("plain-file"), "x");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message(), HasSubstr(tmp_.Path("plain-file")));
}

}  // namespace
}  // namespace replboot::conf
