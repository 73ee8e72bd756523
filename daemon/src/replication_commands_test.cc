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

}  // namespace
}  // namespace replboot::daemon
