#include "replboot/clone/cluster_id.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "replboot/testing/temp_dir.h"

namespace replboot::clone {
namespace {

TEST(ClusterIdTest, NewIdsAreVersion4UuidsAndDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    auto id = NewClusterId();
    ASSERT_TRUE(id) << id.error().ToString();
    EXPECT_TRUE(ValidClusterId(*id)) << *id;
    EXPECT_EQ((*id)[14], '4') << *id;
    EXPECT_NE(std::string("89ab").find((*id)[19]), std::string::npos) << *id;
    seen.insert(*id);
  }
  EXPECT_EQ(seen.size(), 64u);
}

TEST(ClusterIdTest, OnlyTheOneFormIsValid) {
  EXPECT_TRUE(ValidClusterId("0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"));
  EXPECT_FALSE(ValidClusterId(""));
  EXPECT_FALSE(ValidClusterId("0F8E2C1A-3B4D-4E5F-8A9B-0C1D2E3F4A5B"));
  EXPECT_FALSE(ValidClusterId("0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b\n"));
  EXPECT_FALSE(ValidClusterId("0f8e2c1a3b4d-4e5f-8a9b-0c1d2e3f4a5b-"));
  EXPECT_FALSE(ValidClusterId("0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5g"));
}

TEST(ClusterIdTest, WriteThenRead) {
  replboot::testing::TempDir tmp("cluster-id-test");
  auto none = ReadClusterId(tmp.path());
  ASSERT_TRUE(none) << none.error().ToString();
  EXPECT_FALSE(none->has_value());

  const std::string id = "0f8e2c1a-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
  ASSERT_TRUE(WriteClusterId(tmp.path(), id, std::nullopt).ok());
  auto read = ReadClusterId(tmp.path());
  ASSERT_TRUE(read) << read.error().ToString();
  EXPECT_EQ(read->value_or(""), id);
  struct stat st;
  ASSERT_EQ(::stat(tmp.Path(std::string(kClusterIdName)).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);

  EXPECT_EQ(WriteClusterId(tmp.path(), "nope", std::nullopt).code(),
            StatusCode::kInvalidArgument);
}

TEST(ClusterIdTest, AFileThatIsNoIdIsCorruption) {
  replboot::testing::TempDir tmp("cluster-id-test");
  std::ofstream(tmp.Path(std::string(kClusterIdName))) << "hello\n";
  auto read = ReadClusterId(tmp.path());
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace replboot::clone
