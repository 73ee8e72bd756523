#include "replboot/daemon/backup_scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace replboot::daemon {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;

TurnInput Replica(int64_t ordinal, int64_t slot, std::vector<int64_t> replicas) {
  TurnInput in;
  in.slot_index = slot;
  in.ordinal = ordinal;
  in.primary = false;
  in.ready = true;
  in.replicas = std::move(replicas);
  in.step = seconds(30);
  return in;
}

TurnInput Primary(int64_t slot, std::vector<int64_t> replicas, std::vector<int64_t> ready) {
  TurnInput in;
  in.slot_index = slot;
  in.ordinal = 0;
  in.primary = true;
  in.ready = true;
  in.replicas = std::move(replicas);
  in.ready_replicas = std::move(ready);
  in.step = seconds(30);
  return in;
}

// Slot k goes first to the replica at place k mod n (by ordinal); the others follow one step
// each in ordinal order, wrapping; every slot has exactly one node with no delay.
TEST(BackupTurn, ReplicasTakeTurnsByOrdinal) {
  const std::vector<int64_t> dns = {1, 2, 3};
  for (int64_t slot = 100; slot < 106; ++slot) {
    int first = 0;
    std::vector<int64_t> delays;
    for (int64_t me : dns) {
      Turn t = DecideTurn(Replica(me, slot, dns));
      ASSERT_TRUE(t.may_try) << me;
      EXPECT_EQ(t.holder, dns[slot % 3]);
      delays.push_back(t.after.count());
      if (t.after == seconds(0)) ++first;
    }
    EXPECT_EQ(first, 1) << slot;
    std::sort(delays.begin(), delays.end());
    EXPECT_EQ(delays, (std::vector<int64_t>{0, 30, 60})) << slot;
  }
  // Slot 100: 100 mod 3 = 1 → ordinal 2 holds it; then 3, then 1 (wrapping).
  EXPECT_EQ(DecideTurn(Replica(2, 100, dns)).after, seconds(0));
  EXPECT_EQ(DecideTurn(Replica(3, 100, dns)).after, seconds(30));
  EXPECT_EQ(DecideTurn(Replica(1, 100, dns)).after, seconds(60));
  EXPECT_THAT(DecideTurn(Replica(2, 100, dns)).reason, HasSubstr("turn holder: this node"));
  EXPECT_THAT(DecideTurn(Replica(1, 100, dns)).reason, HasSubstr("3rd in line, from +60s"));
}

// A replica that DNS does not list yet (a lookup raced with its start) counts itself; gaps
// in the ordinals (mysql-2 gone) are skipped, not waited for.
TEST(BackupTurn, TheReplicaCountsItselfAndGapsDoNotCount) {
  Turn t = DecideTurn(Replica(1, 7, {}));
  EXPECT_TRUE(t.may_try);
  EXPECT_EQ(t.after, seconds(0));
  EXPECT_EQ(t.holder, 1);
  // Replicas 1 and 3: slot 4 → place 0 → ordinal 1; slot 5 → ordinal 3.
  EXPECT_EQ(DecideTurn(Replica(1, 4, {3})).after, seconds(0));
  EXPECT_EQ(DecideTurn(Replica(3, 4, {1})).after, seconds(30));
  EXPECT_EQ(DecideTurn(Replica(3, 5, {1, 3})).after, seconds(0));
  EXPECT_EQ(DecideTurn(Replica(1, 5, {1, 3, 0})).holder, 3);  // ordinal 0 is no replica
  // Negative slot indexes stay in range.
  EXPECT_EQ(DecideTurn(Replica(1, -1, {1, 2})).holder, 2);
}

TEST(BackupTurn, ANodeThatIsNotReadyNeverTries) {
  TurnInput in = Replica(1, 0, {1, 2});
  in.ready = false;
  Turn t = DecideTurn(in);
  EXPECT_FALSE(t.may_try);
  EXPECT_EQ(t.holder, 1);  // still says whose turn it is
  EXPECT_THAT(t.reason, HasSubstr("not ready"));
  TurnInput p = Primary(0, {}, {});
  p.ready = false;
  EXPECT_FALSE(DecideTurn(p).may_try);
}

