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

DatadirInspection St(DirState d, DirState s = DirState::kAbsent, bool old = false,
                     bool replaces = false) {
  DatadirInspection st;
  st.datadir = d;
  st.staging = s;
  st.old_present = old;
  st.staging_replaces = replaces;
  return st;
}

TEST(DecideTest, Table) {
  using D = DirState;
  // Staging rows.
  EXPECT_EQ(Decide(St(D::kAbsent, D::kCommitted), false, false), Action::kFinishSwap);
  EXPECT_EQ(Decide(St(D::kEmpty, D::kCommitted, true), false, false), Action::kFinishSwap);
  EXPECT_EQ(Decide(St(D::kData, D::kCommitted, false, true), false, false), Action::kFinishSwap);
  EXPECT_EQ(Decide(St(D::kData, D::kCommitted, true, true), false, false), Action::kDiscardStaging);
  EXPECT_EQ(Decide(St(D::kData, D::kCommitted), false, false), Action::kDiscardStaging);
  EXPECT_EQ(Decide(St(D::kAbsent, D::kData), false, false), Action::kDiscardStaging);
  EXPECT_EQ(Decide(St(D::kCommitted, D::kEmpty), false, false), Action::kDiscardStaging);
  // Old rows.
  EXPECT_EQ(Decide(St(D::kAbsent, D::kAbsent, true), false, false), Action::kRestoreOld);
  EXPECT_EQ(Decide(St(D::kEmpty, D::kAbsent, true), false, false), Action::kRestoreOld);
  EXPECT_EQ(Decide(St(D::kCommitted, D::kAbsent, true), false, false), Action::kDropOld);
  // Steady rows.
  EXPECT_EQ(Decide(St(D::kCommitted), false, false), Action::kStart);
  EXPECT_EQ(Decide(St(D::kAbsent), false, false), Action::kClone);
  EXPECT_EQ(Decide(St(D::kEmpty), false, false), Action::kClone);
  EXPECT_EQ(Decide(St(D::kData), false, false), Action::kStart);
  EXPECT_EQ(Decide(St(D::kData), false, true), Action::kClone);
  EXPECT_EQ(Decide(St(D::kCommitted), false, true), Action::kClone);
  // The primary never clones.
  EXPECT_EQ(Decide(St(D::kAbsent), true, false), Action::kInitialize);
  EXPECT_EQ(Decide(St(D::kEmpty), true, true), Action::kInitialize);
  EXPECT_EQ(Decide(St(D::kData), true, true), Action::kStart);
}

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

TEST_F(DatadirFsTest, CommitReplacesEmptyDatadir) {
  fs::create_directories(datadir_);
  Put(StagingPath(datadir_) + "/ibdata1", "new");
  ASSERT_TRUE(WriteMarker(StagingPath(datadir_), "{}").ok());
  auto action = Recover(datadir_, false, false);
  ASSERT_TRUE(action) << action.error().ToString();
  EXPECT_EQ(*action, Action::kStart);
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "new");
}

TEST_F(DatadirFsTest, UncommittedStagingIsDiscardedAndDataKept) {
  Put(datadir_ + "/ibdata1", "mine");
  Put(StagingPath(datadir_) + "/ibdata1", "partial");
  auto action = Recover(datadir_, false, false);
  ASSERT_TRUE(action);
  EXPECT_EQ(*action, Action::kStart);
  EXPECT_FALSE(fs::exists(StagingPath(datadir_)));
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "mine");
}

TEST_F(DatadirFsTest, ForceRecloneKeepsOldUntilCommit) {
  Put(datadir_ + "/ibdata1", "old");
  Put(StagingPath(datadir_) + "/ibdata1", "new");
  ASSERT_TRUE(WriteMarker(StagingPath(datadir_), "{\"replace\": true}").ok());
  ASSERT_TRUE(FinishSwap(datadir_).ok());
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "new");
  EXPECT_FALSE(fs::exists(OldPath(datadir_)));
}

TEST_F(DatadirFsTest, KilledBetweenTheTwoRenamesFinishesTheSwap) {
  // datadir already moved aside, committed staging not yet renamed.
  Put(OldPath(datadir_) + "/ibdata1", "old");
  Put(StagingPath(datadir_) + "/ibdata1", "new");
  ASSERT_TRUE(WriteMarker(StagingPath(datadir_), "{\"replace\": true}").ok());
  auto action = Recover(datadir_, false, false);
  ASSERT_TRUE(action);
  EXPECT_EQ(*action, Action::kStart);
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "new");
  EXPECT_FALSE(fs::exists(OldPath(datadir_)));
}

TEST_F(DatadirFsTest, UncommittedForceRecloneRestoresOld) {
  Put(OldPath(datadir_) + "/ibdata1", "old");
  Put(StagingPath(datadir_) + "/ibdata1", "partial");
  auto action = Recover(datadir_, false, false);
  ASSERT_TRUE(action);
  EXPECT_EQ(*action, Action::kStart);
  EXPECT_EQ(Read(datadir_ + "/ibdata1"), "old");
  EXPECT_FALSE(fs::exists(StagingPath(datadir_)));
}

TEST_F(DatadirFsTest, EmptyReplicaDatadirAsksForClone) {
  fs::create_directories(datadir_);
  auto action = Recover(datadir_, false, false);
  ASSERT_TRUE(action);
  EXPECT_EQ(*action, Action::kClone);
  EXPECT_EQ(*Recover(datadir_, true, false), Action::kInitialize);
}

}  // namespace
}  // namespace replboot::clone
