#include "replboot/backup/xbstream_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "xbstream_test_util.h"

namespace replboot::backup {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::OpenAtEveryBoundaryStream;
using testing::Pattern;
using testing::Prefix;
using testing::ReadAll;
using testing::RecordingSink;
using testing::StreamBuilder;
using testing::U32Bytes;
using testing::U64Bytes;


// The first chunk of a real 10.11.19 stream (reference 1.2): 'P' aria_log_control,
// 52 bytes at offset 0, CRC 0xab305b86 (computed by our builder from the payload);
// the 'E' chunk follows at stream offset 0x66.
TEST(XbstreamReader, LayoutMatchesReferenceVector) {
  StreamBuilder b;
  std::string payload(52, 'x');
  b.Payload("aria_log_control", payload, 0).Eof("aria_log_control");
  const auto& bytes = b.bytes();
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "XBSTCK01");
  EXPECT_EQ(bytes[9], 'P');
  EXPECT_EQ(bytes[10], 16);
  // header 14 + path 16 + 20 fields + 52 payload = 102 = 0x66
  EXPECT_EQ(std::string(bytes.begin() + 0x66, bytes.begin() + 0x66 + 8), "XBSTCK01");
  EXPECT_EQ(bytes[0x66 + 9], 'E');
  RecordingSink sink;
  ASSERT_TRUE(ReadAll(bytes, &sink).ok());
  EXPECT_THAT(sink.events, ElementsAre("begin aria_log_control 0 52", "end aria_log_control 52",
                                       "eof aria_log_control"));
  EXPECT_EQ(sink.files["aria_log_control"], payload);
}

TEST(XbstreamReader, InterleavedFilesAsParallelWritesThem) {
  std::string a = Pattern(5000, 'a'), c = Pattern(3000, 'c');
  StreamBuilder b;
  b.Payload("ibdata1", a.substr(0, 2000), 0)
      .Payload("db/t1.ibd", c.substr(0, 1000), 0)
      .Payload("ibdata1", a.substr(2000, 2000), 2000)
      .Payload("db/t1.ibd", c.substr(1000), 1000)
      .Eof("db/t1.ibd")
      .Payload("ibdata1", a.substr(4000), 4000)
      .Eof("ibdata1");
  RecordingSink sink;
  ASSERT_TRUE(ReadAll(b.bytes(), &sink).ok());
  EXPECT_EQ(sink.files["ibdata1"], a);
  EXPECT_EQ(sink.files["db/t1.ibd"], c);
  EXPECT_THAT(sink.ended, ElementsAre("db/t1.ibd", "ibdata1"));
}

TEST(XbstreamReader, ZeroLengthFileIsEofAlone) {
  StreamBuilder b;
  b.Eof("mysql/slow_log.CSV").Payload("empty_chunk", "", 0).Eof("empty_chunk");
  RecordingSink sink;
  ASSERT_TRUE(ReadAll(b.bytes(), &sink).ok());
  EXPECT_THAT(sink.events, ElementsAre("eof mysql/slow_log.CSV", "begin empty_chunk 0 0",
                                       "end empty_chunk 0", "eof empty_chunk"));
  EXPECT_EQ(sink.files["mysql/slow_log.CSV"], "");
}

// The same events whatever the split of the input into Feed() calls.
TEST(XbstreamReader, AnySplitOfTheInputGivesTheSameEvents) {
  StreamBuilder b;
  b.File("a", Pattern(300, 'x'), 100).File("d/b", Pattern(10, 'y')).Eof("z");
  RecordingSink whole;
  ASSERT_TRUE(ReadAll(b.bytes(), &whole).ok());
  for (size_t piece : {1, 2, 3, 7, 13, 64}) {
    RecordingSink sink;
    ASSERT_TRUE(ReadAll(b.bytes(), &sink, Flavour::kMariaDB, piece).ok()) << piece;
    EXPECT_EQ(sink.events, whole.events) << piece;
    EXPECT_EQ(sink.files, whole.files) << piece;
  }
  for (size_t cut = 0; cut <= b.bytes().size(); ++cut) {
    RecordingSink sink;
    XbstreamReader reader({}, &sink);
    ASSERT_TRUE(reader.Feed(b.bytes().data(), cut).ok());
    ASSERT_TRUE(reader.Feed(b.bytes().data() + cut, b.bytes().size() - cut).ok());
    ASSERT_TRUE(reader.Finish().ok());
    ASSERT_EQ(sink.events, whole.events) << cut;
  }
}