// The primary goes last, after every replica's step, and only when it sees no replica ready;
// alone in DNS it takes the slot at once.
TEST(BackupTurn, ThePrimaryOnlyWhenNoReplicaCan) {
  Turn alone = DecideTurn(Primary(9, {}, {}));
  EXPECT_TRUE(alone.may_try);
  EXPECT_EQ(alone.after, seconds(0));
  EXPECT_EQ(alone.holder, -1);

  Turn waiting = DecideTurn(Primary(9, {1, 2}, {2}));
  EXPECT_FALSE(waiting.may_try);
  EXPECT_EQ(waiting.after, seconds(60));
  EXPECT_THAT(waiting.reason, HasSubstr("1 ready"));

  Turn last = DecideTurn(Primary(9, {1, 2}, {}));
  EXPECT_TRUE(last.may_try);
  EXPECT_EQ(last.after, seconds(60));  // after the last replica's (1 × 30 s) has passed too
  EXPECT_GT(last.after, DecideTurn(Replica(2, 9, {1, 2})).after);
  EXPECT_GT(last.after, DecideTurn(Replica(1, 9, {1, 2})).after);
  // A ready "replica" not in DNS (a stale answer) does not hold the primary back.
  EXPECT_TRUE(DecideTurn(Primary(9, {1}, {5})).may_try);
}

AttemptState Claimed(int attempt, std::string node, int64_t at_ms, bool manifest = false) {
  AttemptState a;
  a.attempt = attempt;
  a.id = "20261207T1015" + std::to_string(10 + attempt) + "Z";
  a.claimed = true;
  a.node = std::move(node);
  a.claimed_at_ms = at_ms;
  a.has_manifest = manifest;
  return a;
}
AttemptState Free(int attempt) {
  AttemptState a;
  a.attempt = attempt;
  a.id = "20261207T1015" + std::to_string(10 + attempt) + "Z";
  return a;
}

constexpr int64_t kNow = 1'796'623'650'000;
constexpr seconds kTimeout{600};

TEST(BackupSlot, NobodyClaimedItTakeTheFirstAttempt) {
  SlotDecision d = DecideSlot({Free(0)}, "mysql-1", kNow, kTimeout, 8);
  EXPECT_EQ(d.action, SlotDecision::Action::kTake);
  EXPECT_EQ(d.attempt, 0);
  EXPECT_EQ(DecideSlot({}, "mysql-1", kNow, kTimeout, 8).action, SlotDecision::Action::kTake);
}

TEST(BackupSlot, AManifestEndsTheSlotWhoeverWroteIt) {
  SlotDecision d =
      DecideSlot({Claimed(0, "mysql-2", kNow - 1000, true), Free(1)}, "mysql-1", kNow, kTimeout, 8);
  EXPECT_EQ(d.action, SlotDecision::Action::kDone);
  EXPECT_EQ(d.node, "mysql-2");
  // A later attempt's manifest too, after failed ones.
  d = DecideSlot(
      {Claimed(0, "mysql-1", kNow - 9000), Claimed(1, "mysql-2", kNow - 5000, true), Free(2)},
      "mysql-1", kNow, kTimeout, 8);
  EXPECT_EQ(d.action, SlotDecision::Action::kDone);
  EXPECT_EQ(d.attempt, 1);
}

