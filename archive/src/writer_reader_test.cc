#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <stop_token>

#include "crypto.h"
#include "memory_store_test_util.h"
#include "replboot/archive/layout.h"
#include "replboot/archive/manifest.h"
#include "replboot/archive/object.h"
#include "replboot/archive/reader.h"
#include "replboot/archive/writer.h"

namespace replboot::archive {
namespace {

using ::testing::HasSubstr;
using testing::MemoryStore;

constexpr size_t kObjectBytes = 4096;
constexpr const char* kId = "20261207T061500Z";

const BackupKey& Key() {
  static const BackupKey key = KeyFromSecret("writer test secret 0123456789abcdef0123456789");
  return key;
}

std::vector<uint8_t> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

Manifest Metadata() {
  Manifest m;
  m.cluster_id = "c0ffee00-1111-2222-3333-444455556666";
  m.node = "mysql-1";
  m.flavour = "mysql";
  m.server_version = "8.0.36";
  m.tool_version = "xtrabackup 8.0.35-30";
  m.gtid_position = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5";
  m.binlog_file = "binlog.000003";
  m.binlog_position = 157;
  return m;
}

WriterOptions Options(std::string id = kId, size_t object_bytes = kObjectBytes) {
  WriterOptions o;
  o.backup_id = std::move(id);
  o.key = Key();
  o.object_bytes = object_bytes;
  return o;
}

// Writes `data` in Write() calls of `chunk` bytes and finishes.
Result<Manifest> WriteBackup(MemoryStore& store, std::span<const uint8_t> data, size_t chunk,
                             WriterOptions options = Options()) {
  auto writer = BackupWriter::Create(store, std::move(options));
  if (!writer) return Error(writer.error());
  for (size_t at = 0; at < data.size(); at += chunk) {
    REPLBOOT_RETURN_IF_ERROR((*writer)->Write(data.subspan(at, std::min(chunk, data.size() - at))));
  }
  return (*writer)->Finish(Metadata());
}

Result<std::vector<uint8_t>> ReadAll(MemoryStore& store, const Manifest& manifest,
                                     const BackupKey& key = Key()) {
  std::vector<uint8_t> out;
  Status read = ReadBackup(store, manifest, key,
                           [&](std::span<const uint8_t> bytes) {
                             out.insert(out.end(), bytes.begin(), bytes.end());
                             return Status::Ok();
                           },
                           {});
  if (!read.ok()) return Error(read);
  return out;
}

TEST(BackupWriter, RoundTripOfSeveralObjects) {
  MemoryStore store;
  auto data = testing::SysbenchLikeBytes(10 * kObjectBytes + 1234, 1);
  auto manifest = WriteBackup(store, data, 1000);
  ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
  EXPECT_EQ(manifest->objects.size(), 11u);
  EXPECT_EQ(manifest->logical_bytes, data.size());
  EXPECT_EQ(manifest->objects.back().logical_bytes, 1234u);
  EXPECT_EQ(manifest->backup_id, kId);
  EXPECT_EQ(manifest->key_id, Key().id);
  EXPECT_EQ(manifest->compression, "zstd:1");
  EXPECT_EQ(manifest->object_bytes, kObjectBytes);
  EXPECT_GT(manifest->started_at_ms, 0);
  EXPECT_GE(manifest->finished_at_ms, manifest->started_at_ms);
  EXPECT_EQ(manifest->cluster_id, Metadata().cluster_id);
  EXPECT_LT(manifest->stored_bytes, manifest->logical_bytes);
  // What was uploaded is what the manifest says, and the stored manifest is the returned one.
  for (const ObjectEntry& e : manifest->objects) {
    const auto& stored = store.objects().at(ObjectKey(kId, e.index));
    EXPECT_EQ(stored.size(), e.stored_bytes);
    EXPECT_EQ(internal::Sha256Hex(stored), e.sha256);
  }
  const auto& text = store.objects().at(ManifestKey(kId));
  auto parsed = ParseManifest(
      std::string_view(reinterpret_cast<const char*>(text.data()), text.size()), Key());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(*parsed, *manifest);

  auto read = ReadAll(store, *manifest);
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(*read, data);
  EXPECT_TRUE(VerifyBackup(store, *manifest, Key(), /*deep=*/true).ok());
  EXPECT_TRUE(VerifyBackup(store, *manifest, Key(), /*deep=*/false).ok());
}

TEST(BackupWriter, EmptyStream) {
  MemoryStore store;
  auto manifest = WriteBackup(store, {}, 1);
  ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
  EXPECT_TRUE(manifest->objects.empty());
  EXPECT_EQ(manifest->logical_bytes, 0u);
  EXPECT_EQ(store.Keys(), std::vector<std::string>{ManifestKey(kId)});
  int calls = 0;
  Status read = ReadBackup(store, *manifest, Key(),
                           [&](std::span<const uint8_t>) { return ++calls, Status::Ok(); }, {});
  EXPECT_TRUE(read.ok()) << read.ToString();
  EXPECT_EQ(calls, 0);
}

// The cut is at exactly object_bytes whatever the Write() sizes, with no empty last object.
TEST(BackupWriter, ObjectSizeBoundaries) {
  struct Case {
    size_t size;
    size_t objects;
  };
  for (Case c : {Case{1, 1}, Case{kObjectBytes - 1, 1}, Case{kObjectBytes, 1},
                 Case{kObjectBytes + 1, 2}, Case{2 * kObjectBytes, 2}, Case{3 * kObjectBytes, 3}}) {
    for (size_t chunk : {size_t{1} << 20, kObjectBytes, size_t{1000}, size_t{4097}}) {
      if (chunk == 1000 && c.size > kObjectBytes * 2) continue;
      MemoryStore store;
      auto data = Random(c.size, static_cast<uint32_t>(c.size));
      auto manifest = WriteBackup(store, data, chunk);
      ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
      ASSERT_EQ(manifest->objects.size(), c.objects) << c.size << " in " << chunk;
      for (size_t i = 0; i + 1 < c.objects; ++i) {
        EXPECT_EQ(manifest->objects[i].logical_bytes, kObjectBytes);
      }
      auto read = ReadAll(store, *manifest);
      ASSERT_TRUE(read.has_value()) << read.error().ToString();
      EXPECT_EQ(*read, data);
    }
  }
}

TEST(BackupWriter, ManifestIsWrittenLastAfterEveryObjectWasReadBack) {
  MemoryStore store;
  std::vector<std::string> order;
  store.on_put = [&](const std::string& key, std::vector<uint8_t>*) { order.push_back(key); };
  auto manifest = WriteBackup(store, Random(5 * kObjectBytes, 2), 3000);
  ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(order.back(), ManifestKey(kId));
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(order[i], ObjectKey(kId, i));
  EXPECT_EQ(store.gets(), 5);  // each object read back once
}

TEST(BackupWriter, FailedUploadFailsTheNextCallAndLeavesNoManifest) {
  MemoryStore store;
  store.fail_puts_after = 2;
  auto writer = BackupWriter::Create(store, Options());
  ASSERT_TRUE(writer.has_value());
  auto data = Random(kObjectBytes, 3);
  Status failed;
  for (int i = 0; i < 50 && failed.ok(); ++i) failed = (*writer)->Write(data);
  ASSERT_FALSE(failed.ok()) << "writes kept succeeding after the store failed";
  EXPECT_EQ(failed.code(), StatusCode::kUnavailable);
  EXPECT_THAT(failed.message(),
              HasSubstr("uploading object 2 of backup 20261207T061500Z to memory://test: "));
  EXPECT_THAT(failed.message(), HasSubstr("503"));
  // Every later call says the same.
  EXPECT_EQ((*writer)->Write(data).code(), StatusCode::kUnavailable);
  auto finished = (*writer)->Finish(Metadata());
  ASSERT_FALSE(finished.has_value());
  EXPECT_EQ(finished.error().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(store.Has(ManifestKey(kId)));
  EXPECT_TRUE(store.Has(ObjectKey(kId, 0)));
  writer->reset();  // the destructor aborts: the objects go
  EXPECT_TRUE(store.Keys().empty());
}

TEST(BackupWriter, AnObjectChangedByTheStoreFailsFinish) {
  MemoryStore store;
  store.on_put = [](const std::string& key, std::vector<uint8_t>* body) {
    if (key == ObjectKey(kId, 1)) (*body)[30] ^= 1;
  };
  auto manifest = WriteBackup(store, Random(3 * kObjectBytes, 4), kObjectBytes);
  ASSERT_FALSE(manifest.has_value());
  EXPECT_EQ(manifest.error().code(), StatusCode::kCorruption);
  EXPECT_THAT(manifest.error().message(),
              HasSubstr("object 1 of backup 20261207T061500Z read back from memory://test "
                        "differs from what was uploaded"));
  EXPECT_FALSE(store.Has(ManifestKey(kId)));
}

TEST(BackupWriter, AnObjectLostBeforeFinishOrAStrayOneFailsFinish) {
  for (bool lose : {true, false}) {
    MemoryStore store;
    auto writer = BackupWriter::Create(store, Options());
    ASSERT_TRUE(writer.has_value());
    ASSERT_TRUE((*writer)->Write(Random(2 * kObjectBytes + 10, 5)).ok());
    // The second object is handed over at once; wait for it to be uploaded.
    for (int i = 0; i < 2000 && !store.Has(ObjectKey(kId, 1)); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (lose) {
      ASSERT_TRUE(store.Delete(ObjectKey(kId, 0)).ok());
    } else {
      store.objects()[ObjectKey(kId, 7)] = {1, 2, 3};
    }
    auto finished = (*writer)->Finish(Metadata());
    ASSERT_FALSE(finished.has_value());
    EXPECT_THAT(
        finished.error().message(),
        HasSubstr(lose ? "object 0 of backup 20261207T061500Z is missing"
                       : "did not upload (e.g. backups/20261207T061500Z/objects/00000007)"));
    EXPECT_FALSE(store.Has(ManifestKey(kId)));
  }
}

TEST(BackupWriter, RefusesAnIdAlreadyInTheStoreAndBadOptions) {
  MemoryStore store;
  ASSERT_TRUE(WriteBackup(store, Random(10, 6), 10).has_value());
  auto again = BackupWriter::Create(store, Options());
  ASSERT_FALSE(again.has_value());
  EXPECT_THAT(again.error().message(), HasSubstr("backup 20261207T061500Z already exists"));

  EXPECT_FALSE(BackupWriter::Create(store, Options("2026-12-07")).has_value());
  EXPECT_FALSE(BackupWriter::Create(store, Options("20261208T000000Z", 100)).has_value());
  WriterOptions level = Options("20261208T000000Z");
  level.zstd_level = 0;
  EXPECT_FALSE(BackupWriter::Create(store, level).has_value());
  WriterOptions no_key = Options("20261208T000000Z");
  no_key.key = BackupKey{};
  EXPECT_FALSE(BackupWriter::Create(store, no_key).has_value());
  store.list_error = Status(StatusCode::kPermissionDenied, "memory://test: 403");
  auto denied = BackupWriter::Create(store, Options("20261208T000000Z"));
  ASSERT_FALSE(denied.has_value());
  EXPECT_EQ(denied.error().code(), StatusCode::kPermissionDenied);
}

TEST(BackupWriter, BadMetadataNeverReachesTheStore) {
  MemoryStore store;
  auto writer = BackupWriter::Create(store, Options());
  ASSERT_TRUE(writer.has_value());
  ASSERT_TRUE((*writer)->Write(Random(100, 7)).ok());
  Manifest metadata = Metadata();
  metadata.flavour = "oracle";
  auto finished = (*writer)->Finish(metadata);
  ASSERT_FALSE(finished.has_value());
  EXPECT_EQ(finished.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(finished.error().message(), HasSubstr("the manifest would not be readable"));
  EXPECT_FALSE(store.Has(ManifestKey(kId)));
}

TEST(BackupWriter, StopCancelsWrites) {
  MemoryStore store;
  std::stop_source stop;
  WriterOptions options = Options();
  options.stop = stop.get_token();
  auto writer = BackupWriter::Create(store, options);
  ASSERT_TRUE(writer.has_value());
  ASSERT_TRUE((*writer)->Write(Random(100, 8)).ok());
  stop.request_stop();
  EXPECT_EQ((*writer)->Write(Random(100, 8)).code(), StatusCode::kCancelled);
  auto finished = (*writer)->Finish(Metadata());
  ASSERT_FALSE(finished.has_value());
  EXPECT_EQ(finished.error().code(), StatusCode::kCancelled);
  EXPECT_FALSE(store.Has(ManifestKey(kId)));
}

TEST(BackupWriter, AbortRemovesTheObjectsAndIsANoOpAfterFinish) {
  MemoryStore store;
  auto writer = BackupWriter::Create(store, Options());
  ASSERT_TRUE(writer.has_value());
  ASSERT_TRUE((*writer)->Write(Random(5 * kObjectBytes, 9)).ok());
  (*writer)->Abort();
  EXPECT_TRUE(store.Keys().empty());
  EXPECT_EQ((*writer)->Write(Random(1, 9)).code(), StatusCode::kInternal);

  auto done = BackupWriter::Create(store, Options());
  ASSERT_TRUE(done.has_value());
  ASSERT_TRUE((*done)->Write(Random(kObjectBytes + 1, 9)).ok());
  ASSERT_TRUE((*done)->Finish(Metadata()).has_value());
  (*done)->Abort();
  done->reset();
  EXPECT_EQ(store.Keys().size(), 3u);
}

// Memory stays at a few pieces of the stream (1 MiB, or the object size when smaller), two
// sealed buffers and the object read back (plus, at the end, the short last object's
// plaintext), whatever the size of the backup and however slow the store: never a whole
// object's plaintext per object in flight.
TEST(BackupWriter, MemoryIsBoundedByPiecesAndThreeSealed) {
  constexpr size_t kBig = 64 << 10;
  MemoryStore store;
  store.put_delay = std::chrono::milliseconds(3);
  auto writer = BackupWriter::Create(store, Options(kId, kBig));
  ASSERT_TRUE(writer.has_value());
  auto chunk = Random(10'000, 10);  // incompressible: sealed objects are full size
  for (int i = 0; i < 600; ++i) ASSERT_TRUE((*writer)->Write(chunk).ok());
  auto manifest = (*writer)->Finish(Metadata());
  ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
  EXPECT_EQ(manifest->objects.size(), (600 * 10'000 + kBig - 1) / kBig);
  const size_t max = (*writer)->max_buffered_bytes();
  // Pieces: 4 queued, 1 filling, 1 being compressed.
  EXPECT_LE(max, 6 * kBig + 3 * MaxStoredBytes(kBig) + kBig) << max;
  // The pipeline was used (pieces queued while the sealer sealed, sealing while the uploader
  // uploaded): two pieces and two sealed buffers at least.
  EXPECT_GE(max, 2 * kBig + 2 * MaxStoredBytes(kBig)) << max;
  EXPECT_EQ((*writer)->buffered_bytes(), 0u);
}

// Objects of several pieces (the stream's bytes are compressed as they come), the last one
// short (its frame redone at its size): read back exactly, each object exactly one frame of
// its size (OpenObject's checks), the same size as SealObject's.
TEST(BackupWriter, ObjectsOfManyPiecesAndAShortLastOne) {
  constexpr size_t kBig = (3 << 20) + 12345;  // not a multiple of the 1 MiB piece
  MemoryStore store;
  auto data = testing::SysbenchLikeBytes(2 * kBig + (1 << 20) + 99, 14);
  auto manifest = WriteBackup(store, data, 70'000, Options(kId, kBig));
  ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
  ASSERT_EQ(manifest->objects.size(), 3u);
  EXPECT_EQ(manifest->objects[2].logical_bytes, (1u << 20) + 99);
  for (const ObjectEntry& e : manifest->objects) {
    auto opened = OpenObject(Key(), kId, e.index, store.objects()[ObjectKey(kId, e.index)], kBig);
    ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
    auto slice = std::span(data).subspan(e.index * kBig, e.logical_bytes);
    EXPECT_TRUE(std::equal(opened->begin(), opened->end(), slice.begin(), slice.end()));
    auto one_shot = SealObject(Key(), kId, e.index, slice, 1);
    ASSERT_TRUE(one_shot.has_value());
    EXPECT_NEAR(static_cast<double>(e.stored_bytes), static_cast<double>(one_shot->size()),
                0.01 * static_cast<double>(one_shot->size()));
  }
  auto read = ReadAll(store, *manifest);
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(*read, data);
}

// An object is read back right after its upload, before the next one is uploaded: the store
// sees Put(i), Get(i), Put(i+1), ... and the manifest after the last Get.
TEST(BackupWriter, EachObjectIsReadBackBeforeTheNextUploadAndTheManifest) {
  MemoryStore store;
  std::vector<std::string> order;
  std::mutex mu;
  store.on_put = [&](const std::string& key, std::vector<uint8_t>*) {
    std::lock_guard lock(mu);
    order.push_back("put " + key);
  };
  store.get_error = [&](const std::string& key) {
    std::lock_guard lock(mu);
    order.push_back("get " + key);
    return Status::Ok();
  };
  auto manifest = WriteBackup(store, Random(4 * kObjectBytes, 11), 5000);
  ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
  std::vector<std::string> want;
  for (size_t i = 0; i < 4; ++i) {
    want.push_back("put " + ObjectKey(kId, i));
    want.push_back("get " + ObjectKey(kId, i));
  }
  want.push_back("put " + ManifestKey(kId));
  EXPECT_EQ(order, want);
}

// A read-back that fails (the store lost the object, or cannot be read) fails the backup with
// the object named, and no manifest is written.
TEST(BackupWriter, AFailedReadBackFailsTheBackup) {
  MemoryStore store;
  store.get_error = [](const std::string& key) {
    return key == ObjectKey(kId, 2) ? Status(StatusCode::kUnavailable, "memory://test: 503")
                                    : Status::Ok();
  };
  auto manifest = WriteBackup(store, Random(4 * kObjectBytes, 12), kObjectBytes);
  ASSERT_FALSE(manifest.has_value());
  EXPECT_EQ(manifest.error().code(), StatusCode::kUnavailable);
  EXPECT_THAT(manifest.error().message(),
              HasSubstr("reading back object 2 of backup 20261207T061500Z"));
  EXPECT_FALSE(store.Has(ManifestKey(kId)));
}

TEST(BackupWriter, ReportsProgress) {
  MemoryStore store;
  std::mutex mu;
  std::vector<WriterProgress> seen;
  WriterOptions options = Options();
  options.on_progress = [&](const WriterProgress& p) {
    std::lock_guard lock(mu);
    seen.push_back(p);
  };
  auto data = testing::SysbenchLikeBytes(4 * kObjectBytes + 5, 11);
  auto manifest = WriteBackup(store, data, 999, options);
  ASSERT_TRUE(manifest.has_value());
  ASSERT_EQ(seen.size(), 5u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].objects, i + 1);
  EXPECT_EQ(seen.back().logical_bytes, data.size());
  EXPECT_EQ(seen.back().stored_bytes, manifest->stored_bytes);
  EXPECT_GT(seen.back().logical_bytes_per_second, 0);
}

// An object bigger than a sink piece reaches the sink decompressed in pieces of at most
// 1 MiB, in order, each object whole before the next; deep verification opens it the same way.
TEST(ReadBackup, BigObjectsReachTheSinkInPiecesOfAtMostOneMiB) {
  constexpr size_t kBig = 3 << 20;
  MemoryStore store;
  auto data = testing::SysbenchLikeBytes(2 * kBig + 777, 13);
  auto manifest = WriteBackup(store, data, 100'000, Options(kId, kBig));
  ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
  ASSERT_EQ(manifest->objects.size(), 3u);
  std::vector<uint8_t> got;
  size_t calls = 0, largest = 0;
  Status read = ReadBackup(store, *manifest, Key(),
                           [&](std::span<const uint8_t> bytes) {
                             ++calls;
                             largest = std::max(largest, bytes.size());
                             got.insert(got.end(), bytes.begin(), bytes.end());
                             return Status::Ok();
                           },
                           {});
  ASSERT_TRUE(read.ok()) << read.ToString();
  EXPECT_EQ(got, data);
  EXPECT_LE(largest, size_t{1} << 20);
  EXPECT_GE(calls, 7u);  // 3 + 3 + 1 pieces
  EXPECT_TRUE(VerifyBackup(store, *manifest, Key(), /*deep=*/true).ok());
}

// --- reading, and every way a stored backup can be tampered with ---

class TamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = testing::SysbenchLikeBytes(4 * kObjectBytes + 100, 12);
    auto manifest = WriteBackup(store_, data_, 5000);
    ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
    manifest_ = *manifest;
  }
  // Reads, returning the error and checking the sink got exactly the objects before `index`.
  Status ReadExpectingFailureAt(uint64_t index, const BackupKey& key = Key()) {
    std::vector<uint8_t> got;
    Status read = ReadBackup(store_, manifest_, key,
                             [&](std::span<const uint8_t> bytes) {
                               got.insert(got.end(), bytes.begin(), bytes.end());
                               return Status::Ok();
                             },
                             {});
    EXPECT_FALSE(read.ok());
    EXPECT_EQ(got.size(), index * kObjectBytes);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), data_.begin()));
    return read;
  }
  std::vector<uint8_t>& Object(uint64_t index) { return store_.objects()[ObjectKey(kId, index)]; }

  MemoryStore store_;
  std::vector<uint8_t> data_;
  Manifest manifest_;
};

TEST_F(TamperTest, OneByteChangedInAnObject) {
  Object(2)[40] ^= 0x80;
  Status read = ReadExpectingFailureAt(2);
  EXPECT_EQ(read.code(), StatusCode::kCorruption);
  EXPECT_THAT(read.message(), HasSubstr("object 2 of backup 20261207T061500Z: its SHA-256 is "
                                        "not the manifest's"));
  EXPECT_EQ(VerifyBackup(store_, manifest_, Key(), false).message(), read.message());
}

TEST_F(TamperTest, ObjectMissing) {
  store_.objects().erase(ObjectKey(kId, 1));
  Status read = ReadExpectingFailureAt(1);
  EXPECT_EQ(read.code(), StatusCode::kNotFound);
  EXPECT_EQ(read.message(),
            "object 1 of backup 20261207T061500Z is missing (key "
            "backups/20261207T061500Z/objects/00000001 in memory://test)");
}

TEST_F(TamperTest, ObjectsSwapped) {
  std::swap(Object(0), Object(1));
  Status read = ReadExpectingFailureAt(0);
  EXPECT_EQ(read.code(), StatusCode::kCorruption);
  EXPECT_THAT(read.message(), HasSubstr("object 0 of backup 20261207T061500Z: "));
}

TEST_F(TamperTest, ObjectLargerThanTheManifestSaysIsNotReadWhole) {
  Object(3).resize(Object(3).size() + 1);
  Status read = ReadExpectingFailureAt(3);
  EXPECT_EQ(read.code(), StatusCode::kCorruption);
  EXPECT_THAT(read.message(), HasSubstr("reading object 3 of backup 20261207T061500Z: "));
  Object(3).resize(Object(3).size() - 2);
  read = ReadExpectingFailureAt(3);
  EXPECT_THAT(read.message(), HasSubstr("bytes in the store, the manifest says"));
}

// Even a manifest that vouches for them (one a key holder wrote by mistake, so its MAC is
// good) cannot make objects swapped, or taken from another backup, open: the tag binds each
// object to its backup and index.
TEST_F(TamperTest, TheTagRefusesMovedObjectsEvenWhenTheManifestAgrees) {
  MemoryStore other;
  auto other_manifest = WriteBackup(other, data_, 5000, Options("20261208T061500Z"));
  ASSERT_TRUE(other_manifest.has_value());
  // Object 1 of the other backup (same bytes in!) put in place of ours, digest "fixed".
  Object(1) = other.objects()[ObjectKey("20261208T061500Z", 1)];
  manifest_.objects[1].sha256 = internal::Sha256Hex(Object(1));
  manifest_.objects[1].stored_bytes = Object(1).size();
  Status read = ReadExpectingFailureAt(1);
  EXPECT_EQ(read.code(), StatusCode::kCorruption);
  EXPECT_EQ(read.message(),
            "object 1 of backup 20261207T061500Z: authentication failed: changed, or sealed "
            "with another key");
  EXPECT_TRUE(VerifyBackup(store_, manifest_, Key(), /*deep=*/false).ok());
  EXPECT_EQ(VerifyBackup(store_, manifest_, Key(), /*deep=*/true).message(), read.message());

  // Swapped, with a manifest listing them swapped.
  store_.objects().clear();
  SetUp();
  std::swap(Object(0), Object(1));
  std::swap(manifest_.objects[0].sha256, manifest_.objects[1].sha256);
  std::swap(manifest_.objects[0].stored_bytes, manifest_.objects[1].stored_bytes);
  EXPECT_THAT(ReadExpectingFailureAt(0).message(),
              HasSubstr("object 0 of backup 20261207T061500Z: authentication failed"));
}

TEST_F(TamperTest, WrongKey) {
  BackupKey other = KeyFromSecret("someone else's secret 0123456789abcdef0123");
  Status read = ReadExpectingFailureAt(0, other);
  EXPECT_EQ(read.code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(read.message(), HasSubstr("was made with key " + Key().id));
  // A manifest claiming the other key's id still cannot open our objects with it.
  manifest_.key_id = other.id;
  read = ReadExpectingFailureAt(0, other);
  EXPECT_EQ(read.code(), StatusCode::kCorruption);
  EXPECT_THAT(read.message(), HasSubstr("sealed with another key"));
}

TEST_F(TamperTest, SinkErrorAndStopEndTheRead) {
  int calls = 0;
  Status read =
      ReadBackup(store_, manifest_, Key(),
                 [&](std::span<const uint8_t>) {
                   return ++calls == 2 ? Status(StatusCode::kNoSpace, "disk full") : Status::Ok();
                 },
                 {});
  EXPECT_EQ(read.code(), StatusCode::kNoSpace);
  EXPECT_EQ(calls, 2);

  std::stop_source stop;
  ReadOptions options;
  options.stop = stop.get_token();
  calls = 0;
  read = ReadBackup(
      store_, manifest_, Key(),
      [&](std::span<const uint8_t>) {
        if (++calls == 1) stop.request_stop();
        return Status::Ok();
      },
      options);
  EXPECT_EQ(read.code(), StatusCode::kCancelled);
  EXPECT_EQ(calls, 1);
}

// One object is fetched ahead of the sink, not more; progress counts what the sink got.
TEST_F(TamperTest, PrefetchesOneAhead) {
  const int gets_before = store_.gets();
  std::vector<ReadProgress> progress;
  ReadOptions options;
  options.on_progress = [&](const ReadProgress& p) { progress.push_back(p); };
  int objects = 0;
  Status read = ReadBackup(
      store_, manifest_, Key(),
      [&](std::span<const uint8_t>) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the prefetch catches up
        EXPECT_LE(store_.gets() - gets_before, objects + 2);
        ++objects;
        return Status::Ok();
      },
      options);
  ASSERT_TRUE(read.ok()) << read.ToString();
  ASSERT_EQ(progress.size(), 5u);
  EXPECT_EQ(progress.back().logical_bytes, data_.size());
  EXPECT_EQ(progress.back().objects_total, 5u);
  EXPECT_EQ(progress.back().stored_bytes, manifest_.stored_bytes);
}

TEST_F(TamperTest, StoreErrorsKeepTheirCode) {
  store_.get_error = [](const std::string& key) {
    return key.ends_with("00000002") ? Status(StatusCode::kUnavailable, "memory://test: 503")
                                     : Status::Ok();
  };
  Status read = ReadExpectingFailureAt(2);
  EXPECT_EQ(read.code(), StatusCode::kUnavailable);
  EXPECT_THAT(read.message(), HasSubstr("reading object 2 of backup 20261207T061500Z: "));
}

}  // namespace
}  // namespace replboot::archive