// Every strict prefix must fail, and never as success.
TEST(XbstreamReader, TruncationAtEveryBytePositionFails) {
  const auto full = OpenAtEveryBoundaryStream().bytes();
  for (size_t len = 0; len < full.size(); ++len) {
    RecordingSink sink;
    Status s = ReadAll(Prefix(full, len), &sink);
    ASSERT_FALSE(s.ok()) << "prefix of " << len << " bytes was accepted";
    EXPECT_EQ(s.code(), StatusCode::kCorruption);
    EXPECT_THAT(s.message(), ::testing::AnyOf(HasSubstr("truncated"), HasSubstr("never got"),
                                              HasSubstr("empty")))
        << s.message();
  }
  RecordingSink sink;
  EXPECT_TRUE(ReadAll(full, &sink).ok());
}

TEST(XbstreamReader, TruncationMessageNamesFileAndOffsets) {
  StreamBuilder b;
  b.Payload("ibdata1", Pattern(100, 'a'), 0).Eof("ibdata1");
  std::vector<uint8_t> cut(b.bytes().begin(), b.bytes().begin() + 60);
  RecordingSink sink;
  Status s = ReadAll(cut, &sink);
  EXPECT_EQ(s.message(),
            "stream truncated: it ends at stream offset 60 inside the payload of the ibdata1 "
            "chunk at stream offset 0");
}

TEST(XbstreamReader, FilesWithoutEofAreListed) {
  StreamBuilder b;
  b.Payload("b", "x", 0).Payload("a", "y", 0).File("c", "z");
  RecordingSink sink;
  Status s = ReadAll(b.bytes(), &sink);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_THAT(s.message(), HasSubstr("2 file(s) never got their end-of-file chunk: a, b"));
}

TEST(XbstreamReader, EverySingleBitFlipInAPayloadIsCaught) {
  StreamBuilder b;
  b.Payload("ibdata1", Pattern(64, 'a'), 0).Payload("ibdata1", Pattern(33, 'q'), 64).Eof("ibdata1");
  const auto& good = b.bytes();
  size_t flips = 0;
  for (auto [begin, end] : b.payload_ranges()) {
    for (size_t pos = begin; pos < end; ++pos) {
      for (int bit = 0; bit < 8; ++bit) {
        std::vector<uint8_t> bad = good;
        bad[pos] ^= static_cast<uint8_t>(1 << bit);
        RecordingSink sink;
        Status s = ReadAll(bad, &sink);
        ASSERT_FALSE(s.ok()) << "flip at " << pos << " bit " << bit;
        ASSERT_THAT(s.message(), HasSubstr("checksum mismatch in ibdata1 chunk at stream offset"));
        // The sink never saw the chunk confirmed.
        size_t chunk_start = pos < b.payload_ranges()[1].first ? 0 : b.payload_ranges()[0].second;
        ASSERT_THAT(s.message(), HasSubstr(fmt::format("stream offset {}:", chunk_start)));
        ++flips;
      }
    }
  }
  EXPECT_EQ(flips, 97u * 8);
}

TEST(XbstreamReader, ChecksumMessageHasExpectedAndActual) {
  StreamBuilder b;
  b.Payload("ibdata1", "hello", 0).Eof("ibdata1");
  auto bytes = b.bytes();
  bytes[b.payload_ranges()[0].first] = 'j';
  RecordingSink sink;
  Status s = ReadAll(bytes, &sink);
  EXPECT_THAT(s.message(), ::testing::MatchesRegex("checksum mismatch in ibdata1 chunk at stream "
                                                   "offset 0: expected 0x[0-9a-f]{8}, got "
                                                   "0x[0-9a-f]{8}"));
}

struct BadPath {
  std::string path;
  std::string why;
};

