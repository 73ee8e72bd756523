// The subcommands that are wired from the configuration (node_settings.h): `replboot run`, the
// container ENTRYPOINT (see supervisor.h and bootstrap.h), and the tools that run one of its
// steps by hand.
#ifndef REPLBOOT_DAEMON_COMMANDS_H_
#define REPLBOOT_DAEMON_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace replboot::daemon {

// run
void AddCommands(CLI::App& app);
// clone, serve-backup (clone_commands.cc)
void AddCloneCommands(CLI::App& app);
// peers (peers_command.cc): probes with the clone's authenticated hello when backup.secret is set
void AddPeersCommand(CLI::App& app);
// backup now|list|verify|delete|prune, restore (backup_commands.cc): the store of [archive]
void AddBackupCommands(CLI::App& app);
// binlog archive-file|list (binlog_commands.cc): the binlog archive of [archive]
void AddBinlogCommands(CLI::App& app);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_COMMANDS_H_
