#include "replboot/binlog/events.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "binlog_test_util.h"

namespace replboot::binlog {
namespace {

using ::testing::HasSubstr;
using namespace replboot::binlog::testing;

// The recorded file (db: app; DDL, row transactions, a MyISAM insert, another domain; see
// testdata/README.md): every event's header, size and CRC-32 read as mariadb-binlog reads them.
TEST(BinlogEventsTest, RecordedFileParses) {
  auto file = ReadFile("mariadb-10.11/crc32.binlog");
  ASSERT_GT(file.size(), 4u);
  ASSERT_TRUE(std::equal(file.begin(), file.begin() + 4, std::begin(kBinlogMagic)));
  auto events = SplitEvents(file);
  ASSERT_FALSE(events.empty());
  auto fd = ParseFormatDescription(events[0]);
  ASSERT_TRUE(fd) << fd.error().ToString();
  EXPECT_EQ(fd->binlog_version, 4);
  EXPECT_THAT(fd->server_version, HasSubstr("10.11.19-MariaDB"));
  EXPECT_EQ(fd->checksum, ChecksumAlg::kCrc32);
  EXPECT_GE(fd->PostHeaderLength(kQueryEvent), 13);
  std::vector<std::string> gtids;
  int xids = 0, commits = 0;
  for (const auto& e : events) {
    auto h = ParseHeader(e, fd->checksum);
    ASSERT_TRUE(h) << h.error().ToString();
    ASSERT_TRUE(VerifyChecksum(e, fd->checksum).ok());
    if (h->type == kGtidEvent) {
      auto g = ParseGtid(*h, Body(e, fd->checksum));
      ASSERT_TRUE(g) << g.error().ToString();
      gtids.push_back(g->ToString());
    } else if (h->type == kXidEvent) {
      ++xids;
    } else if (h->type == kQueryEvent) {
      auto q = ParseQuery(Body(e, fd->checksum), fd->PostHeaderLength(kQueryEvent));
      ASSERT_TRUE(q) << q.error().ToString();
      if (EndsGroup(q->statement)) ++commits;
    } else if (h->type == kGtidListEvent) {
      ASSERT_TRUE(ParseGtidList(Body(e, fd->checksum)));
    } else if (h->type == kRotateEvent) {
      auto r = ParseRotate(Body(e, fd->checksum));
      ASSERT_TRUE(r);
      EXPECT_EQ(r->file, "bin.000002");
      EXPECT_EQ(r->position, 4u);
    }
  }
  EXPECT_EQ(gtids, (std::vector<std::string>{"0-100-1", "0-100-2", "0-100-3", "0-100-4",
                                             "0-100-5", "0-100-6", "1-100-1", "0-100-7"}));
  EXPECT_EQ(xids, 4);
  EXPECT_EQ(commits, 1);  // the MyISAM insert
}

TEST(BinlogEventsTest, NoChecksumFileParses) {
  auto events = SplitEvents(ReadFile("mariadb-10.11/no-checksum.binlog"));
  ASSERT_FALSE(events.empty());
  auto fd = ParseFormatDescription(events[0]);
  ASSERT_TRUE(fd) << fd.error().ToString();
  EXPECT_EQ(fd->checksum, ChecksumAlg::kOff);
  for (const auto& e : events) ASSERT_TRUE(ParseHeader(e, fd->checksum));
}

TEST(BinlogEventsTest, OneChangedByteFailsTheChecksum) {
  auto events = SplitEvents(ReadFile("mariadb-10.11/crc32.binlog"));
  ASSERT_GT(events.size(), 5u);
  for (size_t i = 0; i < events.size(); ++i) {
    auto e = events[i];
    e[e.size() / 2] ^= 0x01;
    Status s = i == 0 ? (ParseFormatDescription(e) ? Status::Ok() : ParseFormatDescription(e).error())
                      : VerifyChecksum(e, ChecksumAlg::kCrc32);
    EXPECT_FALSE(s.ok()) << "event " << i;
    EXPECT_EQ(s.code(), StatusCode::kCorruption);
  }
}

TEST(BinlogEventsTest, HeaderSizesAreChecked) {
  auto e = MakeEvent(kXidEvent, XidBody(7));
  EXPECT_TRUE(ParseHeader(e, ChecksumAlg::kCrc32));
  // Shorter than the header.
  auto h = ParseHeader(std::span(e).first(10), ChecksumAlg::kCrc32);
  ASSERT_FALSE(h);
  EXPECT_THAT(h.error().message(), HasSubstr("shorter than its 19-byte header"));
  // Says more than arrived.
  auto longer = e;
  PutU32(longer, 9, static_cast<uint32_t>(e.size() + 1));
  h = ParseHeader(longer, ChecksumAlg::kCrc32);
  ASSERT_FALSE(h);
  EXPECT_THAT(h.error().message(), HasSubstr("says it has 32 bytes but 31 arrived"));
  // Over the maximum.
  PutU32(longer, 9, kMaxEventSize + 1);
  h = ParseHeader(longer, ChecksumAlg::kCrc32);
  ASSERT_FALSE(h);
  EXPECT_THAT(h.error().message(), HasSubstr("over the"));
  // No room for the checksum.
  auto bare = MakeEvent(kHeartbeatEvent, {}, 100, 0, 0, /*crc=*/false);
  h = ParseHeader(bare, ChecksumAlg::kCrc32);
  ASSERT_FALSE(h);
  EXPECT_THAT(h.error().message(), HasSubstr("no room for its checksum"));
  EXPECT_TRUE(ParseHeader(bare, ChecksumAlg::kOff));
}

TEST(BinlogEventsTest, FormatDescriptionIsChecked) {
  auto fd = SplitEvents(ReadFile("mariadb-10.11/crc32.binlog"))[0];
  auto bad_alg = fd;
  bad_alg[bad_alg.size() - 5] = 7;
  FixCrc(bad_alg);
  auto r = ParseFormatDescription(bad_alg);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("checksum algorithm 7"));
  auto bad_version = fd;
  bad_version[19] = 3;
  FixCrc(bad_version);
  r = ParseFormatDescription(bad_version);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("binlog version 3"));
  auto bad_header = fd;
  bad_header[19 + 2 + 50 + 4] = 13;
  FixCrc(bad_header);
  r = ParseFormatDescription(bad_header);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("13-byte header"));
  auto short_fd = MakeEvent(kFormatDescriptionEvent, std::vector<uint8_t>(20, 0));
  r = ParseFormatDescription(short_fd);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("too short"));
  r = ParseFormatDescription(MakeEvent(kXidEvent, XidBody(1)));
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("expected a Format_description event, got Xid"));
}

