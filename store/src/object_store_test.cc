#include "replboot/store/object_store.h"

#include <gtest/gtest.h>

#include <thread>

#include "replboot/testing/temp_dir.h"

namespace replboot::store {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(CheckKeyTest, AcceptsPlainKeys) {
  for (const char* key : {"a", "backups/2026-11-25/chunk-0001", "a.b/c_d-e", "x/.hidden", "a..b"}) {
    EXPECT_TRUE(CheckKey(key).ok()) << key;
  }
}

TEST(CheckKeyTest, RefusesEachBadShape) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "empty"},
      {"/abs", "starts with '/'"},
      {"a//b", "\"//\""},
      {"..", "\"..\""},
      {"a/../b", "\"..\""},
      {"a/./b", "\"..\""},
      {"a/.", "\"..\""},
      {std::string("a\0b", 3), "NUL"},
      {std::string(1025, 'k'), "1024"},
  };
  for (const auto& [key, why] : cases) {
    Status s = CheckKey(key);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << key;
    EXPECT_NE(s.message().find(why), std::string::npos) << s.message();
  }
}

TEST(OpenStoreTest, RefusesBadUrls) {
  for (const char* url : {"", "ftp://x", "file://relative/path", "file://", "file:///a/../b",
                          "s3://", "s3://UPPER", "s3://ab", "s3://bucket_x/p", "s3://1.2.3.4",
                          "s3://bucket/a/../b", "s3://bucket//x"}) {
    StoreOptions options;
    options.url = url;
    auto r = OpenStore(options);
    ASSERT_FALSE(r) << url;
    EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument) << url << ": " << r.error().ToString();
  }
}

TEST(OpenStoreTest, FileStoreIsCreatedAndDescribed) {
  testing::TempDir dir("store-open");
  StoreOptions options;
  options.url = "file://" + dir.path() + "/new/store/";
  auto r = OpenStore(options);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ((*r)->Describe(), "file://" + dir.path() + "/new/store");
  ASSERT_TRUE((*r)->Put("k", Bytes("v")).ok());
}

TEST(MemoryStoreTest, BehavesLikeAStore) {
  auto store = MakeMemoryStore();
  ASSERT_TRUE(store->Put("a/1", Bytes("one")).ok());
  ASSERT_TRUE(store->Put("a/2", Bytes("two!")).ok());
  ASSERT_TRUE(store->Put("b", Bytes("")).ok());
  auto got = store->Get("a/1", 3);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, Bytes("one"));
  EXPECT_EQ(store->Get("a/2", 3).error().code(), StatusCode::kCorruption);
  EXPECT_EQ(store->Get("zz", 3).error().code(), StatusCode::kNotFound);
  auto list = store->List("a/");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[1].key, "a/2");
  EXPECT_EQ((*list)[1].size, 4u);
  EXPECT_EQ(store->List("")->size(), 3u);
  EXPECT_FALSE(*store->PutIfAbsent("b", Bytes("x")));
  EXPECT_TRUE(store->Delete("b").ok());
  EXPECT_TRUE(store->Delete("b").ok());
  EXPECT_TRUE(*store->PutIfAbsent("b", Bytes("x")));
  EXPECT_EQ(store->Put("../x", Bytes("")).code(), StatusCode::kInvalidArgument);
}

TEST(MemoryStoreTest, PutIfAbsentHasOneWinner) {
  auto store = MakeMemoryStore();
  std::atomic<int> winners = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = store->PutIfAbsent("lock", Bytes(std::to_string(i)));
      if (r && *r) ++winners;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
}

}  // namespace
}  // namespace replboot::store
