#include "replboot/archive/binlog_archive.h"

#include <gtest/gtest.h>

#include "binlog_test_util.h"
#include "memory_store_test_util.h"
#include "replboot/binlog/file.h"
#include "replboot/binlog/gtid.h"
#include "replboot/archive/histories.h"

namespace replboot::archive {
namespace {

using testing::MakeBinlog;
using testing::MakeSegment;
using testing::MemoryStore;
using testing::TestTransaction;

constexpr char kCluster[] = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

BackupKey Key() { return KeyFromSecret("binlog archive test key 0123456789abcdef"); }

// --- binlog/file.h on the files the archive cuts ---

TEST(BinlogFileTest, ParsesTransactionsOfAFile) {
  auto file = MakeBinlog({{Gtid{0, 100, 5}, 1000}, {Gtid{1, 101, 9}, 1001, 300}});
  auto parsed = binlog::ParseBinlog(file, "test");
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_TRUE(parsed->checksums);
  ASSERT_EQ(parsed->transactions.size(), 2u);
  EXPECT_EQ(parsed->transactions[0].gtid, (Gtid{0, 100, 5}));
  EXPECT_EQ(parsed->transactions[1].gtid, (Gtid{1, 101, 9}));
  EXPECT_EQ(parsed->transactions[1].commit_time, 1001u);
  EXPECT_EQ(parsed->transactions[0].offset, parsed->format_end);
  EXPECT_EQ(parsed->transactions[1].offset + parsed->transactions[1].length, file.size());
  EXPECT_EQ(parsed->incomplete_tail, 0u);
}

TEST(BinlogFileTest, AByteChangedFailsTheEventsCrc) {
  auto file = MakeBinlog({{Gtid{0, 100, 5}, 1000}, {Gtid{0, 100, 6}, 1001}});
  auto parsed = binlog::ParseBinlog(file, "test");
  ASSERT_TRUE(parsed);
  const auto& second = parsed->transactions[1];
  file[second.offset + 25] ^= 1;
  auto bad = binlog::ParseBinlog(file, "binlog file x");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.error().message().find(fmt::format("binlog file x at offset {}", second.offset)),
            std::string::npos)
      << bad.error().message();
  EXPECT_NE(bad.error().message().find("CRC-32"), std::string::npos);
}

TEST(BinlogFileTest, ATruncatedFileIsATailOnlyWhenAllowed) {
  auto file = MakeBinlog({{Gtid{0, 100, 5}, 1000}, {Gtid{0, 100, 6}, 1001}});
  const size_t full = file.size();
  file.resize(full - 10);  // into the last XID
  auto strict = binlog::ParseBinlog(file, "f");
  ASSERT_FALSE(strict);
  EXPECT_EQ(strict.error().code(), StatusCode::kCorruption);
  auto live = binlog::ParseBinlog(file, "f", /*allow_tail=*/true);
  ASSERT_TRUE(live) << live.error().message();
  EXPECT_EQ(live->transactions.size(), 1u);
  EXPECT_EQ(live->complete_end, live->transactions[0].offset + live->transactions[0].length);
  EXPECT_EQ(live->incomplete_tail, file.size() - live->complete_end);
}

TEST(BinlogFileTest, RefusesWhatIsNotABinlog) {
  std::vector<uint8_t> junk = {'n', 'o', 'p', 'e', 0, 0, 0};
  EXPECT_FALSE(binlog::ParseBinlog(junk, "f"));
  auto file = MakeBinlog({});
  // An event claiming more bytes than the file holds.
  auto big = testing::MakeEvent(19, 1, 100, std::vector<uint8_t>(10));
  big[9] = 0xff;
  big[10] = 0xff;
  file.insert(file.end(), big.begin(), big.end());
  auto parsed = binlog::ParseBinlog(file, "f");
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message().find("claims"), std::string::npos);
}

