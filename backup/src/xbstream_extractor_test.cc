#include "replboot/backup/xbstream_extractor.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "replboot/testing/temp_dir.h"
#include "xbstream_test_util.h"

namespace replboot::backup {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::OpenAtEveryBoundaryStream;
using testing::Pattern;
using testing::Prefix;
using testing::StreamBuilder;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A scratch area: `target` (extraction root) and `outside` (must stay untouched).
class ExtractorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(target_);
    fs::create_directory(outside_);
  }

  // Runs the full ExtractStream over an in-memory descriptor.
  Result<ExtractResult> Extract(const std::vector<uint8_t>& bytes, ExtractOptions options = {},
                                const fs::path& target = {}) {
    int fd = memfd_create("xbstream", MFD_CLOEXEC);
    EXPECT_GE(fd, 0);
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t w = write(fd, bytes.data() + done, bytes.size() - done);
      EXPECT_GT(w, 0);
      done += static_cast<size_t>(w);
    }
    lseek(fd, 0, SEEK_SET);
    auto result = ExtractStream(fd, "test stream", (target.empty() ? target_ : target).string(),
                                options);
    close(fd);
    return result;
  }

  std::vector<std::string> Tree(const fs::path& root) {
    std::vector<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(root)) {
      out.push_back(fs::relative(e.path(), root).string() + (e.is_directory() ? "/" : ""));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  replboot::testing::TempDir tmp_{"xbstream-extractor-test"};
  const fs::path target_ = tmp_.Path("target"), outside_ = tmp_.Path("outside");
};

TEST_F(ExtractorTest, InterleavedNestedAndEmptyFiles) {
  std::string a = Pattern(3 << 20, 'a'), c = Pattern(100000, 'c');
  StreamBuilder b;
  b.Payload("ibdata1", a.substr(0, 1 << 20), 0)
      .Payload("db1/t1.ibd", c.substr(0, 50000), 0)
      .Payload("ibdata1", a.substr(1 << 20), 1 << 20)
      .Eof("mysql/slow_log.CSV")
      .Payload("db1/t1.ibd", c.substr(50000), 50000)
      .Eof("db1/t1.ibd")
      .Eof("ibdata1")
      .File("deep/er/x.frm", "frm");
  auto r = Extract(b.bytes());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(Slurp(target_ / "ibdata1"), a);
  EXPECT_EQ(Slurp(target_ / "db1/t1.ibd"), c);
  EXPECT_EQ(Slurp(target_ / "deep/er/x.frm"), "frm");
  EXPECT_TRUE(fs::exists(target_ / "mysql/slow_log.CSV"));
  EXPECT_EQ(fs::file_size(target_ / "mysql/slow_log.CSV"), 0u);
  EXPECT_EQ(r->extractor.files, 4u);
  EXPECT_EQ(r->stream_bytes, b.bytes().size());
  struct stat st {};
  ASSERT_EQ(stat((target_ / "ibdata1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  ASSERT_EQ(stat((target_ / "db1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0750u);
}

TEST_F(ExtractorTest, ReadAndMapPathsGiveTheSameTree) {
  std::string a = Pattern(5 << 20, 'r');
  StreamBuilder b;
  b.File("db/a.ibd", a, 1 << 20).File("b", "small");
  for (bool map : {false, true}) {
    for (size_t read_size : {size_t{4096}, size_t{65536}, size_t{4} << 20}) {
      fs::remove_all(target_);
      fs::create_directory(target_);
      ExtractOptions options;
      options.map_regular_files = map;
      options.read_size = read_size;
      auto r = Extract(b.bytes(), options);
      ASSERT_TRUE(r) << r.error().message();
      EXPECT_EQ(r->stream_bytes, b.bytes().size());
      EXPECT_EQ(Slurp(target_ / "db/a.ibd"), a);
      EXPECT_EQ(Slurp(target_ / "b"), "small");
    }
  }
}

TEST_F(ExtractorTest, TruncationAtEveryBytePositionNeverSucceeds) {
  const auto full = OpenAtEveryBoundaryStream().bytes();
  for (size_t len = 0; len < full.size(); ++len) {
    fs::path dir = tmp_.Path(fmt::format("t{}", len));
    fs::create_directory(dir);
    auto r = Extract(Prefix(full, len), {}, dir);
    ASSERT_FALSE(r) << "prefix of " << len << " bytes extracted successfully";
    fs::remove_all(dir);
  }
  EXPECT_TRUE(Extract(full));
}

TEST_F(ExtractorTest, BitFlipFailsTheExtraction) {
  StreamBuilder b;
  b.File("f", Pattern(1000, 'x'), 300);
  auto bytes = b.bytes();
  bytes[b.payload_ranges()[2].first + 17] ^= 0x10;
  auto r = Extract(bytes);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("checksum mismatch in f chunk at stream offset"));
}

TEST_F(ExtractorTest, HostilePathsWriteNothingOutside) {
  for (std::string path : {"../outside/evil", "/tmp/evil_abs", "a/../../outside/evil"}) {
    StreamBuilder b;
    b.File(path, "pwned");
    auto r = Extract(b.bytes());
    ASSERT_FALSE(r) << path;
    EXPECT_THAT(r.error().message(), HasSubstr("unsafe path"));
  }
  EXPECT_TRUE(fs::is_empty(outside_));
  EXPECT_TRUE(fs::is_empty(target_));
  EXPECT_FALSE(fs::exists("/tmp/evil_abs"));
}

TEST_F(ExtractorTest, PlantedSymlinksAreNotFollowed) {
  fs::create_directory_symlink(outside_, target_ / "db");
  fs::create_symlink(outside_ / "victim", target_ / "ibdata1");
  {
    StreamBuilder b;
    b.File("db/t.ibd", "pwned");
    auto r = Extract(b.bytes());
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), HasSubstr("db in"));
    EXPECT_THAT(r.error().message(), HasSubstr("symlink or not a directory"));
  }
  {
    StreamBuilder b;
    b.File("ibdata1", "pwned");
    auto r = Extract(b.bytes());
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), HasSubstr("ibdata1"));
  }
  {
    // Rewrite flag on a symlinked name: still refused (O_NOFOLLOW).
    StreamBuilder b;
    b.Payload("ibdata1", "pwned", 0, kChunkFlagRewrite).Eof("ibdata1");
    auto r = Extract(b.bytes());
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), HasSubstr("symlink"));
  }
  {
    // Renaming into a symlinked directory.
    StreamBuilder b;
    b.File("x", "pwned").Rename("x", "db/x");
    auto r = Extract(b.bytes());
    ASSERT_FALSE(r);
  }
  EXPECT_TRUE(fs::is_empty(outside_));
  EXPECT_FALSE(fs::exists(outside_ / "victim"));
}

