// `replboot config render|show|keys`.
#ifndef REPLBOOT_CONF_COMMANDS_H_
#define REPLBOOT_CONF_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace replboot::conf {

// Exit status 2 for a configuration or hostname problem (the message names it on
// stderr), 1 when writing the rendered file fails.
void AddCommands(CLI::App& app);

}  // namespace replboot::conf

#endif  // REPLBOOT_CONF_COMMANDS_H_
