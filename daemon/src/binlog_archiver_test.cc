#include "replboot/daemon/binlog_archiver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "binlog_test_util.h"
#include "replboot/binlog/cutter.h"
#include "replboot/binlog/events.h"

namespace replboot::daemon {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace bt = replboot::binlog::testing;

TEST(DecideLeaseTest, TurnsAndTakeovers) {
  LeaseInput in;
  in.ready = true;
  in.ordinal = 1;
  in.node = "mysql-1";
  in.timeout = 30s;
  // No lease yet: replica 1 at once, replica 2 one step (10 s) later, the primary after four.
  EXPECT_TRUE(DecideLease(in).take);
  in.ordinal = 2;
  in.node = "mysql-2";
  EXPECT_FALSE(DecideLease(in).take);
  in.unchanged_for = 10s;
  EXPECT_TRUE(DecideLease(in).take);
  LeaseInput p = in;
  p.primary = true;
  p.ordinal = 0;
  p.node = "mysql-0";
  EXPECT_FALSE(DecideLease(p).take);
  p.unchanged_for = 40s;
  EXPECT_TRUE(DecideLease(p).take);
  // Another's live lease: stale only past the timeout plus the turn.
  in.epoch = 3;
  in.holder = "mysql-1";
  in.unchanged_for = 39s;
  auto d = DecideLease(in);
  EXPECT_FALSE(d.take);
  EXPECT_THAT(d.reason, HasSubstr("mysql-1 holds epoch 3"));
  EXPECT_THAT(d.reason, HasSubstr("unchanged for 40000ms"));
  in.unchanged_for = 40s;
  EXPECT_TRUE(DecideLease(in).take);
  p.epoch = 3;
  p.holder = "mysql-1";
  p.unchanged_for = 69s;
  EXPECT_FALSE(DecideLease(p).take);
  p.unchanged_for = 70s;
  EXPECT_TRUE(DecideLease(p).take);
  // Its own epoch from before a restart: at once. Its live one: nothing to take.
  in.holder = "mysql-2";
  in.unchanged_for = 0s;
  EXPECT_TRUE(DecideLease(in).take);
  in.held_here = true;
  EXPECT_FALSE(DecideLease(in).take);
  // Not ready: never.
  in.held_here = false;
  in.ready = false;
  in.unchanged_for = 1h;
  EXPECT_FALSE(DecideLease(in).take);
}

TEST(LeaseKeysTest, ParseStrictly) {
  EXPECT_EQ(LeaseEpochKey(7), "binlog-lease/epoch-00000000000000000007");
  EXPECT_EQ(ParseEpochKey(LeaseEpochKey(7)), 7u);
  EXPECT_FALSE(ParseEpochKey(LeaseBeatKey(7)));
  EXPECT_FALSE(ParseEpochKey("binlog-lease/epoch-0000000000000000000x"));
  EXPECT_FALSE(ParseEpochKey("binlog-lease/epoch-00000000000000000000"));
  EXPECT_FALSE(ParseEpochKey("binlog-lease/epoch-7"));
  EXPECT_FALSE(ParseEpochKey("binlogs/x/epoch-00000000000000000007"));
}

TEST(LagWindowTest, QuantilesOverTheWindow) {
  LagWindow w(60s);
  for (int i = 1; i <= 100; ++i) w.Add(1'000'000, i / 10.0);
  auto s = w.Compute(1'000'000);
  EXPECT_EQ(s.count, 100u);
  EXPECT_NEAR(s.p50, 5.0, 0.11);
  EXPECT_NEAR(s.p99, 9.9, 0.11);
  EXPECT_DOUBLE_EQ(s.max, 10.0);
  // A minute later they have left the window.
  w.Add(1'061'000, 0.5);
  s = w.Compute(1'061'000);
  EXPECT_EQ(s.count, 1u);
  EXPECT_DOUBLE_EQ(s.p99, 0.5);
}

// A stream of recorded events, then heartbeats (or a server error) until the test ends.
class FakeStream final : public db::BinlogStream {
 public:
  FakeStream(std::vector<std::vector<uint8_t>> events, unsigned fail_errno)
      : events_(std::move(events)), fail_errno_(fail_errno) {}
  Result<std::span<const uint8_t>> Next() override {
    if (at_ < events_.size()) return std::span<const uint8_t>(events_[at_++]);
    if (fail_errno_ != 0) {
      last_ = fail_errno_;
      return Error(StatusCode::kNotFound, "error {}: Could not find GTID state requested by slave "
                                          "in any binlog files. Probably the value for the slave's "
                                          "position was purged",
                   fail_errno_);
    }
    std::this_thread::sleep_for(20ms);
    heartbeat_ = bt::MakeEvent(binlog::kHeartbeatEvent, {'b', 'i', 'n'}, 100, 0,
                               binlog::kFlagArtificial);
    return std::span<const uint8_t>(heartbeat_);
  }
  unsigned LastErrorNumber() const override { return last_; }
  const std::string& server_version() const override { return version_; }

 private:
  std::vector<std::vector<uint8_t>> events_;
  size_t at_ = 0;
  unsigned fail_errno_;
  unsigned last_ = 0;
  std::vector<uint8_t> heartbeat_;
  std::string version_ = "10.11.19-MariaDB";
};

struct Fixture {
  std::unique_ptr<store::ObjectStore> store = store::MakeMemoryStore();
  replication::BinlogArchiveStatus status;
  std::mutex mu;
  std::vector<binlog::BinlogSegment> put;
  std::vector<std::string> opened_at;
  std::atomic<int> backups{0};
  unsigned fail_first_errno = 0;

