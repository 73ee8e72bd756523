#include "replboot/base/files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "replboot/testing/temp_dir.h"

namespace replboot::files {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  replboot::testing::TempDir tmp_{"files-test"};
};

TEST_F(FilesTest, AtomicWriteReplacesContentWithExactMode) {
  std::string path = tmp_.Path("secret.cnf");
  ASSERT_TRUE(WriteFileAtomic(path, "old", 0644).ok());
  ASSERT_TRUE(WriteFileAtomic(path, "[client]\npassword=x\n", 0600).ok());
  EXPECT_EQ(*ReadFile(path), "[client]\npassword=x\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No temp file left behind.
  int entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(tmp_.path())) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(FilesTest, ReadMissingFileNamesPath) {
  auto r = ReadFile(tmp_.Path("nope"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kNotFound);
  EXPECT_NE(r.error().message().find("/nope"), std::string::npos);
}

TEST_F(FilesTest, EmptyDirAndRemoveAll) {
  EXPECT_TRUE(*IsEmptyDir(tmp_.path()));
  EXPECT_TRUE(*IsEmptyDir(tmp_.Path("missing")));
  std::filesystem::create_directories(tmp_.Path("a/b"));
  EXPECT_FALSE(*IsEmptyDir(tmp_.path()));
  EXPECT_TRUE(RemoveAll(tmp_.Path("a")).ok());
  EXPECT_TRUE(RemoveAll(tmp_.Path("a")).ok());
  EXPECT_TRUE(*IsEmptyDir(tmp_.path()));
  EXPECT_GT(*FreeBytes(tmp_.path()), 0u);
}

int CountEntries(const std::string& dir) {
  int entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir)) ++entries;
  return entries;
}

// Root writes into directories another user can write (the mysql user's socket dir): a
// symlink planted at the final name or at the old predictable temp name is never followed.
TEST_F(FilesTest, AtomicWriteFollowsNoPlantedSymlink) {
  std::string victim = tmp_.Path("victim");
  ASSERT_TRUE(WriteFileAtomic(victim, "untouched", 0644).ok());
  std::string path = tmp_.Path("init.sql");
  std::filesystem::create_symlink(victim, path);
  std::filesystem::create_symlink(victim, path + ".tmp." + std::to_string(::getpid()));
  std::filesystem::create_symlink(victim, path + ".tmp.1");

  ASSERT_TRUE(WriteFileAtomic(path, "secret", 0600).ok());
  EXPECT_EQ(*ReadFile(victim), "untouched");
  EXPECT_FALSE(std::filesystem::is_symlink(path));
  EXPECT_EQ(*ReadFile(path), "secret");
  struct stat st {};
  ASSERT_EQ(::lstat(victim.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  // victim, init.sql and the two planted temp names: no temp of ours left.
  EXPECT_EQ(CountEntries(tmp_.path()), 4);
}

TEST_F(FilesTest, AtomicWriteNamesAMissingDirectory) {
  Status s = WriteFileAtomic(tmp_.Path("missing/file"), "x");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.message();
}

TEST_F(FilesTest, OwnedTempDirIsPrivateAndRemovedWithItsContent) {
  std::string path;
  {
    auto dir = OwnedTempDir::Create(tmp_.path(), "replboot-x.");
    ASSERT_TRUE(dir) << dir.error().message();
    path = dir->path();
    EXPECT_EQ(path.rfind(tmp_.Path("replboot-x."), 0), 0u) << path;
    struct stat st {};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    std::filesystem::create_directories(path + "/target/sub");
    ASSERT_TRUE(WriteFileAtomic(path + "/target/sub/f", "x").ok());
    ASSERT_TRUE(WriteFileAtomic(path + "/backup.cnf", "pw", 0600).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(FilesTest, SweepRemovesOnlyUnlockedLeftoversAndFollowsNoSymlink) {
  auto live = OwnedTempDir::Create(tmp_.path(), "replboot-backup-");
  ASSERT_TRUE(live);
  ASSERT_TRUE(WriteFileAtomic(live->path() + "/backup.cnf", "live", 0600).ok());
  // What a killed owner leaves: a directory nobody holds, with a secret and a subtree.
  std::string stale = tmp_.Path("replboot-backup-dead01");
  std::filesystem::create_directories(stale + "/target/x");
  ASSERT_TRUE(WriteFileAtomic(stale + "/backup.cnf", "old secret", 0600).ok());
  // A symlink inside the stale tree and one named like ours: neither is followed.
  std::string keep = tmp_.Path("keep");
  std::filesystem::create_directories(keep);
  ASSERT_TRUE(WriteFileAtomic(keep + "/precious", "x").ok());
  std::filesystem::create_directory_symlink(keep, stale + "/target/link");
  std::filesystem::create_directory_symlink(keep, tmp_.Path("replboot-backup-link"));
  std::filesystem::create_directories(tmp_.Path("other-dir"));

  auto removed = SweepStaleTempDirs(tmp_.path(), "replboot-backup-");
  ASSERT_TRUE(removed) << removed.error().message();
  EXPECT_EQ(*removed, 1);
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_EQ(*ReadFile(live->path() + "/backup.cnf"), "live");
  EXPECT_EQ(*ReadFile(keep + "/precious"), "x");
  EXPECT_TRUE(std::filesystem::is_symlink(tmp_.Path("replboot-backup-link")));
  EXPECT_TRUE(std::filesystem::exists(tmp_.Path("other-dir")));

  // Once its owner is done, a second sweep finds nothing more of ours.
  ASSERT_TRUE(live->Remove().ok());
  EXPECT_EQ(*SweepStaleTempDirs(tmp_.path(), "replboot-backup-"), 0);
  EXPECT_EQ(*SweepStaleTempDirs(tmp_.Path("missing"), "replboot-backup-"), 0);
}

TEST_F(FilesTest, MakeDirsCreatesTheTreeAndWritesThroughItsHandle) {
  std::string dir = tmp_.Path("a/b/c");
  auto fd = MakeDirs(dir, 0755);
  ASSERT_TRUE(fd) << fd.error().message();
  ASSERT_TRUE(WriteFileAtomicAt(*fd, dir, "f.cnf", "x", 0600).ok());
  ::close(*fd);
  EXPECT_EQ(*ReadFile(dir + "/f.cnf"), "x");
  // Existing components (the operator's layout, symlinks included) are fine.
  std::filesystem::create_directory_symlink(tmp_.Path("a"), tmp_.Path("link"));
  auto again = MakeDirs(tmp_.Path("link/b/c/d"), 0755);
  ASSERT_TRUE(again) << again.error().message();
  ::close(*again);
  EXPECT_TRUE(std::filesystem::is_directory(tmp_.Path("a/b/c/d")));
  // A file where a directory belongs is an error naming the path.
  ASSERT_TRUE(WriteFileAtomic(tmp_.Path("file"), "x").ok());
  auto bad = MakeDirs(tmp_.Path("file/sub"), 0755);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find(tmp_.Path("file")), std::string::npos);
  EXPECT_FALSE(WriteFileAtomicAt(AT_FDCWD, ".", "../escape", "x").ok());
}

}  // namespace
}  // namespace replboot::files
