// `replboot peers`: which peers DNS knows, which answer, and which would be the donor.
#ifndef REPLBOOT_DISCOVERY_COMMANDS_H_
#define REPLBOOT_DISCOVERY_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace replboot::discovery {

// Exit status: 0 when a donor was chosen, 1 when none (every candidate listed with
// why not), 2 for a configuration or hostname problem, 128+signal when SIGTERM or
// SIGINT interrupted the lookups.
void AddCommands(CLI::App& app);

}  // namespace replboot::discovery

#endif  // REPLBOOT_DISCOVERY_COMMANDS_H_