TEST_F(ExtractorTest, ExistingFileNeedsTheRewriteFlag) {
  {
    StreamBuilder b;
    b.File("f", "first").File("f", "second");
    auto r = Extract(b.bytes());
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), HasSubstr("f already exists"));
  }
  fs::remove_all(target_);
  fs::create_directory(target_);
  {
    StreamBuilder b;
    b.File("f", "first version").Payload("f", "second", 0, kChunkFlagRewrite).Eof("f");
    auto r = Extract(b.bytes());
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(Slurp(target_ / "f"), "second");
  }
}

TEST_F(ExtractorTest, SeekRenameDelete) {
  StreamBuilder b;
  b.Payload("f", "AAAAAAAAAA", 0)
      .Seek("f", 2)
      .Payload("f", "bb", 2)
      .Seek("f", 12)
      .Payload("f", "cc", 12)
      .Eof("f")
      .File("t1db/big2.new", "tablespace")
      .Rename("t1db/big2.new", "t1db/big2.ibd")
      .File("junk", "x")
      .Delete("junk");
  auto r = Extract(b.bytes());
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(Slurp(target_ / "f"), std::string("AAbbAAAAAA") + std::string(2, '\0') + "cc");
  EXPECT_EQ(Slurp(target_ / "t1db/big2.ibd"), "tablespace");
  EXPECT_FALSE(fs::exists(target_ / "t1db/big2.new"));
  EXPECT_FALSE(fs::exists(target_ / "junk"));
}

