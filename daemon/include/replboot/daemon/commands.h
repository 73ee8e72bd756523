// `replboot run`: the container ENTRYPOINT (see supervisor.h and bootstrap.h).
#ifndef REPLBOOT_DAEMON_COMMANDS_H_
#define REPLBOOT_DAEMON_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace replboot::daemon {

void AddCommands(CLI::App& app);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_COMMANDS_H_
