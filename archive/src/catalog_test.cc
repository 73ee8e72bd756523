#include "replboot/archive/catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memory_store_test_util.h"
#include "replboot/archive/layout.h"
#include "replboot/archive/writer.h"

namespace replboot::archive {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MemoryStore;

const BackupKey& Key() {
  static const BackupKey key = KeyFromSecret("catalog test secret 0123456789abcdef01234567");
  return key;
}
const BackupKey& OtherKey() {
  static const BackupKey key = KeyFromSecret("another cluster's secret 0123456789abcdef012");
  return key;
}

constexpr size_t kObjectBytes = 4096;

Manifest Write(MemoryStore& store, const std::string& id, const std::string& cluster,
               int64_t finished_at_ms, size_t bytes = 2 * kObjectBytes + 7,
               const BackupKey& key = Key()) {
  WriterOptions options;
  options.backup_id = id;
  options.key = key;
  options.object_bytes = kObjectBytes;
  auto writer = BackupWriter::Create(store, options);
  EXPECT_TRUE(writer.has_value()) << writer.error().ToString();
  EXPECT_TRUE((*writer)->Write(testing::SysbenchLikeBytes(bytes, 3)).ok());
  Manifest metadata;
  metadata.cluster_id = cluster;
  metadata.node = "mysql-0";
  metadata.flavour = "mariadb";
  metadata.started_at_ms = finished_at_ms - 1000;
  metadata.finished_at_ms = finished_at_ms;
  auto manifest = (*writer)->Finish(metadata);
  EXPECT_TRUE(manifest.has_value()) << manifest.error().ToString();
  return manifest ? *manifest : Manifest{};
}

class CatalogTest : public ::testing::Test {
 protected:
  const BackupEntry& Entry(const std::vector<BackupEntry>& entries, const std::string& id) {
    for (const auto& e : entries) {
      if (e.id == id) return e;
    }
    ADD_FAILURE() << "no entry " << id;
    return entries.front();
  }
  MemoryStore store_;
};

TEST_F(CatalogTest, ListsCompleteIncompleteAndBrokenBackups) {
  Write(store_, "20261201T000000Z", "A", 1'796'083'200'000);
  Write(store_, "20261202T000000Z", "B", 1'796'169'600'000);
  // Objects but no manifest: a backup being written, or one that died.
  Write(store_, "20261203T000000Z", "A", 1'796'256'000'000);
  ASSERT_TRUE(store_.Delete(ManifestKey("20261203T000000Z")).ok());
  // A manifest edited in the store.
  Write(store_, "20261204T000000Z", "A", 1'796'342'400'000);
  auto& text = store_.objects()[ManifestKey("20261204T000000Z")];
  std::string edited(text.begin(), text.end());
  edited.replace(edited.find("mysql-0"), 7, "mysql-9");
  text.assign(edited.begin(), edited.end());
  // Another key's backup.
  Write(store_, "20261205T000000Z", "A", 1'796'428'800'000, 100, OtherKey());
  // An object gone.
  Write(store_, "20261206T000000Z", "A", 1'796'515'200'000);
  ASSERT_TRUE(store_.Delete(ObjectKey("20261206T000000Z", 1)).ok());
  // Keys that are not of the layout.
  store_.objects()["backups/README"] = {1};
  store_.objects()["backups/notanid/manifest.json"] = {1};
  store_.objects()["other/file"] = {1};
  // Checks on the first.
  BackupChecks checks;
  checks.verified_at_ms = 1'796'100'000'000;
  ASSERT_TRUE(WriteChecks(store_, Key(), "20261201T000000Z", checks).ok());

  auto entries = ListBackups(store_, Key());
  ASSERT_TRUE(entries.has_value()) << entries.error().ToString();
  std::vector<std::string> ids;
  for (const auto& e : *entries) ids.push_back(e.id);
  EXPECT_THAT(ids, ElementsAre("20261201T000000Z", "20261202T000000Z", "20261203T000000Z",
                               "20261204T000000Z", "20261205T000000Z", "20261206T000000Z"));

  const auto& first = Entry(*entries, "20261201T000000Z");
  EXPECT_TRUE(first.complete);
  EXPECT_EQ(first.problem, "");
  EXPECT_EQ(first.stored_objects, 3u);
  ASSERT_TRUE(first.checks.has_value());
  EXPECT_EQ(first.checks->verified_at_ms, checks.verified_at_ms);
  ASSERT_TRUE(first.manifest.has_value());
  EXPECT_EQ(first.manifest->cluster_id, "A");

  const auto& unfinished = Entry(*entries, "20261203T000000Z");
  EXPECT_FALSE(unfinished.complete);
  EXPECT_FALSE(unfinished.manifest.has_value());
  EXPECT_EQ(unfinished.stored_objects, 3u);
  EXPECT_THAT(unfinished.problem, HasSubstr("no manifest"));

  const auto& edited_entry = Entry(*entries, "20261204T000000Z");
  EXPECT_FALSE(edited_entry.complete);
  EXPECT_FALSE(edited_entry.manifest.has_value());
  EXPECT_THAT(edited_entry.problem, HasSubstr("fails its MAC"));

  const auto& foreign = Entry(*entries, "20261205T000000Z");
  EXPECT_FALSE(foreign.complete);
  EXPECT_THAT(foreign.problem, HasSubstr("was made with key " + OtherKey().id));

  const auto& holed = Entry(*entries, "20261206T000000Z");
  EXPECT_FALSE(holed.complete);
  EXPECT_TRUE(holed.manifest.has_value());
  EXPECT_EQ(holed.problem, "1 of its 3 objects missing, 0 of another size");
}

TEST_F(CatalogTest, LatestBackupIsTheNewestCompleteOfTheCluster) {
  Write(store_, "20261201T000000Z", "A", 1'796'083'200'000);
  Write(store_, "20261202T000000Z", "A", 1'796'169'600'000);
  Write(store_, "20261203T000000Z", "B", 1'796'256'000'000);
  Write(store_, "20261204T000000Z", "A", 1'796'342'400'000);
  ASSERT_TRUE(store_.Delete(ManifestKey("20261204T000000Z")).ok());  // incomplete
  auto latest = LatestBackup(store_, Key(), "A");
  ASSERT_TRUE(latest.has_value()) << latest.error().ToString();
  EXPECT_EQ(latest->backup_id, "20261202T000000Z");
  EXPECT_EQ(LatestBackup(store_, Key(), "B")->backup_id, "20261203T000000Z");
  auto none = LatestBackup(store_, Key(), "C");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code(), StatusCode::kNotFound);
  EXPECT_EQ(none.error().message(), "no complete backup of cluster C in memory://test");
}

