#include "replboot/binlog/cutter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "binlog_test_util.h"

namespace replboot::binlog {
namespace {

using ::testing::HasSubstr;
using namespace replboot::binlog::testing;
using namespace std::chrono_literals;
using Clock = SegmentCutter::Clock;

const Clock::time_point kT0 = Clock::time_point{} + 1000s;

CutterOptions Options(std::chrono::milliseconds interval = 3600s, uint64_t bytes = 1u << 30) {
  CutterOptions o;
  o.history = "h0";
  o.seal_interval = interval;
  o.seal_bytes = bytes;
  return o;
}

// Feeds every event at `t`; returns the segments sealed on the way (and fails the test on an
// error).
std::vector<CutSegment> FeedAll(SegmentCutter& cutter,
                                const std::vector<std::vector<uint8_t>>& events,
                                Clock::time_point t = kT0) {
  std::vector<CutSegment> out;
  for (const auto& e : events) {
    auto r = cutter.Add(e, t);
    EXPECT_TRUE(r) << r.error().ToString();
    if (r && *r) out.push_back(std::move(**r));
  }
  return out;
}

std::vector<std::vector<uint8_t>> Recorded() {
  return SplitEvents(ReadFile("mariadb-10.11/crc32.binlog"));
}

TEST(GtidStateTest, ParsesPrintsAndRefuses) {
  auto s = GtidState::Parse("1-100-1, 0-101-3,0-100-7\n");
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->ToString(), "0-100-7,0-101-3,1-100-1");
  EXPECT_EQ(s->ConnectPosition(), "0-100-7,1-100-1");
  EXPECT_TRUE(s->Holds(0, 100, 7));
  EXPECT_FALSE(s->Holds(0, 100, 8));
  EXPECT_FALSE(s->Holds(2, 100, 1));
  EXPECT_TRUE(GtidState::Parse("")->empty());
  for (const char* bad : {"0-100", "0-100-0", "x-1-2", "0-1-2-3", "0-100-1,0-100-2",
                          "4294967296-1-1", "0-1-18446744073709551616", "0-1-2,", "-1-2"}) {
    auto r = GtidState::Parse(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
    }
  }
}

// The recorded binlog (8 transactions, 2 domains) in one segment: a standalone binlog file of
// the FD and whole groups only, which the cutter itself reads back to the same position.
TEST(SegmentCutterTest, RecordedBinlogMakesOneSegment) {
  SegmentCutter cutter(Options(), GtidState());
  auto sealed = FeedAll(cutter, Recorded());
  EXPECT_TRUE(sealed.empty());
  auto seg = cutter.Flush();
  ASSERT_TRUE(seg);
  const binlog::BinlogSegment& s = seg->segment;
  EXPECT_EQ(s.history, "h0");
  EXPECT_EQ(s.start_state, "");
  EXPECT_EQ(s.end_state, "0-100-7,1-100-1");
  EXPECT_EQ(s.first_gtid, "0-100-1");
  EXPECT_EQ(s.last_gtid, "0-100-7");
  EXPECT_EQ(s.transactions, 8u);
  EXPECT_EQ(s.server_id, 100u);
  EXPECT_THAT(s.server_version, HasSubstr("10.11.19"));
  EXPECT_EQ(s.first_commit_time, 1'796'647'861);
  EXPECT_EQ(seg->commit_times.size(), 8u);
  ASSERT_TRUE(std::equal(s.binlog.begin(), s.binlog.begin() + 4, std::begin(kBinlogMagic)));
  auto events = SplitEvents(s.binlog);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0][4], kFormatDescriptionEvent);
  for (const auto& e : events) {
    EXPECT_NE(e[4], kRotateEvent);
    EXPECT_NE(e[4], kGtidListEvent);
    EXPECT_NE(e[4], kBinlogCheckpointEvent);
    EXPECT_TRUE(VerifyChecksum(e, ChecksumAlg::kCrc32).ok());
  }
  // The original minus its Gtid_list, Binlog_checkpoint and Rotate events.
  auto original = Recorded();
  size_t kept = 0;
  for (const auto& e : original) {
    if (e[4] != kRotateEvent && e[4] != kGtidListEvent && e[4] != kBinlogCheckpointEvent) ++kept;
  }
  EXPECT_EQ(events.size(), kept);
  SegmentCutter again(Options(), GtidState());
  FeedAll(again, events);
  EXPECT_EQ(again.state().ToString(), "0-100-7,1-100-1");
  EXPECT_FALSE(again.in_group());
}

