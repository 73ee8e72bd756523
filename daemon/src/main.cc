// replboot: turns a MariaDB/MySQL container into a self-assembling primary/replica cluster.
// This file only wires the subcommands each module provides.
#include <CLI/CLI.hpp>

#include "replboot/base/exit_code.h"

// Each module's commands header declares its Add*Commands(CLI::App&).
#if __has_include("replboot/conf/commands.h")
#include "replboot/conf/commands.h"
#define REPLBOOT_HAS_CONF_COMMANDS 1
#endif
#if __has_include("replboot/daemon/commands.h")
#include "replboot/daemon/commands.h"
#define REPLBOOT_HAS_DAEMON_COMMANDS 1
#endif
#if __has_include("replboot/backup/commands.h")
#include "replboot/backup/commands.h"
#define REPLBOOT_HAS_BACKUP_COMMANDS 1
#endif
#if __has_include("replboot/discovery/commands.h")
#include "replboot/discovery/commands.h"
#define REPLBOOT_HAS_DISCOVERY_COMMANDS 1
#endif
#if __has_include("replboot/clone/commands.h")
#include "replboot/clone/commands.h"
#define REPLBOOT_HAS_CLONE_COMMANDS 1
#endif
#if __has_include("replboot/replication/commands.h")
#include "replboot/replication/commands.h"
#define REPLBOOT_HAS_REPLICATION_COMMANDS 1
#endif

int main(int argc, char** argv) {
  CLI::App app{"replboot: a self-assembling MariaDB/MySQL primary/replica cluster, one binary per pod"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "replboot 0.1.0");
#ifdef REPLBOOT_HAS_CONF_COMMANDS
  replboot::conf::AddCommands(app);       // config render | show
#endif
#ifdef REPLBOOT_HAS_DAEMON_COMMANDS
  replboot::daemon::AddCommands(app);     // run
#endif
#ifdef REPLBOOT_HAS_BACKUP_COMMANDS
  replboot::backup::AddCommands(app);     // xbstream extract | list
#endif
#ifdef REPLBOOT_HAS_DISCOVERY_COMMANDS
  replboot::discovery::AddCommands(app);  // peers
#endif
#ifdef REPLBOOT_HAS_CLONE_COMMANDS
  replboot::clone::AddCommands(app);      // clone, serve-backup
#endif
#ifdef REPLBOOT_HAS_REPLICATION_COMMANDS
  replboot::replication::AddCommands(app);  // status
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // Usage errors exit 2, as configuration errors do.
    return rc == 0 ? 0 : 2;
  }
  return replboot::cli::ExitCode();
}
