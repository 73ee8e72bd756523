// `replboot status [--url URL]`: the node's /status as a readable table.
// `replboot replication-agent` (hidden): what `replboot run` does once mysqld is ready
// (users on the primary, replication on a replica, then the health server and heartbeat),
// against a mysqld that is already running; used by the integration tests and for debugging.
#ifndef REPLBOOT_DAEMON_REPLICATION_COMMANDS_H_
#define REPLBOOT_DAEMON_REPLICATION_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace replboot::daemon {

void AddReplicationCommands(CLI::App& app);

// The table `replboot status` prints for a /status document.
std::string FormatStatus(const nlohmann::json& status);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_REPLICATION_COMMANDS_H_