// A new connection starts before what was archived (or the server sends a group twice): the
// groups the position holds are dropped, never archived twice.
TEST(SegmentCutterTest, GroupsThePositionHoldsAreDropped) {
  SegmentCutter cutter(Options(), *GtidState::Parse("0-100-3"));
  FeedAll(cutter, Recorded());
  auto seg = cutter.Flush();
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->segment.start_state, "0-100-3");
  EXPECT_EQ(seg->segment.first_gtid, "0-100-4");
  EXPECT_EQ(seg->segment.transactions, 5u);
  EXPECT_EQ(cutter.duplicates_dropped(), 3u);
}

TEST(SegmentCutterTest, SealsByIntervalBytesAndIdleTick) {
  auto events = Recorded();
  // Interval: each event 1 s after the previous; a 2.5 s interval seals at the first
  // transaction boundary past it.
  {
    SegmentCutter cutter(Options(2500ms), GtidState());
    std::vector<CutSegment> sealed;
    Clock::time_point t = kT0;
    for (const auto& e : events) {
      auto r = cutter.Add(e, t);
      ASSERT_TRUE(r) << r.error().ToString();
      if (*r) sealed.push_back(std::move(**r));
      t += 1s;
    }
    ASSERT_GE(sealed.size(), 2u);
    for (size_t i = 1; i < sealed.size(); ++i) {
      EXPECT_EQ(sealed[i].segment.start_state, sealed[i - 1].segment.end_state);
      EXPECT_EQ(SplitEvents(sealed[i].segment.binlog)[0][4], kFormatDescriptionEvent);
    }
    auto rest = cutter.Flush();
    const std::string end = rest ? rest->segment.end_state : sealed.back().segment.end_state;
    EXPECT_EQ(end, "0-100-7,1-100-1");
  }
  // Bytes: a 1-byte limit seals after every transaction.
  {
    SegmentCutter cutter(Options(3600s, 1), GtidState());
    auto sealed = FeedAll(cutter, events);
    ASSERT_EQ(sealed.size(), 8u);
    for (const auto& s : sealed) EXPECT_EQ(s.segment.transactions, 1u);
    EXPECT_EQ(sealed[6].segment.first_gtid, "1-100-1");
    EXPECT_EQ(sealed[6].segment.end_state, "0-100-6,1-100-1");
  }
  // Idle: nothing more arrives; Tick seals once the interval passed, not before.
  {
    SegmentCutter cutter(Options(2000ms), GtidState());
    FeedAll(cutter, events, kT0);
    EXPECT_EQ(cutter.pending_since(), kT0);
    EXPECT_FALSE(cutter.Tick(kT0 + 1999ms));
    auto seg = cutter.Tick(kT0 + 2000ms);
    ASSERT_TRUE(seg);
    EXPECT_EQ(seg->segment.transactions, 8u);
    EXPECT_FALSE(cutter.pending_since());
    EXPECT_EQ(cutter.sealed_state().ToString(), "0-100-7,1-100-1");
  }
}

// A group's completed part never goes into a segment: a cut in the middle leaves the position
// at the last whole transaction.
TEST(SegmentCutterTest, HalfAGroupIsNeverSealed) {
  auto events = Recorded();
  SegmentCutter cutter(Options(), GtidState());
  // Up to and including the GTID and rows of 0-100-3, without its Xid.
  size_t i = 0;
  int gtids = 0;
  for (; i < events.size(); ++i) {
    if (events[i][4] == kGtidEvent && ++gtids == 3) break;
  }
  std::vector<std::vector<uint8_t>> part(events.begin(), events.begin() + i + 3);
  FeedAll(cutter, part);
  EXPECT_TRUE(cutter.in_group());
  auto seg = cutter.Flush();
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->segment.end_state, "0-100-2");
  EXPECT_EQ(seg->segment.transactions, 2u);
}