TEST(GtidTextTest, StrictGtidsAndPositions) {
  EXPECT_TRUE(binlog::ParseGtid("0-100-41"));
  for (const char* bad : {"", "0-100", "0-100-41-1", "a-1-2", "01-1-2", "0--2", "-0-1-2",
                          "0-1-99999999999999999999", "4294967296-1-1", "0-1-2 "}) {
    EXPECT_FALSE(binlog::ParseGtid(bad)) << bad;
  }
  auto p = binlog::ParsePosition("0-100-41, 0-101-30,1-100-7");
  ASSERT_TRUE(p);
  EXPECT_EQ(binlog::PositionToString(*p), "0-100-41,1-100-7");
  EXPECT_EQ(binlog::PositionOrdinal(*p), 48u);
  EXPECT_FALSE(binlog::ParsePosition("0-1-2,"));
  EXPECT_TRUE(binlog::ParsePosition("")->empty());
  EXPECT_FALSE(GtidState::Parse("0-100-1,0-100-2"));  // one (domain, server) twice
}

// --- the segment store ---

TEST(BinlogArchiveTest, PutListOpenRoundTrip) {
  MemoryStore store;
  BinlogArchive archive(store, Key(), kCluster);
  auto a = MakeSegment(kCluster, 1, 10);
  auto b = MakeSegment(kCluster, 11, 25);
  auto pa = archive.Put(a);
  ASSERT_TRUE(pa) << pa.error().message();
  auto pb = archive.Put(b);
  ASSERT_TRUE(pb) << pb.error().message();
  EXPECT_TRUE(pa->key.starts_with(std::string("binlogs/") + kCluster + "/"));
  EXPECT_EQ(pa->start_state, "");
  EXPECT_EQ(pa->end_state, "0-100-10");
  EXPECT_EQ(pb->start_state, "0-100-10");

  auto listed = archive.List(kCluster);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0], *pa);
  EXPECT_EQ((*listed)[1], *pb);
  EXPECT_EQ((*listed)[1].first_commit_time, 1'800'000'011);
  EXPECT_EQ((*listed)[1].transactions, 15u);
  auto newest = archive.Newest(kCluster);
  ASSERT_TRUE(newest && *newest);
  EXPECT_EQ((*newest)->key, pb->key);

  const int gets = store.gets();
  auto opened = archive.Open((*listed)[1]);
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(store.gets(), gets + 1);
  EXPECT_EQ(opened->binlog, b.binlog);
  EXPECT_EQ(opened->end_state, b.end_state);
  EXPECT_EQ(opened->server_version, b.server_version);
}

TEST(BinlogArchiveTest, PutAgainIsIdempotentAndALeftoverIsReplaced) {
  MemoryStore store;
  BinlogArchive archive(store, Key(), kCluster);
  auto seg = MakeSegment(kCluster, 1, 5);
  auto first = archive.Put(seg);
  ASSERT_TRUE(first);
  auto again = archive.Put(seg);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->key, first->key);
  // A torn object at the key: replaced by the next Put.
  store.objects()[first->key] = {1, 2, 3};
  auto replaced = archive.Put(seg);
  ASSERT_TRUE(replaced) << replaced.error().message();
  EXPECT_TRUE(archive.Open(*replaced));
}

TEST(BinlogArchiveTest, AByteChangedIsRefusedNamingTheSegment) {
  MemoryStore store;
  BinlogArchive archive(store, Key(), kCluster);
  auto put = archive.Put(MakeSegment(kCluster, 1, 5));
  ASSERT_TRUE(put);
  store.objects()[put->key][40] ^= 0x20;
  auto opened = archive.Open(*put);
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code(), StatusCode::kCorruption);
  EXPECT_NE(opened.error().message().find("binlog segment " + put->key), std::string::npos)
      << opened.error().message();
  EXPECT_NE(opened.error().message().find("authentication failed"), std::string::npos);
}