TEST_F(CatalogTest, LoadManifestChecksItIsThatBackups) {
  Write(store_, "20261201T000000Z", "A", 1'796'083'200'000);
  auto loaded = LoadManifest(store_, Key(), "20261201T000000Z");
  ASSERT_TRUE(loaded.has_value()) << loaded.error().ToString();
  EXPECT_EQ(loaded->objects.size(), 3u);

  store_.objects()[ManifestKey("20261209T000000Z")] =
      store_.objects()[ManifestKey("20261201T000000Z")];
  auto moved = LoadManifest(store_, Key(), "20261209T000000Z");
  ASSERT_FALSE(moved.has_value());
  EXPECT_EQ(moved.error().code(), StatusCode::kCorruption);
  EXPECT_THAT(moved.error().message(), HasSubstr("is the manifest of backup 20261201T000000Z"));

  auto absent = LoadManifest(store_, Key(), "20261210T000000Z");
  ASSERT_FALSE(absent.has_value());
  EXPECT_EQ(absent.error().code(), StatusCode::kNotFound);
  EXPECT_EQ(LoadManifest(store_, Key(), "../etc").error().code(), StatusCode::kInvalidArgument);

  store_.get_error = [](const std::string&) { return Status(StatusCode::kUnavailable, "503"); };
  EXPECT_EQ(LoadManifest(store_, Key(), "20261201T000000Z").error().code(),
            StatusCode::kUnavailable);
  // A store that is down fails the listing instead of showing every backup as broken.
  auto listed = ListBackups(store_, Key());
  ASSERT_FALSE(listed.has_value());
  EXPECT_EQ(listed.error().code(), StatusCode::kUnavailable);
  store_.list_error = Status(StatusCode::kPermissionDenied, "memory://test: 403");
  EXPECT_EQ(ListBackups(store_, Key()).error().code(), StatusCode::kPermissionDenied);
}

