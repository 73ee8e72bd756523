// ChooseBackup over a store in memory: which backup a restore (and a lost primary) takes.
#include "replboot/daemon/backups.h"

#include <gtest/gtest.h>

#include <vector>

#include "replboot/archive/writer.h"

namespace replboot::daemon {
namespace {

constexpr char kClusterA[] = "11111111-1111-4111-8111-111111111111";
constexpr char kClusterB[] = "22222222-2222-4222-8222-222222222222";

class ChooseBackupTest : public ::testing::Test {
 protected:
  ChooseBackupTest() {
    archive_.store = store::MakeMemoryStore();
    archive_.key = archive::KeyFromSecret("a test key of at least thirty-two characters");
  }

  // A whole backup of `cluster` with id `id`, finished at `finished_ms`.
  void AddBackup(const std::string& id, const std::string& cluster, int64_t finished_ms) {
    archive::WriterOptions options;
    options.backup_id = id;
    options.key = archive_.key;
    auto writer = archive::BackupWriter::Create(*archive_.store, options);
    ASSERT_TRUE(writer) << writer.error().ToString();
    std::vector<uint8_t> bytes(1000, 7);
    ASSERT_TRUE((*writer)->Write(bytes).ok());
    archive::Manifest meta;
    meta.cluster_id = cluster;
    meta.node = "mysql-1";
    meta.flavour = "mariadb";
    meta.server_version = "10.11.19-MariaDB";
    meta.tool_version = "mariabackup 10.11.19";
    meta.gtid_position = "0-100-5";
    meta.started_at_ms = finished_ms - 1000;
    meta.finished_at_ms = finished_ms;
    auto manifest = (*writer)->Finish(meta);
    ASSERT_TRUE(manifest) << manifest.error().ToString();
  }

  Archive archive_;
};

TEST_F(ChooseBackupTest, AnEmptyStoreIsNotFound) {
  auto chosen = ChooseBackup(archive_, "latest", "");
  ASSERT_FALSE(chosen);
  EXPECT_EQ(chosen.error().code(), StatusCode::kNotFound);
  EXPECT_NE(chosen.error().message().find("no complete backup"), std::string::npos);
}

TEST_F(ChooseBackupTest, LatestOfTheOnlyClusterIsTheNewest) {
  AddBackup("20261201T000000Z", kClusterA, 1'000'000);
  AddBackup("20261202T000000Z", kClusterA, 2'000'000);
  auto chosen = ChooseBackup(archive_, "latest", "");
  ASSERT_TRUE(chosen) << chosen.error().ToString();
  EXPECT_EQ(chosen->backup_id, "20261202T000000Z");
  EXPECT_EQ(chosen->gtid_position, "0-100-5");
}

TEST_F(ChooseBackupTest, SeveralClustersNeedOneNamed) {
  AddBackup("20261201T000000Z", kClusterA, 1'000'000);
  AddBackup("20261202T000000Z", kClusterB, 2'000'000);
  auto chosen = ChooseBackup(archive_, "latest", "");
  ASSERT_FALSE(chosen);
  EXPECT_EQ(chosen.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(chosen.error().message().find("several clusters"), std::string::npos);
  EXPECT_NE(chosen.error().message().find(kClusterB), std::string::npos);
  auto named = ChooseBackup(archive_, "latest", kClusterA);
  ASSERT_TRUE(named) << named.error().ToString();
  EXPECT_EQ(named->backup_id, "20261201T000000Z");
}

TEST_F(ChooseBackupTest, AnIdOfAnotherClusterIsRefused) {
  AddBackup("20261201T000000Z", kClusterA, 1'000'000);
  auto chosen = ChooseBackup(archive_, "20261201T000000Z", kClusterB);
  ASSERT_FALSE(chosen);
  EXPECT_NE(chosen.error().message().find(std::string("not of ") + kClusterB), std::string::npos);
  EXPECT_FALSE(ChooseBackup(archive_, "../etc", ""));
  EXPECT_EQ(ChooseBackup(archive_, "20261209T000000Z", "").error().code(), StatusCode::kNotFound);
}

TEST_F(ChooseBackupTest, AnIncompleteBackupIsNamedNotTaken) {
  AddBackup("20261201T000000Z", kClusterA, 1'000'000);
  // A newer backup whose run died: objects, no manifest.
  const std::vector<uint8_t> junk(10, 1);
  ASSERT_TRUE(archive_.store->Put("backups/20261203T000000Z/objects/00000000", junk).ok());
  auto chosen = ChooseBackup(archive_, "latest", "");
  ASSERT_TRUE(chosen) << chosen.error().ToString();
  EXPECT_EQ(chosen->backup_id, "20261201T000000Z");
}

}  // namespace
}  // namespace replboot::daemon