TEST_F(ExtractorTest, PerconaSparseFilesGetHolesAndTheirLogicalSize) {
  std::string data = Pattern(8192, 'd');
  StreamBuilder b;
  // 4 KiB data, 64 KiB hole, 4 KiB data, then a 1 MiB trailing hole.
  b.Sparse("db/t.ibd", 0, {{0, 4096}, {65536, 4096}, {1 << 20, 0}}, data).Eof("db/t.ibd");
  ExtractOptions options;
  options.flavour = Flavour::kMySQL;
  auto r = Extract(b.bytes(), options);
  ASSERT_TRUE(r) << r.error().message();
  std::string got = Slurp(target_ / "db/t.ibd");
  ASSERT_EQ(got.size(), 4096u + 65536 + 4096 + (1 << 20));
  EXPECT_EQ(got.substr(0, 4096), data.substr(0, 4096));
  EXPECT_EQ(got.substr(4096, 65536), std::string(65536, '\0'));
  EXPECT_EQ(got.substr(4096 + 65536, 4096), data.substr(4096));
  EXPECT_EQ(got.substr(4096 + 65536 + 4096), std::string(1 << 20, '\0'));
  struct stat st {};
  ASSERT_EQ(stat((target_ / "db/t.ibd").c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, got.size());  // holes really are holes
}

TEST_F(ExtractorTest, ManyOpenFilesWithASmallDescriptorBudget) {
  StreamBuilder b;
  std::vector<std::string> content;
  for (int i = 0; i < 30; ++i) content.push_back(Pattern(3000 + i, static_cast<char>('a' + i)));
  for (int part = 0; part < 3; ++part) {
    for (int i = 0; i < 30; ++i) {
      b.Payload(fmt::format("db/f{}", i), content[i].substr(part * 1000, part == 2 ? 2000 : 1000),
                part * 1000u);
    }
  }
  for (int i = 0; i < 30; ++i) b.Eof(fmt::format("db/f{}", i));
  ExtractOptions options;
  options.max_open_fds = 8;
  auto r = Extract(b.bytes(), options);
  ASSERT_TRUE(r) << r.error().message();
  for (int i = 0; i < 30; ++i) EXPECT_EQ(Slurp(target_ / fmt::format("db/f{}", i)), content[i]);
}

// The fsyncs run on the background thread (background_sync.h): Commit returns only after
// every file's, including those queued while the descriptor budget made the writer wait.
TEST_F(ExtractorTest, EveryFileIsFsyncedBeforeCommitReturns) {
  StreamBuilder b;
  for (int i = 0; i < 100; ++i) {
    b.Payload(fmt::format("db/f{}", i), Pattern(1 << 20, static_cast<char>('a' + i % 26)), 0);
    b.Eof(fmt::format("db/f{}", i));
  }
  ExtractOptions options;
  options.max_open_fds = 8;
  auto r = Extract(b.bytes(), options);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->extractor.files, 100u);
  EXPECT_EQ(r->extractor.fsyncs, 100u);
  EXPECT_EQ(Slurp(target_ / "db/f99"), Pattern(1 << 20, static_cast<char>('a' + 99 % 26)));
}