// Another node's fresh claim: it is taking the backup (wait); past claim_timeout without a
// manifest: its taker is dead, the next attempt id is free to claim.
TEST(BackupSlot, AnotherNodesClaimIsBusyUntilItGoesStale) {
  SlotDecision d =
      DecideSlot({Claimed(0, "mysql-2", kNow - 30'000), Free(1)}, "mysql-1", kNow, kTimeout, 8);
  EXPECT_EQ(d.action, SlotDecision::Action::kBusy);
  EXPECT_EQ(d.node, "mysql-2");
  EXPECT_THAT(d.reason, HasSubstr("mysql-2 claimed"));
  d = DecideSlot({Claimed(0, "mysql-2", kNow - 601'000), Free(1)}, "mysql-1", kNow, kTimeout, 8);
  EXPECT_EQ(d.action, SlotDecision::Action::kTake);
  EXPECT_EQ(d.attempt, 1);
  EXPECT_THAT(d.reason, HasSubstr("past archive.claim_timeout"));
  // Only the last claim counts: an old failed one under a fresh one is still busy.
  d = DecideSlot(
      {Claimed(0, "mysql-1", kNow - 601'000), Claimed(1, "mysql-3", kNow - 1000), Free(2)},
      "mysql-1", kNow, kTimeout, 8);
  EXPECT_EQ(d.action, SlotDecision::Action::kBusy);
  EXPECT_EQ(d.node, "mysql-3");
}

// This node's own claim without a manifest is dead at once: it runs one backup at a time, so
// the claim is of an attempt that failed, or of a run of this node that was killed.
TEST(BackupSlot, ThisNodesOwnClaimIsRetriedUnderTheNextId) {
  SlotDecision d =
      DecideSlot({Claimed(0, "mysql-1", kNow - 2000), Free(1)}, "mysql-1", kNow, kTimeout, 8);
  EXPECT_EQ(d.action, SlotDecision::Action::kTake);
  EXPECT_EQ(d.attempt, 1);
  EXPECT_THAT(d.reason, HasSubstr("failed"));
}

TEST(BackupSlot, EveryAttemptIdUsedGivesTheSlotUp) {
  std::vector<AttemptState> all;
  for (int a = 0; a < 3; ++a) all.push_back(Claimed(a, "mysql-1", kNow - 1000));
  SlotDecision d = DecideSlot(all, "mysql-1", kNow, kTimeout, 3);
  EXPECT_EQ(d.action, SlotDecision::Action::kExhausted);
  // Another node's live last claim is still busy, not exhausted.
  all.back().node = "mysql-2";
  EXPECT_EQ(DecideSlot(all, "mysql-1", kNow, kTimeout, 3).action, SlotDecision::Action::kBusy);
}

TEST(BackupFailure, KindsComeFromTheStoreFirst) {
  const Status failure(StatusCode::kUnavailable, "backup X: stream from 127.0.0.11:3307 ended");
  EXPECT_EQ(BackupFailureKind(failure, Status(StatusCode::kPermissionDenied, "403")),
            "store_denied");
  EXPECT_EQ(BackupFailureKind(failure, Status(StatusCode::kNoSpace, "ENOSPC")), "store_full");
  EXPECT_EQ(BackupFailureKind(failure, Status(StatusCode::kUnavailable, "500")),
            "store_unreachable");
  EXPECT_EQ(BackupFailureKind(failure, Status(StatusCode::kTimeout, "deadline")),
            "store_unreachable");
  EXPECT_EQ(BackupFailureKind(failure, Status(StatusCode::kCorruption, "over max_bytes")),
            "verify");
  EXPECT_EQ(BackupFailureKind(failure, Status(StatusCode::kIOError, "EIO")), "other");
  // No store call failed: the source, unless the read-back found a difference.
  EXPECT_EQ(BackupFailureKind(failure, std::nullopt), "source");
  EXPECT_EQ(BackupFailureKind(Status(StatusCode::kCorruption, "checksum mismatch in ibdata1"),
                              std::nullopt),
            "source");
  EXPECT_EQ(BackupFailureKind(Status(StatusCode::kCorruption,
                                     "backups/X/objects/00000001 read back from s3://b differs "
                                     "from what was uploaded"),
                              std::nullopt),
            "verify");
  EXPECT_EQ(BackupFailureKind(Status(StatusCode::kNoSpace, "no space"), std::nullopt),
            "store_full");
}

}  // namespace
}  // namespace replboot::daemon
