#include "replboot/base/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

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

}  // namespace
}  // namespace replboot::files