  BinlogArchiverDeps Deps() {
    BinlogArchiverDeps d;
    d.lease_store = store.get();
    d.put_segment = [this](const binlog::BinlogSegment& s) -> Result<std::string> {
      std::lock_guard lock(mu);
      put.push_back(s);
      return fmt::format("binlogs/{}/{}", s.history, put.size());
    };
    d.newest_end_state = [this](const std::string&) -> Result<std::optional<std::string>> {
      std::lock_guard lock(mu);
      if (put.empty()) return std::optional<std::string>();
      return std::optional<std::string>(put.back().end_state);
    };
    d.primary_history = []() -> Result<std::string> { return std::string("root"); };
    d.primary_binlog_state = []() -> Result<std::string> { return std::string("0-100-7,1-100-1"); };
    d.backup_position = []() -> Result<std::optional<std::string>> {
      return std::optional<std::string>("0-100-2");
    };
    d.open_stream = [this](const std::string& position)
        -> Result<std::unique_ptr<db::BinlogStream>> {
      unsigned fail = 0;
      {
        std::lock_guard lock(mu);
        opened_at.push_back(position);
        if (opened_at.size() == 1) fail = fail_first_errno;
      }
      auto events = bt::SplitEvents(bt::ReadFile("mariadb-10.11/crc32.binlog"));
      if (fail != 0) events.clear();
      return std::unique_ptr<db::BinlogStream>(std::make_unique<FakeStream>(events, fail));
    };
    d.request_backup = [this](std::function<void(const std::string&, const Status&)> done) {
      ++backups;
      done("20261207T130000Z", Status::Ok());
    };
    d.ready = [] { return true; };
    return d;
  }

  BinlogArchiverOptions Options() {
    BinlogArchiverOptions o;
    o.node = "mysql-1";
    o.ordinal = 1;
    o.seal_interval = 100ms;
    o.lease_timeout = 6s;
    o.poll = 50ms;
    return o;
  }

  size_t Transactions() {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (const auto& s : put) n += s.transactions;
    return n;
  }
};

bool WaitFor(const std::function<bool()>& ok, std::chrono::milliseconds timeout = 5s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (ok()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return ok();
}

// The lease taken, the chain started from the newest backup (no segment yet), every
// transaction after it sealed once, in chain order; then another node takes epoch 2 and this
// one stops before its next upload.
TEST(BinlogArchiverTest, TakesTheLeaseArchivesInOrderAndIsFenced) {
  Fixture f;
  BinlogArchiver archiver(f.Options(), f.Deps(), f.status);
  archiver.Start();
  ASSERT_TRUE(WaitFor([&] { return f.Transactions() == 6; })) << f.Transactions();
  {
    std::lock_guard lock(f.mu);
    EXPECT_EQ(f.opened_at.front(), "0-100-2");
    EXPECT_EQ(f.put.front().start_state, "0-100-2");
    EXPECT_EQ(f.put.front().first_gtid, "0-100-3");
    for (size_t i = 1; i < f.put.size(); ++i)
      EXPECT_EQ(f.put[i].start_state, f.put[i - 1].end_state);
    EXPECT_EQ(f.put.back().end_state, "0-100-7,1-100-1");
    EXPECT_EQ(f.put.back().history, "root");
  }
  ASSERT_TRUE(f.store->Get(LeaseEpochKey(1), 4096));
  ASSERT_TRUE(WaitFor([&] { return f.store->Get(LeaseBeatKey(1), 4096).has_value(); }));
  auto v = f.status.Get();
  EXPECT_EQ(v.role, "holder");
  EXPECT_EQ(v.state, "archiving");
  EXPECT_EQ(v.start_source, "backup");
  EXPECT_EQ(v.newest_gtid, "0-100-7");
  EXPECT_EQ(v.lag_count, 6u);
  EXPECT_GE(v.lag_p99, v.lag_p50);
  EXPECT_EQ(v.gaps, 0u);
  // Another node takes epoch 2.
  const std::string other = R"({"node":"mysql-2","epoch":2})";
  ASSERT_TRUE(*f.store->PutIfAbsent(LeaseEpochKey(2),
                                    std::vector<uint8_t>(other.begin(), other.end())));
  ASSERT_TRUE(WaitFor([&] { return f.status.Get().fenced == 1; }, 10s)) << f.status.Get().state;
  archiver.Stop();
  EXPECT_EQ(f.Transactions(), 6u);
}

// The primary purged the position: a gap counted, a backup requested, a new chain from the
// primary's state now.
TEST(BinlogArchiverTest, PurgedPositionIsANamedGap) {
  Fixture f;
  f.fail_first_errno = db::kErrorReadingBinlog;
  BinlogArchiver archiver(f.Options(), f.Deps(), f.status);
  archiver.Start();
  ASSERT_TRUE(WaitFor([&] { return f.status.Get().gaps == 1 && f.opened_at.size() >= 2; }));
  archiver.Stop();
  auto v = f.status.Get();
  EXPECT_EQ(f.backups.load(), 1);
  EXPECT_THAT(v.last_gap, HasSubstr("after 0-100-2"));
  EXPECT_THAT(v.last_gap, HasSubstr("purged"));
  EXPECT_EQ(v.gap_backup_result, "ok");
  EXPECT_FALSE(v.gap_open);
  EXPECT_EQ(v.start_source, "primary");
  std::lock_guard lock(f.mu);
  EXPECT_EQ(f.opened_at[1], "0-100-7,1-100-1");
  EXPECT_TRUE(f.put.empty());  // the new chain starts after everything the stream holds
}

}  // namespace
}  // namespace replboot::daemon