TEST(SegmentCutterTest, RefusesWhatTheTableRefuses) {
  auto events = Recorded();
  auto fd = events[0];
  auto gtid = MakeEvent(kGtidEvent, GtidBody(50, 0, 0));
  auto xid = MakeEvent(kXidEvent, XidBody(9));
  auto expect_refused = [&](const std::vector<std::vector<uint8_t>>& feed, const char* what) {
    SegmentCutter cutter(Options(), GtidState());
    Status last;
    for (const auto& e : feed) {
      auto r = cutter.Add(e, kT0);
      if (!r) {
        last = r.error();
        break;
      }
    }
    EXPECT_FALSE(last.ok()) << what;
    EXPECT_EQ(last.code(), StatusCode::kCorruption);
    EXPECT_THAT(last.message(), HasSubstr(what));
  };
  expect_refused({fd, xid}, "outside an event group");
  expect_refused({gtid}, "before any Format_description");
  expect_refused({fd, gtid, gtid}, "inside the event group of 0-100-50");
  expect_refused({fd, gtid, MakeEvent(kRotateEvent, {0, 0, 0, 0, 0, 0, 0, 0, 'b'})},
                 "inside the event group");
  expect_refused({fd, gtid, fd}, "inside the event group");
  auto flipped = xid;
  flipped[20] ^= 0x40;
  expect_refused({fd, gtid, flipped}, "wrong CRC-32");
  auto truncated = xid;
  truncated.pop_back();
  expect_refused({fd, gtid, truncated}, "says it has 31 bytes but 30 arrived");
  // A hostile Query: status vars past the body, inside a group.
  auto q = QueryBody("app", "COMMIT");
  q[11] = 0xff;
  expect_refused({fd, gtid, MakeEvent(kQueryEvent, q)}, "run past");
  // The index and the log position are named.
  expect_refused({fd, xid}, "binlog event #2 (Xid, log_pos 0)");
  // Over the group bound.
  CutterOptions small = Options();
  small.max_group_bytes = 40;
  SegmentCutter cutter(small, GtidState());
  ASSERT_TRUE(cutter.Add(fd, kT0));
  ASSERT_TRUE(cutter.Add(gtid, kT0));
  auto r = cutter.Add(MakeEvent(kTableMapEvent, std::vector<uint8_t>(30, 0)), kT0);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message(), HasSubstr("exceeds 40 bytes"));
}

// Hand-built groups: a standalone DDL ends at its Query; a non-transactional group at COMMIT;
// heartbeats and the dump's artificial Rotate are dropped; the FD's in-use flag is cleared.
TEST(SegmentCutterTest, HandBuiltGroupsAndArtificialEvents) {
  auto fd = Recorded()[0];
  auto in_use = fd;
  in_use[17] |= kFlagInUse;
  FixCrc(in_use);
  std::vector<std::vector<uint8_t>> feed = {
      MakeEvent(kRotateEvent, {4, 0, 0, 0, 0, 0, 0, 0, 'b', 'i', 'n'}, 100, 0, kFlagArtificial),
      in_use,
      MakeEvent(kHeartbeatEvent, {'b', 'i', 'n'}, 100, 0, kFlagArtificial),
      MakeEvent(kGtidEvent, GtidBody(10, 0, kGtidStandalone), 100, 1'796'647'900),
      MakeEvent(kQueryEvent, QueryBody("app", "CREATE TABLE t2 (id INT)")),
      MakeEvent(kGtidEvent, GtidBody(11, 0, 0), 101, 1'796'647'901),
      MakeEvent(kQueryEvent, QueryBody("app", "INSERT INTO m VALUES (1)")),
      MakeEvent(kHeartbeatEvent, {'b', 'i', 'n'}, 100, 0, kFlagArtificial),
      MakeEvent(kQueryEvent, QueryBody("app", "COMMIT")),
  };
  SegmentCutter cutter(Options(), *GtidState::Parse("0-100-9"));
  FeedAll(cutter, feed);
  auto seg = cutter.Flush();
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->segment.transactions, 2u);
  EXPECT_EQ(seg->segment.start_state, "0-100-9");
  EXPECT_EQ(seg->segment.end_state, "0-100-10,0-101-11");
  EXPECT_EQ(seg->segment.first_commit_time, 1'796'647'900);
  EXPECT_EQ(seg->segment.last_commit_time, 1'796'647'901);
  auto events = SplitEvents(seg->segment.binlog);
  ASSERT_EQ(events.size(), 1u + 2u + 3u);
  EXPECT_EQ(events[0][17] & kFlagInUse, 0);
  EXPECT_TRUE(ParseFormatDescription(events[0]));
  for (const auto& e : events) EXPECT_NE(e[4], kHeartbeatEvent);
}

TEST(SegmentCutterTest, NoChecksumBinlog) {
  SegmentCutter cutter(Options(), *GtidState::Parse("0-100-7,1-100-1"));
  FeedAll(cutter, SplitEvents(ReadFile("mariadb-10.11/no-checksum.binlog")));
  auto seg = cutter.Flush();
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->segment.end_state, "0-100-8,1-100-1");
}

}  // namespace
}  // namespace replboot::binlog
