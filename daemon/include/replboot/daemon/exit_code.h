// The `replboot` subcommands. Each module registers its own commands; main.cc only wires them.
#ifndef REPLBOOT_DAEMON_EXIT_CODE_H_
#define REPLBOOT_DAEMON_EXIT_CODE_H_

#include <CLI/CLI.hpp>

namespace replboot::cli {

// The process exit status a subcommand asks for (0 unless it sets one).
int& ExitCode();

}  // namespace replboot::cli

#endif  // REPLBOOT_DAEMON_EXIT_CODE_H_
