#include "replboot/daemon/replication_commands.h"

#include <gtest/gtest.h>

#include "replboot/replication/health.h"

namespace replboot::daemon {

using namespace replication;  // NOLINT: the status document comes from replication/
namespace {

// `replboot status` prints the table from the JSON a node's /status answers (SnapshotJson).
TEST(FormatStatusTest, TableFromAStatusDocument) {
  Snapshot s;
  s.node.role = NodeRole::kReplica;
  s.node.ordinal = 2;
  s.node.server_id = 102;
  s.mysqld_error = "no socket";
  s.clone.phase = "done";
  s.clone.donor = "mysql-1.mysql";
  s.clone.bytes = s.clone.total_bytes = 4096;
  s.backups_served = 1;
  std::string table = FormatStatus(SnapshotJson(s, 30));
  EXPECT_NE(table.find("role                   replica\n"), std::string::npos) << table;
  EXPECT_NE(table.find("mysqld                 down: no socket\n"), std::string::npos) << table;
  EXPECT_NE(table.find("clone                  done from mysql-1.mysql: 4096 bytes of 4096 bytes "
                       "(100%)\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("backups_served         1\n"), std::string::npos) << table;
}

// A primary that recovered its datadir from a replica says so in plain words; one that never
// asked (a replica, or a datadir with data) has no bootstrap row.
TEST(FormatStatusTest, ThePrimarysRecoveryDecision) {
  Snapshot s;
  s.node.role = NodeRole::kPrimary;
  s.mysqld_up = true;
  s.read_only = false;
  s.bootstrap.plan = "clone";
  s.bootstrap.reason = "most_advanced_peer";
  s.bootstrap.donor = "mysql-1.mysql (10.0.0.11:3307)";
  s.bootstrap.detail = "mysql-1.mysql holds this cluster's data";
  std::string table = FormatStatus(SnapshotJson(s, 30));
  EXPECT_NE(table.find("bootstrap              clone (most_advanced_peer) from mysql-1.mysql "
                       "(10.0.0.11:3307)\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("bootstrap_why          mysql-1.mysql holds this cluster's data\n"),
            std::string::npos)
      << table;
  s.bootstrap = {};
  EXPECT_EQ(FormatStatus(SnapshotJson(s, 30)).find("bootstrap"), std::string::npos);
}

// A waiting primary names each peer it waits for and why, in words, and how to override.
TEST(FormatStatusTest, AWaitingPrimaryNamesWhatItWaitsFor) {
  Snapshot s;
  s.node.role = NodeRole::kPrimary;
  s.bootstrap.plan = "wait";
  s.bootstrap.reason = "waiting_for_peers";
  s.bootstrap.detail = "not initializing while a peer may hold this cluster's data";
  s.bootstrap.waiting_for = {{"mysql-1.mysql", "refused_our_secret", "authentication failed"},
                             {"mysql-2.mysql", "answered_error", "Access denied"}};
  s.bootstrap.override_file = "/var/lib/mysql/data.replboot-initialize-empty";
  std::string table = FormatStatus(SnapshotJson(s, 30));
  EXPECT_NE(table.find("waiting_for            mysql-1.mysql: refused our secret "
                       "(authentication failed)\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("waiting_for            mysql-2.mysql: answered with an error (Access "
                       "denied)\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("initialize empty, discarding the peers' data\" > "
                       "/var/lib/mysql/data.replboot-initialize-empty"),
            std::string::npos)
      << table;
  s.bootstrap.plan = "clone";
  s.bootstrap.waiting_for.clear();
  EXPECT_EQ(FormatStatus(SnapshotJson(s, 30)).find("override"), std::string::npos);
}

TEST(FormatStatusTest, DayTwoStatesInPlainWords) {
  Snapshot s;
  s.node.role = NodeRole::kReplica;
  s.mysqld_up = true;
  s.recovery.state = "diverged";
  s.recovery.reason =
      "diverged from the primary: errant transactions: it holds 1 transaction the primary "
      "lacks (0-102-522); not re-cloned automatically";
  s.recovery.errant_gtids = "0-102-522";
  s.recovery.errant_transactions = 1;
  s.recovery.diverged = true;
  s.recovery.gtid_relation = "diverged";
  std::string table = FormatStatus(SnapshotJson(s, 30));
  EXPECT_NE(table.find("recovery               DIVERGED, never ready until a person acts: "
                       "diverged from the primary: errant transactions"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("errant_gtids           0-102-522 (1 transaction(s) the primary lacks)\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("ready                  no (diverged from the primary"), std::string::npos)
      << table;

  s.recovery = ReplicaRecoveryView{};
  s.recovery.state = "reclone_pending";
  s.recovery.reason = "the primary no longer has the binlogs this replica needs (...)";
  s.recovery.reclone_in_seconds = 42;
  table = FormatStatus(SnapshotJson(s, 30));
  EXPECT_NE(table.find("recovery               waiting to re-clone in 42 s: the primary no "
                       "longer has the binlogs"),
            std::string::npos)
      << table;

  s.recovery.state = "recloning";
  s.recovery.reclone_in_seconds.reset();
  s.recovery.reclones = 1;
  s.recovery.last_reclone_reason = "binlogs purged";
  table = FormatStatus(SnapshotJson(s, 30));
  EXPECT_NE(table.find("recovery               re-cloning: the primary"), std::string::npos)
      << table;
  EXPECT_NE(table.find("auto_reclones          1, last because binlogs purged\n"),
            std::string::npos)
      << table;

  s.recovery.state = "reclone_refused";
  s.recovery.reason = "...; re-clone refused: replication.auto_reclone is off";
  table = FormatStatus(SnapshotJson(s, 30));
  EXPECT_NE(table.find("recovery               re-clone refused: ...; re-clone refused: "
                       "replication.auto_reclone is off"),
            std::string::npos)
      << table;
}

}  // namespace
}  // namespace replboot::daemon
