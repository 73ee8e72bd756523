#include "replboot/clone/datadir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "replboot/base/files.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::clone {
namespace {

namespace fs = std::filesystem;

class DatadirFsTest : public ::testing::Test {
 protected:
  void Put(const std::string& path, const std::string& content) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << content;
  }
  std::string Read(const std::string& path) {
    auto r = files::ReadFile(path);
    return r ? *r : "<missing>";
  }

  replboot::testing::TempDir tmp_{"datadir-test"};
  const std::string datadir_ = tmp_.Path("data");
};

TEST_F(DatadirFsTest, InspectSeesEachState) {
  auto st = InspectDatadir(datadir_);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->datadir, DirState::kAbsent);
  fs::create_directories(datadir_);
  EXPECT_EQ(InspectDatadir(datadir_ + "/")->datadir, DirState::kEmpty);
  Put(datadir_ + "/ibdata1", "x");
  EXPECT_EQ(InspectDatadir(datadir_)->datadir, DirState::kData);
  Put(datadir_ + "/" + std::string(kMarkerName), "{}");
  EXPECT_EQ(InspectDatadir(datadir_)->datadir, DirState::kCommitted);
  Put(StagingPath(datadir_) + "/ibdata1", "y");
  EXPECT_EQ(InspectDatadir(datadir_)->staging, DirState::kData);
  Put(StagingPath(datadir_) + "/" + std::string(kMarkerName), "{\"replace\": true}");
  st = InspectDatadir(datadir_);
  EXPECT_EQ(st->staging, DirState::kCommitted);
  EXPECT_TRUE(st->staging_replaces);
  Put(StagingPath(datadir_) + "/" + std::string(kMarkerName), "{torn");
  EXPECT_EQ(InspectDatadir(datadir_)->staging, DirState::kData);  // unreadable marker: not a commit
}

TEST_F(DatadirFsTest, CommitIntoAbsentDatadir) {
  const std::string staging = StagingPath(datadir_);
  Put(staging + "/ibdata1", "new");
  ASSERT_TRUE(WriteMarker(staging, "{\"replace\": false}").ok());
  ASSERT_TRUE(FinishSwap(datadir_).ok());
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "new");
  EXPECT_FALSE(fs::exists(staging));
  EXPECT_EQ(InspectDatadir(datadir_)->datadir, DirState::kCommitted);
}

TEST_F(DatadirFsTest, ForceRecloneKeepsOldUntilCommit) {
  Put(datadir_ + "/ibdata1", "old");
  Put(StagingPath(datadir_) + "/ibdata1", "new");
  ASSERT_TRUE(WriteMarker(StagingPath(datadir_), "{\"replace\": true}").ok());
  ASSERT_TRUE(FinishSwap(datadir_).ok());
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "new");
  EXPECT_FALSE(fs::exists(OldPath(datadir_)));
}

}  // namespace
}  // namespace replboot::clone