TEST(XbstreamReader, UnsafePathsAreRefused) {
  std::vector<BadPath> cases = {
      {"/etc/passwd", "absolute"},
      {"../x", "'..' component"},
      {"a/../../x", "'..' component"},
      {"a/..", "'..' component"},
      {std::string("a\0b", 3), "NUL"},
      {"a\\b", "backslash"},
      {"a//b", "empty component"},
      {"a/", "empty component"},
      {".", "names no file"},
      {std::string(512, 'x'), "too large"},
  };
  for (const auto& c : cases) {
    for (char type : {'P', 'E'}) {
      StreamBuilder b;
      if (type == 'P') {
        b.Payload(c.path, "data", 0);
      } else {
        b.Eof(c.path);
      }
      RecordingSink sink;
      Status s = ReadAll(b.bytes(), &sink);
      ASSERT_FALSE(s.ok()) << c.path;
      EXPECT_EQ(s.code(), StatusCode::kCorruption);
      EXPECT_THAT(s.message(), HasSubstr(c.why)) << s.message();
      EXPECT_THAT(s.message(), HasSubstr("stream offset 0")) << s.message();
      EXPECT_TRUE(sink.events.empty());
    }
  }
  // 511 bytes is the longest allowed.
  StreamBuilder ok;
  ok.File(std::string(511, 'y'), "z");
  RecordingSink sink;
  EXPECT_TRUE(ReadAll(ok.bytes(), &sink).ok());
}

TEST(XbstreamReader, DotComponentsAreDropped) {
  StreamBuilder b;
  b.Payload("./ibdata1", "ab", 0).Payload("ibdata1", "cd", 2).Eof("./ibdata1");
  RecordingSink sink;
  ASSERT_TRUE(ReadAll(b.bytes(), &sink).ok());
  EXPECT_EQ(sink.files["ibdata1"], "abcd");
}

TEST(XbstreamReader, PathLengthLargerThanWhatRemains) {
  StreamBuilder b;
  b.Raw('P', 0, "", "");  // path length 0 written; patch it to 300
  auto bytes = b.bytes();
  bytes[10] = 0x2c;
  bytes[11] = 0x01;
  bytes.insert(bytes.end(), {'a', 'b', 'c'});
  RecordingSink sink;
  Status s = ReadAll(bytes, &sink);
  EXPECT_THAT(s.message(), HasSubstr("stream truncated: it ends at stream offset 17 inside the "
                                     "header of the chunk at stream offset 0"));
}

TEST(XbstreamReader, PayloadLengthLargerThanWhatRemains) {
  StreamBuilder b;
  b.Raw('P', 0, "f", U64Bytes(1000) + U64Bytes(0) + U32Bytes(0) + "only a few bytes");
  RecordingSink sink;
  Status s = ReadAll(b.bytes(), &sink);
  EXPECT_THAT(s.message(), HasSubstr("inside the payload of the f chunk at stream offset 0"));
}

TEST(XbstreamReader, HugePayloadLengthIsRefusedBeforeAnythingElse) {
  StreamBuilder b;
  b.Raw('P', 0, "f", U64Bytes(~0ull) + U64Bytes(0) + U32Bytes(0));
  RecordingSink sink;
  Status s = ReadAll(b.bytes(), &sink);
  EXPECT_THAT(s.message(), HasSubstr("out of range"));
  EXPECT_TRUE(sink.events.empty());
  StreamBuilder c;
  c.Raw('P', 0, "f", U64Bytes(10) + U64Bytes(~0ull - 5) + U32Bytes(0));
  EXPECT_THAT(ReadAll(c.bytes(), &sink).message(), HasSubstr("out of range"));
}

TEST(XbstreamReader, UnknownChunkTypeIsAnErrorWhateverItsFlags) {
  for (uint8_t flags : {0, 1, 2, 3}) {
    StreamBuilder b;
    b.File("a", "x").Raw('Q', flags, "a", U64Bytes(3) + U64Bytes(1) + U32Bytes(0) + "ZZZ");
    RecordingSink sink;
    Status s = ReadAll(b.bytes(), &sink);
    ASSERT_FALSE(s.ok()) << int(flags);
    EXPECT_THAT(s.message(), HasSubstr("unknown chunk type 0x51 ('Q')"));
    EXPECT_THAT(s.message(), HasSubstr("at stream offset 51"));
    EXPECT_THAT(s.message(), HasSubstr("its length cannot be known"));
    EXPECT_EQ(sink.files["a"], "x");  // nothing appended (the reference tools' bug)
  }
}