TEST(BinlogArchiveTest, ASegmentMovedToAnotherHistoryOrRangeDoesNotOpen) {
  MemoryStore store;
  BinlogArchive archive(store, Key(), kCluster);
  auto put = archive.Put(MakeSegment(kCluster, 1, 5));
  ASSERT_TRUE(put);
  const auto bytes = store.objects()[put->key];

  // Another history: the same name under another prefix lists, and does not open.
  std::string other = put->key;
  other.replace(0, std::string("binlogs/").size() + std::string(kCluster).size(),
                "binlogs/20261207T104159Z-0a1b2c3d");
  store.objects()[other] = bytes;
  auto listed = archive.List("20261207T104159Z-0a1b2c3d");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  auto moved = archive.Open((*listed)[0]);
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code(), StatusCode::kCorruption);

  // Another range (a valid key naming 6..10): does not open either.
  auto later = SegmentInfoOf(MakeSegment(kCluster, 6, 10));
  ASSERT_TRUE(later);
  store.objects()[later->key] = bytes;
  EXPECT_FALSE(archive.Open(*later));
}

TEST(BinlogArchiveTest, AnotherKeyOrClusterDoesNotOpen) {
  MemoryStore store;
  BinlogArchive archive(store, Key(), kCluster);
  auto put = archive.Put(MakeSegment(kCluster, 1, 5));
  ASSERT_TRUE(put);
  BinlogArchive wrong_key(store, KeyFromSecret("another key entirely 0123456789abcdef"), kCluster);
  auto a = wrong_key.Open(*put);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code(), StatusCode::kCorruption);
  BinlogArchive other_cluster(store, Key(), "11111111-2222-3333-4444-555555555555");
  EXPECT_FALSE(other_cluster.Open(*put));
}

TEST(BinlogArchiveTest, HostileKeysAreNotSegments) {
  auto good = SegmentInfoOf(MakeSegment(kCluster, 11, 25));
  ASSERT_TRUE(good);
  EXPECT_TRUE(ParseSegmentKey(good->key));
  const std::string prefix = std::string("binlogs/") + kCluster + "/";
  std::vector<std::string> hostile = {
      "",
      "binlogs/",
      prefix,
      prefix + "x.seg",
      "binlogs/../" + good->key.substr(8),
      "binlogs/-bad/" + good->key.substr(prefix.size()),
      good->key + ".seg",
      good->key.substr(0, good->key.size() - 4),
      // an ordinal that does not match its position
      prefix + "00000000000000000010-00000000000000000026_1800000011-1800000025_15_0-100-11_0-100-25_0-100-10_0-100-25.seg",
      // more transactions than the range holds
      prefix + "00000000000000000010-00000000000000000025_1800000011-1800000025_16_0-100-11_0-100-25_0-100-10_0-100-25.seg",
      // a leading zero in a time
      prefix + "00000000000000000010-00000000000000000025_01800000011-1800000025_15_0-100-11_0-100-25_0-100-10_0-100-25.seg",
      // an end before the start
      prefix + "00000000000000000025-00000000000000000010_1800000011-1800000025_15_0-100-11_0-100-25_0-100-25_0-100-10.seg",
      // domains out of order
      prefix + "00000000000000000010-00000000000000000026_1-2_1_0-1-1_0-1-1_1-1-5.0-1-5_1-1-5.0-1-6.seg",
      // a time over 2^32
      prefix + "00000000000000000010-00000000000000000025_4294967296-1800000025_15_0-100-11_0-100-25_0-100-10_0-100-25.seg",
      prefix + std::string(2000, '0') + ".seg",
  };
  for (const auto& key : hostile) EXPECT_FALSE(ParseSegmentKey(key)) << key;

  MemoryStore store;
  for (const auto& key : hostile) {
    if (!key.empty()) store.objects()[key] = {1};
  }
  BinlogArchive archive(store, Key(), kCluster);
  auto listed = archive.List(kCluster);
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());
  EXPECT_GT(archive.ignored_keys(), 0u);
  EXPECT_FALSE(archive.List("../x"));
}

