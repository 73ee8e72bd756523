#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "replboot/base/files.h"
#include "replboot/store/object_store.h"
#include "replboot/testing/temp_dir.h"

namespace replboot::store {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

class FileStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.url = "file://" + dir_.path() + "/root";
    auto r = OpenStore(options);
    ASSERT_TRUE(r) << r.error().ToString();
    store_ = std::move(*r);
  }
  std::string Root() const { return dir_.path() + "/root"; }

  testing::TempDir dir_{"file-store"};
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(FileStoreTest, PutGetOverwrite) {
  ASSERT_TRUE(store_->Put("a/b/c", Bytes("hello")).ok());
  EXPECT_TRUE(fs::is_regular_file(Root() + "/a/b/c"));
  auto got = store_->Get("a/b/c", 100);
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(*got, Bytes("hello"));
  ASSERT_TRUE(store_->Put("a/b/c", Bytes("bye")).ok());
  EXPECT_EQ(*store_->Get("a/b/c", 100), Bytes("bye"));
  // No temp file is left next to it.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(Root() + "/a/b")) entries += !e.path().empty();
  EXPECT_EQ(entries, 1);
}

TEST_F(FileStoreTest, GetMissingIsNotFound) {
  EXPECT_EQ(store_->Get("nope", 10).error().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Get("no/such/dir", 10).error().code(), StatusCode::kNotFound);
}

TEST_F(FileStoreTest, GetOverMaxBytesIsCorruptionAndNamesTheSizes) {
  ASSERT_TRUE(store_->Put("big", std::vector<uint8_t>(1000, 7)).ok());
  auto r = store_->Get("big", 999);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), StatusCode::kCorruption);
  EXPECT_NE(r.error().message().find("1000 bytes"), std::string::npos) << r.error().message();
  EXPECT_TRUE(store_->Get("big", 1000));
}

TEST_F(FileStoreTest, ListIsRecursiveSortedAndFiltered) {
  for (const char* key : {"b/2", "a/1", "a/10/x", "a/9", "c", "ab"}) {
    ASSERT_TRUE(store_->Put(key, Bytes(key)).ok()) << key;
  }
  // A leftover temp file (a killed writer) and a symlink are not objects.
  { std::ofstream(Root() + "/a/1.tmp.0123456789abcdef") << "partial"; }
  fs::create_symlink("/etc", Root() + "/a/link");
  auto all = store_->List("");
  ASSERT_TRUE(all) << all.error().ToString();
  std::vector<std::string> keys;
  for (const auto& o : *all) keys.push_back(o.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"a/1", "a/10/x", "a/9", "ab", "b/2", "c"}));
  EXPECT_EQ((*all)[1].size, 6u);
  auto a = store_->List("a/");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size(), 3u);
  auto a1 = store_->List("a/1");
  ASSERT_TRUE(a1);
  ASSERT_EQ(a1->size(), 2u);
  EXPECT_EQ((*a1)[1].key, "a/10/x");
  EXPECT_EQ(store_->List("a")->size(), 4u);  // a plain string prefix: "ab" too
  EXPECT_TRUE(store_->List("zzz/")->empty());
  EXPECT_EQ(store_->List("/a").error().code(), StatusCode::kInvalidArgument);
}

TEST_F(FileStoreTest, DeleteRemovesEmptyParents) {
  ASSERT_TRUE(store_->Put("x/y/z", Bytes("1")).ok());
  ASSERT_TRUE(store_->Put("x/keep", Bytes("1")).ok());
  ASSERT_TRUE(store_->Delete("x/y/z").ok());
  EXPECT_FALSE(fs::exists(Root() + "/x/y"));
  EXPECT_TRUE(fs::exists(Root() + "/x/keep"));
  EXPECT_TRUE(store_->Delete("x/y/z").ok());       // absent: ok
  EXPECT_TRUE(store_->Delete("never/there").ok());
  EXPECT_TRUE(fs::exists(Root()));                  // the root itself stays
  ASSERT_TRUE(store_->Delete("x/keep").ok());
  EXPECT_TRUE(fs::exists(Root()));
  EXPECT_FALSE(fs::exists(Root() + "/x"));
}