TEST(XbstreamReader, MariaDbOnlyTypesAreUnknownInMysqlStreams) {
  for (char type : {'R', 'D'}) {
    StreamBuilder b;
    b.Raw(type, 0, "a", "");
    RecordingSink sink;
    Status s = ReadAll(b.bytes(), &sink, Flavour::kMySQL);
    EXPECT_THAT(s.message(), HasSubstr("unknown chunk type")) << type;
    EXPECT_THAT(s.message(), HasSubstr("mysql stream"));
  }
  StreamBuilder b;
  b.Payload("a", "x", 0, kChunkFlagRewrite).Eof("a");
  RecordingSink sink;
  EXPECT_THAT(ReadAll(b.bytes(), &sink, Flavour::kMySQL).message(),
              HasSubstr("unknown chunk flags 0x02"));
}

TEST(XbstreamReader, BadMagicIsAnError) {
  StreamBuilder b;
  b.File("a", "x").Bytes("XBSTCK02 and more bytes here");
  RecordingSink sink;
  Status s = ReadAll(b.bytes(), &sink);
  EXPECT_THAT(s.message(), HasSubstr("bad chunk magic at stream offset 51"));
}

TEST(XbstreamReader, OffsetsMustBeContinuous) {
  {
    StreamBuilder b;  // gap 5 -> 9 (reference 1.7)
    b.Payload("a", "12345", 0).Payload("a", "6789", 9).Eof("a");
    RecordingSink sink;
    EXPECT_THAT(ReadAll(b.bytes(), &sink).message(),
                HasSubstr("out-of-order chunk in a chunk at stream offset 40: file offset 9, "
                          "expected 5"));
  }
  {
    StreamBuilder b;  // overlap
    b.Payload("a", "12345", 0).Payload("a", "6789", 3).Eof("a");
    RecordingSink sink;
    EXPECT_THAT(ReadAll(b.bytes(), &sink).message(), HasSubstr("out-of-order"));
  }
  {
    StreamBuilder b;  // a file must start at 0
    b.Payload("a", "12345", 7).Eof("a");
    RecordingSink sink;
    EXPECT_THAT(ReadAll(b.bytes(), &sink).message(), HasSubstr("expected 0"));
  }
}

TEST(XbstreamReader, MariaDbSeekRenameDelete) {
  StreamBuilder b;
  b.Payload("f", "AAAAAAAAAA", 0)
      .Seek("f", 2)
      .Payload("f", "bb", 2)
      .Eof("f")
      .Rename("f", "g/h")
      .File("x", "1")
      .Delete("x");
  RecordingSink sink;
  ASSERT_TRUE(ReadAll(b.bytes(), &sink).ok());
  EXPECT_THAT(sink.events,
              ElementsAre("begin f 0 10", "end f 10", "seek f 2", "begin f 2 2", "end f 4", "eof f",
                          "rename f g/h", "begin x 0 1", "end x 1", "eof x", "delete x"));
  EXPECT_EQ(sink.files["g/h"], "AAbbAAAAAA");
  EXPECT_EQ(sink.files.count("x"), 0u);
}

TEST(XbstreamReader, RenameOrDeleteOfAnOpenFileIsAnError) {
  {
    StreamBuilder b;
    b.Payload("f", "x", 0).Rename("f", "g");
    RecordingSink sink;
    EXPECT_THAT(ReadAll(b.bytes(), &sink).message(), HasSubstr("rename of a file that is still open"));
  }
  {
    StreamBuilder b;
    b.Payload("f", "x", 0).Delete("f");
    RecordingSink sink;
    EXPECT_THAT(ReadAll(b.bytes(), &sink).message(), HasSubstr("delete of a file that is still open"));
  }
  {
    StreamBuilder b;
    b.File("f", "x").Payload("g", "y", 0).Rename("f", "g");
    RecordingSink sink;
    EXPECT_THAT(ReadAll(b.bytes(), &sink).message(), HasSubstr("rename onto g"));
  }
}

TEST(XbstreamReader, RenameTargetFollowsThePathRules) {
  for (std::string target : std::vector<std::string>{"/abs", "../up", "a/../../b", std::string(512, 'n'), ""}) {
    StreamBuilder b;
    b.File("f", "x").Rename("f", target);
    RecordingSink sink;
    Status s = ReadAll(b.bytes(), &sink);
    EXPECT_FALSE(s.ok()) << target;
    EXPECT_THAT(sink.events, ::testing::Not(::testing::Contains(HasSubstr("rename"))));
  }
}

