#include "replboot/base/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

namespace replboot::files {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/replboot-files-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FilesTest, AtomicWriteReplacesContentWithExactMode) {
  std::string path = dir_ + "/secret.cnf";
  ASSERT_TRUE(WriteFileAtomic(path, "old", 0644).ok());
  ASSERT_TRUE(WriteFileAtomic(path, "[client]\npassword=x\n", 0600).ok());
  EXPECT_EQ(*ReadFile(path), "[client]\npassword=x\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No temp file left behind.
  int entries = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(FilesTest, ReadMissingFileNamesPath) {
  auto r = ReadFile(dir_ + "/nope");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kNotFound);
  EXPECT_NE(r.error().message().find("/nope"), std::string::npos);
}

TEST_F(FilesTest, EmptyDirAndRemoveAll) {
  EXPECT_TRUE(*IsEmptyDir(dir_));
  EXPECT_TRUE(*IsEmptyDir(dir_ + "/missing"));
  std::filesystem::create_directories(dir_ + "/a/b");
  EXPECT_FALSE(*IsEmptyDir(dir_));
  EXPECT_TRUE(RemoveAll(dir_ + "/a").ok());
  EXPECT_TRUE(RemoveAll(dir_ + "/a").ok());
  EXPECT_TRUE(*IsEmptyDir(dir_));
  EXPECT_GT(*FreeBytes(dir_), 0u);
}

}  // namespace
}  // namespace replboot::files