TEST(BinlogEventsTest, BodiesAreBoundsChecked) {
  EventHeader h;
  h.server_id = 100;
  auto g = ParseGtid(h, std::vector<uint8_t>(12, 1));
  ASSERT_FALSE(g);
  EXPECT_THAT(g.error().message(), HasSubstr("Gtid event body of 12 bytes"));
  g = ParseGtid(h, GtidBody(0, 0, 0));
  ASSERT_FALSE(g);
  EXPECT_THAT(g.error().message(), HasSubstr("sequence number 0"));
  auto commit_id = GtidBody(5, 0, kGtidGroupCommitId);
  commit_id.resize(13);
  g = ParseGtid(h, commit_id);
  ASSERT_FALSE(g);
  EXPECT_THAT(g.error().message(), HasSubstr("commit id"));

  auto q = QueryBody("app", "COMMIT");
  auto ok = ParseQuery(q, 13);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->db, "app");
  EXPECT_EQ(ok->statement, "COMMIT");
  auto long_status = q;
  long_status[11] = 0xff;  // status vars run past the body
  auto bad = ParseQuery(long_status, 13);
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message(), HasSubstr("run past"));
  auto no_nul = q;
  no_nul[13 + 3] = 'x';
  bad = ParseQuery(no_nul, 13);
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message(), HasSubstr("not NUL-terminated"));
  bad = ParseQuery(std::vector<uint8_t>(5, 0), 13);
  ASSERT_FALSE(bad);

  std::vector<uint8_t> list;
  AppendU32(list, 2);
  list.insert(list.end(), 16, 0);  // one entry of two
  auto l = ParseGtidList(list);
  ASSERT_FALSE(l);
  EXPECT_THAT(l.error().message(), HasSubstr("says 2 entries"));
  std::vector<uint8_t> huge;
  AppendU32(huge, 0x0fffffff);
  ASSERT_FALSE(ParseGtidList(huge));

  ASSERT_FALSE(ParseRotate(std::vector<uint8_t>(8, 0)));
  std::vector<uint8_t> rot(8, 0);
  rot.push_back('\x01');
  auto r = ParseRotate(rot);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("non-printable"));
}

TEST(BinlogEventsTest, WhatEndsAGroup) {
  EXPECT_TRUE(EndsGroup("COMMIT"));
  EXPECT_TRUE(EndsGroup(" commit ;"));
  EXPECT_TRUE(EndsGroup("ROLLBACK"));
  EXPECT_TRUE(EndsGroup("XA COMMIT X'31',X'',1"));
  EXPECT_TRUE(EndsGroup("xa rollback X'31'"));
  EXPECT_FALSE(EndsGroup("BEGIN"));
  EXPECT_FALSE(EndsGroup("COMMITTED"));
  EXPECT_FALSE(EndsGroup("ROLLBACK TO SAVEPOINT a"));
  EXPECT_FALSE(EndsGroup("INSERT INTO t VALUES ('COMMIT')"));
  EXPECT_FALSE(EndsGroup(""));
}

}  // namespace
}  // namespace replboot::binlog
