#include "replboot/backup/commands.h"

namespace replboot::backup {

// One line per command group of the module.
void AddCommands(CLI::App& app) { AddXbstreamCommands(app); }

}  // namespace replboot::backup
