// What the `replboot backup …`, `replboot restore` and `replboot binlog …` commands share: the
// configuration loaded from the flags and resolved like `replboot run`, the store of [archive]
// opened from it, and a failure logged with its exit code.
#ifndef REPLBOOT_DAEMON_ARCHIVE_COMMAND_H_
#define REPLBOOT_DAEMON_ARCHIVE_COMMAND_H_

#include <memory>
#include <optional>
#include <string>

#include "replboot/base/status.h"
#include "replboot/conf/cli_flags.h"
#include "replboot/daemon/backups.h"
#include "replboot/daemon/node_settings.h"

namespace replboot::daemon {

// Logs event=<event> with the status and sets the command's exit code from it.
void FailCommand(const std::string& event, const Status& s);

struct OpenedArchive {
  NodeSettings settings;
  std::unique_ptr<Archive> archive;
};
// nullopt (after FailCommand("config_invalid", …)) when the configuration or the store does
// not resolve. `needs_flavour`: the command talks to a server (the flavour and the MySQL user
// are resolved too).
std::optional<OpenedArchive> OpenArchiveCommand(const conf::ConfigFlags& flags,
                                                bool needs_flavour);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_ARCHIVE_COMMAND_H_