TEST_F(ExtractorTest, EncryptedAndQpressMembersAreRefusedAtFirstSight) {
  for (std::string path : {"db/t.ibd.qp", "ibdata1.xbcrypt", "db/t.ibd.zst.xbcrypt"}) {
    for (bool decompress : {false, true}) {
      StreamBuilder b;
      b.Payload(path, "qpress10....", 0);  // no 'E': the refusal comes first
      ExtractOptions options;
      options.decompress = decompress;
      auto r = Extract(b.bytes(), options);
      ASSERT_FALSE(r) << path;
      EXPECT_THAT(r.error().message(), HasSubstr("cannot extract " + path));
      EXPECT_THAT(r.error().message(),
                  HasSubstr(path.ends_with(".qp") ? "qpress" : "encrypted"));
      EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_TRUE(fs::is_empty(target_));
}

TEST_F(ExtractorTest, ReservedNamesAreRefusedAsFileDirectoryRenameOrDelete) {
  ExtractOptions options;
  options.reserved_names = {"replboot-clone.json", "replboot-replication.json"};
  std::vector<StreamBuilder> streams(7);
  streams[0].File("replboot-clone.json", "{\"forged\": true}");
  streams[1].File("./replboot-clone.json", "{}");
  streams[2].File("./replboot-replication.json", "{}");
  streams[3].File("replboot-clone.json/inner", "x");  // a directory in the marker's place
  streams[4].File("db/t.ibd", "data").Rename("db/t.ibd", "replboot-clone.json");
  streams[5].Delete("replboot-clone.json");
  streams[6].File("a", "x").Rename("a", "./replboot-clone.json");
  for (size_t i = 0; i < streams.size(); ++i) {
    fs::remove_all(target_);
    fs::create_directory(target_);
    auto r = Extract(streams[i].bytes(), options);
    ASSERT_FALSE(r) << "stream " << i;
    EXPECT_EQ(r.error().code(), StatusCode::kCorruption) << r.error().message();
    EXPECT_THAT(r.error().message(), HasSubstr("reserved")) << "stream " << i;
    EXPECT_FALSE(fs::exists(target_ / "replboot-clone.json")) << "stream " << i;
    EXPECT_FALSE(fs::exists(target_ / "replboot-replication.json")) << "stream " << i;
  }
  // Only the top level is reserved: the same name deeper down is an ordinary member, and
  // without the option nothing is reserved at all.
  fs::remove_all(target_);
  fs::create_directory(target_);
  StreamBuilder nested;
  nested.File("db/replboot-clone.json", "ok");
  ASSERT_TRUE(Extract(nested.bytes(), options));
  EXPECT_EQ(Slurp(target_ / "db/replboot-clone.json"), "ok");
  fs::remove_all(target_);
  fs::create_directory(target_);
  ASSERT_TRUE(Extract(streams[0].bytes()));
}

// Compresses with libarchive's write filters (raw format), as a test-side encoder.
std::string Compress(const std::string& data, int filter) {
  struct archive* a = archive_write_new();
  if (filter == ARCHIVE_FILTER_ZSTD) {
    EXPECT_EQ(archive_write_add_filter_zstd(a), ARCHIVE_OK);
  } else {
    EXPECT_EQ(archive_write_add_filter_lz4(a), ARCHIVE_OK);
  }
  EXPECT_EQ(archive_write_set_format_raw(a), ARCHIVE_OK);
  std::vector<char> out(data.size() + (1 << 20));
  size_t used = 0;
  EXPECT_EQ(archive_write_open_memory(a, out.data(), out.size(), &used), ARCHIVE_OK);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "x");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  EXPECT_EQ(archive_write_header(a, e), ARCHIVE_OK);
  if (!data.empty()) {
    EXPECT_EQ(archive_write_data(a, data.data(), data.size()), static_cast<la_ssize_t>(data.size()));
  }
  archive_entry_free(e);
  EXPECT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
  return std::string(out.data(), used);
}

TEST_F(ExtractorTest, DecompressesZstdAndLz4Members) {
  std::mt19937 rng(3);
  std::string big;
  for (int i = 0; i < 300000; ++i) big += fmt::format("row {} value {}\n", i, rng() % 1000);
  std::string small = "xtrabackup_checkpoints content\n";
  for (int filter : {ARCHIVE_FILTER_ZSTD, ARCHIVE_FILTER_LZ4}) {
    fs::remove_all(target_);
    fs::create_directory(target_);
    std::string ext = filter == ARCHIVE_FILTER_ZSTD ? ".zst" : ".lz4";
    // XtraBackup writes one frame per buffer: concatenate two frames for `big`.
    std::string z = Compress(big.substr(0, 1000000), filter) + Compress(big.substr(1000000), filter);
    StreamBuilder b;
    b.File("db/t.ibd" + ext, z, 65536).File("small" + ext, Compress(small, filter)).File("plain", "p");
    ExtractOptions options;
    options.decompress = true;
    auto r = Extract(b.bytes(), options);
    ASSERT_TRUE(r) << ext << ": " << r.error().message();
    EXPECT_EQ(Slurp(target_ / "db/t.ibd"), big) << ext;
    EXPECT_EQ(Slurp(target_ / "small"), small) << ext;
    EXPECT_EQ(Slurp(target_ / "plain"), "p");
    EXPECT_FALSE(fs::exists(target_ / ("db/t.ibd" + ext)));
    // Without --decompress the member is written as it is.
    fs::remove_all(target_);
    fs::create_directory(target_);
    ASSERT_TRUE(Extract(b.bytes()));
    EXPECT_EQ(Slurp(target_ / ("db/t.ibd" + ext)), z);
  }
}

TEST_F(ExtractorTest, CorruptCompressedMemberFails) {
  std::string z = Compress(Pattern(100000, 'z'), ARCHIVE_FILTER_ZSTD);
  {
    // Valid CRC (the stream is fine) but not zstd inside.
    StreamBuilder b;
    b.File("t.ibd.zst", "this is not zstd at all, just text");
    ExtractOptions options;
    options.decompress = true;
    auto r = Extract(b.bytes(), options);
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), HasSubstr("decompressing t.ibd"));
  }
  fs::remove_all(target_);
  fs::create_directory(target_);
  {
    // A truncated zstd frame.
    StreamBuilder b;
    b.File("t.ibd.zst", z.substr(0, z.size() / 2));
    ExtractOptions options;
    options.decompress = true;
    auto r = Extract(b.bytes(), options);
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), HasSubstr("decompressing t.ibd"));
  }
}

TEST_F(ExtractorTest, EmptyStreamAndMissingTargetFail) {
  auto r = Extract({});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("empty"));
  StreamBuilder b;
  b.File("a", "b");
  auto missing = Extract(b.bytes(), {}, tmp_.Path("nope"));
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message(), HasSubstr("open target directory"));
}

TEST_F(ExtractorTest, MissingEofIsReportedByName) {
  StreamBuilder b;
  b.File("done", "x").Payload("ib_logfile0", "half", 0);
  auto r = Extract(b.bytes());
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("never got their end-of-file chunk: ib_logfile0"));
}

}  // namespace
}  // namespace replboot::backup