TEST_F(CatalogTest, DeleteRemovesTheManifestFirst) {
  Write(store_, "20261201T000000Z", "A", 1'796'083'200'000);
  Write(store_, "20261202T000000Z", "A", 1'796'169'600'000);
  ASSERT_TRUE(ClaimBackup(store_, "20261201T000000Z", "mysql-0", 1).value());
  ASSERT_TRUE(WriteChecks(store_, Key(), "20261201T000000Z", BackupChecks{}).ok());
  ASSERT_TRUE(DeleteBackup(store_, "20261201T000000Z").ok());
  EXPECT_THAT(store_.deleted(),
              ElementsAre(ManifestKey("20261201T000000Z"), ObjectKey("20261201T000000Z", 0),
                          ObjectKey("20261201T000000Z", 1), ObjectKey("20261201T000000Z", 2),
                          ChecksKey("20261201T000000Z"), ClaimKey("20261201T000000Z")));
  for (const auto& key : store_.Keys()) EXPECT_THAT(key, HasSubstr("20261202T000000Z"));

  // Cut short after the manifest: never listed as whole; deleting again finishes.
  store_.fail_deletes_after = static_cast<int>(store_.deleted().size()) + 1;
  EXPECT_EQ(DeleteBackup(store_, "20261202T000000Z").code(), StatusCode::kUnavailable);
  auto entries = ListBackups(store_, Key());
  ASSERT_TRUE(entries.has_value());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_FALSE(entries->front().complete);
  store_.fail_deletes_after.reset();
  ASSERT_TRUE(DeleteBackup(store_, "20261202T000000Z").ok());
  EXPECT_TRUE(store_.Keys().empty());
}

TEST_F(CatalogTest, ChecksAndClaims) {
  auto missing = WriteChecks(store_, Key(), "20261201T000000Z", BackupChecks{});
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_.Keys().empty());

  Write(store_, "20261201T000000Z", "A", 1'796'083'200'000);
  BackupChecks checks;
  checks.restore_tested_at_ms = 1'796'090'000'000;
  checks.restore_test_rows = 42;
  ASSERT_TRUE(WriteChecks(store_, Key(), "20261201T000000Z", checks).ok());
  auto loaded = LoadChecks(store_, Key(), "20261201T000000Z");
  ASSERT_TRUE(loaded.has_value() && loaded->has_value());
  EXPECT_EQ(**loaded, checks);
  EXPECT_FALSE(LoadChecks(store_, Key(), "20261202T000000Z")->has_value());

  // Checks copied from another backup are a problem of the entry, which stays complete.
  Write(store_, "20261202T000000Z", "A", 1'796'169'600'000);
  store_.objects()[ChecksKey("20261202T000000Z")] = store_.objects()[ChecksKey("20261201T000000Z")];
  auto entries = ListBackups(store_, Key());
  ASSERT_TRUE(entries.has_value());
  const auto& second = Entry(*entries, "20261202T000000Z");
  EXPECT_TRUE(second.complete);
  EXPECT_FALSE(second.checks.has_value());
  EXPECT_THAT(second.problem, HasSubstr("checks.json: "));

  // A multi-line, non-ASCII or overlong error is stored so that it reads back.
  checks.restore_test_error = "server start: log ends:\n2026 [ERROR] caf\xc3\xa9\tx\r\n";
  checks.verify_error = std::string(10'000, 'e');
  ASSERT_TRUE(WriteChecks(store_, Key(), "20261201T000000Z", checks).ok());
  loaded = LoadChecks(store_, Key(), "20261201T000000Z");
  ASSERT_TRUE(loaded.has_value() && loaded->has_value()) << loaded.error().ToString();
  EXPECT_EQ((*loaded)->restore_test_error, "server start: log ends: | 2026 [ERROR] caf?? x");
  EXPECT_EQ((*loaded)->verify_error.size(), kMaxCheckErrorChars);
  EXPECT_TRUE((*loaded)->verify_error.ends_with("..."));

  EXPECT_TRUE(ClaimBackup(store_, "20261203T000000Z", "mysql-1", 5).value());
  EXPECT_FALSE(ClaimBackup(store_, "20261203T000000Z", "mysql-2", 6).value());
  EXPECT_FALSE(ClaimBackup(store_, "nope", "mysql-2", 6).has_value());
}

}  // namespace
}  // namespace replboot::archive
