// `replboot clone --from HOST[:PORT] --datadir DIR [--force-reclone]`: one clone by hand.
// `replboot serve-backup`: only the backup server (tests, bench, a donor outside `run`).
#ifndef REPLBOOT_CLONE_COMMANDS_H_
#define REPLBOOT_CLONE_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace replboot::clone {

void AddCommands(CLI::App& app);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_COMMANDS_H_