TEST_F(FileStoreTest, PutIfAbsent) {
  auto first = store_->PutIfAbsent("locks/owner", Bytes("me"));
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_TRUE(*first);
  auto second = store_->PutIfAbsent("locks/owner", Bytes("you"));
  ASSERT_TRUE(second);
  EXPECT_FALSE(*second);
  EXPECT_EQ(*store_->Get("locks/owner", 10), Bytes("me"));
  EXPECT_EQ(store_->List("locks/")->size(), 1u);  // no temp file left behind
}

TEST_F(FileStoreTest, PutIfAbsentRaceHasExactlyOneWinner) {
  for (int round = 0; round < 20; ++round) {
    const std::string key = "race/" + std::to_string(round);
    std::atomic<int> winners = 0;
    std::atomic<int> errors = 0;
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        auto r = store_->PutIfAbsent(key, Bytes(std::to_string(i)));
        if (!r) ++errors;
        else if (*r) ++winners;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(winners.load(), 1) << key;
    EXPECT_EQ(errors.load(), 0);
  }
}

TEST_F(FileStoreTest, RefusesBadKeysAndTempNames) {
  EXPECT_EQ(store_->Put("../escape", Bytes("x")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put("a/", Bytes("x")).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Put("a.tmp.0123456789abcdef", Bytes("x")).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->Put("a.tmp.notatemp", Bytes("x")).ok());
  EXPECT_EQ(store_->Get("/etc/passwd", 10).error().code(), StatusCode::kInvalidArgument);
}

TEST_F(FileStoreTest, NeverFollowsASymlinkOutOfTheRoot) {
  const std::string outside = dir_.path() + "/outside";
  fs::create_directory(outside);
  { std::ofstream(outside + "/secret") << "secret"; }
  fs::create_directory_symlink(outside, Root() + "/evil");
  EXPECT_FALSE(store_->Get("evil/secret", 100));
  EXPECT_FALSE(store_->Put("evil/planted", Bytes("x")).ok());
  EXPECT_FALSE(fs::exists(outside + "/planted"));
  fs::create_symlink(outside + "/secret", Root() + "/file-link");
  EXPECT_FALSE(store_->Get("file-link", 100));
  ASSERT_TRUE(store_->Put("file-link", Bytes("mine")).ok());  // replaces the link itself
  std::ifstream in(outside + "/secret");
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "secret");
}

TEST_F(FileStoreTest, FileWhereADirectoryShouldBeIsAnError) {
  ASSERT_TRUE(store_->Put("a", Bytes("file")).ok());
  Status s = store_->Put("a/b", Bytes("x"));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a directory"), std::string::npos) << s.message();
}

// ENOSPC from a real full filesystem: a 64 KiB tmpfs in a mount namespace of a child process
// (needs root, as CI runs; the child ends with its namespace, so nothing stays mounted).
TEST(FileStoreNoSpaceTest, FullVolumeIsNoSpaceWithAClearMessage) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  testing::TempDir dir("file-store-full");
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipefd[0]);
    auto report = [&](const std::string& line) {
      (void)!::write(pipefd[1], line.data(), line.size());
      ::_exit(0);
    };
    if (::unshare(CLONE_NEWNS) != 0) report("skip: unshare");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) report("skip: private");
    if (::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "size=64k") != 0) report("skip: mount");
    StoreOptions options;
    options.url = "file://" + dir.path() + "/s";
    auto store = OpenStore(options);
    if (!store) report("open failed: " + store.error().ToString());
    Status s = (*store)->Put("big", std::vector<uint8_t>(1 << 20, 1));
    auto if_absent = (*store)->PutIfAbsent("big2", std::vector<uint8_t>(1 << 20, 1));
    report(std::to_string(static_cast<int>(s.code())) + " " +
           std::to_string(if_absent ? -1 : static_cast<int>(if_absent.error().code())) + " " +
           s.message());
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (out.starts_with("skip:")) GTEST_SKIP() << "cannot mount a tmpfs here (" << out << ")";
  const std::string no_space = std::to_string(static_cast<int>(StatusCode::kNoSpace));
  EXPECT_TRUE(out.starts_with(no_space + " " + no_space + " ")) << out;
  EXPECT_NE(out.find("no space left on the store's volume"), std::string::npos) << out;
  EXPECT_NE(out.find("put big in file://"), std::string::npos) << out;
}

}  // namespace
}  // namespace replboot::store