TEST(XbstreamReader, PerconaSparseChunks) {
  // skip 0 len 3, skip 5 len 2, skip 10 len 0 (a trailing hole)
  StreamBuilder b;
  b.Sparse("t.ibd", 0, {{0, 3}, {5, 2}, {10, 0}}, "abcde").Payload("t.ibd", "Z", 20).Eof("t.ibd");
  RecordingSink sink;
  ASSERT_TRUE(ReadAll(b.bytes(), &sink, Flavour::kMySQL).ok());
  EXPECT_THAT(sink.events, ElementsAre("begin t.ibd 0 5", "end t.ibd 20", "begin t.ibd 20 1",
                                       "end t.ibd 21", "eof t.ibd"));
  EXPECT_EQ(sink.files["t.ibd"], std::string("abc") + std::string(5, '\0') + "de" +
                                     std::string(10, '\0') + "Z");
  // Byte by byte too.
  RecordingSink slow;
  ASSERT_TRUE(ReadAll(b.bytes(), &slow, Flavour::kMySQL, 1).ok());
  EXPECT_EQ(slow.files, sink.files);
}

TEST(XbstreamReader, SparseChecksumCoversTheMap) {
  StreamBuilder b;
  b.Sparse("t.ibd", 0, {{0, 3}, {5, 2}}, "abcde").Eof("t.ibd");
  auto bytes = b.bytes();
  // The map starts after 14 + 5 + 24 header bytes; turn skip 5 into skip 6.
  size_t map = 14 + 5 + 24;
  bytes[map + 8] ^= 0x03;
  RecordingSink sink;
  EXPECT_THAT(ReadAll(bytes, &sink, Flavour::kMySQL).message(), HasSubstr("checksum mismatch"));
}

TEST(XbstreamReader, SparseMapMustAddUpAndStayBounded) {
  {
    StreamBuilder b;
    b.Sparse("t", 0, {{0, 3}, {5, 3}}, "abcde");
    RecordingSink sink;
    EXPECT_THAT(ReadAll(b.bytes(), &sink, Flavour::kMySQL).message(),
                HasSubstr("sparse map covers 6 bytes but the payload is 5 bytes"));
  }
  {
    StreamBuilder b;  // 2^32-1 entries announced: refused before allocating 32 GiB
    b.Raw('S', 0, "t", U32Bytes(0xffffffffu) + U64Bytes(0) + U64Bytes(0) + U32Bytes(0));
    RecordingSink sink;
    EXPECT_THAT(ReadAll(b.bytes(), &sink, Flavour::kMySQL).message(),
                HasSubstr("larger than the limit"));
  }
}

TEST(XbstreamReader, SInAMariaDbStreamIsASeek) {
  StreamBuilder b;
  b.Sparse("t", 0, {{0, 1}}, "a");
  RecordingSink sink;
  Status s = ReadAll(b.bytes(), &sink, Flavour::kMariaDB);
  EXPECT_FALSE(s.ok());
  ASSERT_FALSE(sink.events.empty());
  EXPECT_EQ(sink.events[0], "seek t 4294967297");  // u32 count 1 + low half of length 1
}

TEST(XbstreamReader, ErrorsAreSticky) {
  StreamBuilder b;
  b.Bytes("garbage garbage garbage");
  RecordingSink sink;
  XbstreamReader reader({}, &sink);
  Status first = reader.Feed(b.bytes());
  EXPECT_FALSE(first.ok());
  StreamBuilder good;
  good.File("a", "b");
  EXPECT_EQ(reader.Feed(good.bytes()).message(), first.message());
  EXPECT_EQ(reader.Finish().message(), first.message());
}

TEST(XbstreamReader, SinkErrorsStopTheReaderWithTheChunkLocation) {
  class FailingSink : public RecordingSink {
   public:
    Status OnEof(const ChunkHeader&) override { return Status(StatusCode::kIOError, "disk on fire"); }
  };
  StreamBuilder b;
  b.File("db/t.frm", "abc");
  FailingSink sink;
  Status s = ReadAll(b.bytes(), &sink);
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_EQ(s.message(), "'E' db/t.frm chunk at stream offset 45: disk on fire");
}

TEST(XbstreamReader, OpenFileLimit) {
  StreamBuilder b;
  for (int i = 0; i < 5; ++i) b.Payload(fmt::format("f{}", i), "x", 0);
  RecordingSink sink;
  XbstreamReader::Options options;
  options.max_open_files = 4;
  XbstreamReader reader(options, &sink);
  EXPECT_THAT(reader.Feed(b.bytes()).message(), HasSubstr("more than 4 files open at once"));
}

}  // namespace
}  // namespace replboot::backup