TEST(BinlogArchiveTest, PutRefusesASegmentThatBreaksTheContract) {
  MemoryStore store;
  BinlogArchive archive(store, Key(), kCluster);
  auto seg = MakeSegment(kCluster, 1, 5);
  auto wrong_count = seg;
  wrong_count.transactions = 4;
  auto wrong_end = seg;
  wrong_end.end_state = "0-100-6";
  auto wrong_time = seg;
  wrong_time.last_commit_time += 1;
  auto cut = seg;
  cut.binlog.resize(cut.binlog.size() - 3);
  auto outside = seg;
  auto rotate = testing::MakeEvent(binlog::kRotateEvent, 1, 100, std::vector<uint8_t>(12));
  outside.binlog.insert(outside.binlog.end(), rotate.begin(), rotate.end());
  auto bad_history = seg;
  bad_history.history = "a/b";
  for (const auto* s : {&wrong_count, &wrong_end, &wrong_time, &cut, &outside, &bad_history}) {
    auto put = archive.Put(*s);
    ASSERT_FALSE(put);
    EXPECT_EQ(put.error().code(), StatusCode::kInvalidArgument) << put.error().message();
  }
  EXPECT_TRUE(store.objects().empty());
}

TEST(BinlogArchiveTest, MultiDomainStatesAndPositions) {
  BinlogSegment s;
  s.history = kCluster;
  s.binlog = MakeBinlog({{Gtid{0, 101, 8}, 100}, {Gtid{1, 100, 3}, 101}});
  s.start_state = "0-100-5,0-101-7,1-100-2";
  s.end_state = "0-100-5,0-101-8,1-100-3";
  s.first_gtid = "0-101-8";
  s.last_gtid = "1-100-3";
  s.first_commit_time = 100;
  s.last_commit_time = 101;
  s.transactions = 2;
  auto info = SegmentInfoOf(s);
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->start_state, "0-101-7,1-100-2");
  EXPECT_EQ(info->end_state, "0-101-8,1-100-3");
  auto parsed = ParseSegmentKey(info->key);
  ASSERT_TRUE(parsed) << info->key;
  EXPECT_EQ(*parsed, *info);
}

TEST(CutBinlogFileTest, CutsAServersFileIntoChainedSegments) {
  GtidState start;
  start.Record(0, 100, 9);
  std::vector<TestTransaction> txns;
  for (uint64_t s = 10; s < 40; ++s) txns.push_back({Gtid{0, 100, s}, static_cast<uint32_t>(s), 500});
  auto file = MakeBinlog(txns, &start);
  CutOptions options;
  options.history = kCluster;
  options.max_segment_bytes = 4096;
  options.skip = *binlog::ParsePosition("0-100-14");
  auto segments = CutBinlogFile(file, "mariadb-bin.000001", options);
  ASSERT_TRUE(segments) << segments.error().message();
  ASSERT_GT(segments->size(), 2u);
  EXPECT_EQ(segments->front().start_state, "0-100-14");
  EXPECT_EQ(segments->front().first_gtid, "0-100-15");
  EXPECT_EQ(segments->back().end_state, "0-100-39");
  MemoryStore store;
  BinlogArchive archive(store, Key(), kCluster);
  std::string previous_end = "0-100-14";
  for (const auto& seg : *segments) {
    EXPECT_LE(seg.binlog.size(), 4096u);
    EXPECT_EQ(seg.start_state, previous_end);
    previous_end = seg.end_state;
    auto put = archive.Put(seg);
    ASSERT_TRUE(put) << put.error().message();
  }
  // The active file: "in use" set in its Format_description after the checksum was made.
  auto active = MakeBinlog(txns, &start);
  active[sizeof binlog::kBinlogMagic + 17] |= binlog::kFlagInUse;
  ASSERT_TRUE(binlog::ParseBinlog(active, "active"));
  active[sizeof binlog::kBinlogMagic + binlog::kHeaderSize + 3] ^= 1;  // but a real change fails
  EXPECT_FALSE(binlog::ParseBinlog(active, "active"));
  active[sizeof binlog::kBinlogMagic + binlog::kHeaderSize + 3] ^= 1;
  auto from_active = CutBinlogFile(active, "active", options);
  ASSERT_TRUE(from_active);
  EXPECT_EQ(from_active->front().binlog[sizeof binlog::kBinlogMagic + 17] & binlog::kFlagInUse, 0);
  EXPECT_EQ(from_active->front().server_version, "10.11.6-MariaDB-test");
  // Without a Gtid_list the start is unknown.
  EXPECT_FALSE(CutBinlogFile(MakeBinlog(txns), "x", options));
  // The active file cut mid-transaction: the whole ones only.
  file.resize(file.size() - 7);
  auto live = CutBinlogFile(file, "x", options);
  ASSERT_TRUE(live);
  EXPECT_EQ(live->back().end_state, "0-100-38");
}

