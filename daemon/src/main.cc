// replboot: turns a MariaDB/MySQL container into a self-assembling primary/replica cluster.
// This file only wires the subcommands each module provides.
#include <CLI/CLI.hpp>

#include "commands.h"

namespace replboot::cli {
int& ExitCode() {
  static int code = 0;
  return code;
}
}  // namespace replboot::cli

int main(int argc, char** argv) {
  CLI::App app{"replboot: a self-assembling MariaDB/MySQL primary/replica cluster, one binary per pod"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "replboot 0.1.0");
  // Each module adds its subcommands here.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    // Usage errors exit 2, as the config errors do.
    return rc == 0 ? 0 : 2;
  }
  return replboot::cli::ExitCode();
}
