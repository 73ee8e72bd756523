// replboot: turns a MariaDB/MySQL container into a self-assembling primary/replica cluster.
// This file only wires the subcommands each module provides.
#include <CLI/CLI.hpp>

#include "replboot/backup/commands.h"
#include "replboot/base/exit_code.h"
#include "replboot/conf/commands.h"
#include "replboot/daemon/commands.h"
#include "replboot/daemon/replication_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"replboot: a self-assembling MariaDB/MySQL primary/replica cluster, one binary per pod"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "replboot 0.1.0");
  replboot::conf::AddCommands(app);         // config render | show | keys
  replboot::daemon::AddCommands(app);       // run
  replboot::backup::AddCommands(app);       // xbstream extract | list
  replboot::daemon::AddPeersCommand(app);   // peers
  replboot::daemon::AddCloneCommands(app);  // clone, serve-backup
  replboot::daemon::AddBackupCommands(app);  // backup now|list|verify|delete|prune, restore
  replboot::daemon::AddBinlogCommands(app);  // binlog archive-file|list
  replboot::daemon::AddReplicationCommands(app);  // status, replication-agent
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // Usage errors exit 2, as configuration errors do.
    return rc == 0 ? 0 : 2;
  }
  return replboot::cli::ExitCode();
}