// --- histories ---

TEST(HistoriesTest, RecordRoundTripAndTamper) {
  HistoryRecord r{"20261207T104159Z-0a1b2c3d", kCluster, kCluster, "0-100-41",
                  "20261207T061500Z", "time 2026-12-07T10:41:59Z", 1'800'000'000'000};
  MemoryStore store;
  ASSERT_TRUE(WriteHistory(store, Key(), r).ok());
  EXPECT_FALSE(WriteHistory(store, Key(), r).ok());  // once
  auto listed = ListHistories(store, Key(), kCluster);
  ASSERT_TRUE(listed) << listed.error().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0], r);

  std::string text = SerializeHistory(r, Key());
  auto moved = ParseHistory(text, "20261207T104159Z-ffffffff", Key());
  ASSERT_FALSE(moved);
  std::string changed = text;
  changed.replace(changed.find("0-100-41"), 8, "0-100-42");
  auto tampered = ParseHistory(changed, r.id, Key());
  ASSERT_FALSE(tampered);
  EXPECT_NE(tampered.error().message().find("MAC"), std::string::npos);
  auto other_key = ParseHistory(text, r.id, KeyFromSecret("another key entirely 0123456789abcdef"));
  ASSERT_FALSE(other_key);
  EXPECT_EQ(other_key.error().code(), StatusCode::kPermissionDenied);
}

TEST(HistoriesTest, LineageAndTheHistoryAtATime) {
  std::vector<HistoryRecord> records = {
      {"h1", kCluster, kCluster, "0-100-40", "20261207T061500Z", "latest", 1000},
      {"h2", kCluster, "h1", "0-100-60", "20261207T071500Z", "latest", 2000},
  };
  auto lineage = LineageOf(records, kCluster, "h2");
  ASSERT_TRUE(lineage);
  ASSERT_EQ(lineage->size(), 3u);
  EXPECT_EQ((*lineage)[0].history, "h2");
  EXPECT_EQ((*lineage)[1].history, "h1");
  EXPECT_EQ((*lineage)[1].branch_state, "0-100-60");
  EXPECT_EQ((*lineage)[2].history, kCluster);
  EXPECT_EQ((*lineage)[2].branch_state, "0-100-40");
  EXPECT_EQ(LineageOf(records, kCluster, "nope").error().code(), StatusCode::kNotFound);
  records.push_back({"h3", kCluster, "h3x", "", "20261207T071500Z", "latest", 3000});
  records.push_back({"h3x", kCluster, "h3", "", "20261207T071500Z", "latest", 3000});
  EXPECT_EQ(LineageOf(records, kCluster, "h3").error().code(), StatusCode::kCorruption);

  EXPECT_EQ(HistoryAt(records, kCluster, 999), kCluster);
  EXPECT_EQ(HistoryAt(records, kCluster, 1500), "h1");
  EXPECT_EQ(HistoryAt(records, kCluster, 2000), "h2");
}

TEST(HistoriesTest, TheArchiversAnswer) {
  EXPECT_EQ(*HistoryFromAnswer({}, kCluster), kCluster);
  EXPECT_EQ(*HistoryFromAnswer({std::string("h1")}, kCluster), "h1");
  EXPECT_FALSE(HistoryFromAnswer({std::string("h1"), std::string("h2")}, kCluster));
  EXPECT_FALSE(HistoryFromAnswer({std::nullopt}, kCluster));
  EXPECT_FALSE(HistoryFromAnswer({std::string("x'; DROP")}, kCluster));
  HistoryRecord r{"h1", kCluster, kCluster, "0-100-41", "20261207T061500Z", "latest", 5};
  auto sql = HistoryTableStatements(r);
  ASSERT_FALSE(sql.empty());
  EXPECT_NE(sql[4].find("'h1'"), std::string::npos);
}

}  // namespace
}  // namespace replboot::archive
