// `replboot` subcommands of the backup module.
#ifndef REPLBOOT_BACKUP_COMMANDS_H_
#define REPLBOOT_BACKUP_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace replboot::backup {

// Registers every backup subcommand on `app`.
void AddCommands(CLI::App& app);

// `replboot xbstream extract|list` (xbstream_commands.cc).
void AddXbstreamCommands(CLI::App& app);

}  // namespace replboot::backup

#endif  // REPLBOOT_BACKUP_COMMANDS_H_
