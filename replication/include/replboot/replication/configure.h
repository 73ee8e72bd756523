// Points a replica at the primary at most once.
//
// Why at most once: a CHANGE MASTER from the clone's position, run again after the replica has
// applied more transactions, replays or skips them (duplicate keys or silently missing rows).
//
//   SHOW SLAVE STATUS  intent record           action
//   host set           any                     already configured: START SLAVE if a thread is
//                                              stopped, then wait for both threads
//   empty              none / "intent"         configure: write intent (fsynced), run the
//                                              statements, record "configured", wait for threads
//                                              ("intent" alone means we crashed before
//                                              CHANGE MASTER took effect: safe to redo)
//   empty              "configured"            refuse (kInternal): replication was set up once
//                      after CHANGE MASTER     and has since been reset by hand; starting again
//                                              from the clone's position would be wrong
//
// The record is `replboot-replication.json` in the datadir (so it goes away with the data, and a
// new clone starts clean). It holds no password: statements are recorded redacted.
#ifndef REPLBOOT_REPLICATION_CONFIGURE_H_
#define REPLBOOT_REPLICATION_CONFIGURE_H_

#include <chrono>
#include <string>

#include "replboot/base/datadir_files.h"
#include "replboot/base/status.h"
#include "replboot/db/client.h"
#include "replboot/db/dialect.h"
#include "replboot/replication/position.h"
#include "replboot/replication/statements.h"

namespace replboot::replication {

inline constexpr const char* kIntentFileName = datadir_files::kReplicationIntent;

struct ReplicaSetup {
  Flavour flavour = Flavour::kMariaDB;
  SourceOptions source;
  std::string datadir;  // where the intent record lives
  std::chrono::milliseconds start_deadline{std::chrono::seconds(60)};
  std::chrono::milliseconds poll_interval{std::chrono::milliseconds(250)};
};

enum class ConfigureOutcome { kConfigured, kAlreadyConfigured };

// See the table above. After START SLAVE both threads must report Running within
// start_deadline, else kUnavailable naming Last_IO_Error / Last_SQL_Error (also logged).
// An SQL thread that stops with an error fails at once (it does not restart by itself).
Result<ConfigureOutcome> ConfigureReplica(db::Session& session, const Position& position,
                                          const ReplicaSetup& setup);

// For a (re)starting replica: when replication is already configured, just ensures it runs;
// otherwise reads the clone's position from the datadir (ReadClonePosition) and configures.
Result<ConfigureOutcome> SetupReplica(db::Session& session, const ReplicaSetup& setup);

// Waits for both replication threads to run (see ConfigureReplica).
Status WaitForReplicaThreads(db::Session& session, const db::Dialect& dialect,
                             std::chrono::milliseconds deadline,
                             std::chrono::milliseconds poll_interval);

}  // namespace replboot::replication

#endif  // REPLBOOT_REPLICATION_CONFIGURE_H_
